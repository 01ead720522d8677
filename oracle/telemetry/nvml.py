"""Samples read directly from the NVIDIA driver through NVML (`pynvml`, nvidia-ml-py).

For an agent running on the GPU host itself, without a DCGM exporter. Each call reads
every GPU once: `nvmlDeviceGetUtilizationRates(handle).gpu` is the percent of the last
sample period (1/6 s to 1 s, by board) during which a kernel was running, the same
figure as nvidia-smi's `utilization.gpu`. It is a short window, so an agent using NVML
should read often (every 10 to 15 s) and send the readings in batches.

On a machine without an NVIDIA driver or GPU, `read_nvml` raises `TelemetryUnavailable`
with a message that says what to use instead. `nvmlShutdown` is always called after a
successful `nvmlInit`.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from oracle.telemetry.samples import (
    ParsedSamples,
    Sample,
    TelemetryError,
    _Collector,
    gpu_serial,
    gpu_uuid,
    percent_str,
)

METRIC = "nvml:utilization.gpu"
UNAVAILABLE_HINT = ("no NVIDIA driver/GPU on this machine: use the DCGM exporter or "
                    "nvidia-smi capture instead")


class TelemetryUnavailable(TelemetryError):
    """NVML cannot be used here (no driver, no GPU, or the bindings are missing)."""


def read_nvml(*, now: int | None = None, nvml: ModuleType | Any | None = None,
              source: str = "<nvml>") -> ParsedSamples:
    """One utilisation sample per GPU of this machine, stamped `now` (default: the current
    unix second). `nvml`: the `pynvml` module (tests pass a stand-in). A device that
    fails to answer is skipped (`.skipped` holds its index and the NVML error). Raises
    `TelemetryUnavailable` if NVML cannot start or sees no GPU."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
            raise TelemetryUnavailable(
                f"{UNAVAILABLE_HINT} (the nvidia-ml-py package is not installed)") from exc
    error: type[BaseException] = getattr(nvml, "NVMLError", Exception)
    try:
        nvml.nvmlInit()
    except error as exc:
        raise TelemetryUnavailable(f"{UNAVAILABLE_HINT} (NVML: {exc})") from exc
    stamp = int(time.time()) if now is None else now
    collector = _Collector(source, strict=False)
    try:
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except error as exc:
            raise TelemetryUnavailable(f"{UNAVAILABLE_HINT} (NVML: {exc})") from exc
        if count == 0:
            raise TelemetryUnavailable(f"{UNAVAILABLE_HINT} (NVML sees no GPU)")
        for index in range(count):
            sample = _read_device(nvml, error, index, stamp, collector)
            if sample is not None:
                collector.add(index, sample)
    finally:
        nvml.nvmlShutdown()
    return collector.result("NVML answered for no GPU")


def _text(value: str | bytes) -> str:
    return value.decode("ascii", errors="replace") if isinstance(value, bytes) else value


def _read_device(nvml: Any, error: type[BaseException], index: int, stamp: int,
                 collector: _Collector) -> Sample | None:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        uuid = gpu_uuid(_text(nvml.nvmlDeviceGetUUID(handle)))
        rates = nvml.nvmlDeviceGetUtilizationRates(handle)
    except error as exc:
        collector.skip(index, f"GPU {index}: NVML: {exc}")
        return None
    except ValueError as exc:
        collector.skip(index, f"GPU {index}: {exc}")
        return None
    try:
        serial = gpu_serial(_text(nvml.nvmlDeviceGetSerial(handle)))
    except error:
        serial = None  # not supported on consumer boards
    except ValueError as exc:
        collector.skip(index, f"GPU {index} ({uuid}): {exc}")
        return None
    try:
        return Sample(uuid=uuid, serial=serial, time=stamp, percent=percent_str(rates.gpu),
                      metric=METRIC)
    except (ValueError, ValidationError) as exc:
        collector.skip(index, f"GPU {index} ({uuid}): {exc}")
        return None
