"""`ape run SCRIPT ...` inside this process.

Starting `ape` costs about 3.6 CPU-seconds (ape and its plugins load), the script itself a
fraction of that. The demo and the integration tests run many commands, so they load ape
once and invoke its command line here, with click's test runner: the same argument
parsing, network connection, script loading and exit codes as `ape run` in a shell,
without a new interpreter each time. Each call connects to the node named by
APE_FOUNDRY_HOST in `env` and disconnects at the end, so one process can drive several
nodes in turn (never concurrently: the runner swaps the process's stdout and
environment).
"""

from __future__ import annotations

import os
import threading
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from gpushares.devnode import PROJECT_ROOT

_LOCK = threading.Lock()


@dataclass(frozen=True)
class ApeOutcome:
    """What one command did: its exit code and what it printed (stdout and stderr)."""

    returncode: int
    output: str


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    cwd = os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(PROJECT_ROOT)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.chdir(cwd)


def run_ape(args: Sequence[str], env: Mapping[str, str]) -> ApeOutcome:
    """Run `ape ARGS` (e.g. `["run", "pool", "status", "--network", ...]`) in-process with
    `env` as the environment; never raises for a failing command."""
    from click.testing import CliRunner

    with _LOCK, _environment(env), warnings.catch_warnings():
        # ape-vyper's and pydantic-settings' import-time warnings: noise to a user.
        warnings.simplefilter("ignore")
        from ape._cli import cli

        result = CliRunner().invoke(cli, list(args), prog_name="ape", catch_exceptions=True)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # A bug in a script (not a refusal, which click turns into exit 1 + "Error: ...").
        output += "".join(traceback.format_exception(result.exception))
    return ApeOutcome(result.exit_code, output)
