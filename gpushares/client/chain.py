"""The client's view of a chain: one small interface over titanoboa, web3 and ape.

Everything the client does to a chain goes through `Chain`: read a contract (`call`),
send a transaction someone signs (`send`), read the head block, the code at an address
and past logs, and deploy a contract or a blueprint. Contracts are bound to their
shipped ABIs (`gpushares.abi`), so reads decode the same way on every backend:

    pool = chain.contract("LendingPool", address)
    collateral, debt, scaled = pool.position(borrower)      # a view: eth_call
    tx = pool.borrow.tx(amount, borrower, what="borrow 1,000 mUSDC")
    receipt = chain.send(tx, sender)                           # signed by sender's backend

A `Tx` is a plan: what to call and why, in words. The scripts send it with an ape
account, the tests with a titanoboa address, the web app hands its calldata to the
user's wallet. A contract's refusal is a `Reverted` with the contract's own message,
whatever the backend; the client's pre-checks raise `Refused` with the same message
before anything is sent.

Backends: `gpushares.client.boa_chain.BoaChain` (in-process, for the tests),
`Web3Chain` here (any JSON-RPC node: anvil, the benchmark, the web app), and
`gpushares.client.ape_chain.ApeChain` (the operator scripts, signing with ape accounts).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from gpushares import abi as abis

ERROR_SELECTOR = keccak(text="Error(string)")[:4]
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class ChainError(Exception):
    """Something the chain or the client refused or could not do."""


class Reverted(ChainError):
    """The contract refused: `reason` is its revert message ("" when it gave none)."""

    def __init__(self, reason: str, *, what: str = "") -> None:
        self.reason = reason
        self.what = what
        super().__init__(f"{what} refused by the contract: {reason}" if what else reason)


class Refused(ChainError):
    """The client refuses before sending anything: `reason` is the message the contract
    would revert with (or, for what no contract checks, the client's own sentence)."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what} refused, nothing sent: {reason}")


def revert_reason(output: bytes) -> str:
    """The message of an `Error(string)` revert, or "" for a bare revert."""
    if output[:4] == ERROR_SELECTOR:
        try:
            return str(abi_decode(["string"], output[4:])[0])
        except Exception:  # noqa: BLE001 - malformed revert data: report it raw
            return "0x" + output.hex()
    return "" if not output else "0x" + output.hex()


def checksum(address: str | bytes) -> str:
    """A checksummed 0x address from text or 20 bytes."""
    if isinstance(address, bytes | bytearray):
        return to_checksum_address(bytes(address)[-20:])
    return to_checksum_address(address)


# ---------------------------------------------------------------------------------
# ABI encoding, decoding and records
# ---------------------------------------------------------------------------------


def _abi_type(item: dict[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){kind[5:]}"
    return kind


def _shape(item: dict[str, Any], value: Any) -> Any:
    """A decoded value with tuples as `Record`s (attribute access by component name) and
    addresses checksummed."""
    kind = str(item["type"])
    if kind.endswith("]"):
        inner = dict(item, type=kind[: kind.rindex("[")])
        return [_shape(inner, v) for v in value]
    if kind == "tuple":
        names = [str(c.get("name") or f"field{i}") for i, c in enumerate(item["components"])]
        return Record(names, [_shape(c, v) for c, v in zip(item["components"], value,
                                                              strict=True)])
    if kind == "address":
        return to_checksum_address(value)
    return value


class Record(tuple):  # noqa: SLOT001 - a tuple with names, like a struct
    """A decoded struct or multi-value return: a tuple that also answers by name."""

    _names: tuple[str, ...]

    def __new__(cls, names: Sequence[str], values: Sequence[Any]) -> Record:
        record = super().__new__(cls, values)
        record._names = tuple(names)
        return record

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._names.index(name)]
        except ValueError:
            raise AttributeError(f"no field {name!r} (fields: {', '.join(self._names)})") from None

    def asdict(self) -> dict[str, Any]:
        return dict(zip(self._names, self, strict=True))


@dataclass(frozen=True)
class Function:
    """One ABI function of a contract bound to a chain. A Vyper function with default
    arguments is several ABI entries of one name (`overloads`): a call picks the entry
    whose arity matches its arguments."""

    chain: Chain
    contract: str
    address: str
    abi: dict[str, Any]
    overloads: tuple[dict[str, Any], ...] = ()

    def _for(self, args: Sequence[Any]) -> Function:
        """The overload taking `len(args)` arguments (self when none other does)."""
        if len(args) == len(self.abi["inputs"]):
            return self
        for item in self.overloads:
            if len(item["inputs"]) == len(args):
                return Function(self.chain, self.contract, self.address, item)
        return self

    @cached_property
    def selector(self) -> bytes:
        types = ",".join(_abi_type(i) for i in self.abi["inputs"])
        return keccak(text=f"{self.abi['name']}({types})")[:4]

    def calldata(self, *args: Any) -> bytes:
        if self._for(args) is not self:
            return self._for(args).calldata(*args)
        inputs = self.abi["inputs"]
        if len(args) != len(inputs):
            raise TypeError(f"{self.contract}.{self.abi['name']} takes {len(inputs)} "
                            f"argument(s), got {len(args)}")
        return self.selector + abi_encode([_abi_type(i) for i in inputs], list(args))

    def decode(self, output: bytes) -> Any:
        outputs = self.abi.get("outputs", [])
        if not outputs:
            return None
        values = abi_decode([_abi_type(o) for o in outputs], output)
        shaped = [_shape(o, v) for o, v in zip(outputs, values, strict=True)]
        if len(shaped) == 1:
            return shaped[0]
        return Record([str(o.get("name") or f"field{i}") for i, o in enumerate(outputs)],
                      shaped)

    def __call__(self, *args: Any, block: int | None = None, sender: str | None = None) -> Any:
        """Read: an eth_call of the function (a view, or a dry run of a transaction)."""
        picked = self._for(args)
        return picked.decode(self.chain.call(self.address, picked.calldata(*args),
                                             sender=sender, block=block))

    def tx(self, *args: Any, what: str = "", value: int = 0) -> Tx:
        """A transaction calling the function: a plan, sent later by `Chain.send`."""
        return Tx(to=self.address, data=self.calldata(*args), value=value,
                  what=what or f"{self.contract}.{self.abi['name']}", contract=self.contract,
                  function=str(self.abi["name"]), args=tuple(args))


class Contract:
    """A deployed contract of a known kind: functions by attribute, events by name.

    The handle's own attributes are `chain`, `kind` (the ABI's name), `address` and
    `abi`; every other attribute is an ABI function (an ERC-20's `name()` included).
    `function(name)` reaches any function, shadowed or not."""

    def __init__(self, chain: Chain, kind: str, address: str) -> None:
        self.chain = chain
        self.kind = kind
        self.address = checksum(address)
        self.abi = abis.load(kind)
        functions = [i for i in self.abi if i.get("type") == "function"]
        # The entry with the most inputs is the function; the others its overloads.
        functions.sort(key=lambda i: len(i["inputs"]))
        self._functions = {str(i["name"]): i for i in functions}
        self._overloads = {str(i["name"]): tuple(j for j in functions
                                                 if j["name"] == i["name"] and j is not i)
                           for i in self._functions.values()}
        self._events = {str(i["name"]): i for i in self.abi if i.get("type") == "event"}

    def __getattr__(self, name: str) -> Function:
        try:
            item = self.__dict__["_functions"][name]
        except KeyError:
            raise AttributeError(f"{self.__dict__.get('kind')} has no function {name!r}") from None
        return Function(self.chain, self.kind, self.address, item, self._overloads[name])

    def function(self, name: str) -> Function:
        """ABI function `name` (also one an attribute of the handle shadows)."""
        return self.__getattr__(name)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.address}>"

    def _event(self, event: str) -> dict[str, Any]:
        try:
            return self._events[event]
        except KeyError:
            raise ValueError(f"{self.kind} has no event {event!r} (events: "
                             f"{', '.join(sorted(self._events))})") from None

    def event_topic(self, event: str) -> bytes:
        item = self._event(event)
        types = ",".join(_abi_type(i) for i in item["inputs"])
        return keccak(text=f"{event}({types})")

    def decode_event(self, event: str, log: Log) -> dict[str, Any] | None:
        """The arguments of `event` if `log` is one emitted by this contract, else None."""
        item = self._event(event)
        if log.address.lower() != self.address.lower() or not log.topics or \
                log.topics[0] != self.event_topic(event):
            return None
        indexed = [i for i in item["inputs"] if i.get("indexed")]
        plain = [i for i in item["inputs"] if not i.get("indexed")]
        values: dict[str, Any] = {}
        for spec, topic in zip(indexed, log.topics[1:], strict=True):
            values[spec["name"]] = _shape(spec, abi_decode([_abi_type(spec)], topic)[0])
        decoded = abi_decode([_abi_type(i) for i in plain], log.data)
        for spec, value in zip(plain, decoded, strict=True):
            values[spec["name"]] = _shape(spec, value)
        return {str(i["name"]): values[i["name"]] for i in item["inputs"]}

    def events(self, event: str, source: Receipt | Iterable[Log]) -> list[dict[str, Any]]:
        """Every `event` of this contract in a receipt or a list of logs, in order."""
        logs = source.logs if isinstance(source, Receipt) else source
        found = (self.decode_event(event, log) for log in logs)
        return [e for e in found if e is not None]

    def history(self, event: str, from_block: int = 0,
                to_block: int | None = None) -> list[dict[str, Any]]:
        """Every past `event` of this contract (one `eth_getLogs`-style query)."""
        return self.events(event, self.chain.logs(self.address, [[self.event_topic(event)]],
                                                  from_block, to_block))


# ---------------------------------------------------------------------------------
# Transactions, receipts, logs
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tx:
    """A transaction the client plans: where, what calldata, and what it does in words."""

    to: str
    data: bytes
    what: str
    value: int = 0
    contract: str = ""
    function: str = ""
    args: tuple[Any, ...] = ()

    def as_dict(self, sender: str) -> dict[str, Any]:
        """The JSON-RPC `eth_sendTransaction` fields (a wallet fills gas and nonce)."""
        return {"from": sender, "to": self.to, "data": "0x" + self.data.hex(),
                "value": hex(self.value)}


@dataclass(frozen=True)
class Plan:
    """What an action needs sent, in order (an approval, then the call), and what the
    chain would refuse if it were sent now (`refusal`, with the contract's message), so
    a script or a web page can explain it before anyone signs. `notes` say what the
    signer should know (the LTV after a borrow, a fill price)."""

    txs: tuple[Tx, ...]
    refusal: Refused | None = None
    notes: tuple[str, ...] = ()

    @property
    def what(self) -> str:
        return self.txs[-1].what if self.txs else ""

    def checked(self) -> Plan:
        """This plan, or its refusal raised."""
        if self.refusal is not None:
            raise self.refusal
        return self

    @classmethod
    def of(cls, *txs: Tx, refusal: str | None = None, notes: tuple[str, ...] = ()) -> Plan:
        """A plan of `txs`; `refusal` is the reason the last one would be refused."""
        what = txs[-1].what if txs else ""
        return cls(tuple(txs), Refused(what, refusal) if refusal else None, notes)


@dataclass(frozen=True)
class Log:
    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int = 0


@dataclass(frozen=True)
class Receipt:
    """What a sent transaction did."""

    tx_hash: str
    block_number: int
    gas_used: int
    logs: tuple[Log, ...] = ()
    what: str = ""
    contract_address: str | None = None


@dataclass(frozen=True)
class Head:
    number: int
    timestamp: int


# ---------------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------------


class Chain(ABC):
    """One chain, as the client needs it. `sender` values are whatever the backend
    signs with (an address for titanoboa and an unlocked node, a LocalAccount, an ape
    account); `address_of(sender)` turns one into its address."""

    chain_id: int

    @abstractmethod
    def call(self, to: str, data: bytes, *, sender: str | None = None,
             block: int | None = None) -> bytes:
        """eth_call; raises `Reverted` with the contract's message."""

    @abstractmethod
    def send(self, tx: Tx, sender: Any) -> Receipt:
        """Sign (by `sender`'s backend) and send `tx`, wait for it; raises `Reverted`."""

    @abstractmethod
    def head(self) -> Head:
        """The latest block."""

    @abstractmethod
    def code(self, address: str, block: int | None = None) -> bytes:
        """The code at `address` (at `block`, default latest)."""

    @abstractmethod
    def logs(self, address: str | Sequence[str], topics: Sequence[Any], from_block: int,
             to_block: int | None = None) -> list[Log]:
        """Logs of `address` (or of any of several addresses, in one query) matching
        `topics` (eth_getLogs semantics) in the range."""

    @abstractmethod
    def deploy(self, name: str, args: Sequence[Any], sender: Any) -> Receipt:
        """Deploy contract `name` with constructor `args`; `contract_address` is set."""

    @abstractmethod
    def declare(self, name: str, sender: Any) -> Receipt:
        """Deploy contract `name` as an ERC-5202 blueprint; `contract_address` is set."""

    @abstractmethod
    def address_of(self, sender: Any) -> str:
        """The address that signs for `sender`."""

    # ------------------------------------------------------------------ derived

    def contract(self, name: str, address: str) -> Contract:
        """Contract `name` (an ABI in gpushares.abi) at `address`."""
        return Contract(self, name, address)

    def now(self) -> int:
        """The chain's time: the latest block's timestamp. Every "now" the client uses."""
        return self.head().timestamp

    def balance(self, address: str) -> int:
        """Native balance (wei)."""
        raise NotImplementedError


_TX_COUNTER = itertools.count(1)


def synthetic_hash(label: str) -> str:
    """A unique 32-byte hash for a transaction of an in-process chain (no real hash)."""
    return "0x" + keccak(text=f"{label}:{next(_TX_COUNTER)}").hex()


@dataclass
class LogBook:
    """Logs an in-process chain records, for `Chain.logs` (titanoboa keeps none)."""

    entries: list[Log] = field(default_factory=list)

    def add(self, logs: Iterable[Log]) -> None:
        self.entries.extend(logs)

    def query(self, address: str | Sequence[str], topics: Sequence[Any], from_block: int,
              to_block: int | None) -> list[Log]:
        wanted = {a.lower() for a in ([address] if isinstance(address, str) else address)}
        found = []
        for log in self.entries:
            if log.address.lower() not in wanted or log.block_number < from_block:
                continue
            if to_block is not None and log.block_number > to_block:
                continue
            if all(_topic_matches(want, log.topics[i] if i < len(log.topics) else None)
                   for i, want in enumerate(topics)):
                found.append(log)
        return found


def _topic_matches(want: Any, have: bytes | None) -> bool:
    if want is None:
        return True
    options = want if isinstance(want, list | tuple) else [want]
    return have is not None and any(_as_bytes(o) == have for o in options)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)
