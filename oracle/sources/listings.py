"""The marketplace's per-model US listings CSVs (`oracle/data/listings/MODEL-us/DAY.csv`).

Columns: `listing_id,gpu_name,num_gpus,dph_total,dph_per_gpu,reliability,geolocation,
datacenter,last_seen,gpu_ram_gb,collected_utc`. Quirks of the format:

- There is no host or machine id, so both are reconstructed:
  - **machine**: the marketplace computes its reliability score per machine, so listings
    with the same location, GPU name, memory and reliability are slices of one machine
    (in the marketplace snapshots, which do carry machine ids, that key and the machine
    id match one to one on every shipped day): `machine` is `"rel:<12 hex digits>"`, a
    hash of that key. A listing without a reliability score cannot be matched and is its
    own machine (`"listing:<listing_id>"`).
  - **host** (the contributor): the location, `"location:<geolocation>"`. A host's
    many machines in one place count once, so the index's per-contributor cap binds
    (with one contributor per listing, a single cheap fleet was most of the
    contributors: V100 on 2026-03-03 read 0.0216 against 0.1656 globally); the price
    is that distinct hosts in one region are one contributor, so the contributor count
    from this source is a lower bound and thin models are withheld.
- `gpu_ram_gb` holds MiB despite its name (81559 for an 80 GB H100); it is converted
  like the snapshot's `gpu_ram` (MiB / 1024, rounded).
- `dph_per_gpu` is already rounded to 6 decimals; it is used as written (a plain
  positive decimal). When the cell is empty or the column absent, the price is
  `dph_total / num_gpus`. A row whose two prices disagree by more than 1% is rejected.
- `collected_utc` is per row (a few microseconds apart); each quote takes its own.
- A header-only file is an empty result, not an error.

Rejection reasons (counted in `SourceResult.rejected_reasons`): `missing:<column>`,
`not_a_number:<column>`, `wrong_type:<column>`, `out_of_range:<column>`, `non_positive_gpu_count`,
`non_positive_price`, `price_mismatch`, `bad_reliability`, `bad_gpu_ram`,
`bad_geolocation`, `bad_observed_at`, `duplicate_listing_id`, `short_row` (fewer cells
than the header), `invalid:<field>`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Sequence
from decimal import Decimal, localcontext
from pathlib import Path

from oracle.methodology import CONTEXT
from oracle.sources import _common as c
from oracle.sources.errors import SourceError
from oracle.sources.history import RowCountHistory
from oracle.sources.quote import Quote, SourceResult, SourceTier

PROVIDER = "vast.ai"
REQUIRED_COLUMNS = ("listing_id", "gpu_name", "num_gpus", "geolocation", "collected_utc")
PRICE_COLUMNS = ("dph_per_gpu", "dph_total")  # at least one of them
PRICE_TOLERANCE = Decimal("0.01")  # dph_per_gpu vs dph_total / num_gpus, relative
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def source_name(path: Path) -> str:
    """The source name of a listings file: `listings:<folder name>`."""
    return f"listings:{Path(path).parent.name}"


def parse_csv(path: Path, *, history: RowCountHistory | None = None) -> SourceResult:
    """Parse one listings CSV into quotes (tier `executable_offer`, provider vast.ai).

    The result's `observed_at` is the earliest row's `collected_utc`; a file without
    valid rows takes midnight UTC of the day in its name (`2026-02-27.csv`), or 0.
    With `history`, the accepted-row count is checked against the source's recent
    runs and recorded.

    Raises `SourceError` if the file cannot be read or lacks required columns; bad rows
    are skipped and counted.
    """
    path = Path(path)
    source = source_name(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the listings file ({exc.strerror or exc}); "
                          "check the path and its permissions") from exc
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text ({exc}); expected a listings CSV") from exc

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise SourceError(f"{path}: not a readable CSV ({exc})") from exc
    if header is None or not any(cell.strip() for cell in header):
        raise SourceError(f"{path}: the file is empty; a listings CSV starts with the header "
                          f"line {','.join(REQUIRED_COLUMNS + PRICE_COLUMNS)},...")
    columns = [h.strip() for h in header]
    missing = [col for col in REQUIRED_COLUMNS if col not in columns]
    if not any(col in columns for col in PRICE_COLUMNS):
        missing.append(" or ".join(PRICE_COLUMNS))
    if missing:
        raise SourceError(f"{path}: missing column(s) {', '.join(missing)} (header is "
                          f"{','.join(columns)!r}); is this a listings CSV?")
    if len(set(columns)) != len(columns):
        raise SourceError(f"{path}: the header names a column twice ({','.join(columns)!r})")

    tally = c.Tally()
    times: list[int] = []
    line = 1
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            raise SourceError(f"{path}: line {line + 1} breaks the CSV syntax ({exc}); "
                              "the file is damaged, fetch it again") from exc
        if cells is None:
            break
        line += 1
        if not any(cell.strip() for cell in cells):
            continue  # a blank line is not a row
        quote = tally.row(lambda cells=cells: _quote(_cells(cells, columns), source),
                          duplicate="duplicate_listing_id")
        if quote is not None:
            times.append(quote.observed_at)
    return tally.result(source, min(times) if times else _day_of(path), history)


def _day_of(path: Path) -> int:
    if _DAY.fullmatch(path.stem):
        try:
            return c.iso_to_unix(f"{path.stem}T00:00:00+00:00")
        except ValueError:
            return 0
    return 0


def _cell(row: dict[str, str], column: str) -> str | None:
    value = row.get(column)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _cells(cells: list[str], columns: Sequence[str]) -> dict[str, str]:
    if len(cells) < len(columns):
        raise c.RowRejected("short_row")
    return dict(zip(columns, cells, strict=False))


def _quote(row: dict[str, str], source: str) -> Quote:
    listing_id = c.nonempty_text(_cell(row, "listing_id"), "listing_id")
    gpu_name = c.nonempty_text(_cell(row, "gpu_name"), "gpu_name")
    count = c.text_number(_cell(row, "num_gpus"), "num_gpus", plain_only=True)
    if count != count.to_integral_value():
        raise c.RowRejected("wrong_type:num_gpus")
    gpu_count = int(count)
    if gpu_count <= 0:
        raise c.RowRejected("non_positive_gpu_count")

    total = None
    if _cell(row, "dph_total") is not None:
        total = c.text_number(_cell(row, "dph_total"), "dph_total")
    per_gpu_text = _cell(row, "dph_per_gpu")
    if per_gpu_text is not None:
        per_gpu = c.text_number(per_gpu_text, "dph_per_gpu", plain_only=True)
        if per_gpu <= 0:
            raise c.RowRejected("non_positive_price")
        if total is not None:
            with localcontext(CONTEXT):
                derived = total / gpu_count
                if abs(derived - per_gpu) > PRICE_TOLERANCE * per_gpu:
                    raise c.RowRejected("price_mismatch")
        price = c.plain(per_gpu, c.PRICE_PLACES)  # as written (files use 6 decimals)
        if Decimal(price) <= 0:
            raise c.RowRejected("non_positive_price")
    elif total is not None:
        price = c.per_gpu_price(total, gpu_count)
    else:
        raise c.RowRejected("missing:dph_per_gpu")

    region, country = c.geolocation(_cell(row, "geolocation"))
    reliability = None
    if _cell(row, "reliability") is not None:
        reliability = c.reliability(c.text_number(_cell(row, "reliability"), "reliability"))
    ram = None
    if _cell(row, "gpu_ram_gb") is not None:
        mib = c.text_number(_cell(row, "gpu_ram_gb"), "gpu_ram_gb", plain_only=True)
        if mib != mib.to_integral_value():
            raise c.RowRejected("wrong_type:gpu_ram_gb")
        ram = c.gpu_ram_gb_from_mib(int(mib))
    collected = _cell(row, "collected_utc")
    if collected is None:
        raise c.RowRejected("missing:collected_utc")
    try:
        observed_at = c.iso_to_unix(collected)
    except ValueError:
        raise c.RowRejected("bad_observed_at") from None
    machine = (f"listing:{listing_id}" if reliability is None else "rel:" + hashlib.sha256(
        "\n".join([_cell(row, "geolocation") or "", reliability, gpu_name,
                   str(ram)]).encode()).hexdigest()[:12])
    return c.build_quote({
        "source": source,
        "provider": PROVIDER,
        "host": f"location:{_cell(row, 'geolocation')}",
        "offer_id": listing_id,
        "machine": machine,
        "gpu_name": gpu_name,
        "gpu_ram_gb": ram,
        "gpu_count": gpu_count,
        "price_per_gpu_hour": price,
        "region": region,
        "country": country,
        "reliability": reliability,
        "observed_at": observed_at,
        "tier": SourceTier.EXECUTABLE_OFFER,
    })
