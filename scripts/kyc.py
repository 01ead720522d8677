"""Investor eligibility: KYC providers register or attest investors; investors onboard.

    ape run kyc register ... --account KYC --investor 0x... --jurisdiction US --accredited
    ape run kyc attest   ... --account KYC --investor 0x... --jurisdiction US --accredited \\
                             --out attestation.json          (signs an EIP-712 attestation)
    ape run kyc submit   ... --account INVESTOR --file attestation.json   (self-onboarding)
    ape run kyc freeze   ... --account FREEZER --investor 0x... [--unfreeze]
    ape run kyc show     ... --investor 0x...

`--jurisdiction` takes an alpha-2 code from the rules data (`US`) or a numeric code.
`attest` needs a local key for the provider (an ape test account or an imported key
whose passphrase ape can read non-interactively); the file it writes holds no secret.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand
from pydantic import ValidationError

from jurisdictions import eligibility
from jurisdictions.rules import RulesError, load_rules
from scripts._lib import (
    account_option,
    checksum_address,
    load_deployments,
    registry,
    require_account,
    transact,
)

DAY = 86_400


def _jurisdiction(value: str) -> tuple[int, str]:
    try:
        rule = load_rules().resolve(value)
    except RulesError as exc:
        raise click.BadParameter(f"--jurisdiction: {exc}") from exc
    return rule.numeric, f"{rule.alpha2} ({rule.holder_policy})"


investor_option = click.option("--investor", required=True, help="The investor's wallet.")
jurisdiction_option = click.option(
    "--jurisdiction", required=True, help="Residence: alpha-2 (US) or ISO numeric (840)."
)
accredited_option = click.option(
    "--accredited/--not-accredited", default=False, help="Accredited / qualified investor."
)
days_option = click.option(
    "--valid-days", type=click.IntRange(1, 3_650), default=365, show_default=True,
    help="Days until the eligibility expires.",
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
    reg = registry(load_deployments(provider))
    who = checksum_address(investor, "--investor")
    code, label = _jurisdiction(jurisdiction)
    if not reg.hasRole(reg.KYC_PROVIDER_ROLE(), kyc.address):
        raise click.ClickException(f"{kyc.address} lacks KYC_PROVIDER_ROLE, nothing sent")
    expires = provider.get_block("latest").timestamp + valid_days * DAY
    transact(
        f"register {who}: {label}, {'accredited' if accredited else 'not accredited'}",
        reg.set_investor, who, code, accredited, expires, sender=kyc,
    )


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
    deployed = load_deployments(provider)
    reg = registry(deployed)
    who = checksum_address(investor, "--investor")
    code, label = _jurisdiction(jurisdiction)
    if not reg.hasRole(reg.KYC_PROVIDER_ROLE(), kyc.address):
        raise click.ClickException(f"{kyc.address} lacks KYC_PROVIDER_ROLE: its signature "
                                   "would be refused")
    key = getattr(kyc, "private_key", None)
    if key is None:
        raise click.ClickException(f"account {kyc.alias} exposes no local key to sign with")
    now = provider.get_block("latest").timestamp
    attestation = eligibility.Eligibility(
        investor=who, jurisdiction=code, accredited=accredited,
        expires_at=now + valid_days * DAY, nonce=int(reg.eligibility_nonce(who)),
        deadline=now + deadline_hours * 3_600,
    )
    signed = eligibility.sign(attestation, key, provider.chain_id, deployed.compliance_registry)
    out.write_text(signed.to_json() + "\n", encoding="utf-8")
    click.echo(f"  signed eligibility for {who}: {label}, nonce {attestation.nonce}, "
               f"valid {valid_days} days; wrote {out}")


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Signed attestation from `kyc attest`.")
def submit(provider, account, path):
    """Submit a signed attestation: the investor onboards themself."""
    sender = require_account(account)
    deployed = load_deployments(provider)
    reg = registry(deployed)
    try:
        signed = eligibility.SignedEligibility.model_validate_json(path.read_text("utf-8"))
    except (ValidationError, OSError) as exc:
        raise click.ClickException(f"{path} is not a signed attestation: {exc}") from exc
    if signed.chain_id != provider.chain_id or signed.registry != deployed.compliance_registry:
        raise click.ClickException(
            f"{path} was signed for registry {signed.registry} on chain {signed.chain_id}, "
            f"not {deployed.compliance_registry} on chain {provider.chain_id}"
        )
    if eligibility.recover_signer(signed) != signed.signer:
        raise click.ClickException(f"{path}: the signature does not match the attestation")
    a = signed.attestation
    if a.deadline < provider.get_block("latest").timestamp:  # the chain's clock decides
        raise click.ClickException(f"{path}: the attestation's deadline has passed; ask the "
                                   "KYC provider for a new one")
    if a.nonce != reg.eligibility_nonce(a.investor):
        raise click.ClickException(f"{path}: nonce {a.nonce} is used already (next is "
                                   f"{reg.eligibility_nonce(a.investor)})")
    transact(f"submit eligibility of {a.investor} signed by {signed.signer}",
             reg.submit_eligibility, a.as_tuple(), signed.signature_bytes(), sender=sender)


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@investor_option
@click.option("--unfreeze", is_flag=True, help="Lift the freeze instead.")
def freeze(provider, account, investor, unfreeze):
    """Freeze (or unfreeze) a whole wallet across every share token (FREEZER_ROLE)."""
    agent = require_account(account)
    reg = registry(load_deployments(provider))
    who = checksum_address(investor, "--investor")
    if bool(reg.is_frozen(who)) != unfreeze:
        raise click.ClickException(f"{who} is already {'unfrozen' if unfreeze else 'frozen'}")
    transact(f"{'unfreeze' if unfreeze else 'freeze'} wallet {who}", reg.set_wallet_frozen,
             who, not unfreeze, sender=agent)


@cli.command(cls=ConnectedProviderCommand)
@investor_option
def show(provider, investor):
    """Print an investor's record."""
    reg = registry(load_deployments(provider))
    who = checksum_address(investor, "--investor")
    record = reg.investor(who)
    if not record.registered:
        click.echo(f"{who}: no eligibility record{' (wallet frozen)' if record.frozen else ''}")
        return
    now = provider.get_block("latest").timestamp
    state = "expired" if record.expires_at <= now else "valid"
    click.echo(f"{who}: jurisdiction {record.jurisdiction}, "
               f"{'accredited' if record.accredited else 'not accredited'}, {state} until "
               f"{record.expires_at}{', FROZEN' if record.frozen else ''}")
