"""`gpu-oracle verify --log` on a node's live SQLite file: the log runs in WAL mode, so a
running (or crashed) node's newest entries are in the `-wal` file beside it, not in the
database file. The verifier must read them, and must never change the file it audits.

Before the fix, verify opened the log read-write: it saw the WAL when it sat beside the
file, but as the last connection to close it checkpointed a crashed node's WAL into the
database file and deleted it (the audited file changed); a copy without its `-wal` was
reported as "an empty database ... open it with create=True"; and a stopped node's log
in a read-only folder as "not a readable SQLite database ... restore the log from a
backup". Each test runs the real CLI in a subprocess.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from gpushares import processes
from oracle.log import AttestationLog, AttestationLogError
from tests.oracle import factories as f

GPU_ORACLE = Path(sys.executable).parent / "gpu-oracle"
REPO_ROOT = Path(__file__).resolve().parents[2]
N_ENTRIES = 1 + 2 * len(f.LISTING_CSVS)  # the signer set, then a price and a utilisation per day


# A node: writes the reference log, keeps it open until told (a line on stdin), appends
# one more entry (a new signer set), and waits for a second line to exit. It runs in a
# process of its own: reading the file's bytes in the writer's process (as the tests do)
# would drop SQLite's POSIX locks on it, which no real node does.
NODE = """
import sys
from pathlib import Path
from oracle import reports
from tests.oracle import factories as f
log = f.build_log(Path(sys.argv[1]))
print("READY", log.size, flush=True)
sys.stdin.readline()
reports.record_signer_set(log, f.DOMAIN, 2, f.signer_addresses(), f.THRESHOLD)
print("APPENDED", log.size, flush=True)
sys.stdin.readline()
log.close()
"""


def child_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path)


@contextmanager
def running_node(path: Path) -> Iterator[Callable[[], str]]:
    """A node process with the log at `path` open; yields `step()`, which lets it go on
    to its next step and returns what it printed."""
    proc = processes.spawn([sys.executable, "-c", NODE, path], cwd=REPO_ROOT, env=child_env(),
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None

    def step() -> str:
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        return proc.stdout.readline().decode()

    try:
        assert proc.stdout.readline().decode() == f"READY {N_ENTRIES}\n"
        yield step
    finally:
        processes.stop(proc)


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return processes.run([GPU_ORACLE, "verify", "--log", path], timeout=120)


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def fingerprint(path: Path) -> tuple[str | None, str | None]:
    """The database file and its WAL: what an auditor must leave as it found them (the
    `-shm` index is shared scratch memory every reader takes locks in)."""
    return digest(path), digest(wal(path))


def tables_without_wal(path: Path) -> list[str]:
    """What the database file alone holds (SQLite told to ignore any WAL). Asked in a
    child process: closing a second handle on the file in the writer's process would drop
    the writer's POSIX locks on it."""
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    code = (f"import sqlite3; db = sqlite3.connect({uri!r}, uri=True); print(*(r[0] for r in "
            "db.execute(\"SELECT name FROM sqlite_master WHERE type='table'\")))")
    result = processes.run([sys.executable, "-c", code], timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK {N_ENTRIES} entries ("), result.stdout


def test_a_running_nodes_log_verifies_in_place_and_is_left_unchanged(tmp_path: Path):
    path = tmp_path / "attestations.sqlite"
    with running_node(path) as step:
        # The premise: every entry is still in the WAL, the database file alone is empty.
        assert tables_without_wal(path) == []
        assert os.path.getsize(wal(path)) > 0
        before = fingerprint(path)
        ok(verify(path))
        assert fingerprint(path) == before
        # The node goes on appending after the audit, and the next audit sees it.
        assert step() == f"APPENDED {N_ENTRIES + 1}\n"
        result = verify(path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"OK {N_ENTRIES + 1} entries ("), result.stdout


def test_a_crashed_nodes_wal_is_read_not_checkpointed(tmp_path: Path):
    path = tmp_path / "attestations.sqlite"
    node = (f"import os, signal; from pathlib import Path; from tests.oracle import "
            f"factories as f; f.build_log(Path({str(path)!r})); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    crashed = processes.run([sys.executable, "-c", node], cwd=REPO_ROOT, env=child_env(),
                            timeout=120)
    assert crashed.returncode == -9, crashed.stderr
    assert tables_without_wal(path) == []
    before = fingerprint(path)
    ok(verify(path))
    ok(verify(path))  # the first run left the file as it was, WAL included
    assert fingerprint(path) == before


def test_a_copy_without_its_wal_is_refused_with_what_to_do(tmp_path: Path):
    path = tmp_path / "node" / "attestations.sqlite"
    path.parent.mkdir()
    copy = tmp_path / "copy.sqlite"
    with running_node(path):
        shutil.copyfile(path, copy)  # the database file only: the entries stay behind
        before = digest(copy)
        result = verify(copy)
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "holds no attestation log: the database is empty" in message
    assert "copy.sqlite-wal" in message
    assert "sqlite3 -readonly LOG \".backup copy.sqlite\"" in message
    assert "gpu-oracle verify --node http://NODE:PORT" in message
    assert "create=True" not in message
    assert digest(copy) == before


def _unshare_works() -> bool:
    if shutil.which("unshare") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs root and unshare for a read-only mount")
@pytest.mark.parametrize("node", ["stopped", "running"])
def test_a_log_on_a_read_only_mount(tmp_path: Path, node: str):
    """An auditor's read-only view of the node's folder (a `:ro` volume): SQLite cannot
    create the `-shm` file there, so a stopped node's log (no `-wal`) is read as
    immutable; a running node's is read through the `-wal` and `-shm` it keeps."""
    folder, mount = tmp_path / "node", tmp_path / "ro"
    folder.mkdir()
    mount.mkdir()
    path = folder / "attestations.sqlite"
    script = (f"mount --bind {folder} {mount} && mount -o remount,bind,ro {mount} && "
              f"exec {GPU_ORACLE} verify --log {mount / path.name}")
    with ExitStack() as stack:
        if node == "running":
            stack.enter_context(running_node(path))
        else:
            f.build_log(path).close()
            assert not wal(path).exists()
        before = fingerprint(path)
        ok(processes.run(["unshare", "-m", "sh", "-c", script], timeout=120))
        assert fingerprint(path) == before


def test_a_read_only_log_refuses_writes(tmp_path: Path):
    path = tmp_path / "attestations.sqlite"
    with running_node(path):
        before = fingerprint(path)
        with AttestationLog(path, read_only=True) as log:
            assert log.size == N_ENTRIES
            with pytest.raises(AttestationLogError, match="opened read-only"):
                log.append(b'{"probe":1}', kind="probe")
            with pytest.raises(AttestationLogError, match="opened read-only"):
                log.set_meta("probe", "1")
        assert fingerprint(path) == before
