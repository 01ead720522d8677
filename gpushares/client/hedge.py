"""Hedging an SPV's rental revenue: sell the GPU-hours it expects to rent out.

An operator who rents out GPUs earns the GPU-hour price on every hour they are busy.
Selling that many GPU-hours on a perpetual market locks today's price in: if the index
falls, the short gains what the rentals lose, and the other way round.

    h = hedge.quote(client, operator, market=1, spv_id=1, hours=720)
    for line in h.lines(): print(line)                  # sizing, margin, scenarios
    plan = hedge.plan_hedge(client, operator, h)        # deposit the margin, commit a sell

The sell is an order (`gpushares.client.perp.plan_commit`): a keeper executes it at the
first oracle round after the commit, so the fill is the next index, not today's; the
quote and the scenarios assume the next round at today's index.

- GPUs: the share token's `active_gpus()`.
- Utilisation (a fraction, 0.85 = 85 %): the oracle's latest attested utilisation of the
  SPV's token on the hub, unless one is given.
- Size: `gpushares.perp.hedge_size(gpus, hours, utilisation)` GPU-hours, sold short.
- Margin: the notional at the fill divided by the leverage, plus the fee, the premium
  and the keeper fee the order reserves, raised to the market's initial margin (exit
  premium included) if that is more.

Funding is not part of the locked-in revenue: a short receives it while longs outweigh
shorts and pays it otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

from pydantic import BaseModel, ConfigDict

from gpushares import perp, reasons
from gpushares.client import perp as perps
from gpushares.client.chain import Plan, Refused
from gpushares.client.context import Client
from gpushares.client.markets import Token
from gpushares.client.units import BadInput, address, parse_percent

MOVES = (Decimal("-0.20"), Decimal("-0.10"), Decimal("0.10"), Decimal("0.20"))
_FROZEN = ConfigDict(frozen=True)


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


class Utilisation(BaseModel):
    """The oracle's latest attested utilisation of an SPV's token."""

    model_config = _FROZEN

    token: str
    bps: int
    gpu_count: int
    period_start: int
    period_end: int
    round_id: int

    @property
    def fraction(self) -> Decimal:
        return Decimal(self.bps) / Decimal(10_000)

    def source(self) -> str:
        return (f"oracle: {self.gpu_count} GPUs reporting, {_utc(self.period_start)} to "
                f"{_utc(self.period_end)}, round {self.round_id}")


def attested_utilisation(client: Client, spv_id: int) -> Utilisation | None:
    """SPV `spv_id`'s latest attested utilisation on the hub (None before the first)."""
    share = client.token(spv_id)
    report = client.hub().utilisation(share.address)
    if int(report.round_id) == 0:
        return None
    return Utilisation(token=share.address, bps=int(report.utilisation_bps),
                       gpu_count=int(report.gpu_count), period_start=int(report.period_start),
                       period_end=int(report.period_end), round_id=int(report.round_id))


class Scenario(BaseModel):
    """The hedged month if the index moved by `move` (a fraction)."""

    model_config = _FROZEN

    move: Decimal
    index: int
    unhedged: int
    pnl: int
    hedged: int
    beyond_liquidation: bool


class Hedge(BaseModel):
    """A hedge sized and quoted: what it sells, at what fill, with which margin, the
    market's refusal if it would refuse, and the revenue whatever the index does."""

    model_config = _FROZEN

    market: int
    feed: str
    asset: Token
    spv_id: int
    symbol: str
    gpus: int
    hours: int
    utilisation: Decimal
    source: str
    size: int  # WAD GPU-hours sold
    leverage: Decimal
    slippage: Decimal
    index_price: int
    fill_price: int
    acceptable_price: int  # the order's worst fill
    fee: int
    premium: int
    keeper_fee: int  # reserved by the order, paid to the keeper who executes it
    margin: int
    margin_raised: bool
    max_leverage: Decimal
    liquidation_price: int
    refusal: str | None
    scenarios: list[Scenario]

    @property
    def revenue(self) -> int:
        """Size x fill: the revenue the hedge locks in, before the fee."""
        return self.size * self.fill_price // perp.value_scale(self.asset.decimals)

    def lines(self) -> list[str]:
        money = self.asset.fmt
        out = []
        if self.margin_raised:
            out.append(f"  margin raised to {money(self.margin)}: the market's initial margin "
                       f"(max leverage {self.max_leverage:.2f}x, plus the minimum keeper fee)")
        rows = [
            ("SPV", f"{self.spv_id} ({self.symbol})"),
            ("GPUs (active)", f"{self.gpus}"),
            ("hours", f"{self.hours:,}"),
            ("utilisation", f"{self.utilisation * 100:.2f}% ({self.source})"),
            ("GPU-hours hedged", f"{perps.gpuh(self.size)} (short)"),
            ("index price", perps.fmt_price(self.index_price)),
            ("fill price", perps.fmt_price(self.fill_price)),
            ("revenue locked in", f"{money(self.revenue)} (size x fill; fee {money(self.fee)}, "
                                  "funding not included)"),
            ("margin posted", f"{money(self.margin)} (leverage {self.leverage}x; "
                              f"{money(self.keeper_fee)} of it reserved for the keeper)"),
            ("liquidation price", perps.fmt_liquidation(self.liquidation_price)),
        ]
        out.append(f"hedge of SPV {self.spv_id} on perp market {self.market} ({self.feed}):")
        out += [f"  {label:<20} {value}" for label, value in rows]
        if self.scenarios:
            out.append(f"  {'index move':<11} {'index (USD/GPU-h)':<18} {'unhedged revenue':<22} "
                       f"{'hedge PnL':<22} hedged revenue")
        for s in self.scenarios:
            warn = "  (beyond the liquidation price: add margin)" if s.beyond_liquidation else ""
            index = f"{Decimal(s.index) / perp.WAD:,.6f}"
            out.append(f"  {f'{s.move * 100:+.0f} %':<11} {index:<18} {money(s.unhedged):<22} "
                       f"{money(s.pnl):<22} {money(s.hedged)}{warn}")
        return out

    def committed(self, order: perps.OrderView | None) -> str:
        """The hedge's order as committed: what happens next."""
        if order is None:
            return f"hedge order of market {self.market} is no longer pending"
        return (f"hedge order committed: {perps.traded(order.size_delta)} in market "
                f"{self.market}, worst fill {perps.fmt_worst(order.acceptable_price, -1)}; a "
                "keeper executes it at the next index round (`ape run keeper`), then "
                "`ape run perp status` shows the position")

    def done(self, fill: perps.Fill, after: perps.PositionView) -> str:
        """The hedge as sent: the position and the revenue locked in after the fee."""
        scale = perp.value_scale(self.asset.decimals)
        locked = self.size * fill.fill_price // scale - fill.fee
        return (f"hedged: {perps.sized(after.size)} in market {self.market}, margin "
                f"{self.asset.fmt(after.margin)}, revenue locked in {self.asset.fmt(locked)} after "
                f"the fee, liquidation price {perps.fmt_liquidation(after.liquidation_price)}")


def _utilisation(client: Client, spv_id: int, symbol: str,
                 given: str | Decimal | None) -> tuple[Decimal, str]:
    if given is not None:
        number = perps.parse_decimal(given, "utilisation")
        if not Decimal(0) < number <= Decimal(1):
            raise BadInput(f"utilisation: a fraction in (0, 1] (0.85 is 85 %), got {given}")
        return number, ""
    attested = attested_utilisation(client, spv_id)
    if attested is None:
        raise BadInput(f"utilisation: the oracle hub has no attested utilisation for {symbol} "
                       f"({client.token(spv_id).address}) yet: pass --utilisation (a fraction, "
                       "e.g. 0.85)")
    if attested.bps == 0:
        raise Refused("hedge", f"the oracle's latest attested utilisation of {symbol} is 0 %: "
                               "nothing to hedge (or give a utilisation)")
    return attested.fraction, attested.source()


def quote(client: Client, operator: str, market: int, spv_id: int, hours: int, *,
          utilisation: str | Decimal | None = None, leverage: str | Decimal = "2",
          slippage: str | Decimal = "1", source: str = "given") -> Hedge:
    """Size and quote the hedge of SPV `spv_id`'s next `hours` on perp market `market`
    for `operator`: `utilisation` (a fraction) overrides the attested one (`source` is
    what the table calls it), `leverage` is notional over margin (at most the market's),
    `slippage` (percent) sets the worst fill accepted."""
    who = address(operator, "operator")
    if hours <= 0:
        raise BadInput(f"hours: must be positive, got {hours}")
    view = perps.market(client, market)
    share = client.token(spv_id)
    symbol, gpus = str(share.symbol()), int(share.active_gpus())
    if gpus == 0:
        raise Refused("hedge", f"SPV {spv_id} ({symbol}) has no active GPUs: nothing to hedge")
    lev = perps.parse_decimal(leverage, "leverage")
    if lev <= 0:
        raise BadInput(f"leverage: must be positive, got {leverage}")
    if lev > view.max_leverage:
        raise BadInput(f"leverage: {leverage} is above market {market}'s max leverage "
                       f"{view.max_leverage:.2f}x")
    slip = parse_percent(slippage, "slippage", allow_zero=True)
    util, util_source = _utilisation(client, spv_id, symbol, utilisation)
    if utilisation is not None:
        util_source = source
    size = perp.hedge_size(gpus, hours, util)
    position = perps.position(client, market, who)
    state, keeper = view.state(next_round=True), view.window.keeper_fee
    refusal = None if view.index.has_data else reasons.HUB_NO_DATA_PRESENT_FEED
    margin, raised, q = 0, False, None
    acceptable = 0
    if refusal is None:
        try:
            fill = perp.fill_price(state.price, state.skew, -size, view.params.skew_scale)
        except ValueError:
            refusal = reasons.PERP_FILL_PRICE_NOT_POSITIVE
        else:
            acceptable = perp.acceptable_price(fill, -size, slip)
            costs = perp.quote_trade(state, position.size, 2**200, -size, acceptable)
            notional = -(-size * fill // state.scale)
            margin = int((Decimal(notional) / lev).to_integral_value(rounding=ROUND_CEILING))
            margin += costs.fee + max(costs.premium, 0) + keeper
            # The trade charges the keeper fee the order reserves in the margin.
            q = perp.quote_trade(state, position.size, position.equity + margin, -size,
                                 acceptable, keeper)
            if q.refusal == reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN:
                margin = max(perp.initial_margin(q.size_after, state.price, view.params,
                                                 state.scale)
                             + q.fee + q.premium + keeper - position.equity, 0)
                raised = True
                q = perp.quote_trade(state, position.size, position.equity + margin, -size,
                                     acceptable, keeper)
            refusal = q.refusal
    fill_price, fee, premium = (q.fill_price, q.fee, q.premium) if q else (0, 0, 0)
    liq = perp.liquidation_price_after(position.size - size, q.margin_after if q else 0,
                                       state.price, view.params, state.scale)
    scenarios = []
    for move in MOVES if state.price else ():
        moved = int(Decimal(state.price) * (1 + move))
        unhedged = size * moved // state.scale
        pnl = size * (state.price - moved) // state.scale
        scenarios.append(Scenario(move=move, index=moved, unhedged=unhedged, pnl=pnl,
                                  hedged=unhedged + pnl - premium - fee,
                                  beyond_liquidation=0 < liq <= moved))
    return Hedge(market=market, feed=view.feed, asset=view.asset, spv_id=spv_id, symbol=symbol,
                 gpus=gpus, hours=hours, utilisation=util, source=util_source, size=size,
                 leverage=lev, slippage=slip, index_price=state.price, fill_price=fill_price,
                 acceptable_price=acceptable, fee=fee, premium=premium, keeper_fee=keeper,
                 margin=margin, margin_raised=raised, max_leverage=view.max_leverage,
                 liquidation_price=liq, refusal=refusal, scenarios=scenarios)


def plan_hedge(client: Client, operator: str, hedge: Hedge) -> Plan:
    """Deposit the hedge's margin and commit its sell order at the hedge's worst fill
    (`perp.plan_commit`), refused as the market would refuse the commit or its
    execution. A keeper executes it at the next oracle round."""
    plan = perps.plan_commit(client, operator, hedge.market, -hedge.size, margin=hedge.margin,
                             acceptable_price=hedge.acceptable_price or None,
                             slippage=hedge.slippage)
    refusal = Refused("hedge", plan.refusal.reason) if plan.refusal is not None else None
    return Plan(plan.txs, refusal, plan.notes)
