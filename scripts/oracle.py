"""Oracle hub administration (the hub admin's commands; `gpu-oracle` is the node's).

    ape run oracle set-signers --account ADMIN --signer 0x.. (x n) --threshold K
    ape run oracle add-feed    --account ADMIN --name H100-SXM/USD/GPUh \\
                               --description "H100 SXM 80GB / USD per GPU-hour" \\
                               --min 0.01 --max 100 --max-move-bps 2500 --heartbeat 90000
    ape run oracle status      [--feed NAME]

Every signer-set change bumps the hub's config version: reports signed for the old
set are refused from then on, and nodes must log the new set before signing. The logic
lives in `gpushares.client.oracle`; this file parses arguments and prints.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand

from gpushares.client import oracle as client_oracle
from scripts._lib import account_option, connect, execute, handled, require_account


@click.group()
def cli():
    """Administer the OracleHub: signer set and feeds."""


@cli.command("set-signers", cls=ConnectedProviderCommand)
@account_option()
@click.option("--signer", "signers", multiple=True, required=True, help="Signer address (repeat).")
@click.option("--threshold", type=click.IntRange(1, client_oracle.MAX_SIGNERS), required=True,
              help="Signatures needed.")
def set_signers(provider, account, signers, threshold):
    """Replace the signer set (sorted for you) and threshold; bumps the config version."""
    admin = require_account(account)
    client = connect(provider)
    with handled():
        plan = client_oracle.plan_set_signers(client, admin.address, signers, threshold)
    execute(client, plan, admin)
    click.echo(f"config version is now {client.hub().config_version()}")


@cli.command("add-feed", cls=ConnectedProviderCommand)
@account_option()
@click.option("--name", required=True, help="Feed name (<= 32 bytes); its id is the padded bytes.")
@click.option("--description", required=True, help="What the adapter's description() says.")
@click.option("--min", "min_value", required=True, help="Smallest accepted value, USD.")
@click.option("--max", "max_value", required=True, help="Largest accepted value, USD.")
@click.option("--max-move-bps", type=click.IntRange(0, 65_535), required=True,
              help="Largest move per update, bps of the latest value (0 = no limit).")
@click.option("--heartbeat", type=click.IntRange(1, 2**32 - 1), required=True,
              help="Seconds after which consumers must treat the value as stale.")
def add_feed(provider, account, name, description, min_value, max_value, max_move_bps, heartbeat):
    """Add a price feed and deploy its Chainlink-compatible FeedAdapter."""
    admin = require_account(account)
    client = connect(provider)
    with handled():
        plan = client_oracle.plan_add_feed(client, admin.address, name, description, min_value,
                                           max_value, max_move_bps, heartbeat)
    execute(client, plan, admin)
    with handled():
        click.echo(f"  adapter (AggregatorV3) at {client_oracle.feed(client, name).adapter}")


@cli.command("status", cls=ConnectedProviderCommand)
@click.option("--feed", "feed", default=None, help="Only this feed (name).")
def status(provider, feed):
    """Signer set, checkpoint and every feed's latest value."""
    client = connect(provider)
    with handled():
        for line in client_oracle.hub_view(client, feed).lines():
            click.echo(line)
