"""Jurisdiction rules on-chain: show, diff and apply the rules data to the registry.

    ape run jurisdictions diff   --network ethereum:local:foundry [--rules DIR]
    ape run jurisdictions apply  --network ethereum:local:foundry --account TEST::0 [--rules DIR]
    ape run jurisdictions show   --network ethereum:local:foundry DE

`apply` is idempotent: it sends only the rows that differ from the rules data (and the
legal-opinion overrides the data records for SPVs on this chain), and a second run
sends nothing and says so. Table rows need the registry's RULES_ADMIN_ROLE; an override
needs the SPV operator's key (the token's OPERATOR_ROLE), so overrides another key must
record are listed and left pending.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import project
from ape.cli import ConnectedProviderCommand

from jurisdictions import onchain
from jurisdictions.codes import HolderPolicyCode, TitleStatus
from jurisdictions.rules import RULES_DIR, RuleBook, RulesError, load_rules
from scripts._lib import (
    account_option,
    factory,
    load_deployments,
    registry,
    require_account,
    transact,
)

rules_option = click.option(
    "--rules",
    "rules_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=RULES_DIR,
    show_default=True,
    help="Folder of XX.toml rules files.",
)


def _load(rules_dir: Path) -> RuleBook:
    try:
        return load_rules(rules_dir)
    except RulesError as exc:
        raise click.ClickException(f"rules data rejected, nothing sent: {exc}") from exc


@click.group()
def cli():
    """Keep the ComplianceRegistry's jurisdiction table equal to the rules data."""


@cli.command(cls=ConnectedProviderCommand)
@rules_option
def diff(provider, rules_dir):
    """Show what differs between the rules data and the registry."""
    deployed = load_deployments(provider)
    rules = _load(rules_dir)
    plan = onchain.plan(rules, registry(deployed), onchain.tokens_by_lei(factory(deployed)))
    for line in onchain.describe(plan, len(rules)):
        click.echo(line)


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@rules_option
def apply(provider, account, rules_dir):
    """Send the changes `diff` shows (nothing when the registry already matches)."""
    sender = require_account(account)
    deployed = load_deployments(provider)
    rules = _load(rules_dir)
    reg = registry(deployed)
    plan = onchain.plan(rules, reg, onchain.tokens_by_lei(factory(deployed)))
    if plan.empty:
        click.echo(next(iter(onchain.describe(plan, len(rules)))))
        return
    if plan.rows and not reg.hasRole(reg.RULES_ADMIN_ROLE(), sender.address):
        raise click.ClickException(
            f"{sender.address} lacks the registry's RULES_ADMIN_ROLE, nothing sent; "
            "use the rules admin's account (the deployer, unless it granted the role)"
        )
    for change in plan.rows:
        click.echo(change.describe())
    for batch in plan.row_batches():
        transact(f"set {len(batch)} jurisdiction row(s)", reg.set_jurisdictions, batch,
                 sender=sender)
    pending = 0
    for change in plan.overrides:
        setting = change.setting
        if change.token is None:
            click.echo(f"  skipped: {change.describe()}")
            continue
        token = change.token
        share = project.GPUShareToken.at(token)
        if not share.hasRole(share.OPERATOR_ROLE(), sender.address):
            click.echo(f"  pending (needs the SPV operator's key): {change.describe()}")
            pending += 1
            continue
        clearing = setting.legal_opinion_hash == onchain.ZERO32
        click.echo(change.describe())
        transact(
            f"{'clear withdrawn' if clearing else 'record'} title override for jurisdiction "
            f"{setting.jurisdiction} on {token}",
            reg.set_title_override,
            token,
            setting.jurisdiction,
            setting.legal_opinion_hash,
            sender=sender,
        )
    after = onchain.plan(rules, reg, onchain.tokens_by_lei(factory(deployed)))
    remaining = len(after.rows) + len(after.overrides)
    click.echo(
        f"registry now matches the rules data ({len(rules)} jurisdictions)"
        if after.empty
        else f"{remaining} change(s) still pending ({pending} need another key)"
    )


@cli.command(cls=ConnectedProviderCommand)
@rules_option
@click.argument("jurisdiction")
def show(provider, rules_dir, jurisdiction):
    """Print one jurisdiction's rules (alpha-2 or numeric) and its on-chain row."""
    rules = _load(rules_dir)
    try:
        rule = rules.resolve(jurisdiction)
    except RulesError as exc:
        raise click.BadParameter(str(exc)) from exc
    deployed = load_deployments(provider)
    row = onchain.read_row(registry(deployed), rule.numeric)
    in_sync = row == next(s for s in onchain.compile_rules(rules) if s.jurisdiction == rule.numeric)
    click.echo(f"{rule.name} ({rule.alpha2}, {rule.numeric}) as of {rule.as_of}, "
               f"reviewed by {rule.reviewed_by}")
    click.echo(f"  title_recognition: {rule.title_recognition}    holder_policy: "
               f"{rule.holder_policy}    sanctioned: {rule.sanctioned}")
    click.echo(f"  on-chain: title={TitleStatus(row.title).name.lower()} "
               f"policy={HolderPolicyCode(row.policy).name.lower()} "
               f"({'in sync' if in_sync else 'OUT OF SYNC: run apply'})")
    click.echo(f"  basis: {rule.basis}")
    if rule.unknowns:
        click.echo(f"  unknowns: {rule.unknowns}")
    for citation in rule.citations:
        click.echo(f"  - {citation}")
