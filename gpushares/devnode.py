"""Start and stop the local EVM node: anvil from the npm package pinned in package.json.

`make setup` runs `npm ci`, which puts the platform binary under
``node_modules/@foundry-rs/anvil-<os>-<arch>/bin/anvil``. We start that binary directly
(not the ``node_modules/.bin`` wrapper) so that stopping it stops the real process.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from gpushares import processes

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# anvil's default mnemonic; ape's local test accounts (TEST::0, TEST::1, ...) derive
# from the same one, so both sides agree on the funded accounts.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"


def dev_key(index: int) -> bytes:
    """Private key of dev account `index` of DEFAULT_MNEMONIC (ape's TEST::index)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    path = f"m/44'/60'/0'/0/{index}"
    return bytes(Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=path).key)
CHAIN_ID = 31337


class DevNodeError(RuntimeError):
    """The local node could not be found or started."""


def _platform_package() -> str:
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(platform.system())
    machine = {"x86_64": "amd64", "AMD64": "amd64", "arm64": "arm64", "aarch64": "arm64"}.get(
        platform.machine()
    )
    if system is None or machine is None:
        raise DevNodeError(
            f"anvil has no npm build for {platform.system()}/{platform.machine()}; "
            "install foundry's anvil yourself and put it on PATH"
        )
    return f"anvil-{system}-{machine}"


def anvil_bin_dir(root: Path = PROJECT_ROOT) -> Path:
    """Folder holding the anvil binary from node_modules (put it first on PATH for ape)."""
    return root / "node_modules" / "@foundry-rs" / _platform_package() / "bin"


def anvil_binary(root: Path = PROJECT_ROOT) -> Path:
    """Path of the pinned anvil binary; raises with the fix if it is missing."""
    candidate = anvil_bin_dir(root) / "anvil"
    if candidate.is_file():
        return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise DevNodeError(
        f"anvil not found at {candidate}. Run `make setup` (it runs `npm ci`) first."
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AnvilNode:
    """An anvil process on 127.0.0.1; use as a context manager.

    >>> with AnvilNode() as node:
    ...     print(node.url)
    """

    def __init__(self, port: int | None = None, *, accounts: int = 10,
                 genesis: int | None = None) -> None:
        """`genesis`: the unix time of the genesis block (anvil's `--timestamp`); the
        chain's clock runs on from there. The demo and the tests set it where their data
        is, so that nothing they do depends on today's date."""
        self.port = port or free_port()
        # A port picked here may be taken by another process before anvil binds it.
        self._port_chosen = port is None
        self.accounts = accounts
        self.genesis = genesis
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> AnvilNode:
        """Start anvil and wait until it answers JSON-RPC. A port this node chose itself
        and lost to another process in the meantime is replaced by a new free one."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except DevNodeError as exc:
                if not (self._port_chosen and "in use" in str(exc).lower() and attempt < 2):
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> AnvilNode:
        if self._process is not None:
            raise DevNodeError("this AnvilNode is already running")
        cmd = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(CHAIN_ID),
            "--accounts", str(self.accounts),
            "--mnemonic", DEFAULT_MNEMONIC,
            "--silent",
        ]
        if self.genesis is not None:
            cmd += ["--timestamp", str(self.genesis)]
        self._process = processes.spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                self._process = None
                raise DevNodeError(f"anvil exited at start on port {self.port}: {err.strip()}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise DevNodeError(f"anvil did not answer on {self.url} within {timeout:.0f}s")

    def _answers(self) -> bool:
        try:
            response = httpx.post(
                self.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                timeout=1.0,
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    @property
    def pid(self) -> int | None:
        """anvil's process id while it runs."""
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        """Stop anvil (SIGTERM, then SIGKILL after 5 s)."""
        process, self._process = self._process, None
        processes.stop(process)
        if process is not None and process.stderr is not None:
            process.stderr.close()

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a child `ape` command that should use this node."""
        env = dict(os.environ if base is None else base)
        env["APE_FOUNDRY_HOST"] = self.url
        # The venv's bin first: ape-vyper finds the pinned `vyper` on PATH.
        venv_bin = Path(sys.executable).parent
        env["PATH"] = os.pathsep.join([str(venv_bin), str(anvil_bin_dir()), env.get("PATH", "")])
        return env

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
