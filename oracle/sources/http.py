"""A generic HTTP JSON price source: GET a URL, find the list of rows in the JSON body,
and map each row to a `Quote` through a declarative `FieldMap`.

    source = HttpJsonSource(
        "acme-cloud", "https://api.acme.example/v1/gpu-prices",
        FieldMap(rows="data.offers", offer_id="sku", gpu_name="gpu.model",
                 price_per_gpu_hour="price.usd_per_hour", provider_value="acme-cloud",
                 country="location.country", tier_value="rate_card"),
    )
    result = source.fetch()

Transient failures (connect errors, timeouts, dropped connections, HTTP 408, 429, 500,
502, 503, 504) are retried by the oracle's one retry policy (`oracle.retry`): exponential
back-off (`backoff * 2**n` seconds, at most `max_backoff`, shortened by random jitter,
longer if the server sends a numeric Retry-After within that cap), each retry logged.
Anything else (another 4xx or 5xx, a body that is not JSON or holds no rows list) raises
`SourceError` at once: a retry would not fix it. Numbers in the body never reach a
`Quote` as floats: a JSON float becomes `Decimal(repr(x))`, an int `Decimal(x)`, a
numeric string is parsed as text; prices are kept to 8 decimals.

Rows that cannot be used are skipped and counted: `not_an_object`, `missing:<field>`,
`wrong_type:<field>`, `non_finite:<field>`, `not_a_number:<field>`,
`out_of_range:<field>`,
`non_positive_price`, `non_positive_gpu_count`, `bad_country`, `bad_geolocation`,
`bad_reliability`, `bad_observed_at`, `bad_tier`, `duplicate_offer_id`,
`invalid:<field>`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from decimal import ROUND_FLOOR, Decimal
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oracle.retry import (
    TRANSIENT_STATUSES,
    RetriesExhausted,
    RetryPolicy,
    TransientStatus,
    parse_retry_after,
)
from oracle.sources import _common as c
from oracle.sources.errors import SourceError
from oracle.sources.history import RowCountHistory
from oracle.sources.quote import Quote, SourceResult, SourceTier

log = logging.getLogger(__name__)

_PATH = re.compile(r"[^.]+(\.[^.]+)*")
_MISSING = object()

JsonPath = Annotated[str, Field(min_length=1, max_length=200, pattern=rf"^{_PATH.pattern}$")]


class FieldMap(BaseModel):
    """Where each quote field sits in a row of the JSON body.

    Paths are dot-separated keys (`"price.usd"`); a segment of digits indexes a list
    (`"prices.0.usd"`). `rows` is the path of the rows list in the body ("" when the
    body itself is the list). Give exactly one of `price_per_gpu_hour` and
    `price_total` (the whole offer's hourly price, divided by the GPU count). Fields
    left as None are not read; `*_value` fields are constants for every row.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: Annotated[str, Field(max_length=200, pattern=rf"^({_PATH.pattern})?$")] = ""
    offer_id: JsonPath
    gpu_name: JsonPath
    price_per_gpu_hour: JsonPath | None = None
    price_total: JsonPath | None = None
    gpu_count: JsonPath | None = None  # None: every row is one GPU
    provider: JsonPath | None = None
    provider_value: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    host: JsonPath | None = None  # None: the provider is the contributor (a rate card)
    machine: JsonPath | None = None
    gpu_ram_gb: JsonPath | None = None  # GB, an integer
    geolocation: JsonPath | None = None  # "Region, CC", an alternative to country/region
    country: JsonPath | None = None  # ISO 3166-1 alpha-2
    region: JsonPath | None = None
    reliability: JsonPath | None = None  # 0..1
    rented: JsonPath | None = None  # a boolean
    observed_at: JsonPath | None = None  # unix seconds or ISO-8601; None: the fetch time
    tier: JsonPath | None = None  # "trade" | "executable_offer" | "rate_card"
    tier_value: SourceTier = SourceTier.EXECUTABLE_OFFER

    @model_validator(mode="after")
    def _consistent(self) -> FieldMap:
        if (self.price_per_gpu_hour is None) == (self.price_total is None):
            raise ValueError("give exactly one of price_per_gpu_hour and price_total")
        if (self.provider is None) == (self.provider_value is None):
            raise ValueError("give exactly one of provider (a path) and provider_value")
        if self.geolocation is not None and (self.country or self.region):
            raise ValueError("give geolocation or country/region, not both")
        return self


def _resolve(value: Any, path: str) -> Any:
    """The value at a dotted path, or `_MISSING`."""
    if path == "":
        return value
    for part in path.split("."):
        if isinstance(value, dict):
            if part not in value:
                return _MISSING
            value = value[part]
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            if index >= len(value):
                return _MISSING
            value = value[index]
        else:
            return _MISSING
    return value


def _number(value: Any, field: str) -> Decimal:
    """A JSON number or a numeric string, as an exact Decimal."""
    if isinstance(value, str):
        return c.text_number(value, field)
    return c.json_number(value, field)


class HttpJsonSource:
    """One HTTP JSON price feed. `fetch()` returns a `SourceResult` named `name`.

    `timeout` is seconds per attempt (connect, read, write and pool each); a run makes
    at most `retries + 1` attempts. Pass `client` to reuse a connection pool (it is not
    closed here); otherwise each fetch opens and closes its own. `history` records the
    accepted-row count of each run (see `RowCountHistory`). `clock` gives the unix time
    used as the result's `observed_at` (and a row's, when the map has none).
    """

    def __init__(self, name: str, url: str, fields: FieldMap | dict[str, Any], *,
                 timeout: float = 10.0, retries: int = 3, backoff: float = 0.5,
                 max_backoff: float = 30.0, max_bytes: int = 32 * 1024 * 1024,
                 headers: dict[str, str] | None = None,
                 client: httpx.Client | None = None, history: RowCountHistory | None = None,
                 clock: Callable[[], int] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not name or len(name) > 120:
            raise SourceError(f"source name must be 1..120 characters, got {name!r}")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise SourceError(f"source {name}: {url!r} is not a valid URL ({exc})") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise SourceError(f"source {name}: only http:// and https:// URLs with a host are "
                              f"supported, got {url!r}")
        if timeout <= 0 or retries < 0 or backoff < 0 or max_backoff < 0 or max_bytes <= 0:
            raise SourceError(f"source {name}: timeout and max_bytes must be positive, "
                              "retries, backoff and max_backoff non-negative")
        self.name = name
        self.url = _display_url(parsed)  # what messages show: no secrets
        self._url = url
        self.fields = fields if isinstance(fields, FieldMap) else FieldMap.model_validate(fields)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_bytes = max_bytes
        self.retry_policy = RetryPolicy(attempts=retries + 1, initial_s=backoff,
                                        max_wait_s=max_backoff)
        self.headers = {"Accept": "application/json", **(headers or {})}
        self.history = history
        self._client = client
        self._clock = clock or (lambda: time.time_ns() // 1_000_000_000)
        self._sleep = sleep

    # ------------------------------------------------------------------ fetching

    def fetch(self, *, history: RowCountHistory | None = None) -> SourceResult:
        """GET the URL (with retries), parse the rows into quotes.

        Raises `SourceError` when the feed cannot be used as a whole (see the module
        docstring); bad rows are skipped and counted. `history` overrides the one given
        to the constructor for this run.
        """
        status, body = self._download()
        fetched_at = self._clock()
        try:
            document = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(
                f"source {self.name}: {self.url} answered HTTP {status} with a body that is "
                f"not JSON ({exc}; starts {body[:60]!r}); check that the URL is the JSON "
                "API endpoint, not a web page") from exc
        rows = _resolve(document, self.fields.rows)
        if not isinstance(rows, list):
            where = f'at "{self.fields.rows}"' if self.fields.rows else "at the top level"
            found = "nothing" if rows is _MISSING else f"a JSON {type(rows).__name__}"
            raise SourceError(
                f"source {self.name}: {self.url} answered HTTP {status} but the body holds "
                f"{found} {where}, not a list of rows; fix FieldMap.rows to point at the "
                "rows list")
        tally = c.Tally()
        for row in rows:
            tally.row(lambda row=row: self._quote(row, fetched_at))
        return tally.result(self.name, fetched_at, history or self.history)

    def _download(self) -> tuple[int, bytes]:
        try:
            return self.retry_policy.call(
                self._attempt, what=f"source {self.name}: GET {self.url}", logger=log,
                sleep=self._sleep,
                advice="the server is down, overloaded or too slow: try again later, or "
                       "raise the timeout/retries if it is merely slow")
        except RetriesExhausted as exc:
            raise SourceError(
                f"source {self.name}: {self.url} failed {exc.attempts} attempt(s) "
                f"({'; '.join(exc.errors)}); {exc.advice}") from exc

    def _attempt(self) -> tuple[int, bytes]:
        """One GET: (status, body) on success; raises TransientStatus for a status worth
        retrying (`oracle.retry.TRANSIENT_STATUSES`), SourceError for any other."""
        client = self._client or httpx.Client()
        try:
            with client.stream("GET", self._url, headers=self.headers,
                               timeout=httpx.Timeout(self.timeout),
                               follow_redirects=True) as response:
                status = response.status_code
                if status in TRANSIENT_STATUSES:
                    raise TransientStatus(status,
                                          parse_retry_after(response.headers.get("retry-after")))
                if not 200 <= status < 300:
                    hint = ("check the URL and any credentials in the headers"
                            if 400 <= status < 500 else "the server answered unexpectedly")
                    raise SourceError(
                        f"source {self.name}: {self.url} answered HTTP {status} "
                        f"{response.reason_phrase}; not retried: {hint}")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise SourceError(
                            f"source {self.name}: {self.url} sent more than {self.max_bytes} "
                            "bytes; raise max_bytes if the feed really is that large")
                    chunks.append(chunk)
                return status, b"".join(chunks)
        except httpx.TooManyRedirects as exc:
            raise SourceError(f"source {self.name}: {self.url} redirects in a loop ({exc}); "
                              "configure the final URL") from exc
        except httpx.UnsupportedProtocol as exc:
            raise SourceError(f"source {self.name}: {self.url} redirected to a URL that is "
                              f"not http(s) ({exc}); configure the final URL") from exc
        finally:
            if self._client is None:
                client.close()

    # ------------------------------------------------------------------- parsing

    def _get(self, row: dict[str, Any], field: str, *, required: bool) -> Any:
        path = getattr(self.fields, field)
        value = _MISSING if path is None else _resolve(row, path)
        if value is _MISSING or value is None:
            if required:
                raise c.RowRejected(f"missing:{field}")
            return None
        return value

    def _quote(self, row: Any, fetched_at: int) -> Quote:
        if not isinstance(row, dict):
            raise c.RowRejected("not_an_object")
        f = self.fields
        offer_id = c.identifier(self._get(row, "offer_id", required=True), "offer_id")
        gpu_name = c.nonempty_text(self._get(row, "gpu_name", required=True), "gpu_name")
        provider = (f.provider_value if f.provider is None else
                    c.nonempty_text(self._get(row, "provider", required=True), "provider"))
        host = (provider if f.host is None else
                c.identifier(self._get(row, "host", required=True), "host"))
        machine = None
        if (raw := self._get(row, "machine", required=False)) is not None:
            machine = c.identifier(raw, "machine")

        gpu_count = 1
        if f.gpu_count is not None:
            count = _number(self._get(row, "gpu_count", required=True), "gpu_count")
            if count != count.to_integral_value():
                raise c.RowRejected("wrong_type:gpu_count")
            gpu_count = int(count)
            if gpu_count <= 0:
                raise c.RowRejected("non_positive_gpu_count")
        if f.price_total is not None:
            total = _number(self._get(row, "price_total", required=True), "price_total")
            price = c.per_gpu_price(total, gpu_count)
        else:
            per_gpu = _number(self._get(row, "price_per_gpu_hour", required=True),
                              "price_per_gpu_hour")
            price = c.per_gpu_price(per_gpu, 1)

        region: str | None = None
        country: str | None = None
        if f.geolocation is not None:
            region, country = c.geolocation(self._get(row, "geolocation", required=True))
        if f.country is not None:
            raw_country = self._get(row, "country", required=True)
            if not isinstance(raw_country, str) or not re.fullmatch(
                    r"[A-Za-z]{2}", raw_country.strip()):
                raise c.RowRejected("bad_country")
            country = raw_country.strip().upper()
        if (raw := self._get(row, "region", required=False)) is not None:
            if not isinstance(raw, str):
                raise c.RowRejected("wrong_type:region")
            region = raw.strip() or None

        reliability = None
        if (raw := self._get(row, "reliability", required=False)) is not None:
            reliability = c.reliability(_number(raw, "reliability"))
        ram = None
        if (raw := self._get(row, "gpu_ram_gb", required=False)) is not None:
            ram = c.json_int(raw, "gpu_ram_gb")
        rented = False
        if (raw := self._get(row, "rented", required=False)) is not None:
            if not isinstance(raw, bool):
                raise c.RowRejected("wrong_type:rented")
            rented = raw
        observed_at = fetched_at
        if f.observed_at is not None:
            observed_at = _unix_time(self._get(row, "observed_at", required=True))
        tier = f.tier_value
        if f.tier is not None:
            raw = self._get(row, "tier", required=True)
            try:
                tier = SourceTier(raw)
            except ValueError:
                raise c.RowRejected("bad_tier") from None
        return c.build_quote({
            "source": self.name,
            "provider": provider,
            "host": host,
            "offer_id": offer_id,
            "machine": machine,
            "gpu_name": gpu_name,
            "gpu_ram_gb": ram,
            "gpu_count": gpu_count,
            "price_per_gpu_hour": price,
            "region": region,
            "country": country,
            "reliability": reliability,
            "rented": rented,
            "observed_at": observed_at,
            "tier": tier,
        })


def _unix_time(value: Any) -> int:
    """Unix seconds (a number, floored) or an ISO-8601 time with an offset."""
    if isinstance(value, str) and not re.fullmatch(r"[0-9]+(\.[0-9]+)?", value.strip()):
        try:
            return c.iso_to_unix(value)
        except ValueError:
            raise c.RowRejected("bad_observed_at") from None
    try:
        seconds = _number(value, "observed_at")
    except c.RowRejected:
        raise c.RowRejected("bad_observed_at") from None
    if seconds < 0:
        raise c.RowRejected("bad_observed_at")
    return int(seconds.to_integral_value(rounding=ROUND_FLOOR))


_SECRET_PARAM = re.compile(r"key|token|secret|sig|auth|pass|credential", re.IGNORECASE)


def _display_url(url: httpx.URL) -> str:
    """The URL for messages and logs: no user info, and the values of query parameters
    that look like credentials replaced by ***. (Better still: send credentials in
    `headers`, which are never shown.)"""
    shown = url.copy_with(username=None, password=None) if url.userinfo else url
    text = str(shown)
    if not shown.query:
        return text
    base, _, query = text.partition("?")
    parts = []
    for part in query.split("&"):
        key, eq, _value = part.partition("=")
        parts.append(f"{key}=***" if eq and _SECRET_PARAM.search(key) else part)
    return f"{base}?{'&'.join(parts)}"
