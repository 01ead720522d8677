"""An oracle node's configuration: one TOML file per node.

    name = "node-1"                     # this node's name, as its peers know it
    key_file = "node-1/signer.json"     # the node's signer key (one of the hub's signers)
    publisher_key_file = "node-1/publisher.json"  # pays for publishing (optional)
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

    [api]                               # limits of the HTTP API (defaults shown)
    max_body_bytes = 1048576            # any request body; larger is 413
    max_input_items = 20000             # JSON objects and arrays in a peer's inputs
    peer_rate_per_s = 20                # authenticated peer requests a second, per peer
    peer_burst = 40
    auth_window_s = 300                 # a peer request's time vs this node's chain time

    [keystore]                          # the keystores' passphrase: one of
    password_env = "GPU_ORACLE_PASSPHRASE"          # an environment variable (default)
    # password_file = "/run/secrets/node-1-passphrase"  # or a file (first line)

Relative paths are relative to the config file's folder. Keys live in their own files so
the config can be shared and reviewed without secrets: an encrypted Ethereum V3 keystore
(what `gpu-oracle init` writes; decrypted with the `[keystore]` passphrase) or a file of
hex (tests and the demo; see `oracle/keys.py`).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from oracle import attest, keys


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
    # The fleet's latest utilisation report may be at most this old (its period's end
    # against the chain's clock); older, the NAV is withheld until a newer one is logged.
    max_utilisation_age_s: Annotated[int, Field(ge=3_600)] = 31 * 86_400


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

    # How long a leader waits for its peers' signatures.
    sign_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    # `gpu-oracle serve` pulls its peers' new entries this often (0: only when asked to
    # co-sign or when leading a round).
    sync_interval_s: Annotated[float, Field(ge=0)] = 5.0
    # Once k signatures are in, the remaining peers get this long to answer, so a
    # disagreeing node is named in the round's record.
    outvote_grace_s: Annotated[float, Field(ge=0)] = 1.0

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: object) -> object:
        if isinstance(data, dict):
            for name in ("vote_ttl_s", "deadline_s"):
                if name in data:
                    raise ValueError(
                        f"{name} is no longer a setting: a vote now binds until the log has "
                        "grown past its position (docs/oracle.md, 'Rounds'); remove the line")
        return data


class ApiConfig(BaseModel):
    """Limits of the node's HTTP API (docs/oracle.md, 'Peer authentication')."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Any request body larger than this is refused (413) before it is read further.
    max_body_bytes: Annotated[int, Field(ge=1_024, le=256 * 1024 * 1024)] = 1024 * 1024
    # A peer's input snapshot may hold at most this many JSON objects and arrays; more is
    # refused (422) before it is parsed.
    max_input_items: Annotated[int, Field(ge=10)] = 20_000
    # Authenticated peer requests per second and burst, per peer (429 beyond).
    peer_rate_per_s: Annotated[float, Field(gt=0)] = 20.0
    peer_burst: Annotated[float, Field(ge=1)] = 40.0
    # A peer request's time (the sender's chain time) must be this close to ours.
    auth_window_s: Annotated[float, Field(ge=10)] = 300.0


class KeystoreConfig(BaseModel):
    """Where the node's keystore passphrase comes from (plain hex key files need none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    password_env: Annotated[str, Field(pattern=keys.ENV_NAME.pattern)] = (
        keys.DEFAULT_PASSPHRASE_ENV)
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> KeystoreConfig:
        if self.password_file is not None and "password_env" in self.model_fields_set:
            raise ValueError("give password_env or password_file, not both")
        return self

    def passphrase(self) -> keys.Passphrase:
        return keys.Passphrase(env=self.password_env, file=self.password_file)


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
    api: ApiConfig = ApiConfig()
    keystore: KeystoreConfig = KeystoreConfig()

    @field_validator("peers")
    @classmethod
    def _peers(cls, v: list[PeerConfig]) -> list[PeerConfig]:
        if len({p.name for p in v}) != len(v):
            raise ValueError("two peers share a name")
        return v

    def peer_url(self, name: str) -> str | None:
        return next((p.url for p in self.peers if p.name == name), None)

    def signer_key(self) -> bytes:
        """The node's signer key (a keystore is decrypted with the configured passphrase)."""
        return read_key(self.key_file, self.keystore.passphrase())

    def publisher_key(self) -> bytes | None:
        """The publishing account's key, or None without a `publisher_key_file`."""
        if self.publisher_key_file is None:
            return None
        return read_key(self.publisher_key_file, self.keystore.passphrase())


def _resolve(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    return value if value.is_absolute() else (base / value).resolve()


def parse_config(text: str, path: Path | str) -> NodeConfig:
    """Validate a node's TOML config (`path` names it in errors); paths stay as written."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        config = NodeConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: {where}: {err['msg']}") from exc
    if any(p.name == config.name for p in config.peers):
        raise ConfigError(f"{path}: the node {config.name!r} lists itself as a peer")
    return config


def load_config(path: Path) -> NodeConfig:
    """Read and validate a node's TOML config; relative paths resolve against its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such config file") from exc
    config = parse_config(text, path)
    base = path.resolve().parent
    config = config.model_copy(update={
        "key_file": _resolve(base, config.key_file),
        "publisher_key_file": _resolve(base, config.publisher_key_file),
        "log": _resolve(base, config.log),
        "state": _resolve(base, config.state),
        "sources": config.sources.model_copy(
            update={"offers": _resolve(base, config.sources.offers)}),
        "telemetry": config.telemetry.model_copy(
            update={"agents": _resolve(base, config.telemetry.agents)}),
        "keystore": config.keystore.model_copy(
            update={"password_file": _resolve(base, config.keystore.password_file)}),
    })
    return config


def read_keys(path: Path, passphrase: keys.Passphrase | None = None) -> list[bytes]:
    """The private keys of a key file: lines of hex (`#` comments allowed) or one V3
    keystore, decrypted with `passphrase` (default: the `GPU_ORACLE_PASSPHRASE`
    environment variable; a node's config names its own source, see
    `NodeConfig.signer_key`)."""
    try:
        return keys.read_keys(path, passphrase)
    except keys.KeyFileError as exc:
        raise ConfigError(str(exc)) from exc


def read_key(path: Path, passphrase: keys.Passphrase | None = None) -> bytes:
    """The first private key of a key file (see `read_keys`)."""
    return read_keys(path, passphrase)[0]


# ------------------------------------------------------------------ a new node's config


def _toml_str(value: str) -> str:
    # A JSON string (escapes: \" \\ \n \t \uXXXX ...) is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=False)


def render_new_config(*, name: str, rpc: str, hub: str, peers: list[tuple[str, str]],
                      feeds: list[str], offers: str | None = None, replay: bool = False,
                      password_env: str | None = None,
                      password_file: str | None = None) -> str:
    """The TOML `gpu-oracle init` writes: the node's files in the folder `name/` beside
    the config, keystore keys, the given peers, sources and index feeds. Paths are
    written as given (relative ones are relative to the config's folder)."""
    def line(key: str, value: str | int | bool, comment: str = "") -> str:
        shown = (("true" if value else "false") if isinstance(value, bool)
                 else str(value) if isinstance(value, int) else _toml_str(value))
        text = f"{key} = {shown}"
        return (text.ljust(44) + f"  # {comment}" if comment else text) + "\n"

    def table(header: str, comment: str = "", **values: str | int | bool) -> str:
        head = header.ljust(44) + f"  # {comment}" if comment else header
        return f"\n{head}\n" + "".join(line(k, v) for k, v in values.items())

    passphrase = (line("password_file", password_file, "a file (its first line)")
                  if password_file is not None
                  else line("password_env", password_env or keys.DEFAULT_PASSPHRASE_ENV,
                            "an environment variable (or password_file)"))
    return "".join([
        f"# The oracle node {name}, written by `gpu-oracle init`. Every field is described "
        "in\n# oracle/config.py; relative paths are relative to this file's folder.\n\n",
        line("name", name, "this node's name, as its peers know it"),
        line("key_file", f"{name}/signer.json", "signer key (V3 keystore): a hub signer"),
        line("publisher_key_file", f"{name}/publisher.json", "pays the gas (V3 keystore)"),
        line("log", f"{name}/attestations.sqlite", "this node's attestation log"),
        line("state", f"{name}/state.sqlite", "votes, rounds, telemetry"),
        line("rpc", rpc, "JSON-RPC of the hub's chain"),
        line("hub", hub, "OracleHub (deployments file: oracle_hub)"),
        table("[keystore]", "the passphrase of both keystores:"),
        passphrase,
        *(table("[[peers]]", name=peer, url=url) for peer, url in peers),
        table("[sources]", "marketplace offer snapshots", offers=offers, replay=replay)
        if offers is not None else "",
        *(table("[[feeds]]", "the GPU-hour index of one model", kind="index", model=model,
                deviation_bps=50, heartbeat_s=86_400) for model in feeds),
        "\n# NAV-per-share feeds ([[feeds]] kind = \"nav\"), [[utilisation]], [telemetry] "
        "and\n# [rounds]: see oracle/config.py.\n",
    ])
