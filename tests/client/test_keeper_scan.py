"""The keeper's event scan (issue 23): each market's logs are read from the market's
creation block, never from block 0; a checkpoint (the last block scanned and the
accounts seen, per chain id and market address) makes the next pass read only the new
blocks, persists in a JSON file written atomically, and is dropped for a scan from the
creation block when the chain's head is below it (a restarted local node) or the suite
was redeployed. Every pass finds what a full scan finds. A perp account is found from
its first `OrderCommitted`, before any position: its pending order is the keeper's too.

The log queries are counted by a wrapper on the chain object (`counted`). The world
(module-scoped, each test rolls back to it) is `test_keeper`'s, spread over blocks:
lending market 1 created 40 blocks after the SPV, perp market 1 40 blocks later, then
Bob's loan and Bob's and Alice's longs (orders, executed at the next round), and the
fall (rounds within the feed's move limit) that makes Bob's liquidatable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boa
import pytest

from gpushares.client import keeper as keepers
from gpushares.client import perp as perps
from gpushares.client import pool as pools
from gpushares.client.chain import ChainError, checksum
from gpushares.client.context import Client
from gpushares.client.markets import accounts_in_events
from gpushares.perp import WAD
from tests.client.conftest import ALICE, BOB, OPERATOR, STRANGER, sent
from tests.client.test_perp import next_round, open_, perp_market, walk
from tests.client.test_pool import (
    KEEPER,
    NAV_FEED,
    SHARE,
    USDC,
    SpvWorld,
    borrow,
    lending_market,
    spv_world,
)

Query = tuple[str, int, int | None]


@pytest.fixture(scope="module")
def world(client: Client) -> SpvWorld:
    result = spv_world(client)
    result.extra["start"] = client.chain.head().number
    boa.env.time_travel(blocks=40)
    created = {}
    head = client.chain.head().number
    lending_market(client, result)
    created[pools.market(client, 1).address] = head
    boa.env.time_travel(blocks=40)
    head = client.chain.head().number
    perp_market(client, result)
    created[perps.market(client, 1).address] = head
    boa.env.time_travel(blocks=20)
    borrow(client, Decimal("0.69"))
    open_(client, ALICE, 3_000, 1_500)
    boa.env.time_travel(blocks=20)
    open_(client, BOB, 4_000, 1_100)
    boa.env.time_travel(blocks=20)
    result.oracle.publish(NAV_FEED, "12.5")
    walk(client, "2.20")
    result.extra["created"] = created
    return result


@contextmanager
def counted(client: Client) -> Iterator[list[Query]]:
    """Every `Chain.logs` query made meanwhile: (address, from block, to block)."""
    chain = client.chain
    real = chain.logs
    queries: list[Query] = []

    def logs(address: str, topics: Any, from_block: int, to_block: int | None = None) -> Any:
        queries.append((checksum(address), from_block, to_block))
        return real(address, topics, from_block, to_block)

    chain.logs = logs  # type: ignore[method-assign]
    try:
        yield queries
    finally:
        del chain.logs


def head(client: Client) -> int:
    return client.chain.head().number


def markets_of(world: SpvWorld) -> tuple[str, str]:
    pool, market = world.extra["created"]
    return pool, market


def essence(plan: keepers.KeeperPlan) -> tuple[Any, ...]:
    """What a pass found and would send, without how it read the logs."""
    return ([line for p in plan.lending for line in p.lines(True)],
            [line for p in plan.perps for line in p.lines(True)],
            [(p.address, p.open_loans, p.due, p.txs) for p in plan.lending],
            [(p.address, p.open_positions, p.due, p.orders, p.txs) for p in plan.perps],
            plan.refusal is None)


def full_scan(client: Client, world: SpvWorld) -> tuple[list[str], list[str]]:
    """Every borrower and trader, from the markets' events since block 0 (the client's
    one-off scan, no checkpoint)."""
    pool, market = markets_of(world)
    return (accounts_in_events(client.chain.contract("LendingPool", pool), keepers.LENDING_EVENTS),
            accounts_in_events(client.chain.contract("PerpMarket", market), keepers.PERP_EVENTS))


def remembered(client: Client, path: Path, world: SpvWorld) -> tuple[list[str], list[str]]:
    saved = keepers.Checkpoints(path)
    found = [saved.get(client.chain.chain_id, m) for m in markets_of(world)]
    assert all(f is not None for f in found)
    return found[0].accounts, found[1].accounts  # type: ignore[union-attr]


def new_activity(client: Client, world: SpvWorld) -> None:
    """30 blocks on: Alice borrows against shares of her own, the stranger opens a ~9x
    long, and the index falls to 2.00 (the stranger's long is liquidatable)."""
    boa.env.time_travel(blocks=30)
    client.chain.send(client.token(1).mint.tx(ALICE, 100 * SHARE), OPERATOR)
    sent(client, pools.plan_deposit_collateral(client, ALICE, 1, 100 * SHARE), ALICE)
    sent(client, pools.plan_borrow(client, ALICE, 1, 100 * USDC), ALICE)
    boa.env.time_travel(blocks=5)
    open_(client, STRANGER, 4_000, 1_000)
    boa.env.time_travel(blocks=5)
    walk(client, "2.00")


def test_the_first_pass_reads_each_market_from_its_creation_block(client: Client,
                                                                 world: SpvWorld,
                                                                 tmp_path: Path):
    path = tmp_path / "keeper.json"
    created = world.extra["created"]
    pool, market = markets_of(world)
    assert created[pool] >= world.extra["start"] + 40 and created[market] >= created[pool] + 40
    with counted(client) as queries:
        plan = keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path))
    now = head(client)
    # One query per market, from its creation block to the head: none from block 0.
    assert [q for q in queries if q[0] in created] == [(pool, created[pool], now),
                                                       (market, created[market], now)]
    # Finding the creation block asks the factories for their MarketCreated event naming
    # the market (titanoboa keeps no state history for the binary search on code);
    # the checkpoint remembers it, so no later pass asks again.
    factories = {checksum(client.deployed.lending_pool_factory or ""),
                 checksum(client.deployed.perp_market_factory or "")}
    assert {q[0] for q in queries} - set(created) == factories
    assert [(s.kind, s.created, s.first, s.last, s.discarded) for s in plan.scans] == [
        ("lending", created[pool], created[pool], now, None),
        ("perp", created[market], created[market], now, None)]
    assert (plan.loans_due, plan.positions_due) == (1, 1)
    # The file: keyed by chain id and market address, the head as the last block scanned.
    saved = json.loads(path.read_text())
    chain_id = client.chain.chain_id
    assert set(saved["markets"]) == {f"{chain_id}:{pool}", f"{chain_id}:{market}"}
    assert saved["markets"][f"{chain_id}:{pool}"]["scanned_to"] == now
    assert saved["markets"][f"{chain_id}:{pool}"]["created"] == created[pool]
    # Identical to a full scan: the same accounts in the same order, the same plan.
    assert remembered(client, path, world) == full_scan(client, world)
    assert BOB in remembered(client, path, world)[0]
    assert essence(plan) == essence(keepers.plan_pass(client, KEEPER))


def test_the_next_pass_reads_only_the_new_blocks_and_finds_new_accounts(client: Client,
                                                                       world: SpvWorld,
                                                                       tmp_path: Path):
    path = tmp_path / "keeper.json"
    pool, market = markets_of(world)
    first = keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path, margin=0))
    assert (first.lending[0].open_loans, first.perps[0].open_positions) == (1, 2)
    before = head(client)
    new_activity(client, world)
    now = head(client)
    # A new run (the checkpoints read from the file) reads blocks before+1..now only.
    with counted(client) as queries:
        plan = keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path, margin=0))
    assert queries == [(pool, before + 1, now), (market, before + 1, now)]
    assert [(s.first, s.last, s.new_accounts) for s in plan.scans] == [(before + 1, now, 1),
                                                                        (before + 1, now, 1)]
    assert plan.lending[0].open_loans == 2 and plan.perps[0].open_positions == 3
    assert STRANGER in [d.account for d in plan.perps[0].due]
    assert essence(plan) == essence(keepers.plan_pass(client, KEEPER))
    assert remembered(client, path, world) == full_scan(client, world)
    assert ALICE in remembered(client, path, world)[0]
    assert STRANGER in remembered(client, path, world)[1]
    # No new block: no log query at all.
    with counted(client) as queries:
        again = keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path, margin=0))
    assert queries == [] and essence(again) == essence(plan)
    # The default margin reads the last REORG_MARGIN blocks again, in the same query.
    boa.env.time_travel(blocks=3)
    with counted(client) as queries:
        keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path))
    margin = now + 1 - keepers.REORG_MARGIN
    assert queries == [(pool, margin, now + 3), (market, margin, now + 3)]


def test_an_order_is_found_from_its_commit_before_any_fill(client: Client, world: SpvWorld,
                                                          tmp_path: Path):
    """The operator, who never traded, commits an order after a checkpointed pass: the
    next pass finds the account in the new blocks' `OrderCommitted` (no position yet)
    and leaves the order waiting; after the next round it executes it."""
    path = tmp_path / "keeper.json"
    keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path, margin=0))
    before = head(client)
    assert OPERATOR not in remembered(client, path, world)[1]
    boa.env.time_travel(blocks=10)
    sent(client, perps.plan_commit(client, OPERATOR, 1, -500 * WAD, margin=300 * USDC),
         OPERATOR)
    plan = keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path, margin=0))
    (scan,) = [s for s in plan.scans if s.kind == "perp"]
    assert (scan.first, scan.new_accounts) == (before + 1, 1)
    assert OPERATOR in remembered(client, path, world)[1]
    (order,) = plan.perps[0].orders
    assert (order.account, order.action) == (OPERATOR, "wait")
    assert plan.perps[0].open_positions == 2  # Alice and Bob: the operator has none yet
    assert essence(plan) == essence(keepers.plan_pass(client, KEEPER))
    next_round(client)
    plan = keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path, margin=0))
    assert [o.account for o in plan.perps[0].executions] == [OPERATOR]
    done = keepers.run(client, KEEPER, plan)
    assert done.orders_executed == 1
    assert perps.position(client, 1, OPERATOR).size == -500 * WAD


def test_a_chain_whose_head_is_below_the_checkpoint_is_read_again_from_creation(
        client: Client, world: SpvWorld, tmp_path: Path):
    path = tmp_path / "keeper.json"
    created = world.extra["created"]
    pool, market = markets_of(world)
    with boa.env.anchor():
        boa.env.time_travel(blocks=500)
        keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path))
        high = head(client)
    # As after a local node's restart: the chain is back below the checkpoint.
    now = head(client)
    assert now < high
    with counted(client) as queries:
        plan = keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path))
    assert [q for q in queries if q[0] in created] == [(pool, created[pool], now),
                                                       (market, created[market], now)]
    why = (f"the chain's head, block {now:,}, is below the checkpoint's block {high:,}: a "
           "restarted node or a reorg")
    assert [s.discarded for s in plan.scans] == [why, why]
    text = "\n".join(plan.lines())
    assert (f"market 1: checkpoint discarded ({why}): rescanned from the market's creation at "
            f"block {created[pool]:,}") in text
    assert f"perp market 1: checkpoint discarded ({why})" in text
    assert essence(plan) == essence(keepers.plan_pass(client, KEEPER))
    assert remembered(client, path, world) == full_scan(client, world)
    saved = keepers.Checkpoints(path)
    assert saved.get(client.chain.chain_id, pool).scanned_to == now  # type: ignore[union-attr]


def test_checkpoints_are_kept_per_chain_and_per_deployment(client: Client, world: SpvWorld,
                                                           tmp_path: Path):
    path = tmp_path / "keeper.json"
    pool, market = markets_of(world)
    keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path))
    # The same addresses on another chain, far ahead and with no account: never read here.
    data = json.loads(path.read_text())
    elsewhere = client.chain.chain_id + 1
    other = {f"{elsewhere}:{entry['market']}": dict(entry, chain_id=elsewhere, accounts=[],
                                                    scanned_to=entry["scanned_to"] + 10**6)
             for entry in data["markets"].values()}
    data["markets"] |= other
    path.write_text(json.dumps(data))
    with counted(client) as queries:
        plan = keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path, margin=0))
    assert queries == [] and all(s.discarded is None for s in plan.scans)
    assert (plan.loans_due, plan.positions_due) == (1, 1)
    kept = keepers.Checkpoints(path)
    for address in (pool, market):
        assert kept.get(elsewhere, address).accounts == []  # type: ignore[union-attr]
    # A redeployed suite (a newer deployments file) is read again from creation.
    redeployed = Client(client.chain, client.deployed.model_copy(
        update={"deployed_at": client.deployed.deployed_at + timedelta(hours=1)}))
    plan = keepers.plan_pass(redeployed, KEEPER, checkpoints=keepers.Checkpoints(path))
    assert [s.discarded for s in plan.scans] == [
        "it predates the deployments file: a redeployed suite"] * 2
    assert [s.first for s in plan.scans] == list(world.extra["created"].values())


@pytest.mark.parametrize("content", [
    "{\"version\": 1, \"markets\": {",
    "[]",
    "{\"version\": 2, \"markets\": {}}",
    "{\"version\": 1, \"markets\": {\"1:0x0000000000000000000000000000000000000001\": "
    "{\"chain_id\": 1, \"market\": \"0x0000000000000000000000000000000000000001\", "
    "\"kind\": \"perp\", \"deployed_at\": \"2026-01-01T00:00:00Z\", \"created\": 9, "
    "\"scanned_to\": 5, \"accounts\": []}}}",
], ids=["truncated", "not-an-object", "other-version", "scanned-before-creation"])
def test_an_unreadable_checkpoint_file_says_what_to_do(client: Client, world: SpvWorld,
                                                       tmp_path: Path, content: str):
    path = tmp_path / "keeper.json"
    path.write_text(content)
    with pytest.raises(keepers.CheckpointError) as caught:
        keepers.Checkpoints(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is not a valid keeper checkpoint file (")
    assert message.endswith("delete it or pass --rescan (the keeper then scans every market "
                            "from its creation block and writes the file again)")
    assert isinstance(caught.value, ChainError)  # the scripts print it as one error line
    # --rescan ignores it and writes it anew.
    plan = keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path, rescan=True))
    assert (plan.loans_due, plan.positions_due) == (1, 1)
    assert remembered(client, path, world) == full_scan(client, world)


def test_the_file_is_replaced_whole_or_not_at_all(client: Client, world: SpvWorld,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "state" / "keeper.json"
    keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path))
    before = path.read_bytes()
    boa.env.time_travel(blocks=10)

    def crash(src: str, dst: str) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(os, "replace", crash)  # what write_atomic renames with
    with pytest.raises(OSError, match="no space left"):
        keepers.plan_pass(client, KEEPER, checkpoints=keepers.Checkpoints(path))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["keeper.json"]


def test_the_default_file_is_beside_the_deployments_file_not_among_them():
    deployments = Path("deployments/ethereum-local-31337.json")
    assert keepers.default_state_path(deployments) == Path(
        "deployments/keeper/ethereum-local-31337.json")
