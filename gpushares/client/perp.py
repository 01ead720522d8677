"""Perpetual futures on a GPU-hour index: markets and positions as pydantic views,
quotes, and what traders, funders, risk admins and guardians do as `Plan`s.

    view = perp.market(client, 1)                          # index, open interest, funding
    q = perp.quote(client, 1, who, 100 * WAD, margin=500 * 10**6)
    plan = perp.plan_open(client, who, 1, 100 * WAD, margin=500 * 10**6)
    mine = perp.position(client, 1, who)                   # PnL, funding, equity, liq price

One contract is one GPU-hour at the index price (USD per GPU-hour). Sizes are WAD
GPU-hours (signed: long > 0), prices WAD USD per GPU-hour, margins base units of the
market's stablecoin (`MarketView.asset.parse`; `parse_size` for sizes). Every check is
`gpushares.perp`, the exact mirror of the market's arithmetic, in the market's order,
with the market's own message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict

from gpushares import perp, reasons
from gpushares.client.chain import ZERO_ADDRESS, Contract, Plan, Receipt, Refused
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
MAX_UINT256 = 2**256 - 1
MASK64 = 2**64 - 1
MAX_OI = 2**40
MARKET_CREATOR_ROLE = keccak(text="MARKET_CREATOR_ROLE")
RISK_ADMIN_ROLE = keccak(text="RISK_ADMIN_ROLE")
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")
FIELDS = tuple(perp.RiskParams.model_fields)
STALE_NOTE = "STALE: trades, withdrawals with a position and liquidations wait for a fresh index"
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

_FROZEN = ConfigDict(frozen=True)


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


def gpuh(size: int) -> str:
    """WAD GPU-hours as `1,234.5 GPU-hours` (unsigned)."""
    return f"{fmt_units(abs(size), 18)} GPU-hours"


def sized(size: int) -> str:
    """A signed size as `short 4,608 GPU-hours`."""
    if size == 0:
        return "flat"
    return f"{'long' if size > 0 else 'short'} {gpuh(size)}"


def parse_size(amount: str | Decimal, what: str) -> int:
    """GPU-hours as typed (`"4608"`, decimals allowed) as WAD; BadInput naming `what`."""
    return to_base_units(amount, 18, what)


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
    """The index as the market sees it: price (WAD), fresh, age (s) at the chain's
    time, heartbeat (s)."""

    model_config = _FROZEN

    has_data: bool
    price: int
    fresh: bool
    age: int
    heartbeat: int

    @property
    def refusal(self) -> str | None:
        """Why the market refuses a trade on this index now (None: it does not)."""
        if not self.has_data:
            return reasons.HUB_NO_DATA_PRESENT_FEED
        if self.price == 0:
            return reasons.PERP_INDEX_PRICE_NOT_POSITIVE
        if not self.fresh:
            return reasons.PERP_INDEX_PRICE_STALE_OLDER
        return None


class MarketView(BaseModel):
    """One perp market: its index, parameters, open interest, funding and funds."""

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
    long_oi: int
    short_oi: int
    margins: int
    fees: int
    insurance: int  # marked to the index (the cash before any index)
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

    def state(self) -> perp.MarketState:
        """What `gpushares.perp.quote_trade` reads."""
        return perp.MarketState(price=self.index.price, fresh=self.index.fresh,
                                long_oi=self.long_oi, short_oi=self.short_oi, paused=self.paused,
                                deficit=self.deficit, insurance=self.insurance,
                                params=self.params, asset_decimals=self.asset.decimals)

    def lines(self) -> list[str]:
        """The market as `ape run perp status` shows it (without its positions)."""
        a, money = self.asset, self.asset.fmt
        out = [f"perp market {self.number}: {self.feed} / {a.symbol} at {self.address}",
               f"  index feed    {self.feed} adapter {self.feed_adapter}",
               f"  margin asset  {a.symbol} {a.address} ({a.decimals} decimals)",
               *(f"  {line}" for line in param_lines(self.params, a))]
        pause = "YES (guardian: no opens or increases)" if self.paused else "no"
        if self.deficit:
            pause += "; new risk paused by the recorded deficit until it is funded"
        out.append(f"  paused: {pause}; fees to {self.fee_recipient}")
        i = self.index
        if not i.has_data:
            return [*out, f"  index: none published yet; {STALE_NOTE}",
                    f"  insurance fund {money(self.insurance)} (cash), deficit "
                    f"{money(self.deficit)}"]
        freshness = "fresh," if i.fresh else f"{STALE_NOTE} ("
        out.append(f"  index {fmt_price(i.price)}, {freshness} updated {i.age}s ago (heartbeat "
                   f"{i.heartbeat}s){'' if i.fresh else ')'}")
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
        """The new market, after `plan_create` (`admin`: its admin, risk admin and
        guardian)."""
        a = self.asset
        return [f"market {self.number}: PerpMarket {self.address}",
                f"  index {self.feed} (adapter {self.feed_adapter}), margin {a.symbol} "
                f"{a.address}; admin, risk admin and guardian {admin}; fees to "
                f"{self.fee_recipient}", *(f"  {line}" for line in param_lines(self.params, a))]

    def risk_lines(self) -> list[str]:
        """The parameters, fee recipient and pause, after `set`."""
        state = "PAUSED (no opens or increases)" if self.paused else "open"
        return [f"perp market {self.number}:",
                *(f"  {line}" for line in param_lines(self.params, self.asset)),
                f"  fees to {self.fee_recipient}; {state}"]


class PositionView(BaseModel):
    """One account's position in one market, as the market's views show it."""

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
                f"{leverage}), liquidation price {fmt_liquidation(self.liquidation_price)}{flag}")

    def describe(self) -> str:
        """The position after an action."""
        money = self.asset.fmt
        if self.size == 0:
            return f"{self.account}: flat in market {self.market}, margin {money(self.margin)}"
        return (f"{self.account}: {sized(self.size)} in market {self.market}, margin "
                f"{money(self.margin)}, equity {money(self.equity)}, margin ratio "
                f"{fmt_rate(self.ratio)}, liquidation price "
                f"{fmt_liquidation(self.liquidation_price)}")


class Quote(BaseModel):
    """A trade predicted before sending: the market's refusal (with what to do about
    it) or the fill, fee, premium and the position after."""

    model_config = _FROZEN

    market: int
    account: str
    asset: Token
    size: int
    size_delta: int
    equity: int  # margin + settlement now, plus the margin deposited first
    index_price: int
    acceptable_price: int
    refusal: str | None
    hint: str = ""
    fill_price: int = 0
    fee: int = 0
    premium: int = 0
    size_after: int = 0
    margin_after: int = 0
    liquidation_price: int = 0  # of the position after (no funding owed yet)

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
        verb = "buy" if self.size_delta > 0 else "sell"
        return (f"filled {verb} {gpuh(self.size_delta)} at {fmt_price(self.fill_price)} (index "
                f"{fmt_price(self.index_price)}): fee {asset.fmt(self.fee)}, premium "
                f"{asset.fmt(self.premium)}, settled PnL and funding {asset.fmt(self.settled)}")


class Outcome(BaseModel):
    """What a market's events in some receipts did."""

    model_config = _FROZEN

    deposited: int = 0
    withdrawn: int = 0
    insurance_funded: int = 0
    fees_collected: int = 0
    fills: list[Fill] = []


# ---------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------


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

    @property
    def scale(self) -> int:
        return perp.value_scale(self.asset.decimals)

    def index(self) -> IndexView:
        """The index without a reverting call: the hub says first whether the feed has
        a value (the market's views revert before the first one)."""
        heartbeat = int(self.feed.heartbeat())
        _value, observed, round_id = (int(x) for x in self.hub.latest_value(self.feed_id))
        if round_id == 0:
            return IndexView(has_data=False, price=0, fresh=False, age=-1, heartbeat=heartbeat)
        price, fresh = self.market.index_price()
        return IndexView(has_data=True, price=int(price), fresh=bool(fresh),
                         age=self.market.chain.now() - observed, heartbeat=heartbeat)

    def position(self, who: str) -> tuple[int, int]:
        size, margin, _price, _funding = self.market.position(who)
        return int(size), int(margin)

    def equity(self, who: str, index: IndexView) -> int:
        return int(self.market.equity(who)) if index.has_data else self.position(who)[1]


def _params(market: Contract) -> perp.RiskParams:
    raw = market.risk_params()
    return perp.RiskParams.from_chain(tuple(int(getattr(raw, name)) for name in FIELDS))


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
                   chain.contract("OracleHub", feed.HUB()), bytes(feed.FEED_ID()),
                   _params(market))


def market(client: Client, number: int) -> MarketView:
    """Perp market `number` (1, 2, ... in creation order)."""
    from oracle.reports import feed_name

    m = _load(client, number)
    c = m.market
    index = m.index()
    deficit = int(c.deficit())
    longs = shorts = margins = fees = rate = fidx = 0
    insurance = int(c.cash())
    if index.has_data:
        longs, shorts, _skew, margins, fees, insurance, deficit = (int(x) for x in c.market())
        rate, fidx = int(c.funding_rate()), int(c.funding_index())
    return MarketView(
        number=number, address=c.address, feed=feed_name("0x" + m.feed_id.hex()),
        feed_adapter=m.feed.address, asset=m.asset, params=m.params, paused=bool(c.paused()),
        fee_recipient=str(c.fee_recipient()), index=index, long_oi=longs, short_oi=shorts,
        margins=margins, fees=fees, insurance=insurance, deficit=deficit, funding_rate=rate,
        funding_index=fidx)


def _position(m: _Market, who: str, index: IndexView) -> PositionView:
    c = m.market
    size, margin = m.position(who)
    views = (0, 0, margin, 0, 0, False, margin)
    if index.has_data:
        views = (int(c.pnl(who)), int(c.funding_owed(who)), int(c.equity(who)),
                 int(c.margin_ratio(who)), int(c.liquidation_price(who)),
                 bool(c.can_liquidate(who)), int(c.withdrawable(who)))
    pnl, funding, equity, ratio, liquidation, liquidatable, withdrawable = views
    return PositionView(market=m.number, account=who, asset=m.asset, size=size, margin=margin,
                        pnl=pnl, funding=funding, equity=equity, ratio=ratio,
                        liquidation_price=liquidation, liquidatable=liquidatable,
                        withdrawable=withdrawable,
                        wallet=int(m.asset_contract.balanceOf(who)), index_price=index.price)


def position(client: Client, number: int, who: str) -> PositionView:
    """`who`'s position in market `number` (flat with no margin if it never traded)."""
    account = address(who, "account")
    m = _load(client, number)
    return _position(m, account, m.index())


def positions(client: Client, number: int) -> list[PositionView]:
    """Every position with a size or margin left, of every account that ever traded
    (the market's `PositionModified` events since its creation)."""
    m = _load(client, number)
    index = m.index()
    found = [_position(m, who, index)
             for who in accounts_in_events(m.market, {"PositionModified": "account"})]
    return [p for p in found if p.size != 0 or p.margin != 0]


def position_lines(views: Sequence[PositionView], fresh: bool) -> list[str]:
    """The positions part of `perp status`."""
    if not views:
        return ["  positions: none"]
    return [f"  positions ({len(views)}){'' if fresh else ' at the stale index'}:",
            *(p.line() for p in views)]


def outcome(client: Client, number: int, receipts: Sequence[Receipt]) -> Outcome:
    """What market `number`'s events in `receipts` say was done."""
    c = _load(client, number).market
    logs = [log for receipt in receipts for log in receipt.logs]
    fills = [Fill(**e) for e in c.events("PositionModified", logs)]
    return Outcome(deposited=event_sum(c, "MarginDeposited", "amount", logs),
                   withdrawn=event_sum(c, "MarginWithdrawn", "amount", logs),
                   insurance_funded=event_sum(c, "InsuranceFunded", "amount", logs),
                   fees_collected=event_sum(c, "FeesCollected", "amount", logs), fills=fills)


# ---------------------------------------------------------------------------------
# Quotes
# ---------------------------------------------------------------------------------


def _hint(m: _Market, state: perp.MarketState, size: int, equity: int, delta: int,
          q: perp.TradeQuote) -> str:
    """What to do about a refused trade, where the arithmetic can say."""
    p, price, money = m.params, state.price, m.asset.fmt
    if q.refusal == reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN:
        need = perp.initial_margin(q.size_after, price, p, state.scale) + q.fee + q.premium
        text = (f"; the trade needs {money(need)} of equity (initial margin, fee and premium), "
                f"you would have {money(equity)}: add {money(need - equity)} (--margin)")
        if size == 0:
            most = perp.max_size_for_margin(state, equity, delta < 0)
            text += f" or trade at most {gpuh(most)}"
        return text + f" (max leverage {Decimal(BPS) / p.initial_margin_bps:.2f}x)"
    if q.refusal in (reasons.PERP_LONG_OPEN_INTEREST_CAP, reasons.PERP_SHORT_OPEN_INTEREST_CAP):
        return (f" (caps: long {gpuh(p.max_long_oi * WAD)}, short {gpuh(p.max_short_oi * WAD)}; "
                f"open now: long {gpuh(state.long_oi)}, short {gpuh(state.short_oi)})")
    if q.refusal == reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE:
        return f" (fill {fmt_price(q.fill_price)})"
    if q.refusal in (reasons.PERP_INSURANCE_DEFICIT_RECORDED_NEW,
                     reasons.PERP_INSURANCE_FUND_EXHAUSTED_NEW):
        return (f" (deficit {money(state.deficit)}, insurance fund {money(state.insurance)}: "
                "`ape run perp fund-insurance`)")
    if q.refusal == reasons.PERP_POSITION_BELOW_MAINTENANCE_MARGIN:
        return " (deposit margin first: `ape run perp deposit`)"
    return ""


def _state(m: _Market, index: IndexView) -> perp.MarketState:
    c = m.market
    longs = shorts = 0
    insurance, deficit = 0, int(c.deficit())
    if index.has_data:
        longs, shorts, _skew, _margins, _fees, insurance, deficit = (int(x) for x in c.market())
    return perp.MarketState(price=index.price, fresh=index.fresh, long_oi=longs, short_oi=shorts,
                            paused=bool(c.paused()), deficit=deficit, insurance=insurance,
                            params=m.params, asset_decimals=m.asset.decimals)


def _quote(m: _Market, who: str, delta: int, extra: int, slippage: Decimal) -> Quote:
    index = m.index()
    state = _state(m, index)
    size, _margin = m.position(who)
    equity = m.equity(who, index) + extra
    base = {"market": m.number, "account": who, "asset": m.asset, "size": size,
            "size_delta": delta, "equity": equity, "index_price": index.price}
    if delta == 0:
        return Quote(**base, acceptable_price=0, refusal=reasons.PERP_ZERO_SIZE)
    worst = 0 if delta < 0 else MAX_UINT256
    if index.refusal is not None:
        return Quote(**base, acceptable_price=worst, refusal=index.refusal)
    try:
        fill = perp.fill_price(state.price, state.skew, delta, m.params.skew_scale)
    except ValueError:
        return Quote(**base, acceptable_price=worst, refusal=reasons.PERP_FILL_PRICE_NOT_POSITIVE)
    acceptable = perp.acceptable_price(fill, delta, slippage)
    q = perp.quote_trade(state, size, equity, delta, acceptable)
    hint = _hint(m, state, size, equity, delta, q) if q.refusal is not None else ""
    liquidation = perp.liquidation_price_after(q.size_after, q.margin_after, state.price,
                                          state.skew + delta, m.params, m.scale)
    return Quote(**base, acceptable_price=acceptable, refusal=q.refusal, hint=hint,
                 fill_price=q.fill_price, fee=q.fee, premium=q.premium, size_after=q.size_after,
                 margin_after=q.margin_after,
                 liquidation_price=liquidation if q.refusal is None else 0)


def _slippage(slippage: str | Decimal) -> Decimal:
    return parse_percent(slippage, "slippage", allow_zero=True)


def quote(client: Client, number: int, who: str, size_delta: int, *, margin: int = 0,
          slippage: str | Decimal = Decimal(1)) -> Quote:
    """What `modify_position(size_delta)` by `who` would do now, after depositing
    `margin` first: the fill, fee, premium and liquidation price after, or the market's
    refusal with what to do about it. `slippage` (percent) sets the worst fill
    accepted."""
    account = address(who, "account")
    return _quote(_load(client, number), account, size_delta, margin, _slippage(slippage))


# ---------------------------------------------------------------------------------
# Traders
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
    """Deposit `amount` as margin (always works: paused or stale)."""
    who = address(trader, "trader")
    m = _load(client, number)
    units = _positive(amount, "amount")
    return action("deposit", _deposit_txs(m, who, units),
                  _balance_problem(m, who, units, "to deposit"))


def plan_withdraw(client: Client, trader: str, number: int, amount: int | None = None) -> Plan:
    """Withdraw `amount` of margin, or all that can be withdrawn (None): everything when
    flat; with a position what exceeds the initial margin, less a buffer for the
    funding that accrues until the transaction is mined. With a position the market
    settles at the index first, which needs a fresh one."""
    who = address(trader, "trader")
    m = _load(client, number)
    size, margin = m.position(who)
    if size == 0 and margin == 0:
        raise Refused("withdrawal", f"{who} has no margin in market {number}")
    money = m.asset.fmt
    problems, notes = [], []
    units = None if amount is None else _positive(amount, "amount")
    if size == 0:
        units = margin if units is None else units
        if units > margin:
            problems.append(f"{reasons.PERP_WITHDRAWAL_EXCEEDS_MARGIN} (margin {money(margin)})")
    else:
        index = m.index()
        if index.refusal:
            problems.append(f"{index.refusal}; with an open position a withdrawal waits for a "
                            "fresh index (close first, or wait for the oracle)")
        p = m.params
        equity = m.equity(who, index)
        need = perp.initial_margin(size, index.price, p, m.scale)
        if units is None:
            buffer = -(-abs(size) * index.price * p.max_funding_rate * FUNDING_BUFFER_S
                       // (DAY * WAD * m.scale)) + 1
            units = max(int(m.market.withdrawable(who)) - buffer, 0) if index.has_data else 0
            if units == 0:
                raise Refused("withdrawal", f"nothing withdrawable: equity {money(equity)} does "
                                            f"not exceed the initial margin {money(need)} of the "
                                            f"{sized(size)} position")
            notes.append(f"left {money(buffer)} for the funding that accrues until the "
                         "transaction is mined")
        elif units > equity:
            problems.append(f"{reasons.PERP_WITHDRAWAL_EXCEEDS_MARGIN} (equity {money(equity)})")
        elif equity - units < need:
            problems.append(f"{reasons.PERP_WITHDRAWAL_LEAVE_LESS_INITIAL} (equity "
                            f"{money(equity)}, initial margin {money(need)}: at most "
                            f"{money(max(equity - need, 0))})")
    tx = m.market.withdraw_margin.tx(units, what=f"withdraw {money(units)} of margin from market "
                                                 f"{number}")
    return action("withdrawal", [tx], problems, notes)


def plan_open(client: Client, trader: str, number: int, size_delta: int, *, margin: int = 0,
              slippage: str | Decimal = Decimal(1)) -> Plan:
    """Open, increase, reduce or flip a position by `size_delta` (WAD GPU-hours; > 0
    buys, < 0 sells), depositing `margin` first; the worst fill accepted is `slippage`
    percent from the quoted fill. Notes: the quote and the liquidation price after."""
    who = address(trader, "trader")
    m = _load(client, number)
    if margin < 0:
        raise BadInput(f"margin: must not be negative, got {margin}")
    q = _quote(m, who, size_delta, margin, _slippage(slippage))
    problems = _balance_problem(m, who, margin, "of margin to deposit") if margin else []
    if q.refusal is not None:
        problems.insert(0, q.refusal + q.hint)
    notes = [] if q.refusal else [q.line(), f"liquidation price after the trade "
                                            f"{fmt_liquidation(q.liquidation_price)}"]
    verb = "buy" if size_delta > 0 else "sell"
    txs = [*(_deposit_txs(m, who, margin) if margin else []),
           m.market.modify_position.tx(size_delta, q.acceptable_price,
                                       what=f"{verb} {gpuh(size_delta)} in market {number}")]
    return action("trade", txs, problems, notes)


def plan_close(client: Client, trader: str, number: int, *,
               slippage: str | Decimal = Decimal(1)) -> Plan:
    """Close the whole position (the margin stays in the market until withdrawn)."""
    who = address(trader, "trader")
    m = _load(client, number)
    size, _ = m.position(who)
    if size == 0:
        raise Refused("close", f"{reasons.PERP_NO_OPEN_POSITION} ({who} in market {number})")
    q = _quote(m, who, -size, 0, _slippage(slippage))
    tx = m.market.close_position.tx(q.acceptable_price,
                                    what=f"close {sized(size)} in market {number}")
    problems = [q.refusal + q.hint] if q.refusal else []
    return action("close", [tx], problems, [] if q.refusal else [q.line()])


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
    fees = int(m.market.market()[4]) if m.index().has_data else 0
    tx = m.market.collect_fees.tx(what=f"collect {m.asset.fmt(fees)} of fees of market {number}")
    return action("collect", [tx], [] if fees else [reasons.PERP_NO_FEES_COLLECT])


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


def plan_set(client: Client, admin: str, number: int, *, fee_recipient: str | None = None,
             paused: bool | None = None, **risk: str | Decimal | None) -> Plan:
    """Change a market's risk parameters (`RISK_OPTIONS` names; the others are kept)
    and fee recipient (RISK_ADMIN), or pause / unpause new risk (GUARDIAN)."""
    who = address(admin, "admin")
    changes = {k: v for k, v in risk.items() if v is not None}
    if not changes and fee_recipient is None and paused is None:
        raise BadInput("nothing to change: give a risk parameter, fee_recipient or paused")
    receiver = address(fee_recipient, "fee_recipient") if fee_recipient is not None else None
    m = _load(client, number)
    c = m.market
    txs, problems = [], []
    if changes or receiver is not None:
        problems += _missing_role(c, RISK_ADMIN_ROLE, who, f"RISK_ADMIN_ROLE on perp market "
                                                           f"{number}")
    if changes:
        params = risk_params(m.asset.decimals, m.params, **changes)
        refusal = params_refusal(params)
        if refusal:
            problems.append(refusal)
        txs.append(c.set_risk_params.tx(params.as_tuple(),
                                        what=f"risk parameters of perp market {number}"))
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
    and guardian. `insurance` (base units) is what the creator means to seed the
    insurance fund with afterwards (`plan_fund_insurance`): checked here, so nothing is
    sent if the creator cannot pay it."""
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
        problems.append(f"{reasons.PERP_FACTORY_MARKET_ALREADY_EXISTS} ({existing} trades {feed} "
                        f"in {stable.symbol})")
    refusal = params_refusal(params)
    if refusal:
        problems.append(refusal)
    if insurance:
        problems += [p for p in [short_of(who, stable, int(client.erc20(margin_asset).balanceOf(
            who)), insurance, "of insurance")] if p]
    notes = []
    if not info.enabled:
        notes.append(f"warning: feed {feed} is disabled on the hub")
    if int(hub.latest_value(fid)[2]) == 0:
        notes.append(f"note: feed {feed} has no value yet; trading waits for one")
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
