"""Investors in an SPV's ERC-7540 subscription vault: subscribe, redeem, cancel, claim.

    ape run invest request --account I --spv 1 --amount 15000    (stablecoin, escrowed)
    ape run invest redeem  --account I --spv 1 --shares 500      (shares, escrowed)
    ape run invest cancel  --account I --spv 1 (--deposit | --redeem) [--to 0x...]
    ape run invest claim   --account I --spv 1 [--to 0x...]      (shares and/or proceeds)
    ape run invest income  --account I --spv 1 [--to 0x...]      (income of escrowed shares)
    ape run invest status  --spv 1 (--account I | --investor 0x...)

A request is priced at the next NAV the oracle publishes after it (nobody trades on a
NAV already known) and binding until the vault's `cancel_after` has passed without a
fulfilment; the SPV's operator fulfils it (`ape run spv subscriptions fulfil`), then
the investor claims. Every command checks first what the vault or the share token would
refuse (a wallet that may not hold the shares, a frozen one) and says so with the
contract's message, sending nothing (`--skip-checks` sends anyway). The logic lives in
`gpushares.client.vault`; this file parses and prints.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand

from gpushares.client import vault as sub
from scripts._lib import account_option, address_option, connect, handled
from scripts._subscriptions import send_plan, skip_checks_option, spv_option

to_option = address_option("--to", "receiver", default=None,
                           help="Send to another wallet (default: the account).")


@click.group()
def cli():
    """Subscribe to and redeem an SPV's shares through its subscription vault."""


def sending(name: str):
    """A command that signs and sends: `account`, `spv_id`, `skip_checks`."""
    def wrap(function):
        function = account_option()(skip_checks_option(spv_option(function)))
        return cli.command(name, cls=ConnectedProviderCommand)(function)
    return wrap


def _status(spv_id: int, account, line):
    """An `after` for `send_plan`: `line(outcome, request)`, then the account's status."""
    def after(client, receipts):
        view = sub.investor(client, spv_id, account.address)
        return "\n".join([line(sub.outcome(client, spv_id, receipts), view.request),
                          *view.lines()])
    return after


@sending("request")
@click.option("--amount", required=True, help="Stablecoin to subscribe (e.g. 15000).")
def request(provider, account, spv_id, skip_checks, amount):
    """Subscribe: escrow stablecoin for shares issued at the next NAV (approves first)."""
    send_plan(provider, account, skip_checks,
              lambda c, me: sub.plan_request_deposit(c, me, spv_id, amount),
              _status(spv_id, account, lambda done, r: (
                  f"requested {r.asset.fmt(done.deposit_requested)} of {r.share.symbol}; the "
                  "operator fulfils at the next NAV")))


@sending("redeem")
@click.option("--shares", required=True, help="Shares to redeem (decimals allowed).")
def redeem(provider, account, spv_id, skip_checks, shares):
    """Redeem: escrow shares for stablecoin at the next NAV after the notice period."""
    send_plan(provider, account, skip_checks,
              lambda c, me: sub.plan_request_redeem(c, me, spv_id, shares),
              _status(spv_id, account, lambda done, r: (
                  f"requested the redemption of {r.share.fmt(done.redeem_requested)}; they keep "
                  "earning income until burnt")))


@sending("cancel")
@click.option("--deposit", "kind", flag_value="deposit", help="Cancel the subscription.")
@click.option("--redeem", "kind", flag_value="redeem", help="Cancel the redemption.")
@to_option
def cancel(provider, account, spv_id, skip_checks, kind, receiver):
    """Cancel a pending request for exactly what was escrowed (once cancel_after has
    passed without a fulfilment)."""
    if kind is None:
        raise click.UsageError("pass --deposit or --redeem")
    send_plan(provider, account, skip_checks,
              lambda c, me: sub.plan_cancel(c, me, spv_id, kind, receiver=receiver),
              _status(spv_id, account, lambda done, r: (
                  f"returned {r.asset.fmt(done.assets_returned)}" if kind == "deposit"
                  else f"returned {r.share.fmt(done.shares_returned)}")))


@sending("claim")
@to_option
def claim(provider, account, spv_id, skip_checks, receiver):
    """Claim the shares of a fulfilled subscription and the proceeds of a fulfilled
    redemption."""
    send_plan(provider, account, skip_checks,
              lambda c, me: sub.plan_claim(c, me, spv_id, receiver=receiver),
              _status(spv_id, account, lambda done, r: (
                  f"received {r.share.fmt(done.shares_claimed)} and "
                  f"{r.asset.fmt(done.proceeds_claimed)}")))


@sending("income")
@to_option
def income(provider, account, spv_id, skip_checks, receiver):
    """Claim the income the shares the vault holds for the account earned."""
    send_plan(provider, account, skip_checks,
              lambda c, me: sub.plan_claim_income(c, me, spv_id, receiver=receiver),
              _status(spv_id, account, lambda done, r: (
                  f"received {r.asset.fmt(done.income_claimed)} of income")))


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@spv_option
@address_option("--investor", default=None, help="Any investor's address.")
def status(provider, account, spv_id, investor):
    """An investor's requests, claims and wallet (`--account` or `--investor`)."""
    if (account is None) == (investor is None):
        raise click.UsageError("pass exactly one of --account ALIAS or --investor ADDRESS")
    client = connect(provider)
    with handled():
        click.echo("\n".join(sub.investor(client, spv_id, investor or account.address).lines()))
