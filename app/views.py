"""What each page shows. Each page section is one read of the chain through
`gpushares.client.lens` (one `eth_call` to contracts/Lens.vy), so a page costs at most a
few JSON-RPC calls whatever the number of SPVs, GPUs or markets; the models are the
client's own (`spv.Holding`, `pool.PositionView`, ...), so the page and the scripts say
the same thing. What the chain does not hold (the law behind a jurisdiction, the oracle's
log) comes from the shipped rules data and from an oracle node."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, ValidationError

from app.charts import line_chart
from gpushares.client import jurisdictions as law
from gpushares.client import lens, perp
from gpushares.client.chain import ZERO_ADDRESS, revert_reason
from gpushares.client.context import Client
from gpushares.client.units import fmt_units, percent
from jurisdictions.rules import JurisdictionRules, RulesError
from oracle.reports import feed_name

if TYPE_CHECKING:
    from app.server import Settings

FEED_DECIMALS = 8
HISTORY = 64


def account_of(cookie: str | None) -> str | None:
    """The connected wallet from the `account` cookie (None when absent or not an address)."""
    if cookie and is_address(cookie):
        return to_checksum_address(cookie)
    return None


def short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def age(seconds: int) -> str:
    if seconds < 0:
        return "never"
    return perp.fmt_seconds(seconds)


def usd(answer: int) -> str:
    return fmt_units(answer, FEED_DECIMALS)


def rule_of(numeric: int) -> JurisdictionRules | None:
    """What the shipped rules data says about a jurisdiction (None when it is not listed
    or the data does not load)."""
    rules = law.shipped()
    try:
        return rules.resolve(numeric) if rules else None
    except (RulesError, KeyError):
        return None


def place_name(numeric: int) -> str:
    """A jurisdiction's name from the shipped rules data (its number when not listed)."""
    rule = rule_of(numeric)
    return rule.name if rule else f"jurisdiction {numeric}"


def points(rounds: Any) -> list[tuple[int, Decimal]]:
    """(time, value) of a feed's rounds (as the lens gives them, newest first), oldest
    first, in USD."""
    ordered = sorted(rounds, key=lambda r: r.round_id)
    return [(int(r.updated_at), Decimal(int(r.value)) / 10**FEED_DECIMALS) for r in ordered]


TEMPLATE_GLOBALS = {
    "fmt": fmt_units, "short": short, "pct": percent, "when": when, "age": age,
    "price": perp.fmt_price, "rate": perp.fmt_rate, "gpuh": perp.gpuh, "sized": perp.sized,
    "liq": perp.fmt_liquidation, "me_price": lambda m, v: m.price.text(v),
    "place_name": place_name,
}


class NodeListed(BaseModel):
    """One entry of an oracle node's `/v1/attestations` listing (not trusted: the page
    checks each entry's proof, and shows what the proven leaf says). Strict: an answer in
    another shape is not an oracle node's."""

    model_config = ConfigDict(strict=True)

    index: int
    kind: str


class NodeListing(BaseModel):
    model_config = ConfigDict(strict=True)

    entries: list[NodeListed]
    size: int


class NodeEntry(BaseModel):
    """The part of `/v1/attestations/<i>` the page shows beside the proof check."""

    model_config = ConfigDict(strict=True)

    signers: list[str] = []
    report: dict[str, Any] | None = None


@dataclass(frozen=True)
class Executed:
    block: int
    trade: str
    price: str
    fee: str


def _feed_label(feed_id: str | None) -> str | None:
    if not feed_id:
        return None
    try:
        return feed_name(feed_id)
    except ValueError:
        return feed_id


class Reader:
    """The pages' reads over one client."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        # One pooled client for the oracle node (a new httpx client per request costs
        # more than the request: its TLS context is built even for plain HTTP).
        self.http = httpx.Client(timeout=5)

    # ------------------------------------------------------------------ pages

    def portfolio(self, account: str | None) -> dict[str, Any]:
        page = lens.portfolio(self.client, account or ZERO_ADDRESS)
        return {"portfolio": page, "connected": account is not None}

    def spv(self, spv_id: int) -> dict[str, Any]:
        page = lens.spv_page(self.client, spv_id, history=HISTORY)
        symbol = page.status.token_symbol
        if page.nav is None:
            nav, chart = None, "<p>This SPV has no NAV feed yet.</p>"
        else:
            feed = page.nav.feed
            nav = {"value_text": f"{usd(feed.value)} USD (round {feed.round_id}, observed "
                                 f"{when(feed.observed_at)})", "stale": feed.stale}
            chart = line_chart(points(page.nav.rounds), title=f"NAV per share of {symbol}",
                               unit="USD")
        places = [self._place(t) for t in page.titles]
        return {"spv": {"status": page.status, "gpus": page.gpus, "nav": nav,
                        "nav_chart": chart,
                        "location_names": {p["numeric"]: p["name"] for p in places}},
                "places": places}

    def invest(self, account: str | None) -> dict[str, Any]:
        out = []
        for section in lens.vaults(self.client, account):
            out.append({"view": section.status, "investor": section.investor,
                        "notice": age(section.status.notice_period),
                        "cancel_after": age(section.status.cancel_after)})
        return {"vaults": out}

    def lend(self, account: str | None) -> dict[str, Any]:
        return {"pools": [{"market": s.market, "position": s.position}
                          for s in lens.pools(self.client, account)]}

    def trade(self, account: str | None) -> dict[str, Any]:
        sections = lens.perps(self.client, account, history=HISTORY)
        history = self._executed([s.market for s in sections], account) if account else {}
        out = []
        for s in sections:
            chart = line_chart(points(s.index_rounds), title=f"{s.market.feed} index",
                               unit="USD")
            out.append({"market": s.market, "position": s.position, "order": s.order,
                        "chart": chart, "executed": history.get(s.market.address, [])})
        return {"perps": out}

    def oracle(self) -> dict[str, Any]:
        page = lens.oracle(self.client, history=HISTORY)
        feeds = [{"view": f, "value_text": usd(f.value),
                  "chart": line_chart(points(page.rounds.get(f.name, [])), title=f.name,
                                      unit="USD")}
                 for f in page.hub.feeds]
        return {"oracle": {"hub": page.hub, "feeds": feeds}, "log": self._log_tail(page.hub)}

    # ------------------------------------------------------------------ pieces

    def _executed(self, markets: list[perp.MarketView],
                  account: str) -> dict[str, list[Executed]]:
        """The account's trades and its orders refused at execution in every market (their
        `PositionModified` and `OrderFailed` events: one eth_getLogs for all markets),
        newest first, by market address."""
        if not markets:
            return {}
        contract = self.client.chain.contract("PerpMarket", markets[0].address)
        kinds = ("PositionModified", "OrderFailed")
        padded = "0x" + "00" * 12 + account[2:].lower()
        logs = self.client.chain.logs([m.address for m in markets],
                                      [[contract.event_topic(k) for k in kinds], padded], 0)
        by_address = {m.address.lower(): (m, self.client.chain.contract("PerpMarket", m.address))
                      for m in markets}
        rows: dict[str, list[Executed]] = {m.address: [] for m in markets}
        for log in logs:
            if log.address.lower() not in by_address:
                continue
            market, reader = by_address[log.address.lower()]
            asset = market.asset
            if (e := reader.decode_event("PositionModified", log)) is not None:
                rows[market.address].append(Executed(
                    block=log.block_number, trade=perp.traded(e["size_delta"]),
                    price=perp.fmt_price(e["fill_price"]), fee=asset.fmt(e["fee"])))
            elif (e := reader.decode_event("OrderFailed", log)) is not None:
                why = revert_reason(bytes(e["reason"])) or "refused"
                rows[market.address].append(Executed(
                    block=log.block_number, trade=f"order refused at execution: {why}",
                    price=perp.fmt_price(e["price"]),
                    fee=asset.fmt(e["keeper_fee"]) + " keeper fee"))
        return {address: found[::-1] for address, found in rows.items()}

    def _place(self, title: lens.LocationTitle) -> dict[str, Any]:
        """A location of the register: the registry's title status and holder policy there,
        and the rules data's account of it, with the citations."""
        rule = rule_of(title.location)
        return {"numeric": title.location, "name": place_name(title.location),
                "onchain_title": title.title_name, "onchain_policy": title.policy_name,
                "override": title.override_in_force, "rule": rule}

    def _log_tail(self, hub: Any) -> dict[str, Any]:
        """The newest entries the on-chain checkpoint covers (from an oracle node's API),
        the latest with its report's signers, for the in-page proof check."""
        url = self.settings.oracle_url
        if url is None:
            return {"error": "This app was started without an oracle node: the log and its "
                             "proofs are not shown.", "entries": []}
        size = hub.checkpoint_size
        entries = []
        try:
            listed = self.http.get(f"{url}/v1/attestations",
                                   params={"after": max(size - 6, -1), "limit": 5})
            listed.raise_for_status()
            listing = NodeListing.model_validate_json(listed.content)
            for item in listing.entries:
                if not 0 <= item.index < size:
                    continue
                detail = self.http.get(f"{url}/v1/attestations/{item.index}",
                                       params={"size": size})
                detail.raise_for_status()
                proven = NodeEntry.model_validate_json(detail.content)
                feed_id = str((proven.report or {}).get("feedId") or "")
                entries.append({"index": item.index, "kind": item.kind,
                                "signers": proven.signers, "feed": _feed_label(feed_id),
                                "feed_id": feed_id})
        except (httpx.HTTPError, ValidationError) as exc:
            return {"error": f"The oracle node {url} did not answer as an oracle node does "
                             f"({type(exc).__name__}): the log is not shown.", "entries": []}
        return {"error": None, "entries": entries[::-1], "size": listing.size, "url": url}
