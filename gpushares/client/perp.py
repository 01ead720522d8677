"""Perpetual futures on a GPU-hour index: markets, positions and pending orders as
pydantic views, quotes, and what traders, keepers, funders, risk admins and guardians do
as `Plan`s.

    view = perp.market(client, 1)                          # index, open interest, orders
    q = perp.quote(client, 1, who, 100 * WAD, margin=500 * 10**6)
    plan = perp.plan_commit(client, who, 1, 100 * WAD, margin=500 * 10**6)
    mine = perp.position(client, 1, who)                   # PnL, equity, liq price, order
    o = perp.order(client, 1, who)                         # pending order and its status
    plan = perp.plan_execute(client, keeper, 1, who)       # a keeper fills it
    plan = perp.plan_cancel(client, anyone, 1, who)        # only once it has expired

Trades are two-step orders: a trader commits one (size, worst fill accepted; the
market's keeper fee stays reserved in the margin); anyone executes it at the index of
the first oracle round observed after the commit, within the order window, and earns
the keeper fee (credited to its own margin in the market). A trade the market refuses
at execution cancels the order, the keeper still paid; an order nobody executed in
time can only be cancelled. A quote is the execution predicted at the index now.

One contract is one GPU-hour at the index price (USD per GPU-hour). Sizes are WAD
GPU-hours (signed: long > 0), prices WAD USD per GPU-hour, margins base units of the
market's stablecoin (`MarketView.asset.parse`; `parse_size` for sizes). Derived views
(equity, margin ratio, liquidation price, withdrawable, fill price, order status) come
from the deployment's `PerpLens`; every check is `gpushares.perp`, the exact mirror of
the market's arithmetic, in the market's order, with the market's own message followed
by what to do about it (`gpushares.perp.explain`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict

from gpushares import perp, reasons
from gpushares.client.chain import (
    ZERO_ADDRESS,
    ChainError,
    Contract,
    Plan,
    Receipt,
    Refused,
    Reverted,
    revert_reason,
)
from gpushares.client.context import Client
from gpushares.client.markets import (
    Token,
    accounts_in_events,
    action,
    approval,
    event_sum,
    headline,
    market_numbers,
    short_of,
    token,
)
from gpushares.client.units import (
    BadInput,
    address,
    fmt_units,
    parse_percent,
    percent_to_bps,
    percent_to_wad,
    to_base_units,
)

WAD, BPS, DAY = perp.WAD, perp.BPS, perp.DAY
MAX_UINT256 = perp.MAX_UINT256
MASK64 = 2**64 - 1
MAX_OI = 2**40
MARKET_CREATOR_ROLE = keccak(text="MARKET_CREATOR_ROLE")
RISK_ADMIN_ROLE = keccak(text="RISK_ADMIN_ROLE")
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")
FIELDS = tuple(perp.RiskParams.model_fields)
STALE_NOTE = ("STALE or HALTED: executions, withdrawals with a position and liquidations "
              "wait for the next accepted index report (orders can still be committed)")
# Seconds of funding at the capped rate that withdrawing "all" leaves behind with an
# open position: funding accrues until the transaction is mined.
FUNDING_BUFFER_S = 600
# The risk options people type: name -> (default, what it means).
RISK_OPTIONS = {
    "skew_scale": ("1000000", "Skew (GPU-hours) at which the premium reaches 100 %."),
    "max_long_oi": ("500000", "Long open-interest cap, GPU-hours."),
    "max_short_oi": ("500000", "Short open-interest cap, GPU-hours."),
    "max_leverage": ("10", "Highest leverage to open at (initial margin 1/x)."),
    "maintenance_margin": ("5", "Maintenance margin, percent of the notional."),
    "taker_fee": ("0.1", "Fee on a trade's skew-increasing part, percent."),
    "maker_fee": ("0.05", "Fee on a trade's skew-reducing part, percent."),
    "liquidation_fee": ("0.5", "Keeper fee on a liquidation, percent of the notional."),
    "min_keeper_fee": ("5", "Keeper fee every liquidation pays at least, stablecoin."),
    "max_funding_velocity": ("3", "Funding rate change at full skew, percent per day, per day."),
    "max_funding_rate": ("5", "Cap of the funding rate, percent per day."),
}
# The order window options: name -> (default at creation, what it means).
ORDER_OPTIONS = {
    "order_keeper_fee": ("1", "Keeper fee each order reserves in the margin, stablecoin."),
    "order_min_delay": ("0", "Seconds after a commit before the order can be executed."),
    "order_max_age": (None, "Seconds after a commit after which the order can only be "
                            "cancelled (default: two heartbeats of the index feed)."),
}

_FROZEN = ConfigDict(frozen=True)


def explained(reason: str, detail: str = "") -> str:
    """A refusal as the client shows it (`gpushares.perp.explain`)."""
    return perp.explain(reason, detail)


# ---------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------


def fmt_price(wad: int) -> str:
    """A WAD price as `2.405530 USD/GPU-h`."""
    return f"{Decimal(wad) / Decimal(WAD):,.6f} USD/GPU-h"


def fmt_liquidation(wad: int) -> str:
    """A liquidation price: 0 is none, max_value(uint256) every price."""
    if wad == 0:
        return "none"
    if wad == MAX_UINT256:
        return "every price (below maintenance now)"
    return fmt_price(wad)


def fmt_rate(wad: int) -> str:
    """A WAD fraction as a percentage with four decimals."""
    return f"{Decimal(wad) / Decimal(WAD) * 100:.4f}%"


def fmt_bps(bps: int) -> str:
    return f"{Decimal(bps) / 100:.2f}%"


def fmt_seconds(seconds: int) -> str:
    """A duration as `2d 3h`, `5m 10s` or `42s`."""
    seconds = max(seconds, 0)
    days, rest = divmod(seconds, DAY)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s"))
             if v]
    return " ".join(parts[:2]) or "0s"


def gpuh(size: int) -> str:
    """WAD GPU-hours as `1,234.5 GPU-hours` (unsigned)."""
    return f"{fmt_units(abs(size), 18)} GPU-hours"


def sized(size: int) -> str:
    """A signed size as `short 4,608 GPU-hours`."""
    if size == 0:
        return "flat"
    return f"{'long' if size > 0 else 'short'} {gpuh(size)}"


def traded(size_delta: int) -> str:
    """An order's side and size as `buy 100 GPU-hours`."""
    return f"{'buy' if size_delta > 0 else 'sell'} {gpuh(size_delta)}"


def parse_size(amount: str | Decimal, what: str) -> int:
    """GPU-hours as typed (`"4608"`, decimals allowed) as WAD; BadInput naming `what`."""
    size = to_base_units(amount, 18, what)
    if size >= 2**255:  # a signed size (int256)
        raise BadInput(f"{what}: {amount} GPU-hours is too large")
    return size


def param_lines(p: perp.RiskParams, asset: Token) -> list[str]:
    """A market's risk parameters in three lines."""
    leverage = Decimal(BPS) / p.initial_margin_bps if p.initial_margin_bps else Decimal(0)
    return [
        f"max leverage {leverage:.2f}x (initial margin {fmt_bps(p.initial_margin_bps)}), "
        f"maintenance {fmt_bps(p.maintenance_margin_bps)}, liquidation fee "
        f"{fmt_bps(p.liquidation_fee_bps)} + {asset.fmt(p.min_keeper_fee)} minimum keeper fee",
        f"fees taker {fmt_bps(p.taker_fee_bps)}, maker {fmt_bps(p.maker_fee_bps)}; skew scale "
        f"{p.skew_scale:,} GPU-hours; OI caps long {p.max_long_oi:,}, short "
        f"{p.max_short_oi:,} GPU-hours",
        f"funding velocity {fmt_rate(p.max_funding_velocity)}/day per day at full skew, cap "
        f"{fmt_rate(p.max_funding_rate)}/day",
    ]


# ---------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------


class IndexView(BaseModel):
    """The index as the market sees it: price (WAD), fresh (positive, within the
    heartbeat and not halted), age (s) at the chain's time, heartbeat (s), whether the
    hub halted the feed (it refused a move), the latest round and the feed's move limit
    per update (bps, 0 = none)."""

    model_config = _FROZEN

    has_data: bool
    price: int
    fresh: bool
    age: int
    heartbeat: int
    halted: bool = False
    round_id: int = 0
    observed_at: int = 0
    max_move_bps: int = 0

    @property
    def refusal(self) -> str | None:
        """Why the market refuses an execution on this index now (None: it does not)."""
        if not self.has_data:
            return reasons.HUB_NO_DATA_PRESENT_FEED
        if self.price == 0 or not self.fresh:
            return reasons.PERP_INDEX_PRICE_STALE_OR_HALTED
        return None

    def why_not_fresh(self) -> str:
        """Why the index is not fresh, in words ("" when it is)."""
        if self.fresh:
            return ""
        if not self.has_data:
            return " (no index published yet)"
        if self.halted:
            return (" (the hub halted the feed: it refused a report for moving more than "
                    f"{self.max_move_bps} bps; the next accepted report lifts the halt)")
        return (f" (the index is {fmt_seconds(self.age)} old, heartbeat "
                f"{fmt_seconds(self.heartbeat)})")


class OrderWindow(BaseModel):
    """When an order can be executed (`min_delay` to `max_age` seconds after its commit;
    then only cancelled) and the keeper fee each order reserves in the margin and pays
    its executor (asset units)."""

    model_config = _FROZEN

    min_delay: int
    max_age: int
    keeper_fee: int

    def line(self, asset: Token) -> str:
        return (f"orders: executable {fmt_seconds(self.min_delay)} to "
                f"{fmt_seconds(self.max_age)} after the commit (then only cancelled), at the "
                f"first oracle round after it; keeper fee {asset.fmt(self.keeper_fee)} "
                "per order (reserved in the margin, paid to the executor)")


class OrderView(BaseModel):
    """One account's pending order: `PerpMarket.order` with its `PerpLens.order_status`
    (0 none, 1 waiting, 2 executable, 3 expired) at the chain's time `now`."""

    model_config = _FROZEN

    market: int
    account: str
    asset: Token
    size_delta: int
    acceptable_price: int
    keeper_fee: int
    committed_at: int
    commit_round: int
    status: int
    executable_from: int  # committed_at + min_delay
    expires_at: int  # committed_at + max_age: executable until then, cancellable after
    now: int

    @property
    def status_name(self) -> str:
        return perp.ORDER_STATUS[self.status]

    def state(self) -> str:
        """Where the order stands, and what comes next, in words."""
        if self.status == perp.ORDER_EXPIRED:
            return (f"EXPIRED {fmt_seconds(self.now - self.expires_at)} ago: cancel it (`ape run "
                    "perp cancel`) to get the keeper fee back into the margin")
        if self.status == perp.ORDER_EXECUTABLE:
            return (f"EXECUTABLE for {fmt_seconds(self.expires_at - self.now)} more: a keeper "
                    "fills it at the first oracle round after the commit")
        if self.now < self.executable_from:
            return f"waiting: executable in {fmt_seconds(self.executable_from - self.now)}"
        return (f"waiting for an oracle round after the commit (expires in "
                f"{fmt_seconds(self.expires_at - self.now)})")

    def line(self) -> str:
        """The order as `perp status` and `perp orders` list it."""
        worst = fmt_worst(self.acceptable_price, self.size_delta)
        return (f"    {self.account}: order {traded(self.size_delta)} (worst fill {worst}, "
                f"keeper fee {self.asset.fmt(self.keeper_fee)} reserved), committed "
                f"{fmt_seconds(self.now - self.committed_at)} ago after round "
                f"{self.commit_round}: {self.state()}")


class MarketView(BaseModel):
    """One perp market: its index, parameters, order window, open interest, funding and
    funds."""

    model_config = _FROZEN

    number: int
    address: str
    feed: str
    feed_adapter: str
    asset: Token
    params: perp.RiskParams
    paused: bool
    fee_recipient: str
    index: IndexView
    window: OrderWindow
    long_oi: int
    short_oi: int
    margins: int
    fees: int
    insurance: int  # marked to the index
    deficit: int
    funding_rate: int
    funding_index: int

    @property
    def skew(self) -> int:
        return self.long_oi - self.short_oi

    @property
    def scale(self) -> int:
        return perp.value_scale(self.asset.decimals)

    @property
    def max_leverage(self) -> Decimal:
        return Decimal(BPS) / self.params.initial_margin_bps

    @property
    def move_covered(self) -> bool:
        """Whether the feed's move limit passes the market's check (new risk needs it)."""
        return perp.move_covered(self.index.max_move_bps, self.params)

    def state(self, *, next_round: bool = False) -> perp.MarketState:
        """What `gpushares.perp.quote_trade` reads. `next_round`: as the next oracle
        round at the same price would find it (fresh whenever the index has a value:
        what a commit's quote assumes)."""
        fresh = self.index.has_data if next_round else self.index.fresh
        return perp.MarketState(price=self.index.price, fresh=fresh,
                                long_oi=self.long_oi, short_oi=self.short_oi, paused=self.paused,
                                deficit=self.deficit, insurance=self.insurance,
                                params=self.params, asset_decimals=self.asset.decimals,
                                max_move_bps=self.index.max_move_bps)

    def move_line(self) -> str:
        widest = perp.widest_move_bps(self.params)
        limit = self.index.max_move_bps or "no"
        verdict = (f"covered: these margins accept up to {widest} bps" if self.move_covered
                   else f"NOT covered: these margins accept at most {widest} bps, so opens "
                        "and increases are refused until the hub admin lowers it")
        return f"index feed move limit {limit} bps per update ({verdict})"

    def lines(self) -> list[str]:
        """The market as `ape run perp status` shows it (without its positions)."""
        a, money = self.asset, self.asset.fmt
        out = [f"perp market {self.number}: {self.feed} / {a.symbol} at {self.address}",
               f"  index feed    {self.feed} adapter {self.feed_adapter}",
               f"  margin asset  {a.symbol} {a.address} ({a.decimals} decimals)",
               *(f"  {line}" for line in param_lines(self.params, a)),
               f"  {self.window.line(a)}", f"  {self.move_line()}"]
        pause = "YES (guardian: no opens or increases)" if self.paused else "no"
        if self.deficit:
            pause += "; new risk paused by the recorded deficit until it is funded"
        out.append(f"  paused: {pause}; fees to {self.fee_recipient}")
        i = self.index
        if not i.has_data:
            return [*out, f"  index: none published yet; {STALE_NOTE}",
                    f"  insurance fund {money(self.insurance)}, deficit {money(self.deficit)}"]
        freshness = "fresh," if i.fresh else f"{STALE_NOTE}{i.why_not_fresh()} ("
        out.append(f"  index {fmt_price(i.price)} (round {i.round_id}), {freshness} updated "
                   f"{i.age}s ago (heartbeat {i.heartbeat}s){'' if i.fresh else ')'}")
        heavy = (" (longs heavier)" if self.skew > 0 else " (shorts heavier)" if self.skew < 0
                 else "")
        out.append(f"  open interest long {gpuh(self.long_oi)}, short {gpuh(self.short_oi)}; skew "
                   f"{'-' if self.skew < 0 else ''}{gpuh(self.skew)}{heavy}")
        rate = self.funding_rate
        payer = ("longs pay shorts" if rate > 0 else "shorts pay longs" if rate < 0
                 else "nobody pays")
        out.append(f"  funding rate {fmt_rate(rate)}/day ({fmt_rate(rate * 365)} a year), {payer}; "
                   f"funding index {Decimal(self.funding_index) / Decimal(WAD):.9f}")
        out.append(f"  insurance fund {money(self.insurance)}, deficit {money(self.deficit)}, "
                   f"fees uncollected {money(self.fees)}, margins {money(self.margins)}")
        return out

    def created_lines(self, admin: str) -> list[str]:
        """The new market, after `plan_create` and `plan_setup` (`admin`: its admin,
        risk admin and guardian)."""
        a = self.asset
        return [f"market {self.number}: PerpMarket {self.address}",
                f"  index {self.feed} (adapter {self.feed_adapter}), margin {a.symbol} "
                f"{a.address}; admin, risk admin and guardian {admin}; fees to "
                f"{self.fee_recipient}", *(f"  {line}" for line in param_lines(self.params, a)),
                f"  {self.window.line(a)}", f"  {self.move_line()}",
                f"  insurance fund {a.fmt(self.insurance)}"]

    def risk_lines(self) -> list[str]:
        """The parameters, order window, fee recipient and pause, after `set`."""
        state = "PAUSED (no opens or increases)" if self.paused else "open"
        return [f"perp market {self.number}:",
                *(f"  {line}" for line in param_lines(self.params, self.asset)),
                f"  {self.window.line(self.asset)}", f"  {self.move_line()}",
                f"  fees to {self.fee_recipient}; {state}"]


class PositionView(BaseModel):
    """One account's position in one market, as the PerpLens values it, with its
    pending order."""

    model_config = _FROZEN

    market: int
    account: str
    asset: Token
    size: int
    margin: int
    pnl: int
    funding: int  # owed: > 0 the position pays
    equity: int
    ratio: int  # margin ratio, WAD
    liquidation_price: int
    liquidatable: bool
    withdrawable: int
    wallet: int  # the market's stablecoin in the account's wallet
    index_price: int
    order: OrderView | None = None

    @property
    def leverage(self) -> Decimal | None:
        if self.equity <= 0 or self.size == 0:
            return None
        scale = perp.value_scale(self.asset.decimals)
        return Decimal(perp.notional(self.size, self.index_price, scale)) / Decimal(self.equity)

    def line(self) -> str:
        """The position as `perp status` lists it."""
        money = self.asset.fmt
        if self.size == 0:
            return f"    {self.account}: flat, margin {money(self.margin)} (withdrawable)"
        leverage = f"{self.leverage:.2f}x" if self.leverage is not None else "n/a"
        flag = "  LIQUIDATABLE" if self.liquidatable else ""
        return (f"    {self.account}: {sized(self.size)}, margin {money(self.margin)}, PnL "
                f"{money(self.pnl)}, funding owed {money(self.funding)}, equity "
                f"{money(self.equity)}, margin ratio {fmt_rate(self.ratio)} (leverage "
                f"{leverage}), liquidation price {fmt_liquidation(self.liquidation_price)}, "
                f"withdrawable {money(self.withdrawable)}{flag}")

    def describe(self) -> str:
        """The position after an action."""
        money = self.asset.fmt
        pending = f"; pending order {traded(self.order.size_delta)}" if self.order else ""
        if self.size == 0:
            return (f"{self.account}: flat in market {self.market}, margin "
                    f"{money(self.margin)}{pending}")
        return (f"{self.account}: {sized(self.size)} in market {self.market}, margin "
                f"{money(self.margin)}, equity {money(self.equity)}, margin ratio "
                f"{fmt_rate(self.ratio)}, liquidation price "
                f"{fmt_liquidation(self.liquidation_price)}{pending}")


class Quote(BaseModel):
    """An order's execution predicted before sending (at the index now for a commit, at
    its fill round's index for an execution): the market's refusal (with what to do
    about it) or the fill, fee, premium and the position after."""

    model_config = _FROZEN

    market: int
    account: str
    asset: Token
    size: int
    size_delta: int
    equity: int  # margin + settlement, plus the margin deposited first
    index_price: int
    acceptable_price: int
    keeper_fee: int = 0  # the order's, charged by the trade (or on its refusal)
    round_id: int = 0  # an execution's fill round (its price is `index_price`)
    refusal: str | None
    # True: the execution would revert and change nothing (window, index, round); False:
    # the trade's refusal cancels the order (`OrderFailed`), the keeper still paid.
    reverts: bool = False
    hint: str = ""
    fill_price: int = 0
    fee: int = 0
    premium: int = 0
    size_after: int = 0
    margin_after: int = 0
    liquidation_price: int = 0  # of the position after (no funding owed yet)

    @property
    def explained(self) -> str:
        """The refusal with its detail and what to do ("" without one)."""
        return explained(self.refusal, self.hint) if self.refusal else ""

    def line(self) -> str:
        money = self.asset.fmt
        return (f"quote: fill {fmt_price(self.fill_price)} (index {fmt_price(self.index_price)}, "
                f"worst accepted {fmt_price(self.acceptable_price)}), fee {money(self.fee)}, "
                f"premium {money(self.premium)}")


class Fill(BaseModel):
    """A trade the market did (`PositionModified`)."""

    model_config = _FROZEN

    account: str
    size_delta: int
    size: int
    index_price: int
    fill_price: int
    fee: int
    premium: int
    settled: int
    margin: int

    def describe(self, asset: Token) -> str:
        return (f"filled {traded(self.size_delta)} at {fmt_price(self.fill_price)} (index "
                f"{fmt_price(self.index_price)}): fee {asset.fmt(self.fee)}, premium "
                f"{asset.fmt(self.premium)}, settled PnL and funding {asset.fmt(self.settled)}")


class Committed(BaseModel):
    """An order committed (`OrderCommitted`)."""

    model_config = _FROZEN

    account: str
    size_delta: int
    acceptable_price: int
    keeper_fee: int
    commit_round: int

    def describe(self, asset: Token) -> str:
        return (f"order committed: {traded(self.size_delta)}, keeper fee "
                f"{asset.fmt(self.keeper_fee)} reserved in the margin; a keeper executes it at "
                f"the first oracle round after round {self.commit_round}")


class Executed(BaseModel):
    """An order executed (`OrderExecuted`): at round `round_id`'s `price`."""

    model_config = _FROZEN

    account: str
    keeper: str
    round_id: int
    price: int
    keeper_fee: int

    def describe(self, asset: Token) -> str:
        return (f"order of {self.account} executed at round {self.round_id}'s index "
                f"{fmt_price(self.price)}; keeper {self.keeper} earned "
                f"{asset.fmt(self.keeper_fee)} (in its margin in the market)")


class Failed(BaseModel):
    """An executed order whose trade the market refused (`OrderFailed`): the order is
    cancelled, the keeper paid from the trader's margin; `reason` is the refusal."""

    model_config = _FROZEN

    account: str
    keeper: str
    round_id: int
    price: int
    keeper_fee: int
    reason: str

    def describe(self, asset: Token) -> str:
        return (f"order of {self.account} FAILED at round {self.round_id}'s index "
                f"{fmt_price(self.price)} and is cancelled: {perp.explain(self.reason)} Keeper "
                f"{self.keeper} earned {asset.fmt(self.keeper_fee)} (in its margin in the "
                "market)")


class Cancelled(BaseModel):
    """An expired order cancelled (`OrderCancelled`): its keeper fee is free again."""

    model_config = _FROZEN

    account: str
    caller: str
    keeper_fee: int

    def describe(self, asset: Token) -> str:
        return (f"expired order of {self.account} cancelled: the {asset.fmt(self.keeper_fee)} "
                "keeper fee it reserved is free again")


class Outcome(BaseModel):
    """What a market's events in some receipts did."""

    model_config = _FROZEN

    deposited: int = 0
    withdrawn: int = 0
    insurance_funded: int = 0
    fees_collected: int = 0
    fills: list[Fill] = []
    committed: list[Committed] = []
    executed: list[Executed] = []
    failed: list[Failed] = []
    cancelled: list[Cancelled] = []

    def lines(self, asset: Token) -> list[str]:
        """The orders and fills, one line each."""
        return [e.describe(asset) for e in (*self.committed, *self.executed, *self.fills,
                                            *self.failed, *self.cancelled)]


# ---------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------


def lens(client: Client) -> Contract:
    """The deployment's PerpLens (one serves every market)."""
    where = client.deployed.perp_lens
    if where is None:
        raise ChainError("the deployments file has no PerpLens: run `ape run deploy` again (it "
                         "deploys the whole suite)")
    return client.chain.contract("PerpLens", where)


@dataclass(frozen=True)
class _Market:
    number: int
    market: Contract
    asset_contract: Contract
    asset: Token
    feed: Contract
    hub: Contract
    feed_id: bytes
    params: perp.RiskParams
    lens: Contract

    @property
    def scale(self) -> int:
        return perp.value_scale(self.asset.decimals)

    def index(self) -> IndexView:
        """The index in one hub call (`trading_state`) and the market's own verdict."""
        state = tuple(self.hub.trading_state(self.feed_id))
        verdict = self.market.index_price() if int(state[2]) else None
        return index_view_from(state, verdict, self.market.chain.now())

    def position(self, who: str) -> tuple[int, int]:
        size, margin, _price, _funding = self.market.position(who)
        return int(size), int(margin)

    def equity(self, who: str, index: IndexView) -> int:
        if not index.has_data:
            return self.position(who)[1]
        return int(self.lens.equity(self.market.address, who))

    def window(self) -> OrderWindow:
        min_delay, max_age, fee = (int(x) for x in self.market.order_window())
        return OrderWindow(min_delay=min_delay, max_age=max_age, keeper_fee=fee)

    def order(self, who: str, window: OrderWindow | None = None,
              now: int | None = None) -> OrderView | None:
        """`who`'s pending order (None without one)."""
        o = self.market.order(who)
        if int(o.committed_at) == 0:
            return None
        return order_from(self.number, who, self.asset, o,
                          int(self.lens.order_status(self.market.address, who)),
                          window or self.window(),
                          self.market.chain.now() if now is None else now)

    def free_cash(self) -> int:
        """Cash the uncollected fees do not hold: what withdrawals can take at most."""
        return int(self.market.cash()) - int(self.market.market()[4])


def _params(market: Contract) -> perp.RiskParams:
    return params_from(market.risk_params())


def params_from(raw: Any) -> perp.RiskParams:
    """The model of a market's `risk_params()` record."""
    return perp.RiskParams.from_chain(tuple(int(getattr(raw, name)) for name in FIELDS))


def index_view_from(state: Sequence[Any], verdict: Sequence[Any] | None, now: int) -> IndexView:
    """The index from the hub's `trading_state` and the market's `index_price()`
    (read only once the feed has a round: None before) at chain time `now` (shared by
    the readers here and the app's lens)."""
    _value, observed, round_id, heartbeat, max_move, halted = (int(x) for x in state)
    if round_id == 0 or verdict is None:
        return IndexView(has_data=False, price=0, fresh=False, age=-1, heartbeat=heartbeat,
                         halted=bool(halted), max_move_bps=max_move)
    price, fresh = verdict
    return IndexView(has_data=True, price=int(price), fresh=bool(fresh), age=now - observed,
                     heartbeat=heartbeat, halted=bool(halted), round_id=round_id,
                     observed_at=observed, max_move_bps=max_move)


def order_from(number: int, who: str, asset: Token, o: Any, status: int, w: OrderWindow,
               now: int) -> OrderView:
    """The model of a pending `order(who)` record with its `PerpLens.order_status`."""
    committed_at = int(o.committed_at)
    return OrderView(
        market=number, account=who, asset=asset, size_delta=int(o.size_delta),
        acceptable_price=int(o.acceptable_price), keeper_fee=int(o.keeper_fee),
        committed_at=committed_at, commit_round=int(o.commit_round), status=status,
        executable_from=committed_at + w.min_delay, expires_at=committed_at + w.max_age,
        now=now)


def factory_lines(client: Client) -> list[str]:
    """The perp factory and how many markets it has."""
    return headline(client.perp_factory(), "PerpMarketFactory", "perp")


def numbers(client: Client, number: int | None = None) -> list[int]:
    """`[number]` if the perp factory has that market (BadInput otherwise), or every
    market's number."""
    return market_numbers(client.perp_factory(), number, label="perp market", create="perp")


def _load(client: Client, number: int) -> _Market:
    factory = client.perp_factory()
    numbers(client, number)
    chain = client.chain
    market = chain.contract("PerpMarket", factory.market_at(number))
    asset_contract = client.erc20(market.asset())
    asset = Token(address=asset_contract.address, symbol=str(asset_contract.symbol()),
                  decimals=int(asset_contract.decimals()))
    feed = chain.contract("FeedAdapter", market.index_feed())
    return _Market(number, market, asset_contract, asset, feed,
                   chain.contract("OracleHub", market.oracle_hub()),
                   bytes(market.index_feed_id()), _params(market), lens(client))


def _view(m: _Market) -> MarketView:
    from oracle.reports import feed_name

    c = m.market
    longs, shorts, _skew, margins, fees, insurance, deficit = (int(x) for x in c.market())
    return MarketView(
        number=m.number, address=c.address, feed=feed_name("0x" + m.feed_id.hex()),
        feed_adapter=m.feed.address, asset=m.asset, params=m.params, paused=bool(c.paused()),
        fee_recipient=str(c.fee_recipient()), index=m.index(), window=m.window(),
        long_oi=longs, short_oi=shorts, margins=margins, fees=fees,
        insurance=insurance, deficit=deficit,
        funding_rate=int(c.funding_rate()), funding_index=int(c.funding_index()))


def market(client: Client, number: int) -> MarketView:
    """Perp market `number` (1, 2, ... in creation order)."""
    return _view(_load(client, number))


def _position(m: _Market, who: str, index: IndexView, window: OrderWindow | None = None,
              now: int | None = None) -> PositionView:
    lens_, where = m.lens, m.market.address
    size, margin = m.position(who)
    views = None
    if index.has_data:
        views = (int(lens_.pnl(where, who)), int(lens_.funding_owed(where, who)),
                 int(lens_.equity(where, who)), int(lens_.margin_ratio(where, who)),
                 int(lens_.liquidation_price(where, who)), bool(lens_.can_liquidate(where, who)),
                 int(lens_.withdrawable(where, who)))
    return position_from(m.number, who, m.asset, size, margin, views,
                         int(m.asset_contract.balanceOf(who)), index,
                         m.order(who, window, now))


def position_from(number: int, who: str, asset: Token, size: int, margin: int,
                  views: Sequence[Any] | None, wallet: int, index: IndexView,
                  order: OrderView | None) -> PositionView:
    """An account's model from its size and margin, the PerpLens's (pnl, funding owed,
    equity, margin ratio, liquidation price, can liquidate, withdrawable) once the index
    has a value (None before: flat values, all margin withdrawable), its wallet and
    pending order (shared by the readers here and the app's lens)."""
    pnl, funding, equity, ratio, liquidation, liquidatable, withdrawable = (
        views if views is not None else (0, 0, margin, 0, 0, False, margin))
    return PositionView(market=number, account=who, asset=asset, size=size, margin=margin,
                        pnl=int(pnl), funding=int(funding), equity=int(equity), ratio=int(ratio),
                        liquidation_price=int(liquidation), liquidatable=bool(liquidatable),
                        withdrawable=int(withdrawable), wallet=wallet, index_price=index.price,
                        order=order)


def position(client: Client, number: int, who: str) -> PositionView:
    """`who`'s position in market `number` (flat with no margin if it never traded), with
    its pending order."""
    account = address(who, "account")
    m = _load(client, number)
    return _position(m, account, m.index())


#: The events whose accounts a market's listings scan.
#: Events naming an account that may hold margin: traders, and keepers whose fees are
#: credited to their margin on execution.
ACCOUNT_EVENTS = {"PositionModified": "account", "OrderCommitted": "account",
                  "MarginDeposited": "account", "OrderExecuted": "keeper",
                  "OrderFailed": "keeper"}


def positions(client: Client, number: int,
              accounts: Sequence[str] | None = None) -> list[PositionView]:
    """Every position with a size, margin or pending order, of `accounts` (default every
    account that ever traded or committed an order: the market's events since its
    creation)."""
    m = _load(client, number)
    index, window, now = m.index(), m.window(), client.chain.now()
    found = [_position(m, who, index, window, now)
             for who in (accounts_in_events(m.market, ACCOUNT_EVENTS) if accounts is None
                         else accounts)]
    return [p for p in found if p.size != 0 or p.margin != 0 or p.order is not None]


def position_lines(views: Sequence[PositionView], fresh: bool) -> list[str]:
    """The positions part of `perp status`, each pending order under its position."""
    if not views:
        return ["  positions: none"]
    out = [f"  positions ({len(views)}){'' if fresh else ' at the stale index'}:"]
    for p in views:
        out.append(p.line())
        if p.order is not None:
            out.append(f"  {p.order.line()}")
    return out


def order(client: Client, number: int, who: str) -> OrderView | None:
    """`who`'s pending order in market `number` and its status (None without one)."""
    return _load(client, number).order(address(who, "account"))


def orders(client: Client, number: int,
           accounts: Sequence[str] | None = None) -> list[OrderView]:
    """Every pending order of `accounts` (default: every account that ever committed one),
    with its status; a keeper executes the executable ones and cancels the expired."""
    m = _load(client, number)
    window, now = m.window(), client.chain.now()
    found = (m.order(who, window, now) for who in (
        accounts_in_events(m.market, {"OrderCommitted": "account"}) if accounts is None
        else accounts))
    return [o for o in found if o is not None]


def order_lines(views: Sequence[OrderView]) -> list[str]:
    """The pending orders part of `perp orders`."""
    if not views:
        return ["  pending orders: none"]
    return [f"  pending orders ({len(views)}):", *(o.line() for o in views)]


def outcome(client: Client, number: int, receipts: Sequence[Receipt]) -> Outcome:
    """What market `number`'s events in `receipts` say was done."""
    c = _load(client, number).market
    logs = [log for receipt in receipts for log in receipt.logs]
    return Outcome(deposited=event_sum(c, "MarginDeposited", "amount", logs),
                   withdrawn=event_sum(c, "MarginWithdrawn", "amount", logs),
                   insurance_funded=event_sum(c, "InsuranceFunded", "amount", logs),
                   fees_collected=event_sum(c, "FeesCollected", "amount", logs),
                   fills=[Fill(**e) for e in c.events("PositionModified", logs)],
                   committed=[Committed(**e) for e in c.events("OrderCommitted", logs)],
                   executed=[Executed(**e) for e in c.events("OrderExecuted", logs)],
                   failed=[Failed(**dict(e, reason=revert_reason(bytes(e["reason"]))))
                           for e in c.events("OrderFailed", logs)],
                   cancelled=[Cancelled(**e) for e in c.events("OrderCancelled", logs)])


# ---------------------------------------------------------------------------------
# Quotes
# ---------------------------------------------------------------------------------


def fmt_worst(acceptable: int, size_delta: int) -> str:
    """An order's acceptable price ("any price" for the unbounded ones)."""
    if (size_delta > 0 and acceptable >= perp.MASK88) or (size_delta < 0 and acceptable == 0):
        return "any price"
    return fmt_price(acceptable)


def _hint(m: _Market, state: perp.MarketState, size: int, equity: int, delta: int,
          q: perp.TradeQuote, keeper_fee: int) -> str:
    """The numbers behind a refused execution, where the arithmetic can say."""
    p, price, money = m.params, state.price, m.asset.fmt
    if q.refusal == reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN:
        need = (perp.initial_margin(q.size_after, price, p, state.scale) + q.fee + q.premium
                + keeper_fee)
        text = (f"; the order needs {money(need)} of equity at execution (initial margin with "
                f"the exit premium, fee, premium and keeper fee), it would have "
                f"{money(equity)}: add {money(need - equity)} (--margin)")
        if size == 0:
            most = perp.max_size_for_margin(state, equity, delta < 0, keeper_fee)
            text += f" or order at most {gpuh(most)}"
        return text + f" (max leverage {Decimal(BPS) / p.initial_margin_bps:.2f}x)"
    if q.refusal in (reasons.PERP_LONG_OPEN_INTEREST_CAP, reasons.PERP_SHORT_OPEN_INTEREST_CAP):
        return (f" (caps: long {gpuh(p.max_long_oi * WAD)}, short {gpuh(p.max_short_oi * WAD)}; "
                f"open now: long {gpuh(state.long_oi)}, short {gpuh(state.short_oi)})")
    if q.refusal == reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE:
        return f" (fill {fmt_price(q.fill_price)})"
    if q.refusal in (reasons.PERP_INSURANCE_DEFICIT_RECORDED_NEW,
                     reasons.PERP_INSURANCE_FUND_EXHAUSTED_NEW):
        return f" (deficit {money(state.deficit)}, insurance fund {money(state.insurance)})"
    if q.refusal == reasons.PERP_FEED_MOVE_REACHES_MAINTENANCE:
        return (f" (the index feed moves up to {state.max_move_bps} bps per update; these "
                f"margins accept at most {perp.widest_move_bps(p)} bps)")
    if q.refusal == reasons.PERP_MARGIN_DOES_NOT_COVER:
        return (f" (equity {money(equity)}, fee {money(q.fee)}, premium {money(q.premium)}, "
                f"keeper fee {money(keeper_fee)})")
    return ""


def _state(m: _Market, index: IndexView, *, next_round: bool = False,
           price: int | None = None) -> perp.MarketState:
    """The market as an execution at `price` (default the latest index) finds it;
    `next_round`: as the next round at that price would (fresh whenever there is data)."""
    longs, shorts, skew, _margins, _fees, insurance, deficit = (int(x)
                                                                 for x in m.market.market())
    at = index.price if price is None else price
    if at != index.price:  # the fund marked at the fill round's price, not the latest
        insurance -= perp.ceil_div(skew * (at - index.price), m.scale)
    return perp.MarketState(price=at, fresh=index.has_data if next_round else index.fresh,
                            long_oi=longs, short_oi=shorts, paused=bool(m.market.paused()),
                            deficit=deficit, insurance=insurance, params=m.params,
                            asset_decimals=m.asset.decimals, max_move_bps=index.max_move_bps)


def _finish(m: _Market, base: dict, state: perp.MarketState, size: int, equity: int,
            delta: int, acceptable: int, **extra: int) -> Quote:
    keeper_fee = base["keeper_fee"]
    q = perp.quote_trade(state, size, equity, delta, acceptable, keeper_fee)
    hint = _hint(m, state, size, equity, delta, q, keeper_fee) if q.refusal is not None else ""
    liquidation = 0
    if q.refusal is None:
        liquidation = perp.liquidation_price_after(q.size_after, q.margin_after, state.price,
                                                   m.params, m.scale)
    return Quote(**base, acceptable_price=acceptable, refusal=q.refusal, hint=hint,
                 fill_price=q.fill_price, fee=q.fee, premium=q.premium, size_after=q.size_after,
                 margin_after=q.margin_after, liquidation_price=liquidation, **extra)


def _commit_quote(m: _Market, who: str, delta: int, extra: int, slippage: Decimal,
                  acceptable: int | None = None) -> Quote:
    """The execution of an order committed now, predicted at the index now (the next
    round's price is not known): the trade charges the keeper fee the order reserves."""
    index, window = m.index(), m.window()
    size, _margin = m.position(who)
    equity = m.equity(who, index) + extra
    base = {"market": m.number, "account": who, "asset": m.asset, "size": size,
            "size_delta": delta, "equity": equity, "index_price": index.price,
            "keeper_fee": window.keeper_fee}
    worst = 0 if delta < 0 else MAX_UINT256
    if delta == 0:
        return Quote(**base, acceptable_price=0, refusal=reasons.PERP_ZERO_SIZE)
    if not index.has_data:
        return Quote(**base, acceptable_price=worst if acceptable is None else acceptable,
                     refusal=reasons.HUB_NO_DATA_PRESENT_FEED,
                     hint=": no index to price the order against yet")
    state = _state(m, index, next_round=True)
    if acceptable is None:
        try:  # the PerpLens's fill at the index now (the mirror's `fill_price`)
            fill = int(m.lens.fill_price(m.market.address, delta))
        except Reverted:
            return Quote(**base, acceptable_price=worst,
                         refusal=reasons.PERP_FILL_PRICE_NOT_POSITIVE)
        acceptable = perp.acceptable_price(fill, delta, slippage)
    return _finish(m, base, state, size, equity, delta, acceptable)


def _slippage(slippage: str | Decimal) -> Decimal:
    return parse_percent(slippage, "slippage", allow_zero=True)


def quote(client: Client, number: int, who: str, size_delta: int, *, margin: int = 0,
          slippage: str | Decimal = Decimal(1)) -> Quote:
    """What an order of `size_delta` committed now by `who`, after depositing `margin`,
    would do if it filled at the index now: the fill, fee, premium and liquidation
    price after, or the market's refusal with what to do about it. `slippage`
    (percent) sets the worst fill accepted."""
    account = address(who, "account")
    return _commit_quote(_load(client, number), account, size_delta, margin,
                         _slippage(slippage))


def _to_wad(answer: int, decimals: int) -> int:
    """`PerpMarket._to_wad`: a feed answer in WAD, 0 when not positive or out of range."""
    if answer <= 0 or answer >= 2**128:
        return 0
    price = answer * 10 ** (18 - decimals)
    return 0 if price >= 2**96 else price


def _fill_round(m: _Market, o: OrderView, index: IndexView) -> tuple[str | None, int, int]:
    """`PerpMarket._round_after`: (refusal, round id, WAD price) of the first round
    observed strictly after the order's commit (a report stored after the commit but
    observed before it is skipped)."""
    if index.observed_at <= o.committed_at:
        return reasons.PERP_NO_ORACLE_ROUND_AFTER, 0, 0
    decimals = int(m.feed.decimals())
    r = o.commit_round + 1
    for _ in range(perp.MAX_ROUND_SCAN):
        if r >= index.round_id:
            return None, index.round_id, index.price
        _round, answer, _started, observed, _answered = m.hub.get_round_data(m.feed_id, r)
        if int(observed) > o.committed_at:
            price = _to_wad(int(answer), decimals)
            if price == 0:
                return reasons.PERP_INDEX_PRICE_NOT_POSITIVE, r, 0
            return None, r, price
        r += 1
    return reasons.PERP_TOO_MANY_ROUNDS_SINCE, 0, 0


def _execution_quote(m: _Market, who: str) -> Quote:
    """`execute_order(who)` predicted now, in the market's order of checks: a pending
    order, its window, a fresh index, a round observed after the commit (a refusal so
    far reverts: `Quote.reverts`), then the trade at that round's price (its refusal
    cancels the order, the keeper still paid)."""
    index, window, now = m.index(), m.window(), m.market.chain.now()
    o = m.order(who, window, now)
    size, margin, last_price, last_funding = (int(x) for x in m.market.position(who))
    base = {"market": m.number, "account": who, "asset": m.asset, "size": size,
            "size_delta": o.size_delta if o else 0, "index_price": index.price,
            "keeper_fee": o.keeper_fee if o else 0}
    if o is None:
        return Quote(**base, equity=margin, acceptable_price=0,
                     refusal=reasons.PERP_NO_PENDING_ORDER, reverts=True)
    early = dict(base, equity=margin, acceptable_price=o.acceptable_price, reverts=True)
    refusal = perp.window_refusal(now, o.committed_at, window.min_delay, window.max_age)
    if refusal == reasons.PERP_ORDER_NOT_EXECUTABLE_YET:
        return Quote(**early, refusal=refusal, hint=f" (executable in "
                                                    f"{fmt_seconds(o.executable_from - now)})")
    if refusal is not None:
        return Quote(**early, refusal=refusal, hint=f" (expired "
                                                    f"{fmt_seconds(now - o.expires_at)} ago)")
    if not index.fresh:
        return Quote(**early, refusal=reasons.PERP_INDEX_PRICE_STALE_OR_HALTED,
                     hint=index.why_not_fresh())
    refusal, round_id, price = _fill_round(m, o, index)
    if refusal is not None:
        return Quote(**early, refusal=refusal, hint=f" (committed after round "
                                                    f"{o.commit_round}; latest round "
                                                    f"{index.round_id})")
    settled = 0
    if size != 0:
        settled = perp.settlement(size, last_price, last_funding, price,
                                  int(m.market.funding_index()), m.scale)
    state = _state(m, index, price=price)
    return _finish(m, dict(base, equity=margin + settled, index_price=price), state, size,
                   margin + settled, o.size_delta, o.acceptable_price, round_id=round_id)


def execution(client: Client, number: int, account: str) -> Quote:
    """What executing `account`'s pending order would do now (a keeper's pre-check): the
    fill at the first oracle round after the commit (`Quote.round_id`, its price
    `Quote.index_price`), or the market's refusal with what to do about it: one that
    reverts the execution (`Quote.reverts`: too early, expired, stale or halted index,
    no round after the commit yet), or the trade's, which cancels the order and still
    pays the keeper (`OrderFailed`)."""
    return _execution_quote(_load(client, number), address(account, "account"))


# ---------------------------------------------------------------------------------
# Traders and keepers
# ---------------------------------------------------------------------------------


def _deposit_txs(m: _Market, who: str, units: int) -> list:
    money = m.asset.fmt(units)
    return [*approval(m.asset_contract, who, m.market.address, units,
                      f"approve {money} to market {m.number}"),
            m.market.deposit_margin.tx(units, what=f"deposit {money} of margin in market "
                                                   f"{m.number}")]


def _balance_problem(m: _Market, who: str, units: int, what: str) -> list[str]:
    problem = short_of(who, m.asset, int(m.asset_contract.balanceOf(who)), units, what)
    return [problem] if problem else []


def _positive(amount: int, what: str) -> int:
    if not isinstance(amount, int) or amount <= 0:
        raise BadInput(f"{what}: must be a positive amount (base units), got {amount!r}")
    return amount


def plan_deposit(client: Client, trader: str, number: int, amount: int) -> Plan:
    """Deposit `amount` as margin (always works: paused, stale or halted)."""
    who = address(trader, "trader")
    m = _load(client, number)
    units = _positive(amount, "amount")
    return action("deposit", _deposit_txs(m, who, units),
                  _balance_problem(m, who, units, "to deposit"))


def plan_withdraw(client: Client, trader: str, number: int, amount: int | None = None) -> Plan:
    """Withdraw `amount` of settled margin, or all that can be withdrawn (None):
    everything when flat; with a position the settled margin less any unrealised loss
    above the initial margin (gains count only once an order realises them), less a
    buffer for the funding that accrues until the transaction is mined. Nothing while an
    order is pending (it is executed or cancelled first). With a position the index must be
    fresh; never more than the cash the uncollected fees do not hold."""
    who = address(trader, "trader")
    m = _load(client, number)
    size, margin = m.position(who)
    if size == 0 and margin == 0:
        raise Refused("withdrawal", f"{who} has no margin in market {number}")
    money, p, index = m.asset.fmt, m.params, m.index()
    free, notes = m.free_cash(), []
    pending = m.order(who)
    reserved = pending.keeper_fee if pending is not None else None
    equity = m.equity(who, index)
    settled = equity - margin
    need = perp.initial_margin(size, index.price, p, m.scale) if size else 0
    units = None if amount is None else _positive(amount, "amount")
    if units is None and pending is not None:
        units = margin  # refused below: nothing leaves while an order is pending
    if units is None:
        room = perp.withdrawable(0, margin, margin, 0, p, m.scale, reserved or 0)
        if size != 0:
            buffer = -(-abs(size) * index.price * p.max_funding_rate * FUNDING_BUFFER_S
                       // (DAY * WAD * m.scale)) + 1
            room = min(int(m.lens.withdrawable(m.market.address, who)) - buffer, room)
            notes.append(f"left {money(buffer)} for the funding that accrues until the "
                         "transaction is mined")
        units = max(min(room, free), 0)
        if units == 0:
            raise Refused("withdrawal", f"nothing withdrawable: margin {money(margin)}"
                          + (f", unrealised PnL and funding {money(settled)} (a loss counts, a "
                             "gain does not until an order realises it), initial margin "
                             f"{money(need)} of the {sized(size)} position" if size else "")
                          + (f", {money(reserved)} reserved for a pending order's keeper"
                             if reserved else "")
                          + f", free cash in the market {money(max(free, 0))}")
        if reserved:
            notes.append(f"{money(reserved)} stays reserved for the pending order's keeper")
        if units < room:
            notes.append(f"only {money(units)}: the rest of the market's cash is held for "
                         "uncollected fees")
    refusal = perp.withdrawal_refusal(units, size, margin, settled, index.price, index.fresh,
                                      p, m.scale, free, reserved)
    details = {
        reasons.PERP_WITHDRAWAL_EXCEEDS_MARGIN: f" (settled margin {money(margin)})",
        reasons.PERP_WITHDRAWAL_LEAVE_LESS_INITIAL:
            f" (margin {money(margin)}, unrealised loss {money(-min(settled, 0))}, initial "
            f"margin {money(need)}: at most {money(max(margin + min(settled, 0) - need, 0))})",
        reasons.PERP_INDEX_PRICE_STALE_OR_HALTED: index.why_not_fresh(),
        reasons.PERP_MARGIN_DOES_NOT_COVER_KEEPER:
            f" (an order is pending: {money(reserved or 0)} of the {money(margin)} margin stays "
            "reserved for its keeper)",
        reasons.PERP_FREE_CASH_DOES_NOT_COVER: f" (free cash {money(max(free, 0))})",
    }
    problems = [explained(refusal, details.get(refusal, ""))] if refusal else []
    tx = m.market.withdraw_margin.tx(units, what=f"withdraw {money(units)} of margin from market "
                                                 f"{number}")
    return action("withdrawal", [tx], problems, notes)


AT_EXECUTION = ("(at execution: the market would take the commit, refuse the trade and "
                "cancel the order, the keeper fee still paid from the margin)")


def plan_commit(client: Client, trader: str, number: int, size_delta: int, *, margin: int = 0,
                slippage: str | Decimal = Decimal(1),
                acceptable_price: int | None = None) -> Plan:
    """Commit an order to change the position by `size_delta` (WAD GPU-hours; > 0 buys,
    < 0 sells), depositing `margin` first. The worst fill accepted is `acceptable_price`,
    or `slippage` percent from the fill quoted at the index now. The order reserves the
    market's keeper fee in the margin; a keeper executes it at the first oracle round
    after the commit. Refused as the market refuses the commit, and also when it would
    refuse the trade were the next round at today's index (`AT_EXECUTION`: the order
    would be cancelled and the keeper fee lost). Notes: the quote, the liquidation price
    after, the order window."""
    who = address(trader, "trader")
    m = _load(client, number)
    if margin < 0:
        raise BadInput(f"margin: must not be negative, got {margin}")
    money, window, index = m.asset.fmt, m.window(), m.index()
    pending = m.order(who, window)
    _size, held = m.position(who)
    refusal = perp.commit_refusal(size_delta, pending=pending is not None, params_set=True,
                                  margin=held + margin, order_fee=window.keeper_fee)
    problems: list[str] = []
    notes: list[str] = []
    acceptable = acceptable_price if acceptable_price is not None else (
        0 if size_delta < 0 else MAX_UINT256)
    if refusal == reasons.PERP_ORDER_ALREADY_PENDING and pending is not None:
        problems.append(explained(refusal, f" ({pending.line().strip()})"))
    elif refusal == reasons.PERP_MARGIN_DOES_NOT_COVER_KEEPER:
        problems.append(explained(refusal, f" (keeper fee {money(window.keeper_fee)}, margin "
                                           f"{money(held + margin)})"))
    elif refusal is not None:
        problems.append(explained(refusal))
    else:
        q = _commit_quote(m, who, size_delta, margin, _slippage(slippage), acceptable_price)
        acceptable = q.acceptable_price
        if q.refusal is not None:
            problems.append(f"{q.explained} {AT_EXECUTION}")
        else:
            notes += [q.line(), f"liquidation price after the execution "
                                f"{fmt_liquidation(q.liquidation_price)}"]
    if margin:
        problems += _balance_problem(m, who, margin, "of margin to deposit")
    notes.append(f"the order reserves the {money(window.keeper_fee)} keeper fee in the margin; "
                 "a keeper executes it at the first oracle round observed after the commit, "
                 f"from {fmt_seconds(window.min_delay)} to {fmt_seconds(window.max_age)} after "
                 "it (then it can only be cancelled); a trade the market refuses then cancels "
                 "the order, the keeper still paid")
    if index.has_data and not index.fresh:
        notes.append(f"the index is stale or halted now{index.why_not_fresh()}: the order "
                     "fills at the next accepted report, whose price may differ")
    what = (f"commit an order to {traded(size_delta)} in market {number} (worst fill "
            f"{fmt_worst(acceptable, size_delta)})" if size_delta else
            f"commit an order in market {number}")
    txs = [*(_deposit_txs(m, who, margin) if margin else []),
           m.market.commit_order.tx(size_delta, acceptable, what=what)]
    return action("order", txs, problems, notes)


def plan_close(client: Client, trader: str, number: int, *,
               slippage: str | Decimal = Decimal(1)) -> Plan:
    """Commit an order closing the whole position (the margin stays in the market until
    withdrawn, once a keeper has executed it)."""
    who = address(trader, "trader")
    size, _ = _load(client, number).position(who)
    if size == 0:
        raise Refused("close", explained(reasons.PERP_NO_OPEN_POSITION,
                                         f" ({who} in market {number})"))
    return plan_commit(client, who, number, -size, slippage=slippage)


def plan_execute(client: Client, keeper: str, number: int, account: str) -> Plan:
    """Execute `account`'s pending order (anyone may; the caller earns the order's keeper
    fee, credited to its margin in the market), refused as the market would revert it
    now (too early, expired, no round after the commit, stale or halted index). A trade
    the market would refuse is no refusal here: the execution cancels the order
    (`OrderFailed`) and still pays the keeper; a note says so. Notes: the fill round, the
    fill (or the trade's refusal) and the fee earned. Send it with at least
    `perp.MIN_SETTLE_GAS` gas to spare for the trade."""
    address(keeper, "keeper")
    who = address(account, "account")
    m = _load(client, number)
    q = _execution_quote(m, who)
    side = f" ({traded(q.size_delta)})" if q.size_delta else ""
    tx = m.market.execute_order.tx(who, what=f"execute {who}'s order{side} in market {number}")
    if q.refusal is not None and q.reverts:
        return action("execution", [tx], [q.explained])
    money = m.asset.fmt
    if q.refusal is not None:
        paid = min(q.keeper_fee, m.position(who)[1])
        return action("execution", [tx], [], [
            f"the market refuses the trade at round {q.round_id}'s index "
            f"{fmt_price(q.index_price)}: {q.explained}",
            f"executing cancels the order (OrderFailed); the keeper still earns {money(paid)} "
            "(credited to its margin in the market)"])
    notes = [f"fills at round {q.round_id}'s index: {q.line()}",
             f"the keeper earns the {money(q.keeper_fee)} keeper fee (credited to its margin "
             "in the market: `ape run perp withdraw`)"]
    if q.size and q.equity > m.position(who)[1] and _state(m, m.index()).insurance < 0:
        notes.append("the insurance fund is short: the gain this execution realises is paid "
                     "pro rata (a haircut)")
    return action("execution", [tx], [], notes)


def plan_cancel(client: Client, caller: str, number: int, account: str) -> Plan:
    """Cancel `account`'s expired order (anyone may): the keeper fee it reserved in the
    margin is free again. Before expiry only a keeper's execution ends an order."""
    address(caller, "caller")
    who = address(account, "account")
    m = _load(client, number)
    window, now = m.window(), client.chain.now()
    o = m.order(who, window, now)
    refusal = perp.cancel_refusal(now, o.committed_at if o else 0, window.max_age)
    detail = ""
    if refusal == reasons.PERP_ORDER_NOT_EXPIRED and o is not None:
        detail = f" (it expires in {fmt_seconds(o.expires_at - now + 1)}; {o.state()})"
    tx = m.market.cancel_order.tx(who, what=f"cancel {who}'s expired order in market {number}")
    notes = ([f"the {m.asset.fmt(o.keeper_fee)} keeper fee reserved in {who}'s margin is free "
              "again"] if o is not None else [])
    return action("cancellation", [tx], [explained(refusal, detail)] if refusal else [], notes)


def plan_fund_insurance(client: Client, funder: str, number: int, amount: int) -> Plan:
    """Add to the insurance fund: it first covers a recorded deficit (which pauses new
    risk); never withdrawable."""
    who = address(funder, "funder")
    m = _load(client, number)
    units = _positive(amount, "amount")
    money = m.asset.fmt
    deficit = int(m.market.deficit())
    notes = []
    if deficit:
        covered = ("covers the deficit: new risk resumes" if units >= deficit
                   else "does not cover the deficit: new risk stays paused")
        notes.append(f"{money(units)} {covered} (deficit {money(deficit)})")
    txs = [*approval(m.asset_contract, who, m.market.address, units,
                     f"approve {money(units)} to market {number}"),
           m.market.fund_insurance.tx(units, what=f"fund the insurance of market {number} with "
                                                  f"{money(units)}")]
    return action("insurance funding", txs, _balance_problem(m, who, units, "to add"), notes)


def plan_collect_fees(client: Client, caller: str, number: int) -> Plan:
    """Pay the accrued trading fees to the fee recipient (anyone may call)."""
    address(caller, "caller")
    m = _load(client, number)
    fees = int(m.market.market()[4])
    tx = m.market.collect_fees.tx(what=f"collect {m.asset.fmt(fees)} of fees of market {number}")
    return action("collect", [tx], [] if fees else [explained(reasons.PERP_NO_FEES_COLLECT)])


# ---------------------------------------------------------------------------------
# Risk parameters, creation
# ---------------------------------------------------------------------------------


def parse_decimal(value: str | Decimal, what: str) -> Decimal:
    """A number as typed (`"2.5"`); BadInput naming `what` if it is not one."""
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise BadInput(f"{what}: {value!r} is not a number") from exc
    if not number.is_finite():
        raise BadInput(f"{what}: {value!r} is not a number")
    return number


def _whole(value: str | Decimal, what: str) -> int:
    number = parse_decimal(value, what)
    if number != number.to_integral_value() or number <= 0:
        raise BadInput(f"{what}: must be a whole number of GPU-hours, got {value}")
    return int(number)


def _leverage_bps(value: str | Decimal) -> int:
    """A max leverage as the initial margin in bps, `ceil(10,000 / x)`."""
    leverage = parse_decimal(value, "max_leverage")
    if leverage <= 0:
        raise BadInput(f"max_leverage: must be positive, got {value}")
    return int((Decimal(BPS) / leverage).to_integral_value(rounding=ROUND_CEILING))


def risk_params(decimals: int, base: perp.RiskParams | None = None,
                **options: str | Decimal | None) -> perp.RiskParams:
    """Risk parameters from what a person typed (`RISK_OPTIONS` names, percentages in
    percent, `min_keeper_fee` in whole stablecoin); None keeps `base`'s value (or the
    default without a base). Not checked against the market's limits: see
    `params_refusal` (the market's own message)."""
    def pct(name: str, to: str) -> tuple[str, object]:
        convert = percent_to_bps if to == "bps" else percent_to_wad
        cap = Decimal(100) if to == "bps" else None
        return (f"{name}_bps" if to == "bps" else name,
                lambda v: convert(parse_percent(v, name, allow_zero=True, cap=cap), name))

    conversions = {
        "skew_scale": ("skew_scale", lambda v: _whole(v, "skew_scale")),
        "max_long_oi": ("max_long_oi", lambda v: _whole(v, "max_long_oi")),
        "max_short_oi": ("max_short_oi", lambda v: _whole(v, "max_short_oi")),
        "max_leverage": ("initial_margin_bps", _leverage_bps),
        "maintenance_margin": pct("maintenance_margin", "bps"),
        "taker_fee": pct("taker_fee", "bps"),
        "maker_fee": pct("maker_fee", "bps"),
        "liquidation_fee": pct("liquidation_fee", "bps"),
        "min_keeper_fee": ("min_keeper_fee", lambda v: to_base_units(
            v, decimals, "min_keeper_fee", allow_zero=True)),
        "max_funding_velocity": pct("max_funding_velocity", "wad"),
        "max_funding_rate": pct("max_funding_rate", "wad"),
    }
    unknown = set(options) - set(conversions)
    if unknown:
        raise BadInput(f"unknown risk parameter(s): {', '.join(sorted(unknown))}")
    values: dict[str, int] = dict(base.model_dump()) if base is not None else {}
    for option, (field, convert) in conversions.items():
        value = options.get(option)
        if value is None and base is None:
            value = RISK_OPTIONS[option][0]
        if value is not None:
            values[field] = convert(value)  # type: ignore[operator]
    return perp.RiskParams.model_construct(**{name: values[name] for name in FIELDS})


def params_refusal(p: perp.RiskParams) -> str | None:
    """`PerpMarket._set_params`'s checks, in its order, with its messages."""
    if not (0 < p.skew_scale <= MASK64 and p.max_long_oi and p.max_short_oi
            and max(p.max_long_oi, p.max_short_oi) <= MAX_OI):
        return reasons.PERP_SKEW_SCALE_1_2
    if not (200 <= p.initial_margin_bps <= BPS and p.maintenance_margin_bps != 0
            and p.maintenance_margin_bps + p.liquidation_fee_bps < p.initial_margin_bps):
        return reasons.PERP_NEED_0_MAINTENANCE_LIQUIDATION
    if not (p.taker_fee_bps <= 100 and p.maker_fee_bps <= p.taker_fee_bps
            and p.liquidation_fee_bps <= 500):
        return reasons.PERP_FEES_ABOVE_THEIR_CAPS
    if not (p.min_keeper_fee <= 2**96 - 1 and p.max_funding_velocity <= 10 * WAD
            and p.max_funding_rate <= WAD):
        return reasons.PERP_KEEPER_FEE_FUNDING_PARAMETER
    return None


def _missing_role(contract: Contract, role: bytes, who: str, text: str) -> list[str]:
    if contract.hasRole(role, who):
        return []
    return [f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({who} lacks {text})"]


def _seconds(value: int | str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        seconds = int(str(value))
    except ValueError as exc:
        raise BadInput(f"{what}: {value!r} is not a whole number of seconds") from exc
    if seconds < 0:
        raise BadInput(f"{what}: must not be negative, got {value}")
    return seconds


def _window_tx(m: _Market, *, keeper_fee: str | Decimal | None, min_delay: int | str | None,
               max_age: int | str | None) -> tuple[list, list[str], OrderWindow]:
    """`set_order_window` with the given values (None keeps the market's), its refusal,
    and the window it sets. `keeper_fee` in whole stablecoin."""
    now = m.window()
    fee = (now.keeper_fee if keeper_fee is None else
           to_base_units(keeper_fee, m.asset.decimals, "order_keeper_fee", allow_zero=True))
    delay = _seconds(min_delay, "order_min_delay")
    age = _seconds(max_age, "order_max_age")
    window = OrderWindow(min_delay=now.min_delay if delay is None else delay,
                         max_age=now.max_age if age is None else age, keeper_fee=fee)
    refusal = perp.order_window_refusal(window.min_delay, window.max_age, window.keeper_fee)
    tx = m.market.set_order_window.tx(window.min_delay, window.max_age, window.keeper_fee,
                                      what=f"order window of perp market {m.number}: "
                                           f"{window.line(m.asset)}")
    problems = [explained(refusal, f" (min delay {window.min_delay}s, max age "
                                   f"{window.max_age}s)")] if refusal else []
    return [tx], problems, window


def _move_problem(max_move_bps: int, params: perp.RiskParams) -> list[str]:
    """The market's check that one feed update cannot create bad debt, explained."""
    if perp.move_covered(max_move_bps, params):
        return []
    widest = perp.widest_move_bps(params)
    limit = f"{max_move_bps} bps" if max_move_bps else "no limit"
    return [explained(reasons.PERP_FEED_MOVE_REACHES_MAINTENANCE,
                      f" (the index feed's move limit is {limit} per update; maintenance "
                      f"{fmt_bps(params.maintenance_margin_bps)}, liquidation fee "
                      f"{fmt_bps(params.liquidation_fee_bps)} and taker fee "
                      f"{fmt_bps(params.taker_fee_bps)} accept at most {widest} bps)")]


def plan_set(client: Client, admin: str, number: int, *, fee_recipient: str | None = None,
             paused: bool | None = None, order_keeper_fee: str | Decimal | None = None,
             order_min_delay: int | str | None = None, order_max_age: int | str | None = None,
             **risk: str | Decimal | None) -> Plan:
    """Change a market's risk parameters (`RISK_OPTIONS` names; the others are kept),
    order window (`ORDER_OPTIONS`) and fee recipient (RISK_ADMIN), or pause / unpause
    new risk (GUARDIAN). New parameters must keep one feed update from reaching the
    maintenance margin (PERP_FEED_MOVE_REACHES_MAINTENANCE)."""
    who = address(admin, "admin")
    changes = {k: v for k, v in risk.items() if v is not None}
    window_change = any(v is not None for v in (order_keeper_fee, order_min_delay,
                                                order_max_age))
    if not changes and fee_recipient is None and paused is None and not window_change:
        raise BadInput("nothing to change: give a risk parameter, an order window option, "
                       "fee_recipient or paused")
    receiver = address(fee_recipient, "fee_recipient") if fee_recipient is not None else None
    m = _load(client, number)
    c = m.market
    txs, problems = [], []
    if changes or receiver is not None or window_change:
        problems += _missing_role(c, RISK_ADMIN_ROLE, who, f"RISK_ADMIN_ROLE on perp market "
                                                           f"{number}")
    if changes:
        params = risk_params(m.asset.decimals, m.params, **changes)
        refusal = params_refusal(params)
        if refusal:
            problems.append(explained(refusal))
        problems += _move_problem(m.index().max_move_bps, params)
        txs.append(c.set_risk_params.tx(params.as_tuple(),
                                        what=f"risk parameters of perp market {number}"))
    if window_change:
        window_txs, window_problems, _ = _window_tx(m, keeper_fee=order_keeper_fee,
                                                    min_delay=order_min_delay,
                                                    max_age=order_max_age)
        txs += window_txs
        problems += window_problems
    if receiver is not None:
        txs.append(c.set_fee_recipient.tx(receiver, what=f"fee recipient of perp market "
                                                         f"{number}: {receiver}"))
    if paused is not None:
        problems += _missing_role(c, GUARDIAN_ROLE, who, f"GUARDIAN_ROLE on perp market {number}")
        if bool(c.paused()) == paused:
            problems.append(f"perp market {number} is already "
                            f"{'paused' if paused else 'not paused'}")
        verb = "pause" if paused else "unpause"
        txs.append((c.pause if paused else c.unpause).tx(what=f"{verb} perp market {number}"))
    return action("parameter change", txs, problems)


def plan_create(client: Client, creator: str, feed: str, params: perp.RiskParams, *,
                asset: str | None = None, fee_recipient: str | None = None,
                insurance: int = 0) -> Plan:
    """Create a perp market on hub feed `feed` (its name, e.g. `H100-SXM-80GB/USD/GPUh`)
    in `asset` (default the deployment's stablecoin), the creator its admin, risk admin
    and guardian. The feed's move limit must pass the market's check (one update cannot
    reach the maintenance margin). `insurance` (base units) is what the creator means to
    seed the insurance fund with afterwards (`plan_setup`): checked here, so nothing is
    sent if the creator cannot pay it. Once created (`created`), `plan_setup` sets the
    order window and seeds the insurance."""
    from oracle.reports import feed_id

    who = address(creator, "creator")
    margin_asset = address(asset, "asset") if asset else client.deployed.income_token
    if not client.chain.code(margin_asset):
        raise BadInput(f"asset: {margin_asset} has no contract on this chain")
    stable = token(client, margin_asset)
    if stable.decimals > 18:
        raise BadInput(f"asset: {margin_asset} has {stable.decimals} decimals (at most 18)")
    receiver = address(fee_recipient, "fee_recipient") if fee_recipient else who
    try:
        fid = bytes.fromhex(feed_id(feed)[2:])
    except ValueError as exc:
        raise BadInput(f"feed: {exc}") from exc
    hub, factory = client.hub(), client.perp_factory()
    info = hub.feed(fid)
    if not info.exists:
        raise BadInput(f"feed: the oracle hub has no feed {feed}: the hub admin adds it with "
                       f"`ape run oracle add-feed --name {feed} ...`")
    adapter = str(hub.feed_adapter(fid))
    problems = _missing_role(factory, MARKET_CREATOR_ROLE, who, "the perp factory's "
                             "MARKET_CREATOR_ROLE; ask the factory admin, the deployer, to "
                             "grant it")
    existing = str(factory.market_of(factory.market_id_of(margin_asset, adapter)))
    if existing != ZERO_ADDRESS:
        problems.append(explained(reasons.PERP_FACTORY_MARKET_ALREADY_EXISTS,
                                  f" ({existing} trades {feed} in {stable.symbol})"))
    refusal = params_refusal(params)
    if refusal:
        problems.append(explained(refusal))
    problems += _move_problem(int(info.max_move_bps), params)
    if insurance:
        problems += [p for p in [short_of(who, stable, int(client.erc20(margin_asset).balanceOf(
            who)), insurance, "of insurance")] if p]
    notes = []
    if not info.enabled:
        notes.append(f"warning: feed {feed} is disabled on the hub")
    if int(hub.latest_value(fid)[2]) == 0:
        notes.append(f"note: feed {feed} has no value yet; trading waits for one")
    notes.append("then `plan_setup`: the order window (keeper fee, maximum age from the feed's "
                 f"heartbeat, {fmt_seconds(perp.default_order_age(int(info.heartbeat)))} by "
                 "default) and the insurance seed")
    tx = factory.create_market.tx(margin_asset, adapter, params.as_tuple(), receiver, who,
                                  what=f"create perp market {feed} / {stable.symbol}")
    return action("market creation", [tx], problems, notes)


def created(client: Client, receipt: Receipt) -> tuple[int, str]:
    """(number, address) of the market a `create_market` receipt made."""
    factory = client.perp_factory()
    address_ = str(factory.events("MarketCreated", receipt)[0]["market"])
    for number in range(int(factory.market_count()), 0, -1):
        if str(factory.market_at(number)) == address_:
            return number, address_
    raise BadInput(f"the receipt's market {address_} is not in the perp factory")


def plan_setup(client: Client, admin: str, number: int, *,
               keeper_fee: str | Decimal | None = ORDER_OPTIONS["order_keeper_fee"][0],
               min_delay: int | str | None = ORDER_OPTIONS["order_min_delay"][0],
               max_age: int | str | None = None, insurance: int = 0) -> Plan:
    """What a new market needs after `plan_create`: its order window (`keeper_fee` whole
    stablecoin each order reserves and pays its executor, 1 by default; executable
    `min_delay` to `max_age` seconds after a commit, `max_age` by default two heartbeats
    of the index feed) and, with `insurance` (base units), the insurance seed. `admin`:
    the market's risk admin (its creator)."""
    who = address(admin, "admin")
    m = _load(client, number)
    if max_age is None:
        max_age = perp.default_order_age(m.index().heartbeat)
    problems = _missing_role(m.market, RISK_ADMIN_ROLE, who,
                             f"RISK_ADMIN_ROLE on perp market {number}")
    txs, window_problems, window = _window_tx(m, keeper_fee=keeper_fee, min_delay=min_delay,
                                              max_age=max_age)
    problems += window_problems
    if insurance:
        units = _positive(insurance, "insurance")
        money = m.asset.fmt(units)
        txs += [*approval(m.asset_contract, who, m.market.address, units,
                          f"approve {money} to market {number}"),
                m.market.fund_insurance.tx(units, what=f"seed the insurance of market {number} "
                                                       f"with {money}")]
        problems += _balance_problem(m, who, units, "of insurance")
    return action("market setup", txs, problems, [window.line(m.asset)])
