"""Perpetual futures on a GPU-hour index: create and run a market (operator), trade
(traders and SPV operators), fund the insurance.

    ape run perp create  --account A --feed H100-SXM-80GB/USD/GPUh [--asset ADDR]
                         [--skew-scale 1000000] [--max-long-oi 500000] [--max-short-oi 500000]
                         [--max-leverage 10] [--maintenance-margin 5] [--taker-fee 0.1]
                         [--maker-fee 0.05] [--liquidation-fee 0.5] [--min-keeper-fee 5]
                         [--max-funding-velocity 3] [--max-funding-rate 5]
                         [--fee-recipient ADDR] [--insurance X]
    ape run perp set     --account A --market 1 [the risk options above] [--fee-recipient ADDR]
                         [--pause | --unpause]
    ape run perp status  [--market 1]
    ape run perp deposit  --account T --market 1 --amount 1000
    ape run perp withdraw --account T --market 1 (--amount X | --all)
    ape run perp open     --account T --market 1 (--long GPUH | --short GPUH) [--margin X]
                          [--slippage 1] [--skip-checks]
    ape run perp close    --account T --market 1 [--slippage 1] [--withdraw] [--skip-checks]
    ape run perp fund-insurance --account A --market 1 --amount X
    ape run perp collect-fees   --account ANY --market 1

One contract is one GPU-hour at the index price (USD per GPU-hour); sizes are in
GPU-hours (decimals allowed), margins and fees in the market's stablecoin. Percentages
are percent: `--maintenance-margin 5` is 5 % (500 bps), `--taker-fee 0.1` is 0.10 %;
`--max-leverage 10` sets the initial margin to 10 %; `--max-funding-velocity` is the
funding rate's change in percent per day, per day, at full skew; `--max-funding-rate`
caps the rate in percent per day; `--min-keeper-fee` is in whole stablecoin.
Markets are numbered 1, 2, ... in creation order (`PerpMarketFactory.market_at`).

Every command first checks what the market would refuse (stale index, pause, recorded
deficit, leverage cap, open-interest caps, slippage), with `gpushares.perp`, the exact
mirror of the market's arithmetic, and says so with the market's own message without
sending anything; `--skip-checks` sends anyway, to see the contract refuse.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any, NamedTuple

import click
from ape import chain, project
from ape.cli import ConnectedProviderCommand
from eth_utils import keccak, to_checksum_address

from gpushares import perp, reasons
from oracle.reports import feed_id, feed_name
from scripts._lib import (
    ZERO_ADDRESS,
    account_option,
    checked_market_numbers,
    checksum_address,
    erc20,
    fmt_units,
    load_deployments,
    require_account,
    to_base_units,
    transact,
)
from scripts.pool import _creation_block, parse_percent, percent_to_bps, percent_to_wad

WAD = perp.WAD
BPS = perp.BPS
DAY = perp.DAY
MAX_UINT256 = 2**256 - 1
MARKET_CREATOR_ROLE = keccak(text="MARKET_CREATOR_ROLE")
RISK_ADMIN_ROLE = keccak(text="RISK_ADMIN_ROLE")
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")
POSITION_MODIFIED_TOPIC = keccak(
    text="PositionModified(address,int256,int256,uint256,uint256,uint256,int256,int256,uint256)"
)
LOG_PAGE = 10_000
FIELDS = tuple(perp.RiskParams.model_fields)
# The market's parameter refusals (`PerpMarket._set_params`), the factory's own.
PARAMS_RANGE = reasons.PERP_SKEW_SCALE_1_2
PARAMS_MARGINS = (reasons.PERP_NEED_0_MAINTENANCE_LIQUIDATION)
PARAMS_FEES = reasons.PERP_FEES_ABOVE_THEIR_CAPS
PARAMS_CAPS = reasons.PERP_KEEPER_FEE_FUNDING_PARAMETER
MARKET_EXISTS = reasons.PERP_FACTORY_MARKET_ALREADY_EXISTS
NO_DATA = reasons.HUB_NO_DATA_PRESENT_FEED
NO_FEES = reasons.PERP_NO_FEES_COLLECT
STALE_NOTE = "STALE: trades, withdrawals with a position and liquidations wait for a fresh index"
# Seconds of funding at the capped rate that `withdraw --all` leaves behind with an open
# position: funding accrues until the transaction is mined.
FUNDING_BUFFER_S = 600
MASK64 = 2**64 - 1
MAX_OI = 2**40

market_option = click.option(
    "--market", "market_number", type=click.IntRange(min=1), required=True,
    help="Market number (1, 2, ...; see `ape run perp status`).",
)
skip_checks_option = click.option(
    "--skip-checks", is_flag=True,
    help="Send even if the pre-checks refuse (to see the contract's own refusal).",
)
slippage_option = click.option(
    "--slippage", default="1", show_default=True,
    help="Worst fill accepted, percent away from the current fill price.",
)


def risk_options(defaults: bool):
    """The risk parameter options of `create` (with defaults) and `set` (without)."""
    specs = (
        ("--skew-scale", "1000000", "Skew (GPU-hours) at which the premium reaches 100 %."),
        ("--max-long-oi", "500000", "Long open-interest cap, GPU-hours."),
        ("--max-short-oi", "500000", "Short open-interest cap, GPU-hours."),
        ("--max-leverage", "10", "Highest leverage to open at (initial margin 1/x)."),
        ("--maintenance-margin", "5", "Maintenance margin, percent of the notional."),
        ("--taker-fee", "0.1", "Fee on a trade's skew-increasing part, percent."),
        ("--maker-fee", "0.05", "Fee on a trade's skew-reducing part, percent."),
        ("--liquidation-fee", "0.5", "Keeper fee on a liquidation, percent of the notional."),
        ("--min-keeper-fee", "5", "Keeper fee every liquidation pays at least, stablecoin."),
        ("--max-funding-velocity", "3",
         "Funding rate change at full skew, percent per day, per day."),
        ("--max-funding-rate", "5", "Cap of the funding rate, percent per day."),
    )

    def decorate(func):
        for name, default, text in reversed(specs):
            func = click.option(name, default=default if defaults else None,
                                show_default=defaults, help=text)(func)
        return func

    return decorate


# ---------------------------------------------------------------------------------
# Shared helpers (hedge and the keeper import these too)
# ---------------------------------------------------------------------------------


def fmt_price(wad: int) -> str:
    """A WAD price as `2.405530 USD/GPU-h`."""
    return f"{Decimal(wad) / Decimal(WAD):,.6f} USD/GPU-h"


def fmt_liquidation(wad: int) -> str:
    """A liquidation price view: 0 is none, max_value(uint256) every price."""
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


def side(size: int) -> str:
    return "long" if size > 0 else "short" if size < 0 else "flat"


class PerpMarket(NamedTuple):
    """One market and what reading it needs (a NamedTuple: `ape run` executes scripts
    outside sys.modules, where dataclasses cannot resolve annotations)."""

    number: int
    market: Any
    asset: Any
    asset_symbol: str
    asset_decimals: int
    feed: Any
    feed_name: str
    hub: Any
    feed_id: bytes
    params: perp.RiskParams

    @property
    def scale(self) -> int:
        return perp.value_scale(self.asset_decimals)

    def money(self, units: int) -> str:
        """Asset units as `1,234.5 mUSDC`."""
        return f"{fmt_units(units, self.asset_decimals)} {self.asset_symbol}"

    def gpuh(self, size: int) -> str:
        """WAD GPU-hours as `1,234.5 GPU-hours` (unsigned)."""
        return f"{fmt_units(abs(size), 18)} GPU-hours"

    def sized(self, size: int) -> str:
        """A signed size as `short 4,608 GPU-hours`."""
        return f"{side(size)} {self.gpuh(size)}" if size else "flat"


class Index(NamedTuple):
    """The index as the market sees it: price (WAD), fresh, age (s), heartbeat (s)."""

    has_data: bool
    price: int
    fresh: bool
    age: int
    heartbeat: int

    def refusal(self) -> str | None:
        """Why the market refuses a trade on this index now (None: it does not)."""
        if not self.has_data:
            return NO_DATA
        if self.price == 0:
            return perp.NOT_POSITIVE
        if not self.fresh:
            return perp.STALE
        return None


class Position(NamedTuple):
    """One account's position, as the market's views show it."""

    account: str
    size: int
    margin: int
    pnl: int
    funding: int
    equity: int
    ratio: int
    liquidation_price: int
    liquidatable: bool


def perp_factory(deployed: Any) -> Any:
    """The PerpMarketFactory of the deployments file, or a clear error."""
    if deployed.perp_market_factory is None:
        raise click.ClickException(
            "the deployments file has no PerpMarketFactory: run `ape run deploy` again "
            "(it now deploys the perp factory)"
        )
    return project.PerpMarketFactory.at(deployed.perp_market_factory)


def market_numbers(factory: Any, number: int | None) -> list[int]:
    """`[number]` after checking it exists, or every market's number when None."""
    return checked_market_numbers(factory, number, label="perp market", create="perp")


def params_of(market: Any) -> perp.RiskParams:
    raw = market.risk_params()
    return perp.RiskParams.from_chain(tuple(int(getattr(raw, name)) for name in FIELDS))


def load_market(factory: Any, number: int) -> PerpMarket:
    """Market `number` of the factory, with its contracts and parameters."""
    market = project.PerpMarket.at(factory.market_at(number))
    asset = erc20(market.asset())
    feed = project.FeedAdapter.at(market.index_feed())
    fid = bytes(feed.FEED_ID())
    try:
        name = feed_name("0x" + fid.hex())
    except ValueError:
        name = "0x" + fid.hex()
    return PerpMarket(
        number=number,
        market=market,
        asset=asset,
        asset_symbol=str(asset.symbol()),
        asset_decimals=int(asset.decimals()),
        feed=feed,
        feed_name=name,
        hub=project.OracleHub.at(feed.HUB()),
        feed_id=fid,
        params=params_of(market),
    )


def read_index(m: PerpMarket) -> Index:
    """The index without a reverting call: the hub says first whether the feed has a
    value (the market's views revert before the first one)."""
    heartbeat = int(m.feed.heartbeat())
    _value, observed, round_id = (int(x) for x in m.hub.latest_value(m.feed_id))
    if round_id == 0:
        return Index(False, 0, False, -1, heartbeat)
    price, fresh = m.market.index_price()
    return Index(True, int(price), bool(fresh), int(chain.blocks.head.timestamp) - observed,
                 heartbeat)


def market_state(m: PerpMarket, index: Index) -> perp.MarketState:
    """What `gpushares.perp.quote_trade` reads, from the market's views."""
    if not index.has_data:
        return perp.MarketState(price=0, fresh=False, long_oi=0, short_oi=0,
                                paused=bool(m.market.paused()), deficit=int(m.market.deficit()),
                                insurance=0, params=m.params, asset_decimals=m.asset_decimals)
    longs, shorts, _skew, _margins, _fees, insurance, deficit = (int(x) for x in
                                                                 m.market.market())
    return perp.MarketState(price=index.price, fresh=index.fresh, long_oi=longs,
                            short_oi=shorts, paused=bool(m.market.paused()), deficit=deficit,
                            insurance=insurance, params=m.params,
                            asset_decimals=m.asset_decimals)


def traders(m: PerpMarket, provider: Any) -> list[str]:
    """Every account that ever traded in the market, from its `PositionModified` events,
    in order of first appearance (raw `eth_getLogs` in pages: only the topic is needed)."""
    address = m.market.address
    start = _creation_block(provider, address)
    head = int(provider.get_block("latest").number)
    seen: dict[str, None] = {}
    for first in range(start, head + 1, LOG_PAGE):
        logs = provider.web3.eth.get_logs({
            "address": address,
            "fromBlock": first,
            "toBlock": min(first + LOG_PAGE - 1, head),
            "topics": [POSITION_MODIFIED_TOPIC],
        })
        for log in logs:
            seen.setdefault(to_checksum_address(bytes(log["topics"][1])[-20:]), None)
    return list(seen)


def read_position(m: PerpMarket, who: str) -> Position:
    """`who`'s position through the views (they need an index value)."""
    market = m.market
    size, margin, _price, _funding = (int(x) for x in market.position(who))
    return Position(
        account=who,
        size=size,
        margin=margin,
        pnl=int(market.pnl(who)),
        funding=int(market.funding_owed(who)),
        equity=int(market.equity(who)),
        ratio=int(market.margin_ratio(who)),
        liquidation_price=int(market.liquidation_price(who)),
        liquidatable=bool(market.can_liquidate(who)),
    )


def open_positions(m: PerpMarket, provider: Any) -> list[Position]:
    """Positions with a size or margin left, of every account that ever traded."""
    result = []
    for who in traders(m, provider):
        position = read_position(m, who)
        if position.size != 0 or position.margin != 0:
            result.append(position)
    return result


def liquidation_price_after(size: int, margin: int, price: int, skew: int,
                            params: perp.RiskParams, scale: int) -> int:
    """`PerpMarket.liquidation_price` of a position just settled at `price` (no funding
    owed yet) in a market of `skew` (the position included): what a trade leaves."""
    if size == 0:
        return 0
    margin_v, keeper = margin * scale, params.min_keeper_fee * scale
    c = params.maintenance_margin_bps + params.liquidation_fee_bps
    t = size * (size - 2 * skew)
    close = t * BPS // (2 * params.skew_scale * WAD) if t > 0 else 0
    if size > 0:
        num, den = (keeper - margin_v + size * price) * BPS, size * (BPS - c) - close
        if den <= 0:  # the close cost outgrows the PnL: no falling price reaches it
            return MAX_UINT256 if num > 0 else 0
    else:
        num, den = (margin_v - size * price - keeper) * BPS, -size * (BPS + c) + close
    return num // den if num > 0 else 0


def acceptable_price(fill: int, size_delta: int, slippage: Decimal) -> int:
    """The worst fill accepted: `slippage` percent above a buy's fill, below a sell's."""
    factor = slippage / 100
    if size_delta > 0:
        return int((Decimal(fill) * (1 + factor)).to_integral_value(rounding=ROUND_CEILING))
    return max(int(Decimal(fill) * (1 - factor)), 0)


def refuse_or_warn(skip_checks: bool, what: str, reason: str) -> None:
    """Refuse `what` before sending, or with --skip-checks say that it is sent anyway."""
    if not skip_checks:
        raise click.ClickException(f"{what} refused, nothing sent: {reason}")
    click.echo(f"  pre-check refuses the {what}: {reason}")
    click.echo("  --skip-checks: sending anyway")


def require_balance(m: PerpMarket, who: str, amount: int, what: str) -> None:
    balance = int(m.asset.balanceOf(who))
    if balance < amount:
        raise click.ClickException(
            f"{who} holds {m.money(balance)}, less than the {m.money(amount)} {what}: get "
            f"{m.money(amount - balance)} more {m.asset_symbol} first, nothing sent"
        )


def ensure_allowance(m: PerpMarket, owner: Any, amount: int) -> None:
    if int(m.asset.allowance(owner.address, m.market.address)) < amount:
        transact(f"approve {m.money(amount)} to market {m.number}", m.asset.approve,
                 m.market.address, amount, sender=owner)


def deposit(m: PerpMarket, owner: Any, units: int) -> None:
    """Approve as needed and deposit `units` as `owner`'s margin."""
    ensure_allowance(m, owner, units)
    transact(f"deposit {m.money(units)} of margin in market {m.number}",
             m.market.deposit_margin, units, sender=owner)


def trade_hint(m: PerpMarket, state: perp.MarketState, size: int, equity: int,
               delta: int, quote: perp.TradeQuote) -> str:
    """What to do about a refused trade, where the arithmetic can say."""
    p, price, scale = m.params, state.price, state.scale
    if quote.refusal == perp.BELOW_INITIAL:
        need = (perp.initial_margin(quote.size_after, price, p, scale)
                + quote.fee + quote.premium)
        text = (f"; the trade needs {m.money(need)} of equity (initial margin, fee and "
                f"premium), you would have {m.money(equity)}: add {m.money(need - equity)} "
                "(--margin)")
        if size == 0:
            most = perp.max_size_for_margin(state, equity, delta < 0)
            text += f" or trade at most {m.gpuh(most)}"
        return text + f" (max leverage {Decimal(BPS) / p.initial_margin_bps:.2f}x)"
    if quote.refusal in (perp.LONG_CAP, perp.SHORT_CAP):
        return (f" (caps: long {m.gpuh(p.max_long_oi * WAD)}, short "
                f"{m.gpuh(p.max_short_oi * WAD)}; open now: long {m.gpuh(state.long_oi)}, "
                f"short {m.gpuh(state.short_oi)})")
    if quote.refusal == perp.SLIPPAGE:
        return f" (fill {fmt_price(quote.fill_price)})"
    if quote.refusal in (perp.DEFICIT_PAUSED, perp.INSURANCE_EXHAUSTED):
        return (f" (deficit {m.money(int(m.market.deficit()))}, insurance fund "
                f"{m.money(state.insurance)}: `ape run perp fund-insurance`)")
    if quote.refusal == perp.LIQUIDATABLE:
        return " (deposit margin first: `ape run perp deposit`)"
    return ""


def _position_line(m: PerpMarket, pos: Position, price: int) -> str:
    if pos.size == 0:
        return f"    {pos.account}: flat, margin {m.money(pos.margin)} (withdrawable)"
    notional = perp.notional(pos.size, price, m.scale)
    leverage = (f"{Decimal(notional) / Decimal(pos.equity):.2f}x" if pos.equity > 0 else "n/a")
    flag = "  LIQUIDATABLE" if pos.liquidatable else ""
    return (
        f"    {pos.account}: {m.sized(pos.size)}, margin {m.money(pos.margin)}, PnL "
        f"{m.money(pos.pnl)}, funding owed {m.money(pos.funding)}, equity "
        f"{m.money(pos.equity)}, margin ratio {fmt_rate(pos.ratio)} (leverage {leverage}), "
        f"liquidation price {fmt_liquidation(pos.liquidation_price)}"
        f"{flag}"
    )


def _after_line(m: PerpMarket, who: str) -> str:
    pos = read_position(m, who)
    if pos.size == 0:
        return f"{who}: flat in market {m.number}, margin {m.money(pos.margin)}"
    liq = fmt_liquidation(pos.liquidation_price)
    return (f"{who}: {m.sized(pos.size)} in market {m.number}, margin {m.money(pos.margin)}, "
            f"equity {m.money(pos.equity)}, margin ratio {fmt_rate(pos.ratio)}, liquidation "
            f"price {liq}")


def _account_market(provider: Any, number: int) -> PerpMarket:
    factory = perp_factory(load_deployments(provider))
    market_numbers(factory, number)
    return load_market(factory, number)


# ---------------------------------------------------------------------------------
# Risk parameters
# ---------------------------------------------------------------------------------


def _whole(value: str, what: str, *, allow_zero: bool = False) -> int:
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise click.BadParameter(f"{what}: {value!r} is not a number") from exc
    if not number.is_finite() or number != number.to_integral_value() or number < 0 or (
            number == 0 and not allow_zero):
        raise click.BadParameter(f"{what}: must be a whole number of GPU-hours, got {value}")
    return int(number)


def _amount_or_zero(value: str, decimals: int, what: str) -> int:
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise click.BadParameter(f"{what}: {value!r} is not a number") from exc
    if number == 0:
        return 0
    return to_base_units(value, decimals, what)


def _leverage_bps(value: str) -> int:
    """`--max-leverage X` as the initial margin in bps, `ceil(10,000 / X)`."""
    try:
        leverage = Decimal(value)
    except InvalidOperation as exc:
        raise click.BadParameter(f"--max-leverage: {value!r} is not a number") from exc
    if not leverage.is_finite() or leverage <= 0:
        raise click.BadParameter(f"--max-leverage: must be positive, got {value}")
    return int((Decimal(BPS) / leverage).to_integral_value(rounding=ROUND_CEILING))


def build_params(base: dict[str, int] | None, decimals: int, **options: str | None) -> dict:
    """Risk parameters from the options (None: keep `base`'s value)."""
    parsed: dict[str, int] = dict(base or {})
    conversions = {
        "skew_scale": ("skew_scale", lambda v: _whole(v, "--skew-scale")),
        "max_long_oi": ("max_long_oi", lambda v: _whole(v, "--max-long-oi")),
        "max_short_oi": ("max_short_oi", lambda v: _whole(v, "--max-short-oi")),
        "max_leverage": ("initial_margin_bps", _leverage_bps),
        "maintenance_margin": ("maintenance_margin_bps", lambda v: percent_to_bps(
            parse_percent(v, "--maintenance-margin", allow_zero=True), "--maintenance-margin")),
        "taker_fee": ("taker_fee_bps", lambda v: percent_to_bps(
            parse_percent(v, "--taker-fee", allow_zero=True), "--taker-fee")),
        "maker_fee": ("maker_fee_bps", lambda v: percent_to_bps(
            parse_percent(v, "--maker-fee", allow_zero=True), "--maker-fee")),
        "liquidation_fee": ("liquidation_fee_bps", lambda v: percent_to_bps(
            parse_percent(v, "--liquidation-fee", allow_zero=True), "--liquidation-fee")),
        "min_keeper_fee": ("min_keeper_fee", lambda v: _amount_or_zero(
            v, decimals, "--min-keeper-fee")),
        "max_funding_velocity": ("max_funding_velocity", lambda v: percent_to_wad(parse_percent(
            v, "--max-funding-velocity", allow_zero=True, cap=None), "--max-funding-velocity")),
        "max_funding_rate": ("max_funding_rate", lambda v: percent_to_wad(parse_percent(
            v, "--max-funding-rate", allow_zero=True, cap=None), "--max-funding-rate")),
    }
    for option, value in options.items():
        if value is not None:
            field, convert = conversions[option]
            parsed[field] = convert(value)
    return {name: parsed[name] for name in FIELDS}


def params_refusal(p: dict[str, int]) -> str | None:
    """`PerpMarket._set_params`'s checks, in its order, with its messages."""
    if not (0 < p["skew_scale"] <= MASK64 and p["max_long_oi"] and p["max_short_oi"]
            and max(p["max_long_oi"], p["max_short_oi"]) <= MAX_OI):
        return PARAMS_RANGE
    if not (200 <= p["initial_margin_bps"] <= BPS and p["maintenance_margin_bps"] != 0
            and p["maintenance_margin_bps"] + p["liquidation_fee_bps"] < p["initial_margin_bps"]):
        return PARAMS_MARGINS
    if not (p["taker_fee_bps"] <= 100 and p["maker_fee_bps"] <= p["taker_fee_bps"]
            and p["liquidation_fee_bps"] <= 500):
        return PARAMS_FEES
    if not (p["min_keeper_fee"] <= 2**96 - 1 and p["max_funding_velocity"] <= 10 * WAD
            and p["max_funding_rate"] <= WAD):
        return PARAMS_CAPS
    return None


def describe_params(p: dict[str, int], decimals: int, symbol: str) -> list[str]:
    leverage = Decimal(BPS) / p["initial_margin_bps"] if p["initial_margin_bps"] else Decimal(0)
    return [
        f"max leverage {leverage:.2f}x (initial margin {fmt_bps(p['initial_margin_bps'])}), "
        f"maintenance {fmt_bps(p['maintenance_margin_bps'])}, liquidation fee "
        f"{fmt_bps(p['liquidation_fee_bps'])} + {fmt_units(p['min_keeper_fee'], decimals)} "
        f"{symbol} minimum keeper fee",
        f"fees taker {fmt_bps(p['taker_fee_bps'])}, maker {fmt_bps(p['maker_fee_bps'])}; skew "
        f"scale {p['skew_scale']:,} GPU-hours; OI caps long {p['max_long_oi']:,}, short "
        f"{p['max_short_oi']:,} GPU-hours",
        f"funding velocity {fmt_rate(p['max_funding_velocity'])}/day per day at full skew, "
        f"cap {fmt_rate(p['max_funding_rate'])}/day",
    ]


# ---------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------


@click.group()
def cli():
    """Perpetual futures on a GPU-hour index: markets, margin, trades, insurance."""


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--feed", required=True,
              help="Oracle hub index feed, e.g. H100-SXM-80GB/USD/GPUh.")
@click.option("--asset", default=None, help="Margin stablecoin (default: the deployment's).")
@risk_options(defaults=True)
@click.option("--fee-recipient", default=None, help="Receiver of the trading fees (default: "
              "the account).")
@click.option("--insurance", default=None, help="Stablecoin to seed the insurance fund with.")
@skip_checks_option
def create(provider, account, feed, asset, fee_recipient, insurance, skip_checks, **risk):
    """Deploy a perpetual market on an index feed; optionally seed its insurance fund."""
    creator = require_account(account)
    deployed = load_deployments(provider)
    factory = perp_factory(deployed)
    margin_asset = checksum_address(asset, "--asset") if asset else deployed.income_token
    if not provider.get_code(margin_asset):
        raise click.BadParameter(f"--asset {margin_asset} has no contract on this chain")
    stable = erc20(margin_asset)
    decimals, symbol = int(stable.decimals()), str(stable.symbol())
    if decimals > 18:
        raise click.BadParameter(f"--asset {margin_asset} has {decimals} decimals (at most 18)")
    params = build_params(None, decimals, **risk)
    receiver = checksum_address(fee_recipient, "--fee-recipient") if fee_recipient \
        else creator.address
    seed = to_base_units(insurance, decimals, "--insurance") if insurance is not None else 0

    if deployed.oracle_hub is None:
        raise click.ClickException("the deployments file has no OracleHub: run `ape run deploy`")
    hub = project.OracleHub.at(deployed.oracle_hub)
    try:
        fid = feed_id(feed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--feed") from exc
    info = hub.feed(fid)
    if not info.exists:
        raise click.ClickException(
            f"the oracle hub has no feed {feed}: the hub admin adds it with `ape run oracle "
            f"add-feed --name {feed} ...`, nothing sent"
        )
    adapter = str(hub.feed_adapter(fid))
    if not factory.hasRole(MARKET_CREATOR_ROLE, creator.address):
        raise click.ClickException(
            f"{creator.address} lacks the perp factory's MARKET_CREATOR_ROLE, nothing sent; "
            "ask the factory admin (the deployer) to grant it"
        )
    problems = []
    existing = str(factory.market_of(factory.market_id_of(margin_asset, adapter)))
    if existing != ZERO_ADDRESS:
        problems.append(f"{MARKET_EXISTS} ({existing} trades {feed} in {symbol})")
    refusal = params_refusal(params)
    if refusal:
        problems.append(refusal)
    if problems:
        refuse_or_warn(skip_checks, "market creation", "; ".join(problems))
    if seed:
        balance = int(stable.balanceOf(creator.address))
        if balance < seed:
            raise click.ClickException(
                f"{creator.address} holds {fmt_units(balance, decimals)} {symbol}, less than "
                f"the {fmt_units(seed, decimals)} {symbol} of --insurance, nothing sent"
            )
    if not info.enabled:
        click.echo(f"  warning: feed {feed} is disabled on the hub")
    if int(hub.latest_value(fid)[2]) == 0:
        click.echo(f"  note: feed {feed} has no value yet; trading waits for one")

    receipt = transact(
        f"create perp market {feed} / {symbol}", factory.create_market, margin_asset, adapter,
        tuple(params[name] for name in FIELDS), receiver, creator.address, sender=creator,
    )
    event = next(iter(factory.MarketCreated.from_receipt(receipt)))
    number = int(factory.market_count())
    click.echo(f"market {number}: PerpMarket {event.market}")
    click.echo(f"  index {feed} (adapter {adapter}), margin {symbol} {margin_asset}; admin, "
               f"risk admin and guardian {creator.address}; fees to {receiver}")
    for line in describe_params(params, decimals, symbol):
        click.echo(f"  {line}")
    if seed:
        m = load_market(factory, number)
        ensure_allowance(m, creator, seed)
        transact(f"fund the insurance with {m.money(seed)}", m.market.fund_insurance, seed,
                 sender=creator)
        click.echo(f"  insurance fund {m.money(_insurance(m))}")


def _insurance(m: PerpMarket) -> int:
    """The insurance fund (marked to the index), or the cash it holds before any index."""
    if int(m.hub.latest_value(m.feed_id)[2]) == 0:
        return int(m.market.cash())
    return int(m.market.insurance_fund())


@cli.command("set", cls=ConnectedProviderCommand)
@account_option()
@market_option
@risk_options(defaults=False)
@click.option("--fee-recipient", default=None, help="New receiver of the trading fees.")
@click.option("--pause/--unpause", "pause", default=None,
              help="Stop (or resume) new risk: opens and increases.")
@skip_checks_option
def set_(provider, account, market_number, fee_recipient, pause, skip_checks, **risk):
    """Change a market's risk parameters (unchanged ones are kept), fee recipient or pause."""
    admin = require_account(account)
    m = _account_market(provider, market_number)
    market = m.market
    changes = {k: v for k, v in risk.items() if v is not None}
    if not changes and fee_recipient is None and pause is None:
        raise click.UsageError("nothing to change: pass a risk option, --fee-recipient, "
                               "--pause or --unpause")
    if (changes or fee_recipient is not None) and not market.hasRole(RISK_ADMIN_ROLE,
                                                                     admin.address):
        raise click.ClickException(
            f"{admin.address} lacks RISK_ADMIN_ROLE on perp market {market_number}, nothing sent"
        )
    if pause is not None:
        if not market.hasRole(GUARDIAN_ROLE, admin.address):
            raise click.ClickException(
                f"{admin.address} lacks GUARDIAN_ROLE on perp market {market_number}, "
                "nothing sent"
            )
        if bool(market.paused()) == pause:
            raise click.ClickException(
                f"perp market {market_number} is already {'paused' if pause else 'not paused'}"
            )
    if changes:
        params = build_params(dict(m.params.model_dump()), m.asset_decimals, **changes)
        refusal = params_refusal(params)
        if refusal:
            refuse_or_warn(skip_checks, "risk parameter change", refusal)
        transact(f"risk parameters of perp market {market_number}", market.set_risk_params,
                 tuple(params[name] for name in FIELDS), sender=admin)
    if fee_recipient is not None:
        receiver = checksum_address(fee_recipient, "--fee-recipient")
        transact(f"fee recipient of perp market {market_number}: {receiver}",
                 market.set_fee_recipient, receiver, sender=admin)
    if pause is not None:
        transact(f"{'pause' if pause else 'unpause'} perp market {market_number}",
                 market.pause if pause else market.unpause, sender=admin)
    params = params_of(market)
    click.echo(f"perp market {market_number}:")
    for line in describe_params(dict(params.model_dump()), m.asset_decimals, m.asset_symbol):
        click.echo(f"  {line}")
    click.echo(f"  fees to {market.fee_recipient()}; "
               f"{'PAUSED (no opens or increases)' if market.paused() else 'open'}")


def _status_one(provider: Any, m: PerpMarket) -> None:
    market = m.market
    click.echo(f"\nperp market {m.number}: {m.feed_name} / {m.asset_symbol} at {market.address}")
    click.echo(f"  index feed    {m.feed_name} adapter {m.feed.address}")
    click.echo(f"  margin asset  {m.asset_symbol} {m.asset.address} ({m.asset_decimals} decimals)")
    for line in describe_params(dict(m.params.model_dump()), m.asset_decimals, m.asset_symbol):
        click.echo(f"  {line}")
    index = read_index(m)
    paused = bool(market.paused())
    deficit = int(market.deficit())
    pause_text = "YES (guardian: no opens or increases)" if paused else "no"
    if deficit:
        pause_text += "; new risk paused by the recorded deficit until it is funded"
    click.echo(f"  paused: {pause_text}; fees to {market.fee_recipient()}")
    if not index.has_data:
        click.echo(f"  index: none published yet; {STALE_NOTE}")
        click.echo(f"  insurance fund {m.money(int(market.cash()))} (cash), deficit "
                   f"{m.money(deficit)}")
        click.echo("  positions: none")
        return
    if index.fresh:
        click.echo(f"  index {fmt_price(index.price)}, fresh, updated {index.age}s ago "
                   f"(heartbeat {index.heartbeat}s)")
    else:
        click.echo(f"  index {fmt_price(index.price)}, {STALE_NOTE} (updated {index.age}s ago, "
                   f"heartbeat {index.heartbeat}s)")
    longs, shorts, skew, margins, fees, insurance, deficit = (int(x) for x in market.market())
    heavy = " (longs heavier)" if skew > 0 else " (shorts heavier)" if skew < 0 else ""
    click.echo(f"  open interest long {m.gpuh(longs)}, short {m.gpuh(shorts)}; skew "
               f"{'-' if skew < 0 else ''}{m.gpuh(skew)}{heavy}")
    rate = int(market.funding_rate())
    payer = ("longs pay shorts" if rate > 0 else "shorts pay longs" if rate < 0
             else "nobody pays")
    click.echo(f"  funding rate {fmt_rate(rate)}/day ({fmt_rate(rate * 365)} a year), {payer}; "
               f"funding index {Decimal(int(market.funding_index())) / Decimal(WAD):.9f}")
    click.echo(f"  insurance fund {m.money(insurance)}, deficit {m.money(deficit)}, fees "
               f"uncollected {m.money(fees)}, margins {m.money(margins)}")
    positions = open_positions(m, provider)
    if not positions:
        click.echo("  positions: none")
        return
    click.echo(f"  positions ({len(positions)}){'' if index.fresh else ' at the stale index'}:")
    for pos in positions:
        click.echo(_position_line(m, pos, index.price))


@cli.command(cls=ConnectedProviderCommand)
@click.option("--market", "market_number", type=click.IntRange(min=1), default=None,
              help="One market; all markets when omitted.")
def status(provider, market_number):
    """Markets: index, open interest, funding, insurance and every position."""
    factory = perp_factory(load_deployments(provider))
    numbers = market_numbers(factory, market_number)
    click.echo(f"PerpMarketFactory {factory.address}: {factory.market_count()} market(s)")
    if not numbers:
        click.echo("  (none yet: `ape run perp create ...`)")
    for number in numbers:
        _status_one(provider, load_market(factory, number))


@cli.command("deposit", cls=ConnectedProviderCommand)
@account_option()
@market_option
@click.option("--amount", required=True, help="Stablecoin to deposit as margin.")
def deposit_cmd(provider, account, market_number, amount):
    """Deposit margin (always works: paused or stale index)."""
    trader = require_account(account)
    m = _account_market(provider, market_number)
    units = to_base_units(amount, m.asset_decimals, "--amount")
    require_balance(m, trader.address, units, "to deposit")
    deposit(m, trader, units)
    size, margin, _, _ = (int(x) for x in m.market.position(trader.address))
    click.echo(f"{trader.address}: margin {m.money(margin)} in market {market_number}"
               f"{'' if size == 0 else ', position ' + m.sized(size)}")


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@market_option
@click.option("--amount", default=None, help="Stablecoin to withdraw.")
@click.option("--all", "everything", is_flag=True,
              help="All that can be withdrawn now (`withdrawable`).")
@skip_checks_option
def withdraw(provider, account, market_number, amount, everything, skip_checks):
    """Withdraw margin; with a position what stays must cover the initial margin."""
    trader = require_account(account)
    m = _account_market(provider, market_number)
    if (amount is None) == (not everything):
        raise click.UsageError("pass exactly one of --amount X or --all")
    who = trader.address
    size, margin, _, _ = (int(x) for x in m.market.position(who))
    if size == 0 and margin == 0:
        raise click.ClickException(f"{who} has no margin in market {market_number}")
    units = None if everything else to_base_units(amount, m.asset_decimals, "--amount")
    if size == 0:
        units = margin if units is None else units
        if units > margin:
            refuse_or_warn(skip_checks, "withdrawal",
                           f"{perp.EXCEEDS_MARGIN} (margin {m.money(margin)})")
    else:
        index = read_index(m)
        refusal = index.refusal()
        if refusal:
            refuse_or_warn(skip_checks, "withdrawal",
                           f"{refusal}; with an open position a withdrawal waits for a fresh "
                           "index (close first, or wait for the oracle)")
        p = m.params
        equity = int(m.market.equity(who)) if index.has_data else margin
        need = perp.initial_margin(size, index.price, p, m.scale)
        if units is None:
            buffer = -(-abs(size) * index.price * p.max_funding_rate * FUNDING_BUFFER_S
                       // (DAY * WAD * m.scale)) + 1
            units = max(int(m.market.withdrawable(who)) - buffer, 0) if index.has_data else 0
            if units == 0:
                raise click.ClickException(
                    f"nothing withdrawable, nothing sent: equity {m.money(equity)} does not "
                    f"exceed the initial margin {m.money(need)} of the {m.sized(size)} position"
                )
            click.echo(f"  leaving {m.money(buffer)} for the funding that accrues until the "
                       "transaction is mined")
        elif units > equity:
            refuse_or_warn(skip_checks, "withdrawal",
                           f"{perp.EXCEEDS_MARGIN} (equity {m.money(equity)})")
        elif equity - units < need:
            refuse_or_warn(
                skip_checks, "withdrawal",
                f"{perp.BELOW_INITIAL_WITHDRAW} (equity {m.money(equity)}, initial margin "
                f"{m.money(need)}: at most {m.money(max(equity - need, 0))})",
            )
    receipt = transact(f"withdraw {m.money(units)} of margin from market {market_number}",
                       m.market.withdraw_margin, units, sender=trader)
    paid = sum(int(e.amount) for e in m.market.MarginWithdrawn.from_receipt(receipt))
    click.echo(f"{who}: received {m.money(paid)}")
    click.echo(_after_line(m, who))


def _trade(m: PerpMarket, trader: Any, delta: int, extra_margin: int, slippage: Decimal,
           skip_checks: bool, what: str) -> Any:
    """Pre-check a `modify_position(delta, ...)` (after depositing `extra_margin`), then
    deposit and trade; `what` "close" sends `close_position` instead. Returns the
    PositionModified event."""
    who = trader.address
    index = read_index(m)
    state = market_state(m, index)
    size, margin, _, _ = (int(x) for x in m.market.position(who))
    equity = (int(m.market.equity(who)) if index.has_data else margin) + extra_margin
    refusal = index.refusal()
    acceptable = 0 if delta < 0 else MAX_UINT256
    quote = None
    if refusal is None:
        try:
            fill = perp.fill_price(state.price, state.skew, delta, m.params.skew_scale)
        except ValueError as exc:
            refusal = f"PerpMarket: {exc}"
        else:
            acceptable = acceptable_price(fill, delta, slippage)
            quote = perp.quote_trade(state, size, equity, delta, acceptable)
            refusal = quote.refusal
    if extra_margin:
        require_balance(m, who, extra_margin, "of --margin")
    if refusal is not None:
        hint = trade_hint(m, state, size, equity, delta, quote) if quote is not None else ""
        refuse_or_warn(skip_checks, what, refusal + hint)
    elif quote is not None:
        click.echo(
            f"  quote: fill {fmt_price(quote.fill_price)} (index {fmt_price(state.price)}, "
            f"worst accepted {fmt_price(acceptable)}), fee {m.money(quote.fee)}, premium "
            f"{m.money(quote.premium)}"
        )
    if extra_margin:
        deposit(m, trader, extra_margin)
    verb = "buy" if delta > 0 else "sell"
    if what == "close":
        receipt = transact(f"close {m.sized(size)} in market {m.number}",
                           m.market.close_position, acceptable, sender=trader)
    else:
        receipt = transact(f"{verb} {m.gpuh(delta)} in market {m.number}",
                           m.market.modify_position, delta, acceptable, sender=trader)
    event = next(iter(m.market.PositionModified.from_receipt(receipt)))
    click.echo(
        f"  filled {verb} {m.gpuh(delta)} at {fmt_price(int(event.fill_price))} (index "
        f"{fmt_price(int(event.index_price))}): fee {m.money(int(event.fee))}, premium "
        f"{m.money(int(event.premium))}, settled PnL and funding {m.money(int(event.settled))}"
    )
    return event


@cli.command("open", cls=ConnectedProviderCommand)
@account_option()
@market_option
@click.option("--long", "long_size", default=None, help="GPU-hours to buy.")
@click.option("--short", "short_size", default=None, help="GPU-hours to sell.")
@click.option("--margin", default=None, help="Stablecoin to deposit as margin first.")
@slippage_option
@skip_checks_option
def open_(provider, account, market_number, long_size, short_size, margin, slippage,
          skip_checks):
    """Open or increase (or reduce) a position: buy with --long, sell with --short."""
    trader = require_account(account)
    if (long_size is None) == (short_size is None):
        raise click.UsageError("pass exactly one of --long GPUH or --short GPUH")
    m = _account_market(provider, market_number)
    size = to_base_units(long_size or short_size, 18, "--long" if long_size else "--short")
    delta = size if long_size else -size
    extra = to_base_units(margin, m.asset_decimals, "--margin") if margin is not None else 0
    slip = parse_percent(slippage, "--slippage", allow_zero=True)
    _trade(m, trader, delta, extra, slip, skip_checks, "trade")
    click.echo(_after_line(m, trader.address))


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@market_option
@slippage_option
@click.option("--withdraw", "take_out", is_flag=True, help="Then withdraw all the margin.")
@skip_checks_option
def close(provider, account, market_number, slippage, take_out, skip_checks):
    """Close the whole position (margin stays in the market unless --withdraw)."""
    trader = require_account(account)
    m = _account_market(provider, market_number)
    who = trader.address
    size, margin, _, _ = (int(x) for x in m.market.position(who))
    slip = parse_percent(slippage, "--slippage", allow_zero=True)
    if size == 0:
        if not take_out or margin == 0:
            raise click.ClickException(f"close refused, nothing sent: {perp.NO_POSITION} "
                                       f"({who} in market {market_number})")
        click.echo(f"  {who} has no open position: withdrawing the margin only")
    else:
        _trade(m, trader, -size, 0, slip, skip_checks, "close")
    if take_out:
        _, margin, _, _ = (int(x) for x in m.market.position(who))
        if margin:
            transact(f"withdraw {m.money(margin)} of margin from market {market_number}",
                     m.market.withdraw_margin, margin, sender=trader)
    click.echo(f"{_after_line(m, who)}; wallet {m.money(int(m.asset.balanceOf(who)))}")


@cli.command("fund-insurance", cls=ConnectedProviderCommand)
@account_option()
@market_option
@click.option("--amount", required=True, help="Stablecoin to add to the insurance fund.")
def fund_insurance(provider, account, market_number, amount):
    """Add to the insurance fund (it first covers a recorded deficit; never withdrawable)."""
    funder = require_account(account)
    m = _account_market(provider, market_number)
    units = to_base_units(amount, m.asset_decimals, "--amount")
    require_balance(m, funder.address, units, "to add")
    before = int(m.market.deficit())
    ensure_allowance(m, funder, units)
    transact(f"fund the insurance of market {market_number} with {m.money(units)}",
             m.market.fund_insurance, units, sender=funder)
    deficit = int(m.market.deficit())
    line = (f"market {market_number}: insurance fund {m.money(_insurance(m))}, deficit "
            f"{m.money(deficit)}")
    if before and not deficit:
        line += "; the deficit is covered: new risk resumes"
        if m.market.paused():
            line += " once the guardian unpauses"
    click.echo(line)


@cli.command("collect-fees", cls=ConnectedProviderCommand)
@account_option()
@market_option
def collect_fees(provider, account, market_number):
    """Pay the accrued trading fees to the fee recipient (anyone may call)."""
    caller = require_account(account)
    m = _account_market(provider, market_number)
    fees = int(m.market.market()[4]) if read_index(m).has_data else 0
    if fees == 0:
        raise click.ClickException(f"collect refused, nothing sent: {NO_FEES}")
    transact(f"collect {m.money(fees)} of fees of market {market_number}",
             m.market.collect_fees, sender=caller)
    click.echo(f"{m.money(fees)} paid to {m.market.fee_recipient()}")
