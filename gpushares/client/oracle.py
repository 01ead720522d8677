"""The OracleHub as its admin and its readers see it: the signer set, the feeds, each
feed's latest value and whether it is fresh at the chain's time.

The nodes themselves (`gpu-oracle`) sign and publish; this module only administers the
hub and reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict

from gpushares import reasons
from gpushares.client.chain import Plan
from gpushares.client.context import Client
from gpushares.client.units import BadInput, address, fmt_units, to_base_units
from oracle.reports import feed_id, feed_name

ORACLE_ADMIN_ROLE = keccak(text="ORACLE_ADMIN_ROLE")
MAX_SIGNERS = 31
FEED_DECIMALS = 8


def _admin_refusal(client: Client, admin: str) -> str | None:
    if client.hub().hasRole(ORACLE_ADMIN_ROLE, address(admin, "admin")):
        return None
    return f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({admin} lacks the hub's ORACLE_ADMIN_ROLE)"


def plan_set_signers(client: Client, admin: str, signers: Sequence[str],
                     threshold: int) -> Plan:
    """Replace the signer set (sorted here, as the hub wants) and its threshold; the hub's
    config version moves on and reports signed for the old set are refused from then."""
    checked = [address(s, "signer") for s in signers]
    unique = sorted(set(checked), key=lambda a: int(a, 16))
    if len(unique) != len(checked):
        raise BadInput("signer: the same address was given twice")
    if not 1 <= len(unique) <= MAX_SIGNERS:
        raise BadInput(f"signer: give 1 to {MAX_SIGNERS} signers, got {len(unique)}")
    if not 1 <= threshold <= len(unique):
        raise BadInput(f"threshold: {threshold} is not between 1 and the {len(unique)} signers")
    tx = client.hub().set_signers.tx(
        unique, threshold, what=f"signer set of {len(unique)}, threshold {threshold}")
    if threshold * 2 <= len(unique):
        return Plan.of(tx, refusal=reasons.HUB_THRESHOLD_NOT_MAJORITY)
    return Plan.of(tx, refusal=_admin_refusal(client, admin))


def _usd(value: str, what: str) -> int:
    return to_base_units(value, FEED_DECIMALS, what, allow_zero=True)


def plan_add_feed(client: Client, admin: str, name: str, description: str, min_value: str,
                  max_value: str, max_move_bps: int, heartbeat: int) -> Plan:
    """Add a price feed and deploy its Chainlink-compatible FeedAdapter."""
    try:
        fid = bytes.fromhex(feed_id(name)[2:])
    except ValueError as exc:
        raise BadInput(f"name: {exc}") from exc
    if not description:
        raise BadInput("description: must not be empty")
    low, high = _usd(min_value, "min"), _usd(max_value, "max")
    if low > high:
        raise BadInput("min: is above max")
    if not 0 <= max_move_bps <= 65_535:
        raise BadInput(f"max move: {max_move_bps} bps is not between 0 and 65,535")
    if not 1 <= heartbeat < 2**32:
        raise BadInput(f"heartbeat: {heartbeat} s is not between 1 and 2**32-1")
    hub = client.hub()
    tx = hub.add_feed.tx(fid, description, low, high, max_move_bps, heartbeat,
                         what=f"feed {name}")
    if hub.feed(fid).exists:
        return Plan.of(tx, refusal=reasons.HUB_FEED_ALREADY_EXISTS)
    return Plan.of(tx, refusal=_admin_refusal(client, admin))


class FeedView(BaseModel):
    """One feed at the chain's time."""

    model_config = ConfigDict(frozen=True)

    name: str
    feed_id: str
    enabled: bool
    adapter: str
    value: int  # 8 decimals; 0 with no value yet
    observed_at: int
    round_id: int  # 0: no value yet
    min_answer: int
    max_answer: int
    max_move_bps: int
    heartbeat: int
    age: int  # seconds since observed_at, at the chain's time (-1: no value yet)

    @property
    def stale(self) -> bool:
        return self.round_id == 0 or self.age > self.heartbeat

    def describe(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        if self.round_id:
            freshness = (f"STALE, {self.age:,}s old" if self.stale
                         else f"fresh, {self.age:,}s old")
            latest = (f"{fmt_units(self.value, FEED_DECIMALS)} USD (round {self.round_id}, "
                      f"observed {self.observed_at}; {freshness})")
        else:
            latest = "no value yet"
        return (f"feed {self.name} [{state}] adapter {self.adapter}: {latest}; bounds "
                f"{fmt_units(self.min_answer, FEED_DECIMALS)}.."
                f"{fmt_units(self.max_answer, FEED_DECIMALS)}, max move {self.max_move_bps} "
                f"bps, heartbeat {self.heartbeat}s")


class HubView(BaseModel):
    """The hub: signer set, log checkpoint and feeds."""

    model_config = ConfigDict(frozen=True)

    address: str
    config_version: int
    threshold: int
    signers: list[str]
    checkpoint_size: int
    checkpoint_root: str
    feeds: list[FeedView]

    def lines(self) -> list[str]:
        out = [f"OracleHub {self.address}: config version {self.config_version}, "
               f"{self.threshold}-of-{len(self.signers)}"]
        out += [f"  signer {s}" for s in self.signers]
        out.append(f"log checkpoint: size {self.checkpoint_size}, root {self.checkpoint_root}")
        out += [f.describe() for f in self.feeds]
        return out


def feed(client: Client, name: str) -> FeedView:
    """Feed `name`; BadInput if the hub has no such feed."""
    try:
        fid = bytes.fromhex(feed_id(name)[2:])
    except ValueError as exc:
        raise BadInput(f"feed: {exc}") from exc
    hub = client.hub()
    info = hub.feed(fid)
    if not info.exists:
        raise BadInput(f"feed: the hub has no feed {name!r} (see `ape run oracle status`)")
    return _feed_view(client, fid, info)


def _feed_view(client: Client, fid: bytes, info: object) -> FeedView:
    return feed_view_from(fid, info, client.hub().latest_value(fid), client.chain.now())


def feed_view_from(fid: bytes, info: Any, latest: Sequence[Any], now: int) -> FeedView:
    """The model of a feed from the hub's `feed(fid)` and `latest_value(fid)` at chain
    time `now` (shared by the readers here and the app's lens)."""
    value, observed, round_id = latest
    return FeedView(
        name=feed_name("0x" + fid.hex()), feed_id="0x" + fid.hex(), enabled=bool(info.enabled),
        adapter=str(info.adapter), value=int(value), observed_at=int(observed),
        round_id=int(round_id), min_answer=int(info.min_answer),
        max_answer=int(info.max_answer), max_move_bps=int(info.max_move_bps),
        heartbeat=int(info.heartbeat), age=now - int(observed) if round_id else -1)


def hub_view(client: Client, only: str | None = None) -> HubView:
    """The hub's signer set, checkpoint and every feed (or only feed `only`)."""
    hub = client.hub()
    size, root = hub.checkpoint()
    feeds = []
    for i in range(int(hub.feed_count())):
        fid = bytes(hub.feed_ids(i))
        if only is not None and feed_name("0x" + fid.hex()) != only:
            continue
        feeds.append(_feed_view(client, fid, hub.feed(fid)))
    return HubView(address=hub.address, config_version=int(hub.config_version()),
                   threshold=int(hub.threshold()), signers=list(hub.signers()),
                   checkpoint_size=int(size), checkpoint_root="0x" + bytes(root).hex(),
                   feeds=feeds)


class RoundView(BaseModel):
    """One past round of a feed (the hub keeps the last 256)."""

    model_config = ConfigDict(frozen=True)

    round_id: int
    value: int  # 8 decimals
    updated_at: int


def rounds(client: Client, name: str, history: int = 64) -> list[RoundView]:
    """The last `history` rounds of feed `name`, newest first (one `get_round_data` call
    per round; the app reads them through the lens in one call)."""
    try:
        fid = bytes.fromhex(feed_id(name)[2:])
    except ValueError as exc:
        raise BadInput(f"feed: {exc}") from exc
    hub = client.hub()
    latest = int(hub.latest_value(fid)[2])
    out = []
    for round_id in range(latest, max(latest - history, 0), -1):
        rid, value, _started, updated, _answered = hub.get_round_data(fid, round_id)
        out.append(RoundView(round_id=int(rid), value=int(value), updated_at=int(updated)))
    return out
