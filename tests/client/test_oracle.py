"""`gpushares.client.oracle`: hub administration and readouts, in-process."""

from __future__ import annotations

import boa
import pytest

from gpushares import reasons
from gpushares.client import oracle
from gpushares.client.chain import Reverted
from gpushares.client.context import Client
from gpushares.client.units import BadInput
from tests.client.conftest import DEPLOYER, STRANGER, sent
from tests.contracts.oracle_helpers import addresses, make_signers, publish_price

FEED = "H100-SXM-80GB/USD/GPUh"


@pytest.fixture
def signers(client: Client):
    keys = make_signers(3, "client-oracle")
    sent(client, oracle.plan_set_signers(client, DEPLOYER, list(reversed(addresses(keys))), 2),
         DEPLOYER)
    return keys


def test_set_signers_sorts_them_and_moves_the_config_version(client: Client, signers):
    view = oracle.hub_view(client)
    assert view.signers == sorted(addresses(signers), key=lambda a: int(a, 16))
    assert view.threshold == 2 and view.config_version == 1
    assert view.lines()[0].endswith("config version 1, 2-of-3")


@pytest.mark.parametrize(("signers", "threshold", "message"), [
    (["0x" + "11" * 20, "0x" + "11" * 20], 1, "the same address was given twice"),
    (["0x" + "11" * 20], 2, "threshold: 2 is not between 1 and the 1 signers"),
    (["0x7099...79C8"], 1, "is not an address"),
    ([], 1, "give 1 to 31 signers"),
])
def test_bad_signer_sets_are_bad_input(client: Client, signers, threshold, message):
    with pytest.raises(BadInput, match=message.replace("(", r"\(")):
        oracle.plan_set_signers(client, DEPLOYER, signers, threshold)


def test_a_minority_threshold_is_refused_with_the_hubs_message(client: Client):
    plan = oracle.plan_set_signers(client, DEPLOYER, ["0x" + "11" * 20, "0x" + "22" * 20], 1)
    assert plan.refusal is not None
    assert plan.refusal.reason == reasons.HUB_THRESHOLD_NOT_MAJORITY
    with pytest.raises(Reverted) as caught:
        client.chain.send(plan.txs[0], DEPLOYER)
    assert caught.value.reason == reasons.HUB_THRESHOLD_NOT_MAJORITY


def test_only_the_oracle_admin_may_set_signers(client: Client):
    plan = oracle.plan_set_signers(client, STRANGER, ["0x" + "11" * 20], 1)
    assert plan.refusal is not None and "ORACLE_ADMIN_ROLE" in plan.refusal.reason
    with pytest.raises(Reverted) as caught:
        client.chain.send(plan.txs[0], STRANGER)
    assert caught.value.reason == reasons.ACCESS_CONTROL_MISSING_ROLE


def test_add_feed_then_its_value_ages_with_the_chain(client: Client, signers):
    sent(client, oracle.plan_add_feed(client, DEPLOYER, FEED, "H100 SXM 80GB / USD per GPU-hour",
                                      "0.10", "50", 5_000, 2 * 86_400), DEPLOYER)
    empty = oracle.feed(client, FEED)
    assert empty.round_id == 0 and empty.stale and "no value yet" in empty.describe()
    hub = client.chain.at("OracleHub", client.deployed.oracle_hub)
    fid = bytes.fromhex(empty.feed_id[2:])
    assert publish_price(hub, signers, DEPLOYER, fid, 2 * 10**8, 0, 1, None)[0]
    fresh = oracle.feed(client, FEED)
    assert fresh.value == 2 * 10**8 and fresh.round_id == 1 and not fresh.stale
    assert "2 USD (round 1, observed" in fresh.describe() and "fresh" in fresh.describe()
    boa.env.time_travel(seconds=2 * 86_400 + 1)
    aged = oracle.feed(client, FEED)
    assert aged.stale and aged.age == fresh.age + 2 * 86_400 + 1
    assert "STALE" in aged.describe()


def test_a_feed_twice_is_refused_with_the_hubs_message(client: Client, signers):
    args = (FEED, "H100", "0.1", "50", 5_000, 86_400)
    sent(client, oracle.plan_add_feed(client, DEPLOYER, *args), DEPLOYER)
    again = oracle.plan_add_feed(client, DEPLOYER, *args)
    assert again.refusal is not None and again.refusal.reason == reasons.HUB_FEED_ALREADY_EXISTS
    with pytest.raises(Reverted) as caught:
        client.chain.send(again.txs[0], DEPLOYER)
    assert caught.value.reason == reasons.HUB_FEED_ALREADY_EXISTS


@pytest.mark.parametrize(("args", "message"), [
    (("x" * 33, "d", "1", "2", 0, 1), "name"),
    ((FEED, "", "1", "2", 0, 1), "description"),
    ((FEED, "d", "3", "2", 0, 1), "min: is above max"),
    ((FEED, "d", "1", "2.000000001", 0, 1), "more than 8 decimals"),
    ((FEED, "d", "1", "2", 70_000, 1), "max move"),
    ((FEED, "d", "1", "2", 0, 0), "heartbeat"),
])
def test_bad_feeds_are_bad_input(client: Client, args, message):
    with pytest.raises(BadInput, match=message):
        oracle.plan_add_feed(client, DEPLOYER, *args)


def test_an_unknown_feed_is_bad_input(client: Client):
    with pytest.raises(BadInput, match="has no feed"):
        oracle.feed(client, "NOPE/USD")
