"""The keeper: lending markets (repay unhealthy loans, receive collateral) and perp
markets (close positions below maintenance, execute due orders, cancel expired ones).

    plan = keeper.plan_pass(client, me)                 # every lending and perp market
    for line in plan.lines(): print(line)               # what it sees and would do
    done = keeper.run(client, signer, plan, on_line=print)

Lending: a market whose price is stale is skipped (the pool pauses liquidations);
otherwise every loan above the liquidation LTV (valued with `gpushares.lending`, the
pool's rounding) is liquidated in full, or up to `max_repay` per loan. Before anything
is sent the plan checks that the keeper may hold each collateral (the share token's
ERC-1404 rules, which the pool checks first) and holds the loan asset the
liquidations pull: otherwise `KeeperPlan.refusal` says why, and no lending market is
touched.

Perps: a market whose index is stale, or whose feed the hub halted after refusing a
move, gets no liquidation and no execution (the market refuses both); otherwise every
position the `PerpLens.can_liquidate` view flags is liquidated: the market closes it at
the index, pays the keeper `min_keeper_fee + notional * liquidation_fee` (the keeper
needs no funds) and its insurance fund takes what is left or pays the bad debt. Then
every pending order `PerpLens.order_status` calls executable (inside its window, an
oracle round observed after its commit) is executed at that round's index
(`gpushares.client.perp.execution` predicts the fill). An order whose trade the market
refuses (past its acceptable price, above the leverage cap, ...) is executed all the
same: the market cancels it (`OrderFailed`), so nobody can hold an order back for a
better moment. Either way the keeper earns the order's keeper fee, credited to its own
margin in the market (withdrawable with `ape run perp withdraw`). Expired orders are
cancelled (their keeper fee no longer reserved in the trader's margin), whatever the
index.

Scanning: who has a loan, a position or an order is read from each market's events
(lending: `CollateralSupplied` and `Borrowed`, perps: `PositionModified` and
`OrderCommitted`), from the market's creation block (the factory's `MarketCreated`
event for it), never from block 0. A `Checkpoints` remembers, per chain id and market
address, the last block scanned and every account seen, so the next pass reads only
the blocks since (and `REORG_MARGIN` blocks behind them, for a shallow reorg). With a
path the checkpoints persist across runs in a JSON file, written atomically:

    checkpoints = keeper.Checkpoints(keeper.default_state_path(deployments_file))
    plan = keeper.plan_pass(client, me, checkpoints=checkpoints)    # saves them

A market's checkpoint is discarded, and the market rescanned from its creation, when
the chain's head is below it (a restarted local node, a reorg) or the deployments file
is newer than it (a redeployed suite); `plan.notes` says so. An unreadable file is
refused with what to do (`CheckpointError`); `rescan=True` ignores it and rewrites it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gpushares import lending, reasons
from gpushares import perp as mirror
from gpushares.client import markets
from gpushares.client import perp as perp_client
from gpushares.client import pool as pool_client
from gpushares.client.chain import (
    Chain,
    ChainError,
    Contract,
    Receipt,
    Refused,
    Reverted,
    Tx,
    checksum,
    revert_reason,
)
from gpushares.client.context import Client
from gpushares.client.markets import LOG_PAGE, Token
from gpushares.client.units import address
from gpushares.deployments import write_atomic

MAX_UINT256 = 2**256 - 1
_MODEL = ConfigDict(frozen=True, arbitrary_types_allowed=True)


# ---------------------------------------------------------------------------------
# Scanning: each market's accounts from its events, remembered between passes
# ---------------------------------------------------------------------------------

# Blocks behind a checkpoint that each pass reads again (in the same query): an event a
# shallow reorg moved into an already scanned block is still found.
REORG_MARGIN = 12
# The events naming a market's accounts: those `pool.loans` and `perp.positions` read
# (a perp account's position and pending order both start with an `OrderCommitted`).
LENDING_EVENTS = {"CollateralSupplied": "borrower", "Borrowed": "borrower"}
PERP_EVENTS = {"PositionModified": "account", "OrderCommitted": "account"}
_KINDS = {"lending": "market", "perp": "perp market"}
Kind = Literal["lending", "perp"]


class CheckpointError(ChainError):
    """The checkpoint file cannot be read: what is wrong and what to do."""


class MarketCheckpoint(BaseModel):
    """What the keeper knows of one market's events: every account they name (in order
    of first appearance) from the market's creation block up to `scanned_to`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain_id: int
    market: str
    kind: Kind
    deployed_at: datetime = Field(description="the deployments file's: a redeploy starts over")
    created: int = Field(ge=0, description="the block of the factory's MarketCreated event")
    scanned_to: int = Field(ge=0, description="the last block scanned")
    accounts: list[str]

    @property
    def key(self) -> str:
        return checkpoint_key(self.chain_id, self.market)

    @model_validator(mode="after")
    def _ordered(self) -> MarketCheckpoint:
        if self.scanned_to < self.created:
            raise ValueError(f"scanned_to {self.scanned_to} is before the market's creation "
                             f"block {self.created}")
        for where in (self.market, *self.accounts):
            if checksum(where) != where:
                raise ValueError(f"{where} is not a checksummed address")
        return self


class CheckpointFile(BaseModel):
    """The checkpoint file: one `MarketCheckpoint` per "<chain id>:<market address>"."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    markets: dict[str, MarketCheckpoint] = {}

    @model_validator(mode="after")
    def _keys(self) -> CheckpointFile:
        for key, entry in self.markets.items():
            if key != entry.key:
                raise ValueError(f"entry {key!r} is for {entry.key!r}")
        return self


def checkpoint_key(chain_id: int, market: str) -> str:
    return f"{chain_id}:{checksum(market)}"


def default_state_path(deployments_path: Path) -> Path:
    """Where the keeper keeps its checkpoints for the chain of `deployments_path`: a
    `keeper` folder beside it, under the same name (not in the deployments folder
    itself, where every `*.json` is a deployments file)."""
    return deployments_path.parent / "keeper" / deployments_path.name


class Checkpoints:
    """The keeper's memory between passes. `path` None keeps it in this process only;
    otherwise it is read from `path` (a missing file is an empty one) and `save` writes
    it back atomically. `rescan` starts empty whatever the file holds (an unreadable
    file too), so the next `save` rewrites it. `margin`: blocks re-read behind a
    checkpoint each pass."""

    def __init__(self, path: Path | str | None = None, *, rescan: bool = False,
                 margin: int = REORG_MARGIN) -> None:
        self.path = None if path is None else Path(path)
        self.margin = margin
        self.file = CheckpointFile()
        if self.path is not None and not rescan and self.path.exists():
            self.file = _read_checkpoints(self.path)

    def get(self, chain_id: int, market: str) -> MarketCheckpoint | None:
        return self.file.markets.get(checkpoint_key(chain_id, market))

    def put(self, checkpoint: MarketCheckpoint) -> None:
        self.file.markets[checkpoint.key] = checkpoint

    def save(self) -> None:
        """Write the file (temp file, fsync, rename: a crash leaves the old one whole)."""
        if self.path is None:
            return
        payload = json.dumps(self.file.model_dump(mode="json"), indent=1, sort_keys=True)
        write_atomic(self.path, payload + "\n")


def _read_checkpoints(path: Path) -> CheckpointFile:
    fix = ("delete it or pass --rescan (the keeper then scans every market from its "
           "creation block and writes the file again)")
    try:
        return CheckpointFile.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}"
                             for e in exc.errors()[:3])
        raise CheckpointError(f"{path} is not a valid keeper checkpoint file ({problems}): "
                              f"{fix}") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot read the keeper checkpoint file {path} ({exc}): "
                              f"{fix}") from exc


class MarketScan(BaseModel):
    """What one pass read of one market's events: blocks `first`..`last` (none when
    `first > last`) in `queries` log queries; `discarded` says why the checkpoint was
    dropped for a scan from the creation block."""

    model_config = _MODEL

    kind: Kind
    number: int
    market: str
    created: int
    first: int
    last: int
    queries: int
    accounts: int
    new_accounts: int
    discarded: str | None = None

    def note(self) -> str | None:
        if self.discarded is None:
            return None
        return (f"{_KINDS[self.kind]} {self.number}: checkpoint discarded ({self.discarded}): "
                f"rescanned from the market's creation at block {self.created:,}")


def _address_topic(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(checksum(address)[2:])


def market_creation_block(chain: Chain, factory: Contract, market: str) -> int:
    """The block of `factory`'s `MarketCreated` event for `market`, where the market's
    events start. A node that keeps state history finds it by a binary search on code
    (`markets.creation_block`), which the event confirms; otherwise (a pruned node,
    titanoboa) the factory's events name it, read from genesis."""
    topics = [[factory.event_topic("MarketCreated")], None, [_address_topic(market)]]
    guess = markets.creation_block(chain, market)
    if chain.logs(factory.address, topics, guess, guess):
        return guess
    head = chain.head().number
    for first in range(0, head + 1, LOG_PAGE):
        found = chain.logs(factory.address, topics, first, min(first + LOG_PAGE - 1, head))
        if found:
            return found[0].block_number
    return 0  # not this factory's event: read the market's events from genesis


def _discarded(known: MarketCheckpoint, kind: Kind, deployed_at: datetime,
               head: int) -> str | None:
    """Why a market's checkpoint cannot be trusted on this chain, or None."""
    if head < known.scanned_to:
        return (f"the chain's head, block {head:,}, is below the checkpoint's block "
                f"{known.scanned_to:,}: a restarted node or a reorg")
    if known.deployed_at != deployed_at:
        return "it predates the deployments file: a redeployed suite"
    if known.kind != kind:
        return f"it was recorded for a {known.kind} market"
    return None


def scan_accounts(client: Client, checkpoints: Checkpoints, kind: Kind, number: int,
                  market: Contract, factory: Contract,
                  events: dict[str, str]) -> tuple[list[str], MarketScan]:
    """Every account `market`'s `events` name (`events[name]`: the field), in order of
    first appearance, from its creation block to the head: the checkpoint's accounts
    plus those of the blocks since it (one log query per `LOG_PAGE` blocks)."""
    chain = client.chain
    head = chain.head().number
    deployed_at = client.deployed.deployed_at
    known = checkpoints.get(chain.chain_id, market.address)
    why = None if known is None else _discarded(known, kind, deployed_at, head)
    if known is None or why is not None:
        created = market_creation_block(chain, factory, market.address)
        first, accounts = created, []
    else:
        created, accounts = known.created, known.accounts
        first = max(known.scanned_to + 1 - checkpoints.margin, created)
    seen = dict.fromkeys(accounts)
    topics = [[market.event_topic(event) for event in events]]
    queries = 0
    for start in range(first, head + 1, LOG_PAGE):
        queries += 1
        for log in chain.logs(market.address, topics, start, min(start + LOG_PAGE - 1, head)):
            for event, field in events.items():
                decoded = market.decode_event(event, log)
                if decoded is not None:
                    seen.setdefault(checksum(decoded[field]), None)
    checkpoints.put(MarketCheckpoint(
        chain_id=chain.chain_id, market=market.address, kind=kind, deployed_at=deployed_at,
        created=created, scanned_to=max(head, created), accounts=list(seen)))
    return list(seen), MarketScan(kind=kind, number=number, market=market.address,
                                  created=created, first=first, last=head, queries=queries,
                                  accounts=len(seen), new_accounts=len(seen) - len(accounts),
                                  discarded=why)


@dataclass(frozen=True)
class _ScannedPool(pool_client._Pool):
    """A lending market whose borrowers are the keeper's scan (`pool.loans` otherwise
    reads every event since the market's creation on each call)."""

    scanned: tuple[str, ...] = ()

    def borrowers(self) -> list[str]:
        return list(self.scanned)


# ---------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------


def predict(book: pool_client.LoanBook, loan: pool_client.Loan,
            max_repay: int) -> tuple[int, int, int]:
    """What liquidating `loan` (up to `max_repay`) would do at the book's price:
    (repaid, seized, bad debt), with the pool's own arithmetic (`lending.liquidation`)."""
    assert book.price.price is not None
    return lending.liquidation(book.params, book.liquidation_incentive, book.price.price,
                               loan.collateral, loan.debt, max_repay)


class LoanLiquidation(BaseModel):
    """One loan the keeper liquidates, with what the pool's arithmetic predicts."""

    model_config = _MODEL

    borrower: str
    debt: int
    ltv: str
    repaid: int
    seized: int
    bad_debt: int


class LendingPass(BaseModel):
    """One lending market as the keeper sees it."""

    model_config = _MODEL

    number: int
    address: str
    asset: Token
    collateral: Token
    price: pool_client.PriceView
    open_loans: int
    due: list[LoanLiquidation]
    max_repay: int
    txs: list[Tx]  # the approval (if one is missing), then one liquidation per loan
    scan: MarketScan  # what this pass read of the market's events

    def line(self, loan: LoanLiquidation, verb: str, repaid: int, seized: int,
             bad_debt: int) -> str:
        return (f"  {loan.borrower}: debt {self.asset.fmt(loan.debt)}, LTV {loan.ltv} -> {verb} "
                f"{self.asset.fmt(repaid)}, collateral seized {self.collateral.fmt(seized)}, bad "
                f"debt written off {self.asset.fmt(bad_debt)}")

    def lines(self, dry_run: bool) -> list[str]:
        if not self.price.fresh:
            return [f"market {self.number}: {self.price.refusal}: liquidations are paused until "
                    "a fresh price, skipped"]
        assert self.price.price is not None
        out = [f"market {self.number} ({self.collateral.symbol}/{self.asset.symbol}): "
               f"{self.open_loans} open loan(s), {len(self.due)} liquidatable at "
               f"{self.price.text(self.price.price)}"]
        if dry_run and self.due:
            out.append(f"market {self.number} (dry run):")
            out += [self.line(d, "would repay", d.repaid, d.seized, d.bad_debt) for d in self.due]
        return out


class PerpLiquidation(BaseModel):
    """One perp position the keeper liquidates, as the PerpLens values it."""

    model_config = _MODEL

    account: str
    size: int
    equity: int
    maintenance: int
    keeper_fee: int

    @property
    def bad_debt(self) -> int:
        return max(-self.equity, 0)


#: What the keeper does with a pending order: execute it (it fills), execute it knowing
#: the market refuses its trade (it fails: the market cancels it, the keeper still
#: paid), cancel it (expired), leave it waiting (for its delay, an oracle round after
#: the commit, or a fresh index), or leave it because the execution itself would revert
#: before any trade.
OrderAction = Literal["execute", "fail", "cancel", "wait", "refused"]
# The refusals of `execute_order` that come before the trade: the transaction reverts
# and the order stays. Any other refusal is the trade's: the order fails and is
# cancelled, the keeper paid.
PRE_TRADE_REFUSALS = frozenset({
    reasons.PERP_NO_PENDING_ORDER, reasons.PERP_ORDER_NOT_EXECUTABLE_YET,
    reasons.PERP_ORDER_EXPIRED_CANCEL, reasons.PERP_INDEX_PRICE_STALE_OR_HALTED,
    reasons.PERP_NO_ORACLE_ROUND_AFTER, reasons.PERP_TOO_MANY_ROUNDS_SINCE,
    reasons.PERP_INDEX_PRICE_NOT_POSITIVE, reasons.HUB_NO_DATA_PRESENT_FEED,
})


class PerpOrder(BaseModel):
    """One pending order as the keeper sees it: the order, what the keeper does with it
    and, for an executable one, the execution predicted (fill round, fill, fees) or the
    market's refusal."""

    model_config = _MODEL

    order: perp_client.OrderView
    action: OrderAction
    quote: perp_client.Quote | None = None
    waits_for_index: bool = False  # due, but the index is stale or halted

    @property
    def account(self) -> str:
        return self.order.account

    def line(self, dry_run: bool) -> str:
        o, money = self.order, self.order.asset.fmt
        head = (f"  {o.account}: order {perp_client.traded(o.size_delta)} committed at round "
                f"{o.commit_round}")
        q = self.quote
        verb = "would execute" if dry_run else "executes"
        if self.action == "execute":
            assert q is not None
            return (f"{head} -> {verb} at round {q.round_id}'s index "
                    f"{perp_client.fmt_price(q.index_price)}: fill "
                    f"{perp_client.fmt_price(q.fill_price)}, fee {money(q.fee)}, premium "
                    f"{money(q.premium)}; keeper fee {money(o.keeper_fee)}")
        if self.action == "fail":
            assert q is not None
            return (f"{head} -> {verb} it at round {q.round_id}'s index "
                    f"{perp_client.fmt_price(q.index_price)}, but the market refuses its trade: "
                    f"{q.explained}; the order fails and is cancelled, keeper fee "
                    f"{money(o.keeper_fee)}")
        if self.action == "cancel":
            verb = "would cancel it" if dry_run else "cancels it"
            return (f"{head}, expired {perp_client.fmt_seconds(o.now - o.expires_at)} ago -> "
                    f"{verb}: its keeper fee {money(o.keeper_fee)} no longer reserved")
        if self.action == "refused":
            assert q is not None
            return (f"{head}: its execution would be refused now: {q.explained}; left pending "
                    f"(it expires in {perp_client.fmt_seconds(o.expires_at - o.now)})")
        if self.waits_for_index:
            return (f"{head}: due, but the index is stale or halted: it waits for the next "
                    f"accepted report (expires in {perp_client.fmt_seconds(o.expires_at - o.now)})")
        return f"{head}: {o.state()}"


class PerpPass(BaseModel):
    """One perp market as the keeper sees it: its positions, the liquidations due, its
    pending orders and what the keeper does with each."""

    model_config = _MODEL

    number: int
    address: str
    feed: str
    asset: Token
    index: perp_client.IndexView
    open_positions: int
    due: list[PerpLiquidation]  # liquidations (sent only on a fresh index)
    orders: list[PerpOrder] = []  # every pending order
    txs: list[Tx]  # the liquidations, then the executions, then the cancellations
    scan: MarketScan  # what this pass read of the market's events

    def _of(self, action: OrderAction) -> list[PerpOrder]:
        return [o for o in self.orders if o.action == action]

    @property
    def executions(self) -> list[PerpOrder]:
        """The orders to execute: those that fill and those whose trade fails."""
        return [o for o in self.orders if o.action in ("execute", "fail")]

    @property
    def cancellations(self) -> list[PerpOrder]:
        return self._of("cancel")

    @property
    def orders_due(self) -> int:
        return len(self.executions) + len(self.cancellations)

    def lines(self, dry_run: bool) -> list[str]:
        refusal = self.index.refusal
        money = self.asset.fmt
        if refusal is not None:
            out = [f"perp market {self.number}: {refusal}{self.index.why_not_fresh()}: "
                   "liquidations and order executions wait for a fresh index, skipped"]
        else:
            out = [f"perp market {self.number} ({self.feed} / {self.asset.symbol}): "
                   f"{self.open_positions} open position(s), {len(self.due)} liquidatable at "
                   f"{perp_client.fmt_price(self.index.price)} (round {self.index.round_id})"]
            if dry_run and self.due:
                out.append(f"perp market {self.number} (dry run):")
                out += [f"  {d.account}: {perp_client.sized(d.size)}, equity {money(d.equity)} "
                        f"(maintenance {money(d.maintenance)}) -> would liquidate: keeper fee "
                        f"{money(d.keeper_fee)}, bad debt {money(d.bad_debt)}" for d in self.due]
        if self.orders:
            counts = {action: len(self._of(action))
                      for action in ("execute", "fail", "cancel", "wait", "refused")}
            parts = [f"{len(self.executions)} to execute"
                     + (f" ({counts['fail']} failing)" if counts["fail"] else ""),
                     f"{counts['cancel']} expired to cancel", f"{counts['wait']} waiting"]
            if counts["refused"]:
                parts.append(f"{counts['refused']} whose execution would be refused now")
            out.append(f"perp market {self.number}: {len(self.orders)} pending order(s): "
                       f"{', '.join(parts)}")
            out += [o.line(True) for o in self.orders if dry_run or o.action == "refused"]
        return out


class KeeperPlan(BaseModel):
    """What one keeper pass finds in the markets it covers, and would send."""

    model_config = _MODEL

    keeper: str
    lending: list[LendingPass]
    perps: list[PerpPass]
    refusal: Refused | None  # why no lending liquidation may be sent (the keeper's side)
    notes: list[str] = []
    covers_lending: bool = True
    covers_perps: bool = True

    @property
    def scans(self) -> list[MarketScan]:
        """What the pass read of each market's events."""
        return [p.scan for p in self.lending] + [p.scan for p in self.perps]

    @property
    def loans_due(self) -> int:
        return sum(len(p.due) for p in self.lending if p.price.fresh)

    @property
    def positions_due(self) -> int:
        return sum(len(p.due) for p in self.perps if p.index.refusal is None)

    @property
    def orders_due(self) -> int:
        """Orders to execute or cancel."""
        return sum(p.orders_due for p in self.perps)

    def lines(self, dry_run: bool = False) -> list[str]:
        """What the keeper sees, market by market (and, in a dry run, what it would do)."""
        out = list(self.notes)
        if self.covers_lending:
            if not self.lending:
                out.append("no markets yet: no unhealthy loans")
            for market in self.lending:
                out += market.lines(dry_run)
            stale = sum(1 for p in self.lending if not p.price.fresh)
            if self.lending and not self.loans_due:
                note = f" ({stale} market(s) skipped: stale price)" if stale else ""
                out.append(f"no unhealthy loans{note}")
            elif dry_run and self.refusal is None:
                out.append(f"dry run: {self.loans_due} loan(s) would be liquidated; nothing sent")
        if self.covers_perps:
            if not self.perps:
                out.append("no perp markets yet: no liquidatable positions")
            for market in self.perps:
                out += market.lines(dry_run)
            stale = sum(1 for p in self.perps if p.index.refusal is not None)
            note = f" ({stale} perp market(s) skipped: stale or halted index)" if stale else ""
            if self.perps and not self.positions_due:
                out.append(f"no liquidatable positions{note}")
            elif dry_run:
                out.append(f"dry run: {self.positions_due} position(s) would be liquidated; "
                           "nothing sent")
            executions = sum(len(p.executions) for p in self.perps)
            failing = sum(len(p._of("fail")) for p in self.perps)
            cancellations = sum(len(p.cancellations) for p in self.perps)
            if self.perps and not self.orders_due:
                out.append(f"no orders to execute or cancel{note}")
            elif dry_run:
                out.append(f"dry run: {executions} order(s) would be executed"
                           + (f" ({failing} failing)" if failing else "")
                           + f" and {cancellations} expired order(s) cancelled; nothing sent")
        return out


def _numbers(client: Client, wanted: Sequence[int] | None,
             listing: Callable[..., list[int]]) -> list[int]:
    """Every market (None) or the `wanted` ones, each checked to exist."""
    if wanted is None:
        return listing(client)
    return [n for number in wanted for n in listing(client, number)]


def _lending_pass(client: Client, keeper: str, number: int, max_repay: str | Decimal | None,
                  checkpoints: Checkpoints) -> LendingPass:
    m = pool_client._load(client, number)
    borrowers, scan = scan_accounts(client, checkpoints, "lending", number, m.pool,
                                    client.lending_factory(), LENDING_EVENTS)
    parts = {f.name: getattr(m, f.name) for f in fields(m)}
    book = pool_client._book(_ScannedPool(**parts, scanned=tuple(borrowers)))
    cap = MAX_UINT256 if max_repay is None else book.asset.parse(max_repay, "max_repay")
    due = []
    for loan in book.liquidatable:
        repaid, seized, bad = predict(book, loan, cap)
        assert loan.health is not None
        due.append(LoanLiquidation(borrower=loan.borrower, debt=loan.debt,
                                   ltv=loan.health.ltv_percent(), repaid=repaid, seized=seized,
                                   bad_debt=bad))
    txs: list[Tx] = []
    if due:
        pool = client.chain.contract("LendingPool", book.address)
        # Interest accrues until each transaction is mined: one basis point of room.
        allowance = sum(d.repaid + d.debt // 10_000 + 1 for d in due)
        txs += markets.approval(client.erc20(book.asset.address), keeper, book.address,
                                    allowance, f"approve {book.asset.fmt(allowance)}")
        txs += [pool.liquidate.tx(d.borrower, cap, what=f"liquidate {d.borrower}") for d in due]
    return LendingPass(number=number, address=book.address, asset=book.asset,
                       collateral=book.collateral, price=book.price, open_loans=len(book.loans),
                       due=due, max_repay=cap, txs=txs, scan=scan)


def _lending_problems(client: Client, keeper: str, passes: Sequence[LendingPass]) -> list[str]:
    """May the keeper hold each collateral, and does it hold the loan asset every
    liquidation pulls?"""
    problems = []
    needed: dict[str, int] = defaultdict(int)
    assets: dict[str, Token] = {}
    for p in passes:
        if not p.due:
            continue
        share = client.chain.contract("GPUShareToken", p.collateral.address)
        code, message = markets.restriction(share, p.address, keeper, 0)
        if code:
            problems.append(f"market {p.number}: {keeper} may not hold {p.collateral.symbol} "
                            f"collateral (ERC-1404 code {code}): {message}")
        needed[p.asset.address] += sum(d.repaid for d in p.due)
        assets[p.asset.address] = p.asset
    for where, total in needed.items():
        asset = assets[where]
        balance = int(client.erc20(where).balanceOf(keeper))
        if balance < total:
            problems.append(f"{keeper} holds {asset.fmt(balance)}, the liquidations need "
                            f"{asset.fmt(total)}: get {asset.fmt(total - balance)} more (or "
                            "repay less per loan)")
    return problems


def _order_plan(m: perp_client._Market, order: perp_client.OrderView,
                index: perp_client.IndexView) -> PerpOrder:
    """What the keeper does with one pending order (its `PerpLens.order_status`)."""
    if order.status == mirror.ORDER_EXPIRED:
        return PerpOrder(order=order, action="cancel")
    if order.status != mirror.ORDER_EXECUTABLE:
        return PerpOrder(order=order, action="wait")
    if index.refusal is not None:
        return PerpOrder(order=order, action="wait", waits_for_index=True)
    quote = perp_client._execution_quote(m, order.account)
    action: OrderAction = ("execute" if quote.refusal is None
                           else "refused" if quote.refusal in PRE_TRADE_REFUSALS else "fail")
    return PerpOrder(order=order, action=action, quote=quote)


def _perp_pass(client: Client, number: int, checkpoints: Checkpoints) -> PerpPass:
    from oracle.reports import feed_name

    m = perp_client._load(client, number)
    accounts, scan = scan_accounts(client, checkpoints, "perp", number, m.market,
                                   client.perp_factory(), PERP_EVENTS)
    # Only what the keeper acts on (not the whole `perp.market` view): one pass a block.
    index, window, now = m.index(), m.window(), client.chain.now()
    lens, where = m.lens, m.market.address
    due: list[PerpLiquidation] = []
    pending: list[perp_client.OrderView] = []
    opened = 0
    for who in accounts:
        size, _margin = m.position(who)
        if size != 0:
            opened += 1
            if index.refusal is None and lens.can_liquidate(where, who):
                due.append(PerpLiquidation(
                    account=who, size=size, equity=int(lens.equity(where, who)),
                    maintenance=mirror.maintenance_margin(size, index.price, m.params, m.scale),
                    keeper_fee=mirror.keeper_fee(size, index.price, m.params, m.scale)))
        order = m.order(who, window, now)
        if order is not None:
            pending.append(order)
    orders = [_order_plan(m, o, index) for o in pending]
    market = m.market
    txs = [market.liquidate.tx(d.account, what=f"liquidate {d.account}") for d in due]
    txs += [market.execute_order.tx(o.account, what=f"execute {o.account}'s order")
            for o in orders if o.action in ("execute", "fail")]
    txs += [market.cancel_order.tx(o.account, what=f"cancel {o.account}'s expired order")
            for o in orders if o.action == "cancel"]
    return PerpPass(number=number, address=where, feed=feed_name("0x" + m.feed_id.hex()),
                    asset=m.asset, index=index, open_positions=opened, due=due, orders=orders,
                    txs=txs, scan=scan)


def plan_pass(client: Client, keeper: str, pools: Sequence[int] | None = None,
              perps: Sequence[int] | None = None, *,
              max_repay: str | Decimal | None = None,
              checkpoints: Checkpoints | None = None) -> KeeperPlan:
    """One keeper pass over lending markets `pools` and perp markets `perps`: None is
    every market of that factory, `[]` none (BadInput for an unknown number).
    `max_repay` caps each loan's repayment, in units of the market's loan asset as a
    person types them (`"1000"`; default the whole debt). Each market's accounts come
    from its events since `checkpoints` (None: from its creation block, remembered by
    nothing), which are saved once every market is scanned."""
    checkpoints = Checkpoints() if checkpoints is None else checkpoints
    who = address(keeper, "keeper")
    deployed = client.deployed
    notes = []
    covers_lending, covers_perps = pools != [], perps != []
    if covers_lending and pools is None and deployed.lending_pool_factory is None:
        notes.append("no LendingPoolFactory in the deployments file: lending skipped")
        covers_lending = False
    if covers_perps and perps is None and deployed.perp_market_factory is None:
        notes.append("no PerpMarketFactory in the deployments file: perps skipped")
        covers_perps = False
    lending = ([_lending_pass(client, who, n, max_repay, checkpoints)
                for n in _numbers(client, pools, pool_client.numbers)] if covers_lending else [])
    perpetual = ([_perp_pass(client, n, checkpoints)
                  for n in _numbers(client, perps, perp_client.numbers)] if covers_perps else [])
    checkpoints.save()
    notes += [note for p in [*lending, *perpetual] if (note := p.scan.note()) is not None]
    problems = _lending_problems(client, who, [p for p in lending if p.price.fresh])
    return KeeperPlan(keeper=who, lending=lending, perps=perpetual,
                      refusal=Refused("keeper", "; ".join(problems)) if problems else None,
                      notes=notes, covers_lending=covers_lending, covers_perps=covers_perps)


class KeeperOutcome(BaseModel):
    """What a keeper pass did: its summary lines and the errors (a refused keeper, a
    liquidation the contract refused). Orders: `orders_executed` filled,
    `orders_failed` executed but their trade refused (the market cancelled them),
    `orders_cancelled` expired and cancelled, `orders_refused` whose execution or
    cancellation the contract reverted (another keeper was first, ...): no error of the
    keeper's, the order stays as it was."""

    model_config = _MODEL

    loans: int = 0
    positions: int = 0
    orders_executed: int = 0
    orders_failed: int = 0
    orders_cancelled: int = 0
    orders_refused: int = 0
    errors: list[str] = []


def _send(client: Client, sender: Any, tx: Tx, on_receipt: Callable[[Receipt], None],
          on_line: Callable[[str], None], subject: str,
          action: str = "liquidation") -> Receipt | None:
    try:
        receipt = client.chain.send(tx, sender)
    except Reverted as exc:
        on_line(f"  {subject}: {action} refused by the contract: {exc.reason}")
        return None
    on_receipt(receipt)
    return receipt


def run(client: Client, sender: Any, plan: KeeperPlan, *,
        on_receipt: Callable[[Receipt], None] = lambda _r: None,
        on_line: Callable[[str], None] = lambda _s: None) -> KeeperOutcome:
    """Send a pass's transactions (signed by `sender`), one line each through
    `on_line`, then a summary per side: lending liquidations, then per perp market its
    liquidations, order executions and cancellations. A refused keeper sends no lending
    liquidation (its perp transactions still go, they need nothing from it); a
    transaction the contract refuses is reported and the others go on."""
    errors = []
    loans = 0
    perps = _PerpTally()
    if plan.covers_lending and plan.loans_due:
        if plan.refusal is not None:
            errors.append(f"lending markets: {plan.refusal}")
        else:
            loans, failed = _run_lending(client, sender, plan, on_receipt, on_line)
            if failed:
                errors.append(f"lending markets: {failed} liquidation(s) refused (see above)")
    if plan.covers_perps and (plan.positions_due or plan.orders_due):
        perps = _run_perps(client, sender, plan, on_receipt, on_line)
        if perps.failed:
            errors.append(f"perp markets: {perps.failed} liquidation(s) refused (see above)")
    return KeeperOutcome(loans=loans, positions=perps.positions, orders_executed=perps.executed,
                         orders_failed=perps.order_failed, orders_cancelled=perps.cancelled,
                         orders_refused=perps.refused, errors=errors)


def _summary(done: str, parts: list[str], stale: int, skipped: str) -> str:
    text = f"liquidated {done}" + (f" ({'; '.join(parts)})" if parts else "")
    return text + (f"; {stale} {skipped}" if stale else "")


def _run_lending(client: Client, sender: Any, plan: KeeperPlan,
                 on_receipt: Callable[[Receipt], None],
                 on_line: Callable[[str], None]) -> tuple[int, int]:
    done = failed = 0
    parts = []
    for market in plan.lending:
        if not market.due or not market.price.fresh:
            continue
        on_line(f"market {market.number}:")
        pool = client.chain.contract("LendingPool", market.address)
        for tx in market.txs:
            if tx.function == "approve":
                on_receipt(client.chain.send(tx, sender))
        totals = [0, 0, 0]
        for loan, tx in zip(market.due, [t for t in market.txs if t.function == "liquidate"],
                            strict=True):
            receipt = _send(client, sender, tx, on_receipt, on_line, loan.borrower)
            if receipt is None:
                failed += 1
                continue
            event = pool.events("Liquidated", receipt)[0]
            result = (int(event["repaid"]), int(event["collateral_seized"]),
                      int(event["bad_debt"]))
            on_line(market.line(loan, "repaid", *result))
            done += 1
            totals = [x + y for x, y in zip(totals, result, strict=True)]
        if any(totals):
            parts.append(f"market {market.number}: repaid {market.asset.fmt(totals[0])}, seized "
                         f"{market.collateral.fmt(totals[1])}, bad debt "
                         f"{market.asset.fmt(totals[2])}")
    stale = sum(1 for p in plan.lending if not p.price.fresh)
    on_line(_summary(f"{done} loan(s)", parts, stale, "market(s) skipped: stale price"))
    return done, failed


@dataclass
class _PerpTally:
    positions: int = 0
    failed: int = 0  # liquidations refused
    executed: int = 0
    order_failed: int = 0  # executed, the trade refused: cancelled by the market
    cancelled: int = 0
    refused: int = 0  # executions (or cancellations) the contract reverted


def _liquidate(client: Client, sender: Any, market: PerpPass, contract: Contract,
               tx: Tx, pos: PerpLiquidation, tally: _PerpTally,
               on_receipt: Callable[[Receipt], None],
               on_line: Callable[[str], None]) -> tuple[int, int]:
    """One liquidation: (keeper fee, bad debt), zeros when refused."""
    money = market.asset.fmt
    receipt = _send(client, sender, tx, on_receipt, on_line, pos.account)
    if receipt is None:
        tally.failed += 1
        return 0, 0
    event = contract.events("PositionLiquidated", receipt)[0]
    fee = int(event["keeper_fee"])
    debt = sum(int(e["amount"]) for e in contract.events("BadDebt", receipt))
    on_line(f"  {pos.account}: {perp_client.sized(int(event['size']))} closed at "
            f"{perp_client.fmt_price(int(event['index_price']))}, equity "
            f"{money(int(event['equity']))}: keeper fee {money(fee)}, bad debt {money(debt)}")
    for exhausted in contract.events("InsuranceExhausted", receipt):
        on_line(f"  insurance fund exhausted: deficit {money(int(exhausted['deficit']))} "
                "recorded, new risk paused until `ape run perp fund-insurance` covers it")
    tally.positions += 1
    return fee, debt


def _execute(client: Client, sender: Any, market: PerpPass, contract: Contract, tx: Tx,
             due: PerpOrder, tally: _PerpTally, on_receipt: Callable[[Receipt], None],
             on_line: Callable[[str], None]) -> int:
    """One order execution: the keeper fee earned (credited to the keeper's margin), 0
    when the contract reverted it."""
    o, money = due.order, market.asset.fmt
    receipt = _send(client, sender, tx, on_receipt, on_line, o.account, "execution")
    if receipt is None:
        on_line(f"  {o.account}: the order stays pending until it is executed or expires")
        tally.refused += 1
        return 0
    head = (f"  {o.account}: order {perp_client.traded(o.size_delta)} committed at round "
            f"{o.commit_round}")
    for failed in contract.events("OrderFailed", receipt):
        fee = int(failed["keeper_fee"])
        why = revert_reason(bytes(failed["reason"]))
        on_line(f"{head}, failed at round {int(failed['round_id'])}'s index "
                f"{perp_client.fmt_price(int(failed['price']))}: the market refused its trade "
                f"({why}) and cancelled the order; keeper fee {money(fee)}")
        tally.order_failed += 1
        return fee
    done = contract.events("OrderExecuted", receipt)[0]
    fill = contract.events("PositionModified", receipt)[0]
    fee = int(done["keeper_fee"])
    on_line(f"{head}, executed at round {int(done['round_id'])}'s index "
            f"{perp_client.fmt_price(int(done['price']))}: filled at "
            f"{perp_client.fmt_price(int(fill['fill_price']))}, fee {money(int(fill['fee']))}, "
            f"premium {money(int(fill['premium']))}, now "
            f"{perp_client.sized(int(fill['size']))}; keeper fee {money(fee)}")
    for cut in contract.events("GainHaircut", receipt):
        on_line(f"  {o.account}: the insurance fund is short: of a {money(int(cut['gain']))} "
                f"gain {money(int(cut['paid']))} was paid (a haircut, the same share for every "
                "gain)")
    tally.executed += 1
    return fee


def _cancel(client: Client, sender: Any, market: PerpPass, contract: Contract, tx: Tx,
            due: PerpOrder, tally: _PerpTally, on_receipt: Callable[[Receipt], None],
            on_line: Callable[[str], None]) -> None:
    o, money = due.order, market.asset.fmt
    receipt = _send(client, sender, tx, on_receipt, on_line, o.account, "cancellation")
    if receipt is None:
        tally.refused += 1
        return
    event = contract.events("OrderCancelled", receipt)[0]
    on_line(f"  {o.account}: expired order {perp_client.traded(o.size_delta)} (committed at "
            f"round {o.commit_round}) cancelled: its keeper fee "
            f"{money(int(event['keeper_fee']))} is no longer reserved in its margin")
    tally.cancelled += 1


def _run_perps(client: Client, sender: Any, plan: KeeperPlan,
               on_receipt: Callable[[Receipt], None],
               on_line: Callable[[str], None]) -> _PerpTally:
    tally = _PerpTally()
    liquidated, executed = [], []
    for market in plan.perps:
        # The plan liquidates only on a fresh index (`_perp_pass`).
        due = market.due if market.index.refusal is None else []
        if not due and not market.orders_due:
            continue
        on_line(f"perp market {market.number}:")
        contract = client.chain.contract("PerpMarket", market.address)
        money = market.asset.fmt
        txs = iter(market.txs)  # the liquidations, executions, cancellations, in order
        fees = bad = 0
        for pos in due:
            fee, debt = _liquidate(client, sender, market, contract, next(txs), pos, tally,
                                   on_receipt, on_line)
            fees, bad = fees + fee, bad + debt
        if due:
            _longs, _shorts, _skew, _margins, _fees, insurance, _deficit = contract.market()
            on_line(f"  perp market {market.number}: insurance fund after "
                    f"{money(int(insurance))}, deficit {money(int(contract.deficit()))}")
        if fees or bad:
            liquidated.append(f"perp market {market.number}: keeper fees {money(fees)}, bad "
                              f"debt {money(bad)}")
        earned = 0
        for order in market.executions:
            earned += _execute(client, sender, market, contract, next(txs), order, tally,
                               on_receipt, on_line)
        for order in market.cancellations:
            _cancel(client, sender, market, contract, next(txs), order, tally, on_receipt,
                    on_line)
        if market.executions:
            executed.append(f"perp market {market.number}: keeper fees {money(earned)}")
            if earned:
                on_line(f"  keeper fees {money(earned)} credited to "
                        f"{client.chain.address_of(sender)}'s margin in perp market "
                        f"{market.number} (`ape run perp withdraw --market {market.number} "
                        "--all`)")
    stale = sum(1 for p in plan.perps if p.index.refusal is not None)
    skipped = "perp market(s) skipped: stale or halted index"
    if plan.positions_due:
        on_line(_summary(f"{tally.positions} position(s)", liquidated, stale, skipped))
    if plan.orders_due:
        text = f"executed {tally.executed + tally.order_failed} order(s)"
        text += f" ({'; '.join(executed)})" if executed else ""
        if tally.order_failed:
            text += f", {tally.order_failed} of them failed (cancelled by the market)"
        text += f", cancelled {tally.cancelled} expired order(s)"
        if tally.refused:
            text += f"; {tally.refused} refused by the market (see above)"
        on_line(text)
    return tally
