"""Jurisdiction rules on-chain: show, diff and apply the rules data to the registry.

    ape run jurisdictions diff   --network ethereum:local:foundry [--rules DIR] [--overrides F]
    ape run jurisdictions apply  --network ethereum:local:foundry --account TEST::0 [--rules DIR]
                                 [--overrides FILE ...]
    ape run jurisdictions show   --network ethereum:local:foundry DE

`--overrides FILE` adds an SPV's own title overrides (a TOML file of
`[[title_overrides]]`, each naming its `jurisdiction`; see
examples/lone-star-title-override.toml) to the rules data, which stays untouched.

`apply` is idempotent: it sends only the rows that differ from the rules data (and the
legal-opinion overrides the data records for SPVs on this chain), and a second run
sends nothing and says so. Table rows need the registry's RULES_ADMIN_ROLE; an override
needs the SPV operator's key (the token's OPERATOR_ROLE), so overrides another key must
record are listed and left pending. The logic lives in `gpushares.client.jurisdictions`
(over `jurisdictions.onchain`); this file parses arguments and prints.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand

from gpushares.client import jurisdictions
from jurisdictions import onchain
from jurisdictions.rules import RULES_DIR
from scripts._lib import account_option, connect, execute, handled, require_account

_rules_dir = click.option(
    "--rules", "rules_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=RULES_DIR, show_default=True, help="Folder of XX.toml rules files.",
)
_overrides = click.option(
    "--overrides", "overrides", multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An SPV's file of [[title_overrides]] to add to the rules data (repeatable).",
)


def rules_option(command):
    return _rules_dir(_overrides(command))


@click.group()
def cli():
    """Keep the ComplianceRegistry's jurisdiction table equal to the rules data."""


@cli.command(cls=ConnectedProviderCommand)
@rules_option
def diff(provider, rules_dir, overrides):
    """Show what differs between the rules data and the registry."""
    with handled():
        rules = jurisdictions.load(rules_dir, overrides)
    client = connect(provider)
    with handled():
        for line in onchain.describe(jurisdictions.pending(client, rules), len(rules)):
            click.echo(line)


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@rules_option
def apply(provider, account, rules_dir, overrides):
    """Send the changes `diff` shows (nothing when the registry already matches)."""
    sender = require_account(account)
    with handled():
        rules = jurisdictions.load(rules_dir, overrides)
    client = connect(provider)
    with handled():
        changes = jurisdictions.pending(client, rules)
        if changes.empty:
            for line in onchain.describe(changes, len(rules)):
                click.echo(line)
            return
        plan = jurisdictions.plan_apply(client, sender.address, rules)
    for change in (*changes.rows, *changes.subdivision_rows):
        click.echo(change.describe())
    for change in changes.overrides:
        if change.token is not None:
            click.echo(change.describe())
    execute(client, plan, sender)
    with handled():
        after = jurisdictions.pending(client, rules)
    keyed = sum(o.token is not None for o in after.overrides)  # the SPV operator's key
    click.echo(f"registry now matches the rules data ({len(rules)} jurisdictions)"
               if after.empty else
               f"{len(after.rows) + len(after.subdivision_rows) + keyed} change(s) still "
               f"pending ({keyed} need another key)")


@cli.command(cls=ConnectedProviderCommand)
@rules_option
@click.argument("jurisdiction")
def show(provider, rules_dir, overrides, jurisdiction):
    """Print one jurisdiction's rules (alpha-2 or numeric) and its on-chain row."""
    with handled():
        rules = jurisdictions.load(rules_dir, overrides)
    client = connect(provider)
    with handled():
        for line in jurisdictions.view(client, rules, jurisdiction).describe():
            click.echo(line)
