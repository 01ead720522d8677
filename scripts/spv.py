"""SPV operator commands: an SPV, its GPUs, its shares and their income.

    ape run spv create --account OP --name ... --lei ... --documents FILE --token-name ...
    ape run spv add-gpus | mint | distribute | burn | impair-gpu | retire-gpu --account OP --spv 1
    ape run spv claim | transfer (--to 0x... | --to-spv)   --account HOLDER --spv 1
    ape run spv grant-role --account ADMIN --spv 1 --role freezer --to 0x... [--revoke]
    ape run spv freeze-shares | forced-transfer | recover-wallet --account AGENT --spv 1 ...
    ape run spv status [--spv 1] [--holder 0x...]
    ape run spv subscriptions open | register | list | fulfil | fund | defund  (the vault)

Buy-back before retiring a GPU: the operator gets its own KYC record (`kyc register`),
holders `transfer --to-spv`, the operator `burn`s, then `retire-gpu`. Addresses are
checked as the options are parsed, every plan before it is sent: a refusal prints the
message a wallet shows and the legal citations, and sends nothing (`--skip-checks` sends
anyway, to see the contract refuse). The logic lives in `gpushares.client.spv`.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand

from gpushares.client import spv
from gpushares.client.jurisdictions import Restricted
from scripts._lib import (
    account_option,
    address_option,
    connect,
    execute,
    handled,
    require_account,
)
from scripts._subscriptions import subscriptions

shares_option = click.option("--shares", required=True, help="Shares (decimals allowed).")
gpu_option = click.option("--gpu", "gpu_id", type=int, required=True, help="GPU id (status).")
spv_option = click.option("--spv", "spv_id", type=int, required=True, help="SPV id (1, 2, ...).")
skip_checks_option = click.option("--skip-checks", is_flag=True,
                                  help="Send even if a pre-check refuses (the contract decides).")


@click.group()
def cli():
    """Operate an SPV: create it, register GPUs, mint shares, distribute income."""


cli.add_command(subscriptions)  # ape run spv subscriptions ...: its ERC-7540 vault


def sending(name: str, *, spv_id: bool = True, **kwargs):
    """A command that signs and sends: `account`, `spv_id` (unless False), `skip_checks`."""
    def wrap(function):
        function = account_option()(skip_checks_option(spv_option(function) if spv_id
                                                        else function))
        return cli.command(name, cls=ConnectedProviderCommand, **kwargs)(function)
    return wrap


def _send(provider, account, skip_checks, plan_of, after=None):
    """Plan (`plan_of(client, signer)`), explain a refusal, send, print `after(client,
    receipts)`: the new state."""
    signer = require_account(account)
    client = connect(provider)
    with handled():
        plan = plan_of(client, signer.address)
    for line in plan.refusal.lines() if isinstance(plan.refusal, Restricted) else ():
        click.echo(f"  {line}")
    receipts = execute(client, plan, signer, skip_checks=skip_checks)
    if after is not None:
        with handled():
            click.echo(after(client, receipts))


def _state(spv_id: int, line):
    """An `after` for `_send`: `line(status, client)` with SPV `spv_id`'s new status."""
    return lambda client, _receipts: line(spv.status(client, spv_id), client)


@sending("create", spv_id=False)
@click.option("--name", "legal_name", required=True, help="Registered legal name of the SPV.")
@click.option("--jurisdiction", type=click.IntRange(1, 999), required=True,
              help="Jurisdiction of incorporation, ISO 3166-1 numeric (e.g. 840 US, 442 LU).")
@click.option("--lei", required=True, help="20-character ISO 17442 Legal Entity Identifier.")
@click.option("--documents", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Legal documents file; its SHA-256 is recorded on-chain.")
@click.option("--documents-hash", help="0x-prefixed 32-byte hash, instead of --documents.")
@click.option("--token-name", required=True, help="Share token name (at most 25 characters).")
@click.option("--symbol", required=True, help="Share token symbol (at most 5 characters).")
@click.option("--shares-per-gpu", required=True, help="Shares backed by each GPU.")
@address_option("--income-token", help="Stablecoin address; defaults to the deployment's.")
def create(provider, account, skip_checks, legal_name, jurisdiction, lei, documents,
           documents_hash, token_name, symbol, shares_per_gpu, income_token):
    """Register an SPV and deploy its share token."""
    with handled():
        digest = spv.documents_digest(file=documents, hex_digest=documents_hash)
    _send(provider, account, skip_checks, lambda c, me: spv.plan_create(
        c, me, legal_name=legal_name, jurisdiction=jurisdiction, lei=lei, documents_hash=digest,
        token_name=token_name, symbol=symbol, shares_per_gpu=shares_per_gpu,
        income_token=income_token),
        lambda c, receipts: "\n".join(spv.status(c, spv.created(c, receipts)).describe()))


@sending("add-gpus")
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Fleet CSV (see examples/fleet-h100.csv for the columns).")
def add_gpus(provider, account, spv_id, skip_checks, csv_path):
    """Register the GPUs listed in a fleet CSV (refused where title is not recognised)."""
    with handled():
        rows = spv.load_fleet(csv_path)
    _send(provider, account, skip_checks, lambda c, me: spv.plan_add_gpus(c, me, spv_id, rows),
          _state(spv_id, lambda s, _: f"SPV {spv_id}: {s.gpu_count} GPUs registered, "
                 f"{s.active_gpus} active; mint cap now {spv.shares(s.mint_cap)} shares"))


@sending("mint")
@address_option("--to", required=True, help="Receiving address (an eligible investor).")
@shares_option
def mint(provider, account, spv_id, skip_checks, to, shares):
    """Mint new shares within the active GPUs' backing."""
    _send(provider, account, skip_checks, lambda c, me: spv.plan_mint(c, me, spv_id, to, shares),
          _state(spv_id, lambda s, c: f"SPV {spv_id}: {spv.holding(c, spv_id, to).describe()}"
                 f"; supply {spv.shares(s.supply)} of {spv.shares(s.mint_cap)}"))


@sending("transfer")
@address_option("--to", help="Receiving address (an eligible holder).")
@click.option("--to-spv", is_flag=True, help="Back to the SPV (its operator): a buy-back.")
@shares_option
def transfer(provider, account, spv_id, skip_checks, to, to_spv, shares):
    """Transfer shares from the account to another eligible holder, or back to the SPV."""
    if (to is None) == (not to_spv):
        raise click.UsageError("pass exactly one of --to ADDRESS or --to-spv")
    _send(provider, account, skip_checks, lambda c, me: (
        spv.plan_return_to_spv(c, me, spv_id, shares) if to_spv
        else spv.plan_transfer(c, me, spv_id, to, shares)),
        _state(spv_id, lambda s, c: (
            f"SPV {spv_id}: {spv.holding(c, spv_id, to or s.operator).describe()}")))


@sending("burn")
@shares_option
def burn(provider, account, spv_id, skip_checks, shares):
    """Burn shares the SPV holds (bought back), e.g. before retiring a GPU."""
    _send(provider, account, skip_checks, lambda c, me: spv.plan_burn(c, me, spv_id, shares),
          _state(spv_id, lambda s, _: f"SPV {spv_id}: supply now {spv.shares(s.supply)}"))


@sending("distribute")
@click.option("--amount", required=True, help="Income in stablecoin (e.g. 11520.00).")
def distribute(provider, account, spv_id, skip_checks, amount):
    """Pay rental income to all holders, pro rata (approves the token if needed)."""
    _send(provider, account, skip_checks,
          lambda c, me: spv.plan_distribute(c, me, spv_id, amount),
          _state(spv_id, lambda s, _: f"SPV {spv_id}: {s.money(s.total_distributed, unit=False)} "
                 f"distributed in all, {s.money(s.total_claimed, unit=False)} claimed"))


@sending("claim")
def claim(provider, account, spv_id, skip_checks):
    """Claim the rental income the caller's shares have earned."""
    _send(provider, account, skip_checks, lambda c, me: spv.plan_claim(c, me, spv_id),
          lambda c, _: (f"{account.address} now holds "
                        f"{spv.holding(c, spv_id, account.address).money_held()}"))


def _gpu_command(name: str, plan, help_text: str) -> None:
    """`impair-gpu` and `retire-gpu`: one GPU changes status."""
    @sending(name, help=help_text)
    @gpu_option
    def command(provider, account, spv_id, skip_checks, gpu_id):
        _send(provider, account, skip_checks, lambda c, me: plan(c, me, spv_id, gpu_id),
              _state(spv_id, lambda s, c: f"SPV {spv_id}: GPU {gpu_id} is "
                     f"{spv.gpu(c, spv_id, gpu_id).status}; {s.active_gpus} active, "
                     f"{s.impaired_gpus} impaired"))


_gpu_command("impair-gpu", spv.plan_impair_gpu,
             "Mark an active GPU impaired (it no longer backs new mints).")
_gpu_command("retire-gpu", spv.plan_retire_gpu,
             "Retire a GPU; burn shares first if the supply would exceed the remaining backing.")


@cli.command(cls=ConnectedProviderCommand)
@click.option("--spv", "spv_id", type=int, help="One SPV; all SPVs when omitted.")
@address_option("--holder", "holders", multiple=True, help="Show this holder's position too.")
def status(provider, spv_id, holders):
    """Show the SPVs, their GPUs, supply, backing and income."""
    client = connect(provider)
    with handled():
        every = spv.spv_ids(client)
        click.echo(f"SPVFactory {client.deployed.spv_factory}: {len(every)} SPV(s)")
        for sid in [spv_id] if spv_id is not None else every:
            click.echo("\n".join(["", *spv.status(client, sid).describe(),
                                  *(f"    {gpu.describe()}" for gpu in spv.gpus(client, sid)),
                                  *(f"  holder {spv.holding(client, sid, who).describe()}"
                                    for who in holders)]))
    if spv_id is None and not every:
        click.echo("  (none yet: `ape run spv create ...`)")


@sending("grant-role")
@click.option("--role", type=click.Choice(list(spv.AGENT_ROLES)), required=True,
              help="The token's agent role to grant.")
@address_option("--to", required=True, help="The agent's address.")
@click.option("--revoke", is_flag=True, help="Revoke the role instead.")
def grant_role(provider, account, spv_id, skip_checks, role, to, revoke):
    """Grant (or revoke) an agent role on the SPV's token (the token's admin)."""
    _send(provider, account, skip_checks, lambda c, me: spv.plan_grant_role(
        c, me, spv_id, role, to, revoke=revoke), lambda c, _: (
        f"SPV {spv_id}: {to} holds {', '.join(spv.roles_of(c, spv_id, to)) or 'no role'} "
        "on the token"))


@sending("freeze-shares")
@address_option("--holder", required=True, help="Holder whose shares to freeze.")
@shares_option
def freeze_shares(provider, account, spv_id, skip_checks, holder, shares):
    """Set how many of a holder's shares are frozen, 0 unfreezes (FREEZER_ROLE)."""
    _send(provider, account, skip_checks,
          lambda c, me: spv.plan_freeze_shares(c, me, spv_id, holder, shares))


@sending("forced-transfer")
@address_option("--from", "sender", required=True, help="Holder losing shares.")
@address_option("--to", "receiver", required=True, help="Eligible receiver.")
@shares_option
def forced_transfer(provider, account, spv_id, skip_checks, sender, receiver, shares):
    """Move shares without the holder's consent (FORCED_TRANSFER_ROLE): bypasses the
    pause, the title stop, the sender's checks and freezes; never the receiver's
    eligibility or the sender's balance."""
    _send(provider, account, skip_checks, lambda c, me: spv.plan_forced_transfer(
        c, me, spv_id, sender, receiver, shares))


@sending("recover-wallet")
@address_option("--lost", required=True, help="Wallet whose keys were lost.")
@address_option("--new", "new_wallet", required=True, help="The holder's new, eligible wallet.")
def recover_wallet(provider, account, spv_id, skip_checks, lost, new_wallet):
    """Move a lost wallet's shares, income and freezes to a new wallet (RECOVERY_ROLE)."""
    _send(provider, account, skip_checks,
          lambda c, me: spv.plan_recover_wallet(c, me, spv_id, lost, new_wallet))
