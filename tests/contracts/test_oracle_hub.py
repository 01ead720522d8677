"""OracleHub: roles, the signer set, feeds, k-of-n price and utilisation reports with
every refusal path (exact revert strings), the move limit, the value packing, and the
attestation-log checkpoint."""

from __future__ import annotations

import boa
import pytest
from eth_abi import encode

from gpushares import reasons
from oracle import attest
from tests.contracts import deployers
from tests.contracts import oracle_helpers as oh
from tests.contracts.oracle_helpers import USD

INT112_MIN, INT112_MAX = -(2**111), 2**111 - 1


@pytest.fixture(scope="module")
def stranger():
    return boa.env.generate_address("oracle-stranger")


@pytest.fixture(scope="module")
def keys():
    """Five signer keys ascending by address; the hub starts with the first four, 3-of-4."""
    return oh.make_signers(5, "hub-signer")


@pytest.fixture(scope="module")
def members(keys):
    return keys[:4]


@pytest.fixture(scope="module")
def outsider():
    return oh.make_signers(1, "hub-outsider")[0]


@pytest.fixture(scope="module")
def hub(oracle_admin, members):
    h = oh.deploy_hub(oracle_admin)
    oh.install(h, oracle_admin, members, 3)
    oh.add_feed(h, oracle_admin)
    return h


@pytest.fixture(scope="module")
def dom(hub):
    return oh.domain(hub)


@pytest.fixture(scope="module")
def spv():
    return boa.env.generate_address("oracle-spv-token")


def tick(seconds: int = 60) -> int:
    boa.env.time_travel(seconds=seconds)
    return oh.now()


def report_now(hub, value=2 * USD, **kw):
    """A price report observed one minute after the previous block."""
    return oh.price_report(value, tick(), hub.config_version(), **kw)


def accept(hub, dom, signers, report):
    assert oh.submit_price(hub, report, oh.cosigned(report, dom, signers)) is True
    return report


# ===================================================================== constructor


def test_constructor_roles_and_empty_state(oracle_admin, stranger):
    blueprint = deployers.FEED_ADAPTER.deploy_as_blueprint()
    with boa.env.prank(stranger):  # deployed on the admin's behalf
        hub = deployers.ORACLE_HUB.deploy(oracle_admin, blueprint.address)
    for role in (oh.DEFAULT_ADMIN_ROLE, oh.ORACLE_ADMIN_ROLE):
        assert hub.hasRole(role, oracle_admin)
        assert not hub.hasRole(role, stranger)
    assert hub.FEED_ADAPTER_BLUEPRINT() == blueprint.address
    assert hub.config_version() == 0 and hub.threshold() == 0
    assert hub.signers() == [] and hub.signer_store() == oh.ZERO
    assert hub.checkpoint() == (0, oh.ZERO32)
    assert hub.feed_count() == 0
    assert not hub.is_signer(oracle_admin)


def test_constructor_refusals(oracle_admin, stranger):
    blueprint = deployers.FEED_ADAPTER.deploy_as_blueprint()
    with boa.reverts(oh.ADMIN_ZERO):
        deployers.ORACLE_HUB.deploy(oh.ZERO, blueprint.address)
    with boa.reverts(oh.BLUEPRINT_NOT_CONTRACT):
        deployers.ORACLE_HUB.deploy(oracle_admin, stranger)


ADMIN_CALLS = [
    ("set_signers", lambda keys: (oh.addresses(keys[:2]), 2)),
    ("add_feed", lambda keys: (b"\x07" * 32, "Other feed", 1, 10, 0, 60)),
    ("set_feed_config", lambda keys: (oh.FEED_ID, 1, 10, 0, 60, True)),
]


@pytest.mark.parametrize("name,args", ADMIN_CALLS, ids=[c[0] for c in ADMIN_CALLS])
def test_admin_functions_refuse_others(hub, keys, stranger, oracle_admin, name, args):
    with boa.env.prank(stranger), boa.reverts(oh.MISSING_ROLE):
        getattr(hub, name)(*args(keys))
    # Signers hold no role either: their authority is only over reports.
    with boa.env.prank(keys[0].address), boa.reverts(oh.MISSING_ROLE):
        getattr(hub, name)(*args(keys))
    # The role is grantable by the default admin.
    with boa.env.prank(oracle_admin):
        hub.grantRole(oh.ORACLE_ADMIN_ROLE, stranger)
    with boa.env.prank(stranger):
        getattr(hub, name)(*args(keys))


# ===================================================================== signer set


def test_set_signers_bumps_the_version_and_publishes_the_set(hub, oracle_admin, keys, members):
    assert hub.config_version() == 1
    assert hub.signers() == oh.addresses(members) and hub.threshold() == 3
    new_set = [keys[0], keys[2], keys[4]]
    for expected_version, (signers, threshold) in enumerate(
        [(new_set, 2), (keys[:1], 1), (keys, 5)], start=2
    ):
        with boa.env.prank(oracle_admin):
            hub.set_signers(oh.addresses(signers), threshold)
        (event,) = oh.events(hub, "SignerSetChanged")
        assert event.config_version == expected_version
        assert list(event.signers) == oh.addresses(signers)
        assert event.threshold == threshold
        assert hub.config_version() == expected_version
        assert hub.threshold() == threshold
        assert hub.signers() == oh.addresses(signers)
        for key in keys:
            assert hub.is_signer(key.address) == (key in signers)
        assert not hub.is_signer(oh.ZERO)
        assert not hub.is_signer(oracle_admin)


def test_signer_store_holds_the_set_as_code(hub, oracle_admin, keys):
    store = hub.signer_store()
    padded = oh.addresses(keys[:4]) + [oh.ZERO] * 27
    assert boa.env.get_code(store) == b"\x00" + encode(["address[31]"], [padded])
    oh.install(hub, oracle_admin, keys[1:3], 2)
    assert hub.signer_store() != store  # a new store per set; the old one stays as it was
    assert boa.env.get_code(hub.signer_store()) == b"\x00" + encode(
        ["address[31]"], [oh.addresses(keys[1:3]) + [oh.ZERO] * 29]
    )
    assert boa.env.get_code(store) == b"\x00" + encode(["address[31]"], [padded])


@pytest.mark.parametrize(
    "case,reason",
    [
        ("empty", oh.SET_EMPTY),
        ("threshold zero", oh.THRESHOLD_ZERO),
        ("threshold above n", oh.THRESHOLD_ABOVE),
        # Regression (issue 17, item 7): 2-of-4 was accepted, and two disjoint pairs of
        # signers could each sign a different report for the same log position.
        ("threshold not a majority", reasons.HUB_THRESHOLD_NOT_MAJORITY),
        ("unsorted", oh.SET_UNSORTED),
        ("duplicate", oh.SET_UNSORTED),
        ("zero address", oh.SET_UNSORTED),
        ("zero address last", oh.SET_UNSORTED),
    ],
)
def test_set_signers_refusals(hub, oracle_admin, keys, case, reason):
    a = oh.addresses(keys)
    signers, threshold = {
        "empty": ([], 1),
        "threshold zero": (a[:3], 0),
        "threshold above n": (a[:3], 4),
        "threshold not a majority": (a[:4], 2),
        "unsorted": ([a[1], a[0], a[2]], 2),
        "duplicate": ([a[0], a[1], a[1]], 2),
        "zero address": ([oh.ZERO, a[0]], 2),
        "zero address last": ([a[0], oh.ZERO], 2),
    }[case]
    with boa.env.prank(oracle_admin), boa.reverts(reason):
        hub.set_signers(signers, threshold)
    assert hub.config_version() == 1 and hub.signers() == a[:4]


def test_set_signers_refuses_more_than_31(hub, oracle_admin):
    too_many = oh.make_signers(32, "too-many")
    with boa.env.prank(oracle_admin), boa.reverts(
        compiler="DynArray[address, 31] bounds check"
    ):
        hub.set_signers(oh.addresses(too_many), 1)


def test_31_signers_with_threshold_31(oracle_admin):
    hub = oh.deploy_hub(oracle_admin)
    oh.add_feed(hub, oracle_admin)
    everyone = oh.make_signers(31, "max-set")
    assert oh.install(hub, oracle_admin, everyone, 31) == 1
    assert hub.signers() == oh.addresses(everyone) and hub.threshold() == 31
    dom = oh.domain(hub)
    report = report_now(hub)
    signatures = oh.cosigned(report, dom, everyone)
    with boa.reverts(oh.TOO_FEW):
        oh.submit_price(hub, report, signatures[:30])
    with boa.reverts(oh.TOO_FEW):
        oh.submit_price(hub, report, signatures[1:])
    with boa.reverts(compiler="DynArray[Signature, 31] bounds check"):
        oh.submit_price(hub, report, signatures + signatures[:1])
    assert oh.submit_price(hub, report, signatures) is True
    assert hub.latest_value(oh.FEED_ID) == (report.value, report.observed_at, 1)


def test_no_signer_set_installed(oracle_admin, keys, spv):
    hub = oh.deploy_hub(oracle_admin)
    oh.add_feed(hub, oracle_admin)
    dom = oh.domain(hub)
    report = report_now(hub)
    assert report.config_version == 0
    with boa.reverts(oh.NO_SIGNER_SET):
        oh.submit_price(hub, report, oh.cosigned(report, dom, keys))
    with boa.reverts(oh.NO_SIGNER_SET):
        oh.submit_price(hub, report, [])
    util = oh.utilisation_report(spv, oh.now() - 10, oh.now(), 0)
    with boa.reverts(oh.NO_SIGNER_SET):
        oh.submit_utilisation(hub, util, oh.cosigned(util, dom, keys))


# ===================================================================== feeds


def test_add_feed_deploys_an_adapter_and_emits(hub, oracle_admin):
    feed_id = b"\x42" * 32
    with boa.env.prank(oracle_admin):
        adapter = hub.add_feed(feed_id, "A100 / USD", -5 * USD, 7 * USD, 150, 900)
    added = oh.events(hub, "FeedAdded")
    changed = oh.events(hub, "FeedConfigChanged")
    assert len(added) == len(changed) == 1
    assert (added[0].feed_id, added[0].adapter, added[0].description) == (
        feed_id, adapter, "A100 / USD"
    )
    assert (changed[0].feed_id, changed[0].min_answer, changed[0].max_answer,
            changed[0].max_move_bps, changed[0].heartbeat, changed[0].enabled) == (
        feed_id, -5 * USD, 7 * USD, 150, 900, True
    )
    assert hub.feed_count() == 2
    assert hub.feed_ids(0) == oh.FEED_ID and hub.feed_ids(1) == feed_id
    assert hub.feed_adapter(feed_id) == adapter
    view = hub.feed(feed_id)
    assert (view.exists, view.enabled, view.min_answer, view.max_answer, view.max_move_bps,
            view.heartbeat, view.description, view.adapter, view.latest_round) == (
        True, True, -5 * USD, 7 * USD, 150, 900, "A100 / USD", adapter, 0
    )
    assert hub.feed_description(feed_id) == "A100 / USD"
    assert hub.feed_heartbeat(feed_id) == 900
    assert deployers.FEED_ADAPTER.at(adapter).FEED_ID() == feed_id
    assert deployers.FEED_ADAPTER.at(adapter).HUB() == hub.address
    # An unknown feed reads as all zeros.
    unknown = hub.feed(b"\x43" * 32)
    assert (unknown.exists, unknown.enabled, unknown.adapter, unknown.latest_round) == (
        False, False, oh.ZERO, 0
    )
    assert hub.latest_value(b"\x43" * 32) == (0, 0, 0)


@pytest.mark.parametrize(
    "args,reason",
    [
        ((oh.ZERO32, "x", 1, 2, 0, 60), oh.FEED_ID_ZERO),
        ((oh.FEED_ID, "x", 1, 2, 0, 60), oh.FEED_EXISTS),
        ((b"\x01" * 32, "", 1, 2, 0, 60), oh.DESCRIPTION_EMPTY),
        ((b"\x01" * 32, "x", 3, 2, 0, 60), oh.MIN_ABOVE_MAX),
        ((b"\x01" * 32, "x", 1, 2, 0, 0), oh.HEARTBEAT_ZERO),
        ((b"\x01" * 32, "x", INT112_MIN - 1, 2, 0, 60), oh.BOUNDS_INT112),
        ((b"\x01" * 32, "x", 1, INT112_MAX + 1, 0, 60), oh.BOUNDS_INT112),
    ],
    ids=["zero id", "exists", "no description", "min>max", "heartbeat 0", "min<int112",
         "max>int112"],
)
def test_add_feed_refusals(hub, oracle_admin, args, reason):
    with boa.env.prank(oracle_admin), boa.reverts(reason):
        hub.add_feed(*args)


def test_set_feed_config(hub, oracle_admin):
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, -USD, 3 * USD, 0, 120, False)
    (event,) = oh.events(hub, "FeedConfigChanged")
    assert (event.feed_id, event.min_answer, event.max_answer, event.max_move_bps,
            event.heartbeat, event.enabled) == (oh.FEED_ID, -USD, 3 * USD, 0, 120, False)
    view = hub.feed(oh.FEED_ID)
    assert (view.exists, view.enabled, view.min_answer, view.max_answer, view.max_move_bps,
            view.heartbeat) == (True, False, -USD, 3 * USD, 0, 120)
    assert view.description == oh.FEED_DESCRIPTION  # unchanged
    with boa.env.prank(oracle_admin):
        with boa.reverts(oh.UNKNOWN_FEED):
            hub.set_feed_config(b"\x09" * 32, 1, 2, 0, 60, True)
        with boa.reverts(oh.MIN_ABOVE_MAX):
            hub.set_feed_config(oh.FEED_ID, 2, 1, 0, 60, True)
        with boa.reverts(oh.HEARTBEAT_ZERO):
            hub.set_feed_config(oh.FEED_ID, 1, 2, 0, 0, True)
        with boa.reverts(oh.BOUNDS_INT112):
            hub.set_feed_config(oh.FEED_ID, INT112_MIN - 1, 2, 0, 60, True)
        with boa.reverts(oh.BOUNDS_INT112):
            hub.set_feed_config(oh.FEED_ID, 1, INT112_MAX + 1, 0, 60, True)
        # The int112 extremes themselves fit.
        hub.set_feed_config(oh.FEED_ID, INT112_MIN, INT112_MAX, 65_535, 2**32 - 1, True)
    view = hub.feed(oh.FEED_ID)
    assert (view.min_answer, view.max_answer, view.max_move_bps, view.heartbeat) == (
        INT112_MIN, INT112_MAX, 65_535, 2**32 - 1
    )


# ===================================================================== price: accepted


def test_accepted_report_updates_the_feed_and_emits(hub, dom, members, stranger):
    report = report_now(hub, 2 * USD, log_size=7)
    signatures = oh.cosigned(report, dom, members[:3])
    assert oh.submit_price(hub, report, signatures, sender=stranger) is True  # anyone relays
    (event,) = oh.events(hub, "PriceUpdated")
    assert (event.feed_id, event.value, event.observed_at, event.inputs_hash, event.log_size,
            event.log_root) == (
        oh.FEED_ID, 2 * USD, report.observed_at, bytes.fromhex(report.inputs_hash[2:]), 7,
        oh.log_root(7),
    )
    assert hub.latest_value(oh.FEED_ID) == (2 * USD, report.observed_at, 1)
    assert hub.latest_round_data(oh.FEED_ID) == (
        1, 2 * USD, report.observed_at, report.observed_at, 1
    )
    assert hub.get_round_data(oh.FEED_ID, 1) == hub.latest_round_data(oh.FEED_ID)
    assert hub.feed(oh.FEED_ID).latest_round == 1
    assert hub.checkpoint() == (7, oh.log_root(7))
    # More signatures than the threshold are fine (all are checked).
    second = report_now(hub, 2 * USD + 1)
    accept(hub, dom, members, second)
    assert hub.latest_value(oh.FEED_ID) == (2 * USD + 1, second.observed_at, 2)
    assert hub.get_round_data(oh.FEED_ID, 1)[1] == 2 * USD


def test_observed_at_may_lag_the_block(hub, dom, members):
    """An observation from the past is accepted as long as it is newer than the latest."""
    tick(3_600)
    report = oh.price_report(2 * USD, oh.now() - 3_000, hub.config_version())
    accept(hub, dom, members[:3], report)
    older_than_block = oh.price_report(2 * USD, oh.now() - 2_999, hub.config_version())
    accept(hub, dom, members[:3], older_than_block)
    assert hub.latest_value(oh.FEED_ID)[1:] == (oh.now() - 2_999, 2)
    at_block = oh.price_report(2 * USD, oh.now(), hub.config_version())
    accept(hub, dom, members[:3], at_block)  # observed_at == block.timestamp is fine


# ===================================================================== price: refusals


def test_too_few_signatures(hub, dom, members):
    report = report_now(hub)
    with boa.reverts(oh.TOO_FEW):
        oh.submit_price(hub, report, oh.cosigned(report, dom, members[:2]))
    with boa.reverts(oh.TOO_FEW):
        oh.submit_price(hub, report, [])


def test_duplicate_signer(hub, dom, members):
    report = report_now(hub)
    sigs = oh.cosigned(report, dom, members[:2])
    with boa.reverts(oh.UNORDERED):
        oh.submit_price(hub, report, [sigs[0], sigs[0], sigs[1]])
    with boa.reverts(oh.UNORDERED):
        oh.submit_price(hub, report, [sigs[0], sigs[1], sigs[1]])


def test_unsorted_signatures(hub, dom, members):
    report = report_now(hub)
    sigs = oh.cosigned(report, dom, members[:3])
    with boa.reverts(oh.UNORDERED):
        oh.submit_price(hub, report, sigs[::-1])
    with boa.reverts(oh.UNORDERED):
        oh.submit_price(hub, report, [sigs[0], sigs[2], sigs[1]])


def test_unknown_signer_in_sorted_position(hub, dom, members, outsider):
    report = report_now(hub)
    # k signatures, one from a key outside the set, ordered by address.
    with boa.reverts(oh.UNAUTHORISED):
        oh.submit_price(hub, report, oh.cosigned(report, dom, [*members[:2], outsider]))
    # Every signature is checked, not just the first k.
    with boa.reverts(oh.UNAUTHORISED):
        oh.submit_price(hub, report, oh.cosigned(report, dom, [*members, outsider]))
    accept(hub, dom, members[:3], report)


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_unknown_signer_at_every_position(hub, dom, members, position):
    """An outsider whose address falls before, between or after the members."""
    report = report_now(hub)
    candidates = oh.make_signers(40, "positional-outsider")
    low, high = members[0].number, members[-1].number
    pick = {
        "first": lambda s: s.number < low,
        "middle": lambda s: members[1].number < s.number < members[2].number,
        "last": lambda s: s.number > high,
    }[position]
    outsider = next(s for s in candidates if pick(s))
    with boa.reverts(oh.UNAUTHORISED):
        oh.submit_price(hub, report, oh.cosigned(report, dom, [*members[:3], outsider]))


def test_naive_malleable_twin_is_unrepresentable_and_refused(hub, dom, members):
    """s' = N - s with the recovery bit flipped: s' is above 2**255, so in the EIP-2098
    `vs` word it overwrites the recovery bit; the hub reads another s and recovers an
    unrelated address."""
    report = report_now(hub)
    sigs = oh.cosigned(report, dom, members[:3])
    twin = oh.naive_twin(sigs[0])
    s = int.from_bytes(sigs[0][1], "big") & (2**255 - 1)
    assert oh.SECP256K1_N - s >= 2**255
    # First in the list, so the unrelated address it recovers is refused as an outsider
    # (later in the list it may instead fall below its predecessor: "ordered by signer").
    with boa.reverts(oh.UNAUTHORISED):
        oh.submit_price(hub, report, [twin, *sigs[1:]])


def test_malleable_high_s_is_refused(hub, dom, oracle_admin, members):
    """A real high-s twin. EIP-2098 can only carry s below 2**255, so a twin exists only
    for s in (N - 2**255, N/2]: take s = N//2 (the largest canonical s) and the address
    it recovers, install that address, and submit both forms."""
    next_version = hub.config_version() + 1
    report = oh.price_report(2 * USD, tick(), next_version)
    report_digest = attest.digest(report, dom)
    r = int.from_bytes(oh.cosigned(report, dom, members[:1])[0][0], "big")  # a valid x
    low_s, high_s = oh.HALF_N, oh.SECP256K1_N - oh.HALF_N
    assert high_s == oh.HALF_N + 1 < 2**255
    signer = oh.recover_raw(report_digest, r, low_s, 0)
    assert oh.recover_raw(report_digest, r, high_s, 1) == signer  # the twin
    with boa.env.prank(oracle_admin):
        hub.set_signers([signer], 1)
    r32 = r.to_bytes(32, "big")
    with boa.reverts(oh.MALLEABLE):
        oh.submit_price(hub, report, [(r32, oh.vs_word(high_s, 1))])
    with boa.reverts(oh.MALLEABLE):
        oh.submit_price(hub, report, [(r32, oh.vs_word(2**255 - 1, 0))])
    assert oh.submit_price(hub, report, [(r32, oh.vs_word(low_s, 0))]) is True
    # Python refuses the same twin in its 65-byte form.
    with pytest.raises(attest.AttestationError, match="malleable"):
        attest.recover(report_digest, r32 + high_s.to_bytes(32, "big") + b"\x1c")


@pytest.mark.parametrize("r", [0, 2**256 - 1, oh.SECP256K1_N], ids=["zero", "max", "N"])
def test_invalid_signature(hub, dom, members, r):
    report = report_now(hub)
    sigs = oh.cosigned(report, dom, members[:3])
    garbage = (r.to_bytes(32, "big"), sigs[1][1])
    with boa.reverts(oh.INVALID_SIGNATURE):
        oh.submit_price(hub, report, [sigs[0], garbage, sigs[2]])


def test_zero_s_is_an_invalid_signature(hub, dom, members):
    report = report_now(hub)
    sigs = oh.cosigned(report, dom, members[:3])
    with boa.reverts(oh.INVALID_SIGNATURE):
        oh.submit_price(hub, report, [sigs[0], (sigs[1][0], oh.vs_word(0, 0)), sigs[2]])


def test_wrong_config_version(hub, dom, oracle_admin, keys, members):
    old = report_now(hub)
    old_signatures = oh.cosigned(old, dom, members[:3])
    assert oh.install(hub, oracle_admin, keys[1:], 3) == 2
    # The report names version 1: refused before any signature is looked at.
    with boa.reverts(oh.CONFIG_VERSION):
        oh.submit_price(hub, old, old_signatures)
    future = old.model_copy(update={"config_version": 3})
    with boa.reverts(oh.CONFIG_VERSION):
        oh.submit_price(hub, future, oh.cosigned(future, dom, keys[1:3]))
    # The hub stores the version in 32 bits; a uint64 that agrees in its low 32 bits is
    # still another version.
    aliased = old.model_copy(update={"config_version": 2**32 + 2})
    with boa.reverts(oh.CONFIG_VERSION):
        oh.submit_price(hub, aliased, oh.cosigned(aliased, dom, keys[1:3]))
    # Re-signed for version 2 by the old set: keys[0] is no longer a member.
    current = old.model_copy(update={"config_version": 2})
    with boa.reverts(oh.UNAUTHORISED):
        oh.submit_price(hub, current, oh.cosigned(current, dom, members[:3]))
    # The new set (3-of-4) signs it.
    accept(hub, dom, keys[2:5], current)


def test_old_signer_set_refused_after_threshold_change(hub, dom, oracle_admin, members):
    """Even the same members, after a threshold-only change, must re-sign."""
    old = report_now(hub)
    signatures = oh.cosigned(old, dom, members)
    oh.install(hub, oracle_admin, members, 4)
    with boa.reverts(oh.CONFIG_VERSION):
        oh.submit_price(hub, old, signatures)
    current = old.model_copy(update={"config_version": 2})
    with boa.reverts(oh.TOO_FEW):
        oh.submit_price(hub, current, oh.cosigned(current, dom, members[:3]))
    accept(hub, dom, members, current)


def test_stale_reports(hub, dom, members):
    first = accept(hub, dom, members[:3], report_now(hub))
    tick()
    same_time = oh.price_report(2 * USD + 5, first.observed_at, hub.config_version())
    with boa.reverts(oh.STALE):
        oh.submit_price(hub, same_time, oh.cosigned(same_time, dom, members[:3]))
    older = oh.price_report(2 * USD + 5, first.observed_at - 1, hub.config_version())
    with boa.reverts(oh.STALE):
        oh.submit_price(hub, older, oh.cosigned(older, dom, members[:3]))
    # A replay of the accepted report itself.
    with boa.reverts(oh.STALE):
        oh.submit_price(hub, first, oh.cosigned(first, dom, members[:3]))
    newer = oh.price_report(2 * USD + 5, first.observed_at + 1, hub.config_version())
    accept(hub, dom, members[:3], newer)


def test_future_report(hub, dom, members):
    t = tick()
    report = oh.price_report(2 * USD, t + 1, hub.config_version())
    signatures = oh.cosigned(report, dom, members[:3])
    with boa.reverts(oh.FUTURE):
        oh.submit_price(hub, report, signatures)
    tick(1)
    assert oh.submit_price(hub, report, signatures) is True  # valid once its time comes


def test_out_of_bounds(hub, dom, members):
    for value in (oh.FEED_MIN - 1, oh.FEED_MAX + 1, 0, -1):
        report = report_now(hub, value)
        with boa.reverts(oh.OUT_OF_BOUNDS):
            oh.submit_price(hub, report, oh.cosigned(report, dom, members[:3]))


def test_bounds_are_inclusive(hub, dom, oracle_admin, members):
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, oh.FEED_MIN, oh.FEED_MAX, 0, 3_600, True)
    for value in (oh.FEED_MIN, oh.FEED_MAX, oh.FEED_MIN):
        accept(hub, dom, members[:3], report_now(hub, value))
        assert hub.latest_value(oh.FEED_ID)[0] == value


def test_unknown_and_disabled_feed(hub, dom, oracle_admin, members):
    unknown = oh.price_report(2 * USD, tick(), 1, feed_id=b"\x66" * 32)
    with boa.reverts(oh.DISABLED):
        oh.submit_price(hub, unknown, oh.cosigned(unknown, dom, members[:3]))
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, oh.FEED_MIN, oh.FEED_MAX, oh.FEED_MOVE_BPS, 3_600,
                            False)
    report = report_now(hub)
    signatures = oh.cosigned(report, dom, members[:3])
    with boa.reverts(oh.DISABLED):
        oh.submit_price(hub, report, signatures)
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, oh.FEED_MIN, oh.FEED_MAX, oh.FEED_MOVE_BPS, 3_600,
                            True)
    assert oh.submit_price(hub, report, signatures) is True


def test_refusal_order_config_version_first(hub, dom, members):
    """A report wrong in every way is refused for its config version (checked first), then
    feed, time, staleness, bounds, signatures: the documented order."""
    t = tick()
    bad = oh.price_report(-1, t + 10, 9, feed_id=b"\x66" * 32)
    with boa.reverts(oh.CONFIG_VERSION):
        oh.submit_price(hub, bad, [])
    bad = bad.model_copy(update={"config_version": 1})
    with boa.reverts(oh.DISABLED):
        oh.submit_price(hub, bad, [])
    bad = bad.model_copy(update={"feed_id": oh.hx(oh.FEED_ID)})
    with boa.reverts(oh.FUTURE):
        oh.submit_price(hub, bad, [])
    bad = bad.model_copy(update={"observed_at": 0})
    with boa.reverts(oh.STALE):
        oh.submit_price(hub, bad, [])
    bad = bad.model_copy(update={"observed_at": t})
    with boa.reverts(oh.OUT_OF_BOUNDS):
        oh.submit_price(hub, bad, [])
    bad = bad.model_copy(update={"value": 2 * USD})
    with boa.reverts(oh.TOO_FEW):
        oh.submit_price(hub, bad, [])


# ===================================================================== move limit


def test_move_too_large_is_refused_without_a_revert(hub, dom, members):
    first = accept(hub, dom, members[:3], report_now(hub, 2 * USD, log_size=4))
    too_far = report_now(hub, 2 * USD + 41_000_000, log_size=9)  # +20.5 %
    assert oh.submit_price(hub, too_far, oh.cosigned(too_far, dom, members[:3])) is False
    (event,) = oh.events(hub, "PriceMoveRefused")
    assert (event.feed_id, event.previous_value, event.refused_value, event.move_bps,
            event.max_move_bps, event.observed_at, event.inputs_hash) == (
        oh.FEED_ID, 2 * USD, 2 * USD + 41_000_000, 2_050, oh.FEED_MOVE_BPS,
        too_far.observed_at, bytes.fromhex(too_far.inputs_hash[2:]),
    )
    assert oh.events(hub, "PriceUpdated") == []
    # Nothing changed: value, round, and the log checkpoint (the refused report's newer
    # log size is not anchored).
    assert hub.latest_value(oh.FEED_ID) == (2 * USD, first.observed_at, 1)
    assert hub.checkpoint() == (4, oh.log_root(4))
    with boa.reverts(oh.ROUND_NOT_YET):
        hub.get_round_data(oh.FEED_ID, 2)
    # Exactly the limit (+20 %) is accepted, with the refused report's observation time.
    at_limit = oh.price_report(2 * USD + 40_000_000, too_far.observed_at,
                               hub.config_version(), log_size=9)
    accept(hub, dom, members[:3], at_limit)
    assert hub.latest_value(oh.FEED_ID) == (240_000_000, too_far.observed_at, 2)
    assert hub.checkpoint() == (9, oh.log_root(9))


def test_move_limit_downwards_and_move_bps_rounding(hub, dom, members):
    accept(hub, dom, members[:3], report_now(hub, 3 * USD))
    # -20.000001 %: move_bps is floored to 2000 but the move is still refused.
    down = report_now(hub, 3 * USD - 60_000_003)
    assert oh.submit_price(hub, down, oh.cosigned(down, dom, members[:3])) is False
    (event,) = oh.events(hub, "PriceMoveRefused")
    assert event.move_bps == 2_000 and event.previous_value == 3 * USD
    accept(hub, dom, members[:3], report_now(hub, 3 * USD - 60_000_000))
    assert hub.latest_value(oh.FEED_ID)[0] == 240_000_000


def test_move_limit_zero_means_unlimited(hub, dom, oracle_admin, members):
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, oh.FEED_MIN, oh.FEED_MAX, 0, 3_600, True)
    accept(hub, dom, members[:3], report_now(hub, oh.FEED_MIN))
    accept(hub, dom, members[:3], report_now(hub, oh.FEED_MAX))  # x1000
    assert hub.latest_value(oh.FEED_ID)[0] == oh.FEED_MAX


def test_move_limit_is_skipped_after_a_zero_value(hub, dom, oracle_admin, members):
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, -USD, USD, 1, 3_600, True)
    accept(hub, dom, members[:3], report_now(hub, 0))
    accept(hub, dom, members[:3], report_now(hub, -USD))  # from 0: no relative move
    refused = report_now(hub, -USD + 10_001)  # 1.0001 bps of 1 USD
    assert oh.submit_price(hub, refused, oh.cosigned(refused, dom, members[:3])) is False
    assert oh.events(hub, "PriceMoveRefused")[0].move_bps == 1
    accept(hub, dom, members[:3], report_now(hub, -USD + 10_000))  # exactly 1 bps


def test_negative_values_round_trip_through_the_packing(hub, dom, oracle_admin, members):
    """Bounds are int112, the stored value int128: the extremes read back exactly."""
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, INT112_MIN, INT112_MAX, 0, 3_600, True)
    view = hub.feed(oh.FEED_ID)
    assert (view.min_answer, view.max_answer) == (INT112_MIN, INT112_MAX)
    for value in (INT112_MIN, -1, INT112_MAX, -(2**64), 2**100, INT112_MIN + 1):
        report = accept(hub, dom, members[:3], report_now(hub, value))
        round_id = hub.latest_value(oh.FEED_ID)[2]
        assert hub.latest_value(oh.FEED_ID) == (value, report.observed_at, round_id)
        assert hub.get_round_data(oh.FEED_ID, round_id)[1] == value
        assert hub.latest_round_data(oh.FEED_ID)[1] == value
    for value in (INT112_MIN - 1, INT112_MAX + 1):
        report = report_now(hub, value)
        with boa.reverts(oh.OUT_OF_BOUNDS):
            oh.submit_price(hub, report, oh.cosigned(report, dom, members[:3]))


def test_negative_bounds_with_a_move_limit(hub, dom, oracle_admin, members):
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, -10 * USD, -USD, 1_000, 3_600, True)
    accept(hub, dom, members[:3], report_now(hub, -5 * USD))
    too_far = report_now(hub, -5 * USD - 50_000_001)  # 10.0000002 % more negative
    assert oh.submit_price(hub, too_far, oh.cosigned(too_far, dom, members[:3])) is False
    accept(hub, dom, members[:3], report_now(hub, -5 * USD - 50_000_000))
    assert hub.latest_value(oh.FEED_ID)[0] == -550_000_000
    for value in (0, -10 * USD - 1):
        report = report_now(hub, value)
        with boa.reverts(oh.OUT_OF_BOUNDS):
            oh.submit_price(hub, report, oh.cosigned(report, dom, members[:3]))


def test_feeds_are_independent(hub, dom, oracle_admin, members):
    other = b"\x77" * 32
    oh.add_feed(hub, oracle_admin, feed_id=other, description="B200 / USD")
    accept(hub, dom, members[:3], report_now(hub, 2 * USD))
    t = oh.now()
    # The other feed has its own latest time: the same observation time is fine there.
    accept(hub, dom, members[:3], oh.price_report(5 * USD, t, 1, feed_id=other))
    assert hub.latest_value(oh.FEED_ID) == (2 * USD, t, 1)
    assert hub.latest_value(other) == (5 * USD, t, 1)


# ===================================================================== trading state, halt


def test_trading_state_reads_the_latest_round_and_the_feed_settings(hub, dom, oracle_admin,
                                                                     members):
    """What a market reads in one call: latest value, its observation time and round
    id (zeros before the first report), the heartbeat, the move limit and the halt
    flag; an unknown feed reads as zeros. The hub has no `feed_halted`."""
    assert not hasattr(hub, "feed_halted")
    assert hub.trading_state(oh.FEED_ID) == (0, 0, 0, oh.FEED_HEARTBEAT, oh.FEED_MOVE_BPS,
                                             False)
    assert hub.trading_state(b"\x43" * 32) == (0, 0, 0, 0, 0, False)
    first = accept(hub, dom, members[:3], report_now(hub, 2 * USD))
    assert hub.trading_state(oh.FEED_ID) == (
        2 * USD, first.observed_at, 1, oh.FEED_HEARTBEAT, oh.FEED_MOVE_BPS, False)
    second = accept(hub, dom, members[:3], report_now(hub, 2 * USD + 7))
    assert hub.trading_state(oh.FEED_ID)[:3] == (2 * USD + 7, second.observed_at, 2)
    assert hub.trading_state(oh.FEED_ID)[:3] == hub.latest_value(oh.FEED_ID)
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, oh.FEED_MIN, oh.FEED_MAX, 400, 120, True)
    assert hub.trading_state(oh.FEED_ID) == (
        2 * USD + 7, second.observed_at, 2, 120, 400, False)


def test_a_refused_move_halts_the_feed_until_an_accepted_report(hub, dom, members):
    """The refused value is public (its event, the signed log), so the stored one is
    known to be wrong: the feed is halted for trading, the stored value and round stay.
    Another refused report keeps the halt; the next accepted report (any value within
    the limit, the unchanged one too) lifts it."""
    first = accept(hub, dom, members[:3], report_now(hub, 2 * USD))
    too_far = report_now(hub, 2 * USD + 41_000_000)  # +20.5 %
    assert oh.submit_price(hub, too_far, oh.cosigned(too_far, dom, members[:3])) is False
    assert oh.events(hub, "PriceMoveRefused")
    assert hub.trading_state(oh.FEED_ID) == (
        2 * USD, first.observed_at, 1, oh.FEED_HEARTBEAT, oh.FEED_MOVE_BPS, True)
    again = report_now(hub, 2 * USD - 50_000_000)  # -25 %
    assert oh.submit_price(hub, again, oh.cosigned(again, dom, members[:3])) is False
    assert hub.trading_state(oh.FEED_ID)[5] is True
    # A report refused with a revert changes nothing, the halt included.
    out = report_now(hub, oh.FEED_MAX + 1)
    with boa.reverts(oh.OUT_OF_BOUNDS):
        oh.submit_price(hub, out, oh.cosigned(out, dom, members[:3]))
    assert hub.trading_state(oh.FEED_ID)[5] is True
    same = accept(hub, dom, members[:3], report_now(hub, 2 * USD))
    assert hub.trading_state(oh.FEED_ID) == (
        2 * USD, same.observed_at, 2, oh.FEED_HEARTBEAT, oh.FEED_MOVE_BPS, False)
    # An accepted report on a feed that is not halted leaves it so.
    accept(hub, dom, members[:3], report_now(hub, 2 * USD + 1))
    assert hub.trading_state(oh.FEED_ID)[5] is False


def test_a_halt_is_kept_across_set_feed_config(hub, dom, oracle_admin, members):
    """Widening the move limit (or lifting it), disabling and re-enabling the feed do
    not make the stored value right: only an accepted report lifts the halt. The
    halt is per feed and leaves the feed view's flags alone."""
    other = b"\x77" * 32
    oh.add_feed(hub, oracle_admin, feed_id=other, description="B200 / USD")
    accept(hub, dom, members[:3], report_now(hub, 2 * USD))
    accept(hub, dom, members[:3], oh.price_report(5 * USD, oh.now(), 1, feed_id=other))
    too_far = report_now(hub, 3 * USD)  # +50 %
    assert oh.submit_price(hub, too_far, oh.cosigned(too_far, dom, members[:3])) is False
    assert hub.trading_state(oh.FEED_ID)[5] is True
    assert hub.trading_state(other)[5] is False
    with boa.env.prank(oracle_admin):
        for move, enabled in ((5_000, True), (0, True), (0, False), (oh.FEED_MOVE_BPS, True)):
            hub.set_feed_config(oh.FEED_ID, oh.FEED_MIN, oh.FEED_MAX, move, 600, enabled)
            assert hub.trading_state(oh.FEED_ID)[3:] == (600, move, True)
            view = hub.feed(oh.FEED_ID)
            assert (view.exists, view.enabled, view.max_move_bps) == (True, enabled, move)
    assert hub.trading_state(other)[5] is False
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, oh.FEED_MIN, oh.FEED_MAX, 0, 600, True)
    accept(hub, dom, members[:3], report_now(hub, 3 * USD))  # the move, now accepted
    assert hub.trading_state(oh.FEED_ID) == (3 * USD, oh.now(), 2, 600, 0, False)


# ===================================================================== checkpoint


def test_checkpoint_advances_stays_and_refuses_forks(hub, dom, members):
    def submit(size, root=None, value=2 * USD):
        report = report_now(hub, value, log_size=size, root=root)
        return oh.submit_price(hub, report, oh.cosigned(report, dom, members[:3]))

    assert hub.checkpoint() == (0, oh.ZERO32)
    # Size 0 anchors nothing, whatever root it names.
    assert submit(0, b"\x13" * 32)
    assert hub.checkpoint() == (0, oh.ZERO32)
    assert submit(10)
    assert hub.checkpoint() == (10, oh.log_root(10))
    assert submit(12)
    assert hub.checkpoint() == (12, oh.log_root(12))
    # An older size (signed before a newer checkpoint was published) is accepted and
    # leaves the checkpoint alone; its root is not checked (the hub cannot).
    assert submit(11)
    (event,) = oh.events(hub, "PriceUpdated")
    assert (event.log_size, event.log_root) == (11, oh.log_root(11))
    assert submit(3, oh.log_root(3, fork="b"))
    assert submit(0, b"\x14" * 32)
    assert hub.checkpoint() == (12, oh.log_root(12))
    # The same size with the same root is accepted; with another root it is a fork.
    assert submit(12)
    report = report_now(hub, log_size=12, root=oh.log_root(12, fork="b"))
    with boa.reverts(oh.FORKED):
        oh.submit_price(hub, report, oh.cosigned(report, dom, members[:3]))
    assert hub.checkpoint() == (12, oh.log_root(12))


def test_checkpoint_survives_signer_changes(hub, dom, oracle_admin, keys, members):
    accept(hub, dom, members[:3], report_now(hub, log_size=5))
    oh.install(hub, oracle_admin, keys[1:3], 2)
    assert hub.checkpoint() == (5, oh.log_root(5))
    report = report_now(hub, log_size=5, root=oh.log_root(5, fork="x"))
    with boa.reverts(oh.FORKED):
        oh.submit_price(hub, report, oh.cosigned(report, dom, keys[1:3]))


def test_checkpoint_size_is_48_bits(hub, dom, members):
    report = report_now(hub, log_size=2**48)
    with boa.reverts(oh.LOG_SIZE):
        oh.submit_price(hub, report, oh.cosigned(report, dom, members[:3]))
    accept(hub, dom, members[:3], report_now(hub, log_size=2**48 - 1))
    assert hub.checkpoint() == (2**48 - 1, oh.log_root(2**48 - 1))
    # Above the stored size but not storable is still refused; below is accepted.
    report = report_now(hub, log_size=2**64 - 1)
    with boa.reverts(oh.LOG_SIZE):
        oh.submit_price(hub, report, oh.cosigned(report, dom, members[:3]))
    accept(hub, dom, members[:3], report_now(hub, log_size=2**40))
    assert hub.config_version() == 1 and hub.threshold() == 3  # config bits untouched
    assert hub.signers() == oh.addresses(members)


# ===================================================================== utilisation


def _util(hub, spv, start, end, **kw):
    return oh.utilisation_report(spv, start, end, hub.config_version(), **kw)


def _submit_util(hub, dom, signers, report):
    return oh.submit_utilisation(hub, report, oh.cosigned(report, dom, signers))


def test_utilisation_accepted_and_emitted(hub, dom, members, spv, stranger):
    t = tick(86_400)
    assert hub.utilisation(spv) == (0, 0, 0, 0, 0, 0)
    first = _util(hub, spv, t - 86_400, t - 3_600, gpu_count=8, utilisation_bps=9_125,
                  rental_revenue=7_654_321, log_size=6)
    oh.submit_utilisation(hub, first, oh.cosigned(first, dom, members[:3]), sender=stranger)
    (event,) = oh.events(hub, "UtilisationUpdated")
    assert (event.spv_token, event.period_start, event.period_end, event.gpu_count,
            event.utilisation_bps, event.rental_revenue, event.inputs_hash, event.log_size,
            event.log_root) == (
        spv, t - 86_400, t - 3_600, 8, 9_125, 7_654_321,
        bytes.fromhex(first.inputs_hash[2:]), 6, oh.log_root(6),
    )
    assert hub.utilisation(spv) == (t - 86_400, t - 3_600, 8, 9_125, 7_654_321, 1)
    assert hub.checkpoint() == (6, oh.log_root(6))
    # The next period may start exactly where the last one ended; 0 and 10,000 bps and
    # the largest values of every field fit.
    second = _util(hub, spv, t - 3_600, t, gpu_count=2**32 - 1, utilisation_bps=10_000,
                   rental_revenue=2**256 - 1)
    _submit_util(hub, dom, members[:3], second)
    assert hub.utilisation(spv) == (t - 3_600, t, 2**32 - 1, 10_000, 2**256 - 1, 2)
    t = tick()
    third = _util(hub, spv, t - 1, t, gpu_count=1, utilisation_bps=0, rental_revenue=0)
    _submit_util(hub, dom, members[:3], third)
    assert hub.utilisation(spv) == (t - 1, t, 1, 0, 0, 3)
    # Another SPV is independent.
    other = boa.env.generate_address("other-spv")
    _submit_util(hub, dom, members[:3], _util(hub, other, 0, 1))
    assert hub.utilisation(other).round_id == 1 and hub.utilisation(spv).round_id == 3


def test_utilisation_refusals(hub, dom, members, outsider, spv):
    t = tick(86_400)
    _submit_util(hub, dom, members[:3], _util(hub, spv, t - 7_200, t - 3_600))
    cases = [
        (_util(hub, oh.ZERO, t - 10, t), oh.SPV_ZERO),
        (_util(hub, spv, t, t), oh.PERIOD_EMPTY),
        (_util(hub, spv, t, t - 1), oh.PERIOD_EMPTY),
        (_util(hub, spv, t - 10, t + 1), oh.PERIOD_FUTURE),
        (_util(hub, spv, t - 3_601, t), oh.PERIOD_OVERLAP),
        (_util(hub, spv, t - 7_200, t - 3_600), oh.PERIOD_OVERLAP),  # a replay
        (_util(hub, spv, t - 3_600, t, gpu_count=0), oh.NO_GPUS),
        (_util(hub, spv, t - 3_600, t, utilisation_bps=10_001), oh.BPS_ABOVE),
        (_util(hub, spv, t - 3_600, t, utilisation_bps=2**16 - 1), oh.BPS_ABOVE),
        (oh.utilisation_report(spv, t - 3_600, t, 2), oh.CONFIG_VERSION),
        (oh.utilisation_report(spv, t - 3_600, t, 0), oh.CONFIG_VERSION),
    ]
    for report, reason in cases:
        with boa.reverts(reason):
            _submit_util(hub, dom, members[:3], report)
    good = _util(hub, spv, t - 3_600, t)
    with boa.reverts(oh.TOO_FEW):
        _submit_util(hub, dom, members[:2], good)
    with boa.reverts(oh.UNAUTHORISED):
        _submit_util(hub, dom, [*members[:2], outsider], good)
    sigs = oh.cosigned(good, dom, members[:3])
    with boa.reverts(oh.UNORDERED):
        oh.submit_utilisation(hub, good, sigs[::-1])
    _submit_util(hub, dom, members[:3], good)
    assert hub.utilisation(spv).round_id == 2


def test_utilisation_checkpoint_and_fork(hub, dom, members, spv):
    accept(hub, dom, members[:3], report_now(hub, log_size=20))
    t = tick()
    older = _util(hub, spv, t - 60, t, log_size=19, root=oh.log_root(19, fork="z"))
    _submit_util(hub, dom, members[:3], older)
    assert hub.checkpoint() == (20, oh.log_root(20))
    t = tick()
    forked = _util(hub, spv, t - 30, t, log_size=20, root=oh.log_root(20, fork="z"))
    with boa.reverts(oh.FORKED):
        _submit_util(hub, dom, members[:3], forked)
    newer = _util(hub, spv, t - 30, t, log_size=21)
    _submit_util(hub, dom, members[:3], newer)
    assert hub.checkpoint() == (21, oh.log_root(21))
    # Price reports now see the utilisation report's checkpoint.
    report = report_now(hub, log_size=21, root=oh.log_root(21, fork="q"))
    with boa.reverts(oh.FORKED):
        oh.submit_price(hub, report, oh.cosigned(report, dom, members[:3]))


def test_utilisation_zero_token_checked_before_period(hub):
    """The zero token is refused even with an otherwise empty report."""
    report = oh.utilisation_report(oh.ZERO, 0, 0, hub.config_version(), gpu_count=0)
    with boa.reverts(oh.SPV_ZERO):
        oh.submit_utilisation(hub, report, [])
