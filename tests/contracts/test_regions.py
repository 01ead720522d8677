"""Sub-national rules on-chain (issue 22): ISO 3166-2 regions in the registry's subdivision
table, in investor records and attestations, and in GPU locations.

Ukraine (804) is listed `accredited_only` with Crimea (UA-43) embargoed, as the shipped
`UA.toml` has it (the country's title is `recognised` here so that GPUs can be placed
without an SPV's opinion; `test_an_override_covers_its_countrys_unclear_regions` covers
`unclear`). Each refusal the chain gives is also what `jurisdictions.engine` says.
"""

from __future__ import annotations

import boa
import pytest
from eth_account import Account
from eth_utils import keccak

from gpushares import reasons
from jurisdictions.codes import Restriction, message
from jurisdictions.eligibility import Eligibility, sign
from jurisdictions.engine import InvestorRecord, Party, check_gpu_location, receiver_decision
from jurisdictions.rules import RuleBook, decode_subdivision, encode_subdivision
from tests.contracts.helpers import (
    ACCREDITED_ONLY,
    ALLOWED,
    BLOCKED,
    FAR_FUTURE,
    KYC_PROVIDER_ROLE,
    RECOGNISED,
    SHARE,
    UNCLEAR,
    US,
    gpu,
    register,
)
from tests.jurisdictions.helpers import make_rule, subdivision_data

UA = 804
SANCTIONED = 4
CRIMEA, KYIV, DONETSK = (encode_subdivision(c) for c in ("UA-43", "UA-30", "UA-14"))
RULES_HASH = keccak(text="UA rules")
CRIMEA_HASH = keccak(text="UA-43 rules")
MISSING_ROLE = reasons.ACCESS_CONTROL_MISSING_ROLE

# The engine's view of the same table.
UA_RULES = RuleBook([
    make_rule("US", US),
    make_rule("UA", UA, holder_policy="accredited_only",
              subdivisions=[subdivision_data("UA-43")]),
])


def _events(contract, name):
    return [log for log in contract.get_logs() if type(log).__name__ == name]


@pytest.fixture
def held(token, operator, alice):
    """The conftest's token (8 GPUs in the US), alice holding 10 shares."""
    with boa.env.prank(operator):
        token.mint(alice, 10 * SHARE)
    return token


@pytest.fixture
def ukraine(registry, compliance_admin):
    """Ukraine listed (recognised, accredited only) with Crimea blocked and sanctioned."""
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(UA, RECOGNISED, ACCREDITED_ONLY, RULES_HASH)])
        registry.set_subdivisions([(UA, CRIMEA, SANCTIONED, BLOCKED, CRIMEA_HASH)])
    return registry


def test_encoding_round_trips() -> None:
    assert encode_subdivision("UA-43") == 0x3433 and encode_subdivision(" gb-eng ") == 0x454E47
    assert decode_subdivision("UA", 0x3433) == "UA-43" and decode_subdivision("UA", 0) is None
    with pytest.raises(ValueError, match="ISO 3166-2"):
        encode_subdivision("UA43")


# ---------------------------------------------------------------------------------
# The subdivision table
# ---------------------------------------------------------------------------------


def test_set_subdivisions_writes_rows_counts_and_logs(ukraine, compliance_admin):
    registry = ukraine
    assert tuple(registry.subdivision(UA, CRIMEA)) == (SANCTIONED, BLOCKED, CRIMEA_HASH)
    assert tuple(registry.subdivision(UA, KYIV)) == (0, 0, b"\0" * 32)
    assert list(registry.listed_subdivisions()) == [UA << 24 | CRIMEA]
    with boa.env.prank(compliance_admin):
        registry.set_subdivisions([(UA, DONETSK, RECOGNISED, BLOCKED, keccak(text="UA-14"))])
        (event,) = _events(registry, "SubdivisionSet")
        assert (event.jurisdiction, event.subdivision, event.title, event.policy) == (
            UA, DONETSK, RECOGNISED, BLOCKED)
        assert event.admin == compliance_admin
        # The country keeps its row, policy and rules hash when it is rewritten...
        registry.set_jurisdictions([(UA, RECOGNISED, ALLOWED, RULES_HASH)])
        # ...and cannot be removed while it has regions.
        with boa.reverts(reasons.REGISTRY_REMOVE_SUBDIVISIONS_FIRST):
            registry.set_jurisdictions([(UA, 0, 0, b"\0" * 32)])
        registry.set_subdivisions([(UA, CRIMEA, 0, 0, b"\0" * 32), (UA, DONETSK, 0, 0, b"\0" * 32)])
        assert list(registry.listed_subdivisions()) == []
        registry.set_jurisdictions([(UA, 0, 0, b"\0" * 32)])  # now it can
        assert tuple(registry.jurisdiction(UA)) == (0, 0, b"\0" * 32)


@pytest.mark.parametrize(("row", "reason"), [
    ((UA, KYIV, 0, 0, b"\0" * 32), reasons.REGISTRY_JURISDICTION_NOT_TABLE_NOTHING),
    ((4, KYIV, RECOGNISED, BLOCKED, RULES_HASH), reasons.REGISTRY_SUBDIVISION_COUNTRY_NOT_LISTED),
    ((UA, 0, RECOGNISED, BLOCKED, RULES_HASH), reasons.REGISTRY_SUBDIVISION_NOT_ISO_3166_2),
    ((UA, 0x61, RECOGNISED, BLOCKED, RULES_HASH), reasons.REGISTRY_SUBDIVISION_NOT_ISO_3166_2),
    ((UA, 0x340033, RECOGNISED, BLOCKED, RULES_HASH), reasons.REGISTRY_SUBDIVISION_NOT_ISO_3166_2),
    ((0, KYIV, RECOGNISED, BLOCKED, RULES_HASH), reasons.REGISTRY_JURISDICTION_NOT_ISO_3166),
    ((UA, KYIV, SANCTIONED, ALLOWED, RULES_HASH), reasons.REGISTRY_SANCTIONED_NEEDS_BLOCKED_POLICY),
    ((UA, KYIV, RECOGNISED, 0, RULES_HASH), reasons.REGISTRY_TITLE_POLICY_BOTH_SET),
    ((UA, KYIV, RECOGNISED, BLOCKED, b"\0" * 32), reasons.REGISTRY_LISTED_JURISDICTION_NEEDS_RULES),
    ((UA, KYIV, 5, BLOCKED, RULES_HASH), reasons.REGISTRY_UNKNOWN_TITLE_STATUS),
])
def test_bad_subdivision_rows_are_refused_and_change_nothing(ukraine, compliance_admin, row,
                                                             reason):
    registry = ukraine
    with boa.env.prank(compliance_admin), boa.reverts(reason):
        registry.set_subdivisions([(UA, DONETSK, RECOGNISED, BLOCKED, RULES_HASH), row])
    assert list(registry.listed_subdivisions()) == [UA << 24 | CRIMEA]
    assert registry.subdivision(UA, DONETSK)[0] == 0


def test_only_the_rules_admin_writes_subdivisions(ukraine, stranger):
    with boa.env.prank(stranger), boa.reverts(MISSING_ROLE):
        ukraine.set_subdivisions([(UA, CRIMEA, 0, 0, b"\0" * 32)])


# ---------------------------------------------------------------------------------
# Residents
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("region", "accredited", "code"), [
    (KYIV, True, Restriction.SUCCESS),
    (KYIV, False, Restriction.RECEIVER_NOT_ACCREDITED),
    (CRIMEA, True, Restriction.RECEIVER_JURISDICTION_BLOCKED),
    (0, True, Restriction.RECEIVER_REGION_UNKNOWN),
])
def test_residence_is_decided_by_the_region(ukraine, compliance_admin, operator, held, alice,
                                            region, accredited, code):
    registry = ukraine
    investor = boa.env.generate_address("ua-investor")
    with boa.env.prank(compliance_admin):
        registry.set_investor(investor, UA, accredited, FAR_FUTURE, region)
    record = registry.investor(investor)
    assert (record.jurisdiction, record.subdivision, record.registered) == (UA, region, True)
    assert registry.check_receiver(investor) == code
    assert held.detectTransferRestriction(alice, investor, SHARE) == code
    # The engine agrees, and explains a refusal with the region's citation.
    engine = receiver_decision(Party(address=investor, record=InvestorRecord(
        jurisdiction=UA, accredited=accredited, expires_at=FAR_FUTURE,
        subdivision=decode_subdivision("UA", region))), rules=UA_RULES, now=boa.env.timestamp)
    assert engine.code == code
    if code == Restriction.RECEIVER_JURISDICTION_BLOCKED:
        assert engine.jurisdictions == ("UA-43",)
        assert any("Embargo Order for UA-43" in c for c in engine.citations)
    with boa.env.prank(alice):
        if code == Restriction.SUCCESS:
            held.transfer(investor, SHARE)
            assert held.balanceOf(investor) == SHARE
        else:
            with boa.reverts(message(code)):
                held.transfer(investor, SHARE)
    # Income: an embargoed or unknown region stops a payment, accreditation does not.
    expected_income = Restriction.SUCCESS if code in (
        Restriction.SUCCESS, Restriction.RECEIVER_NOT_ACCREDITED) else code
    assert registry.income_code(investor) == expected_income


def test_a_crimea_resident_holding_shares_is_cut_off_when_the_region_is_listed(
        registry, compliance_admin, held, alice):
    """Listed without regions first: a resident recorded with a Crimean region holds
    shares like any Ukrainian; once Crimea's row lands, they can neither receive more nor
    be paid income, and a resident recorded without a region is refused too."""
    crimean, unknown = (boa.env.generate_address(n) for n in ("crimean", "no-region"))
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(UA, RECOGNISED, ACCREDITED_ONLY, RULES_HASH)])
        registry.set_investor(crimean, UA, True, FAR_FUTURE, CRIMEA)
        registry.set_investor(unknown, UA, True, FAR_FUTURE)
    assert registry.check_receiver(crimean) == registry.check_receiver(unknown) == 0
    with boa.env.prank(compliance_admin):
        registry.set_subdivisions([(UA, CRIMEA, SANCTIONED, BLOCKED, CRIMEA_HASH)])
    assert registry.check_receiver(crimean) == Restriction.RECEIVER_JURISDICTION_BLOCKED
    assert registry.income_code(crimean) == Restriction.RECEIVER_JURISDICTION_BLOCKED
    assert registry.check_receiver(unknown) == Restriction.RECEIVER_REGION_UNKNOWN
    assert held.detectTransferRestriction(alice, unknown, 1) == Restriction.RECEIVER_REGION_UNKNOWN


def test_an_attestation_carries_the_region_and_cannot_be_altered(ukraine, compliance_admin):
    registry = ukraine
    key = Account.create()
    with boa.env.prank(compliance_admin):
        registry.grantRole(KYC_PROVIDER_ROLE, key.address)
    investor = boa.env.generate_address("self-onboarding")
    attestation = Eligibility(investor=investor, jurisdiction=UA, subdivision="UA-30",
                              accredited=True, expires_at=FAR_FUTURE, nonce=0,
                              deadline=boa.env.timestamp + 3600)
    signature = sign(attestation, key.key, boa.env.evm.patch.chain_id,
                     registry.address).signature_bytes()
    # The same signature over Crimea (or no region) is not the provider's.
    for forged in (attestation.model_copy(update={"subdivision": "UA-43"}),
                   attestation.model_copy(update={"subdivision": None})):
        with boa.reverts(reasons.REGISTRY_ELIGIBILITY_ATTESTATION_NOT_SIGNED):
            registry.submit_eligibility(forged.as_tuple(), signature)
    registry.submit_eligibility(attestation.as_tuple(), signature)
    (event,) = _events(registry, "InvestorRegistered")
    assert (event.subdivision, event.self_submitted) == (KYIV, True)
    assert registry.investor(investor).subdivision == KYIV
    assert registry.check_receiver(investor) == Restriction.SUCCESS


def test_a_malformed_region_is_refused_in_a_record(ukraine, compliance_admin, stranger):
    with boa.env.prank(compliance_admin):
        for bad in (0x20, 0x613433, 0x340033, 0x3400):
            with boa.reverts(reasons.REGISTRY_SUBDIVISION_NOT_ISO_3166_2):
                ukraine.set_investor(stranger, UA, True, FAR_FUTURE, bad)
    assert not ukraine.investor(stranger).registered


# ---------------------------------------------------------------------------------
# GPU locations
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("region", "reason"), [
    (KYIV, None),
    (DONETSK, None),  # no row of its own: the country's rule applies
    (CRIMEA, reasons.REGISTRY_GPU_LOCATION_SANCTIONED),
    (0, reasons.REGISTRY_GPU_LOCATION_NEEDS_REGION),
])
def test_a_gpu_location_needs_its_region_and_the_region_decides(ukraine, operator, held,
                                                                region, reason):
    registry = ukraine
    entry = gpu(f"UA-GPU-{region}", location=UA, subdivision=region)
    engine = check_gpu_location(UA, None, rules=UA_RULES,
                                subdivision=decode_subdivision("UA", region))
    assert engine.allowed == (reason is None)
    with boa.env.prank(operator):
        if reason is not None:
            with boa.reverts(reason):
                held.add_gpus([entry])
            assert registry.asset_subdivision_gpus(held.address, UA << 24 | region) == 0
            return
        gpu_id = held.add_gpus([entry])
    assert held.gpus(gpu_id).subdivision == region
    assert list(registry.asset_subdivisions(held.address, UA)) == [region]
    assert registry.asset_subdivision_gpus(held.address, UA << 24 | region) == 1
    assert registry.asset_title_recognised(held.address)
    # Retiring it releases the region's lane.
    with boa.env.prank(operator):
        held.retire_gpu(gpu_id)
    assert list(registry.asset_subdivisions(held.address, UA)) == []
    assert registry.asset_location_gpus(held.address, UA) == 0


def test_a_gpu_registered_without_a_region_stops_transfers_once_regions_are_listed(
        registry, compliance_admin, operator, held, alice, bob):
    """Fail closed: a GPU placed in Ukraine before it had regional rows may sit in
    Crimea. Listing a region stops the held's transfers (redemption stays open) until
    the GPU is retired and registered again with its region."""
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(UA, RECOGNISED, ACCREDITED_ONLY, RULES_HASH)])
    with boa.env.prank(operator):
        gpu_id = held.add_gpus([gpu("UA-OLD", location=UA)])
    assert held.detectTransferRestriction(alice, bob, 1) == Restriction.SUCCESS
    with boa.env.prank(compliance_admin):
        registry.set_subdivisions([(UA, CRIMEA, SANCTIONED, BLOCKED, CRIMEA_HASH)])
    assert not registry.asset_title_recognised(held.address)
    assert held.detectTransferRestriction(alice, bob, 1) == Restriction.ASSET_TITLE_NOT_RECOGNISED
    assert held.detectTransferRestriction(alice, operator, 1) == Restriction.SUCCESS
    with boa.env.prank(operator):
        held.retire_gpu(gpu_id)
        held.add_gpus([gpu("UA-NEW", location=UA, subdivision=KYIV)])
    assert held.detectTransferRestriction(alice, bob, 1) == Restriction.SUCCESS


def test_a_region_listed_after_a_gpu_sits_there_stops_transfers(
        ukraine, compliance_admin, operator, held, alice, bob):
    with boa.env.prank(operator):
        held.add_gpus([gpu("UA-DON", location=UA, subdivision=DONETSK)])
    assert held.detectTransferRestriction(alice, bob, 1) == Restriction.SUCCESS
    with boa.env.prank(compliance_admin):
        ukraine.set_subdivisions([(UA, DONETSK, SANCTIONED, BLOCKED, keccak(text="UA-14"))])
    assert held.detectTransferRestriction(alice, bob, 1) == Restriction.ASSET_TITLE_NOT_RECOGNISED
    with boa.env.prank(alice), boa.reverts(message(Restriction.ASSET_TITLE_NOT_RECOGNISED)):
        held.transfer(bob, 1)


def test_an_override_covers_its_countrys_unclear_regions(registry, compliance_admin, operator,
                                                          held, alice, bob):
    """Ukraine `unclear` with the SPV's opinion on record: a GPU in an `unclear` region is
    covered by the country's override. Adding regional rows (which count in the country's
    table entry) leaves the override's epoch, so it stays in force."""
    opinion = keccak(text="UA opinion")
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(UA, UNCLEAR, ACCREDITED_ONLY, RULES_HASH)])
    with boa.env.prank(operator):
        registry.set_title_override(held.address, UA, opinion)
    with boa.env.prank(compliance_admin):
        registry.set_subdivisions([(UA, DONETSK, UNCLEAR, BLOCKED, keccak(text="UA-14")),
                                   (UA, CRIMEA, SANCTIONED, BLOCKED, CRIMEA_HASH)])
    assert registry.title_override_in_force(held.address, UA)
    with boa.env.prank(operator):
        held.add_gpus([gpu("UA-DON", location=UA, subdivision=DONETSK)])
    assert held.detectTransferRestriction(alice, bob, 1) == Restriction.SUCCESS
    # A country `recognised` has no override: an `unclear` region there is refused.
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(UA, RECOGNISED, ACCREDITED_ONLY, RULES_HASH)])
    assert held.detectTransferRestriction(alice, bob, 1) == Restriction.ASSET_TITLE_NOT_RECOGNISED
    with boa.env.prank(operator), boa.reverts(reasons.REGISTRY_TOKENIZED_TITLE_GPU_LOCATION):
        held.add_gpus([gpu("UA-DON-2", location=UA, subdivision=DONETSK)])


def test_a_token_may_use_eight_regions_of_one_country(registry, compliance_admin, operator,
                                                      held):
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(UA, RECOGNISED, ACCREDITED_ONLY, RULES_HASH)])
    regions = [encode_subdivision(f"UA-{n:02d}") for n in range(1, 10)]
    with boa.env.prank(operator):
        held.add_gpus([gpu(f"R-{i}", location=UA, subdivision=r)
                        for i, r in enumerate(regions[:8])])
        held.add_gpus([gpu("R-again", location=UA, subdivision=regions[0])])  # known region
        with boa.reverts(reasons.REGISTRY_SPV_GPUS_REGIONS):
            held.add_gpus([gpu("R-9", location=UA, subdivision=regions[8])])
    assert sorted(registry.asset_subdivisions(held.address, UA)) == sorted(regions[:8])
    assert registry.asset_location_gpus(held.address, UA) == 9


def test_register_without_a_region_keeps_the_one_argument_form(registry, compliance_admin):
    """Investor records of countries without regional rows need no region (the
    four-argument `set_investor` still works, and a region there is kept but unused)."""
    who = boa.env.generate_address("plain")
    register(registry, compliance_admin, who, jurisdiction=US)
    assert registry.investor(who).subdivision == 0
    assert registry.check_receiver(who) == Restriction.SUCCESS
