"""`Chain` over titanoboa, in-process: the client's tests run against the real contracts
at py-evm speed, through exactly the code the scripts and the web app run.

A sender is an address (titanoboa pranks it). titanoboa keeps no log index, so a chain
made with `record_logs=True` (the default) records the logs of every call and deployment
made in its environment from then on (by the client or by a test through titanoboa's own
contract objects) for `Chain.logs`; a state rolled back by `boa.env.anchor()` keeps its
recorded logs, which the client's event scans tolerate (they re-read state).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import boa
from boa.contracts.vyper.vyper_contract import VyperDeployer

from gpushares.client.artifacts import CONTRACTS, SOURCES
from gpushares.client.chain import (
    Chain,
    Head,
    Log,
    LogBook,
    Receipt,
    Reverted,
    Tx,
    checksum,
    revert_reason,
    synthetic_hash,
)


@cache
def partial(name: str) -> VyperDeployer:
    """Contract `name` compiled by titanoboa (once per process)."""
    return boa.load_partial(str(CONTRACTS / SOURCES[name]))


def _logs(computation: Any, block: int) -> list[Log]:
    if computation.is_error:
        return []
    return [Log(address=checksum(bytes(address)),
                topics=tuple(int(t).to_bytes(32, "big") for t in topics),
                data=bytes(data), block_number=block)
            for address, topics, data in _entries(computation)]


def _entries(computation: Any) -> list[tuple[Any, Any, Any]]:
    # py-evm: (ordering, address, topics, data) per log, children's included, in order.
    raw = computation.get_raw_log_entries()
    return [(address, topics, data) for _order, address, topics, data in sorted(raw)]


class BoaChain(Chain):
    """The titanoboa environment `env`. Without one: the environment current at
    creation when it records logs (its recorder is bound to one environment), else the
    environment current at each call, so a chain made at import serves tests that
    `boa.swap_env` into worlds of their own."""

    def __init__(self, env: Any = None, *, record_logs: bool = True) -> None:
        self._env = env if env is not None or not record_logs else boa.env
        self.book = LogBook()
        self.recording = record_logs
        if record_logs:
            self._install_recorder()

    @property
    def env(self) -> Any:
        """The titanoboa environment this chain reads and writes."""
        return self._env if self._env is not None else boa.env

    @property
    def chain_id(self) -> int:  # type: ignore[override]
        return int(self.env.evm.patch.chain_id)

    def _install_recorder(self) -> None:
        env = self.env
        existing = getattr(env, "_gpushares_books", None)
        if existing is not None:  # one recorder per environment, shared by its chains
            existing.append(self.book)
            return
        books = [self.book]
        env._gpushares_books = books
        execute_code, deploy = env.execute_code, env.deploy

        def recorded_execute(*args: Any, **kwargs: Any) -> Any:
            computation = execute_code(*args, **kwargs)
            if kwargs.get("is_modifying", True) and not kwargs.get("simulate", False):
                logs = _logs(computation, self._block())
                for book in books:
                    book.add(logs)
            return computation

        def recorded_deploy(*args: Any, **kwargs: Any) -> Any:
            address, computation = deploy(*args, **kwargs)
            logs = _logs(computation, self._block())
            for book in books:
                book.add(logs)
            return address, computation

        env.execute_code = recorded_execute
        env.deploy = recorded_deploy

    def _block(self) -> int:
        return int(self.env.evm.patch.block_number)

    # ------------------------------------------------------------------ reads

    def call(self, to: str, data: bytes, *, sender: str | None = None,
             block: int | None = None) -> bytes:
        computation = self.env.execute_code(to_address=to, sender=sender, data=data,
                                            is_modifying=False)
        if computation.is_error:
            raise Reverted(revert_reason(bytes(computation.output or b"")))
        return bytes(computation.output)

    def head(self) -> Head:
        return Head(self._block(), int(self.env.timestamp))

    def code(self, address: str, block: int | None = None) -> bytes:
        return bytes(self.env.get_code(address))

    def balance(self, address: str) -> int:
        return int(self.env.get_balance(address))

    def logs(self, address: str | Sequence[str], topics: Sequence[Any], from_block: int,
             to_block: int | None = None) -> list[Log]:
        return self.book.query(address, topics, from_block, to_block)

    # ------------------------------------------------------------------ writes

    def address_of(self, sender: Any) -> str:
        return checksum(str(sender))

    def send(self, tx: Tx, sender: Any) -> Receipt:
        before = len(self.book.entries)
        computation = self.env.execute_code(to_address=tx.to, sender=self.address_of(sender),
                                            data=tx.data, value=tx.value, is_modifying=True)
        if computation.is_error:
            raise Reverted(revert_reason(bytes(computation.output or b"")), what=tx.what)
        logs = (tuple(self.book.entries[before:]) if self.recording
                else tuple(_logs(computation, self._block())))
        return Receipt(tx_hash=synthetic_hash(tx.what), block_number=self._block(),
                       gas_used=int(computation.get_gas_used()), logs=logs, what=tx.what)

    def deploy(self, name: str, args: Sequence[Any], sender: Any) -> Receipt:
        before = len(self.book.entries)
        with self.env.prank(self.address_of(sender)):
            contract = partial(name).deploy(*args)
        return Receipt(tx_hash=synthetic_hash(f"deploy {name}"), block_number=self._block(),
                       gas_used=0, logs=tuple(self.book.entries[before:]),
                       what=f"deploy {name}", contract_address=checksum(str(contract.address)))

    def declare(self, name: str, sender: Any) -> Receipt:
        with self.env.prank(self.address_of(sender)):
            blueprint = partial(name).deploy_as_blueprint()
        return Receipt(tx_hash=synthetic_hash(f"declare {name}"), block_number=self._block(),
                       gas_used=0, what=f"declare the {name} blueprint",
                       contract_address=checksum(str(blueprint.address)))

    def at(self, name: str, address: str) -> Any:
        """titanoboa's own handle of contract `name` at `address` (for the tests)."""
        return partial(name).at(address)
