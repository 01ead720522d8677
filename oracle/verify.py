"""Re-verify an attestation log offline, and optionally against the chain.

Trusts nothing the oracle operator says. For every entry, in order:

1. the entry parses, is the canonical bytes of its entry format version (1: the
   legacy form, 2: RFC 8785; a log may hold both, see `oracle.entries`) and names its
   own position (a dropped, inserted or reordered entry is caught at the first position
   where it shows);
2. a signer set entry is recorded; every later report is checked against the set of
   the config version it names (k-of-n, ascending distinct signers, canonical s);
3. the report's `(logSize, logRoot)` equals the root recomputed over the log's first
   `logSize` entries: every signed report pins the history before it, so changing
   anything before it (one byte, a dropped entry, a swap, a rewrite) breaks a
   signature-protected commitment;
4. its stored raw inputs hash to `inputsHash`, and where this build knows the
   methodology, recomputing them gives the report's fields exactly.

With a chain (RPC URL + hub address), also:

5. the hub's signer sets (`SignerSetChanged`) equal the log's signer-set entries;
6. every value the hub accepted (`PriceUpdated`, `UtilisationUpdated`) equals a log
   entry, field by field, and every entry the log marks published is on-chain;
7. every on-chain checkpoint equals the log's root at that size, successive checkpoints
   are proven consistent (RFC 6962 consistency proofs, checked by the RFC 9162
   verifier), and the hub's stored checkpoint is the log's root at its size.

The first discrepancy stops the run with a `Discrepancy` naming the entry (or block)
and what differs.

What offline verification cannot catch (`OFFLINE_LIMITS`, printed by `gpu-oracle verify`
without `--rpc`): a signer-set entry is signed by nobody, so the sets are taken on the
log's word. Whoever can write the log can append a made-up signer set and reports only
its own keys signed, or rewrite history under a made-up set: it all verifies offline.
Only the hub (its `SignerSetChanged` events and checkpoints) authenticates the signer
sets and pins the history.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from oracle import attest, merkle, methodology
from oracle.entries import EntryFormatError, ReportEntry, SignerSetEntry, parse_leaf
from oracle.log import AttestationLog, LogUnreadable


class Discrepancy(Exception):
    """The log (or the chain) is not what the signatures and checkpoints say."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what


OFFLINE_LIMITS = (
    "a signer-set entry is signed by nobody, so every signer set is taken on the log's "
    "word: a log rewritten with a made-up signer set and reports only its keys signed "
    "verifies offline. Only the hub's SignerSetChanged events authenticate a set",
    "whether the hub holds these values and checkpoints: a log that lacks published "
    "entries, or that forked from the history the chain anchors, verifies offline",
)


class VerifySummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    entries: int
    reports: int
    signer_sets: int
    signatures: int
    recomputed: int
    not_recomputed: int
    root: str
    chain_values: int = 0
    chain_checkpoints: int = 0
    chain_checked: bool = False
    # (entry index, config version) of every signer set: offline, taken on the log's word
    signer_set_entries: list[tuple[int, int]] = []
    # entry format version -> how many entries are written in it (oracle.entries)
    format_versions: dict[int, int] = {}


@dataclass
class _State:
    sets: dict[int, SignerSetEntry] = field(default_factory=dict)
    roots: list[bytes] = field(default_factory=lambda: [merkle.EMPTY_ROOT])
    leaf_hashes: list[bytes] = field(default_factory=list)
    reports: dict[int, ReportEntry] = field(default_factory=dict)
    domain: attest.Domain | None = None
    signatures: int = 0
    recomputed: int = 0
    not_recomputed: int = 0
    format_versions: dict[int, int] = field(default_factory=dict)


def verify_log(log: AttestationLog, chain: ChainView | None = None) -> VerifySummary:
    """Verify every entry of `log` (and the chain, if given); raises Discrepancy."""
    st = _State()
    compact = merkle.CompactRange()
    for position, stored in enumerate(log.entries()):
        where = f"entry {position}"
        try:
            entry = parse_leaf(stored.leaf)
        except EntryFormatError as exc:
            raise Discrepancy(where, f"not a valid entry: {exc}") from exc
        if entry.index != position:
            raise Discrepancy(
                where,
                f"it says it is entry {entry.index}: an entry was dropped, inserted or reordered",
            )
        st.format_versions[entry.format_version] = (
            st.format_versions.get(entry.format_version, 0) + 1)
        domain = entry.domain if isinstance(entry, SignerSetEntry) else entry.signed.domain
        if st.domain is None:
            st.domain = domain
        elif domain != st.domain:
            raise Discrepancy(where, f"it is for hub {domain.hub} on chain {domain.chain_id}, "
                                     f"the log's first entry for {st.domain.hub} on "
                                     f"{st.domain.chain_id}")
        if isinstance(entry, SignerSetEntry):
            if entry.config_version in st.sets:
                raise Discrepancy(where, f"config version {entry.config_version} recorded twice")
            st.sets[entry.config_version] = entry
        else:
            _check_report(position, entry, stored.inputs, st)
        leaf_hash = merkle.leaf_hash(stored.leaf)
        compact.append(leaf_hash)
        st.leaf_hashes.append(leaf_hash)
        st.roots.append(compact.root())
    summary = VerifySummary(
        entries=len(st.roots) - 1,
        reports=len(st.reports),
        signer_sets=len(st.sets),
        signatures=st.signatures,
        recomputed=st.recomputed,
        not_recomputed=st.not_recomputed,
        root="0x" + st.roots[-1].hex(),
        signer_set_entries=[(e.index, v) for v, e in sorted(st.sets.items(),
                                                            key=lambda kv: kv[1].index)],
        format_versions=dict(sorted(st.format_versions.items())),
    )
    if chain is None:
        return summary
    values, checkpoints = _check_chain(log, chain, st)
    return summary.model_copy(
        update={"chain_values": values, "chain_checkpoints": checkpoints, "chain_checked": True}
    )


def _check_report(position: int, entry: ReportEntry, inputs: bytes | None, st: _State) -> None:
    where = f"entry {position}"
    signed = entry.signed
    report = signed.report
    signer_set = st.sets.get(report.config_version)
    if signer_set is None:
        raise Discrepancy(where, f"names config version {report.config_version}, but no earlier "
                                 "entry records that signer set")
    try:
        attest.check_signatures(signed, signer_set.signers, signer_set.threshold)
    except attest.AttestationError as exc:
        raise Discrepancy(where, f"signature check failed: {exc}") from exc
    st.signatures += len(signed.signatures)
    size = report.log_size
    if size > position:
        raise Discrepancy(where, f"its report commits to log size {size}, beyond its own "
                                 f"position {position}")
    if bytes.fromhex(report.log_root[2:]) != st.roots[size]:
        raise Discrepancy(
            where,
            f"its signed report commits to log root {report.log_root} at size {size}, but the "
            f"log's first {size} entries hash to 0x{st.roots[size].hex()}: an earlier entry "
            "was changed, dropped or reordered, or history was rewritten",
        )
    if inputs is None:
        raise Discrepancy(where, "its raw inputs are not stored in the log")
    try:
        canonical = attest.encode_canonical(
            attest.loads_no_floats(inputs, object_pairs_hook=_no_duplicates))
    except (ValueError, RecursionError, attest.AttestationError) as exc:
        raise Discrepancy(where, f"its stored inputs are not canonical JSON: {exc}") from exc
    if canonical != inputs:
        raise Discrepancy(where, "its stored inputs are not in canonical form (sorted keys, no "
                                 "whitespace): another parser could read them differently")
    digest = "0x" + hashlib.sha256(inputs).hexdigest()
    if digest != report.inputs_hash:
        raise Discrepancy(where, f"its stored inputs hash to {digest}, the signed report says "
                                 f"{report.inputs_hash}")
    try:
        fields = methodology.compute(signed.kind, inputs)
    except methodology.MethodologyError as exc:
        raise Discrepancy(where, f"its inputs cannot be evaluated: {exc}") from exc
    if fields is None:
        st.not_recomputed += 1
    else:
        for name, expected in fields.model_dump().items():
            actual = getattr(report, name)
            if actual != expected:
                raise Discrepancy(where, f"recomputing {name} from its inputs gives {expected}, "
                                         f"the signed report says {actual}")
        st.recomputed += 1
    st.reports[position] = entry


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


# ------------------------------------------------------------------- a log file


def open_log_read_only(path: Path) -> AttestationLog:
    """Open a log file for auditing without changing it, a running node's log included:
    SQLite's read-only mode reads the entries still in its `-wal` file (see
    `oracle.log`). Where the file cannot be read like that, the error says what to do."""
    try:
        return AttestationLog(path, read_only=True)
    except LogUnreadable as exc:
        raise LogUnreadable(
            f"{exc}. Nothing was changed. Verify the log where its node writes it (on "
            "that machine, or a mount of its whole folder); or, there, take a consistent "
            "copy that includes the WAL, `sqlite3 -readonly LOG \".backup copy.sqlite\"` "
            "(LOG: the node's log file), and verify the copy; or verify the running node "
            "over HTTP: `gpu-oracle verify --node http://NODE:PORT`"
        ) from exc


# ------------------------------------------------------------------- node


def fetch_log(node_url: str, path: Path, *, page: int = 1_000) -> AttestationLog:
    """Copy a node's log (its `/v1/attestations` pages) into a fresh local file and
    check that the copy reproduces the node's advertised checkpoint and an inclusion
    proof of its last entry; then it is verified like any log file."""
    import httpx

    base = node_url.rstrip("/")
    log = AttestationLog(path)
    try:
        with httpx.Client(timeout=30.0) as client:

            def get(url: str, **params: int) -> Any:
                response = client.get(f"{base}{url}", params=params)
                response.raise_for_status()
                return response.json()

            checkpoint = get("/v1/checkpoint")
            size = int(checkpoint["size"])
            while log.size < size:
                batch = get("/v1/attestations", after=log.size - 1,
                            limit=min(page, size - log.size))["entries"]
                if not batch:
                    raise Discrepancy("node", f"stopped serving entries at {log.size} of {size}")
                for item in batch:
                    if item["index"] != log.size:
                        raise Discrepancy("node", f"served entry {item['index']} where "
                                                  f"{log.size} was due")
                    leaf = bytes.fromhex(item["leaf"][2:])
                    inputs = bytes.fromhex(item["inputs"][2:]) if item["inputs"] else None
                    log.append(leaf, kind=item["kind"], inputs=inputs,
                               inputs_location=item["inputs_location"])
                    pub = item.get("publication")
                    if pub and pub["status"] == "published":
                        log.record_outcome(item["index"], status="published",
                                           tx_hash=pub["tx_hash"],
                                           block_number=pub["block_number"])
            local = log.checkpoint(size)
            if "0x" + local.root.hex() != checkpoint["root"]:
                raise Discrepancy("node", f"its entries hash to 0x{local.root.hex()} at size "
                                          f"{size}, but it advertises {checkpoint['root']}")
            if size:
                last = get(f"/v1/attestations/{size - 1}")
                proof = [bytes.fromhex(p[2:]) for p in last["inclusion_proof"]]
                if last["tree_size"] >= size and not merkle.verify_inclusion(
                    merkle.leaf_hash(bytes.fromhex(last["leaf"][2:])), size - 1,
                    last["tree_size"], proof, bytes.fromhex(last["root"][2:]),
                ):
                    raise Discrepancy("node", f"its inclusion proof for entry {size - 1} "
                                              "does not verify")
    except httpx.HTTPError as exc:
        log.close()
        raise ConnectionError(f"cannot read the node at {node_url}: {exc}") from exc
    except Exception:
        log.close()
        raise
    return log


# ------------------------------------------------------------------- chain


def connect_hub(rpc_url: str, hub_address: str, *, provider_retries: bool = True) -> Any:
    """The OracleHub at `hub_address` through a web3.py HTTP connection to `rpc_url`;
    ConnectionError if no node answers or no contract is there. `provider_retries=False`
    switches off web3.py's own read retries, for a caller with its own retry policy."""
    from web3 import Web3

    from gpushares import abi

    kwargs: dict[str, Any] = {} if provider_retries else {"exception_retry_configuration": None}
    web3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}, **kwargs))
    if not web3.is_connected():
        raise ConnectionError(f"no JSON-RPC node answers at {rpc_url}")
    hub = web3.eth.contract(Web3.to_checksum_address(hub_address), abi=abi.load("OracleHub"))
    if not web3.eth.get_code(hub.address):
        raise ConnectionError(f"no contract at {hub.address} on chain {web3.eth.chain_id}")
    return hub


class ChainView:
    """What the verifier reads from the hub (web3.py)."""

    def __init__(self, rpc_url: str, hub_address: str, *, from_block: int = 0) -> None:
        self.hub = connect_hub(rpc_url, hub_address)
        self.web3 = self.hub.w3
        self.from_block = from_block

    @property
    def domain(self) -> attest.Domain:
        return attest.Domain(chain_id=self.web3.eth.chain_id, hub=self.hub.address)

    def events(self, name: str) -> list[Any]:
        event = getattr(self.hub.events, name)
        logs = event.get_logs(from_block=self.from_block)
        return sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))

    def checkpoint(self) -> tuple[int, bytes]:
        size, root = self.hub.functions.checkpoint().call()
        return int(size), bytes(root)


def _check_chain(log: AttestationLog, chain: ChainView, st: _State) -> tuple[int, int]:
    if st.domain is not None and st.domain != chain.domain:
        raise Discrepancy("chain", f"the log is for hub {st.domain.hub} on chain "
                                   f"{st.domain.chain_id}, not {chain.domain.hub} on "
                                   f"{chain.domain.chain_id}")
    # 5. signer sets
    installed = chain.events("SignerSetChanged")
    versions = {int(ev["args"]["config_version"]) for ev in installed}
    for version, logged in st.sets.items():
        if version not in versions:
            raise Discrepancy(f"entry {logged.index}", f"records signer set config version "
                                                        f"{version}, which the hub never installed")
    for ev in installed:
        version = int(ev["args"]["config_version"])
        logged = st.sets.get(version)
        if logged is None:
            continue  # a set no report in this log names
        onchain = [attest.checksum_address(a) for a in ev["args"]["signers"]]
        if onchain != list(logged.signers) or int(ev["args"]["threshold"]) != logged.threshold:
            raise Discrepancy(f"config version {version}",
                              f"the hub installed signers {list(ev['args']['signers'])} "
                              f"threshold {ev['args']['threshold']}, the log (entry "
                              f"{logged.index}) records {logged.signers} threshold "
                              f"{logged.threshold}")
    # 6. values
    by_key: dict[tuple[Any, ...], ReportEntry] = {}
    for entry in st.reports.values():
        r = entry.signed.report
        if isinstance(r, attest.PriceReport):
            by_key[("price", r.feed_id, r.observed_at, r.inputs_hash)] = entry
        else:
            by_key[("utilisation", r.spv_token, r.period_end, r.inputs_hash)] = entry
    seen: set[int] = set()
    checkpoints: list[tuple[int, bytes, str]] = []
    values = 0
    for kind, ev in [("price", e) for e in chain.events("PriceUpdated")] + [
        ("utilisation", e) for e in chain.events("UtilisationUpdated")
    ]:
        a = ev["args"]
        where = f"block {ev['blockNumber']} tx 0x{bytes(ev['transactionHash']).hex()}"
        inputs_hash = "0x" + bytes(a["inputs_hash"]).hex()
        if kind == "price":
            key: tuple[Any, ...] = ("price", "0x" + bytes(a["feed_id"]).hex(),
                                    int(a["observed_at"]), inputs_hash)
            onchain = {"value": int(a["value"]), "observed_at": int(a["observed_at"])}
        else:
            key = ("utilisation", attest.checksum_address(a["spv_token"]), int(a["period_end"]),
                   inputs_hash)
            onchain = {
                "period_start": int(a["period_start"]), "period_end": int(a["period_end"]),
                "gpu_count": int(a["gpu_count"]), "utilisation_bps": int(a["utilisation_bps"]),
                "rental_revenue": int(a["rental_revenue"]),
            }
        entry = by_key.get(key)
        if entry is None:
            raise Discrepancy(where, f"the hub accepted a {kind} value ({onchain}, inputs "
                                     f"{inputs_hash}) that matches no entry of this log")
        report = entry.signed.report
        for name, value in onchain.items():
            if getattr(report, name) != value:
                raise Discrepancy(f"entry {entry.index}", f"on-chain {name} is {value}, the log "
                                                          f"says {getattr(report, name)} ({where})")
        if (int(a["log_size"]), "0x" + bytes(a["log_root"]).hex()) != (report.log_size,
                                                                      report.log_root):
            raise Discrepancy(f"entry {entry.index}", f"on-chain checkpoint differs ({where})")
        seen.add(entry.index)
        checkpoints.append((int(a["log_size"]), bytes(a["log_root"]), where))
        values += 1
    for pub in log.publications():
        if pub.status == "published" and pub.index not in seen:
            raise Discrepancy(f"entry {pub.index}", f"the log says it was published in "
                                                    f"{pub.tx_hash}, but the hub has no such "
                                                    "value")
    # 7. checkpoints, in chain order
    checkpoints.sort(key=lambda c: c[0])
    previous: tuple[int, bytes] | None = None
    for size, root, where in checkpoints:
        if size >= len(st.roots):
            raise Discrepancy(where, f"on-chain checkpoint size {size} is beyond this log's "
                                     f"{len(st.roots) - 1} entries: the log was truncated")
        if root != st.roots[size]:
            raise Discrepancy(where, f"on-chain checkpoint at size {size} has root 0x{root.hex()}"
                                     f", the log's first {size} entries hash to "
                                     f"0x{st.roots[size].hex()}: history was rewritten")
        if previous is not None and previous[0] > 0 and size > previous[0]:
            proof = merkle.consistency_proof(st.leaf_hashes, previous[0], size)
            if not merkle.verify_consistency(previous[0], size, previous[1], root, proof):
                raise Discrepancy(where, f"checkpoints at sizes {previous[0]} and {size} are not "
                                         "consistent")
        previous = (size, root)
    size, root = chain.checkpoint()
    if size and (size >= len(st.roots) or root != st.roots[size]):
        raise Discrepancy("hub checkpoint", f"the hub stores root 0x{root.hex()} at size {size}"
                                            ", which this log does not reproduce")
    return values, len(checkpoints)
