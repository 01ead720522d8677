"""Liquidation keeper: lending markets (repay unhealthy loans, take collateral) and perp
markets (close positions below maintenance, earn the keeper fee).

    ape run keeper --network ethereum:local:foundry --account K [--pool N] [--perp M]
                   [--dry-run] [--max-repay X]

Which markets: with neither option every lending market and every perp market; with
`--pool N` lending market N only (and no perp market unless `--perp` is given too); with
`--perp M` perp market M only (and no lending market unless `--pool` is given too).

Lending: for each market (or market N): with a stale price liquidations are paused, so
the market is skipped; otherwise every borrower (from the pool's events) is valued with
`gpushares.lending` (the pool's own rounding) and each loan above the liquidation LTV
is liquidated in full (`max_repay = 2**256 - 1`, or X of the loan asset per loan with
`--max-repay`). Before anything is sent the keeper checks that it may hold the
collateral (the share token's ERC-1404 rules, as the pool does first) and that it holds
the loan asset the liquidations pull. Exits 0 with "no unhealthy loans" when there is
nothing to do.

Perps: for each market (or market M): with a stale index liquidations wait, so the
market is skipped; otherwise every trader (from the market's `PositionModified` events)
whose position the market's `can_liquidate` view flags is liquidated: the market closes
it at the index, pays the keeper `min_keeper_fee + notional * liquidation_fee` (it needs
no funds from the keeper), and its insurance fund takes what is left or pays the bad
debt. Prints the keeper fee, the bad debt and the insurance fund after; "no liquidatable
positions" when there is nothing to do.

`--dry-run` prints what it would do and sends nothing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import click
from ape.cli import ConnectedProviderCommand
from ape.exceptions import ContractLogicError

from gpushares import perp
from scripts import perp as perps
from scripts._lib import (
    account_option,
    load_deployments,
    report,
    require_account,
    restriction,
    to_base_units,
    transact,
)
from scripts.pool import (
    MAX_UINT256,
    SHARE_DECIMALS,
    WAD,
    Loan,
    PoolMarket,
    checked_price,
    lending_factory,
    load_market,
    market_numbers,
    open_loans,
)


class Outcome(NamedTuple):
    """What one liquidation repays, seizes and writes off (predicted or done)."""

    repaid: int
    seized: int
    bad_debt: int


def predict(market: PoolMarket, incentive: int, loan: Loan, price: int, max_repay: int) -> Outcome:
    """`LendingPool.liquidate`'s arithmetic at the current debt: collateral for
    `repaid * incentive` at `price`, all of it (for a smaller repayment) when that is
    more than the loan holds, the rest of the debt then written off."""
    per_repaid = incentive * 10 ** (market.params.feed_decimals + SHARE_DECIMALS)
    per_seized = WAD * price * 10**market.params.asset_decimals
    repaid = min(max_repay, loan.debt)
    seized = repaid * per_repaid // per_seized
    if seized >= loan.collateral:
        seized = loan.collateral
        repaid = min(loan.debt, -(-loan.collateral * per_seized // per_repaid))
    bad_debt = loan.debt - repaid if seized == loan.collateral and repaid < loan.debt else 0
    return Outcome(repaid, seized, bad_debt)


class Plan(NamedTuple):
    """The liquidatable loans of one market at its current price (a NamedTuple: `ape run`
    executes scripts outside sys.modules, where dataclasses cannot resolve annotations)."""

    market: PoolMarket
    price: int
    max_repay: int
    loans: list[tuple[Loan, Outcome]]

    @property
    def needed(self) -> int:
        return sum(outcome.repaid for _, outcome in self.loans)

    @property
    def allowance(self) -> int:
        # Interest accrues until each transaction is mined: one basis point of room.
        return sum(o.repaid + loan.debt // 10_000 + 1 for loan, o in self.loans)


def _loan_line(market: PoolMarket, loan: Loan, outcome: Outcome, verb: str) -> str:
    health = loan.health
    ltv = health.ltv_percent() if health is not None else "?"
    return (
        f"  {loan.borrower}: debt {market.money(loan.debt)}, LTV {ltv} -> {verb} "
        f"{market.money(outcome.repaid)}, collateral seized {market.shares(outcome.seized)}, "
        f"bad debt written off {market.money(outcome.bad_debt)}"
    )


def run_lending(provider, keeper, deployed, pool_number, dry_run, max_repay) -> None:
    """Liquidate every loan above its market's liquidation LTV (raises ClickException when
    the keeper is refused or a liquidation failed)."""
    factory = lending_factory(deployed)
    numbers = market_numbers(factory, pool_number)
    if not numbers:
        click.echo("no markets yet: no unhealthy loans")
        return

    plans: list[Plan] = []
    stale = 0
    for number in numbers:
        market = load_market(factory, number)
        price, refusal = checked_price(market)
        if price is None:
            stale += 1
            click.echo(f"market {number}: {refusal}: liquidations are paused until a fresh "
                       "price, skipped")
            continue
        cap = (to_base_units(max_repay, market.asset_decimals, "--max-repay")
               if max_repay is not None else MAX_UINT256)
        loans = open_loans(market, provider, price)
        unhealthy = [loan for loan in loans if loan.health is not None and loan.health.liquidatable]
        click.echo(f"market {number} ({market.token_symbol}/{market.asset_symbol}): "
                   f"{len(loans)} open loan(s), {len(unhealthy)} liquidatable at "
                   f"{market.price_text(price)}")
        if unhealthy:
            incentive = int(market.pool.liquidation_incentive())
            plans.append(Plan(market, price, cap, [
                (loan, predict(market, incentive, loan, price, cap)) for loan in unhealthy]))

    if not plans:
        note = f" ({stale} market(s) skipped: stale price)" if stale else ""
        click.echo(f"no unhealthy loans{note}")
        return

    if dry_run:
        for plan in plans:
            click.echo(f"market {plan.market.number} (dry run):")
            for loan, outcome in plan.loans:
                click.echo(_loan_line(plan.market, loan, outcome, "would repay"))

    # Up front, before any transaction: may the keeper hold each collateral, and does it
    # hold the loan asset every liquidation pulls?
    problems = []
    needed: dict[str, int] = defaultdict(int)
    for plan in plans:
        market = plan.market
        code, message = restriction(market.token, market.pool.address, keeper.address, 0)
        if code:
            problems.append(
                f"market {market.number}: {keeper.address} may not hold {market.token_symbol} "
                f"collateral (ERC-1404 code {code}): {message}"
            )
        needed[market.asset.address] += plan.needed
    for plan in plans:
        market = plan.market
        total = needed.pop(market.asset.address, None)
        if total is None:
            continue
        balance = int(market.asset.balanceOf(keeper.address))
        if balance < total:
            problems.append(
                f"{keeper.address} holds {market.money(balance)}, the liquidations need "
                f"{market.money(total)}: get {market.money(total - balance)} more (or pass "
                "--max-repay)"
            )
    if problems:
        raise click.ClickException(
            "keeper refused, nothing sent:\n  " + "\n  ".join(problems)
        )
    if dry_run:
        count = sum(len(plan.loans) for plan in plans)
        click.echo(f"dry run: {count} loan(s) would be liquidated; nothing sent")
        return

    done = failed = 0
    parts = []
    for plan in plans:
        market, pool = plan.market, plan.market.pool
        click.echo(f"market {market.number}:")
        if int(market.asset.allowance(keeper.address, pool.address)) < plan.allowance:
            transact(f"approve {market.money(plan.allowance)}", market.asset.approve,
                     pool.address, plan.allowance, sender=keeper)
        total = Outcome(0, 0, 0)
        for loan, _ in plan.loans:
            try:
                receipt = pool.liquidate(loan.borrower, plan.max_repay, sender=keeper)
            except ContractLogicError as exc:
                failed += 1
                click.echo(f"  {loan.borrower}: liquidation refused by the contract: "
                           f"{exc.message}")
                continue
            event = next(iter(pool.Liquidated.from_receipt(receipt)))
            outcome = Outcome(int(event.repaid), int(event.collateral_seized),
                              int(event.bad_debt))
            report(f"liquidate {loan.borrower}", receipt)
            click.echo(_loan_line(market, loan, outcome, "repaid"))
            done += 1
            total = Outcome(*(x + y for x, y in zip(total, outcome, strict=True)))
        if total != Outcome(0, 0, 0):
            parts.append(f"market {market.number}: repaid {market.money(total.repaid)}, seized "
                         f"{market.shares(total.seized)}, bad debt "
                         f"{market.money(total.bad_debt)}")
    summary = f"liquidated {done} loan(s)" + (f" ({'; '.join(parts)})" if parts else "")
    if stale:
        summary += f"; {stale} market(s) skipped: stale price"
    if failed:
        raise click.ClickException(f"{summary}; {failed} liquidation(s) refused (see above)")
    click.echo(summary)


# ---------------------------------------------------------------------------------
# Perp markets
# ---------------------------------------------------------------------------------


class PerpPlan(NamedTuple):
    """The liquidatable positions of one perp market at its current index."""

    market: perps.PerpMarket
    price: int
    skew: int
    positions: list[perps.Position]


def _perp_line(m: perps.PerpMarket, price: int, skew: int, pos: perps.Position,
               verb: str) -> str:
    need = perp.maintenance_margin(pos.size, price, m.params, m.scale)
    fee = perp.keeper_fee(pos.size, price, m.params, m.scale)
    return (f"  {pos.account}: {m.sized(pos.size)}, equity {m.money(pos.equity)} (maintenance "
            f"{m.money(need)}) -> {verb}: keeper fee {m.money(fee)}, bad debt "
            f"{m.money(max(-pos.equity, 0))}")


def run_perps(provider, keeper, deployed, perp_number, dry_run) -> None:
    """Liquidate every perp position below maintenance (raises ClickException when a
    liquidation was refused)."""
    factory = perps.perp_factory(deployed)
    numbers = perps.market_numbers(factory, perp_number)
    if not numbers:
        click.echo("no perp markets yet: no liquidatable positions")
        return
    plans: list[PerpPlan] = []
    stale = 0
    for number in numbers:
        m = perps.load_market(factory, number)
        index = perps.read_index(m)
        refusal = index.refusal()
        if refusal is not None:
            stale += 1
            click.echo(f"perp market {number}: {refusal}: liquidations wait for a fresh index, "
                       "skipped")
            continue
        positions = [p for p in perps.open_positions(m, provider) if p.size != 0]
        due = [p for p in positions if p.liquidatable]
        click.echo(f"perp market {number} ({m.feed_name} / {m.asset_symbol}): "
                   f"{len(positions)} open position(s), {len(due)} liquidatable at "
                   f"{perps.fmt_price(index.price)}")
        if due:
            plans.append(PerpPlan(m, index.price, perps.market_state(m, index).skew, due))
    if not plans:
        note = f" ({stale} perp market(s) skipped: stale index)" if stale else ""
        click.echo(f"no liquidatable positions{note}")
        return
    if dry_run:
        for plan in plans:
            click.echo(f"perp market {plan.market.number} (dry run):")
            for pos in plan.positions:
                click.echo(_perp_line(plan.market, plan.price, plan.skew, pos,
                                      "would liquidate"))
        count = sum(len(plan.positions) for plan in plans)
        click.echo(f"dry run: {count} position(s) would be liquidated; nothing sent")
        return

    done = failed = 0
    parts = []
    for plan in plans:
        m, market = plan.market, plan.market.market
        click.echo(f"perp market {m.number}:")
        fees = bad = 0
        for pos in plan.positions:
            try:
                receipt = market.liquidate(pos.account, sender=keeper)
            except ContractLogicError as exc:
                failed += 1
                click.echo(f"  {pos.account}: liquidation refused by the contract: "
                           f"{exc.message}")
                continue
            event = next(iter(market.PositionLiquidated.from_receipt(receipt)))
            fee = int(event.keeper_fee)
            debt = sum(int(e.amount) for e in market.BadDebt.from_receipt(receipt))
            report(f"liquidate {pos.account}", receipt)
            click.echo(
                f"  {pos.account}: {m.sized(int(event.size))} closed at "
                f"{perps.fmt_price(int(event.index_price))}, equity "
                f"{m.money(int(event.equity))}: keeper fee {m.money(fee)}, bad debt "
                f"{m.money(debt)}"
            )
            for exhausted in market.InsuranceExhausted.from_receipt(receipt):
                click.echo(f"  insurance fund exhausted: deficit {m.money(int(exhausted.deficit))}"
                           " recorded, new risk paused until `ape run perp fund-insurance` "
                           "covers it")
            done += 1
            fees += fee
            bad += debt
        deficit = int(market.deficit())
        click.echo(f"  perp market {m.number}: insurance fund after "
                   f"{m.money(int(market.insurance_fund()))}, deficit {m.money(deficit)}")
        if fees or bad:
            parts.append(f"perp market {m.number}: keeper fees {m.money(fees)}, bad debt "
                         f"{m.money(bad)}")
    summary = f"liquidated {done} position(s)" + (f" ({'; '.join(parts)})" if parts else "")
    if stale:
        summary += f"; {stale} perp market(s) skipped: stale index"
    if failed:
        raise click.ClickException(f"{summary}; {failed} liquidation(s) refused (see above)")
    click.echo(summary)


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--pool", "pool_number", type=click.IntRange(min=1), default=None,
              help="Lending market N only (default: every lending and perp market).")
@click.option("--perp", "perp_number", type=click.IntRange(min=1), default=None,
              help="Perp market M only (default: every lending and perp market).")
@click.option("--dry-run", is_flag=True, help="Print what would be liquidated; send nothing.")
@click.option("--max-repay", default=None,
              help="Most loan asset to repay per loan (default: the whole debt; lending).")
def cli(provider, account, pool_number, perp_number, dry_run, max_repay):
    """Liquidate every loan above its liquidation LTV and every perp position below
    maintenance."""
    keeper = require_account(account)
    deployed = load_deployments(provider)
    everything = pool_number is None and perp_number is None
    if perp_number is None and pool_number is not None:
        # Lending only: exactly the keeper it always was.
        run_lending(provider, keeper, deployed, pool_number, dry_run, max_repay)
        return
    errors = []
    if pool_number is not None or (everything and deployed.lending_pool_factory is not None):
        try:
            run_lending(provider, keeper, deployed, pool_number, dry_run, max_repay)
        except click.ClickException as exc:
            errors.append(f"lending markets: {exc.message}")
    elif everything:
        click.echo("no LendingPoolFactory in the deployments file: lending skipped")
    if perp_number is not None or deployed.perp_market_factory is not None:
        try:
            run_perps(provider, keeper, deployed, perp_number, dry_run)
        except click.ClickException as exc:
            errors.append(f"perp markets: {exc.message}")
    else:
        click.echo("no PerpMarketFactory in the deployments file: perps skipped")
    if errors:
        raise click.ClickException("\n".join(errors))
