"""Shared builders for the OracleHub / FeedAdapter tests: signer keys, reports,
signatures (through `oracle.attest`, plus a fast path for the state machine), the
hub's exact refusal strings and a deployed hub with one feed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import boa
from eth_account import Account
from eth_keys import keys as eth_keys
from eth_utils import keccak

from gpushares import reasons
from gpushares.client.suite import deploy_oracle
from oracle import attest
from tests.contracts import deployers

ZERO = "0x0000000000000000000000000000000000000000"
ZERO32 = b"\0" * 32
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = SECP256K1_N // 2
ORACLE_ADMIN_ROLE = keccak(text="ORACLE_ADMIN_ROLE")
DEFAULT_ADMIN_ROLE = ZERO32
RING_SIZE = 256
MAX_SIGNERS = 31
USD = 10**8  # 8 decimals

FEED_ID = keccak(text="H100-SXM-80GB/USD-per-GPU-hour")
FEED_DESCRIPTION = "H100 SXM 80GB / USD per GPU-hour"
FEED_MIN = 10**7  # 0.10 USD
FEED_MAX = 100 * USD
FEED_MOVE_BPS = 2_000  # 20 % per update
FEED_HEARTBEAT = 3_600

# ------------------------------------------------------------------ refusal strings

MISSING_ROLE = reasons.ACCESS_CONTROL_MISSING_ROLE
ADMIN_ZERO = reasons.HUB_ADMIN_ZERO_ADDRESS
BLUEPRINT_NOT_CONTRACT = reasons.HUB_FEED_ADAPTER_BLUEPRINT_NOT
SET_EMPTY = reasons.HUB_SIGNER_SET_EMPTY
THRESHOLD_ZERO = reasons.HUB_THRESHOLD_ZERO
THRESHOLD_ABOVE = reasons.HUB_THRESHOLD_EXCEEDS_NUMBER_SIGNERS
SET_UNSORTED = (
    reasons.HUB_SIGNERS_SORTED_ASCENDING_WITHOUT
)
FEED_ID_ZERO = reasons.HUB_FEED_ID_ZERO
FEED_EXISTS = reasons.HUB_FEED_ALREADY_EXISTS
DESCRIPTION_EMPTY = reasons.HUB_FEED_DESCRIPTION_EMPTY
UNKNOWN_FEED = reasons.HUB_UNKNOWN_FEED
BOUNDS_INT112 = reasons.HUB_BOUNDS_FIT_INT112
MIN_ABOVE_MAX = reasons.HUB_MIN_VALUE_ABOVE_MAX
HEARTBEAT_ZERO = reasons.HUB_HEARTBEAT_ZERO
CONFIG_VERSION = (
    reasons.HUB_REPORT_NAMES_ANOTHER_CONFIG
)
DISABLED = reasons.HUB_UNKNOWN_DISABLED_FEED
FUTURE = reasons.HUB_REPORT_OBSERVED_FUTURE
STALE = reasons.HUB_REPORT_NOT_NEWER_FEED
OUT_OF_BOUNDS = reasons.HUB_VALUE_OUTSIDE_FEED_BOUNDS
NO_SIGNER_SET = reasons.HUB_NO_SIGNER_SET_INSTALLED
TOO_FEW = reasons.HUB_FEWER_SIGNATURES_THRESHOLD
MALLEABLE = reasons.HUB_SIGNATURE_UPPER_HALF_ORDER
INVALID_SIGNATURE = reasons.HUB_INVALID_SIGNATURE
UNORDERED = reasons.HUB_SIGNATURES_ORDERED_SIGNER_ADDRESS
UNAUTHORISED = (
    reasons.HUB_SIGNATURE_NOT_AUTHORISED_SIGNER
)
FORKED = reasons.HUB_LOG_ROOT_DIFFERS_CHECKPOINT
LOG_SIZE = reasons.HUB_LOG_SIZE_ABOVE_2
SPV_ZERO = reasons.HUB_SPV_TOKEN_ZERO_ADDRESS
PERIOD_EMPTY = reasons.HUB_UTILISATION_PERIOD_EMPTY
PERIOD_FUTURE = reasons.HUB_UTILISATION_PERIOD_ENDS_FUTURE
PERIOD_OVERLAP = (
    reasons.HUB_UTILISATION_PERIOD_OVERLAPS_LATEST
)
NO_GPUS = reasons.HUB_NO_GPUS_REPORTING
BPS_ABOVE = reasons.HUB_UTILISATION_ABOVE_10_000
NO_DATA = reasons.HUB_NO_DATA_PRESENT_FEED
ROUND_GONE = reasons.HUB_ROUND_NO_LONGER_KEPT
ROUND_NOT_YET = reasons.HUB_ROUND_NOT_YET


def missing_round(n: int, latest: int) -> str:
    """The hub's refusal of round `n` when its latest round is `latest`: not yet for 0 and
    for a round after the latest, no longer kept for one the ring overwrote."""
    return ROUND_NOT_YET if n == 0 or n > latest else ROUND_GONE


# ------------------------------------------------------------------ keys


@dataclass(frozen=True)
class Signer:
    """A deterministic signer key (derived from a label, so CI runs are reproducible)."""

    key: bytes
    address: str  # checksummed

    @property
    def number(self) -> int:
        return int(self.address, 16)

    @property
    def private_key(self) -> eth_keys.PrivateKey:
        return eth_keys.PrivateKey(self.key)


def make_signers(n: int, label: str = "oracle-signer") -> list[Signer]:
    """`n` signers ordered by address ascending (the order the hub wants)."""
    out = []
    for i in range(n):
        key = keccak(text=f"{label}-{i}")
        out.append(Signer(key=key, address=Account.from_key(key).address))
    return sorted(out, key=lambda s: s.number)


def addresses(signers: Iterable[Signer]) -> list[str]:
    return [s.address for s in sorted(signers, key=lambda s: s.number)]


# ------------------------------------------------------------------ reports


def hx(value: bytes) -> str:
    """bytes32 as the 0x-hex string `oracle.attest` models take."""
    return "0x" + bytes(value).hex()


def log_root(size: int, fork: str = "") -> bytes:
    """A stand-in RFC 6962 root for log size `size` (a different `fork` is a forked log)."""
    return keccak(text=f"log-root{fork}-{size}")


def price_report(
    value: int,
    observed_at: int,
    config_version: int,
    *,
    feed_id: bytes = FEED_ID,
    confidence: int = 50,
    methodology_version: int = 1,
    inputs_hash: bytes | None = None,
    log_size: int = 0,
    root: bytes | None = None,
) -> attest.PriceReport:
    return attest.PriceReport(
        feed_id=hx(feed_id),
        value=value,
        confidence=confidence,
        observed_at=observed_at,
        methodology_version=methodology_version,
        inputs_hash=hx(inputs_hash or keccak(text=f"inputs-{value}-{observed_at}")),
        log_size=log_size,
        log_root=hx(root if root is not None else log_root(log_size)),
        config_version=config_version,
    )


def utilisation_report(
    spv_token: str,
    period_start: int,
    period_end: int,
    config_version: int,
    *,
    gpu_count: int = 8,
    utilisation_bps: int = 9_000,
    rental_revenue: int = 12_345 * 10**6,
    inputs_hash: bytes | None = None,
    log_size: int = 0,
    root: bytes | None = None,
) -> attest.UtilisationReport:
    """A utilisation report; fields the pydantic model refuses (bps above 10,000) are
    built with `model_construct` so the hub's own refusal can be tested."""
    fields = dict(
        spv_token=spv_token,
        period_start=period_start,
        period_end=period_end,
        gpu_count=gpu_count,
        utilisation_bps=utilisation_bps,
        rental_revenue=rental_revenue,
        inputs_hash=hx(inputs_hash or keccak(text=f"util-{period_start}-{period_end}")),
        log_size=log_size,
        log_root=hx(root if root is not None else log_root(log_size)),
        config_version=config_version,
    )
    if utilisation_bps > 10_000:
        return attest.UtilisationReport.model_construct(**fields)
    return attest.UtilisationReport(**fields)


def domain(hub, chain_id: int | None = None) -> attest.Domain:
    return attest.Domain(
        chain_id=boa.env.evm.patch.chain_id if chain_id is None else chain_id,
        hub=str(hub.address if hasattr(hub, "address") else hub),
    )


# ------------------------------------------------------------------ signatures


def cosigned(report, dom: attest.Domain, signers: Iterable[Signer]) -> list[tuple[bytes, bytes]]:
    """The hub's `(r, vs)` signature structs, through `oracle.attest.cosign` (sorted)."""
    return attest.cosign(report, dom, [s.key for s in signers]).signature_structs()


def compact(signer: Signer, report_digest: bytes) -> tuple[bytes, bytes]:
    """One EIP-2098 `(r, vs)` signature, signed directly with eth-keys (no re-hashing:
    ~0.1 ms instead of ~0.5 ms; used by the state machine)."""
    sig = signer.private_key.sign_msg_hash(report_digest)
    assert sig.s <= HALF_N  # eth-keys signs canonically
    return sig.r.to_bytes(32, "big"), (sig.s | (sig.v << 255)).to_bytes(32, "big")


def fast_signatures(report_digest: bytes, signers: Sequence[Signer]) -> list[tuple[bytes, bytes]]:
    """Signatures in the given order (the caller decides whether it is sorted)."""
    return [compact(s, report_digest) for s in signers]


def naive_twin(signature: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    """The textbook malleable twin of a compact signature, s' = N - s with the recovery
    bit flipped, packed into a `vs` word as is. For all but a ~2**-127 fraction of
    signatures s' >= 2**255, so s' overflows into the recovery bit: EIP-2098 cannot
    represent the twin, and the hub reads a different (low) s."""
    r, vs = signature
    word = int.from_bytes(vs, "big")
    s, bit = word & (2**255 - 1), word >> 255
    return r, (((SECP256K1_N - s) | ((1 - bit) << 255)) % 2**256).to_bytes(32, "big")


def vs_word(s: int, recovery_bit: int) -> bytes:
    assert 0 <= s < 2**255 and recovery_bit in (0, 1)
    return (s | (recovery_bit << 255)).to_bytes(32, "big")


def recover_raw(report_digest: bytes, r: int, s: int, recovery_bit: int) -> str:
    """The address ecrecover returns for (r, s, v) over `report_digest` (any s < N)."""
    from eth_keys.datatypes import Signature as RawSignature

    sig = RawSignature(vrs=(recovery_bit, r, s))
    return sig.recover_public_key_from_msg_hash(report_digest).to_checksum_address()


# ------------------------------------------------------------------ deployment


def events(contract, name: str) -> list:
    """Events called `name` emitted during `contract`'s last call."""
    return [log for log in contract.get_logs() if type(log).__name__ == name]


def deploy_hub(admin: str, blueprint=None):
    """A fresh hub (no signer set, no feeds), deployed by the suite builder; with a given
    adapter `blueprint`, deployed directly on it."""
    if blueprint is None:
        _adapter_blueprint, hub = deploy_oracle(deployers.CHAIN, admin)
        return deployers.ORACLE_HUB.at(hub)
    with boa.env.prank(admin):
        return deployers.ORACLE_HUB.deploy(admin, blueprint.address)


def install(hub, admin: str, signers: Sequence[Signer], threshold: int) -> int:
    """`set_signers` as the admin; returns the new config version."""
    with boa.env.prank(admin):
        hub.set_signers(addresses(signers), threshold)
    return hub.config_version()


def add_feed(
    hub,
    admin: str,
    feed_id: bytes = FEED_ID,
    description: str = FEED_DESCRIPTION,
    min_answer: int = FEED_MIN,
    max_answer: int = FEED_MAX,
    max_move_bps: int = FEED_MOVE_BPS,
    heartbeat: int = FEED_HEARTBEAT,
):
    """Adds a feed as the admin; returns its `FeedAdapter`."""
    with boa.env.prank(admin):
        adapter = hub.add_feed(feed_id, description, min_answer, max_answer, max_move_bps,
                               heartbeat)
    return deployers.FEED_ADAPTER.at(adapter)


def now() -> int:
    return boa.env.evm.patch.timestamp


def submit_price(hub, report, signatures, sender: str | None = None):
    """Relay a report (anyone may: the default sender is boa's EOA, holding no role)."""
    with boa.env.prank(sender or boa.env.eoa):
        return hub.submit_price(report.as_tuple(), signatures)


def submit_utilisation(hub, report, signatures, sender: str | None = None):
    with boa.env.prank(sender or boa.env.eoa):
        return hub.submit_utilisation(report.as_tuple(), signatures)


def publish_price(hub, signers, sender: str, feed_id: bytes, value: int, last_observed: int,
                  config_version: int, observed_at: int | None = None) -> tuple[bool, int]:
    """Submit a 2-of-n signed price report for `feed_id` (observed now unless
    `observed_at` is given, after moving the clock one second past `last_observed` when
    needed, since the hub wants strictly newer data). Returns (accepted, observed_at)."""
    if observed_at is None:
        now = boa.env.evm.patch.timestamp
        if last_observed >= now:
            boa.env.time_travel(seconds=last_observed - now + 1)
        observed_at = boa.env.evm.patch.timestamp
    report = price_report(value, observed_at, config_version, feed_id=feed_id, log_size=0,
                          root=log_root(0))
    domain = attest.Domain(chain_id=boa.env.evm.patch.chain_id, hub=str(hub.address))
    sigs = fast_signatures(attest.digest(report, domain), signers[:2])
    with boa.env.prank(sender):
        accepted = hub.submit_price(report.as_tuple(), sigs)
    return accepted, observed_at
