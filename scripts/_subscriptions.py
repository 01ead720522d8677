"""`ape run spv subscriptions ...`: an SPV operator's side of its ERC-7540 subscription
vault (a leading underscore: a command group of `scripts/spv.py`, not a script itself).

    ape run spv subscriptions open     --account OP --spv 1 [--notice-days 7] [--fee 0.5]
                                       [--cancel-after-days 14] [--treasury A] [--feed F]
    ape run spv subscriptions register --account KYC_OR_ADMIN --spv 1
    ape run spv subscriptions list     --spv 1 [--all]
    ape run spv subscriptions fulfil   --account OP --spv 1 (--deposit ADDR | --redeem ADDR)
                                       [--amount X]
    ape run spv subscriptions fund     --account OP --spv 1 --amount 20000
    ape run spv subscriptions defund   --account OP --spv 1 (--amount X | --all)

Investors request, cancel and claim with `ape run invest ...`. Every command checks
first what the vault (or the token) would refuse and says so with its message, sending
nothing (`--skip-checks` sends anyway). The logic lives in `gpushares.client.vault`.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand

from gpushares.client import vault as sub
from scripts._lib import (
    account_option,
    address_option,
    connect,
    echo_receipt,
    execute,
    handled,
    require_account,
)

spv_option = click.option("--spv", "spv_id", type=int, required=True, help="SPV id (1, 2, ...).")
skip_checks_option = click.option("--skip-checks", is_flag=True,
                                  help="Send even if a pre-check refuses (the contract decides).")


def send_plan(provider, account, skip_checks: bool, plan_of, after=None) -> None:
    """Plan (`plan_of(client, signer_address)`), send, print `after(client, outcome)`:
    the vault's events in the receipts and the new state."""
    signer = require_account(account)
    client = connect(provider)
    with handled():
        plan = plan_of(client, signer.address)
    receipts = execute(client, plan, signer, skip_checks=skip_checks)
    if after is not None:
        with handled():
            click.echo(after(client, receipts))


@click.group()
def subscriptions():
    """The SPV's ERC-7540 subscription vault: open it, list requests, fulfil, fund."""


def sending(name: str):
    """A command that signs and sends: `account`, `spv_id`, `skip_checks`."""
    def wrap(function):
        function = account_option()(skip_checks_option(spv_option(function)))
        return subscriptions.command(name, cls=ConnectedProviderCommand)(function)
    return wrap


@subscriptions.command("open", cls=ConnectedProviderCommand)
@account_option()
@spv_option
@click.option("--notice-days", default="7", show_default=True,
              help="Days a redemption waits before it may be fulfilled (0 to 365).")
@click.option("--fee", default="0.5", show_default=True,
              help="Redemption fee, percent of the value (at most 10).")
@click.option("--cancel-after-days", default="14", show_default=True,
              help="Days after which an unfulfilled request may be cancelled (1 to 90).")
@address_option("--treasury", default=None,
                help="Receiver of the subscription money (default: the account).")
@click.option("--feed", default=None, help="NAV feed (default NAV/<token symbol>/USD).")
@click.option("--jurisdiction", default=None,
              help="Where the vault is registered as a holder (default: the SPV's).")
def open_(provider, account, spv_id, **terms):
    """Open the SPV's vault: create it, grant it the token's OPERATOR_ROLE, register it."""
    opener = require_account(account)
    client = connect(provider)
    with handled():
        made = sub.open_vault(client, opener,
                              sub.vault_terms(client, opener.address, spv_id, **terms),
                              on_receipt=echo_receipt)
    click.echo("\n".join(made.lines(provider.network_choice)))


@sending("register")
@click.option("--jurisdiction", default=None,
              help="Where the vault is registered as a holder (default: the SPV's).")
def register(provider, account, spv_id, skip_checks, jurisdiction):
    """What the vault still needs, as far as the account may: the token's OPERATOR_ROLE
    (the token's admin) and an eligible-holder and custodian record (a KYC provider)."""
    send_plan(provider, account, skip_checks,
              lambda c, me: sub.plan_register_vault(c, me, spv_id, jurisdiction),
              lambda c, _r: sub.registration_line(c, spv_id))


@subscriptions.command("list", cls=ConnectedProviderCommand)
@spv_option
@click.option("--all", "everyone", is_flag=True,
              help="Also controllers with nothing open.")
def list_(provider, spv_id, everyone):
    """The vault, the NAV and every open request, with whether it can be fulfilled now."""
    client = connect(provider)
    with handled():
        click.echo("\n".join(sub.requests(client, spv_id, everyone=everyone).lines()))


@sending("fulfil")
@address_option("--deposit", "depositor", default=None,
                help="Fulfil this controller's subscription.")
@address_option("--redeem", "redeemer", default=None,
                help="Fulfil this controller's redemption.")
@click.option("--amount", default=None,
              help="Part of it: stablecoin for a subscription, shares for a redemption "
                   "(default: all pending).")
def fulfil(provider, account, spv_id, skip_checks, depositor, redeemer, amount):
    """Fulfil a request at the NAV published after it (deposits within the backing;
    redemptions after the notice period, from the redemption funds)."""
    if (depositor is None) == (redeemer is None):
        raise click.UsageError("pass exactly one of --deposit ADDRESS or --redeem ADDRESS")
    if depositor is not None:
        send_plan(provider, account, skip_checks,
                  lambda c, me: sub.plan_fulfil_deposit(c, me, spv_id, depositor, amount),
                  lambda c, r: _fulfilled(c, spv_id, r, depositor))
    else:
        send_plan(provider, account, skip_checks,
                  lambda c, me: sub.plan_fulfil_redeem(c, me, spv_id, redeemer, amount),
                  lambda c, r: _fulfilled(c, spv_id, r, redeemer))


def _fulfilled(client, spv_id: int, receipts, controller: str) -> str:
    view, done = sub.status(client, spv_id), sub.outcome(client, spv_id, receipts)
    a, s = view.asset, view.share
    if done.shares_issued:
        return (f"issued {s.fmt(done.shares_issued)} claimable by {controller}; "
                f"{a.fmt(done.assets_fulfilled)} sent to the treasury {view.treasury}; supply "
                f"{s.fmt(view.supply)} of a {s.fmt(view.mint_cap)} cap")
    return (f"burnt {s.fmt(done.shares_redeemed)}; {a.fmt(done.proceeds_set_aside)} claimable "
            f"by {controller} (fee {a.fmt(done.fees)}); redemption funds "
            f"{a.fmt(view.redemption_funds)} unallocated")


def _funds_line(client, spv_id: int) -> str:
    view = sub.status(client, spv_id)
    return f"redemption funds now {view.asset.fmt(view.redemption_funds)} unallocated"


@sending("fund")
@click.option("--amount", required=True, help="Stablecoin to add (e.g. 20000).")
def fund(provider, account, spv_id, skip_checks, amount):
    """Add stablecoin for fulfilling redemptions (approves the vault if needed)."""
    send_plan(provider, account, skip_checks,
              lambda c, me: sub.plan_fund(c, me, spv_id, amount),
              lambda c, _r: _funds_line(c, spv_id))


@sending("defund")
@click.option("--amount", default=None, help="Stablecoin to take back.")
@click.option("--all", "everything", is_flag=True, help="All the unallocated funds.")
def defund(provider, account, spv_id, skip_checks, amount, everything):
    """Send unallocated redemption funds back to the treasury."""
    if (amount is None) == (not everything):
        raise click.UsageError("pass exactly one of --amount X or --all")
    send_plan(provider, account, skip_checks,
              lambda c, me: sub.plan_defund(c, me, spv_id, amount),
              lambda c, _r: _funds_line(c, spv_id))
