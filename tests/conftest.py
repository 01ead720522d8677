"""Hypothesis profiles (`dev` locally, `ci` when CI=true, `deep` for `make test-deep`;
the budgets live in tests/budgets.py), and the one `ape compile` every test that runs
ape waits for."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

from gpushares import processes
from gpushares.devnode import PROJECT_ROOT
from tests.budgets import PROFILES, profile_name


def _one_sha3_tracer() -> None:
    """Titanoboa wraps py-evm's SHA3 and SSTORE opcodes in tracers each time a `boa.Env`
    is made, in the opcode table every Env shares, so each new Env nests one wrapper
    deeper; after about a thousand Envs in one process every SHA3 overflows Python's
    stack (CI failed that way). Keep exactly one wrapper: the newest Env's, around the
    original opcode. The tracers only feed storage reprs in error messages."""
    from boa.vm import py_evm

    original = py_evm.PyEVM._init_vm
    if getattr(original, "_flattened", False):
        return

    def _init_vm(self, *args, **kwargs):
        original(self, *args, **kwargs)
        opcodes = self.vm.state.computation_class.opcodes
        for code, attr, tracer in ((0x20, "sha3", py_evm.Sha3PreimageTracer),
                                   (0x55, "sstore", py_evm.SstoreTracer)):
            outer = opcodes[code]
            inner = getattr(outer, attr)
            while isinstance(inner, tracer):
                inner = getattr(inner, attr)
            setattr(outer, attr, inner)

    _init_vm._flattened = True  # type: ignore[attr-defined]
    py_evm.PyEVM._init_vm = _init_vm


_one_sha3_tracer()

for _name, _profile in PROFILES.items():
    settings.register_profile(_name, _profile)
settings.load_profile(profile_name())


# The venv's bin folder: `ape` itself, and the pip-installed `vyper` that ape-vyper looks
# for on PATH (without it `ape compile` asks vvm for a vyper it never downloaded).
VENV_BIN = Path(sys.executable).parent
APE = VENV_BIN / "ape"
MANIFEST = PROJECT_ROOT / ".build" / "__local__.json"
# One lock per checkout, outside it (nothing untracked appears in the project).
_COMPILE_LOCK = Path(tempfile.gettempdir()) / (
    "gpu-shares-compile-" + hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:16] + ".lock"
)


def venv_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) with the venv's bin first on PATH, for `ape` children."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # ape-vyper's settings model warns at import; it is noise in the captured output.
    env["PYTHONWARNINGS"] = "ignore"
    return env


@pytest.fixture(scope="session")
def ape_compiled() -> Path:
    """`ape compile`, once per checkout, before any test that runs ape; returns the
    manifest. The xdist workers take turns under a file lock: the first compiles into
    .build/, the others then find it up to date (an up-to-date compile writes nothing), so
    no ape process ever reads a manifest that is being written."""
    with _COMPILE_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            done = processes.run([APE, "compile"], cwd=PROJECT_ROOT, env=venv_env(),
                                 timeout=600)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    assert done.returncode == 0, f"ape compile failed:\n{done.stdout}{done.stderr}"
    return MANIFEST


# Longest first, so neither xdist worker is left running a long test alone at the end:
# the demo (~3 min), then the integration and browser modules (each its own anvil), then
# the in-process tests. The sort is stable, so every module keeps its own order
# (integration steps build on each other).
_FIRST = ("tests/test_demo.py", "tests/integration/", "tests/browser/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid
        return next((i for i, prefix in enumerate(_FIRST) if path.startswith(prefix)), len(_FIRST))

    items.sort(key=rank)
