"""The app's world (`gpushares.appworld`) on its own anvil: built once, it holds what it
promises, read back through the client layer (holdings and income, Carol refused, Bob's
loan and its health, the perp positions, the subscription vault, the feeds' history,
Frank's unsubmitted attestation); then `publish()` adds a round, a committed perp order
is executed by `keeper_pass()`, and `fulfil_subscriptions()` fulfils the subscription
waiting for that NAV. Prints how long the world took to build."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gpushares.aperun import run_ape
from gpushares.appworld import NETWORK, World, running_world
from gpushares.client import artifacts, kyc, oracle, perp, pool, spv, vault
from jurisdictions import eligibility
from jurisdictions.codes import Restriction

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-appworld")]

SHARE = 10**18
USD = 10**6
# The world's build, contracts already compiled, on a loaded 2-core machine: ~25 s.
BUILD_BUDGET_S = 150


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    started = time.monotonic()
    artifacts.bytecode("MockStablecoin")  # a changed contract compiles here, not in the build
    compiled = time.monotonic() - started
    with running_world(tmp_path_factory.mktemp("appworld")) as built:
        print(f"\nappworld: contracts ready in {compiled:.1f}s, world built in "
              f"{built.build_seconds:.1f}s")
        yield built


def test_the_world_builds_within_its_budget(world: World):
    print(f"appworld build: {world.build_seconds:.1f}s")
    assert 0 < world.build_seconds < BUILD_BUDGET_S


def test_the_cast_sits_at_the_demos_dev_accounts(world: World):
    assert [world.indices[w] for w in ("platform", "operator", "alice", "bob", "carol", "dave",
                                       "erin")] == list(range(7))
    assert world.people["alice"] == "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    assert world.indices["frank"] not in (7, 8, 9, 12, 13, 20, 21, 22, 30)
    assert world.deployments_path.is_file()
    assert world.env()["GPU_SHARES_DEPLOYMENTS_DIR"] == str(world.deployments_path.parent)


def test_holdings_and_claimable_income(world: World):
    c, p, sid = world.client, world.people, world.spv_id
    alice = spv.holding(c, sid, p["alice"])
    assert alice.shares == 2_400 * SHARE  # 3,000 minted, 500 to Bob, 100 to Dmytro
    assert alice.claimable > 0  # the last distribution, unclaimed
    assert spv.holding(c, sid, p["bob"]).shares == 1_500 * SHARE  # 4,000 in the pool
    assert spv.holding(c, sid, p["dmytro"]).shares == 100 * SHARE
    assert spv.holding(c, sid, p["dave"]).shares > 0  # his subscription, claimed
    status = spv.status(c, sid)
    assert status.active_gpus == 9  # the fleet and the H100 the subscription paid for


def test_carol_is_refused_with_the_wallets_message(world: World):
    c, p = world.client, world.people
    assert kyc.record(c, p["carol"]).jurisdiction == 408  # North Korea
    movement = spv.check_movement(c, world.spv_id, p["alice"], p["carol"], "100")
    assert movement.code == Restriction.RECEIVER_JURISDICTION_BLOCKED
    plan = spv.plan_transfer(c, p["alice"], world.spv_id, p["carol"], "100")
    assert plan.refusal is not None and movement.message in plan.refusal.reason


def test_bobs_loan_is_healthy_and_daves_supply_earns(world: World):
    c, p = world.client, world.people
    bob = pool.position(c, world.pool_number, p["bob"])
    assert bob.collateral == 4_000 * SHARE and bob.debt > 50_000 * USD
    assert bob.health_factor is not None and bob.health_factor > SHARE  # above 1
    assert bob.price_fresh
    assert pool.position(c, world.pool_number, p["dave"]).supplied_value >= 200_000 * USD


def test_the_perp_market_has_open_positions(world: World):
    c, p = world.client, world.people
    assert perp.position(c, world.perp_number, p["alice"]).size == 5_000 * SHARE
    assert perp.position(c, world.perp_number, p["dave"]).size == 12_500 * SHARE
    assert perp.position(c, world.perp_number, p["operator"]).size < 0  # the hedge
    assert perp.market(c, world.perp_number).index.fresh


def test_the_subscription_vault_is_open_with_a_request_waiting(world: World):
    c, p = world.client, world.people
    assert vault.vault_of(c, world.spv_id) is not None
    book = vault.requests(c, world.spv_id)
    erin = next(r for r in book.requests if r.controller == p["erin"])
    assert erin.pending_deposit == 1_000 * USD
    assert erin.deposit_refusal is not None  # no NAV published after her request yet


def test_the_feeds_have_a_history(world: World):
    for name in (world.index_feed, world.nav_feed):
        feed = oracle.feed(world.client, name)
        assert feed.round_id >= 4 and not feed.stale, feed.describe()
    for name in world.cluster.names:  # every node serves its log
        health = world.cluster.health(name)
        assert health["status"] == "ok" and health["log_size"] > 0, health


def test_frank_is_unregistered_with_a_valid_attestation(world: World):
    c, frank = world.client, world.people["frank"]
    assert not kyc.record(c, frank).registered
    assert c.erc20(c.deployed.income_token).balanceOf(frank) > 0
    signed = eligibility.SignedEligibility.model_validate_json(
        world.frank_attestation.read_text())
    assert signed.attestation.investor == frank
    plan = kyc.plan_submit(c, signed)
    assert plan.refusal is None  # he can submit it from his own wallet


def test_publish_adds_a_round(world: World):
    before = {n: oracle.feed(world.client, n).round_id
              for n in (world.index_feed, world.nav_feed)}
    world.publish()
    for name, round_id in before.items():
        assert oracle.feed(world.client, name).round_id == round_id + 1


def test_the_keeper_executes_an_order_committed_before_a_round(world: World):
    c, bob, number = world.client, world.people["bob"], world.perp_number
    world.send(perp.plan_commit(c, bob, number, 100 * SHARE, margin=100 * USD, slippage="5"),
               "bob")
    assert perp.order(c, number, bob) is not None
    assert world.keeper_pass() == []  # no round observed after the commit yet
    world.publish()
    receipts = world.keeper_pass()
    assert len(receipts) == 1
    assert perp.order(c, number, bob) is None
    assert perp.position(c, number, bob).size == 100 * SHARE


def test_the_operator_fulfils_the_subscription_after_the_nav(world: World):
    c, erin = world.client, world.people["erin"]
    receipts = world.fulfil_subscriptions()
    assert len(receipts) == 1
    request = vault.investor(c, world.spv_id, erin).request
    assert request.pending_deposit == 0 and request.claimable_deposit_shares > 0
    assert world.fulfil_subscriptions() == []


def test_advance_moves_the_chain_clock(world: World):
    now = world.client.chain.now()
    world.advance(3_600)
    assert world.client.chain.now() >= now + 3_600


def test_the_scripts_find_the_worlds_deployments(world: World):
    done = run_ape(["run", "spv", "status", "--spv", str(world.spv_id), "--holder",
                    world.people["alice"], "--network", NETWORK], world.env())
    assert done.returncode == 0, done.output
    assert "Lone Star H100 Shares" in done.output and "2,400" in done.output
