"""Samples from a scrape of NVIDIA's DCGM exporter (`curl http://HOST:9400/metrics`).

dcgm-exporter 3.x serves Prometheus text: one series per GPU and field, labelled
`gpu` (index), `UUID`, `pci_bus_id`, `device`, `modelName`, `Hostname` and, with the
default counters, `DCGM_FI_DRIVER_VERSION`; Kubernetes pod labels may follow. Two
series carry utilisation:

- `DCGM_FI_PROF_GR_ENGINE_ACTIVE` (a ratio 0..1): the fraction of time the graphics /
  compute engine was busy, from DCGM's profiling module (data-center GPUs, Volta and
  later). **It wins when both are present**: it is averaged over the whole sampling
  interval at fine granularity and is DCGM's recommended busy measure.
- `DCGM_FI_DEV_GPU_UTIL` (percent 0..100): the driver's coarse "a kernel was running"
  counter (the `nvidia-smi` figure). Used as the fallback for a GPU whose
  GR_ENGINE_ACTIVE series is missing or malformed (profiling metrics disabled,
  unsupported, or in use by another profiler).

Every other series (clocks, memory, power, temperatures, ...) is ignored, as are MIG
instance series (labelled `GPU_I_ID`; report whole GPUs). Each relevant line is parsed
on its own with `prometheus_client`'s text parser, so a malformed series is skipped
(see `oracle.telemetry.samples` for the policy) without losing the rest.

Time: dcgm-exporter does not stamp its samples, so the caller passes `scraped_at` (unix
seconds of the scrape). A series that does carry a timestamp (milliseconds, e.g. from a
federating Prometheus) uses its own, truncated to whole seconds.

The board serial is not among the default labels; if the exporter is configured to add
it (a `serial` label, or `DCGM_FI_DEV_SERIAL` as a label field) it is kept.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from oracle.telemetry.samples import (
    Metric,
    ParsedSamples,
    Sample,
    _Collector,
    gpu_serial,
    gpu_uuid,
    percent_str,
    read_capture,
)

GR_ENGINE_ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
METRIC_PREFERENCE: tuple[Metric, ...] = (GR_ENGINE_ACTIVE, GPU_UTIL)
"""Per GPU, the first of these with a usable series is reported."""

_SCALE = {GR_ENGINE_ACTIVE: Decimal(100), GPU_UTIL: Decimal(1)}
_LIMIT = {GR_ENGINE_ACTIVE: "0..1", GPU_UTIL: "0..100"}
_RELEVANT = re.compile(rf"({GR_ENGINE_ACTIVE}|{GPU_UTIL})(?=[\s{{])")
_SERIAL_LABELS = ("serial", "DCGM_FI_DEV_SERIAL")


def parse_dcgm(text: str, *, scraped_at: int | None = None, source: str = "<dcgm scrape>",
               strict: bool = False) -> ParsedSamples:
    """The utilisation samples of a DCGM exporter scrape, one per GPU (see the module
    docstring for the metric preference). `scraped_at`: unix seconds of the scrape,
    needed unless every series carries its own timestamp. Raises `TelemetryParseError`
    if no GPU has a usable utilisation series."""
    if scraped_at is not None and (isinstance(scraped_at, bool) or scraped_at < 0):
        raise ValueError(f"scraped_at must be unix seconds, got {scraped_at!r}")
    collector = _Collector(source, strict)
    # (uuid, metric) -> (line, sample); None marks a GPU/metric with conflicting series
    found: dict[tuple[str, str], tuple[int, Sample] | None] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        match = _RELEVANT.match(line)
        if not match:
            continue
        parsed = _parse_line(line, match.group(1), number, scraped_at, collector)
        if parsed is None:
            continue
        key = (parsed.uuid, parsed.metric)
        if key in found:
            previous = found[key]
            if previous is not None and previous[1] == parsed:
                continue  # the same series twice (e.g. pod labels): harmless
            collector.skip(number, f"{parsed.metric} appears twice for {parsed.uuid} with "
                                   "different values; neither is used")
            found[key] = None
            continue
        found[key] = (number, parsed)
    for uuid in sorted({u for u, _ in found}):
        for metric in METRIC_PREFERENCE:
            chosen = found.get((uuid, metric))
            if chosen is not None:
                collector.add(chosen[0], chosen[1])
                break
    return collector.result(
        f"the scrape has no {GR_ENGINE_ACTIVE} or {GPU_UTIL} series "
        "(is this a dcgm-exporter /metrics page, with those fields in its counters CSV?)"
    )


def load_dcgm(path: Path, *, scraped_at: int | None = None, strict: bool = False
              ) -> ParsedSamples:
    """`parse_dcgm` of a saved scrape (errors name the file and line)."""
    return parse_dcgm(read_capture(path), scraped_at=scraped_at, source=str(path), strict=strict)


def _parse_line(line: str, metric: str, number: int, scraped_at: int | None,
                collector: _Collector) -> Sample | None:
    try:
        families = list(text_string_to_metric_families(line + "\n"))
        series = [s for fam in families for s in fam.samples]
    except Exception as exc:  # the parser raises ValueError, KeyError, IndexError...
        collector.skip(number, f"not a Prometheus sample line ({type(exc).__name__}: {exc})")
        return None
    if len(series) != 1:
        collector.skip(number, "not a single Prometheus sample")
        return None
    labels, value, stamp = series[0].labels, series[0].value, series[0].timestamp
    if "GPU_I_ID" in labels:
        collector.skip(number, f"{metric} of MIG instance {labels['GPU_I_ID']} on "
                               f"{labels.get('UUID', '?')}: MIG instances are not reported")
        return None
    try:
        uuid = gpu_uuid(labels.get("UUID", ""))
    except ValueError as exc:
        collector.skip(number, f"{metric}: bad or missing UUID label: {exc}")
        return None
    serial = None
    for name in _SERIAL_LABELS:
        if labels.get(name):
            try:
                serial = gpu_serial(labels[name])
            except ValueError as exc:
                collector.skip(number, f"{metric} for {uuid}: {exc}")
                return None
            break
    if not isinstance(value, int | float) or not math.isfinite(value):
        collector.skip(number, f"{metric} for {uuid} is {value!r}, not a finite number")
        return None
    try:
        percent = percent_str(Decimal(repr(float(value))) * _SCALE[metric])
    except ValueError:
        collector.skip(number, f"{metric} for {uuid} is {value}, outside {_LIMIT[metric]}")
        return None
    if stamp is not None:
        time = math.floor(Decimal(repr(float(stamp))))
    elif scraped_at is not None:
        time = scraped_at
    else:
        collector.skip(number, f"{metric} for {uuid} has no timestamp: pass scraped_at "
                               "(the unix time of the scrape)")
        return None
    try:
        return Sample(uuid=uuid, serial=serial, time=time, percent=percent,
                      metric=metric)  # type: ignore[arg-type]
    except ValidationError as exc:
        collector.skip(number, f"{metric} for {uuid}: {exc.errors()[0]['msg']}")
        return None
