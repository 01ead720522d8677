"""Child processes that never outlive their parent: anvil, oracle nodes, `ape` commands.

Every process the demo, the benchmark or a test starts goes through `spawn`:

- it gets a process group of its own (a new session), so `stop` can signal everything it
  started in turn, and a Ctrl-C typed at the terminal reaches only the parent, whose
  `finally` blocks and context managers then stop the children in order;
- on Linux it asks the kernel for a parent-death signal (`PR_SET_PDEATHSIG`): if the
  parent dies without cleaning up (SIGKILL, or a test runner's timeout killing it), the
  kernel sends the child SIGTERM at once, so nothing is left running under pid 1.

The death signal is tied to the thread that started the child: start long-lived
children from the main thread (the demo, the fixtures and the benchmark all do).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1
_LIBC: Any = None
if sys.platform.startswith("linux"):
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A pre-exec hook for the child: SIGTERM when `parent` dies (Linux only)."""
    if _LIBC is None:
        return None

    def hook() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody will signal us.
        if os.getppid() != parent:
            os._exit(1)

    return hook


def spawn(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own process group, to die with this process."""
    return subprocess.Popen(  # noqa: S603 - argv from the caller, no shell
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 - only prctl + getppid
    )


def stop(process: subprocess.Popen[Any] | None, *, grace_s: float = 5.0,
         sig: int = signal.SIGTERM) -> None:
    """Signal the process group of `process` (SIGTERM by default, SIGKILL after `grace_s`)
    and reap it. A process that already exited is only reaped."""
    if process is None:
        return
    if process.poll() is None:
        _signal_group(process.pid, sig)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=grace_s)
    # A group member the leader left behind (it exited first) is stopped too.
    _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(argv, capture_output=True, text=True)` through `spawn`: on a
    timeout, or if this process is interrupted, the child's whole group is stopped."""
    process = spawn(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(process, grace_s=2.0)
        out, err = process.communicate()
        raise subprocess.TimeoutExpired(
            process.args, timeout, output=out, stderr=err) from None
    except BaseException:
        stop(process, grace_s=2.0)
        raise
    return subprocess.CompletedProcess(
        process.args, process.returncode, out.decode(errors="replace"),
        err.decode(errors="replace"))
