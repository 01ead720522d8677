"""Oracle hub administration (the hub admin's commands; `gpu-oracle` is the node's).

    ape run oracle set-signers --account ADMIN --signer 0x.. (x n) --threshold K
    ape run oracle add-feed    --account ADMIN --name H100-SXM/USD/GPUh \\
                               --description "H100 SXM 80GB / USD per GPU-hour" \\
                               --min 0.01 --max 100 --max-move-bps 2500 --heartbeat 90000
    ape run oracle status      [--feed NAME]

Every signer-set change bumps the hub's config version: reports signed for the old
set are refused from then on, and nodes must log the new set before signing.
"""

from __future__ import annotations

import click
from ape import project
from ape.cli import ConnectedProviderCommand

from oracle.reports import feed_id, feed_name
from scripts._lib import (
    account_option,
    checksum_address,
    fmt_units,
    load_deployments,
    require_account,
    to_base_units,
    transact,
)


def _hub(provider):
    deployed = load_deployments(provider)
    if deployed.oracle_hub is None:
        raise click.ClickException("the deployments file has no OracleHub: run `ape run deploy`")
    return project.OracleHub.at(deployed.oracle_hub)


def _price(value: str, what: str) -> int:
    if value.strip() == "0":
        return 0
    return to_base_units(value, 8, what)


@click.group()
def cli():
    """Administer the OracleHub: signer set and feeds."""


@cli.command("set-signers", cls=ConnectedProviderCommand)
@account_option()
@click.option("--signer", "signers", multiple=True, required=True, help="Signer address (repeat).")
@click.option("--threshold", type=click.IntRange(1, 31), required=True, help="Signatures needed.")
def set_signers(provider, account, signers, threshold):
    """Replace the signer set (sorted for you) and threshold; bumps the config version."""
    admin = require_account(account)
    addresses = sorted({checksum_address(s, "--signer") for s in signers}, key=lambda a: int(a, 16))
    if len(addresses) != len(signers):
        raise click.BadParameter("--signer: the same address was given twice")
    if threshold > len(addresses):
        raise click.BadParameter(f"--threshold {threshold} exceeds the {len(addresses)} signers")
    hub = _hub(provider)
    transact(f"signer set of {len(addresses)}, threshold {threshold}", hub.set_signers,
             addresses, threshold, sender=admin)
    click.echo(f"config version is now {hub.config_version()}")


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
    try:
        fid = feed_id(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from exc
    low, high = _price(min_value, "--min"), _price(max_value, "--max")
    if low > high:
        raise click.BadParameter("--min is above --max")
    hub = _hub(provider)
    if hub.feed(fid).exists:
        raise click.ClickException(f"feed {name} already exists (adapter {hub.feed_adapter(fid)})")
    transact(f"feed {name}", hub.add_feed, fid, description, low, high, max_move_bps, heartbeat,
             sender=admin)
    click.echo(f"  adapter (AggregatorV3) at {hub.feed_adapter(fid)}")


@cli.command("status", cls=ConnectedProviderCommand)
@click.option("--feed", "feed", default=None, help="Only this feed (name).")
def status(provider, feed):
    """Signer set, checkpoint and every feed's latest value."""
    hub = _hub(provider)
    signers = hub.signers()
    click.echo(f"OracleHub {hub.address}: config version {hub.config_version()}, "
               f"{hub.threshold()}-of-{len(signers)}")
    for s in signers:
        click.echo(f"  signer {s}")
    size, root = hub.checkpoint()
    click.echo(f"log checkpoint: size {size}, root 0x{bytes(root).hex()}")
    for i in range(hub.feed_count()):
        fid = hub.feed_ids(i)
        name = feed_name("0x" + bytes(fid).hex())
        if feed is not None and name != feed:
            continue
        info = hub.feed(fid)
        value, observed, round_id = hub.latest_value(fid)
        state = "enabled" if info.enabled else "disabled"
        latest = (f"{fmt_units(value, 8)} USD (round {round_id}, observed {observed})"
                  if round_id else "no value yet")
        click.echo(f"feed {name} [{state}] adapter {info.adapter}: {latest}; bounds "
                   f"{fmt_units(info.min_answer, 8)}..{fmt_units(info.max_answer, 8)}, max move "
                   f"{info.max_move_bps} bps, heartbeat {info.heartbeat}s")
