"""An oracle node's configuration: one TOML file per node.

    name = "node-1"                     # this node's name, as its peers know it
    key_file = "node-1.key"             # the node's signer key (one of the hub's signers)
    publisher_key_file = "gas-1.key"    # the account that pays for publishing (optional)
    log = "node-1/attestations.sqlite"  # the node's own attestation log
    state = "node-1/state.sqlite"       # votes, rounds, telemetry
    rpc = "http://127.0.0.1:8545"
    hub = "0x..."

    [[peers]]
    name = "node-2"
    url = "http://127.0.0.1:8702"

    [sources]
    offers = "oracle/data/offers"       # marketplace snapshots (a file or a folder)
    replay = true                       # publish the folder's days in order (demo)

    [[feeds]]                           # the GPU-hour index of one model
    kind = "index"
    model = "H100-SXM-80GB"
    deviation_bps = 50
    heartbeat_s = 86400

    [[feeds]]                           # one SPV's NAV per share
    kind = "nav"
    spv_token = "0x..."
    economic_life_years = "4"
    model_map = { "H100-SXM5-80GB" = "H100-SXM-80GB" }
    index_at_acquisition = { "H100-SXM-80GB" = { value = "2.10", source = "..." } }

    [[utilisation]]                     # one SPV's fleet utilisation, per period
    spv_token = "0x..."
    period_s = 3600

    [telemetry]
    agents = "agents.json"              # which agent key reports which SPV's GPUs

    [rounds]
    sign_timeout_s = 5

Relative paths are relative to the config file's folder. Keys live in their own files
(hex, one per file) so the config can be shared and reviewed without secrets.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oracle import attest


class ConfigError(ValueError):
    """The node's configuration is unusable; the message names the file and field."""


class PeerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64)]
    url: Annotated[str, Field(pattern=r"^https?://")]


class SourcesConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    offers: Path | None = None
    replay: bool = False  # each round takes the oldest day newer than the last published


class _FeedBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    deviation_bps: Annotated[int, Field(ge=1, le=10_000)] = 50
    heartbeat_s: Annotated[int, Field(ge=60)] = 86_400
    # A co-signer builds the report from its own sources too and refuses when its own
    # value differs from the leader's by more than this.
    agree_bps: Annotated[int, Field(ge=0, le=10_000)] = 100


class IndexFeedConfig(_FeedBase):
    kind: Literal["index"]
    model: Annotated[str, Field(min_length=1, max_length=64)]


class AcquisitionIndex(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    value: str
    source: Annotated[str, Field(min_length=1)]


class NavFeedConfig(_FeedBase):
    kind: Literal["nav"]
    spv_token: attest.Address
    economic_life_years: str = "4"
    model_map: dict[str, str]
    index_at_acquisition: dict[str, AcquisitionIndex]


class UtilisationConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    spv_token: attest.Address
    period_s: Annotated[int, Field(ge=60)] = 3_600


class TelemetryConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    agents: Path | None = None
    max_age_s: Annotated[int, Field(ge=1)] = 900
    max_skew_s: Annotated[int, Field(ge=0)] = 60


class RoundsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sign_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    # A leader appends only within this time of starting its round; a co-signer's vote
    # for a log position binds it for `vote_ttl_s` (> deadline), so two different
    # reports can never both gather a quorum for one position.
    deadline_s: Annotated[float, Field(gt=0)] = 20.0
    vote_ttl_s: Annotated[float, Field(gt=0)] = 60.0
    # `gpu-oracle serve` pulls its peers' new entries this often (0: only when asked to
    # co-sign or when leading a round).
    sync_interval_s: Annotated[float, Field(ge=0)] = 5.0
    # Once k signatures are in, the remaining peers get this long to answer, so a
    # disagreeing node is named in the round's record.
    outvote_grace_s: Annotated[float, Field(ge=0)] = 1.0

    @field_validator("vote_ttl_s")
    @classmethod
    def _ttl(cls, v: float, info) -> float:  # noqa: ANN001 - pydantic's ValidationInfo
        deadline = info.data.get("deadline_s", 20.0)
        if v <= deadline:
            raise ValueError(f"vote_ttl_s ({v}) must exceed deadline_s ({deadline})")
        return v


FeedConfig = Annotated[IndexFeedConfig | NavFeedConfig, Field(discriminator="kind")]


class NodeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64)]
    key_file: Path
    publisher_key_file: Path | None = None
    log: Path
    state: Path
    rpc: str | None = None
    hub: attest.Address | None = None
    peers: list[PeerConfig] = []
    sources: SourcesConfig = SourcesConfig()
    feeds: list[FeedConfig] = []
    utilisation: list[UtilisationConfig] = []
    telemetry: TelemetryConfig = TelemetryConfig()
    rounds: RoundsConfig = RoundsConfig()

    @field_validator("peers")
    @classmethod
    def _peers(cls, v: list[PeerConfig]) -> list[PeerConfig]:
        if len({p.name for p in v}) != len(v):
            raise ValueError("two peers share a name")
        return v

    def peer_url(self, name: str) -> str | None:
        return next((p.url for p in self.peers if p.name == name), None)


def _resolve(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    return value if value.is_absolute() else (base / value).resolve()


def load_config(path: Path) -> NodeConfig:
    """Read and validate a node's TOML config; relative paths resolve against its folder."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such config file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        config = NodeConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: {where}: {err['msg']}") from exc
    base = path.resolve().parent
    if any(p.name == config.name for p in config.peers):
        raise ConfigError(f"{path}: the node {config.name!r} lists itself as a peer")
    return config.model_copy(update={
        "key_file": _resolve(base, config.key_file),
        "publisher_key_file": _resolve(base, config.publisher_key_file),
        "log": _resolve(base, config.log),
        "state": _resolve(base, config.state),
        "sources": config.sources.model_copy(
            update={"offers": _resolve(base, config.sources.offers)}),
        "telemetry": config.telemetry.model_copy(
            update={"agents": _resolve(base, config.telemetry.agents)}),
    })


def read_keys(path: Path) -> list[bytes]:
    """The 32-byte private keys in a file of hex, one per line (`#` comments allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"key file {path} does not exist") from exc
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        try:
            raw = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ConfigError(f"{path}:{number} is not a 32-byte hex private key")
        keys.append(raw)
    if not keys:
        raise ConfigError(f"{path} holds no keys")
    return keys


def read_key(path: Path) -> bytes:
    """The first private key of a key file (see `read_keys`)."""
    return read_keys(path)[0]
