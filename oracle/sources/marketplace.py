"""The GPU rental marketplace's daily offer snapshot (vast.ai search API, as archived by
the CCIR Compute Rental Index project; sample days ship in `oracle/data/offers/`).

A snapshot is a JSON object (optionally gzip-compressed)::

    {"collected_utc": "2026-02-27T15:22:46.407407+00:00",
     "offers_by_model": {"H100 SXM": [{offer}, ...], ...}, ...}

Every offer becomes one `Quote` (tier `executable_offer`): the offer's host is the
contributor, its price per GPU-hour is `dph_total / num_gpus` in 8 decimals. Slices of
one machine (the same 8-GPU box offered as 1, 2, 4 and 8 GPUs) all become quotes; they
share `machine`, and `gpuFraction` says which share each one is. Collapsing them is the
index methodology's job, not the parser's.

Rows that cannot be used are skipped and counted in `SourceResult.rejected_reasons`:

- `not_an_object`: the list item is not a JSON object
- `missing:<field>` / `wrong_type:<field>` / `non_finite:<field>` /
  `out_of_range:<field>` (magnitude >= 1e30): a required field
  (`id`, `host_id`, `machine_id`, `gpu_name`, `num_gpus`, `dph_total`, `geolocation`,
  `rentable`, `rented`) is absent or null, or an optional one (`gpu_frac`,
  `reliability`, `gpu_ram`) has the wrong type
- `non_positive_gpu_count`, `non_positive_price`, `bad_gpu_fraction` (not in (0, 1]),
  `bad_reliability` (not in [0, 1]), `bad_gpu_ram`, `bad_geolocation` (no
  "Region, CC" with a two-letter country after the last comma)
- `not_available`: neither rentable nor rented
- `duplicate_offer_id`: an offer id already seen (in this or another model's list);
  the first occurrence is kept
- `invalid:<field>`: anything else the `Quote` model refuses (e.g. a 300-character name)
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Any

from oracle.sources import _common as c
from oracle.sources.errors import SourceError
from oracle.sources.history import RowCountHistory
from oracle.sources.quote import Quote, SourceResult, SourceTier

SOURCE = "vastai-offers"
PROVIDER = "vast.ai"
GZIP_MAGIC = b"\x1f\x8b"
# A snapshot is a few MB; refuse to inflate anything absurdly larger (a gzip bomb).
MAX_JSON_BYTES = 512 * 1024 * 1024


def parse_snapshot(data: bytes | Path, *, history: RowCountHistory | None = None,
                   name: str | None = None) -> SourceResult:
    """Parse one marketplace snapshot into quotes.

    `data` is the file's bytes or its path; gzip is detected by its magic bytes, not by
    the file name. `name` labels the input in error messages (default: the path, or
    "snapshot bytes"). With `history`, the accepted-row count is compared with the
    source's recent runs (`low_row_count`/`note`) and recorded.

    Raises `SourceError` when the input as a whole is not a snapshot; bad rows are
    skipped and counted, never raised.
    """
    raw, label = _read(data, name)
    snapshot = _decode(raw, label)
    observed_at, models = _top_level(snapshot, label)

    tally = c.Tally()
    for offers in models.values():
        for offer in offers:
            tally.row(lambda offer=offer: _quote(offer, observed_at))
    return tally.result(SOURCE, observed_at, history)


def _read(data: bytes | bytearray | Path | str, name: str | None) -> tuple[bytes, str]:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), name or "snapshot bytes"
    path = Path(data)
    label = name or str(path)
    try:
        return path.read_bytes(), label
    except OSError as exc:
        raise SourceError(f"{label}: cannot read the snapshot file ({exc.strerror or exc}); "
                          "check the path and its permissions") from exc


def _decode(raw: bytes, label: str) -> Any:
    if raw[:2] == GZIP_MAGIC:
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
                raw = stream.read(MAX_JSON_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{label}: starts like gzip but does not decompress ({exc}); "
                              "the file is probably truncated, download it again") from exc
        if len(raw) > MAX_JSON_BYTES:
            raise SourceError(f"{label}: decompresses to more than {MAX_JSON_BYTES} bytes; "
                              "this is not a marketplace snapshot")
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{label}: not a JSON document ({exc}); expected a marketplace "
                          "snapshot (JSON, optionally gzip-compressed)") from exc


def _top_level(snapshot: Any, label: str) -> tuple[int, dict[str, list[Any]]]:
    expected = ('expected an object with "collected_utc" (ISO-8601 time with offset) and '
                '"offers_by_model" (model name -> list of offers)')
    if not isinstance(snapshot, dict):
        raise SourceError(f"{label}: the top level is a JSON {type(snapshot).__name__}, "
                          f"not an object; {expected}")
    missing = [k for k in ("collected_utc", "offers_by_model") if k not in snapshot]
    if missing:
        raise SourceError(f"{label}: missing key(s) {', '.join(missing)}; {expected}")
    collected = snapshot["collected_utc"]
    if not isinstance(collected, str):
        raise SourceError(f"{label}: collected_utc is {collected!r}; {expected}")
    try:
        observed_at = c.iso_to_unix(collected)
    except ValueError as exc:
        raise SourceError(f"{label}: collected_utc {collected!r} is not an ISO-8601 time "
                          f"with a UTC offset ({exc}); {expected}") from exc
    models = snapshot["offers_by_model"]
    if not isinstance(models, dict):
        raise SourceError(f"{label}: offers_by_model is a JSON {type(models).__name__}; "
                          f"{expected}")
    for model, offers in models.items():
        if not isinstance(offers, list):
            raise SourceError(f"{label}: offers_by_model[{model!r}] is a JSON "
                              f"{type(offers).__name__}, not a list of offers; {expected}")
    return observed_at, models


def _flag(offer: dict[str, Any], field: str) -> bool:
    value = offer.get(field)
    if value is None:
        raise c.RowRejected(f"missing:{field}")
    if not isinstance(value, bool):
        raise c.RowRejected(f"wrong_type:{field}")
    return value


def _quote(offer: Any, observed_at: int) -> Quote:
    if not isinstance(offer, dict):
        raise c.RowRejected("not_an_object")
    offer_id = c.identifier(offer.get("id"), "id")
    host = c.identifier(offer.get("host_id"), "host_id")
    machine = c.identifier(offer.get("machine_id"), "machine_id")
    gpu_name = c.nonempty_text(offer.get("gpu_name"), "gpu_name")
    gpu_count = c.json_int(offer.get("num_gpus"), "num_gpus")
    if gpu_count <= 0:
        raise c.RowRejected("non_positive_gpu_count")
    price = c.per_gpu_price(c.json_number(offer.get("dph_total"), "dph_total"), gpu_count)
    region, country = c.geolocation(offer.get("geolocation"))
    rentable = _flag(offer, "rentable")
    rented = _flag(offer, "rented")
    if not rentable and not rented:
        raise c.RowRejected("not_available")
    fraction = None
    if offer.get("gpu_frac") is not None:
        fraction = c.fraction(c.json_number(offer["gpu_frac"], "gpu_frac"))
    reliability = None
    if offer.get("reliability") is not None:
        reliability = c.reliability(c.json_number(offer["reliability"], "reliability"))
    ram = None
    if offer.get("gpu_ram") is not None:
        ram = c.gpu_ram_gb_from_mib(c.json_int(offer["gpu_ram"], "gpu_ram"))
    return c.build_quote({
        "source": SOURCE,
        "provider": PROVIDER,
        "host": host,
        "offer_id": offer_id,
        "machine": machine,
        "gpu_name": gpu_name,
        "gpu_ram_gb": ram,
        "gpu_count": gpu_count,
        "gpu_fraction": fraction,
        "price_per_gpu_hour": price,
        "region": region,
        "country": country,
        "reliability": reliability,
        "rented": rented,
        "observed_at": observed_at,
        "tier": SourceTier.EXECUTABLE_OFFER,
    })
