"""The node's store of accepted telemetry batches (SQLite), and the v2 snapshot builder.

`TelemetryStore.accept` checks a signed batch against the agent registry and the clock
and either commits it or raises `TelemetryRejected(code, message)`; a rejected batch
changes nothing. Checks, in this order (the first failure is reported; a body without
a signature is `unsigned` before its batch's schema is checked):

- `invalid`: the body is not `{"batch": {...}, "signature": ...}` of the schema;
- `unsigned`: no signature, or an empty one;
- `bad_signature`: the signature is malformed or does not recover to `batch.agent`;
- `unknown_agent`: the agent is not in the registry;
- `wrong_spv`: the agent is not registered for the batch's SPV token;
- `unknown_gpu`: a sample's UUID (or serial) is not one of this agent's GPUs of that SPV;
- `future`: createdAt or a sample time is after now + max_skew_s;
- `stale`: createdAt or a sample time is before now - max_age_s;
- `replayed`: the same batch (hash) was accepted before (the message names the hash),
  the sequence is not above the agent's last accepted one, or a sample repeats an
  accepted (uuid, time).

`TelemetryRejected.http_status` suggests the HTTP status for each code (401 for the
signature codes, 403 for registry codes, 409 for replays, 422 for the rest).

Durability: WAL journal, `synchronous=FULL`, and one `BEGIN IMMEDIATE ... COMMIT`
transaction per accepted batch, with the replay checks inside it; `accept` returns
only after the commit, so an acknowledged batch survives a crash or power loss, and
several processes may share the file (writers serialise on SQLite's lock). Stored rows
cannot be updated (triggers refuse it).

`snapshot` builds the canonical input snapshot of `time-weighted-utilisation` v2 (see
`oracle.telemetry.methodology`) for one SPV token and period.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from oracle import attest
from oracle.telemetry import methodology as v2
from oracle.telemetry.batch import (
    BatchSignatureError,
    SignedBatch,
    TelemetryBatch,
    batch_hash,
    recover_agent,
)
from oracle.telemetry.registry import AgentRegistry
from oracle.telemetry.samples import TelemetryError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_MAX_AGE_S = 900
DEFAULT_MAX_SKEW_S = 60
_BUSY_TIMEOUT_S = 30.0

RejectionCode = Literal["unsigned", "bad_signature", "unknown_agent", "wrong_spv",
                        "unknown_gpu", "replayed", "stale", "future", "invalid"]


class TelemetryRejected(TelemetryError):
    """The store refused a batch; nothing was written. `code` is one of `RejectionCode`."""

    STATUS: ClassVar[dict[str, int]] = {
        "unsigned": 401, "bad_signature": 401,
        "unknown_agent": 403, "wrong_spv": 403, "unknown_gpu": 403,
        "replayed": 409,
        "stale": 422, "future": 422, "invalid": 422,
    }

    def __init__(self, code: RejectionCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The suggested HTTP status of the rejection (all 4xx: the agent must not retry)."""
        return self.STATUS[self.code]

    def detail(self) -> dict[str, str]:
        """`{"code", "message"}`: the body's `detail` of the HTTP rejection."""
        return {"code": self.code, "message": self.message}


class Accepted(BaseModel):
    """A committed batch."""

    model_config = ConfigDict(frozen=True)

    batch_hash: str
    agent: str
    spv_token: str
    sequence: int
    samples: int
    accepted_at: int

    def response(self) -> dict[str, Any]:
        """The HTTP 200 body: `{"accepted": true, "batchHash": "0x..", "samples": N}`."""
        return {"accepted": True, "batchHash": self.batch_hash, "samples": self.samples}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    batch_hash TEXT NOT NULL UNIQUE,
    agent TEXT NOT NULL,
    spv_token TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    first_time INTEGER NOT NULL,
    last_time INTEGER NOT NULL,
    sample_count INTEGER NOT NULL,
    body BLOB NOT NULL,
    accepted_at INTEGER NOT NULL,
    UNIQUE (agent, sequence)
);
CREATE INDEX IF NOT EXISTS batches_by_period ON batches (spv_token, last_time);
CREATE TABLE IF NOT EXISTS samples (
    uuid TEXT NOT NULL,
    time INTEGER NOT NULL,
    batch_id INTEGER NOT NULL REFERENCES batches (id),
    PRIMARY KEY (uuid, time)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS batches_immutable BEFORE UPDATE ON batches
BEGIN SELECT RAISE(ABORT, 'telemetry batches are immutable'); END;
CREATE TRIGGER IF NOT EXISTS samples_immutable BEFORE UPDATE ON samples
BEGIN SELECT RAISE(ABORT, 'telemetry samples are immutable'); END;
"""


class TelemetryStore:
    """Accepted telemetry batches in one SQLite file (see the module docstring).

    `registry`: the agent registry `accept` and `snapshot` use when they are not given
    one (the node may also pass its current registry to each call)."""

    def __init__(self, path: Path, registry: AgentRegistry | None = None) -> None:
        self.path = Path(path)
        self.registry = registry
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
            (version,) = self._db.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise TelemetryError(f"{self.path}: not a telemetry store ({exc}); point the "
                                 "node at another file") from exc
        if version != str(SCHEMA_VERSION):
            self._db.close()
            raise TelemetryError(f"{self.path}: telemetry store schema {version}, this build "
                                 f"reads {SCHEMA_VERSION}: upgrade gpu-shares")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the file (every accepted batch is already committed)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> TelemetryStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ accepting

    def accept(self, signed: SignedBatch | dict[str, Any],
               registry: AgentRegistry | None = None, *, now: int,
               max_age_s: int = DEFAULT_MAX_AGE_S,
               max_skew_s: int = DEFAULT_MAX_SKEW_S) -> Accepted:
        """Check and commit one signed batch (a `SignedBatch` or the request body as a
        dict). `now`: the node's unix time. Returns after the commit; raises
        `TelemetryRejected` (nothing written) per the table in the module docstring."""
        registry = self._registry(registry)
        signed = _parse(signed)
        batch = signed.batch
        try:
            signer = recover_agent(signed)
        except BatchSignatureError as exc:
            raise TelemetryRejected("bad_signature", f"{exc}: sign the canonical batch "
                                    "JSON with EIP-191 personal_sign") from exc
        if signer != batch.agent:
            raise TelemetryRejected(
                "bad_signature", f"the signature recovers {signer}, not the batch's agent "
                f"{batch.agent}: sign with the agent's key, over the batch as sent")
        _check_registry(batch, registry)
        _check_times(batch, now, max_age_s, max_skew_s)
        return self._commit(signed, now)

    def _commit(self, signed: SignedBatch, now: int) -> Accepted:
        batch = signed.batch
        digest = batch_hash(batch)
        times = [s.time for s in batch.samples]
        body = attest.canonical_json(signed.canonical())
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT accepted_at FROM batches WHERE batch_hash = ?",
                                 (digest,)).fetchone()
                if row is not None:
                    raise TelemetryRejected(
                        "replayed", f"batch {digest} was already accepted (at unix time "
                        f"{row[0]}); nothing to do")
                (last,) = db.execute("SELECT MAX(sequence) FROM batches WHERE agent = ?",
                                     (batch.agent,)).fetchone()
                if last is not None and batch.sequence <= last:
                    raise TelemetryRejected(
                        "replayed", f"sequence {batch.sequence} of agent {batch.agent} is not "
                        f"above its last accepted sequence {last}: number batches strictly "
                        "increasing (the agent's state file may have been reset)")
                cursor = db.execute(
                    "INSERT INTO batches (batch_hash, agent, spv_token, sequence, created_at,"
                    " source, first_time, last_time, sample_count, body, accepted_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (digest, batch.agent, batch.spv_token, batch.sequence, batch.created_at,
                     batch.source, min(times), max(times), len(times), body, now))
                batch_id = cursor.lastrowid
                try:
                    db.executemany("INSERT INTO samples (uuid, time, batch_id) VALUES (?, ?, ?)",
                                   [(s.uuid, s.time, batch_id) for s in batch.samples])
                except sqlite3.IntegrityError as exc:
                    raise TelemetryRejected(
                        "replayed", f"{self._repeated(batch)}: send only samples newer than "
                        "those already accepted") from exc
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return Accepted(batch_hash=digest, agent=batch.agent, spv_token=batch.spv_token,
                        sequence=batch.sequence, samples=len(times), accepted_at=now)

    def _repeated(self, batch: TelemetryBatch) -> str:
        for s in batch.samples:
            if self._db.execute("SELECT 1 FROM samples WHERE uuid = ? AND time = ?",
                                (s.uuid, s.time)).fetchone():
                return f"a sample for {s.uuid} at unix time {s.time} was already accepted"
        return "a sample repeats an accepted one"  # pragma: no cover - caught by the model

    # ------------------------------------------------------------------ reading

    def last_sequence(self, agent: str) -> int | None:
        """The agent's last accepted sequence number, or None."""
        with self._lock:
            (last,) = self._db.execute("SELECT MAX(sequence) FROM batches WHERE agent = ?",
                                       (attest.checksum_address(agent),)).fetchone()
        return last

    def counts(self) -> dict[str, int]:
        """`{"batches": n, "samples": m}` stored."""
        with self._lock:
            (b,) = self._db.execute("SELECT COUNT(*) FROM batches").fetchone()
            (s,) = self._db.execute("SELECT COUNT(*) FROM samples").fetchone()
        return {"batches": b, "samples": s}

    def batches(self, spv_token: str, since: int, until: int) -> list[SignedBatch]:
        """The accepted batches of `spv_token` with a sample time in [since, until) (the
        whole batch), ordered by agent and sequence."""
        spv_token = attest.checksum_address(spv_token)
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM batches WHERE spv_token = ? AND last_time >= ? AND "
                "first_time < ? ORDER BY agent, sequence", (spv_token, since, until)
            ).fetchall()
        out = [SignedBatch.model_validate(json.loads(body)) for (body,) in rows]
        return sorted(out, key=lambda b: (int(b.batch.agent, 16), b.batch.sequence))

    def snapshot(self, spv_token: str, period_start: int, period_end: int, *,
                 rental_invoices: Iterable[int] = (),
                 registry: AgentRegistry | None = None) -> dict[str, Any]:
        """The canonical input snapshot of `time-weighted-utilisation` v2 for one SPV token
        and period: the registered GPUs of the token (from `registry`, default the
        store's) and every accepted batch with a sample in
        [period_start - MAX_GAP_S, period_end). A stored batch that the current registry
        no longer allows (a GPU moved to another agent or SPV) is left out, with a
        warning in the log. Feed it to `oracle.methodology.compute("utilisation",
        attest.canonical_json(snapshot))`."""
        registry = self._registry(registry)
        spv_token = attest.checksum_address(spv_token)
        if period_end <= period_start:
            raise ValueError(f"empty period: period_end {period_end} must exceed "
                             f"period_start {period_start}")
        invoices = list(rental_invoices)
        if any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in invoices):
            raise ValueError("rental invoices are non-negative integer stablecoin amounts")
        gpus = registry.registered_gpus(spv_token)
        if not gpus:
            raise TelemetryError(f"no GPU is registered for SPV {spv_token} in the agent "
                                 "registry: add its agents and GPUs before reporting")
        allowed = {(g.uuid, g.agent) for g in gpus}
        kept = []
        for signed in self.batches(spv_token, period_start - v2.MAX_GAP_S, period_end):
            b = signed.batch
            if all((s.uuid, b.agent) in allowed for s in b.samples):
                kept.append(signed)
            else:
                log.warning("telemetry batch %s (agent %s, sequence %d) left out of the %s "
                            "snapshot: the agent registry no longer lists all its GPUs for "
                            "this agent", batch_hash(b), b.agent, b.sequence, spv_token)
        return v2.make_snapshot(spv_token, period_start, period_end, gpus, kept, invoices)

    def _registry(self, registry: AgentRegistry | None) -> AgentRegistry:
        chosen = registry if registry is not None else self.registry
        if chosen is None:
            raise TelemetryError("no agent registry: pass registry= or create the store "
                                 "with TelemetryStore(path, registry)")
        return chosen


# ---------------------------------------------------------------------- checks


def _parse(signed: SignedBatch | dict[str, Any]) -> SignedBatch:
    if isinstance(signed, SignedBatch):
        return signed
    if not isinstance(signed, dict) or not isinstance(signed.get("batch"), dict):
        raise TelemetryRejected("invalid", 'the body must be {"batch": {...}, '
                                '"signature": "0x..."}')
    unexpected = sorted(set(signed) - {"batch", "signature"})
    if unexpected:
        raise TelemetryRejected("invalid", f"unexpected fields {unexpected}: the body is "
                                '{"batch": {...}, "signature": "0x..."}')
    signature = signed.get("signature")
    if signature is None or signature == "" or signature == "0x":
        raise TelemetryRejected("unsigned", "the batch has no signature: sign it with the "
                                "agent's key (EIP-191 personal_sign over its canonical JSON)")
    try:
        batch = TelemetryBatch.model_validate(signed["batch"])
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise TelemetryRejected("invalid", f"batch.{where}: {err['msg']}") from exc
    try:
        return SignedBatch(batch=batch, signature=signature)
    except ValidationError as exc:
        raise TelemetryRejected("bad_signature", "the signature must be 0x followed by 65 "
                                "bytes (130 hex digits): r, s, v") from exc


def _check_registry(batch: TelemetryBatch, registry: AgentRegistry) -> None:
    if not registry.is_agent(batch.agent):
        raise TelemetryRejected("unknown_agent", f"agent {batch.agent} is not in this node's "
                                "agent registry: ask the operator to register it")
    entry = registry.entry(batch.agent, batch.spv_token)
    if entry is None:
        allowed = ", ".join(registry.spv_tokens_of(batch.agent))
        raise TelemetryRejected("wrong_spv", f"agent {batch.agent} may report for {allowed}, "
                                f"not for SPV {batch.spv_token}")
    gpus = {g.uuid: g for g in entry.gpus}
    for j, sample in enumerate(batch.samples):
        gpu = gpus.get(sample.uuid)
        if gpu is None:
            raise TelemetryRejected(
                "unknown_gpu", f"sample {j}: GPU {sample.uuid} is not registered to agent "
                f"{batch.agent} for SPV {batch.spv_token}: register it or leave it out")
        if sample.serial is not None and sample.serial != gpu.serial:
            raise TelemetryRejected(
                "unknown_gpu", f"sample {j}: GPU {sample.uuid} reports serial "
                f"{sample.serial}, the registry has {gpu.serial}: check the inventory")


def _check_times(batch: TelemetryBatch, now: int, max_age_s: int, max_skew_s: int) -> None:
    newest = max([batch.created_at] + [s.time for s in batch.samples])
    oldest = min([batch.created_at] + [s.time for s in batch.samples])
    if newest > now + max_skew_s:
        raise TelemetryRejected("future", f"a time in the batch ({newest}) is more than "
                                f"{max_skew_s} s after the node's clock ({now}): check the "
                                "agent host's clock (NTP) and the nvidia-smi time zone")
    if oldest < now - max_age_s:
        raise TelemetryRejected("stale", f"a time in the batch ({oldest}) is more than "
                                f"{max_age_s} s before the node's clock ({now}): send "
                                "batches as they are captured")
