"""A local k-of-n oracle quorum on 127.0.0.1: n `gpu-oracle serve --config` processes,
each with its own key, log and state, told each other's URLs. Used by `make demo`, the
quorum integration tests and the benchmark, so all three run the same real processes.

    with OracleCluster(workdir, rpc=node.url, hub=hub, feeds=[...]) as cluster:
        cluster.round("node-1")          # `gpu-oracle round --config node-1.toml`
        cluster.stop("node-3")           # SIGKILL, as a crash would
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from gpushares import processes
from gpushares.devnode import PROJECT_ROOT, free_port

GPU_ORACLE = Path(sys.executable).with_name("gpu-oracle")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _table(name: str, values: dict[str, Any], *, array: bool = False) -> str:
    head = f"[[{name}]]" if array else f"[{name}]"
    return head + "\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items()) + "\n"


class OracleCluster:
    """n oracle nodes as child processes; `keys[i]` is node-(i+1)'s signer key."""

    def __init__(
        self,
        workdir: Path,
        *,
        rpc: str,
        hub: str,
        keys: Sequence[bytes],
        publisher_keys: Sequence[bytes],
        feeds: Sequence[dict[str, Any]] = (),
        utilisation: Sequence[dict[str, Any]] = (),
        offers: Path | Sequence[Path] | None = None,
        replay: bool = False,
        telemetry: dict[str, Any] | None = None,
        rounds: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.names = [f"node-{i + 1}" for i in range(len(keys))]
        self.addresses = {n: Account.from_key(k).address for n, k in zip(self.names, keys,
                                                                              strict=True)}
        self.ports = {n: free_port() for n in self.names}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = dict(env or os.environ)
        self.env["PYTHONWARNINGS"] = "ignore"
        offers_per_node = (list(offers) if isinstance(offers, Sequence) and
                           not isinstance(offers, str | Path) else [offers] * len(keys))
        workdir.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(self.names):
            folder = workdir / name
            folder.mkdir(exist_ok=True)
            (folder / "signer.key").write_text("0x" + keys[i].hex() + "\n")
            (folder / "publisher.key").write_text("0x" + publisher_keys[i].hex() + "\n")
            top = {"name": name, "key_file": "signer.key", "publisher_key_file": "publisher.key",
                   "log": "attestations.sqlite", "state": "state.sqlite", "rpc": rpc,
                   "hub": hub}
            text = "".join(f"{k} = {_toml_value(v)}\n" for k, v in top.items()) + "\n"
            for peer in self.names:
                if peer != name:
                    text += _table("peers", {"name": peer, "url": self.url(peer)}, array=True)
            source = offers_per_node[i]
            if source is not None:
                text += _table("sources", {"offers": str(source), "replay": replay})
            for feed in feeds:
                text += _table("feeds", feed, array=True)
            for util in utilisation:
                text += _table("utilisation", util, array=True)
            if telemetry:
                text += _table("telemetry", {k: str(v) if isinstance(v, Path) else v
                                             for k, v in telemetry.items()})
            if rounds:
                text += _table("rounds", rounds)
            (folder / "node.toml").write_text(text)

    # ------------------------------------------------------------ processes

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def config(self, name: str) -> Path:
        return self.workdir / name / "node.toml"

    def log(self, name: str) -> Path:
        return self.workdir / name / "attestations.sqlite"

    def start(self, name: str, *, extra_env: dict[str, str] | None = None,
              timeout: float = 60.0) -> None:
        env = dict(self.env, **(extra_env or {}))
        out = (self.workdir / name / "serve.log").open("ab")
        self.procs[name] = processes.spawn(
            [GPU_ORACLE, "serve", "--config", self.config(name), "--port", str(self.ports[name])],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited at start-up: see "
                                   f"{self.workdir / name / 'serve.log'}:\n{self.output(name)}")
            try:
                if httpx.get(f"{self.url(name)}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer /healthz within {timeout:.0f}s")
            time.sleep(0.1)

    def start_all(self) -> OracleCluster:
        for name in self.names:
            self.start(name)
        return self

    def stop(self, name: str) -> None:
        """Kill the node (SIGKILL: no clean shutdown, as in a crash)."""
        processes.stop(self.procs.pop(name, None), sig=signal.SIGKILL)

    def output(self, name: str) -> str:
        path = self.workdir / name / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def round(self, name: str, *feeds: str,
              timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """`gpu-oracle round --config NAME.toml`: NAME leads one round."""
        args = [str(GPU_ORACLE), "round", "--config", str(self.config(name))]
        for feed in feeds:
            args += ["--feed", feed]
        return processes.run(args, cwd=PROJECT_ROOT, env=self.env, timeout=timeout)

    def health(self, name: str) -> dict[str, Any]:
        return httpx.get(f"{self.url(name)}/healthz", timeout=5).json()

    def close(self) -> None:
        for name in list(self.procs):
            processes.stop(self.procs.pop(name), grace_s=10.0)

    def __enter__(self) -> OracleCluster:
        try:
            return self.start_all()
        except BaseException:
            self.close()  # the nodes that did start
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
