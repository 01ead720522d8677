"""Perpetual futures on a GPU-hour index: run a market (operator), trade, fund insurance.

    ape run perp create  --account A --feed H100-SXM-80GB/USD/GPUh [--asset ADDR] [RISK]
                         [--fee-recipient ADDR] [--insurance X]
    ape run perp set     --account A --market 1 [RISK] [--fee-recipient ADDR] [--pause|--unpause]
    ape run perp status  [--market 1]
    ape run perp deposit  --account T --market 1 --amount 1000
    ape run perp withdraw --account T --market 1 (--amount X | --all)
    ape run perp open     --account T --market 1 (--long GPUH | --short GPUH) [--margin X]
                          [--slippage 1] [--skip-checks]
    ape run perp close    --account T --market 1 [--slippage 1] [--withdraw] [--skip-checks]
    ape run perp fund-insurance --account A --market 1 --amount X
    ape run perp collect-fees   --account ANY --market 1

RISK: --skew-scale --max-long-oi --max-short-oi --max-leverage --maintenance-margin
--taker-fee --maker-fee --liquidation-fee --min-keeper-fee --max-funding-velocity
--max-funding-rate (`--help` gives defaults and units). Every command checks first what
the market would refuse and says so with its message, sending nothing (`--skip-checks`
sends anyway). The logic lives in `gpushares.client.perp`; this file parses and prints.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand

from gpushares.client import perp as perps
from gpushares.client.markets import token
from scripts._lib import (
    account_option,
    address_option,
    connect,
    execute,
    handled,
    require_account,
)

market_option = click.option("--market", "number", type=click.IntRange(min=1), required=True,
                             help="Market number (1, 2, ...; see `ape run perp status`).")
skip_checks_option = click.option("--skip-checks", is_flag=True,
                                  help="Send even if the pre-checks refuse.")
slippage_option = click.option("--slippage", default="1", show_default=True,
                               help="Worst fill accepted, percent away from the current fill.")


def risk_options(defaults: bool):
    """The risk parameter options of `create` (with defaults) and `set` (without)."""
    def decorate(func):
        for name, (default, text) in reversed(perps.RISK_OPTIONS.items()):
            func = click.option(f"--{name.replace('_', '-')}", default=default if defaults
                                else None, show_default=defaults, help=text)(func)
        return func
    return decorate


def _sent(client, number: int, plan, signer, skip_checks: bool = False,
          asset=None) -> perps.Outcome:
    """Send `plan`; with `asset`, print its fills."""
    done = perps.outcome(client, number, execute(client, plan, signer, skip_checks=skip_checks))
    for fill in done.fills if asset is not None else ():
        click.echo(f"  {fill.describe(asset)}")
    return done


@click.group()
def cli():
    """Perpetual futures on a GPU-hour index: markets, margin, trades, insurance."""


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--feed", required=True, help="Oracle hub index feed, e.g. H100-SXM-80GB/USD/GPUh.")
@address_option("--asset", default=None, help="Margin stablecoin (default: the deployment's).")
@risk_options(defaults=True)
@address_option("--fee-recipient", default=None, help="Fee receiver (default: the account).")
@click.option("--insurance", default=None, help="Stablecoin to seed the insurance fund with.")
@skip_checks_option
def create(provider, account, feed, asset, fee_recipient, insurance, skip_checks, **risk):
    """Deploy a perpetual market on an index feed; optionally seed its insurance fund."""
    creator = require_account(account)
    client = connect(provider)
    with handled():
        stable = token(client, asset or client.deployed.income_token)
        seed = stable.parse(insurance, "--insurance") if insurance is not None else 0
        plan = perps.plan_create(client, creator.address, feed,
                                 perps.risk_params(stable.decimals, **risk), insurance=seed,
                                 asset=asset, fee_recipient=fee_recipient)
        number, _ = perps.created(client, execute(client, plan, creator,
                                                      skip_checks=skip_checks)[-1])
        click.echo("\n".join(perps.market(client, number).created_lines(creator.address)))
        if seed:
            _sent(client, number, perps.plan_fund_insurance(client, creator.address, number,
                                                            seed), creator)
            click.echo(f"  insurance fund {stable.fmt(perps.market(client, number).insurance)}")


@cli.command("set", cls=ConnectedProviderCommand)
@account_option()
@market_option
@risk_options(defaults=False)
@address_option("--fee-recipient", default=None, help="New receiver of the trading fees.")
@click.option("--pause/--unpause", "pause", default=None, help="Stop (or resume) new risk.")
@skip_checks_option
def set_(provider, account, number, fee_recipient, pause, skip_checks, **risk):
    """Change a market's risk parameters (unchanged ones are kept), fee recipient or pause."""
    admin = require_account(account)
    client = connect(provider)
    with handled():
        plan = perps.plan_set(client, admin.address, number, paused=pause,
                              fee_recipient=fee_recipient, **risk)
        execute(client, plan, admin, skip_checks=skip_checks)
        click.echo("\n".join(perps.market(client, number).risk_lines()))


@cli.command(cls=ConnectedProviderCommand)
@click.option("--market", "number", type=click.IntRange(min=1), default=None,
              help="One market; all markets when omitted.")
def status(provider, number):
    """Markets: index, open interest, funding, insurance and every position."""
    client = connect(provider)
    with handled():
        numbers = perps.numbers(client, number)
        click.echo("\n".join(perps.factory_lines(client)))
        for n in numbers:
            view = perps.market(client, n)
            shown = perps.position_lines(perps.positions(client, n), view.index.fresh)
            click.echo("\n" + "\n".join(view.lines() + shown))


@cli.command("deposit", cls=ConnectedProviderCommand)
@account_option()
@market_option
@click.option("--amount", required=True, help="Stablecoin to deposit as margin.")
def deposit(provider, account, number, amount):
    """Deposit margin (always works: paused or stale index)."""
    trader = require_account(account)
    client = connect(provider)
    with handled():
        units_ = perps.market(client, number).asset.parse(amount, "--amount")
        _sent(client, number, perps.plan_deposit(client, trader.address, number, units_), trader)
        click.echo(perps.position(client, number, trader.address).describe())


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@market_option
@click.option("--amount", default=None, help="Stablecoin to withdraw.")
@click.option("--all", "everything", is_flag=True, help="All that can be withdrawn now.")
@skip_checks_option
def withdraw(provider, account, number, amount, everything, skip_checks):
    """Withdraw margin; with a position what stays must cover the initial margin."""
    trader = require_account(account)
    if (amount is None) == (not everything):
        raise click.UsageError("pass exactly one of --amount X or --all")
    client = connect(provider)
    with handled():
        asset = perps.market(client, number).asset
        plan = perps.plan_withdraw(client, trader.address, number,
                                   None if everything else asset.parse(amount, "--amount"))
        done = _sent(client, number, plan, trader, skip_checks)
        click.echo(f"{trader.address}: received {asset.fmt(done.withdrawn)}")
        click.echo(perps.position(client, number, trader.address).describe())


@cli.command("open", cls=ConnectedProviderCommand)
@account_option()
@market_option
@click.option("--long", "long_size", default=None, help="GPU-hours to buy.")
@click.option("--short", "short_size", default=None, help="GPU-hours to sell.")
@click.option("--margin", default=None, help="Stablecoin to deposit as margin first.")
@slippage_option
@skip_checks_option
def open_(provider, account, number, long_size, short_size, margin, slippage, skip_checks):
    """Open or increase (or reduce) a position: buy with --long, sell with --short."""
    trader = require_account(account)
    if (long_size is None) == (short_size is None):
        raise click.UsageError("pass exactly one of --long GPUH or --short GPUH")
    client = connect(provider)
    with handled():
        asset = perps.market(client, number).asset
        size = perps.parse_size(long_size or short_size, "--long" if long_size else "--short")
        plan = perps.plan_open(client, trader.address, number, size if long_size else -size,
                               margin=asset.parse(margin, "--margin") if margin else 0,
                               slippage=slippage)
        _sent(client, number, plan, trader, skip_checks, asset)
        click.echo(perps.position(client, number, trader.address).describe())


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@market_option
@slippage_option
@click.option("--withdraw", "take_out", is_flag=True, help="Then withdraw all the margin.")
@skip_checks_option
def close(provider, account, number, slippage, take_out, skip_checks):
    """Close the whole position (margin stays in the market unless --withdraw)."""
    trader = require_account(account)
    client = connect(provider)
    with handled():
        asset = perps.market(client, number).asset
        before = perps.position(client, number, trader.address)
        if before.size == 0 and take_out and before.margin:
            click.echo(f"  {trader.address} has no open position: withdrawing the margin only")
        else:
            plan = perps.plan_close(client, trader.address, number, slippage=slippage)
            _sent(client, number, plan, trader, skip_checks, asset)
        if take_out and perps.position(client, number, trader.address).margin:
            _sent(client, number, perps.plan_withdraw(client, trader.address, number), trader)
        after = perps.position(client, number, trader.address)
        click.echo(f"{after.describe()}; wallet {asset.fmt(after.wallet)}")


@cli.command("fund-insurance", cls=ConnectedProviderCommand)
@account_option()
@market_option
@click.option("--amount", required=True, help="Stablecoin to add to the insurance fund.")
def fund_insurance(provider, account, number, amount):
    """Add to the insurance fund (it first covers a recorded deficit; never withdrawable)."""
    funder = require_account(account)
    client = connect(provider)
    with handled():
        before = perps.market(client, number)
        plan = perps.plan_fund_insurance(client, funder.address, number,
                                         before.asset.parse(amount, "--amount"))
        _sent(client, number, plan, funder)
        after = perps.market(client, number)
    covered = before.deficit and not after.deficit
    click.echo(f"market {number}: insurance fund {after.asset.fmt(after.insurance)}, deficit "
               f"{after.asset.fmt(after.deficit)}"
               + ("; the deficit is covered: new risk resumes" if covered else "")
               + (" once the guardian unpauses" if covered and after.paused else ""))


@cli.command("collect-fees", cls=ConnectedProviderCommand)
@account_option()
@market_option
def collect_fees(provider, account, number):
    """Pay the accrued trading fees to the fee recipient (anyone may call)."""
    caller = require_account(account)
    client = connect(provider)
    with handled():
        done = _sent(client, number, perps.plan_collect_fees(client, caller.address, number),
                     caller)
        view = perps.market(client, number)
    click.echo(f"{view.asset.fmt(done.fees_collected)} paid to {view.fee_recipient}")
