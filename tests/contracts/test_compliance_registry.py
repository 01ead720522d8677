"""ComplianceRegistry: roles, investor records, EIP-712 attestations, the jurisdiction
table, title overrides, asset locations and the shared transfer check."""

from __future__ import annotations

import boa
import pytest
from eth_account import Account
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from gpushares import reasons
from jurisdictions.codes import Restriction, message
from jurisdictions.eligibility import Eligibility, recover_signer, sign
from tests.contracts import deployers
from tests.contracts.conftest import create_token
from tests.contracts.helpers import (
    ACCREDITED_ONLY,
    ALLOWED,
    BLOCKED,
    CH,
    DE,
    DEFAULT_ADMIN_ROLE,
    FAR_FUTURE,
    FR,
    FREEZER_ROLE,
    KP,
    KYC_PROVIDER_ROLE,
    LI,
    NOT_RECOGNISED,
    OPERATOR_ROLE,
    RECOGNISED,
    RULES_ADMIN_ROLE,
    SHARE,
    TEST_TABLE,
    UNCLEAR,
    US,
    ZERO,
    gpu,
    make_lei,
    register,
    table_rows,
)

MISSING_ROLE = reasons.ACCESS_CONTROL_MISSING_ROLE
NOT_ISO = reasons.REGISTRY_JURISDICTION_NOT_ISO_3166
NOT_PROVIDER = reasons.REGISTRY_ELIGIBILITY_ATTESTATION_NOT_SIGNED
BAD_NONCE = (
    reasons.REGISTRY_ELIGIBILITY_ATTESTATION_NONCE_NOT
)
LATE = reasons.REGISTRY_ELIGIBILITY_ATTESTATION_DEADLINE_PASSED
NOT_FUTURE = reasons.REGISTRY_ELIGIBILITY_EXPIRY_NOT_FUTURE
NOT_UNCLEAR = (
    reasons.REGISTRY_TITLE_OVERRIDE_APPLIES_JURISDICTION
)
LOCATION_UNLISTED = (
    reasons.REGISTRY_GPU_LOCATION_NOT_JURISDICTION
)
LOCATION_NOT_RECOGNISED = (
    reasons.REGISTRY_GPU_LOCATION_DOES_NOT
)
LOCATION_UNCLEAR = (
    reasons.REGISTRY_TOKENIZED_TITLE_GPU_LOCATION
)
ZERO32 = b"\0" * 32
OPINION = keccak(text="legal-opinion-fr-2025")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _events(contract, name):
    return [log for log in contract.get_logs() if type(log).__name__ == name]


def _event(contract, name):
    """The last event called `name` emitted during `contract`'s last call."""
    return _events(contract, name)[-1]


# ---------------------------------------------------------------------------------
# Constructor and roles
# ---------------------------------------------------------------------------------


def test_constructor_grants_the_admin_every_role(compliance_admin, stranger):
    with boa.env.prank(stranger):  # deployed by someone else on the admin's behalf
        r = deployers.COMPLIANCE_REGISTRY.deploy(compliance_admin)
    for role in (DEFAULT_ADMIN_ROLE, KYC_PROVIDER_ROLE, FREEZER_ROLE, RULES_ADMIN_ROLE):
        assert r.hasRole(role, compliance_admin)
        assert not r.hasRole(role, stranger)
    assert r.KYC_PROVIDER_ROLE() == KYC_PROVIDER_ROLE
    assert r.FREEZER_ROLE() == FREEZER_ROLE
    assert r.RULES_ADMIN_ROLE() == RULES_ADMIN_ROLE
    assert r.SPV_OPERATOR_ROLE() == OPERATOR_ROLE
    assert r.MAX_ASSET_LOCATIONS() == 16 and r.MAX_JURISDICTION_BATCH() == 64
    assert r.ELIGIBILITY_TYPEHASH() == keccak(
        text="Eligibility(address investor,uint16 jurisdiction,uint24 subdivision,bool accredited,"
        "uint64 expiresAt,"
        "uint256 nonce,uint256 deadline)"
    )
    _fields, name, version, chain_id, contract, _salt, _ext = r.eip712Domain()
    assert (name, version, chain_id, contract) == (
        "GPU Shares Compliance", "1", boa.env.evm.patch.chain_id, r.address
    )
    assert r.listed_jurisdictions() == []


def test_constructor_refuses_the_zero_admin(compliance_admin):
    with boa.env.prank(compliance_admin):
        with boa.reverts(reasons.REGISTRY_ADMIN_ZERO_ADDRESS):
            deployers.COMPLIANCE_REGISTRY.deploy(ZERO)


PRIVILEGED = [
    ("set_investor", KYC_PROVIDER_ROLE, lambda who: (who, US, False, FAR_FUTURE)),
    ("remove_investor", KYC_PROVIDER_ROLE, lambda who: (who,)),
    ("set_wallet_frozen", FREEZER_ROLE, lambda who: (who, True)),
    ("set_jurisdictions", RULES_ADMIN_ROLE, lambda who: ([(999, RECOGNISED, ALLOWED, OPINION)],)),
]


@pytest.mark.parametrize(("fn", "role", "args"), PRIVILEGED, ids=[p[0] for p in PRIVILEGED])
def test_privileged_functions_need_their_own_role(registry, compliance_admin, stranger, alice,
                                                  fn, role, args):
    other_roles = {KYC_PROVIDER_ROLE, FREEZER_ROLE, RULES_ADMIN_ROLE} - {role}
    with boa.env.prank(stranger), boa.reverts(MISSING_ROLE):
        getattr(registry, fn)(*args(alice))
    with boa.env.prank(compliance_admin):  # any other role is not enough
        for other in other_roles:
            registry.grantRole(other, stranger)
    with boa.env.prank(stranger), boa.reverts(MISSING_ROLE):
        getattr(registry, fn)(*args(alice))
    with boa.env.prank(compliance_admin):
        registry.grantRole(role, stranger)
    with boa.env.prank(stranger):
        getattr(registry, fn)(*args(alice))


# ---------------------------------------------------------------------------------
# Investor records
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("investor", "jurisdiction", "expires_in", "reason"),
    [
        (ZERO, US, 100, reasons.REGISTRY_INVESTOR_ZERO_ADDRESS),
        (None, 0, 100, NOT_ISO),
        (None, 1000, 100, NOT_ISO),
        (None, 65_535, 100, NOT_ISO),
        (None, US, 0, NOT_FUTURE),
        (None, US, -1, NOT_FUTURE),
    ],
)
def test_set_investor_validation(registry, compliance_admin, stranger, investor, jurisdiction,
                                 expires_in, reason):
    with boa.env.prank(compliance_admin), boa.reverts(reason):
        registry.set_investor(investor or stranger, jurisdiction, False,
                              boa.env.timestamp + expires_in)
    assert not registry.investor(stranger).registered


def test_set_investor_boundaries_are_accepted(registry, compliance_admin, stranger):
    expiry = boa.env.timestamp + 1
    with boa.env.prank(compliance_admin):
        registry.set_investor(stranger, 999, True, expiry)
    assert tuple(registry.investor(stranger)) == (999, True, expiry, False, True, 0)
    with boa.env.prank(compliance_admin):
        registry.set_investor(stranger, 1, False, 2**64 - 1)
    assert tuple(registry.investor(stranger)) == (1, False, 2**64 - 1, False, True, 0)


def test_set_investor_records_and_logs(registry, compliance_admin, stranger):
    assert tuple(registry.investor(stranger)) == (0, False, 0, False, False, 0)
    expiry = boa.env.timestamp + 365 * 86_400
    with boa.env.prank(compliance_admin):
        registry.set_investor(stranger, CH, True, expiry)
        event = _event(registry, "InvestorRegistered")
    assert (event.investor, event.jurisdiction, event.accredited, event.expires_at) == (
        stranger, CH, True, expiry
    )
    assert event.provider == compliance_admin and event.self_submitted is False
    record = registry.investor(stranger)
    assert record.jurisdiction == CH and record.accredited and record.expires_at == expiry
    assert record.registered and not record.frozen
    # A rewrite replaces every field (the accredited bit is cleared, not OR-ed).
    with boa.env.prank(compliance_admin):
        registry.set_investor(stranger, LI, False, FAR_FUTURE)
    assert tuple(registry.investor(stranger)) == (LI, False, FAR_FUTURE, False, True, 0)


def test_remove_investor(registry, compliance_admin, alice, stranger):
    with boa.env.prank(compliance_admin):
        registry.remove_investor(alice)
        event = _event(registry, "InvestorRemoved")
        with boa.reverts(reasons.REGISTRY_INVESTOR_NOT_REGISTERED):
            registry.remove_investor(alice)
        with boa.reverts(reasons.REGISTRY_INVESTOR_NOT_REGISTERED):
            registry.remove_investor(stranger)
    assert (event.investor, event.provider) == (alice, compliance_admin)
    assert tuple(registry.investor(alice)) == (0, False, 0, False, False, 0)
    assert registry.check_receiver(alice) == Restriction.RECEIVER_NOT_REGISTERED


def test_set_wallet_frozen(registry, compliance_admin, alice):
    with boa.env.prank(compliance_admin):
        with boa.reverts(reasons.REGISTRY_WALLET_ALREADY_FROZEN_STATE):
            registry.set_wallet_frozen(alice, False)
        registry.set_wallet_frozen(alice, True)
        frozen = _event(registry, "WalletFrozen")
        with boa.reverts(reasons.REGISTRY_WALLET_ALREADY_FROZEN_STATE):
            registry.set_wallet_frozen(alice, True)
        with boa.reverts(reasons.REGISTRY_CANNOT_FREEZE_ZERO_ADDRESS):
            registry.set_wallet_frozen(ZERO, True)
    assert (frozen.investor, frozen.frozen, frozen.agent) == (alice, True, compliance_admin)
    assert registry.is_frozen(alice) and registry.investor(alice).frozen
    assert registry.investor(alice).registered  # the record itself is untouched
    assert registry.check_receiver(alice) == Restriction.RECEIVER_FROZEN
    with boa.env.prank(compliance_admin):
        registry.set_wallet_frozen(alice, False)
        unfrozen = _event(registry, "WalletFrozen")
    assert (unfrozen.investor, unfrozen.frozen) == (alice, False)
    assert not registry.is_frozen(alice)
    assert registry.check_receiver(alice) == Restriction.SUCCESS


def test_a_freeze_survives_rewrites_removal_and_re_registration(registry, compliance_admin,
                                                                 stranger):
    with boa.env.prank(compliance_admin):
        registry.set_wallet_frozen(stranger, True)  # no record yet: freezing still works
    assert tuple(registry.investor(stranger)) == (0, False, 0, True, False, 0)
    register(registry, compliance_admin, stranger, jurisdiction=CH, accredited=True)
    assert tuple(registry.investor(stranger)) == (CH, True, FAR_FUTURE, True, True, 0)
    register(registry, compliance_admin, stranger)  # a KYC update does not unfreeze
    assert registry.is_frozen(stranger)
    with boa.env.prank(compliance_admin):
        registry.remove_investor(stranger)
    assert tuple(registry.investor(stranger)) == (0, False, 0, True, False, 0)
    register(registry, compliance_admin, stranger)
    assert registry.is_frozen(stranger)
    assert registry.check_receiver(stranger) == Restriction.RECEIVER_FROZEN


# ---------------------------------------------------------------------------------
# Self-submitted eligibility attestations (EIP-712)
# ---------------------------------------------------------------------------------


@pytest.fixture
def provider(registry, compliance_admin):
    """A KYC provider signing key (eth_account), trusted by the registry."""
    account = Account.create()
    with boa.env.prank(compliance_admin):
        registry.grantRole(KYC_PROVIDER_ROLE, account.address)
    return account


def _attestation(investor, *, jurisdiction=CH, accredited=True, expires_at=FAR_FUTURE, nonce=0,
                 deadline=None):
    return Eligibility(
        investor=investor, jurisdiction=jurisdiction, accredited=accredited,
        expires_at=expires_at, nonce=nonce,
        deadline=boa.env.timestamp + 3600 if deadline is None else deadline,
    )


def _sign(attestation, key, registry_address, chain_id=None) -> bytes:
    chain_id = boa.env.evm.patch.chain_id if chain_id is None else chain_id
    return sign(attestation, key, chain_id, registry_address).signature_bytes()


def test_submit_eligibility_by_the_investor(registry, provider, stranger):
    att = _attestation(stranger)
    signed = sign(att, provider.key, boa.env.evm.patch.chain_id, registry.address)
    assert recover_signer(signed) == provider.address
    with boa.env.prank(stranger):
        registry.submit_eligibility(att.as_tuple(), signed.signature_bytes())
        event = _event(registry, "InvestorRegistered")
    assert (event.investor, event.jurisdiction, event.accredited, event.expires_at) == (
        stranger, CH, True, FAR_FUTURE
    )
    assert event.provider == provider.address and event.self_submitted is True
    assert tuple(registry.investor(stranger)) == (CH, True, FAR_FUTURE, False, True, 0)
    assert registry.eligibility_nonce(stranger) == 1
    assert registry.check_receiver(stranger) == Restriction.SUCCESS


def test_submit_eligibility_by_a_relayer_and_renewal(registry, provider, stranger, bob):
    att = _attestation(stranger, jurisdiction=US, accredited=False)
    with boa.env.prank(bob):  # anyone may relay the signed attestation
        registry.submit_eligibility(att.as_tuple(), _sign(att, provider.key, registry.address))
        event = _event(registry, "InvestorRegistered")
    assert (event.investor, event.provider, event.self_submitted) == (
        stranger, provider.address, True
    )
    assert tuple(registry.investor(stranger)) == (US, False, FAR_FUTURE, False, True, 0)
    assert not registry.investor(bob).accredited  # the relayer's own record is untouched
    renewal = _attestation(stranger, jurisdiction=LI, accredited=True, nonce=1)
    registry.submit_eligibility(renewal.as_tuple(), _sign(renewal, provider.key, registry.address))
    assert tuple(registry.investor(stranger)) == (LI, True, FAR_FUTURE, False, True, 0)
    assert registry.eligibility_nonce(stranger) == 2


def test_submit_eligibility_refuses_a_replay_and_a_skipped_nonce(registry, provider, stranger):
    att = _attestation(stranger)
    signature = _sign(att, provider.key, registry.address)
    registry.submit_eligibility(att.as_tuple(), signature)
    with boa.reverts(BAD_NONCE):
        registry.submit_eligibility(att.as_tuple(), signature)
    ahead = _attestation(stranger, nonce=5)
    with boa.reverts(BAD_NONCE):
        registry.submit_eligibility(ahead.as_tuple(), _sign(ahead, provider.key, registry.address))
    assert registry.eligibility_nonce(stranger) == 1


def test_submit_eligibility_refuses_a_signature_by_a_non_provider(registry, stranger):
    forger = Account.create()
    att = _attestation(stranger)
    with boa.env.prank(stranger), boa.reverts(NOT_PROVIDER):
        registry.submit_eligibility(att.as_tuple(), _sign(att, forger.key, registry.address))
    assert not registry.investor(stranger).registered
    assert registry.eligibility_nonce(stranger) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"jurisdiction": US},
        {"accredited": False},
        {"expires_at": FAR_FUTURE + 1},
        {"deadline": 2**200},
        {"investor": "0x" + "ab" * 20},
    ],
    ids=lambda change: next(iter(change)),
)
def test_submit_eligibility_refuses_an_altered_attestation(registry, provider, stranger, change):
    att = _attestation(stranger, jurisdiction=CH, accredited=True)
    signature = _sign(att, provider.key, registry.address)
    altered = att.model_copy(update=change)
    with boa.reverts(NOT_PROVIDER):
        registry.submit_eligibility(altered.as_tuple(), signature)
    assert not registry.investor(stranger).registered
    registry.submit_eligibility(att.as_tuple(), signature)  # the original still works
    assert registry.investor(stranger).jurisdiction == CH


def test_submit_eligibility_deadline(registry, provider, stranger):
    late = _attestation(stranger, deadline=boa.env.timestamp - 1)
    with boa.reverts(LATE):
        registry.submit_eligibility(late.as_tuple(), _sign(late, provider.key, registry.address))
    att = _attestation(stranger, deadline=boa.env.timestamp + 60)
    signature = _sign(att, provider.key, registry.address)
    boa.env.time_travel(seconds=61)
    with boa.reverts(LATE):
        registry.submit_eligibility(att.as_tuple(), signature)
    exact = _attestation(stranger, deadline=boa.env.timestamp)  # the deadline second is valid
    registry.submit_eligibility(exact.as_tuple(), _sign(exact, provider.key, registry.address))
    assert registry.investor(stranger).registered


def test_submit_eligibility_refuses_a_revoked_provider(registry, provider, compliance_admin,
                                                        stranger):
    att = _attestation(stranger)
    signature = _sign(att, provider.key, registry.address)
    with boa.env.prank(compliance_admin):
        registry.revokeRole(KYC_PROVIDER_ROLE, provider.address)
    with boa.reverts(NOT_PROVIDER):
        registry.submit_eligibility(att.as_tuple(), signature)
    assert not registry.investor(stranger).registered


def test_submit_eligibility_is_bound_to_the_registry_and_chain(registry, provider,
                                                                compliance_admin, stranger):
    with boa.env.prank(compliance_admin):
        other = deployers.COMPLIANCE_REGISTRY.deploy(compliance_admin)
        other.grantRole(KYC_PROVIDER_ROLE, provider.address)
    att = _attestation(stranger)
    for_other = _sign(att, provider.key, other.address)
    with boa.reverts(NOT_PROVIDER):
        registry.submit_eligibility(att.as_tuple(), for_other)
    chain_id = boa.env.evm.patch.chain_id
    for_fork = _sign(att, provider.key, registry.address, chain_id=chain_id + 1)
    with boa.reverts(NOT_PROVIDER):
        registry.submit_eligibility(att.as_tuple(), for_fork)
    here = _sign(att, provider.key, registry.address)
    boa.env.evm.patch.chain_id = chain_id + 1  # after a fork the cached domain is rebuilt
    with boa.reverts(NOT_PROVIDER):
        registry.submit_eligibility(att.as_tuple(), here)
    registry.submit_eligibility(att.as_tuple(), for_fork)
    boa.env.evm.patch.chain_id = chain_id
    other.submit_eligibility(att.as_tuple(), for_other)
    assert registry.investor(stranger).registered and other.investor(stranger).registered


def _split(signature: bytes) -> tuple[int, int, int]:
    return (int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"),
            signature[64])


def _join(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def test_submit_eligibility_refuses_malformed_signatures(registry, provider, stranger):
    att = _attestation(stranger)
    r, s, v = _split(_sign(att, provider.key, registry.address))
    high_s = _join(r, SECP256K1_N - s, 55 - v)  # the same signature's malleable twin
    with boa.reverts("ecdsa: invalid signature `s` value"):
        registry.submit_eligibility(att.as_tuple(), high_s)
    with boa.reverts("ecdsa: invalid signature `s` value"):
        registry.submit_eligibility(att.as_tuple(), _join(r, 2**256 - 1, v))
    with boa.reverts("ecdsa: invalid signature"):
        registry.submit_eligibility(att.as_tuple(), _join(0, s, v))
    with boa.reverts("ecdsa: invalid signature"):
        registry.submit_eligibility(att.as_tuple(), _join(r, s, 29))
    with boa.reverts(NOT_PROVIDER):  # a wrong (low) s recovers some other address
        registry.submit_eligibility(att.as_tuple(), _join(r, s ^ 1, v))
    with boa.reverts(NOT_PROVIDER):  # a truncated signature recovers nobody
        registry.submit_eligibility(att.as_tuple(), _join(r, s, v)[:40])
    assert registry.eligibility_nonce(stranger) == 0
    registry.submit_eligibility(att.as_tuple(), _join(r, s, v))
    assert registry.investor(stranger).registered


def test_submit_eligibility_accepts_the_compact_eip2098_form_once(registry, provider, stranger):
    """snekmate's ecdsa also takes the 64-byte (r, vs) form; the nonce still makes the
    attestation single-use across both encodings."""
    att = _attestation(stranger)
    full = _sign(att, provider.key, registry.address)
    r, s, v = _split(full)
    compact = r.to_bytes(32, "big") + (s | ((v - 27) << 255)).to_bytes(32, "big")
    registry.submit_eligibility(att.as_tuple(), compact)
    assert registry.investor(stranger).registered
    with boa.reverts(BAD_NONCE):
        registry.submit_eligibility(att.as_tuple(), full)


def test_submit_eligibility_refuses_an_expiry_in_the_past(registry, provider, stranger):
    for expires_at in (boa.env.timestamp - 1, boa.env.timestamp):
        att = _attestation(stranger, expires_at=expires_at)
        with boa.reverts(NOT_FUTURE):
            registry.submit_eligibility(att.as_tuple(), _sign(att, provider.key, registry.address))
    zero = _attestation(ZERO)
    with boa.reverts(reasons.REGISTRY_INVESTOR_ZERO_ADDRESS):
        registry.submit_eligibility(zero.as_tuple(), _sign(zero, provider.key, registry.address))
    assert registry.eligibility_nonce(stranger) == 0  # nothing was consumed


def test_a_frozen_investor_cannot_unfreeze_by_re_attesting(registry, provider, compliance_admin,
                                                           alice):
    with boa.env.prank(compliance_admin):
        registry.set_wallet_frozen(alice, True)
    att = _attestation(alice, jurisdiction=LI, accredited=True,
                       nonce=registry.eligibility_nonce(alice))
    with boa.env.prank(alice):
        registry.submit_eligibility(att.as_tuple(), _sign(att, provider.key, registry.address))
    assert tuple(registry.investor(alice)) == (LI, True, FAR_FUTURE, True, True, 0)
    assert registry.check_receiver(alice) == Restriction.RECEIVER_FROZEN


# ---------------------------------------------------------------------------------
# Jurisdiction table
# ---------------------------------------------------------------------------------


H = keccak(text="rules-file")


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([], reasons.REGISTRY_EMPTY_JURISDICTION_BATCH),
        ([(0, RECOGNISED, ALLOWED, H)], NOT_ISO),
        ([(1000, RECOGNISED, ALLOWED, H)], NOT_ISO),
        ([(1, 5, ALLOWED, H)], reasons.REGISTRY_UNKNOWN_TITLE_STATUS),
        ([(1, RECOGNISED, 4, H)], reasons.REGISTRY_UNKNOWN_HOLDER_POLICY),
        ([(1, RECOGNISED, 0, H)],
         reasons.REGISTRY_TITLE_POLICY_BOTH_SET),
        ([(1, 0, ALLOWED, ZERO32)],
         reasons.REGISTRY_TITLE_POLICY_BOTH_SET),
        ([(1, RECOGNISED, ALLOWED, ZERO32)],
         reasons.REGISTRY_LISTED_JURISDICTION_NEEDS_RULES),
        ([(US, 0, 0, H)],
         reasons.REGISTRY_LISTED_JURISDICTION_NEEDS_RULES),
        ([(1, RECOGNISED, ALLOWED, H), (2, RECOGNISED, ALLOWED, H), (0, RECOGNISED, ALLOWED, H)],
         NOT_ISO),
    ],
    ids=["empty", "code-0", "code-1000", "title", "policy", "policy-0", "title-0", "no-hash",
         "removal-hash", "atomic-batch"],
)
def test_set_jurisdictions_validation(registry, compliance_admin, rows, reason):
    before = sorted(registry.listed_jurisdictions())
    with boa.env.prank(compliance_admin), boa.reverts(reason):
        registry.set_jurisdictions(rows)
    assert sorted(registry.listed_jurisdictions()) == before
    assert registry.jurisdiction(1) == (0, 0, ZERO32) and registry.jurisdiction(2) == (0, 0, ZERO32)
    assert registry.jurisdiction(US)[:2] == TEST_TABLE[US]


def test_set_jurisdictions_add_update_remove_and_events(registry, compliance_admin):
    assert sorted(registry.listed_jurisdictions()) == sorted(TEST_TABLE)
    code, title, policy, digest = table_rows({CH: TEST_TABLE[CH]})[0]
    assert registry.jurisdiction(CH) == (title, policy, digest)
    assert registry.rules_hash(CH) == digest
    new_hash = keccak(text="rules-ch-v2")
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([
            (CH, RECOGNISED, ALLOWED, new_hash),  # update
            (999, UNCLEAR, BLOCKED, H),  # add
            (FR, 0, 0, ZERO32),  # remove
        ])
        events = _events(registry, "JurisdictionSet")
    assert [(e.jurisdiction, e.title, e.policy, e.rules_hash, e.previous_title,
             e.previous_policy) for e in events] == [
        (CH, RECOGNISED, ALLOWED, new_hash, RECOGNISED, ACCREDITED_ONLY),
        (999, UNCLEAR, BLOCKED, H, 0, 0),
        (FR, 0, 0, ZERO32, UNCLEAR, ALLOWED),
    ]
    assert all(e.admin == compliance_admin for e in events)
    assert registry.jurisdiction(CH) == (RECOGNISED, ALLOWED, new_hash)
    assert registry.jurisdiction(999) == (UNCLEAR, BLOCKED, H)
    assert registry.jurisdiction(FR) == (0, 0, ZERO32) and registry.rules_hash(FR) == ZERO32
    assert sorted(registry.listed_jurisdictions()) == sorted((set(TEST_TABLE) - {FR}) | {999})
    with boa.env.prank(compliance_admin), boa.reverts(
        reasons.REGISTRY_JURISDICTION_NOT_TABLE_NOTHING
    ):
        registry.set_jurisdictions([(FR, 0, 0, ZERO32)])  # already removed: no silent no-op


def test_removing_a_residence_row_blocks_its_residents(registry, compliance_admin, alice):
    assert registry.check_receiver(alice) == Restriction.SUCCESS
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(US, 0, 0, ZERO32)])
    assert registry.check_receiver(alice) == Restriction.RECEIVER_JURISDICTION_BLOCKED


POOL = [US, FR, 1, 4, 500, 999]
_row = st.tuples(
    st.sampled_from(POOL),
    st.one_of(st.just(None), st.tuples(st.integers(1, 3), st.integers(1, 3))),
)


@given(batches=st.lists(st.lists(_row, min_size=1, max_size=4), min_size=1, max_size=8))
def test_listed_jurisdictions_stay_consistent(registry, compliance_admin, batches):
    model = {code: rows for code, rows in TEST_TABLE.items()}
    with boa.env.anchor(), boa.env.prank(compliance_admin):
        for batch in batches:
            settings = []
            for code, value in batch:
                if value is None:
                    if code not in model:
                        continue  # removing an unlisted code is refused (tested above)
                    settings.append((code, 0, 0, ZERO32))
                    model.pop(code, None)
                else:
                    settings.append((code, *value, keccak(text=f"{code}-{value}")))
                    model[code] = value
            if settings:
                registry.set_jurisdictions(settings)
            listed = list(registry.listed_jurisdictions())
            assert len(listed) == len(set(listed))
            assert set(listed) == set(model)
        for code in POOL:
            title, policy, _hash = registry.jurisdiction(code)
            assert (title, policy) == model.get(code, (0, 0))


# ---------------------------------------------------------------------------------
# Title overrides
# ---------------------------------------------------------------------------------


def test_set_title_override(registry, token, operator):
    with boa.env.prank(operator):
        registry.set_title_override(token.address, FR, OPINION)
        event = _event(registry, "TitleOverrideSet")
        with boa.reverts(reasons.REGISTRY_TITLE_OVERRIDE_UNCHANGED):
            registry.set_title_override(token.address, FR, OPINION)
    assert (event.token, event.jurisdiction, event.legal_opinion_hash, event.operator) == (
        token.address, FR, OPINION, operator
    )
    assert registry.title_override(token.address, FR) == OPINION
    newer = keccak(text="legal-opinion-fr-2026")
    with boa.env.prank(operator):
        registry.set_title_override(token.address, FR, newer)  # replacing is allowed
        registry.set_title_override(token.address, FR, ZERO32)  # clearing
        cleared = _event(registry, "TitleOverrideSet")
        with boa.reverts(reasons.REGISTRY_TITLE_OVERRIDE_UNCHANGED):
            registry.set_title_override(token.address, FR, ZERO32)
    assert (cleared.jurisdiction, cleared.legal_opinion_hash) == (FR, ZERO32)
    assert registry.title_override(token.address, FR) == ZERO32


def test_set_title_override_only_by_the_tokens_operator(registry, token, operator,
                                                        compliance_admin, stranger, alice):
    for caller in (stranger, alice, compliance_admin):
        with boa.env.prank(caller), boa.reverts(
            reasons.REGISTRY_TOKEN_SPV_OPERATOR_RECORD
        ):
            registry.set_title_override(token.address, FR, OPINION)
    with boa.env.prank(operator):
        token.grantRole(OPERATOR_ROLE, stranger)  # a delegated operator may
    with boa.env.prank(stranger):
        registry.set_title_override(token.address, FR, OPINION)
    assert registry.title_override(token.address, FR) == OPINION


@pytest.mark.parametrize("code", [US, DE, CH, 999], ids=["recognised", "not-recognised",
                                                         "recognised-ch", "unlisted"])
def test_set_title_override_only_for_unclear_titles(registry, token, operator, code):
    with boa.env.prank(operator), boa.reverts(NOT_UNCLEAR):
        registry.set_title_override(token.address, code, OPINION)


@pytest.mark.parametrize("detour", [(NOT_RECOGNISED, ALLOWED, H), (0, 0, ZERO32)],
                         ids=["via-not-recognised", "via-removal"])
def test_an_override_does_not_survive_a_status_change(registry, token, operator,
                                                      compliance_admin, detour):
    """An opinion was given under one title status: once FR's status changes (or FR
    leaves the table), the old override never counts again, even if FR returns to
    `unclear`; the SPV must record it again."""
    with boa.env.prank(operator):
        registry.set_title_override(token.address, FR, OPINION)
        token.add_gpus([gpu("FR-1", location=FR)])
    assert registry.title_override_in_force(token.address, FR)
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(FR, *detour)])
    assert not registry.asset_title_recognised(token.address)
    assert not registry.title_override_in_force(token.address, FR)
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(FR, UNCLEAR, ALLOWED, H)])
    assert registry.title_override(token.address, FR) == OPINION  # kept for the record
    assert not registry.title_override_in_force(token.address, FR)
    assert not registry.asset_title_recognised(token.address)
    # A policy or rules-hash change that keeps the status `unclear` does not void it.
    with boa.env.prank(operator):
        registry.set_title_override(token.address, FR, OPINION)  # same opinion, re-recorded
    assert registry.asset_title_recognised(token.address)
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(FR, UNCLEAR, BLOCKED, keccak(text="fr-v3"))])
    assert registry.asset_title_recognised(token.address)


# ---------------------------------------------------------------------------------
# Asset locations (through the token)
# ---------------------------------------------------------------------------------


def test_add_gpus_where_title_is_not_recognised_is_refused(registry, token, operator):
    with boa.env.prank(operator):
        with boa.reverts(LOCATION_NOT_RECOGNISED):
            token.add_gpus([gpu("DE-1", location=DE)])
        with boa.reverts(LOCATION_NOT_RECOGNISED):  # the whole batch reverts
            token.add_gpus([gpu("US-9"), gpu("DE-1", location=DE)])
        with boa.reverts(LOCATION_UNLISTED):
            token.add_gpus([gpu("XX-1", location=999)])
    assert token.gpu_count() == 8
    assert list(registry.asset_locations(token.address)) == [US]
    assert registry.asset_location_gpus(token.address, US) == 8
    assert registry.asset_location_gpus(token.address, DE) == 0


def test_add_gpus_where_title_is_unclear_needs_an_override(registry, token, operator, factory,
                                                           stablecoin):
    with boa.env.prank(operator):
        with boa.reverts(LOCATION_UNCLEAR):
            token.add_gpus([gpu("FR-1", location=FR)])
        registry.set_title_override(token.address, FR, OPINION)
        token.add_gpus([gpu("FR-1", location=FR), gpu("FR-2", location=FR)])
        changes = _events(token, "AssetLocationChanged")
    assert [(e.token, e.jurisdiction, e.gpus) for e in changes] == [
        (token.address, FR, 1), (token.address, FR, 2)
    ]
    assert list(registry.asset_locations(token.address)) == [US, FR]
    assert registry.asset_location_gpus(token.address, FR) == 2
    assert registry.asset_title_recognised(token.address)
    # The override is per token: another SPV's token gets no benefit from it.
    other = create_token(factory, operator, stablecoin.address,
                         lei=make_lei("OTHERSPV0000000000"), symbol="OTH")
    assert registry.title_override(other.address, FR) == ZERO32
    with boa.env.prank(operator), boa.reverts(LOCATION_UNCLEAR):
        other.add_gpus([gpu("FR-9", location=FR)])


def test_asset_locations_track_add_and_retire(registry, token, operator):
    with boa.env.prank(operator):
        token.add_gpus([gpu("LI-1", location=LI), gpu("CH-1", location=CH),
                        gpu("LI-2", location=LI)])
    assert list(registry.asset_locations(token.address)) == [US, LI, CH]
    assert registry.asset_location_gpus(token.address, LI) == 2
    with boa.env.prank(operator):
        token.retire_gpu(9)
        change = _event(token, "AssetLocationChanged")
    assert (change.jurisdiction, change.gpus) == (LI, 1)
    assert list(registry.asset_locations(token.address)) == [US, LI, CH]
    with boa.env.prank(operator):
        token.impair_gpu(11)  # impaired GPUs still sit where they are
        token.retire_gpu(11)
    assert registry.asset_location_gpus(token.address, LI) == 0
    assert list(registry.asset_locations(token.address)) == [US, CH]
    with boa.env.prank(operator):
        registry.set_title_override(token.address, FR, OPINION)
        token.add_gpus([gpu("FR-1", location=FR)])
    # The freed lane is reused: the order is lane order, not strictly registration order.
    assert list(registry.asset_locations(token.address)) == [US, FR, CH]
    with boa.env.prank(operator):
        for gpu_id in range(1, 9):
            token.retire_gpu(gpu_id)
    assert list(registry.asset_locations(token.address)) == [FR, CH]
    assert registry.asset_location_gpus(token.address, US) == 0


def test_at_most_16_distinct_locations(registry, compliance_admin, token, operator):
    codes = list(range(1, 17))  # with US: 17 recognised jurisdictions
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(c, RECOGNISED, ALLOWED, H) for c in codes])
    with boa.env.prank(operator):
        token.add_gpus([gpu(f"L-{c}", location=c) for c in codes[:15]])
        assert len(registry.asset_locations(token.address)) == 16
        token.add_gpus([gpu("US-extra")])  # another GPU in a known location is fine
        with boa.reverts(reasons.REGISTRY_SPV_GPUS_MAY_SIT):
            token.add_gpus([gpu("L-16", location=16)])
        token.retire_gpu(9)  # frees location 1
        token.add_gpus([gpu("L-16", location=16)])
    locations = list(registry.asset_locations(token.address))
    assert len(locations) == 16 and 1 not in locations and locations[1] == 16


def test_direct_location_calls_only_touch_the_callers_own_entries(registry, token, stranger):
    with boa.env.prank(stranger):
        with boa.reverts(reasons.REGISTRY_NO_GPU_TOKEN_REGISTERED):
            registry.release_asset_location(US)  # not the token's 8 US GPUs
        registry.register_asset_location(US)
        registry.release_asset_location(US)
        with boa.reverts(reasons.REGISTRY_NO_GPU_TOKEN_REGISTERED):
            registry.release_asset_location(US)
        with boa.reverts(LOCATION_NOT_RECOGNISED):
            registry.register_asset_location(DE)
    assert registry.asset_location_gpus(token.address, US) == 8
    assert list(registry.asset_locations(stranger)) == []


# ---------------------------------------------------------------------------------
# The shared check: can_transfer, check_receiver, messages
# ---------------------------------------------------------------------------------


def test_can_transfer_equals_the_tokens_detect_transfer_restriction(
        registry, token, operator, compliance_admin, alice, bob, stranger):
    blocked, retail_ch, frozen = (boa.env.generate_address(n) for n in ("kp", "ch", "frozen"))
    register(registry, compliance_admin, blocked, jurisdiction=KP)
    register(registry, compliance_admin, retail_ch, jurisdiction=CH)
    register(registry, compliance_admin, frozen)
    with boa.env.prank(compliance_admin):
        registry.set_wallet_frozen(frozen, True)
    with boa.env.prank(operator):
        token.mint(alice, 10 * SHARE)
        token.mint(operator, 10 * SHARE)
        token.grantRole(FREEZER_ROLE, operator)
        token.setFrozenTokens(alice, 4 * SHARE)
    S = Restriction
    cases = [
        (alice, bob, 6 * SHARE, S.SUCCESS),
        (alice, bob, 7 * SHARE, S.AMOUNT_FROZEN),
        (alice, bob, 11 * SHARE, S.INSUFFICIENT_BALANCE),
        (alice, stranger, SHARE, S.RECEIVER_NOT_REGISTERED),
        (stranger, bob, 0, S.SENDER_NOT_REGISTERED),
        (alice, blocked, SHARE, S.RECEIVER_JURISDICTION_BLOCKED),
        (alice, retail_ch, SHARE, S.RECEIVER_NOT_ACCREDITED),
        (alice, frozen, SHARE, S.RECEIVER_FROZEN),
        (frozen, alice, 0, S.SENDER_FROZEN),
        (ZERO, bob, SHARE, S.SUCCESS),  # mint
        (ZERO, operator, SHARE, S.SUCCESS),  # a mint to the SPV is not a redemption
        (ZERO, stranger, SHARE, S.RECEIVER_NOT_REGISTERED),
        (operator, ZERO, SHARE, S.SUCCESS),  # burn
        (alice, operator, SHARE, S.SUCCESS),
    ]

    def check(expected_override=None):
        for sender, receiver, amount, code in cases:
            expected = code if expected_override is None else expected_override(
                sender, receiver, code)
            got = registry.can_transfer(token.address, sender, receiver, amount)
            assert got == token.detectTransferRestriction(sender, receiver, amount) == expected, (
                sender, receiver, amount)
            assert token.canTransfer(sender, receiver, amount) == (expected == 0)

    check()
    with boa.env.prank(compliance_admin):  # title stops: only redemption and burns pass
        registry.set_jurisdictions([(US, NOT_RECOGNISED, ALLOWED, H)])
    check(lambda s, r, c: c if r in (operator, ZERO) and s != ZERO
          else S.ASSET_TITLE_NOT_RECOGNISED)
    with boa.env.prank(operator):
        token.pause()
    check(lambda s, r, c: S.TOKEN_PAUSED)


def test_check_receiver(registry, compliance_admin, alice, stranger):
    accounts = {name: boa.env.generate_address(name) for name in
                ("kp", "ch-retail", "ch-accredited", "unlisted", "expiring", "frozen")}
    register(registry, compliance_admin, accounts["kp"], jurisdiction=KP, accredited=True)
    register(registry, compliance_admin, accounts["ch-retail"], jurisdiction=CH)
    register(registry, compliance_admin, accounts["ch-accredited"], jurisdiction=CH,
             accredited=True)
    register(registry, compliance_admin, accounts["unlisted"], jurisdiction=4)
    register(registry, compliance_admin, accounts["expiring"],
             expires_at=boa.env.timestamp + 100)
    register(registry, compliance_admin, accounts["frozen"])
    with boa.env.prank(compliance_admin):
        registry.set_wallet_frozen(accounts["frozen"], True)
    S = Restriction
    expected = {
        alice: S.SUCCESS,
        stranger: S.RECEIVER_NOT_REGISTERED,
        accounts["kp"]: S.RECEIVER_JURISDICTION_BLOCKED,
        accounts["ch-retail"]: S.RECEIVER_NOT_ACCREDITED,
        accounts["ch-accredited"]: S.SUCCESS,
        accounts["unlisted"]: S.RECEIVER_JURISDICTION_BLOCKED,
        accounts["expiring"]: S.SUCCESS,
        accounts["frozen"]: S.RECEIVER_FROZEN,
    }
    for account, code in expected.items():
        assert registry.check_receiver(account) == code
    boa.env.time_travel(seconds=100)  # the expiry second itself is already expired
    assert registry.check_receiver(accounts["expiring"]) == S.RECEIVER_ELIGIBILITY_EXPIRED


@pytest.mark.parametrize("code", [*range(13), 13, 200, 255])
def test_message_for_transfer_restriction_matches_python(registry, code):
    assert registry.messageForTransferRestriction(code) == message(code)


# ---------------------------------------------------------------------------------
# Outstanding attestations are voided by every provider write (audit finding H1)
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider_action", ["set_investor", "remove_investor", "cancel"])
def test_a_provider_write_voids_older_attestations(registry, provider, compliance_admin,
                                                   stranger, provider_action):
    """An attestation signed before the provider changed or removed the record can
    never bring the old record back."""
    with boa.env.prank(compliance_admin):
        registry.set_investor(stranger, US, False, FAR_FUTURE)  # nonce 0 -> 1
    assert registry.eligibility_nonce(stranger) == 1
    old = _attestation(stranger, jurisdiction=CH, accredited=True, nonce=1)
    signature = _sign(old, provider.key, registry.address)
    with boa.env.prank(compliance_admin):
        if provider_action == "set_investor":
            registry.set_investor(stranger, US, False, FAR_FUTURE)
        elif provider_action == "remove_investor":
            registry.remove_investor(stranger)
        else:
            registry.cancel_eligibility_attestations(stranger)
            event = _event(registry, "EligibilityAttestationsCancelled")
            assert (event.investor, event.next_nonce, event.provider) == (
                stranger, 2, compliance_admin
            )
    assert registry.eligibility_nonce(stranger) == 2
    before = tuple(registry.investor(stranger))
    with boa.env.prank(stranger), boa.reverts(
        reasons.REGISTRY_ELIGIBILITY_ATTESTATION_NONCE_NOT
    ):
        registry.submit_eligibility(old.as_tuple(), signature)
    assert tuple(registry.investor(stranger)) == before


def test_cancel_eligibility_attestations_needs_the_kyc_role(registry, stranger, alice):
    with boa.env.prank(stranger), boa.reverts(reasons.ACCESS_CONTROL_MISSING_ROLE):
        registry.cancel_eligibility_attestations(alice)
