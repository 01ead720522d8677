"""Investors in the ComplianceRegistry: records written by a KYC provider, signed
attestations an investor submits themself, wallet freezes, and reading a record.

Each `plan_*` function returns a `Plan`: the transaction to send and, if the registry
would refuse it now, the refusal with the registry's own message, so nothing is sent
that would revert (the scripts' `--skip-checks` sends anyway, to show the contract's
own refusal). Input that cannot be used at all raises `BadInput`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from gpushares import reasons
from gpushares.client.chain import Plan, Refused
from gpushares.client.context import Client
from gpushares.client.suite import FREEZER_ROLE, KYC_PROVIDER_ROLE
from gpushares.client.units import BadInput, address
from jurisdictions import eligibility
from jurisdictions.rules import (
    SUBDIVISION_PATTERN,
    RuleBook,
    RulesError,
    decode_subdivision,
    encode_subdivision,
    load_rules,
)
from jurisdictions.rules import JurisdictionRules as Rule

DAY = 86_400
MAX_VALID_DAYS = 3_650


def residence(value: str, rules: RuleBook | None = None) -> Rule:
    """A jurisdiction from its alpha-2 (`US`) or ISO 3166-1 numeric code (`840`), or the
    country of an ISO 3166-2 region (`UA-30`)."""
    return residence_and_region(value, rules)[0]


def residence_and_region(value: str, rules: RuleBook | None = None) -> tuple[Rule, str | None]:
    """A residence as the registry records it: the country's rules and the ISO 3166-2
    region, from `US`, `840` or `UA-30` (a region is needed where the country's rules
    list regions of their own, `region_problem`)."""
    text = value.strip().upper()
    region = None
    if "-" in text:
        if not re.fullmatch(SUBDIVISION_PATTERN, text):
            raise BadInput(f"jurisdiction: {value!r} is neither a country (US, 840) nor an "
                           "ISO 3166-2 region (UA-30)")
        text, region = text[:2], text
    try:
        return (rules or load_rules()).resolve(text), region
    except RulesError as exc:
        raise BadInput(f"jurisdiction: {exc}") from exc


def region_problem(rule: Rule, region: str | None) -> str | None:
    """Why a resident of `rule`'s country recorded with `region` would be refused for
    lack of a region (None when the record is complete): the registry refuses a resident
    without one where the country's rules list regions (RECEIVER_REGION_UNKNOWN)."""
    if region is not None or not rule.subdivisions:
        return None
    listed = ", ".join(s.code for s in rule.subdivisions)
    return (f"{rule.name} lists regions with rules of their own ({listed}): give the "
            f"investor's ISO 3166-2 region of residence, e.g. --jurisdiction "
            f"{rule.alpha2}-<region>; without it every transfer to them is refused")


def _valid_days(days: int) -> int:
    if not 1 <= days <= MAX_VALID_DAYS:
        raise BadInput(f"valid days: {days} is not between 1 and {MAX_VALID_DAYS}")
    return days


def _missing_provider(client: Client, kyc: str) -> str | None:
    """Why `kyc` cannot act as a KYC provider, or None."""
    if client.registry().hasRole(KYC_PROVIDER_ROLE, kyc):
        return None
    return f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({kyc} lacks KYC_PROVIDER_ROLE)"


def plan_register(client: Client, kyc: str, investor: str, jurisdiction: Rule, *,
                  accredited: bool, valid_days: int = 365, region: str | None = None) -> Plan:
    """A KYC provider writes `investor`'s record (residence `jurisdiction`, ISO 3166-2
    `region` where one applies), valid `valid_days` from the chain's now."""
    who = address(investor, "investor")
    expires = client.chain.now() + _valid_days(valid_days) * DAY
    kind = "accredited" if accredited else "not accredited"
    where = region or jurisdiction.alpha2
    tx = client.registry().set_investor.tx(
        who, jurisdiction.numeric, accredited, expires, _region_code(jurisdiction, region),
        what=f"register {who}: {where} ({jurisdiction.holder_policy}), {kind}")
    return Plan.of(tx, refusal=_missing_provider(client, address(kyc, "KYC provider"))
                   or region_problem(jurisdiction, region))


def _region_code(rule: Rule, region: str | None) -> int:
    if region is None:
        return 0
    if region[:2] != rule.alpha2:
        raise BadInput(f"region {region} is not in {rule.name} ({rule.alpha2})")
    return encode_subdivision(region)


def attest(client: Client, kyc_key: bytes | str, investor: str, jurisdiction: Rule, *,
           accredited: bool, valid_days: int = 365, deadline_hours: int = 72,
           region: str | None = None) -> eligibility.SignedEligibility:
    """An EIP-712 eligibility attestation signed with the KYC provider's key, for the
    investor to submit from their own wallet before the deadline (chain time)."""
    from eth_account import Account

    attestation = attestation_for(client, Account.from_key(kyc_key).address, investor,
                                  jurisdiction, accredited=accredited, valid_days=valid_days,
                                  deadline_hours=deadline_hours, region=region)
    return eligibility.sign(attestation, kyc_key, client.chain.chain_id,
                            client.deployed.compliance_registry)


def attestation_for(client: Client, kyc: str, investor: str, jurisdiction: Rule, *,
                    accredited: bool, valid_days: int = 365, deadline_hours: int = 72,
                    region: str | None = None) -> eligibility.Eligibility:
    """The attestation KYC provider `kyc` would sign for `investor` now (chain time, the
    investor's next nonce), checked as `attest` checks it; a wallet signs its
    `eligibility.typed_data` (the web app's KYC desk)."""
    who = address(investor, "investor")
    missing = _missing_provider(client, address(kyc, "KYC provider"))
    if missing is not None:
        raise Refused(f"attest {who}", f"{missing}: the registry would refuse its signature")
    _region_code(jurisdiction, region)
    if (problem := region_problem(jurisdiction, region)) is not None:
        raise Refused(f"attest {who}", problem)
    if not 1 <= deadline_hours <= 24 * 30:
        raise BadInput(f"deadline hours: {deadline_hours} is not between 1 and 720")
    now = client.chain.now()
    return eligibility.Eligibility(
        investor=who, jurisdiction=jurisdiction.numeric, accredited=accredited,
        subdivision=region, expires_at=now + _valid_days(valid_days) * DAY,
        nonce=int(client.registry().eligibility_nonce(who)),
        deadline=now + deadline_hours * 3_600)


def plan_submit(client: Client, signed: eligibility.SignedEligibility) -> Plan:
    """An investor submits a signed attestation: checked as the registry checks it. An
    attestation for another registry or chain, or whose signature does not match, is
    refused outright (`Refused`): sending it could only fail."""
    a = signed.attestation
    what = f"submit eligibility of {a.investor} signed by {signed.signer}"
    registry = client.registry()
    if signed.chain_id != client.chain.chain_id or \
            signed.registry != client.deployed.compliance_registry:
        raise Refused(what, f"the attestation was signed for registry {signed.registry} on "
                            f"chain {signed.chain_id}, not {registry.address} on chain "
                            f"{client.chain.chain_id}")
    if eligibility.recover_signer(signed) != signed.signer:
        raise Refused(what, "the signature does not match the attestation")
    tx = registry.submit_eligibility.tx(a.as_tuple(), signed.signature_bytes(), what=what)
    nonce = int(registry.eligibility_nonce(a.investor))
    if not registry.hasRole(KYC_PROVIDER_ROLE, signed.signer):
        return Plan.of(tx, refusal=reasons.REGISTRY_ELIGIBILITY_ATTESTATION_NOT_SIGNED)
    if a.deadline < client.chain.now():  # the chain's clock decides
        return Plan.of(tx, refusal=reasons.REGISTRY_ELIGIBILITY_ATTESTATION_DEADLINE_PASSED
                       + "; ask the KYC provider for a new one")
    if a.nonce != nonce:
        return Plan.of(tx, refusal=reasons.REGISTRY_ELIGIBILITY_ATTESTATION_NONCE_NOT
                       + f" (this one is {a.nonce}, the next is {nonce})")
    return Plan.of(tx)


def plan_freeze(client: Client, agent: str, investor: str, *, frozen: bool = True) -> Plan:
    """Freeze (or unfreeze) a whole wallet across every share token (FREEZER_ROLE)."""
    who = address(investor, "investor")
    verb = "freeze" if frozen else "unfreeze"
    registry = client.registry()
    tx = registry.set_wallet_frozen.tx(who, frozen, what=f"{verb} wallet {who}")
    if registry.custodian(who):
        return Plan.of(tx, refusal=reasons.REGISTRY_CANNOT_FREEZE_CUSTODIAN)
    if bool(registry.is_frozen(who)) == frozen:
        return Plan.of(tx, refusal=reasons.REGISTRY_WALLET_ALREADY_FROZEN_STATE)
    if not registry.hasRole(FREEZER_ROLE, address(agent, "agent")):
        return Plan.of(tx, refusal=f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({agent} lacks "
                                   "the registry's FREEZER_ROLE)")
    return Plan.of(tx)


class InvestorRecord(BaseModel):
    """An investor's record as the registry holds it, judged at the chain's time."""

    model_config = ConfigDict(frozen=True)

    investor: str
    registered: bool
    jurisdiction: int
    accredited: bool
    expires_at: int
    frozen: bool
    expired: bool
    # The ISO 3166-2 region of residence (`UA-30`), or the registry's raw code when the
    # country is not in the rules data; None when none is recorded.
    region: str | None = None

    def describe(self) -> str:
        if not self.registered:
            return f"{self.investor}: no eligibility record" + (
                " (wallet frozen)" if self.frozen else "")
        where = f" ({self.region})" if self.region else ""
        return (f"{self.investor}: jurisdiction {self.jurisdiction}{where}, "
                f"{'accredited' if self.accredited else 'not accredited'}, "
                f"{'expired' if self.expired else 'valid'} until {self.expires_at}"
                f"{', FROZEN' if self.frozen else ''}")


def record(client: Client, investor: str) -> InvestorRecord:
    """`investor`'s record (registered or not)."""
    who = address(investor, "investor")
    return record_from(who, client.registry().investor(who), client.chain.now())


def record_from(who: str, r: Any, now: int) -> InvestorRecord:
    """The model of a `ComplianceRegistry.investor` record judged at chain time `now`
    (shared by `record` and the app's lens)."""
    return InvestorRecord(investor=who, registered=bool(r.registered),
                          jurisdiction=int(r.jurisdiction), accredited=bool(r.accredited),
                          expires_at=int(r.expires_at), frozen=bool(r.frozen),
                          expired=int(r.expires_at) <= now,
                          region=region_name(int(r.jurisdiction), int(r.subdivision)))


def region_name(jurisdiction: int, subdivision: int) -> str | None:
    """The ISO 3166-2 code of a recorded region (`UA-30`), None when there is none."""
    if subdivision == 0:
        return None
    try:
        return decode_subdivision(load_rules().resolve(jurisdiction).alpha2, subdivision)
    except RulesError:
        return f"{jurisdiction}/{subdivision:#x}"
