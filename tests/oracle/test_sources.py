"""Price sources: the shipped marketplace snapshots and listings CSVs (pinned counts,
cross-checked against an independent stdlib recount), every bad-row reason, bad
top-level structures, the HTTP JSON source against a real local HTTP server, and the
row-count history."""

from __future__ import annotations

import copy
import csv
import gzip
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle import attest
from oracle.sources import (
    FieldMap,
    HttpJsonSource,
    Quote,
    RowCountHistory,
    SourceError,
    SourceResult,
    SourceTier,
    parse_csv,
    parse_snapshot,
)

DATA = Path(__file__).resolve().parents[2] / "oracle" / "data"
SNAPSHOTS = sorted((DATA / "offers").glob("*.json.gz"))
LISTINGS = sorted((DATA / "listings").glob("*/*.csv"))


def canonical(result: SourceResult) -> bytes:
    return attest.canonical_json([q.canonical() for q in result.quotes])


# ------------------------------------------------------------ shipped snapshots

# day -> (rows seen, rows accepted, rejected reasons). The only rows the real data
# loses are offers whose geolocation is null (location unknown, geolocode 0).
SNAPSHOT_COUNTS: dict[str, tuple[int, int, dict[str, int]]] = {
    "2026-02-27": (248, 248, {}),
    "2026-02-28": (234, 234, {}),
    "2026-03-01": (239, 235, {"missing:geolocation": 4}),
    "2026-03-02": (233, 233, {}),
    "2026-03-03": (226, 220, {"missing:geolocation": 6}),
}


def recount_snapshot(path: Path) -> tuple[int, int]:
    """Rows and usable rows, counted straight from the raw JSON with the stdlib."""
    raw = json.loads(gzip.decompress(path.read_bytes()))
    seen = usable = 0
    ids: set[int] = set()
    for offers in raw["offers_by_model"].values():
        for o in offers:
            seen += 1
            geo = o.get("geolocation")
            if (isinstance(geo, str) and re.fullmatch(r".*,\s*[A-Za-z]{2}\s*", geo)
                    and o["num_gpus"] > 0 and o["dph_total"] > 0
                    and (o["rentable"] or o["rented"]) and o["id"] not in ids):
                usable += 1
                ids.add(o["id"])
    return seen, usable


def test_every_shipped_day_is_pinned():
    assert [p.name[len("vastai-offers-"):-len(".json.gz")] for p in SNAPSHOTS] == list(
        SNAPSHOT_COUNTS)


@pytest.mark.parametrize("path", SNAPSHOTS, ids=lambda p: p.name)
def test_shipped_snapshot_counts(path: Path):
    day = path.name[len("vastai-offers-"):-len(".json.gz")]
    seen, accepted, reasons = SNAPSHOT_COUNTS[day]
    assert recount_snapshot(path) == (seen, accepted)  # the pins are not copied output
    result = parse_snapshot(path)
    assert result.source == "vastai-offers"
    assert (result.rows_seen, result.rows_accepted) == (seen, accepted)
    assert result.rows_rejected == seen - accepted == sum(reasons.values())
    assert result.rejected_reasons == reasons
    assert not result.low_row_count and result.note is None


@pytest.mark.parametrize("path", SNAPSHOTS, ids=lambda p: p.name)
def test_shipped_snapshot_quotes_match_the_raw_offers(path: Path):
    raw = json.loads(gzip.decompress(path.read_bytes()))
    offers = {o["id"]: o for lst in raw["offers_by_model"].values() for o in lst}
    result = parse_snapshot(path)
    observed = int(datetime.fromisoformat(raw["collected_utc"]).timestamp())
    assert result.observed_at == observed
    for q in result.quotes:
        o = offers[int(q.offer_id)]
        assert (q.provider, q.host, q.machine) == ("vast.ai", str(o["host_id"]),
                                                   str(o["machine_id"]))
        assert q.gpu_name == o["gpu_name"] and q.gpu_count == o["num_gpus"]
        assert abs(float(q.price_per_gpu_hour) - o["dph_total"] / o["num_gpus"]) <= 6e-9
        assert abs(float(q.gpu_fraction) - o["gpu_frac"]) <= 6e-7
        assert abs(float(q.reliability) - o["reliability"]) <= 6e-7
        assert q.gpu_ram_gb == round(o["gpu_ram"] / 1024)
        region, _, cc = o["geolocation"].rpartition(",")
        assert q.country == cc.strip() and q.region == (region.strip() or None)
        assert q.rented is o["rented"] is False
        assert q.observed_at == observed and q.tier is SourceTier.EXECUTABLE_OFFER


@pytest.mark.parametrize("path", SNAPSHOTS, ids=lambda p: p.name)
def test_shipped_snapshot_is_canonical_and_deterministic(path: Path):
    first, second = parse_snapshot(path), parse_snapshot(path.read_bytes())
    blob = canonical(first)
    assert blob == canonical(second)
    back = [Quote.model_validate(d) for d in json.loads(blob)]
    assert back == first.quotes
    for q in first.quotes:  # plain decimals: no exponent, no trailing zeros
        for text in (q.price_per_gpu_hour, q.gpu_fraction, q.reliability):
            assert re.fullmatch(r"[0-9]+(\.[0-9]*[1-9])?", text), text


def test_plain_json_parses_like_gzip(tmp_path: Path):
    path = SNAPSHOTS[0]
    plain = gzip.decompress(path.read_bytes())
    expected = canonical(parse_snapshot(path))
    assert canonical(parse_snapshot(plain)) == expected
    # gzip is recognised by its magic bytes, not by the file name
    misnamed_plain = tmp_path / "plain.json.gz"
    misnamed_plain.write_bytes(plain)
    misnamed_gzip = tmp_path / "gzip.json"
    misnamed_gzip.write_bytes(path.read_bytes())
    assert canonical(parse_snapshot(misnamed_plain)) == expected
    assert canonical(parse_snapshot(misnamed_gzip)) == expected


# ------------------------------------------------------------ shipped listings

# "MODEL-us/DAY" -> rows (every row is valid; the listings data has no rejects).
LISTING_ROWS: dict[str, int] = {
    "a100-pcie-us/2026-02-27": 7, "a100-pcie-us/2026-02-28": 5,
    "a100-pcie-us/2026-03-01": 7, "a100-pcie-us/2026-03-02": 7,
    "a100-pcie-us/2026-03-03": 2,
    "a100-sxm-us/2026-02-27": 0, "a100-sxm-us/2026-02-28": 0,
    "a100-sxm-us/2026-03-01": 0, "a100-sxm-us/2026-03-02": 0,
    "a100-sxm-us/2026-03-03": 0,
    "h100-pcie-us/2026-02-27": 1, "h100-pcie-us/2026-02-28": 0,
    "h100-pcie-us/2026-03-01": 0, "h100-pcie-us/2026-03-02": 0,
    "h100-pcie-us/2026-03-03": 0,
    "h100-sxm-us/2026-02-26": 8, "h100-sxm-us/2026-02-27": 16,
    "h100-sxm-us/2026-02-28": 8, "h100-sxm-us/2026-03-01": 12,
    "h100-sxm-us/2026-03-02": 4, "h100-sxm-us/2026-03-03": 6,
    "h200-nvl-us/2026-02-27": 2, "h200-nvl-us/2026-02-28": 2,
    "h200-nvl-us/2026-03-01": 1, "h200-nvl-us/2026-03-02": 2,
    "h200-nvl-us/2026-03-03": 0,
    "h200-us/2026-02-27": 6, "h200-us/2026-02-28": 6, "h200-us/2026-03-01": 11,
    "h200-us/2026-03-02": 9, "h200-us/2026-03-03": 9,
    "l40s-us/2026-02-27": 12, "l40s-us/2026-02-28": 15, "l40s-us/2026-03-01": 14,
    "l40s-us/2026-03-02": 17, "l40s-us/2026-03-03": 15,
    "rtx4090-us/2026-02-27": 18, "rtx4090-us/2026-02-28": 11,
    "rtx4090-us/2026-03-01": 31, "rtx4090-us/2026-03-02": 17,
    "rtx4090-us/2026-03-03": 14,
    "v100-us/2026-02-27": 50, "v100-us/2026-02-28": 48, "v100-us/2026-03-01": 48,
    "v100-us/2026-03-02": 46, "v100-us/2026-03-03": 43,
}


def test_every_shipped_listing_is_pinned():
    assert sorted(f"{p.parent.name}/{p.stem}" for p in LISTINGS) == sorted(LISTING_ROWS)


@pytest.mark.parametrize("path", LISTINGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_listings(path: Path):
    rows = list(csv.DictReader(path.open(newline="")))
    assert len(rows) == LISTING_ROWS[f"{path.parent.name}/{path.stem}"]
    result = parse_csv(path)
    assert result.source == f"listings:{path.parent.name}"
    assert (result.rows_seen, result.rows_accepted, result.rows_rejected) == (
        len(rows), len(rows), 0)
    assert result.rejected_reasons == {}
    for q, row in zip(result.quotes, rows, strict=True):
        # the contributor is the location; the machine, the listings of one location,
        # GPU, memory and reliability score (the marketplace's score is per machine)
        assert q.offer_id == row["listing_id"] and q.host == f"location:{row['geolocation']}"
        assert q.machine is not None and q.machine.startswith("rel:")
        assert Decimal(q.price_per_gpu_hour) == Decimal(row["dph_per_gpu"])  # as written
        assert q.gpu_name == row["gpu_name"] and q.gpu_count == int(row["num_gpus"])
        assert q.country == "US" and q.gpu_ram_gb == round(int(row["gpu_ram_gb"]) / 1024)
        assert q.observed_at == int(datetime.fromisoformat(row["collected_utc"]).timestamp())
    if rows:
        assert result.observed_at == min(q.observed_at for q in result.quotes)
    else:  # header only: empty, stamped with the file's day
        assert result.observed_at == int(
            datetime.fromisoformat(f"{path.stem}T00:00:00+00:00").timestamp())
    blob = canonical(result)
    assert blob == canonical(parse_csv(path))
    assert [Quote.model_validate(d) for d in json.loads(blob)] == result.quotes


# ------------------------------------------------------------ crafted snapshots

GOOD_OFFER: dict[str, Any] = {
    "id": 1001, "machine_id": 77, "host_id": 5, "gpu_name": "H100 SXM", "num_gpus": 2,
    "gpu_frac": 0.25, "dph_total": 3.124444444444444, "reliability": 0.9984959,
    "geolocation": "Texas, US", "rentable": True, "rented": False, "gpu_ram": 81559,
    "verification": "verified",
}


def snapshot(*offers: Any, model: str = "H100 SXM") -> bytes:
    return json.dumps({
        "collected_utc": "2026-03-01T15:46:00.137824+00:00",
        "collection_date": "2026-03-01",
        "offers_by_model": {model: list(offers)},
    }).encode()


def test_good_offer_quote():
    result = parse_snapshot(snapshot(GOOD_OFFER))
    assert result.rows_accepted == 1 and result.rows_rejected == 0
    assert result.quotes[0].canonical() == {
        "source": "vastai-offers", "provider": "vast.ai", "host": "5", "offerId": "1001",
        "machine": "77", "gpuName": "H100 SXM", "gpuRamGb": 80, "gpuCount": 2,
        "gpuFraction": "0.25", "pricePerGpuHour": "1.56222222", "region": "Texas",
        "country": "US", "reliability": "0.998496", "rented": False,
        "observedAt": 1772379960, "tier": "executable_offer",
    }


def with_(**changes: Any) -> dict[str, Any]:
    offer = copy.deepcopy(GOOD_OFFER)
    for key, value in changes.items():
        if value is ...:
            del offer[key]
        else:
            offer[key] = value
    return offer


BAD_ROWS: list[tuple[Any, str]] = [
    ("not an offer", "not_an_object"),
    (with_(id=...), "missing:id"),
    (with_(id=None), "missing:id"),
    (with_(id=1.5), "wrong_type:id"),
    (with_(host_id=...), "missing:host_id"),
    (with_(host_id=[5]), "wrong_type:host_id"),
    (with_(machine_id=...), "missing:machine_id"),
    (with_(gpu_name=""), "missing:gpu_name"),
    (with_(gpu_name=7), "wrong_type:gpu_name"),
    (with_(num_gpus=...), "missing:num_gpus"),
    (with_(num_gpus="2"), "wrong_type:num_gpus"),
    (with_(num_gpus=True), "wrong_type:num_gpus"),
    (with_(num_gpus=1.5), "wrong_type:num_gpus"),
    (with_(num_gpus=0), "non_positive_gpu_count"),
    (with_(num_gpus=-1), "non_positive_gpu_count"),
    (with_(dph_total=...), "missing:dph_total"),
    (with_(dph_total="3.12"), "wrong_type:dph_total"),
    (with_(dph_total=0), "non_positive_price"),
    (with_(dph_total=-1.0), "non_positive_price"),
    (with_(dph_total=1e-12), "non_positive_price"),  # rounds to 0 at 8 decimals
    (with_(dph_total=float("nan")), "non_finite:dph_total"),
    (with_(dph_total=float("inf")), "non_finite:dph_total"),
    (with_(dph_total=1e300), "out_of_range:dph_total"),
    (with_(gpu_ram=10**40), "out_of_range:gpu_ram"),
    (with_(geolocation=...), "missing:geolocation"),
    (with_(geolocation=None), "missing:geolocation"),
    (with_(geolocation=42), "wrong_type:geolocation"),
    (with_(geolocation="Texas"), "bad_geolocation"),
    (with_(geolocation="Texas, USA"), "bad_geolocation"),
    (with_(geolocation="Texas, "), "bad_geolocation"),
    (with_(geolocation="Texas, U1"), "bad_geolocation"),
    (with_(rentable=...), "missing:rentable"),
    (with_(rented="no"), "wrong_type:rented"),
    (with_(rentable=False, rented=False), "not_available"),
    (with_(gpu_frac=0), "bad_gpu_fraction"),
    (with_(gpu_frac=1.5), "bad_gpu_fraction"),
    (with_(gpu_frac="0.5"), "wrong_type:gpu_frac"),
    (with_(reliability=1.2), "bad_reliability"),
    (with_(reliability=-0.1), "bad_reliability"),
    (with_(gpu_ram=0), "bad_gpu_ram"),
    (with_(gpu_ram=100), "bad_gpu_ram"),  # rounds to 0 GiB
    (with_(gpu_name="x" * 300), "invalid:gpu_name"),
    (with_(num_gpus=5000), "invalid:gpu_count"),
]


@pytest.mark.parametrize(("offer", "reason"), BAD_ROWS, ids=[r for _, r in BAD_ROWS])
def test_bad_row_is_skipped_and_counted(offer: Any, reason: str):
    other = with_(id=2002)
    result = parse_snapshot(snapshot(other, offer))
    assert result.rows_seen == 2 and result.rows_rejected == 1
    assert result.rejected_reasons == {reason: 1}
    assert [q.offer_id for q in result.quotes] == ["2002"]


def test_duplicate_offer_id_across_models_keeps_the_first():
    data = json.dumps({
        "collected_utc": "2026-03-01T15:46:00Z",
        "offers_by_model": {"H100 SXM": [GOOD_OFFER], "H200": [with_(gpu_name="H200"),
                                                               with_(id=3)]},
    }).encode()
    result = parse_snapshot(data)
    assert result.rejected_reasons == {"duplicate_offer_id": 1}
    assert [(q.offer_id, q.gpu_name) for q in result.quotes] == [("1001", "H100 SXM"),
                                                                  ("3", "H100 SXM")]


def test_optional_fields_and_odd_but_valid_rows():
    result = parse_snapshot(snapshot(
        with_(id=1, gpu_frac=None, reliability=..., gpu_ram=...),
        with_(id=2, geolocation=", us", dph_total=4, num_gpus=2.0),
        with_(id=3, rentable=False, rented=True),
        with_(id="abc-4", host_id="host-x", dph_total=0.1 + 0.2),
    ))
    assert result.rows_rejected == 0
    q1, q2, q3, q4 = result.quotes
    assert (q1.gpu_fraction, q1.reliability, q1.gpu_ram_gb) == (None, None, None)
    assert (q2.region, q2.country, q2.price_per_gpu_hour, q2.gpu_count) == (None, "US", "2", 2)
    assert q3.rented is True
    # repr(0.1 + 0.2) == "0.30000000000000004": / 2, 8 places, half-even
    assert (q4.offer_id, q4.host, q4.price_per_gpu_hour) == ("abc-4", "host-x", "0.15")


def test_empty_model_lists_are_an_empty_result():
    data = json.dumps({"collected_utc": "2026-03-01T00:00:00+01:00",
                       "offers_by_model": {"A100 SXM": [], "H100 PCIE": []}}).encode()
    result = parse_snapshot(data)
    assert (result.rows_seen, result.quotes, result.observed_at) == (0, [], 1772319600)


@pytest.mark.parametrize(("data", "expect"), [
    (b"\x00\x01 not json", "not a JSON document"),
    (b"[1, 2]", "top level is a JSON list"),
    (b'{"offers_by_model": {}}', "missing key(s) collected_utc"),
    (b'{"collected_utc": "2026-03-01T00:00:00Z"}', "missing key(s) offers_by_model"),
    (b'{"collected_utc": 5, "offers_by_model": {}}', "collected_utc is 5"),
    (b'{"collected_utc": "yesterday", "offers_by_model": {}}', "not an ISO-8601 time"),
    (b'{"collected_utc": "2026-03-01T00:00:00", "offers_by_model": {}}', "no UTC offset"),
    (b'{"collected_utc": "2026-03-01T00:00:00Z", "offers_by_model": []}',
     "offers_by_model is a JSON list"),
    (b'{"collected_utc": "2026-03-01T00:00:00Z", "offers_by_model": {"H100": {}}}',
     "offers_by_model['H100'] is a JSON dict"),
    (gzip.compress(b'{"collected_utc": "x"}', mtime=0)[:15], "does not decompress"),
])
def test_bad_top_level_raises_a_helpful_error(data: bytes, expect: str):
    with pytest.raises(SourceError) as err:
        parse_snapshot(data, name="day.json.gz")
    message = str(err.value)
    assert message.startswith("day.json.gz: ") and expect in message
    assert "expected" in message or "download it again" in message


def test_unreadable_file_names_the_path(tmp_path: Path):
    missing = tmp_path / "nope.json.gz"
    with pytest.raises(SourceError, match=r"nope\.json\.gz: cannot read"):
        parse_snapshot(missing)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)
offer_like = st.fixed_dictionaries(
    {}, optional={k: json_values | st.just(v) for k, v in GOOD_OFFER.items()})


@given(st.lists(offer_like | json_values, max_size=6))
def test_parsing_never_raises_for_bad_rows(offers: list[Any]):
    data = json.dumps({"collected_utc": "2026-03-01T00:00:00Z",
                       "offers_by_model": {"m": offers}}).encode()
    result = parse_snapshot(data)
    assert result.rows_seen == len(offers) == result.rows_accepted + result.rows_rejected
    attest.canonical_json([q.canonical() for q in result.quotes])


# ------------------------------------------------------------ crafted listings

HEADER = ("listing_id,gpu_name,num_gpus,dph_total,dph_per_gpu,reliability,geolocation,"
          "datacenter,last_seen,gpu_ram_gb,collected_utc")
GOOD_ROW = ("31971208,H100 SXM,2,3.124444444444444,1.562222,0.99848,\"Iowa, US\",False,,"
            "81559,2026-02-26T15:57:50.357224+00:00")


def listing(tmp_path: Path, *lines: str, folder: str = "h100-sxm-us") -> Path:
    path = tmp_path / folder / "2026-02-26.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def row(**changes: str) -> str:
    cells = next(csv.DictReader([HEADER, GOOD_ROW]))
    cells.update(changes)
    out = []
    for value in cells.values():
        out.append(f'"{value}"' if "," in value else value)
    return ",".join(out)


@pytest.mark.parametrize(("line", "reason"), [
    (row(listing_id=""), "missing:listing_id"),
    (row(gpu_name=" "), "missing:gpu_name"),
    (row(num_gpus="two"), "not_a_number:num_gpus"),
    (row(num_gpus="1.5"), "wrong_type:num_gpus"),
    (row(num_gpus="0"), "non_positive_gpu_count"),
    (row(dph_per_gpu="-1.5"), "not_a_number:dph_per_gpu"),
    (row(dph_per_gpu="1.5e0"), "not_a_number:dph_per_gpu"),
    (row(dph_per_gpu="0"), "non_positive_price"),
    (row(dph_total="1e999"), "out_of_range:dph_total"),
    (row(dph_per_gpu="", dph_total=""), "missing:dph_per_gpu"),
    (row(dph_per_gpu="", dph_total="0"), "non_positive_price"),
    (row(dph_per_gpu="3.124444"), "price_mismatch"),  # the total, not per GPU
    (row(geolocation="Iowa"), "bad_geolocation"),
    (row(geolocation=""), "missing:geolocation"),
    (row(reliability="1.5"), "bad_reliability"),
    (row(gpu_ram_gb="80.5"), "wrong_type:gpu_ram_gb"),
    (row(gpu_ram_gb="80"), "bad_gpu_ram"),  # GB where MiB is expected: refused, not 0
    (row(collected_utc="2026-02-26"), "bad_observed_at"),
    (row(collected_utc=""), "missing:collected_utc"),
    (GOOD_ROW, "duplicate_listing_id"),
    ("1,H100 SXM,1", "short_row"),
])
def test_bad_listing_row_is_skipped_and_counted(tmp_path: Path, line: str, reason: str):
    result = parse_csv(listing(tmp_path, HEADER, GOOD_ROW, line))
    assert (result.rows_seen, result.rows_accepted) == (2, 1)
    assert result.rejected_reasons == {reason: 1}


def test_listing_price_from_total_when_per_gpu_is_absent(tmp_path: Path):
    result = parse_csv(listing(tmp_path, HEADER, row(dph_per_gpu=""), ""))
    assert result.rows_seen == 1  # a blank line is not a row
    assert result.quotes[0].price_per_gpu_hour == "1.56222222"
    # a file without the dph_per_gpu column at all
    rows = [[c for i, c in enumerate(r) if i != 4] for r in csv.reader([HEADER, GOOD_ROW])]
    path = tmp_path / "v100-us" / "2026-02-26.csv"
    path.parent.mkdir()
    with path.open("w", newline="") as out:
        csv.writer(out).writerows(rows)
    result = parse_csv(path)
    assert result.source == "listings:v100-us"
    assert result.quotes[0].price_per_gpu_hour == "1.56222222"


def test_listing_without_required_columns_names_them(tmp_path: Path):
    path = listing(tmp_path, "listing_id,gpu_name,dph_total", "1,H100,2.0")
    with pytest.raises(SourceError) as err:
        parse_csv(path)
    assert "missing column(s) num_gpus, geolocation, collected_utc" in str(err.value)
    assert str(path) in str(err.value)
    with pytest.raises(SourceError, match="dph_per_gpu or dph_total"):
        parse_csv(listing(tmp_path, "listing_id,gpu_name,num_gpus,geolocation,collected_utc"))
    with pytest.raises(SourceError, match="the file is empty"):
        parse_csv(listing(tmp_path, ""))


def test_header_only_listing_is_empty(tmp_path: Path):
    result = parse_csv(listing(tmp_path, HEADER))
    assert (result.rows_seen, result.quotes, result.rows_rejected) == (0, [], 0)
    assert result.observed_at == 1772064000  # 2026-02-26T00:00:00Z, from the file name


# ------------------------------------------------------------ HTTP JSON source

class Script:
    """Responses the test server gives, in order; the last one repeats."""

    def __init__(self) -> None:
        self.responses: dict[str, list[tuple[int, bytes, float, dict[str, str]]]] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    def set(self, path: str, *responses: tuple[int, Any] | tuple[int, Any, float]
            | tuple[int, Any, float, dict[str, str]]) -> str:
        out = []
        for r in responses:
            status, body = r[0], r[1]
            delay = r[2] if len(r) > 2 else 0.0
            headers = r[3] if len(r) > 3 else {}
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            out.append((status, raw, delay, headers))
        self.responses[path] = out
        self.hits[path] = 0
        return path

    def next(self, path: str) -> tuple[int, bytes, float, dict[str, str]]:
        with self.lock:
            if path not in self.responses:
                return 404, b"no such path", 0.0, {}
            hit = self.hits[path]
            self.hits[path] = hit + 1
            script = self.responses[path]
            return script[min(hit, len(script) - 1)]


class _Handler(BaseHTTPRequestHandler):
    script: Script

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        status, body, delay, headers = self.script.next(self.path.split("?")[0])
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (a timeout test)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    handler = type("Handler", (_Handler,), {"script": script})
    httpd = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)


FIELDS = FieldMap(rows="data.offers", offer_id="id", gpu_name="gpu.model",
                  price_per_gpu_hour="price", provider_value="acme", host="host",
                  country="cc", region="region", reliability="rel",
                  observed_at="seen", gpu_count="n")
ROWS = [
    {"id": 1, "gpu": {"model": "H100 SXM"}, "price": 2.15, "host": "h1", "cc": "us",
     "region": "Texas", "rel": 0.99, "seen": 1772379960, "n": 8},
    {"id": "b", "gpu": {"model": "H100 SXM"}, "price": "2.5", "host": 17, "cc": "DE",
     "seen": "2026-03-01T15:46:00Z", "n": 1},
]
BODY = {"data": {"offers": ROWS}}


def source(url: str, path: str, fields: FieldMap = FIELDS, **kw: Any) -> HttpJsonSource:
    kw = {"timeout": 2.0, "retries": 3, "backoff": 0.01, "clock": lambda: 1772380000,
          **kw}
    return HttpJsonSource("acme-feed", url + path, fields, **kw)


def test_http_success(server):
    url, script = server
    path = script.set("/ok", (200, BODY))
    result = source(url, path).fetch()
    assert (result.source, result.observed_at, result.rows_seen, result.rows_rejected) == (
        "acme-feed", 1772380000, 2, 0)
    assert [q.canonical() for q in result.quotes] == [
        {"source": "acme-feed", "provider": "acme", "host": "h1", "offerId": "1",
         "gpuName": "H100 SXM", "gpuCount": 8, "pricePerGpuHour": "2.15", "region": "Texas",
         "country": "US", "reliability": "0.99", "rented": False,
         "observedAt": 1772379960, "tier": "executable_offer"},
        {"source": "acme-feed", "provider": "acme", "host": "17", "offerId": "b",
         "gpuName": "H100 SXM", "gpuCount": 1, "pricePerGpuHour": "2.5", "country": "DE",
         "rented": False, "observedAt": 1772379960, "tier": "executable_offer"},
    ]
    assert script.hits[path] == 1


def test_http_retries_after_two_503s(server):
    url, script = server
    path = script.set("/flaky", (503, {"error": "busy"}), (503, b"busy"), (200, BODY))
    result = source(url, path).fetch()
    assert result.rows_accepted == 2 and script.hits[path] == 3


def test_http_429_is_retried(server):
    url, script = server
    path = script.set("/limited", (429, b"slow down", 0.0, {"Retry-After": "0"}),
                      (200, BODY))
    assert source(url, path).fetch().rows_accepted == 2
    assert script.hits[path] == 2


def test_http_404_fails_at_once(server):
    url, script = server
    path = script.set("/gone", (404, b"not here"))
    with pytest.raises(SourceError) as err:
        source(url, path).fetch()
    message = str(err.value)
    assert f"{url}/gone answered HTTP 404" in message and "not retried" in message
    assert "check the URL" in message
    assert script.hits[path] == 1


def test_http_timeout_is_retried_then_fails(server):
    url, script = server
    path = script.set("/slow", (200, BODY, 1.0))
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        source(url, path, timeout=0.2, retries=1).fetch()
    assert "failed 2 attempt(s)" in str(err.value) and "ReadTimeout" in str(err.value)
    assert script.hits[path] == 2
    assert time.monotonic() - started < 3


def test_http_gives_up_after_the_last_retry(server):
    url, script = server
    path = script.set("/down", (502, b"bad gateway"))
    with pytest.raises(SourceError, match=r"failed 3 attempt\(s\) \(HTTP 502; HTTP 502; "
                                          r"HTTP 502\)"):
        source(url, path, retries=2).fetch()
    assert script.hits[path] == 3


def test_http_connection_refused_is_retried():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError, match=r"failed 2 attempt\(s\) \(ConnectError"):
        source(f"http://127.0.0.1:{port}", "/", retries=1).fetch()


def test_http_body_that_is_not_json(server):
    url, script = server
    path = script.set("/html", (200, b"<html>hello</html>"))
    with pytest.raises(SourceError) as err:
        source(url, path).fetch()
    assert "answered HTTP 200 with a body that is not JSON" in str(err.value)
    assert url + path in str(err.value)


def test_http_body_without_rows(server):
    url, script = server
    path = script.set("/norows", (200, {"data": {"items": []}}))
    with pytest.raises(SourceError, match=r'holds nothing at "data.offers".*FieldMap.rows'):
        source(url, path).fetch()
    path = script.set("/notlist", (200, {"data": {"offers": {"a": 1}}}))
    with pytest.raises(SourceError, match=r'holds a JSON dict at "data.offers"'):
        source(url, path).fetch()


def test_http_bad_rows_are_counted(server):
    url, script = server
    bad = [
        "junk",
        {**ROWS[0], "id": 2, "price": 0},
        {**ROWS[0], "id": 3, "price": None},
        {**ROWS[0], "id": 4, "price": "cheap"},
        {**ROWS[0], "id": 5, "n": 0},
        {**ROWS[0], "id": 6, "cc": "USA"},
        {**ROWS[0], "id": 7, "seen": "last week"},
        {**ROWS[0], "id": 8, "rel": 2},
        {**ROWS[0], "id": 9, "gpu": {}},
        {**ROWS[0], "id": 10, "price": float("nan")},
        {**ROWS[0], "id": 1},  # duplicate of ROWS[0]
    ]
    path = script.set("/mixed", (200, json.dumps({"data": {"offers": ROWS + bad}})
                                 .encode()))
    result = source(url, path).fetch()
    assert (result.rows_seen, result.rows_accepted, result.rows_rejected) == (13, 2, 11)
    assert result.rejected_reasons == {
        "bad_country": 1, "bad_observed_at": 1, "bad_reliability": 1,
        "duplicate_offer_id": 1, "missing:gpu_name": 1, "missing:price_per_gpu_hour": 1,
        "non_finite:price_per_gpu_hour": 1, "non_positive_gpu_count": 1,
        "non_positive_price": 1, "not_a_number:price_per_gpu_hour": 1, "not_an_object": 1,
    }


def test_http_total_price_tier_and_top_level_list(server):
    url, script = server
    fields = FieldMap(offer_id="sku", gpu_name="gpu", price_total="hourly",
                      gpu_count="gpus", provider="vendor", geolocation="where", tier="kind",
                      rented="busy")
    rows = [{"sku": "a", "gpu": "H200", "hourly": 10, "gpus": 4, "vendor": "cloudy",
             "where": "Bavaria, DE", "kind": "rate_card", "busy": True},
            {"sku": "b", "gpu": "H200", "hourly": 10, "gpus": 4, "vendor": "cloudy",
             "where": "Bavaria, DE", "kind": "spot"}]
    path = script.set("/list", (200, rows))
    result = source(url, path, fields).fetch()
    assert result.rejected_reasons == {"bad_tier": 1}
    q = result.quotes[0]
    assert (q.provider, q.host, q.price_per_gpu_hour, q.region, q.country, q.tier,
            q.rented, q.observed_at) == ("cloudy", "cloudy", "2.5", "Bavaria", "DE",
                                         SourceTier.RATE_CARD, True, 1772380000)


def test_http_messages_hide_credentials_and_cap_the_body(server):
    url, script = server
    path = script.set("/secret", (403, b"forbidden"))
    with pytest.raises(SourceError) as err:
        HttpJsonSource("x", f"{url}{path}?api_key=hunter2&gpu=h100", FIELDS.model_dump(),
                       backoff=0).fetch()
    assert "hunter2" not in str(err.value)
    assert f"{url}/secret?api_key=***&gpu=h100 answered HTTP 403" in str(err.value)
    path = script.set("/huge", (200, BODY))
    with pytest.raises(SourceError, match="sent more than 50 bytes; raise max_bytes"):
        source(url, path, max_bytes=50).fetch()


def test_http_quotes_are_canonical(server):
    url, script = server
    path = script.set("/canon", (200, BODY))
    first, second = source(url, path).fetch(), source(url, path).fetch()
    assert canonical(first) == canonical(second)
    assert [Quote.model_validate(d) for d in json.loads(canonical(first))] == first.quotes


def test_http_injected_client_is_reused_not_closed(server):
    url, script = server
    path = script.set("/client", (200, BODY))
    with httpx.Client() as client:
        feed = source(url, path, client=client)
        assert feed.fetch().rows_accepted == 2
        assert feed.fetch().rows_accepted == 2
        assert not client.is_closed


def test_http_history_flags_a_thin_run(server, tmp_path: Path):
    url, script = server
    history = RowCountHistory(tmp_path / "rows.sqlite")
    for _ in range(3):
        history.check_and_record("acme-feed", 10)
    path = script.set("/thin", (200, BODY))
    result = source(url, path, history=history).fetch()
    assert result.low_row_count
    assert result.note == "returned 2 rows, usual is 10 (median of the last 3 runs)"


@pytest.mark.parametrize("bad_url", ["ftp://example.com/x", "file:///etc/passwd",
                                     "example.com/prices", "http://"])
def test_http_only_http_urls(bad_url: str):
    with pytest.raises(SourceError, match="only http:// and https://|not a valid URL"):
        HttpJsonSource("x", bad_url, FIELDS)


def test_field_map_validation():
    with pytest.raises(ValueError, match="exactly one of price_per_gpu_hour"):
        FieldMap(offer_id="id", gpu_name="g", provider_value="p")
    with pytest.raises(ValueError, match="exactly one of provider"):
        FieldMap(offer_id="id", gpu_name="g", price_total="t")
    with pytest.raises(ValueError):
        FieldMap(offer_id="a..b", gpu_name="g", price_total="t", provider_value="p")


# ------------------------------------------------------------ row-count history

def test_history_flags_a_sharp_drop(tmp_path: Path):
    history = RowCountHistory(tmp_path / "h.sqlite")
    for count in (48, 50, 46, 48):
        assert history.check_and_record("vastai-offers", count) == (False, None)
    assert history.check_and_record("vastai-offers", 30) == (False, None)  # not < half
    low, note = history.check_and_record("vastai-offers", 12)
    assert low and note == "returned 12 rows, usual is 48 (median of the last 5 runs)"
    assert history.recent("vastai-offers") == [48, 50, 46, 48, 30, 12]


def test_history_needs_three_runs(tmp_path: Path):
    history = RowCountHistory(tmp_path / "h.sqlite")
    assert history.check_and_record("s", 100) == (False, None)
    assert history.check_and_record("s", 100) == (False, None)
    assert history.check_and_record("s", 1) == (False, None)  # only 2 runs before it
    # now 3 runs (100, 100, 1), median 100: a run of 1 is flagged
    assert history.check_and_record("s", 1) == (
        True, "returned 1 rows, usual is 100 (median of the last 3 runs)")


def test_history_is_per_source_and_uses_the_last_seven(tmp_path: Path):
    history = RowCountHistory(tmp_path / "h.sqlite")
    for count in (1000, 1000, 1000, 10, 10, 10, 10, 10, 10, 10):
        history.check_and_record("a", count)
    for count in (4, 4, 4):
        history.check_and_record("b", count)
    # the last 7 runs of "a" are all 10: the old 1000s no longer count
    assert history.check_and_record("a", 6) == (False, None)
    low, note = history.check_and_record("b", 1)
    assert low and note == "returned 1 rows, usual is 4 (median of the last 3 runs)"


def test_history_persists_across_instances(tmp_path: Path):
    path = tmp_path / "deep" / "h.sqlite"
    first = RowCountHistory(path)
    for count in (20, 21, 19):
        first.check_and_record("listings:h100-sxm-us", count)
    second = RowCountHistory(path)
    assert second.recent("listings:h100-sxm-us") == [20, 21, 19]
    low, note = second.check_and_record("listings:h100-sxm-us", 5)
    assert low and "usual is 20" in note


def test_history_even_median_and_parsers(tmp_path: Path):
    history = RowCountHistory(tmp_path / "h.sqlite")
    for count in (300, 301, 250, 251):
        history.check_and_record("vastai-offers", count)
    result = parse_snapshot(snapshot(GOOD_OFFER), history=history)
    assert result.low_row_count
    assert result.note == "returned 1 rows, usual is 275.5 (median of the last 4 runs)"
    # the last 5 runs are 300, 301, 250, 251, 1: median 251, and 220 is not < 125.5
    result = parse_snapshot(SNAPSHOTS[-1], history=history)
    assert result.rows_accepted == 220 and not result.low_row_count
    listing_history = RowCountHistory(tmp_path / "l.sqlite")
    path = LISTINGS[-1]  # v100-us, 43 rows
    for _ in range(3):
        listing_history.check_and_record(f"listings:{path.parent.name}", 100)
    result = parse_csv(path, history=listing_history)
    assert result.low_row_count and "returned 43 rows, usual is 100" in result.note


def test_history_refuses_a_damaged_file(tmp_path: Path):
    path = tmp_path / "h.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SourceError, match="move a damaged file aside"):
        RowCountHistory(path)
