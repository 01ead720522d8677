"""Hedge an SPV's rental revenue: sell the GPU-hours it expects to rent out.

    ape run hedge --account OP --market 1 --spv 1 --hours 720 [--utilisation 0.85]
                  [--leverage 2] [--slippage 1] [--dry-run] [--skip-checks]

An operator who rents out GPUs earns the GPU-hour price on every hour they are busy.
Selling that many GPU-hours on the perpetual market locks today's price in: if the
index falls, the short gains what the rentals lose, and the other way round.

- GPUs: the SPV share token's `active_gpus()`.
- Utilisation (a fraction, 0.85 = 85 %): the oracle's latest attested utilisation of
  the SPV's token on the hub; `--utilisation` overrides it, and is required when the
  hub has none.
- Size: `gpushares.perp.hedge_size(gpus, hours, utilisation)` GPU-hours, sold short.
- Margin: the notional at the fill price divided by `--leverage`, plus the fee and the
  premium, raised to the market's initial margin if that is more; deposited first.

The trade is checked with `gpushares.perp.quote_trade` before anything is sent.
`--dry-run` prints the plan and sends nothing. Funding is not part of the locked-in
revenue: a short receives it while longs outweigh shorts and pays it otherwise
(`ape run perp status`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation

import click
from ape import project
from ape.cli import ConnectedProviderCommand

from gpushares import perp
from scripts._lib import account_option, load_deployments, require_account, share_token
from scripts.perp import (
    WAD,
    _trade,
    acceptable_price,
    fmt_liquidation,
    fmt_price,
    liquidation_price_after,
    load_market,
    market_numbers,
    market_state,
    perp_factory,
    read_index,
    read_position,
    refuse_or_warn,
    require_balance,
)
from scripts.pool import parse_percent

MOVES = (Decimal("-0.20"), Decimal("-0.10"), Decimal("0.10"), Decimal("0.20"))


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fraction(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise click.BadParameter(f"--utilisation: {value!r} is not a number") from exc
    if not number.is_finite() or not Decimal(0) < number <= Decimal(1):
        raise click.BadParameter(
            f"--utilisation: a fraction in (0, 1] (0.85 is 85 %), got {value}")
    return number


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--market", "market_number", type=click.IntRange(min=1), required=True,
              help="Perp market number (see `ape run perp status`).")
@click.option("--spv", "spv_id", type=int, required=True, help="SPV whose revenue to hedge.")
@click.option("--hours", type=click.IntRange(min=1), required=True,
              help="Hours ahead to hedge (720 is 30 days).")
@click.option("--utilisation", default=None,
              help="Expected utilisation, a fraction (default: the oracle's latest attested).")
@click.option("--leverage", default="2", show_default=True,
              help="Notional over the margin posted (at most the market's max leverage).")
@click.option("--slippage", default="1", show_default=True,
              help="Worst fill accepted, percent below the current fill price.")
@click.option("--dry-run", is_flag=True, help="Print the hedge; send nothing.")
@click.option("--skip-checks", is_flag=True,
              help="Send even if the pre-checks refuse (to see the contract's own refusal).")
def cli(provider, account, market_number, spv_id, hours, utilisation, leverage, slippage,
        dry_run, skip_checks):
    """Sell the SPV's expected GPU-hours on a perp market to lock in the rental price."""
    operator = require_account(account)
    deployed = load_deployments(provider)
    factory = perp_factory(deployed)
    market_numbers(factory, market_number)
    m = load_market(factory, market_number)
    token = share_token(deployed, spv_id)
    symbol = str(token.symbol())
    gpus = int(token.active_gpus())
    if gpus == 0:
        raise click.ClickException(f"SPV {spv_id} ({symbol}) has no active GPUs: nothing to hedge")
    try:
        lev = Decimal(leverage)
    except InvalidOperation as exc:
        raise click.BadParameter(f"--leverage: {leverage!r} is not a number") from exc
    if not lev.is_finite() or lev <= 0:
        raise click.BadParameter(f"--leverage: must be positive, got {leverage}")
    max_lev = Decimal(perp.BPS) / m.params.initial_margin_bps
    if lev > max_lev:
        raise click.BadParameter(
            f"--leverage {leverage} is above market {market_number}'s max leverage {max_lev:.2f}x")
    slip = parse_percent(slippage, "--slippage", allow_zero=True)

    if utilisation is not None:
        util = _fraction(utilisation)
        util_source = "--utilisation"
    else:
        if deployed.oracle_hub is None:
            raise click.UsageError("the deployments file has no OracleHub: pass --utilisation")
        report = project.OracleHub.at(deployed.oracle_hub).utilisation(token.address)
        if int(report.round_id) == 0:
            raise click.UsageError(
                f"the oracle hub has no attested utilisation for {symbol} ({token.address}) "
                "yet: pass --utilisation (a fraction, e.g. 0.85)"
            )
        bps = int(report.utilisation_bps)
        if bps == 0:
            raise click.ClickException(
                f"the oracle's latest attested utilisation of {symbol} is 0 %: nothing to "
                "hedge (or pass --utilisation)")
        util = Decimal(bps) / Decimal(10_000)
        util_source = (f"oracle: {int(report.gpu_count)} GPUs reporting, "
                       f"{_utc(int(report.period_start))} to {_utc(int(report.period_end))}, "
                       f"round {int(report.round_id)}")
    size = perp.hedge_size(gpus, hours, util)
    delta = -size

    index = read_index(m)
    state = market_state(m, index)
    who = operator.address
    position = int(m.market.position(who)[0])
    equity = int(m.market.equity(who)) if index.has_data else int(m.market.position(who)[1])
    refusal = index.refusal()
    quote = None
    margin = 0
    acceptable = 0
    if refusal is None:
        try:
            fill = perp.fill_price(state.price, state.skew, delta, m.params.skew_scale)
        except ValueError as exc:
            refusal = f"PerpMarket: {exc}"
        else:
            acceptable = acceptable_price(fill, delta, slip)
            costs = perp.quote_trade(state, position, 2**200, delta, acceptable)
            notional = -(-size * fill // state.scale)
            margin = int((Decimal(notional) / lev).to_integral_value(rounding=ROUND_CEILING))
            margin += costs.fee + max(costs.premium, 0)
            quote = perp.quote_trade(state, position, equity + margin, delta, acceptable)
            if quote.refusal == perp.BELOW_INITIAL:
                need = (perp.initial_margin(quote.size_after, state.price, m.params,
                                            state.scale)
                        + quote.fee + quote.premium - equity)
                click.echo(f"  margin raised to {m.money(need)}: the market's initial margin "
                           f"(max leverage {max_lev:.2f}x, plus the minimum keeper fee)")
                margin = need
                quote = perp.quote_trade(state, position, equity + margin, delta, acceptable)
            refusal = quote.refusal
    if refusal is not None:
        refuse_or_warn(skip_checks and not dry_run, "hedge", refusal)

    price = state.price
    fill = quote.fill_price if quote is not None else 0
    fee = quote.fee if quote is not None else 0
    premium = quote.premium if quote is not None else 0
    margin_after = quote.margin_after if quote is not None else 0
    liq = liquidation_price_after(position + delta, margin_after, price, state.skew + delta,
                                  m.params, state.scale)
    rows = [
        ("SPV", f"{spv_id} ({symbol})"),
        ("GPUs (active)", f"{gpus}"),
        ("hours", f"{hours:,}"),
        ("utilisation", f"{util * 100:.2f}% ({util_source})"),
        ("GPU-hours hedged", f"{m.gpuh(size)} (short)"),
        ("index price", fmt_price(price)),
        ("fill price", fmt_price(fill)),
        ("revenue locked in", f"{m.money(size * fill // state.scale)} (size x fill; fee "
                              f"{m.money(fee)}, funding not included)"),
        ("margin posted", f"{m.money(margin)} (leverage {lev}x)"),
        ("liquidation price", fmt_liquidation(liq)),
    ]
    click.echo(f"hedge of SPV {spv_id} on perp market {market_number} ({m.feed_name}):")
    for label, value in rows:
        click.echo(f"  {label:<20} {value}")
    if price:
        click.echo(f"  {'index move':<11} {'index (USD/GPU-h)':<18} {'unhedged revenue':<22} "
                   f"{'hedge PnL':<22} hedged revenue")
        for move in MOVES:
            moved = int(Decimal(price) * (1 + move))
            unhedged = size * moved // state.scale
            pnl = size * (price - moved) // state.scale
            hedged = unhedged + pnl - premium - fee
            warn = ("  (beyond the liquidation price: add margin)" if 0 < liq <= moved
                    else "")
            index_text = f"{Decimal(moved) / WAD:,.6f}"
            click.echo(f"  {f'{move * 100:+.0f} %':<11} {index_text:<18} "
                       f"{m.money(unhedged):<22} {m.money(pnl):<22} {m.money(hedged)}{warn}")
    if dry_run:
        click.echo("dry run: nothing sent")
        return
    require_balance(m, who, margin, "of margin")
    event = _trade(m, operator, delta, margin, slip, skip_checks, "hedge")
    after = read_position(m, who)
    locked = size * int(event.fill_price) // state.scale - int(event.fee)
    click.echo(
        f"hedged: {m.sized(after.size)} in market {market_number}, margin "
        f"{m.money(after.margin)}, revenue locked in {m.money(locked)} after the fee, "
        f"liquidation price {fmt_liquidation(after.liquidation_price)}"
    )
