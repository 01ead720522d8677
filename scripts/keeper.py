"""The keeper: lending markets (repay unhealthy loans, take collateral) and perp markets
(close positions below maintenance, execute due orders, cancel expired ones).

    ape run keeper --network ethereum:local:foundry --account K [--pool N] [--perp M]
                   [--dry-run] [--max-repay X] [--state FILE] [--rescan]

Which markets: with neither option every lending market and every perp market; with
`--pool N` lending market N only (and no perp market unless `--perp` is given too); with
`--perp M` perp market M only (and no lending market unless `--pool` is given too).

Lending: a market with a stale price is skipped (liquidations are paused); every loan
above the liquidation LTV is liquidated in full (or X of the loan asset per loan with
`--max-repay`). Before anything is sent the keeper is checked to be allowed to hold
the collateral (the share token's ERC-1404 rules, as the pool checks first) and to hold
the loan asset the liquidations pull. "no unhealthy loans" when there is nothing to do.

Perps: on a stale or halted index nothing is liquidated or executed; otherwise every
position the PerpLens's `can_liquidate` view flags is liquidated (the market pays the
keeper fee; the keeper needs no funds), then every order whose window is open and for
which an oracle round was observed after its commit is executed at that round's index.
An order whose trade the market refuses (past its acceptable price, ...) is executed
too: the market cancels it, so nobody can hold an order back. Each execution credits
the order's keeper fee to the keeper's margin in the market (`ape run perp withdraw
--market M --all` takes it out). Expired orders are cancelled (their keeper fee no
longer reserved in the trader's margin). "no liquidatable positions" and "no orders to
execute or cancel" when there is nothing to do.

Scanning: who has a loan, a position or an order comes from each market's events, read
from the market's creation block; the keeper remembers the last block it read and the
accounts it saw per market (keyed by chain id and market address) in `--state FILE`
(default `deployments/keeper/<the deployments file's name>`), so the next pass reads
only the new blocks. A chain whose head is below that checkpoint (a restarted local
node) or a newer deployments file makes it read the market again from its creation.
`--rescan` ignores the file (an unreadable one too) and writes it anew.

`--dry-run` prints what it would do and sends nothing. The logic lives in
`gpushares.client.keeper`; this file parses and prints.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand

from gpushares.client import keeper as keepers
from scripts._lib import (
    account_option,
    connect,
    deployments_path,
    echo_receipt,
    handled,
    require_account,
)


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--pool", "pool_number", type=click.IntRange(min=1), default=None,
              help="Lending market N only (default: every lending and perp market).")
@click.option("--perp", "perp_number", type=click.IntRange(min=1), default=None,
              help="Perp market M only (default: every lending and perp market).")
@click.option("--dry-run", is_flag=True,
              help="Print what would be liquidated, executed and cancelled; send nothing.")
@click.option("--max-repay", default=None,
              help="Most loan asset to repay per loan (default: the whole debt; lending).")
@click.option("--state", "state", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Checkpoint file: the last block scanned and the accounts seen per market "
                   "(default: deployments/keeper/<the deployments file's name>).")
@click.option("--rescan", is_flag=True,
              help="Scan every market from its creation block; rewrite the checkpoint file.")
def cli(provider, account, pool_number, perp_number, dry_run, max_repay, state, rescan):
    """Liquidate every loan above its liquidation LTV and every perp position below
    maintenance; execute the perp orders that are due and cancel the expired ones."""
    keeper = require_account(account)
    client = connect(provider)
    everything = pool_number is None and perp_number is None
    pools = None if everything else [pool_number] if pool_number else []
    perps = None if everything else [perp_number] if perp_number else []
    with handled():
        checkpoints = keepers.Checkpoints(
            state or keepers.default_state_path(deployments_path(provider)), rescan=rescan)
        plan = keepers.plan_pass(client, keeper.address, pools, perps, max_repay=max_repay,
                                 checkpoints=checkpoints)
        for line in plan.lines(dry_run):
            click.echo(line)
        if dry_run:
            if plan.refusal is not None and plan.loans_due:
                raise plan.refusal
            return
        done = keepers.run(client, keeper, plan, on_receipt=echo_receipt, on_line=click.echo)
    if done.errors:
        raise click.ClickException("\n".join(done.errors))
