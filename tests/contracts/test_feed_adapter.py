"""FeedAdapter: Chainlink's AggregatorV2V3 interface over one OracleHub feed (metadata,
latest and historical rounds, the 256-round ring; the legacy V2 views read 0 where V3
reverts), and a consumer written the way the adapter's docs ask (staleness against the
heartbeat, answer > 0). ERC-165 ids and the V2 views in depth:
tests/contracts/test_standard_interfaces.py."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import boa
import pytest

from gpushares import reasons
from tests.contracts import deployers
from tests.contracts import oracle_helpers as oh
from tests.contracts.oracle_helpers import USD


@pytest.fixture(scope="module")
def signer():
    return oh.make_signers(1, "adapter-signer")


@pytest.fixture(scope="module")
def hub(oracle_admin, signer):
    h = oh.deploy_hub(oracle_admin)
    oh.install(h, oracle_admin, signer, 1)
    return h


@pytest.fixture(scope="module")
def adapter(hub, oracle_admin):
    return oh.add_feed(hub, oracle_admin)


@pytest.fixture(scope="module")
def dom(hub):
    return oh.domain(hub)


def push(hub, dom, signer, value, observed_at=None, feed_id=oh.FEED_ID):
    """Sign and submit one value; returns its observation time."""
    if observed_at is None:
        boa.env.time_travel(seconds=30)
        observed_at = oh.now()
    report = oh.price_report(value, observed_at, hub.config_version(), feed_id=feed_id)
    assert oh.submit_price(hub, report, oh.cosigned(report, dom, signer)) is True
    return observed_at


def test_metadata(adapter, hub, oracle_admin):
    assert adapter.decimals() == 8 == hub.PRICE_DECIMALS()
    assert adapter.description() == oh.FEED_DESCRIPTION
    assert adapter.version() == 1
    assert adapter.heartbeat() == oh.FEED_HEARTBEAT
    assert adapter.HUB() == hub.address
    assert adapter.FEED_ID() == oh.FEED_ID
    assert hub.feed_adapter(oh.FEED_ID) == adapter.address
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, 1, 2, 0, 86_400, False)
    assert adapter.heartbeat() == 86_400  # read through, not copied


def test_adapter_constructor_refusals(hub):
    with boa.reverts(reasons.FEED_HUB_ZERO_ADDRESS):
        deployers.FEED_ADAPTER.deploy(oh.ZERO, oh.FEED_ID)
    with boa.reverts(reasons.FEED_FEED_ID_ZERO):
        deployers.FEED_ADAPTER.deploy(hub.address, oh.ZERO32)


def test_adapter_of_an_unknown_feed_reads_empty(hub):
    stray = deployers.FEED_ADAPTER.deploy(hub.address, b"\x5a" * 32)
    assert stray.description() == "" and stray.heartbeat() == 0
    with boa.reverts(oh.NO_DATA):
        stray.latestRoundData()
    assert (stray.latestAnswer(), stray.latestTimestamp(), stray.latestRound()) == (0, 0, 0)
    assert stray.getAnswer(1) == stray.getTimestamp(1) == 0


def test_no_data_before_the_first_report(adapter):
    with boa.reverts(oh.NO_DATA):
        adapter.latestRoundData()
    for round_id in (0, 1, 2, 256):
        with boa.reverts(oh.ROUND_NOT_YET):
            adapter.getRoundData(round_id)
        assert adapter.getAnswer(round_id) == adapter.getTimestamp(round_id) == 0  # V2: 0
    assert (adapter.latestAnswer(), adapter.latestTimestamp(), adapter.latestRound()) == (0, 0, 0)


def test_rounds_follow_the_reports(adapter, hub, dom, signer):
    history = []
    for value in (2 * USD, 2 * USD + 7, 190_000_000, 2 * USD):
        history.append((value, push(hub, dom, signer, value)))
        round_id = len(history)
        assert adapter.latestRoundData() == (round_id, value, history[-1][1], history[-1][1],
                                             round_id)
    for round_id, (value, observed) in enumerate(history, start=1):
        assert adapter.getRoundData(round_id) == (round_id, value, observed, observed, round_id)
        assert hub.get_round_data(oh.FEED_ID, round_id) == adapter.getRoundData(round_id)
        assert (adapter.getAnswer(round_id), adapter.getTimestamp(round_id)) == (value, observed)
    assert (adapter.latestRound(), adapter.latestAnswer(), adapter.latestTimestamp()) == (
        len(history), *history[-1])
    for future in (5, 6, 2**80 - 1):
        with boa.reverts(oh.ROUND_NOT_YET):
            adapter.getRoundData(future)
    with boa.reverts(oh.ROUND_NOT_YET):
        adapter.getRoundData(0)


def test_disabled_feed_still_answers(adapter, hub, dom, signer, oracle_admin):
    observed = push(hub, dom, signer, 2 * USD)
    with boa.env.prank(oracle_admin):
        hub.set_feed_config(oh.FEED_ID, oh.FEED_MIN, oh.FEED_MAX, 0, 60, False)
    assert adapter.latestRoundData() == (1, 2 * USD, observed, observed, 1)
    assert adapter.getRoundData(1)[1] == 2 * USD


def test_ring_keeps_the_last_256_rounds(adapter, hub, dom, signer, oracle_admin):
    with boa.env.prank(oracle_admin):  # no move limit: any value in bounds
        hub.set_feed_config(oh.FEED_ID, oh.FEED_MIN, oh.FEED_MAX, 0, 3_600, True)
    history = {}  # round -> (value, observed)

    def value_of(n):
        return oh.FEED_MIN + (n * 7_919_993) % (oh.FEED_MAX - oh.FEED_MIN)

    for n in range(1, oh.RING_SIZE + 1):
        history[n] = (value_of(n), push(hub, dom, signer, value_of(n)))
    # Exactly full: every round 1..256 is readable; round 0 (slot 0, now holding round 256)
    # and round 512 (the same slot) are not.
    for n in range(1, oh.RING_SIZE + 1):
        assert adapter.getRoundData(n) == (n, *history[n], history[n][1], n)
    for missing in (0, 257, 512):
        with boa.reverts(oh.ROUND_NOT_YET):
            adapter.getRoundData(missing)
    # One more: round 1 is overwritten by round 257.
    history[257] = (value_of(257), push(hub, dom, signer, value_of(257)))
    with boa.reverts(oh.ROUND_GONE):
        adapter.getRoundData(1)
    assert adapter.getRoundData(2)[0] == 2 and adapter.getRoundData(257)[0] == 257
    for n in range(258, 301):
        history[n] = (value_of(n), push(hub, dom, signer, value_of(n)))
    latest = 300
    assert adapter.latestRoundData() == (latest, *history[latest], history[latest][1], latest)
    for n in range(1, latest - oh.RING_SIZE + 1):
        with boa.reverts(oh.ROUND_GONE):
            adapter.getRoundData(n)
        assert adapter.getAnswer(n) == adapter.getTimestamp(n) == 0  # V2: gone reads 0
    for n in range(latest - oh.RING_SIZE + 1, latest + 1):
        assert adapter.getRoundData(n) == (n, *history[n], history[n][1], n)
        assert (adapter.getAnswer(n), adapter.getTimestamp(n)) == history[n]
    for future in (latest + 1, latest + oh.RING_SIZE, 0):
        with boa.reverts(oh.ROUND_NOT_YET):
            adapter.getRoundData(future)
    assert hub.feed(oh.FEED_ID).latest_round == latest


# ------------------------------------------------------------------ a consumer


class PriceRefused(Exception):
    """The consumer will not use the answer."""


@dataclass
class ChainlinkConsumer:
    """What a lending pool does on every read, per the FeedAdapter docs: a complete round,
    `answeredInRound == roundId`, `block.timestamp - updatedAt <= heartbeat()`, `answer > 0`
    and its own sanity bounds."""

    adapter: object
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("1000")

    def price(self) -> Decimal:
        round_id, answer, _started, updated_at, answered_in = self.adapter.latestRoundData()
        if updated_at == 0:
            raise PriceRefused("incomplete round")
        if answered_in != round_id:
            raise PriceRefused("answer carried over from an earlier round")
        age = oh.now() - updated_at
        if age > self.adapter.heartbeat():
            raise PriceRefused(f"stale: {age} s old")
        if answer <= 0:
            raise PriceRefused(f"non-positive answer {answer}")
        price = Decimal(answer) / 10 ** self.adapter.decimals()
        if not self.min_price <= price <= self.max_price:
            raise PriceRefused(f"{price} outside the consumer's own bounds")
        return price


def test_consumer_accepts_a_fresh_positive_answer(adapter, hub, dom, signer):
    consumer = ChainlinkConsumer(adapter)
    with boa.reverts(oh.NO_DATA):  # before any report the read itself reverts
        consumer.price()
    observed = push(hub, dom, signer, 245_000_000)
    assert consumer.price() == Decimal("2.45")
    boa.env.time_travel(seconds=oh.FEED_HEARTBEAT)  # exactly heartbeat old: still fine
    assert oh.now() - observed == oh.FEED_HEARTBEAT
    assert consumer.price() == Decimal("2.45")
    boa.env.time_travel(seconds=1)
    with pytest.raises(PriceRefused, match="stale: 3601 s old"):
        consumer.price()
    push(hub, dom, signer, 250_000_000)
    assert consumer.price() == Decimal("2.5")


def test_consumer_staleness_counts_from_observation_not_submission(adapter, hub, dom, signer):
    """A report relayed late is already old: `updatedAt` is its observation time."""
    consumer = ChainlinkConsumer(adapter)
    boa.env.time_travel(seconds=10_000)
    push(hub, dom, signer, 2 * USD, observed_at=oh.now() - oh.FEED_HEARTBEAT + 5)
    assert consumer.price() == Decimal(2)
    boa.env.time_travel(seconds=6)
    with pytest.raises(PriceRefused, match="stale"):
        consumer.price()


def test_consumer_refuses_non_positive_and_insane_answers(adapter, hub, dom, signer,
                                                          oracle_admin):
    consumer = ChainlinkConsumer(adapter, max_price=Decimal("50"))
    with boa.env.prank(oracle_admin):  # a feed that may go to zero or below
        hub.set_feed_config(oh.FEED_ID, -USD, oh.FEED_MAX, 0, 3_600, True)
    for value, message in ((0, "non-positive answer 0"), (-1, "non-positive answer -1"),
                           (60 * USD, "outside the consumer's own bounds")):
        push(hub, dom, signer, value)
        with pytest.raises(PriceRefused, match=message):
            consumer.price()
    push(hub, dom, signer, 1)  # one unit at 8 decimals is positive but below 0.01
    with pytest.raises(PriceRefused, match="outside"):
        consumer.price()
    push(hub, dom, signer, 3 * USD)
    assert consumer.price() == Decimal(3)
