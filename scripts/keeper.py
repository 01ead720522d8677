"""Liquidation keeper: repay the unhealthy loans of the lending markets, take collateral.

    ape run keeper --network ethereum:local:foundry --account K [--pool N] [--dry-run]
                   [--max-repay X]

For each market (or market N): with a stale price liquidations are paused, so the
market is skipped; otherwise every borrower (from the pool's events) is valued with
`gpushares.lending` (the pool's own rounding) and each loan above the liquidation LTV
is liquidated in full (`max_repay = 2**256 - 1`, or X of the loan asset per loan with
`--max-repay`). Before anything is sent the keeper checks that it may hold the
collateral (the share token's ERC-1404 rules, as the pool does first) and that it holds
the loan asset the liquidations pull. `--dry-run` prints what it would do and sends
nothing. Exits 0 with "no unhealthy loans" when there is nothing to do.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import click
from ape.cli import ConnectedProviderCommand
from ape.exceptions import ContractLogicError

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


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--pool", "pool_number", type=click.IntRange(min=1), default=None,
              help="Only this market (default: every market).")
@click.option("--dry-run", is_flag=True, help="Print what would be liquidated; send nothing.")
@click.option("--max-repay", default=None,
              help="Most loan asset to repay per loan (default: the whole debt).")
def cli(provider, account, pool_number, dry_run, max_repay):
    """Liquidate every loan above its market's liquidation LTV."""
    keeper = require_account(account)
    deployed = load_deployments(provider)
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
