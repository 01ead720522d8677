"""SPV operator commands: register an SPV, its GPUs, mint shares, pay rental income.

    ape run spv create      --network ethereum:local:foundry --account TEST::1 --name ... --lei ...
    ape run spv add-gpus    ... --spv 1 --csv examples/fleet-h100.csv
    ape run spv mint        ... --spv 1 --to 0x... --shares 1000
    ape run spv distribute  ... --spv 1 --amount 11520.00
    ape run spv claim       ... --spv 1                      (a holder claims income)
    ape run spv impair-gpu  ... --spv 1 --gpu 3
    ape run spv burn        ... --spv 1 --shares 1000
    ape run spv retire-gpu  ... --spv 1 --gpu 3
    ape run spv status      ... --spv 1 [--holder 0x...]
    ape run spv transfer    ... --spv 1 --to 0x... --shares 10   (a holder moves shares)
    ape run spv freeze-shares   ... --spv 1 --holder 0x... --shares 5   (FREEZER_ROLE)
    ape run spv forced-transfer ... --spv 1 --from 0x... --to 0x... --shares 5
    ape run spv recover-wallet  ... --spv 1 --lost 0x... --new 0x...   (RECOVERY_ROLE)

Every command prints what it did (tx hash, gas, new state) and fails with a clear
message on bad input, before sending anything. Share movements are checked first with
the token's own ERC-1404 `detectTransferRestriction`; a refusal prints the message a
wallet shows and the legal citations from the rules data. `--skip-checks` sends anyway,
to see the contract refuse with the same message.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand

from gpushares.fleet import FleetCSVError, bytes32_text, load_fleet_csv
from jurisdictions.codes import Restriction, TitleStatus
from jurisdictions.engine import check_gpu_location
from jurisdictions.rules import RuleBook, RulesError, load_rules
from scripts._lib import (
    ZERO_ADDRESS,
    account_option,
    checksum_address,
    erc20,
    factory,
    fmt_units,
    load_deployments,
    registry,
    require_account,
    restriction,
    share_token,
    to_base_units,
    transact,
)

SHARE_DECIMALS = 18
BATCH = 64
STATUS_NAMES = {1: "active", 2: "impaired", 4: "retired"}

spv_option = click.option("--spv", "spv_id", type=int, required=True, help="SPV id (1, 2, ...).")
skip_checks_option = click.option(
    "--skip-checks", is_flag=True,
    help="Send even if the pre-checks refuse (to see the contract's own refusal).",
)


def _rules() -> RuleBook | None:
    try:
        return load_rules()
    except RulesError as exc:
        click.echo(f"  (rules data unreadable, no citations: {exc})")
        return None


def _echo_citations(citations) -> None:
    for citation in citations:
        click.echo(f"    - {citation}")


def _explain_refusal(reg, token, receiver: str, code: int, message: str) -> None:
    """Print a refused movement as a wallet shows it, plus the law behind it."""
    click.echo(f"  refused (ERC-1404 code {code} {Restriction(code).name}): {message}")
    rules = _rules()
    if rules is None:
        return
    if code == Restriction.ASSET_TITLE_NOT_RECOGNISED:
        for location in reg.asset_locations(token.address):
            rule = rules.get(int(location))
            if rule is not None:
                click.echo(f"  {rule.name} ({rule.alpha2}): title {rule.title_recognition}")
                _echo_citations(rule.citations)
    elif code in (Restriction.RECEIVER_JURISDICTION_BLOCKED, Restriction.RECEIVER_NOT_ACCREDITED):
        rule = rules.get(int(reg.investor(receiver).jurisdiction))
        if rule is not None:
            click.echo(f"  receiver resident in {rule.name} ({rule.alpha2}): holder policy "
                       f"{rule.holder_policy}{', sanctioned' if rule.sanctioned else ''}")
            _echo_citations(rule.citations)


@click.group()
def cli():
    """Operate an SPV: create it, register GPUs, mint shares, distribute income."""


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--name", "legal_name", required=True, help="Registered legal name of the SPV.")
@click.option(
    "--jurisdiction",
    type=click.IntRange(1, 999),
    required=True,
    help="Jurisdiction of incorporation, ISO 3166-1 numeric (e.g. 840 US, 442 LU).",
)
@click.option("--lei", required=True, help="20-character ISO 17442 Legal Entity Identifier.")
@click.option(
    "--documents",
    "documents",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Legal documents file; its SHA-256 is recorded on-chain.",
)
@click.option("--documents-hash", help="0x-prefixed 32-byte hash, instead of --documents.")
@click.option("--token-name", required=True, help="Share token name (at most 25 characters).")
@click.option("--symbol", required=True, help="Share token symbol (at most 5 characters).")
@click.option(
    "--shares-per-gpu",
    required=True,
    help="Whole shares backed by each GPU (decimals allowed, 18 max).",
)
@click.option("--income-token", help="Stablecoin address; defaults to the deployment's.")
def create(
    provider,
    account,
    legal_name,
    jurisdiction,
    lei,
    documents,
    documents_hash,
    token_name,
    symbol,
    shares_per_gpu,
    income_token,
):
    """Register an SPV and deploy its share token."""
    operator = require_account(account)
    deployed = load_deployments(provider)
    spv_factory = factory(deployed)

    if (documents is None) == (documents_hash is None):
        raise click.UsageError("pass exactly one of --documents FILE or --documents-hash 0x...")
    if documents is not None:
        digest = hashlib.sha256(documents.read_bytes()).digest()
    else:
        try:
            digest = bytes.fromhex(documents_hash.removeprefix("0x"))
        except ValueError as exc:
            raise click.BadParameter(f"--documents-hash {documents_hash!r} is not hex") from exc
        if len(digest) != 32:
            raise click.BadParameter("--documents-hash must be 32 bytes (64 hex digits)")
    if not 0 < len(legal_name) <= 100:
        raise click.BadParameter("--name must be 1 to 100 characters")
    if not 0 < len(token_name) <= 25:
        raise click.BadParameter("--token-name must be 1 to 25 characters")
    if not 0 < len(symbol) <= 5:
        raise click.BadParameter("--symbol must be 1 to 5 characters")
    if len(lei) != 20 or not spv_factory.is_valid_lei(lei):
        raise click.BadParameter(f"--lei {lei!r} is not a valid LEI (20 characters, check digits)")
    per_gpu = to_base_units(shares_per_gpu, SHARE_DECIMALS, "--shares-per-gpu")
    stable = (
        checksum_address(income_token, "--income-token") if income_token
        else deployed.income_token
    )
    if not spv_factory.hasRole(spv_factory.OPERATOR_ROLE(), operator.address):
        raise click.ClickException(
            f"{operator.address} lacks the factory's OPERATOR_ROLE; ask the factory admin "
            "to grant it (ape run deploy --operator ADDR grants it at deployment)"
        )

    receipt = transact(
        "create SPV",
        spv_factory.create_spv,
        legal_name,
        jurisdiction,
        lei,
        digest,
        token_name,
        symbol,
        per_gpu,
        stable,
        sender=operator,
    )
    event = next(iter(spv_factory.SPVRegistered.from_receipt(receipt)))
    click.echo(f"SPV {event.spv_id}: {legal_name} (LEI {lei}, jurisdiction {jurisdiction})")
    click.echo(f"  share token {token_name} ({symbol}) at {event.token}")
    click.echo(f"  documents sha256 0x{digest.hex()}")
    click.echo(f"  {shares_per_gpu} shares per GPU, income paid in {stable}")


@cli.command("add-gpus", cls=ConnectedProviderCommand)
@account_option()
@spv_option
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Fleet CSV (see examples/fleet-h100.csv for the columns).",
)
@skip_checks_option
def add_gpus(provider, account, spv_id, csv_path, skip_checks):
    """Register the GPUs listed in a fleet CSV (refused where title is not recognised)."""
    operator = require_account(account)
    deployed = load_deployments(provider)
    token = share_token(deployed, spv_id)
    reg = registry(deployed)
    try:
        rows = load_fleet_csv(csv_path)
    except FleetCSVError as exc:
        raise click.ClickException(f"fleet CSV rejected, nothing sent:\n{exc}") from exc
    known = [row for row in rows if token.gpu_id_of_serial(row.serial_hash) != 0]
    if known:
        serials = ", ".join(row.serial for row in known)
        raise click.ClickException(f"already registered on SPV {spv_id}, nothing sent: {serials}")
    refused = []
    lei = factory(deployed).spvs(spv_id).lei
    rules = None
    for location in sorted({row.location_iso3166_numeric for row in rows}):
        title, _policy, _hash = reg.jurisdiction(location)
        # The registry's own rule: recognised, or unclear with an override in force.
        if title == TitleStatus.RECOGNISED or reg.title_override_in_force(token.address, location):
            continue
        rules = rules or _rules()
        if rules is not None:
            decision = check_gpu_location(location, str(lei), rules=rules)
            reason = decision.message
            citations = decision.citations
        else:
            reason, citations = f"location {location}: title not recognised", ()
        serials = [row.serial for row in rows if row.location_iso3166_numeric == location]
        click.echo(f"  GPU(s) {', '.join(serials)} at location {location}: {reason}")
        _echo_citations(citations)
        refused.append(location)
    if refused and not skip_checks:
        raise click.ClickException(
            "tokenized title to GPUs in location(s) "
            f"{', '.join(map(str, refused))} is not recognised (see above), nothing sent"
        )
    latest = provider.get_block("latest").timestamp
    future = [row for row in rows if row.commissioned_at.timestamp() > latest]
    if future:
        raise click.ClickException(
            "commissioning time after the chain's clock for serial(s) "
            + ", ".join(row.serial for row in future)
        )
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        transact(
            f"add {len(batch)} GPU(s)",
            token.add_gpus,
            [row.onchain() for row in batch],
            sender=operator,
        )
    click.echo(
        f"SPV {spv_id}: {token.gpu_count()} GPUs registered, {token.active_gpus()} active; "
        f"mint cap now {fmt_units(token.backing()[0], SHARE_DECIMALS)} shares"
    )


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@spv_option
@click.option("--to", "receiver", required=True, help="Receiving address.")
@click.option("--shares", required=True, help="Whole shares to mint (decimals allowed).")
def mint(provider, account, spv_id, receiver, shares):
    """Mint new shares within the active GPUs' backing."""
    operator = require_account(account)
    deployed = load_deployments(provider)
    token = share_token(deployed, spv_id)
    to = checksum_address(receiver, "--to")
    amount = to_base_units(shares, SHARE_DECIMALS, "--shares")
    cap = token.backing()[0]
    supply = token.totalSupply()
    if supply + amount > cap:
        raise click.ClickException(
            f"minting {shares} would exceed the active GPUs' backing: supply "
            f"{fmt_units(supply, SHARE_DECIMALS)} of {fmt_units(cap, SHARE_DECIMALS)} cap"
        )
    code, message = restriction(token, ZERO_ADDRESS, to, amount)
    if code:
        _explain_refusal(registry(deployed), token, to, code, message)
        raise click.ClickException(f"mint refused, nothing sent: {message}")
    transact(f"mint {shares} shares to {to}", token.mint, to, amount, sender=operator)
    click.echo(
        f"SPV {spv_id}: {to} holds {fmt_units(token.balanceOf(to), SHARE_DECIMALS)} shares; "
        f"supply {fmt_units(token.totalSupply(), SHARE_DECIMALS)} of "
        f"{fmt_units(cap, SHARE_DECIMALS)}"
    )


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@spv_option
@click.option("--shares", required=True, help="Whole shares to burn from the operator's balance.")
def burn(provider, account, spv_id, shares):
    """Burn shares the SPV holds (bought back), e.g. before retiring a GPU."""
    operator = require_account(account)
    token = share_token(load_deployments(provider), spv_id)
    amount = to_base_units(shares, SHARE_DECIMALS, "--shares")
    held = token.balanceOf(operator.address)
    if amount > held:
        raise click.ClickException(
            f"{operator.address} holds only {fmt_units(held, SHARE_DECIMALS)} shares"
        )
    transact(f"burn {shares} shares", token.burn, amount, sender=operator)
    click.echo(f"SPV {spv_id}: supply now {fmt_units(token.totalSupply(), SHARE_DECIMALS)}")


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@spv_option
@click.option("--amount", required=True, help="Income in stablecoin (e.g. 11520.00).")
def distribute(provider, account, spv_id, amount):
    """Pay rental income to all holders, pro rata (approves the token if needed)."""
    operator = require_account(account)
    token = share_token(load_deployments(provider), spv_id)
    stable = erc20(token.income_token())
    decimals = stable.decimals()
    units = to_base_units(amount, decimals, "--amount")
    if token.totalSupply() == 0:
        raise click.ClickException(f"SPV {spv_id} has no shares outstanding to receive income")
    balance = stable.balanceOf(operator.address)
    if balance < units:
        raise click.ClickException(
            f"{operator.address} holds {fmt_units(balance, decimals)} {stable.symbol()}, "
            f"less than {amount}"
        )
    if stable.allowance(operator.address, token.address) < units:
        transact("approve income token", stable.approve, token.address, units, sender=operator)
    transact(f"distribute {amount} {stable.symbol()}", token.distribute, units, sender=operator)
    click.echo(
        f"SPV {spv_id}: {fmt_units(token.total_distributed(), decimals)} distributed in all, "
        f"{fmt_units(token.total_claimed(), decimals)} claimed"
    )


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@spv_option
def claim(provider, account, spv_id):
    """Claim the rental income the caller's shares have earned."""
    holder = require_account(account)
    token = share_token(load_deployments(provider), spv_id)
    stable = erc20(token.income_token())
    decimals = stable.decimals()
    owed = token.claimable(holder.address)
    if owed == 0:
        raise click.ClickException(f"{holder.address} has nothing to claim on SPV {spv_id}")
    transact(f"claim {fmt_units(owed, decimals)} {stable.symbol()}", token.claim, sender=holder)
    click.echo(
        f"{holder.address} now holds {fmt_units(stable.balanceOf(holder.address), decimals)} "
        f"{stable.symbol()}"
    )


def _gpu_status_change(provider, account, spv_id, gpu_id, action):
    operator = require_account(account)
    token = share_token(load_deployments(provider), spv_id)
    count = token.gpu_count()
    if gpu_id < 1 or gpu_id > count:
        raise click.ClickException(f"unknown GPU id {gpu_id}: SPV {spv_id} has GPUs 1..{count}")
    status = STATUS_NAMES.get(token.gpus(gpu_id).status, "unknown")
    if action == "impair":
        if status != "active":
            raise click.ClickException(
                f"GPU {gpu_id} is {status}: only an active GPU can be impaired"
            )
        call = token.impair_gpu
    else:
        if status == "retired":
            raise click.ClickException(f"GPU {gpu_id} is already retired")
        remaining = token.active_gpus() + token.impaired_gpus() - 1
        supply, per_gpu = token.totalSupply(), token.shares_per_gpu()
        if supply > remaining * per_gpu:
            excess = supply - remaining * per_gpu
            raise click.ClickException(
                f"retiring GPU {gpu_id} would leave {fmt_units(supply, SHARE_DECIMALS)} shares "
                f"backed by {remaining} GPU(s) ({fmt_units(remaining * per_gpu, SHARE_DECIMALS)}"
                f" shares): buy back and burn {fmt_units(excess, SHARE_DECIMALS)} shares first "
                "(`ape run spv burn`)"
            )
        call = token.retire_gpu
    transact(f"{action} GPU {gpu_id}", call, gpu_id, sender=operator)
    status = STATUS_NAMES.get(token.gpus(gpu_id).status, "unknown")
    click.echo(
        f"SPV {spv_id}: GPU {gpu_id} is {status}; {token.active_gpus()} active, "
        f"{token.impaired_gpus()} impaired"
    )


@cli.command("impair-gpu", cls=ConnectedProviderCommand)
@account_option()
@spv_option
@click.option("--gpu", "gpu_id", type=int, required=True, help="GPU id (see status).")
def impair_gpu(provider, account, spv_id, gpu_id):
    """Mark an active GPU impaired (it no longer backs new mints)."""
    _gpu_status_change(provider, account, spv_id, gpu_id, "impair")


@cli.command("retire-gpu", cls=ConnectedProviderCommand)
@account_option()
@spv_option
@click.option("--gpu", "gpu_id", type=int, required=True, help="GPU id (see status).")
def retire_gpu(provider, account, spv_id, gpu_id):
    """Retire a GPU; burn shares first if the supply would exceed the remaining backing."""
    _gpu_status_change(provider, account, spv_id, gpu_id, "retire")


@cli.command(cls=ConnectedProviderCommand)
@click.option("--spv", "spv_id", type=int, help="One SPV; all SPVs when omitted.")
@click.option("--holder", "holders", multiple=True, help="Show this holder's position too.")
def status(provider, spv_id, holders):
    """Show the SPVs, their GPUs, supply, backing and income."""
    deployed = load_deployments(provider)
    spv_factory = factory(deployed)
    count = spv_factory.spv_count()
    click.echo(f"SPVFactory {spv_factory.address}: {count} SPV(s)")
    ids = [spv_id] if spv_id is not None else list(range(1, count + 1))
    for sid in ids:
        token = share_token(deployed, sid)
        record = spv_factory.spvs(sid)
        stable = erc20(token.income_token())
        decimals = stable.decimals()
        symbol = stable.symbol()
        mint_cap, backed = token.backing()
        click.echo(f"\nSPV {sid}: {record.legal_name}")
        click.echo(
            f"  LEI {record.lei}, jurisdiction {record.jurisdiction}, "
            f"operator {record.operator}"
        )
        click.echo(f"  documents 0x{bytes(record.documents_hash).hex()}")
        click.echo(f"  token {token.name()} ({token.symbol()}) at {token.address}")
        click.echo(
            f"  supply {fmt_units(token.totalSupply(), SHARE_DECIMALS)} shares; mint cap "
            f"{fmt_units(mint_cap, SHARE_DECIMALS)}; backing {fmt_units(backed, SHARE_DECIMALS)}"
            f"{'; PAUSED' if token.paused() else ''}"
        )
        click.echo(
            f"  income: {fmt_units(token.total_distributed(), decimals)} {symbol} distributed, "
            f"{fmt_units(token.total_claimed(), decimals)} claimed"
        )
        click.echo(
            f"  GPUs: {token.gpu_count()} registered, {token.active_gpus()} active, "
            f"{token.impaired_gpus()} impaired"
        )
        for gpu_id in range(1, token.gpu_count() + 1):
            gpu = token.gpus(gpu_id)
            click.echo(
                f"    #{gpu_id:<3} {bytes32_text(gpu.model):<16} "
                f"{bytes32_text(gpu.datacenter):<14} "
                f"loc {gpu.location:<3} cost ${fmt_units(gpu.acquisition_cost, 8):>10} "
                f"{STATUS_NAMES.get(gpu.status, '?')}"
            )
        for holder in holders:
            who = checksum_address(holder, "--holder")
            click.echo(
                f"  holder {who}: {fmt_units(token.balanceOf(who), SHARE_DECIMALS)} shares, "
                f"claimable {fmt_units(token.claimable(who), decimals)} {symbol}"
            )
    if spv_id is None and count == 0:
        click.echo("  (none yet: `ape run spv create ...`)")


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@spv_option
@click.option("--to", "receiver", required=True, help="Receiving address.")
@click.option("--shares", required=True, help="Shares to transfer (decimals allowed).")
@skip_checks_option
def transfer(provider, account, spv_id, receiver, shares, skip_checks):
    """Transfer shares from the account to another eligible holder."""
    holder = require_account(account)
    deployed = load_deployments(provider)
    token = share_token(deployed, spv_id)
    to = checksum_address(receiver, "--to")
    amount = to_base_units(shares, SHARE_DECIMALS, "--shares")
    code, message = restriction(token, holder.address, to, amount)
    if code:
        _explain_refusal(registry(deployed), token, to, code, message)
        if not skip_checks:
            raise click.ClickException(f"transfer refused, nothing sent: {message}")
    transact(f"transfer {shares} shares to {to}", token.transfer, to, amount, sender=holder)
    click.echo(f"SPV {spv_id}: {to} holds {fmt_units(token.balanceOf(to), SHARE_DECIMALS)} shares")


@cli.command("freeze-shares", cls=ConnectedProviderCommand)
@account_option()
@spv_option
@click.option("--holder", required=True, help="Holder whose shares to freeze.")
@click.option("--shares", required=True, help="Frozen amount to set (0 unfreezes).")
def freeze_shares(provider, account, spv_id, holder, shares):
    """Set how many of a holder's shares are frozen (agent with FREEZER_ROLE)."""
    agent = require_account(account)
    token = share_token(load_deployments(provider), spv_id)
    who = checksum_address(holder, "--holder")
    amount = 0 if shares.strip() == "0" else to_base_units(shares, SHARE_DECIMALS, "--shares")
    if not token.hasRole(token.FREEZER_ROLE(), agent.address):
        raise click.ClickException(f"{agent.address} lacks FREEZER_ROLE on this token")
    transact(f"freeze {shares} shares of {who}", token.setFrozenTokens, who, amount, sender=agent)


@cli.command("forced-transfer", cls=ConnectedProviderCommand)
@account_option()
@spv_option
@click.option("--from", "sender", required=True, help="Holder losing shares.")
@click.option("--to", "receiver", required=True, help="Eligible receiver.")
@click.option("--shares", required=True, help="Shares to move.")
def forced_transfer(provider, account, spv_id, sender, receiver, shares):
    """Move shares without the holder's consent (agent with FORCED_TRANSFER_ROLE).

    Bypasses the pause, the title stop, the sender's eligibility and freezes; never the
    receiver's eligibility or the sender's balance."""
    agent = require_account(account)
    deployed = load_deployments(provider)
    token = share_token(deployed, spv_id)
    src, dst = checksum_address(sender, "--from"), checksum_address(receiver, "--to")
    amount = to_base_units(shares, SHARE_DECIMALS, "--shares")
    code = int(registry(deployed).check_receiver(dst))
    if code:
        message = token.messageForTransferRestriction(code)
        _explain_refusal(registry(deployed), token, dst, code, message)
        raise click.ClickException(f"forced transfer refused, nothing sent: {message}")
    transact(f"forced transfer of {shares} shares {src} -> {dst}", token.forcedTransfer, src,
             dst, amount, sender=agent)


@cli.command("recover-wallet", cls=ConnectedProviderCommand)
@account_option()
@spv_option
@click.option("--lost", required=True, help="Wallet whose keys were lost.")
@click.option("--new", "new_wallet", required=True, help="The holder's new, eligible wallet.")
def recover_wallet(provider, account, spv_id, lost, new_wallet):
    """Move a lost wallet's shares, income and freezes to a new wallet (RECOVERY_ROLE)."""
    agent = require_account(account)
    deployed = load_deployments(provider)
    token = share_token(deployed, spv_id)
    old, new = checksum_address(lost, "--lost"), checksum_address(new_wallet, "--new")
    code = int(registry(deployed).check_receiver(new))
    if code:
        message = token.messageForTransferRestriction(code)
        raise click.ClickException(f"recovery refused, nothing sent: {message}")
    transact(f"recover {old} -> {new}", token.recover_wallet, old, new, sender=agent)
