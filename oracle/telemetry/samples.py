"""One utilisation reading of one GPU, and what every capture parser has in common.

A `Sample` is what the NVIDIA tooling says about one GPU at one moment: its UUID (the
`GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` form `nvidia-smi -L` prints), its board serial
when the capture carries it, the unix time in whole seconds, the utilisation as a
percent 0..100 written as a canonical decimal string, and which metric it came from.

Canonical percent strings: at most 4 decimals (a DCGM ratio such as 0.987654 becomes
"98.7654", nothing is lost), no exponent, no trailing zeros, no leading "+" or zeros:
"87", "98.7654", "0", "100". `percent_str` produces that form from any number; a
`Sample` refuses any other spelling, so the JSON an agent signs and the JSON a node
re-serialises are the same bytes.

Parse policy, shared by `dcgm.parse_dcgm`, `nvsmi.parse_nvsmi` and `nvml.read_nvml`:

- A malformed series or row (unparsable line, missing or malformed UUID, value out of
  range or "[N/A]", unparsable timestamp, a second reading for the same GPU and second)
  is skipped and recorded in the result's `.skipped` (line number and reason), and the
  rest of the capture is used. With `strict=True` the first such line raises instead.
- A capture with no usable sample at all raises `TelemetryParseError`, naming the first
  skipped lines (an empty file, a file of another format, or a scrape without the
  utilisation series all end up here).
- Structural problems (an nvidia-smi header without a uuid, timestamp or
  utilization.gpu column) raise at once: nothing in such a file can be trusted.

Every error names the capture (`source`, a file name or a label such as "<dcgm
scrape>") and the 1-based line, so an operator can open the file at that line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from oracle import methodology

PERCENT_DECIMALS = 4
"""Decimals kept in a sample's percent (DCGM ratios have 6 decimals: 4 in percent)."""

MAX_TIME = 2**40
"""Sample and batch times are unix seconds below this (year 36812): refuses ms by mistake."""

Metric = Literal[
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_DEV_GPU_UTIL",
    "nvidia-smi:utilization.gpu",
    "nvml:utilization.gpu",
]
"""Where a sample's value came from (see `dcgm`, `nvsmi`, `nvml`)."""

_UUID = re.compile(r"GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_NOT_AVAILABLE = {"[n/a]", "n/a", "[not supported]", "[unknown error]", "[gpu is lost]",
                  "[insufficient permissions]", "[no permission]", ""}


class TelemetryError(Exception):
    """Base class of every error of `oracle.telemetry`."""


class TelemetryParseError(TelemetryError, ValueError):
    """A capture cannot be used; `source` and `line` say where (line is 1-based, or None
    when the problem is the capture as a whole)."""

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line
        self.reason = message


def gpu_uuid(value: str) -> str:
    """`value` as a canonical GPU UUID (lower-case hex); ValueError if it is not one."""
    if not isinstance(value, str):
        raise ValueError(f"a GPU UUID is a string like GPU-8f1c...; got {value!r}")
    text = value.strip()
    if text[:4].upper() == "GPU-":
        text = "GPU-" + text[4:].lower()
    if not _UUID.fullmatch(text):
        raise ValueError(
            f"not a GPU UUID like GPU-8f1c5abb-2af3-12d4-abb3-88d0a7846538: {value!r} "
            "(MIG instance UUIDs are not reported; report the whole GPU)"
        )
    return text


def gpu_serial(value: str | None) -> str | None:
    """A board serial as captured, or None for "[N/A]"-like placeholders."""
    if value is None:
        return None
    text = value.strip()
    if text.lower() in _NOT_AVAILABLE:
        return None
    if not _SERIAL.fullmatch(text):
        raise ValueError(f"not a GPU board serial (letters, digits, . _ -): {value!r}")
    return text


def percent_str(value: Decimal | int | str) -> str:
    """The canonical percent string of `value` (0..100, at most 4 decimals, rounded half
    to even). ValueError if it is not a finite number in 0..100."""
    with localcontext(methodology.CONTEXT):
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        except (InvalidOperation, ValueError) as exc:
            raise ValueError(f"not a number: {value!r}") from exc
        if not number.is_finite():
            raise ValueError(f"not a finite number: {value!r}")
        step = Decimal(1).scaleb(-PERCENT_DECIMALS)
        number = number.quantize(step, rounding=ROUND_HALF_EVEN)
        if not Decimal(0) <= number <= Decimal(100):
            raise ValueError(f"utilisation {value} is outside 0..100 percent")
        text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _canonical_percent(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError("a percent is a decimal string like \"87\" or \"98.7654\"")
    canonical = percent_str(methodology.decimal_str(value))
    if canonical != value:
        raise ValueError(f"percent {value!r} is not in canonical form: write {canonical!r}")
    return value


GpuUuid = Annotated[str, AfterValidator(gpu_uuid)]
PercentStr = Annotated[str, AfterValidator(_canonical_percent)]


def _strict_uuid(value: str) -> str:
    if gpu_uuid(value) != value:
        raise ValueError(f"write the GPU UUID in lower case: {gpu_uuid(value)!r}")
    return value


def _strict_serial(value: str | None) -> str | None:
    if value is not None and gpu_serial(value) != value:
        raise ValueError(f"not a GPU board serial (letters, digits, . _ -): {value!r}")
    return value


class Sample(BaseModel):
    """One utilisation reading of one GPU. JSON: `{"uuid", "serial" (or null), "time",
    "percent", "metric"}`; every field is always present (the batch signature covers
    the canonical JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    uuid: Annotated[str, AfterValidator(_strict_uuid)]
    serial: Annotated[str | None, AfterValidator(_strict_serial)]
    time: Annotated[int, Field(ge=0, lt=MAX_TIME)]
    percent: PercentStr
    metric: Metric

    def canonical(self) -> dict[str, object]:
        """The sample as signed and stored (plain JSON types)."""
        return {"uuid": self.uuid, "serial": self.serial, "time": self.time,
                "percent": self.percent, "metric": self.metric}


@dataclass(frozen=True)
class SkippedLine:
    """A series or row a parser skipped: 1-based line (for NVML: the device index) and why."""

    line: int
    reason: str


class ParsedSamples(list[Sample]):
    """A parser's result: the usable samples (a list), plus `skipped` lines and the
    `source` they came from. Compares equal to the plain list of its samples."""

    def __init__(self, samples: list[Sample], *, source: str,
                 skipped: list[SkippedLine] | None = None) -> None:
        super().__init__(samples)
        self.source = source
        self.skipped: list[SkippedLine] = list(skipped or [])

    def __repr__(self) -> str:
        return (f"ParsedSamples({len(self)} samples from {self.source}, "
                f"{len(self.skipped)} skipped)")


def read_capture(path: Path) -> str:
    """A capture file's text (UTF-8, a BOM tolerated); `TelemetryParseError` naming the
    file if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise TelemetryParseError(f"cannot read the capture: {exc.strerror}",
                                  source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise TelemetryParseError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                  "is this a capture file?", source=str(path)) from exc


class _Collector:
    """Shared bookkeeping: skip-or-raise per line, and the no-usable-sample error."""

    def __init__(self, source: str, strict: bool) -> None:
        self.source = source
        self.strict = strict
        self.skipped: list[SkippedLine] = []
        self.samples: list[Sample] = []
        self._seen: set[tuple[str, int]] = set()

    def skip(self, line: int, reason: str) -> None:
        if self.strict:
            raise TelemetryParseError(reason, source=self.source, line=line)
        self.skipped.append(SkippedLine(line, reason))

    def add(self, line: int, sample: Sample) -> None:
        key = (sample.uuid, sample.time)
        if key in self._seen:
            self.skip(line, f"a second reading for {sample.uuid} at unix time {sample.time}; "
                            "the first one is kept")
            return
        self._seen.add(key)
        self.samples.append(sample)

    def result(self, empty_hint: str) -> ParsedSamples:
        if not self.samples:
            detail = "; ".join(f"line {s.line}: {s.reason}" for s in self.skipped[:3])
            more = f" (and {len(self.skipped) - 3} more)" if len(self.skipped) > 3 else ""
            raise TelemetryParseError(
                f"no usable utilisation sample: {empty_hint}"
                + (f". Skipped {detail}{more}" if detail else ""),
                source=self.source,
            )
        ordered = sorted(self.samples, key=lambda s: (s.time, s.uuid))
        return ParsedSamples(ordered, source=self.source, skipped=self.skipped)
