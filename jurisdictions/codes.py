"""Transfer restriction codes: the one definition shared by Python and the contracts.

ERC-1404 style: a share movement is allowed exactly when its code is 0 (`SUCCESS`); any
other code names the first rule it breaks, and `MESSAGES[code]` is the sentence a wallet
shows (on-chain: `messageForTransferRestriction(code)` and the revert reason).

The checks run in the order of the codes below (13, the region of residence, is checked
with the residence policy, between 8 and 9), in both `jurisdictions.engine.decide`
and `ComplianceRegistry._check`; the first failing check decides the code.

The on-chain copy, `contracts/modules/restriction_codes.vy`, is generated from this file:

    python -m jurisdictions.codes            # rewrite the Vyper module
    python -m jurisdictions.codes --check    # exit 1 if it is out of date (tests do this)
"""

from __future__ import annotations

import argparse
import sys
from enum import IntEnum
from pathlib import Path

VYPER_MODULE = Path(__file__).resolve().parent.parent / "contracts" / "modules" / (
    "restriction_codes.vy"
)
# Longest message the Vyper module can return (`String[MAX_MESSAGE_LENGTH]`).
MAX_MESSAGE_LENGTH = 160


class TitleStatus(IntEnum):
    """On-chain encoding of a jurisdiction's `title_recognition` (0: not in the table)."""

    UNLISTED = 0
    RECOGNISED = 1
    NOT_RECOGNISED = 2
    UNCLEAR = 3
    # A sanctioned jurisdiction: tokenized title there is never recognised, and no SPV's
    # legal opinion can change that (the registry refuses an override).
    SANCTIONED = 4


class HolderPolicyCode(IntEnum):
    """On-chain encoding of a jurisdiction's `holder_policy` (0: not in the table)."""

    UNLISTED = 0
    ALLOWED = 1
    ACCREDITED_ONLY = 2
    BLOCKED = 3


class Restriction(IntEnum):
    """Why a share movement is refused (0: it is not)."""

    SUCCESS = 0
    TOKEN_PAUSED = 1
    ASSET_TITLE_NOT_RECOGNISED = 2
    SENDER_NOT_REGISTERED = 3
    SENDER_ELIGIBILITY_EXPIRED = 4
    SENDER_FROZEN = 5
    RECEIVER_NOT_REGISTERED = 6
    RECEIVER_ELIGIBILITY_EXPIRED = 7
    RECEIVER_FROZEN = 8
    RECEIVER_JURISDICTION_BLOCKED = 9
    RECEIVER_NOT_ACCREDITED = 10
    INSUFFICIENT_BALANCE = 11
    AMOUNT_FROZEN = 12
    # Checked with the residence policy (between 8 and 9); numbered last so that the
    # codes wallets already know keep their numbers.
    RECEIVER_REGION_UNKNOWN = 13


MESSAGES: dict[Restriction, str] = {
    Restriction.SUCCESS: "No restriction: the transfer is allowed.",
    Restriction.TOKEN_PAUSED: "The share token is paused: no shares can move until the SPV "
    "unpauses it.",
    Restriction.ASSET_TITLE_NOT_RECOGNISED: "These shares are backed by GPUs in a "
    "jurisdiction that does not recognise tokenized title; only redemption to the SPV is "
    "allowed.",
    Restriction.SENDER_NOT_REGISTERED: "The sender has no eligibility record in the "
    "compliance registry; complete KYC with a trusted provider first.",
    Restriction.SENDER_ELIGIBILITY_EXPIRED: "The sender's eligibility has expired; renew it "
    "with a trusted KYC provider.",
    Restriction.SENDER_FROZEN: "The sender's wallet is frozen by a compliance agent.",
    Restriction.RECEIVER_NOT_REGISTERED: "The receiver has no eligibility record in the "
    "compliance registry; they must complete KYC first.",
    Restriction.RECEIVER_ELIGIBILITY_EXPIRED: "The receiver's eligibility has expired; they "
    "must renew it with a trusted KYC provider.",
    Restriction.RECEIVER_FROZEN: "The receiver's wallet is frozen by a compliance agent.",
    Restriction.RECEIVER_JURISDICTION_BLOCKED: "Investors resident in the receiver's "
    "jurisdiction may not hold these shares.",
    Restriction.RECEIVER_NOT_ACCREDITED: "The receiver's jurisdiction allows only accredited "
    "investors to hold these shares, and the receiver is not accredited.",
    Restriction.INSUFFICIENT_BALANCE: "The amount exceeds the sender's share balance.",
    Restriction.AMOUNT_FROZEN: "The amount exceeds the sender's unfrozen balance: part of it "
    "is frozen by a compliance agent.",
    Restriction.RECEIVER_REGION_UNKNOWN: "Parts of the receiver's country of residence are "
    "under embargo and their record names no region (ISO 3166-2); the KYC provider must "
    "record it.",
}
# Message for a code that is not defined (`messageForTransferRestriction(99)`).
UNKNOWN_MESSAGE = "Unknown restriction code."


def message(code: int) -> str:
    """The wallet-facing sentence for `code` (the on-chain function returns the same)."""
    try:
        return MESSAGES[Restriction(code)]
    except ValueError:
        return UNKNOWN_MESSAGE


def _check_definitions() -> None:
    missing = [r.name for r in Restriction if r not in MESSAGES]
    if missing:
        raise RuntimeError(f"restriction codes without a message: {missing}")
    too_long = [r.name for r, m in MESSAGES.items() if len(m.encode()) > MAX_MESSAGE_LENGTH]
    if too_long:
        raise RuntimeError(f"messages longer than {MAX_MESSAGE_LENGTH} bytes: {too_long}")
    if any('"' in m or "\\" in m for m in MESSAGES.values()):
        raise RuntimeError("messages must not contain double quotes or backslashes")


_check_definitions()


def vyper_module() -> str:
    """Source of `contracts/modules/restriction_codes.vy`, generated from this file."""
    lines = [
        "# pragma version ~=0.4.3",
        '"""',
        "@title Transfer Restriction Codes",
        "@custom:contract-name restriction_codes",
        "@license GNU Affero General Public License v3.0 only",
        "@notice ERC-1404 restriction codes and their messages. GENERATED from",
        "        `jurisdictions/codes.py` by `python -m jurisdictions.codes`: do not edit;",
        "        a test fails when this file and the Python definition differ.",
        '"""',
        "",
        "",
    ]
    for enum, what in ((TitleStatus, "title recognition"), (HolderPolicyCode, "holder policy")):
        prefix = "TITLE_" if enum is TitleStatus else "POLICY_"
        for member in enum:
            lines.append(f"# @dev Jurisdiction {what}: {member.name.lower()}.")
            lines.append(f"{prefix}{member.name}: constant(uint8) = {int(member)}")
    for r in Restriction:
        lines.append(f"# @dev {MESSAGES[r]}")
        lines.append(f"{r.name}: constant(uint8) = {int(r)}")
    lines += [
        "# @dev Longest message `_message` returns.",
        f"MAX_MESSAGE_LENGTH: constant(uint256) = {MAX_MESSAGE_LENGTH}",
        "",
        "",
        "@internal",
        "@pure",
        f"def _message(code: uint8) -> String[{MAX_MESSAGE_LENGTH}]:",
        '    """',
        "    @dev The wallet-facing sentence for `code`.",
        "    @param code A restriction code.",
        "    @return String The message (`Unknown restriction code.` if undefined).",
        '    """',
    ]
    for r in Restriction:
        lines.append(f"    if code == {r.name}:")
        lines.append(f'        return "{MESSAGES[r]}"')
    lines.append(f'    return "{UNKNOWN_MESSAGE}"')
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, do not write")
    args = parser.parse_args(argv)
    wanted = vyper_module()
    current = VYPER_MODULE.read_text() if VYPER_MODULE.exists() else ""
    if args.check:
        if current != wanted:
            print(f"{VYPER_MODULE} is out of date: run `python -m jurisdictions.codes`")
            return 1
        print(f"{VYPER_MODULE} matches jurisdictions/codes.py")
        return 0
    if current == wanted:
        print(f"{VYPER_MODULE} already up to date")
        return 0
    VYPER_MODULE.write_text(wanted)
    print(f"wrote {VYPER_MODULE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
