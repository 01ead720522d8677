"""Perpetual futures on a GPU-hour index: run a market, trade by orders, fund insurance.

    ape run perp create --account A --feed H100-SXM-80GB/USD/GPUh [--insurance X] [RISK] [ORDER]
    ape run perp set    --account A --market 1 [RISK] [ORDER] [--fee-recipient X] [--pause]
    ape run perp status [--market 1] [--orders]
    ape run perp deposit|withdraw --account T --market 1 (--amount X | --all)
    ape run perp commit --account T --market 1 (--long H | --short H | --close) [--margin X]
    ape run perp execute|cancel --account K --market 1 --trader ADDR
    ape run perp fund-insurance|collect-fees --account A --market 1 [--amount X]

`commit` reserves the keeper fee in the margin; a keeper (`ape run keeper`, or anyone
with `execute`) fills the order at the first oracle round after the commit (a refused
trade cancels it, the keeper still paid); an expired order can only be cancelled.
Every command checks what the market would refuse and why, sending nothing
(`--skip-checks` sends anyway). RISK, ORDER: `--help`. Logic: `gpushares.client.perp`.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand

from gpushares import perp as mirror
from gpushares.client import perp as perps
from gpushares.client.chain import Reverted
from gpushares.client.markets import token
from scripts._lib import account_option, address_option, connect, execute, handled, require_account

market_option = click.option("--market", "number", type=click.IntRange(min=1), required=True,
                             help="Market number (1, 2, ...; see `ape run perp status`).")
skip_checks_option = click.option("--skip-checks", is_flag=True,
                                  help="Send even if the pre-checks refuse.")
all_markets = click.option("--market", "number", type=click.IntRange(min=1), default=None,
                           help="One market; all markets when omitted.")
slippage_option = click.option("--slippage", default="1", show_default=True,
                               help="Worst fill accepted, percent away from the current fill.")


def options(table: dict, defaults: bool):
    """`table`'s options (`RISK_OPTIONS`, ...), with defaults (`create`) or without (`set`)."""
    def decorate(func):
        for name, (default, text) in reversed(table.items()):
            func = click.option(f"--{name.replace('_', '-')}", default=default if defaults
                                else None, show_default=defaults and default is not None,
                                help=text)(func)
        return func
    return decorate


def _sent(client, number: int, plan, signer, skip_checks=False, asset=None) -> perps.Outcome:
    """Send `plan` (a revert explained); with `asset`, print its orders and fills."""
    try:
        receipts = execute(client, plan, signer, skip_checks=skip_checks)
    except click.ClickException as exc:
        why = exc.__cause__
        if isinstance(why, Reverted):
            raise click.ClickException(f"{why.what} refused: {mirror.explain(why.reason)}") from why
        raise
    done = perps.outcome(client, number, receipts)
    for line in done.lines(asset) if asset is not None else ():
        click.echo(f"  {line}")
    return done


@click.group()
def cli():
    """Perpetual futures on a GPU-hour index: markets, margin, orders, insurance."""


def _session(provider, account):
    """(the signer, the client) of a command."""
    return require_account(account), connect(provider)


def command(name: str | None = None, *, market: bool = True, account: bool = True):
    """A connected `perp` command with --account and --market (unless told otherwise)."""
    def decorate(func):
        func = market_option(func) if market else func
        func = account_option()(func) if account else func
        return cli.command(name, cls=ConnectedProviderCommand)(func)
    return decorate


@command(market=False)
@click.option("--feed", required=True, help="Oracle hub index feed, e.g. H100-SXM-80GB/USD/GPUh.")
@address_option("--asset", default=None, help="Margin stablecoin (default: the deployment's).")
@options(perps.RISK_OPTIONS, defaults=True)
@options(perps.ORDER_OPTIONS, defaults=True)
@address_option("--fee-recipient", default=None, help="Fee receiver (default: the account).")
@click.option("--insurance", default=None, help="Stablecoin to seed the insurance fund with.")
@skip_checks_option
def create(provider, account, feed, asset, fee_recipient, insurance, skip_checks,
           order_keeper_fee, order_min_delay, order_max_age, **risk):
    """Deploy a perpetual market on an index feed, set its order window, seed its fund."""
    creator, client = _session(provider, account)
    with handled():
        stable = token(client, asset or client.deployed.income_token)
        seed = stable.parse(insurance, "--insurance") if insurance is not None else 0
        plan = perps.plan_create(client, creator.address, feed,
                                 perps.risk_params(stable.decimals, **risk), insurance=seed,
                                 asset=asset, fee_recipient=fee_recipient)
        number, _ = perps.created(client, execute(client, plan, creator,
                                                  skip_checks=skip_checks)[-1])
        _sent(client, number, perps.plan_setup(
            client, creator.address, number, keeper_fee=order_keeper_fee,
            min_delay=order_min_delay, max_age=order_max_age, insurance=seed), creator)
        click.echo("\n".join(perps.market(client, number).created_lines(creator.address)))


@command("set")
@options(perps.RISK_OPTIONS, defaults=False)
@options(perps.ORDER_OPTIONS, defaults=False)
@address_option("--fee-recipient", default=None, help="New receiver of the trading fees.")
@click.option("--pause/--unpause", "pause", default=None, help="Stop (or resume) new risk.")
@skip_checks_option
def set_(provider, account, number, fee_recipient, pause, skip_checks, **changes):
    """Change a market's risk parameters, order window, fee recipient or pause."""
    admin, client = _session(provider, account)
    with handled():
        plan = perps.plan_set(client, admin.address, number, paused=pause,
                              fee_recipient=fee_recipient, **changes)
        _sent(client, number, plan, admin, skip_checks)
        click.echo("\n".join(perps.market(client, number).risk_lines()))


@command(market=False, account=False)
@all_markets
@click.option("--orders", "only_orders", is_flag=True, help="Only the pending orders.")
def status(provider, number, only_orders):
    """Markets: index, orders, open interest, funding, insurance, positions and orders."""
    client = connect(provider)
    with handled():
        click.echo("\n".join(perps.factory_lines(client)))
        for n in perps.numbers(client, number):
            view = perps.market(client, n)
            if only_orders:
                click.echo("\n".join([f"perp market {n}: {view.window.line(view.asset)}",
                                      *perps.order_lines(perps.orders(client, n))]))
                continue
            shown = perps.position_lines(perps.positions(client, n), view.index.fresh)
            click.echo("\n" + "\n".join(view.lines() + shown))


@command()
@click.option("--amount", required=True, help="Stablecoin to deposit as margin.")
def deposit(provider, account, number, amount):
    """Deposit margin (always works: paused, stale or halted index)."""
    trader, client = _session(provider, account)
    with handled():
        units_ = perps.market(client, number).asset.parse(amount, "--amount")
        _sent(client, number, perps.plan_deposit(client, trader.address, number, units_), trader)
        click.echo(perps.position(client, number, trader.address).describe())


@command()
@click.option("--amount", default=None, help="Stablecoin to withdraw.")
@click.option("--all", "everything", is_flag=True, help="All that can be withdrawn now.")
@skip_checks_option
def withdraw(provider, account, number, amount, everything, skip_checks):
    """Withdraw margin; with a position, what stays less any loss covers the initial margin."""
    trader = require_account(account)
    if (amount is None) == (not everything):
        raise click.UsageError("pass exactly one of --amount X or --all")
    client = connect(provider)
    with handled():
        asset = perps.market(client, number).asset
        plan = perps.plan_withdraw(client, trader.address, number,
                                   None if everything else asset.parse(amount, "--amount"))
        done = _sent(client, number, plan, trader, skip_checks)
        click.echo(f"{trader.address}: received {asset.fmt(done.withdrawn)}\n"
                   + perps.position(client, number, trader.address).describe())


@command()
@click.option("--long", "long_size", default=None, help="GPU-hours to buy.")
@click.option("--short", "short_size", default=None, help="GPU-hours to sell.")
@click.option("--close", "close_all", is_flag=True, help="Close the whole position.")
@click.option("--margin", default=None, help="Stablecoin to deposit as margin first.")
@slippage_option
@skip_checks_option
def commit(provider, account, number, long_size, short_size, close_all, margin, slippage,
           skip_checks):
    """Commit an order (--long buys, --short sells); a keeper fills it at the next round."""
    if sum(x is not None and x is not False for x in (long_size, short_size, close_all)) != 1:
        raise click.UsageError("pass exactly one of --long GPUH, --short GPUH or --close")
    trader, client = _session(provider, account)
    with handled():
        asset = perps.market(client, number).asset
        if close_all:
            if margin:
                raise click.UsageError("--close takes no --margin")
            plan = perps.plan_close(client, trader.address, number, slippage=slippage)
        else:
            size = perps.parse_size(long_size or short_size, "--long" if long_size else "--short")
            plan = perps.plan_commit(client, trader.address, number,
                                     size if long_size else -size, slippage=slippage,
                                     margin=asset.parse(margin, "--margin") if margin else 0)
        _sent(client, number, plan, trader, skip_checks, asset)
        mine = perps.position(client, number, trader.address)
        click.echo(mine.describe() + (f"\n{mine.order.line().strip()}" if mine.order else ""))


def _order_action(provider, account, number, trader, skip_checks, plan_of):
    signer, client = _session(provider, account)
    with handled():
        who = trader or signer.address
        plan = plan_of(client, signer.address, number, who)
        _sent(client, number, plan, signer, skip_checks, perps.market(client, number).asset)
        click.echo(perps.position(client, number, who).describe())


@command("execute")
@address_option("--trader", required=True, help="The account whose order to execute.")
@skip_checks_option
def execute_(provider, account, number, trader, skip_checks):
    """Execute a trader's pending order (anyone; the caller earns its keeper fee)."""
    _order_action(provider, account, number, trader, skip_checks, perps.plan_execute)


@command()
@address_option("--trader", default=None, help="The order's account (default: yours).")
@skip_checks_option
def cancel(provider, account, number, trader, skip_checks):
    """Cancel an expired order (anyone): its keeper fee goes back to the margin."""
    _order_action(provider, account, number, trader, skip_checks, perps.plan_cancel)


@command("fund-insurance")
@click.option("--amount", required=True, help="Stablecoin to add to the insurance fund.")
def fund_insurance(provider, account, number, amount):
    """Add to the insurance fund (it first covers a recorded deficit; never withdrawable)."""
    funder, client = _session(provider, account)
    with handled():
        units_ = perps.market(client, number).asset.parse(amount, "--amount")
        _sent(client, number, perps.plan_fund_insurance(client, funder.address, number, units_),
              funder)
        after = perps.market(client, number)
    click.echo(f"market {number}: insurance fund {after.asset.fmt(after.insurance)}, deficit "
               f"{after.asset.fmt(after.deficit)}")


@command("collect-fees")
def collect_fees(provider, account, number):
    """Pay the accrued trading fees to the fee recipient (anyone may call)."""
    caller, client = _session(provider, account)
    with handled():
        done = _sent(client, number, perps.plan_collect_fees(client, caller.address, number),
                     caller)
        view = perps.market(client, number)
    click.echo(f"{view.asset.fmt(done.fees_collected)} paid to {view.fee_recipient}")
