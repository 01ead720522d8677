"""Methodologies: how a report's value is computed from its raw input snapshot.

Each methodology is a pure function of the canonical snapshot (no clock, no network,
no floats), so the same inputs always give the same report fields, bit for bit, and an
auditor can recompute every logged value. A snapshot names its methodology:
`{"methodology": NAME, "version": N, ...}`; a price report's `methodologyVersion` is N.

- `offer-median` v1 (price feeds): the median of the offers' USD prices per GPU-hour,
  in 8 decimals (ROUND_HALF_EVEN); confidence is the median absolute deviation from it.
  The full index methodology (normalisation, outlier screens, tier weights) is the next
  oracle issue's; it will register as a new version, and logged values keep verifying
  under the version they name.
- `time-weighted-utilisation` v1 (utilisation reports): each GPU's samples hold from
  their timestamp until the next sample (or the period end); a GPU's utilisation is the
  time-weighted mean over the period (time before its first sample counts as idle), and
  the fleet's is the mean over GPUs, in basis points (ROUND_HALF_EVEN). Rental revenue
  is the sum of the snapshot's rental invoices for the period.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from oracle import attest


class MethodologyError(ValueError):
    """A snapshot cannot be evaluated (malformed, or an unknown methodology)."""


_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# Every methodology computes in this context, whatever the process's decimal context is
# (importing vyper, for one, changes the default precision): the same inputs give the
# same fields in the node and in the auditor's process. 120 significant digits hold
# any uint256 exactly.
_CONTEXT = Context(prec=120, rounding=ROUND_HALF_EVEN, Emin=-999_999, Emax=999_999,
                   traps=[InvalidOperation])


def _decimal(value: str) -> Decimal:
    """A plain decimal string ("2.15", "-3", no exponent, spaces or underscores)."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise ValueError(f"not a plain decimal number like 2.15: {value!r}")
    return Decimal(value)


def _to_fixed(value: Decimal, decimals: int) -> int:
    return int((value * (Decimal(10) ** decimals)).to_integral_value(rounding=ROUND_HALF_EVEN))


def _median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


# ---------------------------------------------------------------- offer-median v1


class Offer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: Annotated[str, Field(min_length=1, max_length=120)]
    gpu: Annotated[str, Field(min_length=1, max_length=120)]
    price_per_gpu_hour: Annotated[str, Field(alias="pricePerGpuHour")]
    country: Annotated[str, Field(min_length=2, max_length=2)] | None = None

    @field_validator("price_per_gpu_hour")
    @classmethod
    def _price(cls, v: str) -> str:
        if _decimal(v) <= 0:
            raise ValueError(f"price must be positive, got {v}")
        return v


class OfferMedianInputs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    methodology: str
    version: int
    feed_id: Annotated[attest.Hex32, Field(alias="feedId")]
    observed_at: Annotated[int, Field(alias="observedAt", ge=0)]
    source: Annotated[str, Field(min_length=1)]
    offers: Annotated[list[Offer], Field(min_length=1)]


class PriceFields(BaseModel):
    """What a price methodology determines in a `PriceReport`."""

    model_config = ConfigDict(frozen=True)

    feed_id: str
    value: int
    confidence: int
    observed_at: int
    methodology_version: int


def offer_median_v1(data: dict[str, Any]) -> PriceFields:
    inputs = OfferMedianInputs.model_validate(data)
    prices = [_decimal(o.price_per_gpu_hour) for o in inputs.offers]
    median = _median(prices)
    mad = _median([abs(p - median) for p in prices])
    return PriceFields(
        feed_id=inputs.feed_id,
        value=_to_fixed(median, attest.PRICE_DECIMALS),
        confidence=_to_fixed(mad, attest.PRICE_DECIMALS),
        observed_at=inputs.observed_at,
        methodology_version=inputs.version,
    )


# ---------------------------------------------------- time-weighted-utilisation v1


class GpuSamples(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    uuid: Annotated[str, Field(min_length=1, max_length=80)]
    # [unix time, utilisation percent as a decimal string 0..100], ascending times
    samples: Annotated[list[tuple[int, str]], Field(min_length=1)]

    @field_validator("samples")
    @classmethod
    def _samples(cls, v: list[tuple[int, str]]) -> list[tuple[int, str]]:
        last: int | None = None
        for t, pct in v:
            if t < 0:
                raise ValueError(f"sample time {t} is negative")
            if last is not None and t <= last:
                raise ValueError("sample times must be strictly ascending")
            if not Decimal(0) <= _decimal(pct) <= Decimal(100):
                raise ValueError(f"utilisation percent {pct} is outside 0..100")
            last = t
        return v


def non_negative_invoices(v: list[int]) -> list[int]:
    """Rental invoices are stablecoin amounts: none negative (shared by every version)."""
    if any(x < 0 for x in v):
        raise ValueError("rental invoices are non-negative stablecoin amounts")
    return v


class UtilisationInputs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    methodology: str
    version: int
    spv_token: Annotated[attest.Address, Field(alias="spvToken")]
    period_start: Annotated[int, Field(alias="periodStart", ge=0)]
    period_end: Annotated[int, Field(alias="periodEnd", ge=1)]
    gpus: Annotated[list[GpuSamples], Field(min_length=1)]
    rental_invoices: Annotated[list[int], AfterValidator(non_negative_invoices),
                               Field(alias="rentalInvoices")]



class UtilisationFields(BaseModel):
    """What a utilisation methodology determines in a `UtilisationReport`."""

    model_config = ConfigDict(frozen=True)

    spv_token: str
    period_start: int
    period_end: int
    gpu_count: int
    utilisation_bps: int
    rental_revenue: int


def time_weighted_utilisation_v1(data: dict[str, Any]) -> UtilisationFields:
    inputs = UtilisationInputs.model_validate(data)
    start, end = inputs.period_start, inputs.period_end
    if end <= start:
        raise MethodologyError("utilisation period is empty: periodEnd must exceed periodStart")
    if len({g.uuid for g in inputs.gpus}) != len(inputs.gpus):
        raise MethodologyError("a GPU uuid appears twice in the snapshot")
    total = Decimal(0)
    for gpu in inputs.gpus:
        busy = Decimal(0)
        points = [(t, _decimal(p)) for t, p in gpu.samples if t < end]
        for i, (t, pct) in enumerate(points):
            t_from = max(t, start)
            t_to = points[i + 1][0] if i + 1 < len(points) else end
            if t_to > t_from:
                busy += pct * (min(t_to, end) - t_from)
        total += busy / (Decimal(100) * (end - start))
    share = total / len(inputs.gpus)
    return UtilisationFields(
        spv_token=inputs.spv_token,
        period_start=start,
        period_end=end,
        gpu_count=len(inputs.gpus),
        utilisation_bps=_to_fixed(share, 4),
        rental_revenue=sum(inputs.rental_invoices),
    )


# ------------------------------------------------------- public helpers for modules

# Methodologies in other modules (oracle.index, oracle.valuation, oracle.telemetry)
# use these, so every methodology parses and rounds numbers the same way.
decimal_str = _decimal
to_fixed = _to_fixed
median = _median
CONTEXT = _CONTEXT


# ---------------------------------------------------------------- registry

PRICE_METHODS: dict[tuple[str, int], Callable[[dict[str, Any]], PriceFields]] = {
    ("offer-median", 1): offer_median_v1,
}
UTILISATION_METHODS: dict[tuple[str, int], Callable[[dict[str, Any]], UtilisationFields]] = {
    ("time-weighted-utilisation", 1): time_weighted_utilisation_v1,
}


def _lazy(module: str, name: str) -> Callable[[dict[str, Any]], Any]:
    """A methodology defined in another module, imported on first use (those modules
    import this one for the shared helpers)."""

    def call(data: dict[str, Any]) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)(data)

    return call


PRICE_METHODS[("gpu-hour-index", 1)] = _lazy("oracle.index", "price_fields")
PRICE_METHODS[("nav-per-share", 1)] = _lazy("oracle.valuation", "price_fields")
PRICE_METHODS[("nav-per-share", 2)] = PRICE_METHODS[("nav-per-share", 1)]
PRICE_METHODS[("gpu-hour-index", 2)] = PRICE_METHODS[("gpu-hour-index", 1)]

#: Methodologies kept so that logged values keep verifying, but retired: no node builds,
#: proposes or co-signs a report under them (`check_current`). `gpu-oracle verify` still
#: recomputes them, and `gpu-oracle attest` (one process holding k keys: tests,
#: migration) still computes them.
RETIRED: dict[tuple[str, int], str] = {
    ("offer-median", 1): "replaced by gpu-hour-index",
    ("time-weighted-utilisation", 1): "samples taken on the node's word, unsigned; "
                                      "replaced by version 2 (agent-signed telemetry)",
    ("gpu-hour-index", 1): "a contributor's voice grew with its host count; replaced by "
                           "version 2 (voice by GPU capacity)",
    ("nav-per-share", 1): "stamped with the valuation time, not its inputs' observation "
                          "time; replaced by version 2",
}


def check_current(snapshot: bytes | dict[str, Any]) -> tuple[str, int]:
    """The (methodology, version) a snapshot names, if a node may sign under it; raises
    MethodologyError for a retired one (or a snapshot naming none)."""
    data = _load(snapshot) if isinstance(snapshot, bytes) else snapshot
    if not isinstance(data, dict) or "methodology" not in data or "version" not in data:
        raise MethodologyError('a snapshot is an object naming "methodology" and "version"')
    key = (data["methodology"], data["version"])
    if not isinstance(key[0], str) or not isinstance(key[1], int) or isinstance(key[1], bool):
        raise MethodologyError('"methodology" must be a string and "version" an integer')
    if key in RETIRED:
        raise MethodologyError(f"{key[0]} v{key[1]} is retired ({RETIRED[key]}): nodes "
                               "neither propose nor co-sign it")
    return key
UTILISATION_METHODS[("time-weighted-utilisation", 2)] = _lazy(
    "oracle.telemetry.methodology", "utilisation_fields")


def _load(canonical_inputs: bytes) -> dict[str, Any]:
    try:
        data = json.loads(canonical_inputs.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MethodologyError(f"the snapshot is not UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict) or "methodology" not in data or "version" not in data:
        raise MethodologyError('a snapshot is an object naming "methodology" and "version"')
    return data


def compute(kind: str, canonical_inputs: bytes) -> PriceFields | UtilisationFields | None:
    """The report fields the snapshot's methodology gives, or None if this build does not
    know that methodology (an auditor then reports the entry as not recomputed)."""
    data = _load(canonical_inputs)
    name, version = data["methodology"], data["version"]
    if not isinstance(name, str) or not isinstance(version, int) or isinstance(version, bool):
        raise MethodologyError('"methodology" must be a string and "version" an integer')
    table: dict[Any, Any] = PRICE_METHODS if kind == "price" else UTILISATION_METHODS
    method = table.get((name, version))
    if method is None:
        return None
    try:
        with localcontext(_CONTEXT):
            return method(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise MethodologyError(f"snapshot field {where}: {err['msg']}") from exc
