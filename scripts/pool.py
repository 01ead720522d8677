"""Lending pools: create and run a market (operator), supply, borrow, repay (users).

    ape run pool create   --account A --spv 1 [--feed F] [--asset A] [--lltv 80] [--max-ltv 70]
                          [--reserve-factor 10] [--treasury A] [--base-rate 2 --slope1 10
                          --slope2 300 --kink 80] [--name N --symbol S]
    ape run pool set      --account A --pool 1 [--max-ltv P] [--reserve-factor P] [--treasury A]
                          [--pause | --unpause]
    ape run pool status   [--pool 1] [--near 5]
    ape run pool supply              --account L --pool 1 --amount 50000
    ape run pool withdraw            --account L --pool 1 (--amount X | --all)
    ape run pool deposit-collateral  --account B --pool 1 --shares 1000 [--for 0x...]
    ape run pool withdraw-collateral --account B --pool 1 (--shares X | --all) [--to 0x...]
    ape run pool borrow              --account B --pool 1 --amount 10000
    ape run pool repay               --account B --pool 1 (--amount X | --all)
    ape run pool claim-income        --account B --pool 1
    ape run pool mint-mock           --account DEPLOYER --to 0x... --amount 100000  (local)

Percentages in percent (`--lltv 80`), rates annual. Every command checks first what the
pool would refuse and says so with its message, sending nothing (`--skip-checks` sends
anyway). The logic lives in `gpushares.client.pool`; this file parses and prints.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand

from gpushares.client import markets, units
from gpushares.client import pool as lend
from scripts._lib import (
    account_option,
    address_option,
    connect,
    echo_receipt,
    execute,
    handled,
    require_account,
)

pool_option = click.option("--pool", "number", type=click.IntRange(min=1), required=True,
                           help="Market number (1, 2, ...; see `ape run pool status`).")
skip_checks_option = click.option("--skip-checks", is_flag=True, help="Send even if refused.")


def _act(provider, account, number: int, plan, report, skip_checks: bool = False,
         one_of: tuple = ()) -> None:
    """Plan, send, report (`one_of`: value, --all flag, option: exactly one given)."""
    if one_of and (one_of[0] is None) == (not one_of[1]):
        raise click.UsageError(f"pass exactly one of {one_of[2]} X or --all")
    signer = require_account(account)
    client = connect(provider)
    with handled():
        made = plan(client, lend.market(client, number), signer.address)
        done = lend.outcome(client, number, execute(client, made, signer,
                                                    skip_checks=skip_checks))
        click.echo(report(lend.market(client, number), done,
                          lend.position(client, number, signer.address)))


@click.group()
def cli():
    """Create and run lending markets against GPU shares; supply, borrow, repay."""


CREATE_OPTIONS = (
    ("--feed", None, "Oracle hub feed pricing one share (default NAV/<token symbol>/USD)."),
    ("--asset", None, "Loan asset (default: the deployment's stablecoin)."),
    ("--lltv", "80", "Liquidation LTV, percent."),
    ("--max-ltv", "70", "Max LTV to borrow, percent."),
    ("--reserve-factor", "10", "Share of the interest kept as reserves, percent."),
    ("--treasury", None, "Receiver of the reserves (default: the account)."),
    ("--base-rate", "2", "Annual borrow rate at zero utilisation, percent."),
    ("--slope1", "10", "Annual rate added up to the kink, percent."),
    ("--slope2", "300", "Annual rate added from the kink to full utilisation, percent."),
    ("--kink", "80", "Utilisation of the kink, percent."),
    ("--name", None, "Vault share name, at most 25 characters (default GPU Lend <token>/<asset>)."),
    ("--symbol", None, "Vault share symbol, at most 5 characters (default l<token>)."),
    ("--jurisdiction", "840", "Where the pool is registered as a holder (alpha-2 or numeric)."),
)


def create_options(func):
    for name, default, text in reversed(CREATE_OPTIONS):
        option = address_option if name in ("--asset", "--treasury") else click.option
        func = option(name, default=default, show_default=default is not None, help=text)(func)
    return func


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--spv", "spv_id", type=int, required=True, help="SPV whose shares are collateral.")
@create_options
def create(provider, account, spv_id, **terms):
    """Deploy a rate model and a lending pool for an SPV's shares; register the pool."""
    creator = require_account(account)
    client = connect(provider)
    with handled():
        made = lend.create_market(client, creator,
                                  lend.market_terms(client, creator.address, spv_id, **terms),
                                  on_receipt=echo_receipt)
    click.echo("\n".join(made.lines(provider.network_choice)))


@cli.command("set", cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--max-ltv", default=None, help="New max LTV to borrow, percent.")
@click.option("--reserve-factor", default=None, help="New reserve factor, percent.")
@address_option("--treasury", default=None, help="New receiver of the reserves.")
@click.option("--pause/--unpause", "pause", default=None, help="Stop (or resume) borrowing.")
def set_(provider, account, number, max_ltv, reserve_factor, treasury, pause):
    """Change a market's risk parameters (unchanged ones are kept) or pause it."""
    admin, client = require_account(account), connect(provider)
    with handled():
        execute(client, lend.plan_set(client, admin.address, number, max_ltv=max_ltv,
                                      treasury=treasury, reserve_factor=reserve_factor,
                                      paused=pause), admin)
        click.echo(lend.market(client, number).risk_line())


@cli.command(cls=ConnectedProviderCommand)
@click.option("--pool", "number", type=click.IntRange(min=1), default=None,
              help="One market; all markets when omitted.")
@click.option("--near", default="5", show_default=True, help="Flag loans this close to the LLTV.")
def status(provider, number, near):
    """Markets: parameters, price, rates, totals and every loan with its LTV."""
    client = connect(provider)
    with handled():
        near_wad = units.percent_to_wad(units.parse_percent(near, "--near", allow_zero=True),
                                        "--near")
        numbers = lend.numbers(client, number)
        click.echo("\n".join(lend.factory_lines(client)))
        for n in numbers:
            click.echo("\n" + "\n".join(lend.market(client, n).lines()
                                        + lend.loans(client, n).lines(near_wad)))


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--amount", required=True, help="Loan asset to supply (e.g. 50000).")
def supply(provider, account, number, amount):
    """Supply the loan asset and receive vault shares (ERC-4626 deposit)."""
    _act(provider, account, number,
         lambda c, v, who: lend.plan_supply(c, who, number, v.asset.parse(amount, "--amount")),
         lambda v, done, me: f"{me.account}: +{units.fmt_units(done.minted, v.vault_decimals)} "
         f"vault shares, now worth {v.asset.fmt(me.supplied_value)}; market {number} total "
         f"supplied {v.asset.fmt(v.total_supplied)}")


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--amount", default=None, help="Loan asset to withdraw.")
@click.option("--all", "everything", is_flag=True, help="Redeem every vault share.")
@skip_checks_option
def withdraw(provider, account, number, amount, everything, skip_checks):
    """Withdraw supplied assets (needs idle liquidity: lent assets return on repayment)."""
    _act(provider, account, number,
         lambda c, v, who: lend.plan_withdraw(
             c, who, number, None if everything else v.asset.parse(amount, "--amount")),
         lambda v, done, me: f"{me.account}: received {v.asset.fmt(done.withdrawn)}; vault "
         f"shares left worth {v.asset.fmt(me.supplied_value)}", skip_checks,
         (amount, everything, "--amount"))


@cli.command("deposit-collateral", cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--shares", required=True, help="GPU shares to post as collateral.")
@address_option("--for", "on_behalf", default=None, help="Credit another wallet's position "
                "(a transfer to it: it must be allowed to hold the shares).")
@skip_checks_option
def deposit_collateral(provider, account, number, shares, on_behalf, skip_checks):
    """Post GPU shares as collateral (they keep earning income for the borrower)."""
    _act(provider, account, number,
         lambda c, v, who: lend.plan_deposit_collateral(
             c, who, number, v.collateral.parse(shares, "--shares"), on_behalf=on_behalf),
         lambda v, done, me: me.describe(), skip_checks)


@cli.command("withdraw-collateral", cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--shares", default=None, help="GPU shares to take back.")
@click.option("--all", "everything", is_flag=True, help="All the collateral (needs no debt).")
@address_option("--to", "receiver", default=None,
                help="Send the shares to another wallet (a transfer to it, of that amount).")
@skip_checks_option
def withdraw_collateral(provider, account, number, shares, everything, receiver, skip_checks):
    """Take collateral back; with debt the loan must stay within the max LTV."""
    _act(provider, account, number,
         lambda c, v, who: lend.plan_withdraw_collateral(
             c, who, number, None if everything else v.collateral.parse(shares, "--shares"),
             receiver=receiver),
         lambda v, done, me: f"{me.describe()}; wallet {v.collateral.fmt(me.wallet_shares)}",
         skip_checks, (shares, everything, "--shares"))


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--amount", required=True, help="Loan asset to borrow.")
@skip_checks_option
def borrow(provider, account, number, amount, skip_checks):
    """Borrow against the posted collateral, up to the max LTV."""
    _act(provider, account, number,
         lambda c, v, who: lend.plan_borrow(c, who, number, v.asset.parse(amount, "--amount")),
         lambda v, done, me: me.describe(), skip_checks)


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--amount", default=None, help="Loan asset to repay.")
@click.option("--all", "everything", is_flag=True, help="Repay the whole debt.")
def repay(provider, account, number, amount, everything):
    """Repay debt (always works: paused or stale price)."""
    _act(provider, account, number,
         lambda c, v, who: lend.plan_repay(
             c, who, number, None if everything else v.asset.parse(amount, "--amount")),
         lambda v, done, me: f"{me.account}: repaid {v.asset.fmt(done.repaid)}; debt now "
         f"{v.asset.fmt(me.debt)}", one_of=(amount, everything, "--amount"))


@cli.command("claim-income", cls=ConnectedProviderCommand)
@account_option()
@pool_option
def claim_income(provider, account, number):
    """Claim the rental income the borrower's collateral earned while in the pool."""
    _act(provider, account, number,
         lambda c, v, who: lend.plan_claim_income(c, who, number),
         lambda v, done, me: f"{me.account}: received {v.income.fmt(done.income_claimed)}; now "
         f"holds {v.income.fmt(me.wallet_income)}")


@cli.command("mint-mock", cls=ConnectedProviderCommand)
@account_option()
@address_option("--to", "receiver", required=True, help="Receiving address.")
@click.option("--amount", required=True, help="Mock stablecoin to mint (e.g. 100000).")
def mint_mock(provider, account, receiver, amount):
    """Mint the local mock stablecoin (local chains only; the deployer mints)."""
    minter = require_account(account)
    client = connect(provider)
    with handled():
        stable = markets.token(client, client.deployed.income_token)
        execute(client, lend.plan_mint_mock(client, minter.address, receiver,
                                            stable.parse(amount, "--amount")), minter)
        held = client.erc20(stable.address).balanceOf(receiver)
        click.echo(f"{receiver} holds {stable.fmt(held)}")
