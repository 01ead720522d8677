"""Which agent may report for which SPV token and which of its GPUs.

The node's operator keeps this list (a TOML or JSON file the node config points to). An
agent is an Ethereum address (the host agent's own key); each entry binds one agent to
one SPV token and the GPUs it reports: each GPU by its NVIDIA UUID and its board
serial. `serialHash` = keccak256 of the UTF-8 serial, 0x hex: exactly what
`GPUShareToken.add_gpus` registers on-chain (`gpushares.fleet.GPURow.serial_hash`,
looked up by `gpu_id_of_serial`), so an auditor can match every GPU in a utilisation
snapshot to the token's on-chain register without learning the serials.

Rules: a GPU (by UUID, and by serial) belongs to exactly one entry; an agent may have
several entries, one per SPV token.

    # telemetry-agents.toml
    [[agents]]
    address = "0x1BcB8e569EedAb4668e55145Cfeaf190902d3CF2"
    spv_token = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    label = "gpu-node-07"
    gpus_csv = "gpus.csv"        # columns uuid,serial (others ignored); relative path
                                 # is relative to this file
    [[agents]]
    address = "0x8263Fce86B1b78F95Ab4dae11907d8AF88f841e7"
    spv_token = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    gpus = [{uuid = "GPU-...", serial = "1652922019999"}]

JSON takes the same shape (`{"agents": [...]}`); keys may be snake_case or camelCase.
"""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

from eth_utils import keccak
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from oracle import attest
from oracle.telemetry.samples import TelemetryError, gpu_serial, gpu_uuid


class RegistryError(TelemetryError, ValueError):
    """The agent registry file is missing or malformed (the message says where)."""


def serial_hash(serial: str) -> str:
    """keccak256 of the UTF-8 serial, 0x hex: the on-chain GPU id key
    (`gpushares.fleet.GPURow.serial_hash`, `GPUShareToken.gpu_id_of_serial`)."""
    return "0x" + keccak(text=serial).hex()


def _serial(value: str) -> str:
    out = gpu_serial(value)
    if out is None:
        raise ValueError(f"a registered GPU needs its board serial, got {value!r}")
    return out


class RegisteredGpu(BaseModel):
    """One GPU an agent reports: UUID, board serial and the serial's keccak256."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    uuid: Annotated[str, AfterValidator(gpu_uuid)]
    serial: Annotated[str, AfterValidator(_serial)]
    serial_hash: Annotated[str, Field(alias="serialHash")] = ""

    @model_validator(mode="after")
    def _hash(self) -> RegisteredGpu:
        expected = serial_hash(self.serial)
        if self.serial_hash and self.serial_hash.lower() != expected:
            raise ValueError(f"serialHash of {self.serial} is {expected}, not "
                             f"{self.serial_hash}: drop the field to have it computed")
        object.__setattr__(self, "serial_hash", expected)
        return self


class GpuBinding(BaseModel):
    """A registered GPU with the agent and SPV token it is registered to."""

    model_config = ConfigDict(frozen=True)

    uuid: str
    serial: str
    serial_hash: str
    agent: str
    spv_token: str


class AgentEntry(BaseModel):
    """One agent's GPUs of one SPV token."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    address: attest.Address
    spv_token: Annotated[attest.Address, Field(alias="spvToken")]
    label: Annotated[str, Field(max_length=120)] | None = None
    gpus: Annotated[list[RegisteredGpu], Field(min_length=1)]


class AgentRegistry(BaseModel):
    """The node's list of telemetry agents (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agents: list[AgentEntry] = []

    @model_validator(mode="after")
    def _unique(self) -> AgentRegistry:
        pairs: set[tuple[str, str]] = set()
        uuids: dict[str, str] = {}
        serials: dict[str, str] = {}
        for entry in self.agents:
            pair = (entry.address, entry.spv_token)
            if pair in pairs:
                raise ValueError(f"agent {entry.address} is listed twice for SPV "
                                 f"{entry.spv_token}: merge its GPU lists")
            pairs.add(pair)
            for gpu in entry.gpus:
                for table, key in ((uuids, gpu.uuid), (serials, gpu.serial)):
                    if key in table:
                        raise ValueError(f"GPU {key} is registered twice (agents "
                                         f"{table[key]} and {entry.address}): a GPU "
                                         "belongs to exactly one agent and SPV")
                    table[key] = entry.address
        return self

    # ------------------------------------------------------------------ queries

    def entry(self, agent: str, spv_token: str) -> AgentEntry | None:
        """The entry binding `agent` to `spv_token`, if any."""
        agent, spv_token = _addr(agent), _addr(spv_token)
        for e in self.agents:
            if e.address == agent and e.spv_token == spv_token:
                return e
        return None

    def is_agent(self, agent: str) -> bool:
        """Whether `agent` has any entry."""
        agent = _addr(agent)
        return any(e.address == agent for e in self.agents)

    def spv_tokens_of(self, agent: str) -> list[str]:
        """The SPV tokens `agent` may report for."""
        agent = _addr(agent)
        return [e.spv_token for e in self.agents if e.address == agent]

    def binding(self, uuid: str) -> GpuBinding | None:
        """The registration of the GPU with this UUID, if any."""
        for e in self.agents:
            for g in e.gpus:
                if g.uuid == uuid:
                    return _bind(e, g)
        return None

    def registered_gpus(self, spv_token: str) -> list[GpuBinding]:
        """Every GPU registered for `spv_token`, ordered by serial hash."""
        spv_token = _addr(spv_token)
        out = [_bind(e, g) for e in self.agents if e.spv_token == spv_token for g in e.gpus]
        return sorted(out, key=lambda b: b.serial_hash)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, path: Path) -> AgentRegistry:
        """Read a registry from a `.toml` or `.json` file. An entry may name its GPUs in a
        CSV (`gpus_csv`, columns uuid and serial, relative to the file). Raises
        `RegistryError` naming the file and the first problem."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RegistryError(f"{path}: cannot read the agent registry: {exc.strerror}"
                                ) from exc
        try:
            data: Any = (json.loads(text) if path.suffix.lower() == ".json"
                         else tomllib.loads(text))
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RegistryError(f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: "
                                f"{exc}") from exc
        if not isinstance(data, dict):
            raise RegistryError(f'{path}: expected an object with an "agents" list')
        agents = data.get("agents", [])
        if not isinstance(agents, list):
            raise RegistryError(f'{path}: "agents" must be a list of agent entries')
        resolved = []
        for position, raw in enumerate(agents):
            if not isinstance(raw, dict):
                raise RegistryError(f"{path}: agents[{position}] is not a table/object")
            entry = dict(raw)
            csv_name = entry.pop("gpus_csv", None) or entry.pop("gpusCsv", None)
            if csv_name is not None:
                listed = entry.get("gpus", [])
                entry["gpus"] = list(listed) + load_gpu_inventory(path.parent / csv_name)
            resolved.append(entry)
        try:
            return cls.model_validate({**data, "agents": resolved})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise RegistryError(f"{path}: {where}: {err['msg']}") from exc


def load_gpu_inventory(path: Path) -> list[dict[str, str]]:
    """`[{"uuid", "serial"}]` from a CSV with `uuid` and `serial` columns (others, such as
    index, name or pci_bus_id, are ignored). Raises `RegistryError` naming the line."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle, skipinitialspace=True))
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the GPU inventory: {exc.strerror}") from exc
    if not rows:
        raise RegistryError(f"{path}: empty; expected a header with uuid and serial columns")
    header = [h.strip().lower() for h in rows[0]]
    if "uuid" not in header or "serial" not in header:
        raise RegistryError(f"{path}:1: the header {rows[0]} needs uuid and serial columns")
    iu, is_ = header.index("uuid"), header.index("serial")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise RegistryError(f"{path}:{line}: {len(row)} fields, the header has "
                                f"{len(header)}")
        try:
            out.append({"uuid": gpu_uuid(row[iu]), "serial": _serial(row[is_])})
        except ValueError as exc:
            raise RegistryError(f"{path}:{line}: {exc}") from exc
    return out


def _addr(value: str) -> str:
    try:
        return attest.checksum_address(value)
    except ValueError as exc:
        raise RegistryError(str(exc)) from exc


def _bind(entry: AgentEntry, gpu: RegisteredGpu) -> GpuBinding:
    return GpuBinding(uuid=gpu.uuid, serial=gpu.serial, serial_hash=gpu.serial_hash,
                      agent=entry.address, spv_token=entry.spv_token)
