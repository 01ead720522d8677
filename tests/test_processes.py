"""Nothing a test or the demo starts outlives it: anvil and the oracle nodes die with
their parent, however it ends (SIGKILL, a test runner's timeout, Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpushares import processes
from gpushares.devnode import PROJECT_ROOT

pytestmark = pytest.mark.xdist_group("processes")


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_dead(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def start_harness() -> tuple[subprocess.Popen[bytes], list[int]]:
    parent = processes.spawn([sys.executable, "-m", "tests._process_harness"], cwd=PROJECT_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert parent.stdout is not None
    line = parent.stdout.readline().decode()
    assert line.startswith("children "), line + parent.stderr.read().decode()  # type: ignore[union-attr]
    children = [int(p) for p in line.split()[1:]]
    assert len(children) == 3 and all(alive(p) for p in children)
    for pid in children:  # each in a process group of its own, not the parent's
        assert os.getpgid(pid) == pid != os.getpgid(parent.pid)
    return parent, children


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_children_die_when_the_parent_is_killed():
    parent, children = start_harness()
    parent.kill()  # SIGKILL: no finally block runs, as when a test timeout kills a run
    parent.wait(timeout=10)
    assert wait_dead(children) == []


def test_ctrl_c_stops_every_child():
    parent, children = start_harness()
    parent.send_signal(signal.SIGINT)
    assert parent.wait(timeout=30) != 0
    assert wait_dead(children, timeout=5) == []


def test_a_timed_out_command_is_stopped_with_its_group():
    script = "sleep 300 & echo $!; sleep 300"
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        processes.run(["sh", "-c", script], timeout=1.0)
    assert time.monotonic() - started < 10
    grandchild = int((caught.value.output or b"").split()[0])
    assert wait_dead([grandchild], timeout=5) == []
