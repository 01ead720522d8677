"""`jurisdictions.engine.decide` and `check_gpu_location`."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jurisdictions import codes
from jurisdictions.codes import Restriction
from jurisdictions.engine import (
    Decision,
    InvestorRecord,
    Party,
    ShareAsset,
    check_gpu_location,
    decide,
    default_rules,
    receiver_decision,
    title_recognised,
)
from jurisdictions.rules import HolderPolicy, RuleBook, TitleRecognition, load_rules
from tests.jurisdictions.helpers import (
    LEI_A,
    LEI_B,
    book,
    make_rule,
    override,
    subdivision_data,
)

NOW = 1_700_000_000
FUTURE = NOW + 365 * 86_400

# A small in-memory table (ISO user-assigned codes, so nothing is confused with real data).
OK = 900  # recognised, allowed
NOREC = 901  # not recognised, accredited only
UNCLEAR_OVR = 902  # unclear, allowed, override for LEI_A
UNCLEAR = 903  # unclear, blocked
ACCR = 904  # recognised, accredited only
SANCT = 905  # recognised, blocked, sanctioned
REGIONAL = 906  # recognised, allowed, region XG-01 blocked and sanctioned
UNLISTED = 999

RULES = book(
    make_rule("XA", OK),
    make_rule("XB", NOREC, title_recognition="not_recognised", holder_policy="accredited_only",
              citations=[{"reference": "XB Property Act"},
                         {"reference": "XB Sec Act", "url": "https://xb.example/sec"}]),
    make_rule("XC", UNCLEAR_OVR, title_recognition="unclear", holder_policy="allowed",
              citations=[], title_overrides=[override(LEI_A)]),
    make_rule("XD", UNCLEAR, title_recognition="unclear", holder_policy="blocked",
              citations=[{"reference": "XD Act"}]),
    make_rule("XE", ACCR, holder_policy="accredited_only"),
    make_rule("XF", SANCT, holder_policy="blocked", sanctioned=True,
              citations=[{"reference": "XF Sanctions Order"}]),
    make_rule("XG", REGIONAL, subdivisions=[subdivision_data("XG-01")]),
)


def record(jurisdiction: int = OK, accredited: bool = False,
           expires_at: int = FUTURE) -> InvestorRecord:
    return InvestorRecord(jurisdiction=jurisdiction, accredited=accredited, expires_at=expires_at)


def party(address: str = "0xA", *, registered: bool = True, jurisdiction: int = OK,
          accredited: bool = False, expires_at: int = FUTURE, frozen: bool = False,
          balance: int = 1_000, frozen_tokens: int = 0, is_spv: bool = False) -> Party:
    return Party(
        address=address,
        record=record(jurisdiction, accredited, expires_at) if registered else None,
        wallet_frozen=frozen,
        balance=balance,
        frozen_tokens=frozen_tokens,
        is_spv=is_spv,
    )


def asset(*locations: int, lei: str | None = LEI_A, paused: bool = False) -> ShareAsset:
    return ShareAsset(spv_lei=lei, locations=frozenset(locations or (OK,)), paused=paused)


def run(a: ShareAsset, s: Party | None, r: Party | None, amount: int = 10,
        **kw: Any) -> Decision:
    return decide(a, s, r, amount, rules=kw.pop("rules", RULES), now=kw.pop("now", NOW))


SENDER = party("0xS")
RECEIVER = party("0xR")


# --- one test per code --------------------------------------------------------------------------


def test_success() -> None:
    d = run(asset(), SENDER, RECEIVER)
    assert d.allowed and d.code is Restriction.SUCCESS
    assert d.message == codes.message(0)


CASES: dict[Restriction, tuple[ShareAsset, Party | None, Party | None, int]] = {
    Restriction.TOKEN_PAUSED: (asset(paused=True), SENDER, RECEIVER, 10),
    Restriction.ASSET_TITLE_NOT_RECOGNISED: (asset(NOREC), SENDER, RECEIVER, 10),
    Restriction.SENDER_NOT_REGISTERED: (asset(), party(registered=False), RECEIVER, 10),
    Restriction.SENDER_ELIGIBILITY_EXPIRED: (asset(), party(expires_at=NOW - 1), RECEIVER, 10),
    Restriction.SENDER_FROZEN: (asset(), party(frozen=True), RECEIVER, 10),
    Restriction.RECEIVER_NOT_REGISTERED: (asset(), SENDER, party(registered=False), 10),
    Restriction.RECEIVER_ELIGIBILITY_EXPIRED: (asset(), SENDER, party(expires_at=NOW - 1), 10),
    Restriction.RECEIVER_FROZEN: (asset(), SENDER, party(frozen=True), 10),
    Restriction.RECEIVER_JURISDICTION_BLOCKED: (asset(), SENDER, party(jurisdiction=UNCLEAR),
                                                10),
    Restriction.RECEIVER_NOT_ACCREDITED: (asset(), SENDER, party(jurisdiction=ACCR), 10),
    Restriction.RECEIVER_REGION_UNKNOWN: (asset(), SENDER, party(jurisdiction=REGIONAL), 10),
    Restriction.INSUFFICIENT_BALANCE: (asset(), party(balance=9), RECEIVER, 10),
    Restriction.AMOUNT_FROZEN: (asset(), party(balance=10, frozen_tokens=1), RECEIVER, 10),
}


def test_cases_cover_every_refusal() -> None:
    assert set(CASES) == set(Restriction) - {Restriction.SUCCESS}


@pytest.mark.parametrize("code", list(CASES), ids=lambda c: c.name)
def test_each_code(code: Restriction) -> None:
    a, s, r, amount = CASES[code]
    d = run(a, s, r, amount)
    assert d.code is code
    assert not d.allowed
    assert d.message.startswith(codes.message(code))


def test_sanctioned_receiver_blocked_with_citation() -> None:
    d = run(asset(), SENDER, party(jurisdiction=SANCT))
    assert d.code is Restriction.RECEIVER_JURISDICTION_BLOCKED
    assert d.jurisdictions == ("XF",)
    assert d.citations == ("XF Sanctions Order",)


def test_unlisted_receiver_jurisdiction_is_blocked() -> None:
    d = run(asset(), SENDER, party(jurisdiction=UNLISTED))
    assert d.code is Restriction.RECEIVER_JURISDICTION_BLOCKED
    assert d.citations == () and d.jurisdictions == ()
    assert str(UNLISTED) in d.message


def test_accredited_receiver_passes_accredited_only() -> None:
    assert run(asset(), SENDER, party(jurisdiction=ACCR, accredited=True)).allowed
    assert run(asset(), SENDER, party(jurisdiction=NOREC, accredited=True)).allowed is True


def test_accredited_receiver_still_blocked() -> None:
    d = run(asset(), SENDER, party(jurisdiction=SANCT, accredited=True))
    assert d.code is Restriction.RECEIVER_JURISDICTION_BLOCKED


# --- order of the checks ------------------------------------------------------------------------


BROKEN_SENDER = party("0xS", registered=False, balance=0)
BROKEN_RECEIVER = party("0xR", registered=False)


def test_paused_beats_everything() -> None:
    d = run(asset(NOREC, UNLISTED, paused=True), BROKEN_SENDER, BROKEN_RECEIVER, 10**6)
    assert d.code is Restriction.TOKEN_PAUSED
    assert run(asset(paused=True), None, RECEIVER).code is Restriction.TOKEN_PAUSED
    assert run(asset(paused=True), SENDER, None).code is Restriction.TOKEN_PAUSED


def test_title_beats_sender_checks() -> None:
    d = run(asset(NOREC), BROKEN_SENDER, BROKEN_RECEIVER, 10**6)
    assert d.code is Restriction.ASSET_TITLE_NOT_RECOGNISED


def test_sender_checks_beat_receiver_checks() -> None:
    for s, code in [
        (party(registered=False), Restriction.SENDER_NOT_REGISTERED),
        (party(expires_at=NOW), Restriction.SENDER_ELIGIBILITY_EXPIRED),
        (party(frozen=True), Restriction.SENDER_FROZEN),
    ]:
        assert run(asset(), s, BROKEN_RECEIVER).code is code


def test_sender_check_order() -> None:
    # expired beats frozen; unregistered beats all.
    assert run(asset(), party(expires_at=NOW, frozen=True), RECEIVER).code is (
        Restriction.SENDER_ELIGIBILITY_EXPIRED
    )


def test_receiver_check_order() -> None:
    r = party(expires_at=NOW, frozen=True, jurisdiction=SANCT)
    assert run(asset(), SENDER, r).code is Restriction.RECEIVER_ELIGIBILITY_EXPIRED
    r = party(frozen=True, jurisdiction=SANCT)
    assert run(asset(), SENDER, r).code is Restriction.RECEIVER_FROZEN


def test_receiver_checks_beat_balance() -> None:
    poor = party(balance=0, frozen_tokens=5)
    for r, code in [
        (party(registered=False), Restriction.RECEIVER_NOT_REGISTERED),
        (party(expires_at=NOW), Restriction.RECEIVER_ELIGIBILITY_EXPIRED),
        (party(frozen=True), Restriction.RECEIVER_FROZEN),
        (party(jurisdiction=SANCT), Restriction.RECEIVER_JURISDICTION_BLOCKED),
        (party(jurisdiction=ACCR), Restriction.RECEIVER_NOT_ACCREDITED),
    ]:
        assert run(asset(), poor, r, 10).code is code


def test_balance_beats_frozen() -> None:
    s = party(balance=5, frozen_tokens=5)
    assert run(asset(), s, RECEIVER, 6).code is Restriction.INSUFFICIENT_BALANCE


# --- mint, redemption, burn ---------------------------------------------------------------------


def test_mint_never_exempt_from_title() -> None:
    spv = party("0xSPV", is_spv=True)
    assert run(asset(NOREC), None, spv).code is Restriction.ASSET_TITLE_NOT_RECOGNISED
    assert run(asset(NOREC), None, RECEIVER).code is Restriction.ASSET_TITLE_NOT_RECOGNISED


def test_mint_skips_sender_checks() -> None:
    assert run(asset(), None, RECEIVER, 10**30).allowed
    assert run(asset(), None, party(registered=False)).code is (
        Restriction.RECEIVER_NOT_REGISTERED
    )


def test_redemption_exempt_from_title_only() -> None:
    spv = party("0xSPV", is_spv=True)
    assert run(asset(NOREC, UNLISTED), SENDER, spv).allowed
    # ... but not from sender, receiver or balance checks
    unregistered_spv = party("0xSPV", is_spv=True, registered=False)
    assert run(asset(NOREC), SENDER, unregistered_spv).code is (
        Restriction.RECEIVER_NOT_REGISTERED
    )
    blocked_spv = party("0xSPV", is_spv=True, jurisdiction=SANCT)
    assert run(asset(NOREC), SENDER, blocked_spv).code is (
        Restriction.RECEIVER_JURISDICTION_BLOCKED
    )
    assert run(asset(NOREC), party(frozen=True), spv).code is Restriction.SENDER_FROZEN
    assert run(asset(NOREC), party(balance=1), spv, 2).code is Restriction.INSUFFICIENT_BALANCE


def test_sender_being_spv_is_not_redemption() -> None:
    spv = party("0xSPV", is_spv=True)
    assert run(asset(NOREC), spv, RECEIVER).code is Restriction.ASSET_TITLE_NOT_RECOGNISED


def test_burn_skips_title_and_receiver() -> None:
    assert run(asset(NOREC, UNLISTED), SENDER, None).allowed
    assert run(asset(NOREC), party(registered=False), None).code is (
        Restriction.SENDER_NOT_REGISTERED
    )
    assert run(asset(NOREC), party(balance=1), None, 2).code is Restriction.INSUFFICIENT_BALANCE
    assert run(asset(), party(balance=2, frozen_tokens=1), None, 2).code is (
        Restriction.AMOUNT_FROZEN
    )


# --- title recognition and overrides -------------------------------------------------------------


def test_unclear_with_override_for_asset_lei_is_recognised() -> None:
    assert run(asset(UNCLEAR_OVR, lei=LEI_A), SENDER, RECEIVER).allowed
    assert title_recognised(RULES, UNCLEAR_OVR, LEI_A)


@pytest.mark.parametrize("lei", [LEI_B, None])
def test_unclear_override_for_other_lei_is_not(lei: str | None) -> None:
    d = run(asset(UNCLEAR_OVR, lei=lei), SENDER, RECEIVER)
    assert d.code is Restriction.ASSET_TITLE_NOT_RECOGNISED
    assert d.jurisdictions == ("XC",)
    assert not title_recognised(RULES, UNCLEAR_OVR, lei)


def test_overridden_locations_from_the_chain_take_precedence_over_the_data() -> None:
    """An engine fed the chain's overrides decides as an unsynced registry does."""
    # In the data but not (yet) on-chain: refused, as the chain refuses.
    assert not title_recognised(RULES, UNCLEAR_OVR, LEI_A, frozenset())
    # On-chain but not in the data: recognised, as the chain allows.
    assert title_recognised(RULES, UNCLEAR, LEI_B, frozenset({UNCLEAR}))
    # Never for a location that is not `unclear`.
    assert not title_recognised(RULES, UNLISTED, LEI_A, frozenset({UNLISTED}))
    chain_view = asset(UNCLEAR).model_copy(update={"overridden_locations": frozenset({UNCLEAR})})
    assert run(chain_view, SENDER, RECEIVER).allowed


def test_unclear_without_override_is_not_recognised() -> None:
    d = run(asset(UNCLEAR), SENDER, RECEIVER)
    assert d.code is Restriction.ASSET_TITLE_NOT_RECOGNISED
    assert "XD (unclear)" in d.message


def test_unlisted_location_is_not_recognised() -> None:
    d = run(asset(OK, UNLISTED), SENDER, RECEIVER)
    assert d.code is Restriction.ASSET_TITLE_NOT_RECOGNISED
    assert d.jurisdictions == () and d.citations == ()
    assert f"No rules for: {UNLISTED}." in d.message
    assert not title_recognised(RULES, UNLISTED, LEI_A)


def test_one_blocking_location_among_many_refuses() -> None:
    d = run(asset(OK, ACCR, UNCLEAR_OVR, NOREC), SENDER, RECEIVER)
    assert d.code is Restriction.ASSET_TITLE_NOT_RECOGNISED
    assert d.jurisdictions == ("XB",)


def test_asset_without_locations_is_allowed() -> None:
    a = ShareAsset(spv_lei=None, locations=frozenset())
    assert run(a, SENDER, RECEIVER).allowed


# --- boundaries --------------------------------------------------------------------------------


def test_expiry_boundary() -> None:
    assert run(asset(), party(expires_at=NOW), RECEIVER).code is (
        Restriction.SENDER_ELIGIBILITY_EXPIRED
    )
    assert run(asset(), SENDER, party(expires_at=NOW)).code is (
        Restriction.RECEIVER_ELIGIBILITY_EXPIRED
    )
    assert run(asset(), party(expires_at=NOW + 1), party(expires_at=NOW + 1)).allowed


def test_frozen_tokens_above_balance_leaves_nothing() -> None:
    s = party(balance=100, frozen_tokens=150)
    assert run(asset(), s, RECEIVER, 1).code is Restriction.AMOUNT_FROZEN
    assert run(asset(), s, RECEIVER, 100).code is Restriction.AMOUNT_FROZEN
    assert run(asset(), s, RECEIVER, 101).code is Restriction.INSUFFICIENT_BALANCE
    assert run(asset(), s, RECEIVER, 0).allowed


def test_unfrozen_balance_boundary() -> None:
    s = party(balance=100, frozen_tokens=30)
    assert run(asset(), s, RECEIVER, 70).allowed
    assert run(asset(), s, RECEIVER, 71).code is Restriction.AMOUNT_FROZEN
    assert run(asset(), party(balance=100), RECEIVER, 100).allowed


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="amount"):
        run(asset(), SENDER, RECEIVER, -1)
    with pytest.raises(ValueError, match="sender, a receiver"):
        run(asset(), None, None)


def test_receiver_decision_alone() -> None:
    assert receiver_decision(RECEIVER, rules=RULES, now=NOW).allowed
    assert receiver_decision(party(jurisdiction=ACCR), rules=RULES, now=NOW).code is (
        Restriction.RECEIVER_NOT_ACCREDITED
    )


# --- with the shipped rules: citations -----------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> RuleBook:
    return load_rules()


def test_default_rules_are_the_shipped_rules(shipped: RuleBook) -> None:
    assert default_rules() is default_rules()
    assert {k: v.rules_hash() for k, v in default_rules().items()} == {
        k: v.rules_hash() for k, v in shipped.items()
    }


def test_de_title_refusal_carries_de_citations(shipped: RuleBook) -> None:
    de = shipped.by_alpha2("DE")
    registered = party(jurisdiction=276, accredited=True)
    d = decide(ShareAsset(locations=frozenset({276})), registered, registered, 1, now=NOW)
    assert d.code is Restriction.ASSET_TITLE_NOT_RECOGNISED
    assert d.jurisdictions == ("DE",)
    assert d.citations == tuple(str(c) for c in de.citations)
    assert "DE (not_recognised)" in d.message


def test_citations_deduplicated_across_jurisdictions(shipped: RuleBook) -> None:
    registered = party(jurisdiction=276, accredited=True)
    a = ShareAsset(locations=frozenset({528, 276}))
    d = decide(a, registered, registered, 1, rules=shipped, now=NOW)
    assert d.jurisdictions == ("DE", "NL")  # sorted by numeric code
    expected = [str(c) for code in (276, 528) for c in shipped[code].citations]
    assert d.citations == tuple(dict.fromkeys(expected))
    assert len(d.citations) == len(set(d.citations))


def test_check_gpu_location_de(shipped: RuleBook) -> None:
    d = check_gpu_location(276)
    assert d.code is Restriction.ASSET_TITLE_NOT_RECOGNISED
    assert d.jurisdictions == ("DE",)
    assert d.citations == tuple(str(c) for c in shipped[276].citations)
    assert "Germany (DE)" in d.message


def test_check_gpu_location_unclear_without_override() -> None:
    d = check_gpu_location(UNCLEAR_OVR, LEI_B, rules=RULES)
    assert d.code is Restriction.ASSET_TITLE_NOT_RECOGNISED
    assert "no legal-opinion override" in d.message
    assert d.jurisdictions == ("XC",)
    d = check_gpu_location(UNCLEAR_OVR, None, rules=RULES)
    assert d.code is Restriction.ASSET_TITLE_NOT_RECOGNISED


def test_check_gpu_location_unclear_with_override() -> None:
    d = check_gpu_location(UNCLEAR_OVR, LEI_A, rules=RULES)
    assert d.allowed and d.jurisdictions == ("XC",)


def test_check_gpu_location_shipped_unclear_with_added_override(shipped: RuleBook) -> None:
    us = shipped.by_alpha2("US")
    assert us.title_recognition is TitleRecognition.UNCLEAR
    with_override = us.model_validate(
        {**us.model_dump(), "title_overrides": [override(LEI_A)]}
    )
    rules = RuleBook([r if r.numeric != 840 else with_override for r in shipped.values()])
    assert not check_gpu_location(840, LEI_A, rules=shipped).allowed
    assert check_gpu_location(840, LEI_A, rules=rules).allowed
    assert not check_gpu_location(840, LEI_B, rules=rules).allowed


def test_check_gpu_location_recognised_and_unlisted() -> None:
    assert check_gpu_location(OK, rules=RULES).allowed
    d = check_gpu_location(UNLISTED, LEI_A, rules=RULES)
    assert d.code is Restriction.ASSET_TITLE_NOT_RECOGNISED
    assert d.citations == () and d.jurisdictions == ()
    assert "no rules file" in d.message


# --- property: the decision against an independent model of the documented order ----------------


def reference_code(a: ShareAsset, s: Party | None, r: Party | None, amount: int,
                   rules: RuleBook, now: int) -> int:
    """The documented order (engine module docstring), written out independently."""
    if a.paused:
        return 1
    if r is not None and not (s is not None and r.is_spv):
        for loc in a.locations:
            rule = rules.get(loc)
            # A sanctioned location is never recognised, whatever title_recognition says.
            ok = rule is not None and not rule.sanctioned and (
                rule.title_recognition is TitleRecognition.RECOGNISED
                or (rule.title_recognition is TitleRecognition.UNCLEAR
                    and a.spv_lei is not None
                    and any(o.spv_lei == a.spv_lei for o in rule.title_overrides))
            )
            if not ok:
                return 2
    if s is not None:
        if s.record is None:
            return 3
        if s.record.expires_at <= now:
            return 4
        if s.wallet_frozen:
            return 5
    if r is not None:
        if r.record is None:
            return 6
        if r.record.expires_at <= now:
            return 7
        if r.wallet_frozen:
            return 8
        rule = rules.get(r.record.jurisdiction)
        if rule is None or rule.holder_policy is HolderPolicy.BLOCKED:
            return 9
        if rule.holder_policy is HolderPolicy.ACCREDITED_ONLY and not r.record.accredited:
            return 10
    if s is not None:
        if amount > s.balance:
            return 11
        if amount > max(s.balance - s.frozen_tokens, 0):
            return 12
    return 0


CODES = [OK, NOREC, UNCLEAR_OVR, UNCLEAR, ACCR, SANCT, UNLISTED]
amounts = st.integers(min_value=0, max_value=2_000)
records = st.builds(
    InvestorRecord,
    jurisdiction=st.sampled_from(CODES),
    accredited=st.booleans(),
    expires_at=st.integers(min_value=NOW - 3, max_value=NOW + 3),
)
parties = st.builds(
    Party,
    address=st.just("0xP"),
    record=st.none() | records,
    wallet_frozen=st.booleans(),
    balance=amounts,
    frozen_tokens=amounts,
    is_spv=st.booleans(),
)
assets = st.builds(
    ShareAsset,
    spv_lei=st.sampled_from([LEI_A, LEI_B, None]),
    locations=st.frozensets(st.sampled_from(CODES), max_size=3),
    paused=st.booleans(),
)


@given(
    a=assets,
    s=st.none() | parties,
    r=st.none() | parties,
    amount=amounts,
)
def test_decide_matches_reference(a: ShareAsset, s: Party | None, r: Party | None,
                                  amount: int) -> None:
    if s is None and r is None:
        with pytest.raises(ValueError):
            run(a, s, r, amount)
        return
    d = run(a, s, r, amount)
    assert d.allowed == (d.code == 0)
    assert d.message.startswith(codes.message(d.code))
    assert int(d.code) == reference_code(a, s, r, amount, RULES, NOW)
    assert set(d.jurisdictions) <= {rule.alpha2 for rule in RULES.values()}
