"""`gpu-oracle`: the oracle node's command line.

    gpu-oracle attest --log LOG --rpc URL --hub 0x.. --keys KEYFILE \\
        (--listings-csv FILE --feed NAME | --snapshot FILE.json --kind price|utilisation)
    gpu-oracle publish --log LOG --rpc URL --hub 0x.. --key PUBLISHER_KEYFILE
    gpu-oracle verify (--log LOG | --node URL) [--rpc URL --hub 0x.. [--from-block N]]
    gpu-oracle serve (--config NODE.toml | --log LOG) [--host 127.0.0.1 --port 8700]
    gpu-oracle round --config NODE.toml [--feed NAME ...]
    gpu-oracle agent --key KEYFILE --spv 0x.. --node URL ... (--dcgm FILE | --nvidia-smi FILE
                     | --nvml)

A key file holds hex private keys, one per line (`#` comments allowed); keep it out of
version control. `verify` needs no key: it is the auditor's command and exits non-zero
at the first discrepancy, naming the entry and what differs.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import click

from oracle import attest, reports
from oracle.config import ConfigError, read_keys
from oracle.log import AttestationLog, AttestationLogError
from oracle.methodology import MethodologyError
from oracle.publisher import Publisher, PublishError
from oracle.verify import ChainView, Discrepancy, connect_hub, fetch_log, verify_log


def _keys(path: Path) -> list[bytes]:
    try:
        return read_keys(path)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc


def _open_log(path: Path, *, create: bool) -> AttestationLog:
    try:
        return AttestationLog(path, create=create)
    except (AttestationLogError, FileNotFoundError) as exc:
        raise click.ClickException(f"cannot open the log {path}: {exc}") from exc


def _hub(rpc: str, hub: str):  # noqa: ANN202 - web3 contract
    # One retry policy: the publisher's back-off covers every call, sends included (the
    # provider's own retries cover only reads), so the provider's are switched off.
    try:
        contract = connect_hub(rpc, hub, provider_retries=False)
    except ConnectionError as exc:
        raise click.ClickException(str(exc)) from exc
    return contract.w3, contract


@click.group()
def main() -> None:
    """GPU oracle node: attest, publish, verify."""


@main.command("attest")
@click.option("--log", "log_path", type=click.Path(path_type=Path), required=True)
@click.option("--rpc", required=True, help="JSON-RPC URL of the chain the hub is on.")
@click.option("--hub", required=True, help="OracleHub address.")
@click.option("--keys", "keys_path", type=click.Path(exists=True, path_type=Path), required=True,
              help="File of signer private keys (at least the hub's threshold).")
@click.option("--listings-csv", type=click.Path(exists=True, path_type=Path), default=None,
              help="A day's listings CSV (oracle/data/listings format): offer-median v1.")
@click.option("--feed", default=None, help="Feed name, with --listings-csv.")
@click.option("--snapshot", type=click.Path(exists=True, path_type=Path), default=None,
              help="A raw input snapshot (JSON naming its methodology).")
@click.option("--kind", type=click.Choice(["price", "utilisation"]), default=None)
def attest_cmd(log_path, rpc, hub, keys_path, listings_csv, feed, snapshot, kind):
    """Compute a report from raw inputs, sign it, append it to the log."""
    if (listings_csv is None) == (snapshot is None):
        raise click.UsageError("give exactly one of --listings-csv (with --feed) or --snapshot")
    if listings_csv is not None:
        if feed is None:
            raise click.UsageError("--listings-csv needs --feed NAME")
        data = reports.listings_snapshot(listings_csv, reports.feed_id(feed))
        kind = "price"
    else:
        if kind is None:
            raise click.UsageError("--snapshot needs --kind price|utilisation")
        data = json.loads(snapshot.read_text(encoding="utf-8"))
    web3, contract = _hub(rpc, hub)
    domain = attest.Domain(chain_id=web3.eth.chain_id, hub=contract.address)
    version = int(contract.functions.config_version().call())
    if version == 0:
        raise click.ClickException("the hub has no signer set yet: `ape run oracle set-signers`")
    signers = list(contract.functions.signers().call())
    threshold = int(contract.functions.threshold().call())
    keys = _keys(keys_path)
    with _open_log(log_path, create=True) as log:
        try:
            reports.record_signer_set(log, domain, version, signers, threshold)
            entry = reports.attest_snapshot(log, kind, data, domain=domain,
                                            config_version=version, keys=keys)
            attest.check_signatures(entry.signed, signers, threshold)
        except (MethodologyError, attest.AttestationError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    r = entry.signed.report
    shown = (f"{reports.feed_name(r.feed_id)} = {r.value / 10**8:.8f} USD"
             if isinstance(r, attest.PriceReport)
             else f"{r.spv_token}: {r.utilisation_bps / 100:.2f}% of {r.gpu_count} GPUs")
    click.echo(f"entry {entry.index}: {shown}, signed by {len(entry.signed.signers)} of "
               f"{len(signers)}, committing to log size {r.log_size}")


@main.command()
@click.option("--log", "log_path", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--rpc", required=True)
@click.option("--hub", required=True)
@click.option("--key", "key_path", type=click.Path(exists=True, path_type=Path), required=True,
              help="File with the publishing account's private key (pays gas).")
def publish(log_path, rpc, hub, key_path):
    """Submit every unpublished report to the hub (idempotent; safe to re-run)."""
    web3, contract = _hub(rpc, hub)
    with _open_log(log_path, create=False) as log:
        try:
            outcomes = Publisher(web3, contract.address, log, _keys(key_path)[0]).publish_pending()
        except PublishError as exc:
            raise click.ClickException(str(exc)) from exc
    if not outcomes:
        click.echo("nothing to publish")
    for o in outcomes:
        extra = f" gas {o.gas_used:,}" if o.gas_used else ""
        click.echo(f"entry {o.index}: {o.status}" + (f" in {o.tx_hash}" if o.tx_hash else "")
                   + extra + (f" ({o.detail})" if o.detail else ""))


@main.command()
@click.option("--log", "log_path", type=click.Path(exists=True, path_type=Path), default=None,
              help="A log file.")
@click.option("--node", default=None, help="Or a node's URL: its log is fetched and checked.")
@click.option("--rpc", default=None, help="Also check against the chain (with --hub).")
@click.option("--hub", default=None, help="OracleHub address (with --rpc).")
@click.option("--from-block", type=int, default=0, help="First block to read hub events from.")
def verify(log_path, node, rpc, hub, from_block):
    """Re-verify the log (and the chain): exits 1 at the first discrepancy."""
    if (rpc is None) != (hub is None):
        raise click.UsageError("--rpc and --hub go together")
    if (log_path is None) == (node is None):
        raise click.UsageError("give exactly one of --log FILE or --node URL")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-oracle-verify-") as tmp:
        try:
            chain = ChainView(rpc, hub, from_block=from_block) if rpc else None
            log = (_open_log(log_path, create=False) if node is None
                   else fetch_log(node, Path(tmp) / "fetched.sqlite"))
        except ConnectionError as exc:
            raise click.ClickException(str(exc)) from exc
        except Discrepancy as exc:
            click.echo(f"FAIL {exc.where}: {exc.what}", err=True)
            sys.exit(1)
        with log:
            try:
                summary = verify_log(log, chain)
            except Discrepancy as exc:
                click.echo(f"FAIL {exc.where}: {exc.what}", err=True)
                sys.exit(1)
    elapsed = time.perf_counter() - started
    click.echo(
        f"OK {summary.entries} entries ({summary.reports} reports, {summary.signer_sets} signer "
        f"sets), {summary.signatures} signatures, {summary.recomputed} values recomputed from "
        f"their inputs ({summary.not_recomputed} with an unknown methodology); root "
        f"{summary.root}"
    )
    if summary.chain_checked:
        click.echo(f"OK chain: {summary.chain_values} on-chain values equal their entries, "
                   f"{summary.chain_checkpoints} checkpoints reproduced and consistent")
    click.echo(f"({elapsed:.2f}s)")


@main.command()
@click.option("--config", "config_path", type=click.Path(exists=True, path_type=Path),
              default=None, help="Run a full node from this TOML config (see oracle/config.py).")
@click.option("--log", "log_path", type=click.Path(exists=True, path_type=Path), default=None,
              help="Or only serve this log, read-only, for auditors.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65_535), default=8700, show_default=True)
def serve(config_path, log_path, host, port):
    """Run a node's HTTP API: feeds, attestations, proofs, telemetry intake, co-signing."""
    import uvicorn

    from oracle.api import Settings, create_app

    if (config_path is None) == (log_path is None):
        raise click.UsageError("give exactly one of --config NODE.toml or --log FILE")
    try:
        app = create_app(Settings(config=config_path, log=log_path))
    except (ConfigError, AttestationLogError) as exc:
        raise click.ClickException(str(exc)) from exc
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.command("round")
@click.option("--config", "config_path", type=click.Path(exists=True, path_type=Path),
              required=True, help="The leading node's TOML config.")
@click.option("--feed", "feeds", multiple=True, help="Only these feeds (default: all due).")
def round_cmd(config_path, feeds):
    """Lead one round: build every due feed, collect k signatures from peers, log, publish."""
    import logging

    # Every outcome, disagreement included, is printed below; the node's own log lines
    # would repeat them on stderr.
    logging.getLogger("oracle.node").setLevel(logging.CRITICAL)
    from oracle.node import Refusal, load_node

    try:
        node = load_node(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        outcomes = node.run_round(list(feeds) or None)
    except (Refusal, ConnectionError, PublishError) as exc:
        raise click.ClickException(str(getattr(exc, "message", exc))) from exc
    finally:
        node.close()
    failed = False
    for o in outcomes:
        value = ""
        if o.value is not None:
            value = (f" = {attest.fixed_str(o.value)}" if not o.feed.startswith("utilisation:")
                     else f" = {attest.fixed_str(o.value, 2)}%")
        signers = f" signed by {', '.join(s[:10] for s in o.signers)}" if o.signers else ""
        where = f" entry {o.entry}" if o.entry is not None else ""
        tx = f" tx {o.tx_hash}" if o.tx_hash else ""
        click.echo(f"{o.feed}: {o.status}{value}{where}{signers}{tx}"
                   + (f" ({o.detail})" if o.detail else ""))
        for peer, why in sorted(o.disagreements.items()):
            click.echo(f"    outvoted {peer}: {why}")
        failed |= o.status in ("no_quorum", "failed")
    if failed:
        sys.exit(2)


@main.command()
@click.option("--key", "key_path", type=click.Path(exists=True, path_type=Path), required=True,
              help="File with the agent's own private key (registered with the nodes).")
@click.option("--spv", required=True, help="The SPV share token the GPUs belong to.")
@click.option("--node", "nodes", multiple=True, required=True,
              help="Node URL to post to (repeat for every node of the quorum).")
@click.option("--state", "state_path", type=click.Path(path_type=Path), required=True,
              help="The agent's state file (sequence number, last sample per GPU).")
@click.option("--dcgm", type=click.Path(exists=True, path_type=Path), default=None,
              help="A DCGM exporter scrape (Prometheus text).")
@click.option("--scraped-at", type=int, default=None,
              help="With --dcgm: the scrape's unix time (default: now); the batch is then "
                   "created at that time too (a replay).")
@click.option("--nvidia-smi", "nvsmi", type=click.Path(exists=True, path_type=Path),
              default=None, help="An `nvidia-smi --query-gpu=... --format=csv` capture.")
@click.option("--nvml", is_flag=True, help="Read this machine's GPUs through NVML.")
@click.option("--replay-ending", type=int, default=None,
              help="Replay a recorded capture: shift its sample times so the last one falls "
                   "at this unix time (demos and tests).")
def agent(key_path, spv, nodes, state_path, dcgm, scraped_at, nvsmi, nvml, replay_ending):
    """Sign a telemetry capture with the agent's key and post it to the oracle nodes."""
    from oracle.telemetry import TelemetryAgent, TelemetryError, parse_dcgm, parse_nvsmi, read_nvml

    if sum(x is not None and x is not False for x in (dcgm, nvsmi, nvml or None)) != 1:
        raise click.UsageError("give exactly one of --dcgm FILE, --nvidia-smi FILE or --nvml")
    try:
        if dcgm is not None:
            samples, source = parse_dcgm(dcgm.read_text(encoding="utf-8"),
                                         scraped_at=scraped_at or int(time.time()),
                                         source=str(dcgm)), "dcgm"
        elif nvsmi is not None:
            samples, source = parse_nvsmi(nvsmi.read_text(encoding="utf-8"),
                                          source=str(nvsmi)), "nvidia-smi"
        else:
            samples, source = read_nvml(now=int(time.time())), "nvml"
    except TelemetryError as exc:
        raise click.ClickException(str(exc)) from exc
    samples = list(samples)
    if replay_ending is not None and samples:
        shift = replay_ending - max(s.time for s in samples)
        samples = [s.model_copy(update={"time": s.time + shift}) for s in samples]
    # A replay (a recorded capture stamped with given times) happens at the time it says:
    # the batch is created at its newest sample, not at this machine's clock.
    replayed = (scraped_at is not None or replay_ending is not None) and samples
    newest = max((s.time for s in samples), default=0)
    client = TelemetryAgent(_keys(key_path)[0], spv, state_path=state_path, nodes=list(nodes),
                            clock=(lambda: float(newest)) if replayed else time.time)
    try:
        signed = client.build(samples, source)
        if signed is None:
            click.echo("nothing new to send: every sample was already posted")
            return
        outcomes = client.post(signed)
    finally:
        client.close()
    click.echo(f"batch {signed.batch.sequence} from {client.address}: {len(samples)} samples "
               f"of {len({s.uuid for s in samples})} GPUs ({source})")
    failed = False
    for o in outcomes:
        click.echo(f"  {o.url}: {o.status}" + (f" ({o.code}: {o.message})" if o.code else ""))
        failed |= not o.ok
    if failed:
        sys.exit(2)
