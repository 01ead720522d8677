"""Samples from an `nvidia-smi` CSV capture.

Capture with (one row per GPU per loop, `-l 60`: every minute):

    nvidia-smi --query-gpu=timestamp,index,uuid,serial,name,utilization.gpu \\
               --format=csv -l 60 >> capture.csv

which prints

    timestamp, index, uuid, serial, name, utilization.gpu [%]
    2026/11/21 10:00:00.104, 0, GPU-8f1c5abb-..., 1654923041107, NVIDIA H100 80GB HBM3, 100 %

Accepted variants: `--format=csv,nounits` (header `utilization.gpu`, values `87`),
`--format=csv,noheader` / `csv,noheader,nounits` (no header: the columns are taken to
be `DEFAULT_COLUMNS`, or pass `columns=`), the columns in any order and extra columns
(read from the header), and repeated captures appended to one file (a header line may
reappear anywhere; it resets the column order). `utilization.gpu` is the driver's
"a kernel was running" percent over the last sample period (DCGM_FI_DEV_GPU_UTIL).

**Time zone:** nvidia-smi prints the host's *local* time without a zone
(`2026/11/21 10:00:00.104`). `tz` says which zone that is; the default is UTC, which is
right only on hosts set to UTC (the usual server setting). Pass e.g.
`tz="Europe/Berlin"` for a host in local time. Times are truncated to whole seconds.

Rows with "[N/A]" / "[Not Supported]" utilisation, a malformed UUID or time, or the
wrong number of fields are skipped (see `oracle.telemetry.samples` for the policy);
an "[N/A]" serial (consumer boards) becomes `serial=None`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from oracle.telemetry.samples import (
    ParsedSamples,
    Sample,
    TelemetryParseError,
    _Collector,
    gpu_serial,
    gpu_uuid,
    percent_str,
    read_capture,
)

QUERY = "timestamp,index,uuid,serial,name,utilization.gpu"
COMMAND = f"nvidia-smi --query-gpu={QUERY} --format=csv -l 60"
"""The capture command the agent's documentation recommends."""
DEFAULT_COLUMNS: tuple[str, ...] = tuple(QUERY.split(","))
"""Column order assumed for a capture without a header (`--format=csv,noheader`)."""
REQUIRED = ("timestamp", "uuid", "utilization.gpu")
METRIC = "nvidia-smi:utilization.gpu"
_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S")


def parse_nvsmi(text: str, *, tz: tzinfo | str = UTC, columns: Sequence[str] | None = None,
                source: str = "<nvidia-smi csv>", strict: bool = False) -> ParsedSamples:
    """The samples of an nvidia-smi `--query-gpu` CSV capture (see the module docstring).

    `tz`: the zone of the host's clock (a tzinfo or an IANA name; default UTC).
    `columns`: the column order of a capture without a header (default `DEFAULT_COLUMNS`).
    Raises `TelemetryParseError` for a header lacking a required column or a capture
    with no usable row."""
    zone = _zone(tz, source)
    current = _columns(columns if columns is not None else DEFAULT_COLUMNS, source, None)
    collector = _Collector(source, strict)
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        fields = next(csv.reader([raw], skipinitialspace=True), [])
        fields = [f.strip() for f in fields]
        if _is_header(fields):
            current = _columns(fields, source, number)
            continue
        if len(fields) != len(current):
            collector.skip(number, f"{len(fields)} fields, the header has {len(current)} "
                                   f"({', '.join(current)})")
            continue
        row = dict(zip(current, fields, strict=True))
        sample = _sample(row, number, zone, collector)
        if sample is not None:
            collector.add(number, sample)
    return collector.result(
        "expected rows of `" + COMMAND + "` (timestamp, uuid and utilization.gpu columns)"
    )


def load_nvsmi(path: Path, *, tz: tzinfo | str = UTC, columns: Sequence[str] | None = None,
               strict: bool = False) -> ParsedSamples:
    """`parse_nvsmi` of a capture file (errors name the file and line)."""
    return parse_nvsmi(read_capture(path), tz=tz, columns=columns, source=str(path), strict=strict)


def _zone(tz: tzinfo | str, source: str) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TelemetryParseError(
            f"unknown time zone {tz!r}: pass an IANA name like 'UTC' or 'Europe/Berlin'",
            source=source) from exc


def _name(field: str) -> str:
    """`utilization.gpu [%]` -> `utilization.gpu`."""
    return field.split("[", 1)[0].strip().lower()


def _is_header(fields: list[str]) -> bool:
    names = {_name(f) for f in fields}
    return "uuid" in names or "timestamp" in names


def _columns(fields: Sequence[str], source: str, line: int | None) -> tuple[str, ...]:
    names = tuple(_name(f) for f in fields)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise TelemetryParseError(
            f"the columns {', '.join(names)} lack {', '.join(missing)}: capture with "
            f"`{COMMAND}`", source=source, line=line)
    if len(set(names)) != len(names):
        raise TelemetryParseError(f"a column appears twice in {', '.join(names)}",
                                  source=source, line=line)
    return names


def _sample(row: dict[str, str], number: int, zone: tzinfo,
            collector: _Collector) -> Sample | None:
    try:
        uuid = gpu_uuid(row["uuid"])
    except ValueError as exc:
        collector.skip(number, str(exc))
        return None
    value = row["utilization.gpu"].removesuffix("%").strip()
    if value.lower() in ("[n/a]", "n/a", "[not supported]", "[unknown error]"):
        collector.skip(number, f"utilization.gpu of {uuid} is {row['utilization.gpu']!r} "
                               "(MIG mode or an unsupported board?)")
        return None
    try:
        percent = percent_str(value)
    except ValueError as exc:
        collector.skip(number, f"utilization.gpu of {uuid}: {exc}")
        return None
    try:
        serial = gpu_serial(row.get("serial"))
    except ValueError as exc:
        collector.skip(number, f"serial of {uuid}: {exc}")
        return None
    when = _time(row["timestamp"], zone)
    if when is None:
        collector.skip(number, f"timestamp {row['timestamp']!r} is not like "
                               "2026/11/21 10:00:00.123")
        return None
    try:
        return Sample(uuid=uuid, serial=serial, time=when, percent=percent, metric=METRIC)
    except ValidationError as exc:
        collector.skip(number, f"{uuid}: {exc.errors()[0]['msg']}")
        return None


def _time(text: str, zone: tzinfo) -> int | None:
    for fmt in _TIME_FORMATS:
        try:
            naive = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        return int(naive.replace(microsecond=0, tzinfo=zone).timestamp())
    return None
