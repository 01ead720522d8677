"""KYC: investors' eligibility records in the ComplianceRegistry.

    ape run kyc register --account KYC --investor 0x... --jurisdiction US [--accredited]
                         [--valid-days 365]
    ape run kyc attest   --account KYC --investor 0x... --jurisdiction US [--accredited]
                         --out attestation.json          (signed; the investor submits it)
    ape run kyc submit   --account INVESTOR --file attestation.json
    ape run kyc freeze   --account FREEZER --investor 0x... [--unfreeze]
    ape run kyc show     --investor 0x...

`--jurisdiction` takes an alpha-2 code from the rules data (`US`), a numeric code, or an
ISO 3166-2 region (`UA-30`), which a country whose rules list regions requires.
`attest` needs a local key for the provider (an ape test account or an imported key
whose passphrase ape can read non-interactively); the file it writes holds no secret.
The logic lives in `gpushares.client.kyc`; this file parses arguments and prints.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand
from pydantic import ValidationError

from gpushares.client import kyc as client_kyc
from jurisdictions import eligibility
from scripts._lib import account_option, connect, execute, handled, require_account

investor_option = click.option("--investor", required=True, help="The investor's wallet.")
jurisdiction_option = click.option(
    "--jurisdiction", required=True,
    help="Residence: alpha-2 (US), ISO numeric (840) or ISO 3166-2 region (UA-30)."
)
accredited_option = click.option(
    "--accredited/--not-accredited", default=False, help="Accredited / qualified investor."
)
days_option = click.option(
    "--valid-days", type=click.IntRange(1, client_kyc.MAX_VALID_DAYS), default=365,
    show_default=True, help="Days until the eligibility expires.",
)


@click.group()
def cli():
    """Register investors in the ComplianceRegistry."""


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@investor_option
@jurisdiction_option
@accredited_option
@days_option
def register(provider, account, investor, jurisdiction, accredited, valid_days):
    """Write an investor's record directly (KYC provider)."""
    kyc = require_account(account)
    client = connect(provider)
    with handled():
        rule, region = client_kyc.residence_and_region(jurisdiction)
        plan = client_kyc.plan_register(client, kyc.address, investor, rule, region=region,
                                        accredited=accredited, valid_days=valid_days)
    execute(client, plan, kyc)


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@investor_option
@jurisdiction_option
@accredited_option
@days_option
@click.option("--deadline-hours", type=click.IntRange(1, 24 * 30), default=72, show_default=True,
              help="Hours the investor has to submit the attestation.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the signed attestation (JSON).")
def attest(provider, account, investor, jurisdiction, accredited, valid_days, deadline_hours,
           out):
    """Sign an EIP-712 eligibility attestation for the investor to submit themself."""
    kyc = require_account(account)
    key = getattr(kyc, "private_key", None)
    if key is None:
        raise click.ClickException(f"account {kyc.alias} exposes no local key to sign with")
    client = connect(provider)
    with handled():
        rule, region = client_kyc.residence_and_region(jurisdiction)
        signed = client_kyc.attest(client, key, investor, rule, accredited=accredited,
                                   valid_days=valid_days, deadline_hours=deadline_hours,
                                   region=region)
    out.write_text(signed.to_json() + "\n", encoding="utf-8")
    a = signed.attestation
    click.echo(f"  signed eligibility for {a.investor}: {region or rule.alpha2} "
               f"({rule.holder_policy}), "
               f"nonce {a.nonce}, valid {valid_days} days; wrote {out}")


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Signed attestation from `kyc attest`.")
def submit(provider, account, path):
    """Submit a signed attestation: the investor onboards themself."""
    sender = require_account(account)
    try:
        signed = eligibility.SignedEligibility.model_validate_json(path.read_text("utf-8"))
    except (ValidationError, OSError) as exc:
        raise click.ClickException(f"{path} is not a signed attestation: {exc}") from exc
    client = connect(provider)
    with handled():
        plan = client_kyc.plan_submit(client, signed)
    execute(client, plan, sender)


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@investor_option
@click.option("--unfreeze", is_flag=True, help="Lift the freeze instead.")
def freeze(provider, account, investor, unfreeze):
    """Freeze (or unfreeze) a whole wallet across every share token (FREEZER_ROLE)."""
    agent = require_account(account)
    client = connect(provider)
    with handled():
        plan = client_kyc.plan_freeze(client, agent.address, investor, frozen=not unfreeze)
    execute(client, plan, agent)


@cli.command(cls=ConnectedProviderCommand)
@investor_option
def show(provider, investor):
    """Print an investor's record."""
    client = connect(provider)
    with handled():
        click.echo(client_kyc.record(client, investor).describe())
