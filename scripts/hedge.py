"""Hedge an SPV's rental revenue: sell the GPU-hours it expects to rent out.

    ape run hedge --account OP --market 1 --spv 1 --hours 720 [--utilisation 0.85]
                  [--leverage 2] [--slippage 1] [--dry-run] [--skip-checks]

Selling the GPU-hours the fleet expects to rent out (active GPUs x hours x utilisation,
the oracle's latest attested one unless `--utilisation` is given) locks the price in: if
the index falls, the short gains what the rentals lose. The sell is an order: this
command deposits the margin and commits it; a keeper (`ape run keeper`) executes it at
the first oracle round after the commit, so the fill is the next index, not today's
(`--slippage` bounds it). The margin is the notional over `--leverage`, plus fee,
premium and the keeper fee the order reserves, raised to the market's initial margin if
that is more. The order and its execution are checked as the market checks them before
anything is sent; `--dry-run` prints the plan and sends nothing. Funding is not part of
the locked-in revenue (`ape run perp status`). The logic lives in
`gpushares.client.hedge`; this file parses and prints.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand

from gpushares.client import hedge as hedges
from gpushares.client import perp as perps
from scripts._lib import account_option, connect, execute, handled, require_account


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
    """Commit a sell of the SPV's expected GPU-hours on a perp market (the rental price)."""
    operator = require_account(account)
    client = connect(provider)
    with handled():
        hedge = hedges.quote(client, operator.address, market_number, spv_id, hours,
                             utilisation=utilisation, leverage=leverage, slippage=slippage,
                             source="--utilisation")
        plan = hedges.plan_hedge(client, operator.address, hedge)
        if plan.refusal is not None and (dry_run or not skip_checks):
            raise plan.refusal
        for line in hedge.lines():
            click.echo(line)
        if dry_run:
            click.echo("dry run: nothing sent")
            return
        execute(client, plan, operator, skip_checks=skip_checks)
        click.echo(hedge.committed(perps.order(client, market_number, operator.address)))
