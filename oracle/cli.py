"""`gpu-oracle`: the oracle node's command line.

    gpu-oracle init --name NODE --rpc URL --hub 0x.. --dir DIR [--peer NAME=URL ...]
                    [--offers PATH [--replay]] [--feed MODEL ...]
                    [--password-env NAME | --password-file FILE]
    gpu-oracle attest --log LOG --rpc URL --hub 0x.. --keys KEYFILE \\
        (--listings-csv FILE --feed NAME | --snapshot FILE.json --kind price|utilisation)
    gpu-oracle publish --log LOG --rpc URL --hub 0x.. --key PUBLISHER_KEYFILE
    gpu-oracle verify (--log LOG | --node URL) [--rpc URL --hub 0x.. [--from-block N]]
    gpu-oracle serve (--config NODE.toml | --log LOG) [--host 127.0.0.1 --port 8700]
    gpu-oracle round --config NODE.toml [--feed NAME ...]
    gpu-oracle agent --key KEYFILE --spv 0x.. --node URL ... (--dcgm FILE | --nvidia-smi FILE
                     | --nvml)

`init` writes a new node's config and its signer and publisher keys, encrypted (Ethereum
V3 keystores), with the passphrase from an environment variable (`GPU_ORACLE_PASSPHRASE`
unless `--password-env` names another) or a password file; never from the command line.
Any other key file is either such a keystore (decrypted with `GPU_ORACLE_PASSPHRASE`, or
the source a node's `[keystore]` config names) or hex private keys, one per line (`#`
comments allowed); keep key files out of version control. `verify` needs no key: it is
the auditor's command, opens the log read-only (a running node's log included) and exits
non-zero at the first discrepancy, naming the entry and what differs.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import click

from oracle import attest, reports
from oracle import keys as keyfiles
from oracle.config import (
    ConfigError,
    load_config,
    parse_config,
    read_keys,
    render_new_config,
)
from oracle.log import AttestationLog, AttestationLogError
from oracle.methodology import MethodologyError
from oracle.publisher import Publisher, PublishError
from oracle.verify import (
    OFFLINE_LIMITS,
    ChainView,
    Discrepancy,
    connect_hub,
    fetch_log,
    open_log_read_only,
    verify_log,
)


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
    """GPU oracle node: init, serve, round, attest, publish, verify."""


_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _peer(value: str) -> tuple[str, str]:
    name, sep, url = value.partition("=")
    if not sep or not name or not url:
        raise click.BadParameter(f"{value!r}: give NAME=URL, e.g. node-2=http://10.0.0.2:8700",
                                 param_hint="--peer")
    if not re.match(r"^https?://", url):
        raise click.BadParameter(f"{value!r}: the URL must start with http:// or https://",
                                 param_hint="--peer")
    return name, url


def _for_config(path: Path, folder: Path) -> str:
    """`path` as the config at `folder` should name it: relative paths stay relative
    (to the config's folder now), absolute ones stay absolute."""
    if path.is_absolute():
        return str(path)
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


@main.command("init")
@click.option("--name", required=True,
              help="This node's name, as its peers know it (letters, digits, . _ -).")
@click.option("--rpc", required=True, help="JSON-RPC URL of the chain the hub is on.")
@click.option("--hub", required=True,
              help="OracleHub address (the deployments file's oracle_hub).")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              required=True,
              help="Writes DIR/NAME.toml and DIR/NAME/ (keystores; later the log and state).")
@click.option("--peer", "peers", multiple=True, metavar="NAME=URL",
              help="Another node of the quorum and its URL (repeat for each).")
@click.option("--offers", type=click.Path(exists=True, path_type=Path), default=None,
              help="Marketplace offer snapshots the node builds index feeds from (a file "
                   "or a folder).")
@click.option("--replay", is_flag=True,
              help="With --offers: publish the folder's days in order (demos, tests).")
@click.option("--feed", "feeds", multiple=True, metavar="MODEL",
              help="Publish the GPU-hour index of this GPU model (repeat), e.g. "
                   "H100-SXM-80GB.")
@click.option("--password-env", default=keyfiles.DEFAULT_PASSPHRASE_ENV, show_default=True,
              metavar="NAME",
              help="Environment variable holding the keystores' passphrase; the node reads "
                   "it from there too.")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Or a file whose first line is the passphrase.")
@click.option("--scrypt-n", type=click.IntRange(min=2), default=keyfiles.DEFAULT_SCRYPT_N,
              show_default=True,
              help="scrypt work factor of the keystores (a power of 2); lower it only for "
                   "throwaway test keys.")
@click.pass_context
def init(ctx, name, rpc, hub, folder, peers, offers, replay, feeds, password_env,
         password_file, scrypt_n):
    """Create a node: its config, signer key and publisher key (encrypted keystores)."""
    from eth_account import Account

    from oracle import index

    if not _NODE_NAME.match(name):
        raise click.BadParameter(f"{name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
                                 "starting with a letter or digit (it names the node's "
                                 "folder)", param_hint="--name")
    try:
        hub = attest.checksum_address(hub)
    except ValueError as exc:
        why = ("its mixed-case checksum is wrong (a mistyped character?): copy it again"
               if "checksum" in str(exc) else
               "give 0x followed by the 40 hex digits of the OracleHub's address")
        raise click.BadParameter(f"{hub!r} is not an address: {why}; the deployments file "
                                 "(deployments/<chain>.json, oracle_hub) has it",
                                 param_hint="--hub") from exc
    if int(hub, 16) == 0:
        click.echo("warning: --hub is the zero address, a placeholder: put the OracleHub's "
                   "address in the config before starting the node", err=True)
    if not re.match(r"^https?://", rpc):
        raise click.BadParameter(f"{rpc!r}: give the chain's JSON-RPC URL "
                                 "(http:// or https://)", param_hint="--rpc")
    peer_list = [_peer(p) for p in peers]
    names = [p for p, _ in peer_list]
    if name in names or len(set(names)) != len(names):
        raise click.BadParameter("each peer needs its own name, other than --name",
                                 param_hint="--peer")
    for model in feeds:
        if model not in index.MODELS:
            raise click.BadParameter(f"{model!r} is not a GPU model the index knows; use one "
                                     f"of {', '.join(index.MODELS)}", param_hint="--feed")
    if replay and offers is None:
        raise click.UsageError("--replay needs --offers")
    explicit_env = ctx.get_parameter_source("password_env") != click.core.ParameterSource.DEFAULT
    if password_file is not None and explicit_env:
        raise click.UsageError("give --password-env or --password-file, not both")
    if scrypt_n & (scrypt_n - 1):
        raise click.BadParameter(f"{scrypt_n} is not a power of 2", param_hint="--scrypt-n")
    if not keyfiles.ENV_NAME.match(password_env):
        raise click.BadParameter(f"{password_env!r} is not an environment variable name",
                                 param_hint="--password-env")

    config_path = folder / f"{name}.toml"
    node_dir = folder / name
    files = {"signer": node_dir / "signer.json", "publisher": node_dir / "publisher.json"}
    taken = [p for p in (config_path, *files.values(), node_dir / "attestations.sqlite",
                         node_dir / "state.sqlite") if p.exists()]
    if taken:
        raise click.ClickException(
            f"{folder} already holds the node {name!r} ({', '.join(map(str, taken))}); "
            "nothing was written. A node's keys cannot be replaced silently: the hub knows "
            "its signer address. To keep that node, use its config as it is; to start a new "
            "one, give another --dir or --name, or move the old files away yourself first.")
    source = keyfiles.Passphrase(env=password_env, file=password_file)
    try:
        secret = source.read("that encrypts the new node's keys (the node reads it from the "
                             "same place when it starts)")
    except keyfiles.KeyFileError as exc:
        raise click.ClickException(f"{exc}; nothing was written") from exc
    text = render_new_config(
        name=name, rpc=rpc, hub=hub, peers=peer_list, feeds=list(feeds),
        offers=None if offers is None else _for_config(offers, folder), replay=replay,
        password_env=None if password_file is not None else password_env,
        password_file=None if password_file is None else _for_config(password_file, folder))
    try:
        parse_config(text, config_path)
    except ConfigError as exc:
        raise click.ClickException(f"{exc}; nothing was written") from exc

    created: list[Path] = []
    try:
        for path in (*reversed(folder.parents), folder, node_dir):
            if not path.exists():
                path.mkdir(mode=0o700 if path == node_dir else 0o777)
                created.append(path)
        addresses = {}
        for role, path in files.items():
            addresses[role] = keyfiles.write_keystore(path, Account.create().key, secret,
                                                      scrypt_n=scrypt_n)
            created.append(path)
        keyfiles.write_new(config_path, text.encode(), mode=0o644)
        created.append(config_path)
        load_config(config_path)
    except BaseException as exc:
        _remove(created)
        if isinstance(exc, OSError | ConfigError):
            raise click.ClickException(f"cannot create the node in {folder}: {exc}; "
                                       "nothing was left behind") from exc
        raise
    _next_steps(name, config_path, files, addresses, rpc=rpc, peers=names, feeds=feeds,
                passphrase=(f"the password file {password_file}" if password_file is not None
                            else f"${password_env}"))


def _remove(created: list[Path]) -> None:
    """Undo a failed `init`: what it created, newest first."""
    for path in reversed(created):
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)


def _next_steps(name: str, config_path: Path, files: dict[str, Path],
                addresses: dict[str, str], *, rpc: str, peers: list[str],
                feeds: tuple[str, ...], passphrase: str) -> None:
    from oracle import index

    signer, publisher = addresses["signer"], addresses["publisher"]
    others = "".join(f" \\\n           --signer 0x<{p}'s signer>" for p in peers)
    threshold = (len(peers) + 1) // 2 + 1  # a majority: k > n/2 keeps the logs from forking
    add_feeds = "".join(f"\n       ape run oracle add-feed --account ADMIN --name "
                        f"{index.feed_name_for(m)} ..." for m in feeds)
    click.echo(f"""Created the oracle node {name}:
  config      {config_path}
  signer      {signer}  ({files['signer']})
  publisher   {publisher}  ({files['publisher']})
Both keys are encrypted (V3 keystores) with the passphrase in {passphrase}.
Back them up, and keep the passphrase apart from them: neither can be recovered.

Next steps:
  1. Give the hub admin the signer address {signer}.
     The admin installs the signers of every node of the quorum at once, with a
     majority threshold{", and adds the feeds" if feeds else ""}:
       ape run oracle set-signers --account ADMIN --signer {signer}{others} \\
           --threshold {threshold}{add_feeds}
  2. Fund the publisher address {publisher} with gas on the hub's
     chain ({rpc}): it pays for the reports this node publishes.
  3. Start the node with the passphrase in {passphrase}, on the port its peers
     know it by:
       gpu-oracle serve --config {config_path} --port 8700
     and lead rounds with: gpu-oracle round --config {config_path}""")
    if not feeds:
        click.echo("  The config has no feeds yet: add [[feeds]] to it (see oracle/config.py), "
                   "or create the node with --feed MODEL.")


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
            log = (open_log_read_only(log_path) if node is None
                   else fetch_log(node, Path(tmp) / "fetched.sqlite"))
        except (ConnectionError, AttestationLogError) as exc:
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
    else:
        sets = ", ".join(f"entry {i} (config version {v})"
                         for i, v in summary.signer_set_entries) or "none"
        click.echo("NOT CHECKED offline (add --rpc URL --hub 0x... to check it against the "
                   "chain):")
        click.echo(f"  - the signer sets, taken on the log's word: {sets}. "
                   + OFFLINE_LIMITS[0][0].upper() + OFFLINE_LIMITS[0][1:])
        click.echo("  - " + OFFLINE_LIMITS[1][0].upper() + OFFLINE_LIMITS[1][1:])
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
    except (Refusal, ConnectionError, PublishError, ConfigError) as exc:
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
        failed |= o.status in ("no_quorum", "failed", "stuck")
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
