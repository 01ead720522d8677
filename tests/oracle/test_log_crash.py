"""Crash test: SIGKILL a process appending to the log at random moments.

Afterwards the log must open, verify, be contiguous, and contain every entry whose append
was acknowledged (the worker prints ``ACK`` only after ``append`` returned), with the
acknowledged root matching ``checkpoint(index + 1)``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gpushares import processes
from oracle.log import AttestationLog
from oracle.merkle import CompactRange, leaf_hash, verify_consistency
from tests.oracle._append_worker import expected_inputs, expected_kind, expected_leaf

WORKER = Path(__file__).with_name("_append_worker.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 8
SEED = 0x6F7261636C65  # "oracle"
# Rounds whose kill timer starts when the process starts (so the kill may land during
# interpreter start-up, log creation or the integrity check on open) instead of when the
# worker reports that the log is open.
KILL_FROM_SPAWN = {0, 5}

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


class Worker:
    """One child process and a thread draining its stdout (complete lines only)."""

    def __init__(self, path: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.proc = processes.spawn([sys.executable, WORKER, path], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if not raw.endswith(b"\n"):
                break  # cut off by the kill: not an acknowledgement
            line = raw.decode().rstrip("\n")
            self.lines.append(line)
            if line.startswith("READY"):
                self.ready.set()

    def kill(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        assert self.proc.stderr is not None
        stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc.stderr.close()
        return code, stderr


def test_sigkill_at_random_moments_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    acked: dict[int, str] = {}  # index -> root hex acknowledged after append returned
    appended_in_round: list[int] = []
    boundaries: set[int] = set()
    rng_check = random.Random(SEED)
    started = time.monotonic()

    for rnd in range(ROUNDS):
        rng = random.Random(SEED * 1000 + rnd)  # reproducible, different every round
        delay = rng.uniform(0.05, 0.35) if rnd in KILL_FROM_SPAWN else rng.uniform(0.05, 0.6)
        worker = Worker(path)
        try:
            if rnd not in KILL_FROM_SPAWN:
                assert worker.ready.wait(timeout=20), "worker never opened the log"
            time.sleep(delay)
        finally:
            code, stderr = worker.kill()
        # Killed, not crashed: a worker that could not open the log exits with a traceback.
        assert code == -signal.SIGKILL, f"round {rnd}: worker exited {code}:\n{stderr}"

        ready = [line for line in worker.lines if line.startswith("READY")]
        acks = [line.split() for line in worker.lines if line.startswith("ACK")]
        if ready:
            start = int(ready[0].split()[1])
            # The worker resumed after everything acknowledged so far (and possibly after
            # entries committed but not acknowledged before the previous kill).
            assert start >= (max(acked) + 1 if acked else 0)
            assert [int(a[1]) for a in acks] == list(range(start, start + len(acks)))
        else:
            assert acks == []
        for _, index, root in acks:
            acked[int(index)] = root
        if acks:
            boundaries.update({int(acks[0][1]), int(acks[-1][1])})
        appended_in_round.append(len(acks))

    assert sum(1 for n in appended_in_round if n) >= ROUNDS // 2, appended_in_round
    assert len(acked) >= 50, f"too few appends to be meaningful: {appended_in_round}"

    with AttestationLog(path, create=False) as log:
        final = log.verify_integrity()  # contiguous 0..n-1, every leaf hash matches
        assert final == log.checkpoint()
        assert final.size >= max(acked) + 1
        entries = list(log.entries())
        assert [e.index for e in entries] == list(range(final.size))
        for e in entries:  # acknowledged or not, whatever is there is intact
            assert e.leaf == expected_leaf(e.index)
            assert e.kind == expected_kind(e.index)
            assert e.inputs == expected_inputs(e.index)
        # Every acknowledged root, against roots rebuilt here from the expected leaves...
        prefix = CompactRange()
        for e in entries:
            prefix.append(leaf_hash(expected_leaf(e.index)))
            if e.index in acked:
                assert prefix.root().hex() == acked[e.index], f"entry {e.index}"
        # ... and against the log's own checkpoint(index + 1) (each one rehashes the
        # prefix, so a sample keeps this linear rather than quadratic), always including
        # the first and last acknowledgement of every round.
        sample = set(rng_check.sample(sorted(acked), min(len(acked), 40))) | boundaries
        for index in sorted(sample):
            assert log.checkpoint(index + 1).root.hex() == acked[index], f"entry {index}"
        # Every acknowledged checkpoint is a prefix of the final tree.
        for index in sorted(acked)[:: max(1, len(acked) // 25)]:
            old_root = bytes.fromhex(acked[index])
            proof = log.consistency_proof(index + 1, final.size)
            assert verify_consistency(index + 1, final.size, old_root, final.root, proof)

    elapsed = time.monotonic() - started
    assert elapsed < 20, f"crash test took {elapsed:.1f} s"
