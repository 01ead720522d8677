"""Net asset value of one GPU share: the `nav-per-share` v1 methodology, a price feed per SPV.

Each SPV's share token (`GPUShareToken`, 18 decimals) is backed by a register of GPUs.
This module values that register and divides by the share supply, giving the USD value
of one share (10**18 base units) in 8 decimals, which the lending pools read as the
collateral price of the share.

Snapshot (`NavInputs`, camelCase JSON, no floats: decimals are strings, amounts ints)::

    {"methodology": "nav-per-share", "version": 1,
     "feedId": "0x..",                 # reports.feed_id(nav_feed_name(symbol))
     "spvToken": "0x..",               # the share token
     "observedAt": 1772000000,         # valuation time, unix seconds
     "totalSupply": 3500 * 10**18,     # share base units, > 0
     "economicLifeYears": "4",         # 3 <= life <= 5
     "gpus": [{"serialHash": "0x..", "model": "H100-SXM5-80GB",
               "indexModel": "H100-SXM-80GB", "acquisitionCost": 2500000000000,
               "commissionedAt": 1700000000, "status": "active"}, ...],
                                       # ascending serialHash, no repeats
     "index": {"H100-SXM-80GB": {"atAcquisition": "2.40", "now": "2.10",
                                 "nowConfidence": "0.06", "source": "log entry 12",
                                 "atAcquisitionSource": "..."}},
                                       # nowConfidence, atAcquisitionSource optional
     "utilisation": {"bps": 7200, "periodStart": .., "periodEnd": .., "source": ".."}}
                                       # periodEnd <= observedAt; an empty period
                                       # (start == end: nothing measured) needs bps 0

Method (every quantity below is an exact rational number; nothing is rounded until the
two published integers):

- life `L = economicLifeYears * 31,557,600` seconds (a Julian year, 365.25 days).
- age of GPU i: `a_i = observedAt - commissionedAt_i`; a GPU commissioned after
  `observedAt` makes the snapshot invalid (MethodologyError), it is never negative.
- book value: `B_i = acquisitionCost_i * max(0, 1 - a_i / L)` (straight line to zero).
- market factor of index model m: `M_m = clamp(now_m / atAcquisition_m, 1/4, 3/2)`.
- utilisation factor of the fleet: `U = 1/2 + 1/2 * min(1, bps / 8,000)`.
- status factor: active `S = U`; impaired `S = 1/4` (no utilisation factor); retired
  `S = 0` (and no index entry is needed).
- GPU value: `V_i = B_i * M_(indexModel_i) * S_i`; fleet value `V = sum V_i` (USD, 8
  decimals, as `acquisitionCost` is).
- NAV per share: `value = floor(V * 10**18 / totalSupply)`: USD per share in 8
  decimals, rounded DOWN (collateral is valued against the borrower).
- confidence: evaluate `V` again with every index model's `now` at `now - nowConfidence`
  (`V_lo`, a negative level counting as 0) and `now + nowConfidence` (`V_hi`), all models
  at once (their errors are taken as fully correlated, the wider case); confidence =
  `ceil((V_hi - V_lo) * 10**18 / totalSupply / 2)`, rounded UP (uncertainty is never
  understated). A model without `nowConfidence` contributes no spread; the clamp can make
  the interval narrower than the index's own.

The parameters are constants of version 1 (a change is a new version; logged values keep
verifying under the version they name): `SECONDS_PER_YEAR`, `ECONOMIC_LIFE_MIN_YEARS` /
`ECONOMIC_LIFE_MAX_YEARS`, `MARKET_FACTOR_MIN` / `MARKET_FACTOR_MAX`,
`UTILISATION_FLOOR`, `UTILISATION_TARGET_BPS`, `IMPAIRED_FACTOR`. Their rationale is in
`docs/index-methodology.md`, "Net asset value of one GPU share".

Version 2 (what nodes build; version 1 stays registered so logged values keep
verifying, and is retired: no node proposes or co-signs it) changes only the time
stamp, so the report is no fresher than its data: every index level carries the
`observedAt` of the index report it comes from, and the snapshot's `observedAt` (the
valuation time, and the report's) must equal the oldest of them. The utilisation
period may end after it (the fleet's latest report; its age is bounded by the node).
The formula and parameters are those of version 1.

Arithmetic is exact: decimal strings are parsed with `methodology.decimal_str` under
`methodology.CONTEXT` and converted to `fractions.Fraction` without loss; the only
roundings are the final floor (value) and ceiling (confidence), so an auditor can
recompute both in any language with big rationals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from oracle import attest, methodology
from oracle.methodology import MethodologyError, PriceFields

METHODOLOGY = "nav-per-share"
VERSION = 2
VERSIONS = (1, 2)

# ------------------------------------------------------------ parameters of version 1

#: Seconds in a year of economic life: a Julian year (365.25 days).
SECONDS_PER_YEAR = 31_557_600
#: The economic life a snapshot may name, in years (inclusive bounds).
ECONOMIC_LIFE_MIN_YEARS = Decimal(3)
ECONOMIC_LIFE_MAX_YEARS = Decimal(5)
#: Bounds of the market factor `now / atAcquisition` of the GPU-hour index.
MARKET_FACTOR_MIN = Fraction(1, 4)
MARKET_FACTOR_MAX = Fraction(3, 2)
#: Utilisation factor of an idle fleet (resale value of an unlet GPU).
UTILISATION_FLOOR = Fraction(1, 2)
#: Utilisation (basis points) from which the fleet counts as fully let (factor 1).
UTILISATION_TARGET_BPS = 8_000
#: Status factor of an impaired GPU (replaces the utilisation factor).
IMPAIRED_FACTOR = Fraction(1, 4)

# ------------------------------------------------------------------- other constants

#: Share base units per share (`GPUShareToken.SHARE_DECIMALS` = 18).
SHARE_UNIT = 10**18
#: `GPUShareToken.GPUStatus` flag values.
STATUS_FLAGS: dict[int, str] = {1: "active", 2: "impaired", 4: "retired"}
#: Field order of the register's `GPU` struct (what `gpus(id)` returns).
REGISTER_FIELDS = (
    "serial_hash", "model", "location", "datacenter", "acquisition_cost",
    "commissioned_at", "status", "subdivision",
)
NAV_FEED_PREFIX = "NAV/"
NAV_FEED_SUFFIX = "/USD"
MAX_FEED_NAME_BYTES = 32
_INT256_MAX = 2**255 - 1

Status = Literal["active", "impaired", "retired"]

# ------------------------------------------------------------------------ inputs

_CONFIG = ConfigDict(
    frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
)
_Uint256 = Annotated[int, Field(strict=True, ge=0, lt=2**256)]
_Uint64 = Annotated[int, Field(strict=True, ge=0, lt=2**64)]
_Text = Annotated[str, Field(min_length=1, max_length=1_000)]
_ModelKey = Annotated[str, Field(min_length=1, max_length=64)]
_ModelCode = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[\x21-\x7e]+$")]


def _parse(text: str) -> Decimal:
    """A plain decimal string as a Decimal, parsed the way every methodology parses."""
    with localcontext(methodology.CONTEXT):
        return methodology.decimal_str(text)


def _exact(text: str) -> Fraction:
    """A plain decimal string as an exact rational (Decimal -> Fraction is lossless)."""
    return Fraction(_parse(text))


class GpuHolding(BaseModel):
    """One GPU of the SPV's register, as the snapshot carries it."""

    model_config = _CONFIG

    serial_hash: attest.Hex32
    #: the register's model code (bytes32 ASCII), e.g. "H100-SXM5-80GB"
    model: _ModelCode
    #: the GPU-hour index model key it is priced against, e.g. "H100-SXM-80GB"
    index_model: _ModelKey
    #: USD with 8 decimals, as the register stores it
    acquisition_cost: Annotated[int, Field(strict=True, gt=0, lt=2**256)]
    commissioned_at: _Uint64
    status: Status

    @field_validator("serial_hash")
    @classmethod
    def _serial(cls, v: str) -> str:
        if int(v, 16) == 0:
            raise ValueError("serialHash is zero; the register never holds a zero hash")
        return v


class IndexLevel(BaseModel):
    """The GPU-hour index of one model (USD per GPU-hour): at acquisition and now."""

    model_config = _CONFIG

    at_acquisition: str
    now: str
    now_confidence: str | None = None
    #: where `now` (and its confidence) comes from, e.g. "log entry 12"
    source: _Text
    #: where `atAcquisition` comes from (optional)
    at_acquisition_source: _Text | None = None
    #: the observation time of the index report `now` comes from (version 2: required)
    observed_at: _Uint64 | None = None

    @field_validator("at_acquisition", "now")
    @classmethod
    def _positive(cls, v: str) -> str:
        if _parse(v) <= 0:
            raise ValueError(f"an index level is a positive USD per GPU-hour, got {v}")
        return v

    @field_validator("now_confidence")
    @classmethod
    def _non_negative(cls, v: str | None) -> str | None:
        if v is not None and _parse(v) < 0:
            raise ValueError(f"nowConfidence is a non-negative USD per GPU-hour, got {v}")
        return v


class UtilisationInput(BaseModel):
    """The fleet's utilisation over a period (e.g. the SPV's latest utilisation report)."""

    model_config = _CONFIG

    bps: Annotated[int, Field(strict=True, ge=0, le=10_000)]
    period_start: _Uint64
    period_end: _Uint64
    #: where it comes from, e.g. "log entry 15"
    source: _Text


class NavInputs(BaseModel):
    """The raw input snapshot of `nav-per-share` v1 and v2 (see the module docstring)."""

    model_config = _CONFIG

    methodology: Literal["nav-per-share"]
    version: Literal[1, 2]
    feed_id: attest.Hex32
    spv_token: attest.Address
    observed_at: _Uint64
    total_supply: Annotated[int, Field(strict=True, gt=0, lt=2**256)]
    economic_life_years: str
    gpus: Annotated[list[GpuHolding], Field(min_length=1)]
    index: dict[_ModelKey, IndexLevel]
    utilisation: UtilisationInput

    @field_validator("economic_life_years")
    @classmethod
    def _life(cls, v: str) -> str:
        life = _parse(v)
        if not ECONOMIC_LIFE_MIN_YEARS <= life <= ECONOMIC_LIFE_MAX_YEARS:
            raise ValueError(
                f"economic life {v} years is outside {ECONOMIC_LIFE_MIN_YEARS}.."
                f"{ECONOMIC_LIFE_MAX_YEARS}: configure a life between 3 and 5 years"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> NavInputs:
        previous: str | None = None
        for gpu in self.gpus:
            if previous is not None and gpu.serial_hash <= previous:
                what = "appears twice" if gpu.serial_hash == previous else "is out of order"
                raise ValueError(
                    f"GPU {gpu.serial_hash} {what}: gpus are sorted by serialHash with no "
                    "repeats (build snapshots with oracle.valuation.nav_snapshot)"
                )
            previous = gpu.serial_hash
            if gpu.commissioned_at > self.observed_at:
                raise ValueError(
                    f"GPU {gpu.serial_hash} is commissioned at {gpu.commissioned_at}, after "
                    f"the valuation time observedAt {self.observed_at}: value the fleet "
                    "at or after its last commissioning"
                )
            if gpu.status != "retired" and gpu.index_model not in self.index:
                raise ValueError(
                    f"GPU {gpu.serial_hash} is priced against index model "
                    f"{gpu.index_model!r}, which has no entry in index: add its levels"
                )
        u = self.utilisation
        if self.version == 1:
            if not u.period_start <= u.period_end <= self.observed_at:
                raise ValueError(
                    f"utilisation period {u.period_start}..{u.period_end} must not end before "
                    f"it starts nor after observedAt {self.observed_at}"
                )
            if any(level.observed_at is not None for level in self.index.values()):
                raise ValueError("index levels name no observedAt in version 1 (version 2 "
                                 "does)")
        else:
            if u.period_start > u.period_end:
                raise ValueError(f"utilisation period {u.period_start}..{u.period_end} ends "
                                 "before it starts")
            self._oldest_observation()
        if u.period_start == u.period_end and u.bps != 0:
            raise ValueError(
                f"an empty utilisation period means no utilisation was measured, so bps "
                f"must be 0 (the floor), got {u.bps}: give the period the bps were measured "
                "over"
            )
        return self

    def _oldest_observation(self) -> None:
        """Version 2: every index level names its observation time, and the snapshot's
        is the oldest of them (a valuation is no fresher than its market data)."""
        times = {}
        for key, level in self.index.items():
            if level.observed_at is None:
                raise ValueError(f"index[{key!r}] names no observedAt: version 2 carries the "
                                 "observation time of every index level")
            times[key] = level.observed_at
        if times and self.observed_at != min(times.values()):
            oldest = min(times, key=lambda k: (times[k], k))
            raise ValueError(
                f"observedAt {self.observed_at} is not the oldest observation of the inputs "
                f"(index[{oldest!r}] was observed at {times[oldest]}): a derived value "
                "carries the time of its oldest input"
            )


# ------------------------------------------------------------------------ results


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator


def _ceil(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)


def _display(value: Fraction, places: int = 8) -> Decimal:
    """A factor for display: rounded down to `places` decimals, exactly."""
    with localcontext(methodology.CONTEXT):  # scaleb rounds to the context's precision
        return Decimal(_floor(value * 10**places)).scaleb(-places)


@dataclass(frozen=True)
class GpuValuation:
    """One GPU's contribution, for display (the NAV itself uses the exact values)."""

    serial_hash: str
    model: str
    index_model: str
    status: Status
    age_seconds: int
    #: USD, 8 decimals, rounded down
    book_value: int
    #: now / atAcquisition clamped, 8 places rounded down; None for a retired GPU
    market_factor: Decimal | None
    #: the status factor: the fleet's utilisation factor if active, IMPAIRED_FACTOR if
    #: impaired, 0 if retired; 8 places rounded down
    utilisation_factor: Decimal
    #: USD, 8 decimals, rounded down
    value: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, camelCase, decimals as strings."""
        return {
            "serialHash": self.serial_hash,
            "model": self.model,
            "indexModel": self.index_model,
            "status": self.status,
            "ageSeconds": self.age_seconds,
            "bookValue": self.book_value,
            "marketFactor": None if self.market_factor is None else f"{self.market_factor:f}",
            "utilisationFactor": f"{self.utilisation_factor:f}",
            "value": self.value,
        }


@dataclass(frozen=True)
class NavResult:
    """The NAV per share and its breakdown."""

    feed_id: str
    spv_token: str
    observed_at: int
    total_supply: int
    economic_life_years: str
    utilisation_bps: int
    #: the fleet's utilisation factor, 8 places rounded down
    utilisation_factor: Decimal
    #: sum of the GPUs' exact values, USD 8 decimals, rounded down
    total_value: int
    #: NAV of one share (10**18 base units), USD 8 decimals, rounded down
    value: int
    #: half the NAV spread over the index's confidence, USD 8 decimals, rounded up
    confidence: int
    gpus: tuple[GpuValuation, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, camelCase, decimals as strings."""
        return {
            "feedId": self.feed_id,
            "spvToken": self.spv_token,
            "observedAt": self.observed_at,
            "totalSupply": self.total_supply,
            "economicLifeYears": self.economic_life_years,
            "utilisationBps": self.utilisation_bps,
            "utilisationFactor": f"{self.utilisation_factor:f}",
            "totalValue": self.total_value,
            "value": self.value,
            "confidence": self.confidence,
            "decimals": attest.PRICE_DECIMALS,
            "gpus": [g.as_dict() for g in self.gpus],
        }


# ------------------------------------------------------------------------ method


def _clamp(value: Fraction) -> Fraction:
    return min(MARKET_FACTOR_MAX, max(MARKET_FACTOR_MIN, value))


def utilisation_factor(bps: int) -> Fraction:
    """`UTILISATION_FLOOR + (1 - UTILISATION_FLOOR) * min(1, bps / UTILISATION_TARGET_BPS)`."""
    return UTILISATION_FLOOR + (1 - UTILISATION_FLOOR) * min(
        Fraction(1), Fraction(bps, UTILISATION_TARGET_BPS)
    )


def _validate(data: Mapping[str, Any] | NavInputs) -> NavInputs:
    if isinstance(data, NavInputs):
        return data
    try:
        return NavInputs.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'snapshot'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        version = data.get("version") if isinstance(data, Mapping) else None
        raise MethodologyError(f"{METHODOLOGY} v{version} snapshot: {problems}") from exc


def evaluate(data: Mapping[str, Any] | NavInputs) -> NavResult:
    """The NAV per share of a `nav-per-share` v1 snapshot, with a per-GPU breakdown.

    Raises MethodologyError naming the offending field if the snapshot is invalid.
    """
    inputs = _validate(data)
    with localcontext(methodology.CONTEXT):
        life = _exact(inputs.economic_life_years) * SECONDS_PER_YEAR
        util = utilisation_factor(inputs.utilisation.bps)
        market: dict[str, tuple[Fraction, Fraction, Fraction]] = {}
        for key, level in inputs.index.items():
            base = _exact(level.at_acquisition)
            now = _exact(level.now)
            spread = (
                _exact(level.now_confidence) if level.now_confidence is not None else Fraction(0)
            )
            market[key] = (
                _clamp(max(Fraction(0), now - spread) / base),
                _clamp(now / base),
                _clamp((now + spread) / base),
            )
        total = total_lo = total_hi = Fraction(0)
        rows: list[GpuValuation] = []
        for gpu in inputs.gpus:
            age = inputs.observed_at - gpu.commissioned_at  # >= 0: validated
            book = gpu.acquisition_cost * max(Fraction(0), 1 - age / life)
            factor: Fraction | None
            if gpu.status == "retired":
                factor, status_factor, value = None, Fraction(0), Fraction(0)
            else:
                lo, factor, hi = market[gpu.index_model]
                status_factor = util if gpu.status == "active" else IMPAIRED_FACTOR
                value = book * factor * status_factor
                total += value
                total_lo += book * lo * status_factor
                total_hi += book * hi * status_factor
            rows.append(GpuValuation(
                serial_hash=gpu.serial_hash,
                model=gpu.model,
                index_model=gpu.index_model,
                status=gpu.status,
                age_seconds=age,
                book_value=_floor(book),
                market_factor=None if factor is None else _display(factor),
                utilisation_factor=_display(status_factor),
                value=_floor(value),
            ))
        per_share = Fraction(SHARE_UNIT, inputs.total_supply)
        nav = _floor(total * per_share)
        confidence = _ceil((total_hi - total_lo) * per_share / 2)
    if nav > _INT256_MAX or confidence > _INT256_MAX:
        raise MethodologyError(
            f"NAV per share {nav} does not fit a price report's int256: check that "
            "totalSupply is in share base units (18 decimals) and acquisitionCost in USD "
            "with 8 decimals"
        )
    return NavResult(
        feed_id=inputs.feed_id,
        spv_token=inputs.spv_token,
        observed_at=inputs.observed_at,
        total_supply=inputs.total_supply,
        economic_life_years=inputs.economic_life_years,
        utilisation_bps=inputs.utilisation.bps,
        utilisation_factor=_display(util),
        total_value=_floor(total),
        value=nav,
        confidence=confidence,
        gpus=tuple(rows),
    )


def price_fields(data: Mapping[str, Any] | NavInputs) -> PriceFields:
    """The `PriceReport` fields of a `nav-per-share` v1 snapshot (what
    `methodology.compute("price", ...)` calls for this methodology)."""
    inputs = _validate(data)
    result = evaluate(inputs)
    return PriceFields(
        feed_id=result.feed_id,
        value=result.value,
        confidence=result.confidence,
        observed_at=result.observed_at,
        methodology_version=inputs.version,
    )


# ------------------------------------------------------------------------ builders


def _decimal_text(value: Any, what: str) -> Any:
    """A decimal given as str, int or Decimal, as the plain string the snapshot holds
    (anything else is passed through for the model to refuse with its own message)."""
    if isinstance(value, float):
        raise MethodologyError(
            f"{what} is a float ({value!r}); floats are refused: pass a decimal string "
            "such as '2.15'"
        )
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise MethodologyError(f"{what} is {value}, not a finite decimal")
        return format(value, "f")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


_DECIMAL_LEVEL_KEYS = ("atAcquisition", "at_acquisition", "now", "nowConfidence",
                       "now_confidence")


def nav_snapshot(
    *,
    feed_id: str | None = None,
    feed_name: str | None = None,
    spv_token: str,
    observed_at: int,
    total_supply: int,
    economic_life_years: str | int | Decimal,
    gpus: Iterable[GpuHolding | Mapping[str, Any]],
    index: Mapping[str, IndexLevel | Mapping[str, Any]],
    utilisation: UtilisationInput | Mapping[str, Any],
    version: int = 1,
) -> dict[str, Any]:
    """A canonical `nav-per-share` snapshot of `version` (1, or 2: every index level
    names its `observedAt` and `observed_at` is the oldest of them), ready for
    `attest.canonical_json`.

    Give the feed as `feed_id` (bytes32 hex) or `feed_name` (e.g.
    `nav_feed_name(symbol)`, turned into an id by `reports.feed_id`), not both. GPUs are
    sorted by serialHash; index entries no active or impaired GPU uses are dropped;
    decimals may be given as str, int or Decimal (never float) and are written as plain
    strings. Raises MethodologyError (naming the field) if the result would not evaluate.
    """
    if (feed_id is None) == (feed_name is None):
        raise MethodologyError("give the NAV feed as feed_id or as feed_name (exactly one)")
    if feed_name is not None:
        from oracle.reports import feed_id as id_of  # the log machinery: import on use

        try:
            feed_id = id_of(feed_name)
        except ValueError as exc:
            raise MethodologyError(f"{exc}: use nav_feed_name(symbol)") from exc
    holdings = [g if isinstance(g, GpuHolding) else _holding(g) for g in gpus]
    holdings.sort(key=lambda g: g.serial_hash)
    used = {g.index_model for g in holdings if g.status != "retired"}
    levels: dict[str, Any] = {}
    for key, level in index.items():
        if key not in used:
            continue
        if isinstance(level, IndexLevel):
            levels[key] = level.model_dump(by_alias=True, exclude_none=True)
        else:
            levels[key] = {
                k: _decimal_text(v, f"index[{key!r}].{k}") if k in _DECIMAL_LEVEL_KEYS else v
                for k, v in level.items()
            }
    util = (
        utilisation.model_dump(by_alias=True)
        if isinstance(utilisation, UtilisationInput) else dict(utilisation)
    )
    data = {
        "methodology": METHODOLOGY,
        "version": version,
        "feedId": feed_id,
        "spvToken": spv_token,
        "observedAt": observed_at,
        "totalSupply": total_supply,
        "economicLifeYears": _decimal_text(economic_life_years, "economicLifeYears"),
        "gpus": [g.model_dump(by_alias=True) for g in holdings],
        "index": levels,
        "utilisation": util,
    }
    inputs = _validate(data)
    evaluate(inputs)  # refuse now what the methodology would refuse later
    return inputs.model_dump(mode="json", by_alias=True, exclude_none=True)


def _holding(data: Mapping[str, Any]) -> GpuHolding:
    try:
        return GpuHolding.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise MethodologyError(
            f"GPU {data.get('serialHash', data.get('serial_hash', '?'))}: {where}: "
            f"{err['msg'].removeprefix('Value error, ')}"
        ) from exc


_LABEL = re.compile(r"[^\s/\x00-\x1f\x7f]+")


def nav_feed_name(symbol_or_label: str) -> str:
    """The NAV feed's readable name, `NAV/<symbol>/USD`, for `reports.feed_id`.

    A feed name is at most 32 UTF-8 bytes, so the symbol or label is at most 24 bytes
    (no spaces or slashes). Raises ValueError saying what to pass instead.
    """
    if not isinstance(symbol_or_label, str) or not _LABEL.fullmatch(symbol_or_label):
        raise ValueError(
            f"a NAV feed label is the share token's symbol (no spaces, slashes or control "
            f"characters), got {symbol_or_label!r}"
        )
    name = f"{NAV_FEED_PREFIX}{symbol_or_label}{NAV_FEED_SUFFIX}"
    size = len(name.encode())
    if size > MAX_FEED_NAME_BYTES:
        room = MAX_FEED_NAME_BYTES - len(NAV_FEED_PREFIX) - len(NAV_FEED_SUFFIX)
        raise ValueError(
            f"feed name {name!r} is {size} bytes; a feed name is at most "
            f"{MAX_FEED_NAME_BYTES}: pass a label of at most {room} bytes (e.g. the token "
            "symbol) instead of the token name"
        )
    return name


# ------------------------------------------------------------------------ register


class RegisterError(ValueError):
    """A register row that cannot become a `GpuHolding`; the message names the row."""


def _register_row(row: Any, where: str) -> dict[str, Any]:
    needed = ("serial_hash", "model", "acquisition_cost", "commissioned_at", "status")
    if isinstance(row, Mapping):
        missing = [k for k in needed if k not in row]
        if missing:
            raise RegisterError(
                f"{where}: missing {', '.join(missing)}; a register row has the GPU "
                f"struct's fields {', '.join(REGISTER_FIELDS)}"
            )
        return {k: row[k] for k in needed}
    if all(hasattr(row, k) for k in needed):  # namedtuples, ape / web3 struct objects
        return {k: getattr(row, k) for k in needed}
    if isinstance(row, Sequence) and not isinstance(row, str | bytes | bytearray):
        if len(row) != len(REGISTER_FIELDS):
            raise RegisterError(
                f"{where}: a register tuple has {len(REGISTER_FIELDS)} fields "
                f"({', '.join(REGISTER_FIELDS)}), got {len(row)}"
            )
        return {k: v for k, v in zip(REGISTER_FIELDS, row, strict=True) if k in needed}
    raise RegisterError(
        f"{where}: expected the GPU struct as a tuple, mapping or struct object, got "
        f"{type(row).__name__}"
    )


def _model_code(value: Any, where: str) -> str:
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        if len(raw) > 32:
            raise RegisterError(f"{where}: model is {len(raw)} bytes, a bytes32 holds 32")
        try:
            text = raw.rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError as exc:
            raise RegisterError(f"{where}: model {raw!r} is not ASCII") from exc
    elif isinstance(value, str):
        text = value.rstrip("\0")
    else:
        raise RegisterError(f"{where}: model is a bytes32, got {type(value).__name__}")
    if not text:
        raise RegisterError(f"{where}: model is empty")
    return text


def _status_name(value: Any, where: str) -> Status:
    if isinstance(value, str) and value in STATUS_FLAGS.values():
        return cast(Status, value)
    if isinstance(value, int) and not isinstance(value, bool) and value in STATUS_FLAGS:
        return cast(Status, STATUS_FLAGS[value])
    if value == 0:
        raise RegisterError(
            f"{where}: status 0 means the register has no GPU under that id; read ids "
            "1..gpu_count()"
        )
    raise RegisterError(
        f"{where}: status {value!r} is not a GPUStatus flag (1 active, 2 impaired, "
        "4 retired)"
    )


def holdings_from_register(
    rows: Iterable[Any], model_map: Mapping[str, str]
) -> list[GpuHolding]:
    """`GpuHolding`s from the register's `GPU` structs, as read on-chain (`gpus(id)` for
    ids 1..gpu_count): tuples in struct order, mappings or struct objects with the
    struct's field names. Pure: the caller does the reading.

    `model_map` maps register model codes ("H100-SXM5-80GB") to index model keys
    ("H100-SXM-80GB"). An active or impaired GPU whose code is not in it raises
    RegisterError; a retired GPU is never priced, so an unmapped code keeps its register
    code as `indexModel`. Bad serial hashes, costs or times raise RegisterError too.
    """
    out: list[GpuHolding] = []
    for n, row in enumerate(rows):
        where = f"register row {n}"
        fields = _register_row(row, where)
        serial = fields["serial_hash"]
        if isinstance(serial, bytes | bytearray):
            serial = "0x" + bytes(serial).hex()
        where = f"register row {n} (serial hash {serial})"
        model = _model_code(fields["model"], where)
        status = _status_name(fields["status"], where)
        index_model = model_map.get(model)
        if index_model is None:
            if status != "retired":
                known = ", ".join(sorted(model_map)) or "none"
                raise RegisterError(
                    f"{where}: register model code {model!r} has no index model: add it "
                    f"to the model map, e.g. {{{model!r}: 'H100-SXM-80GB'}} (mapped codes: "
                    f"{known})"
                )
            index_model = model
        try:
            out.append(GpuHolding(
                serial_hash=serial,
                model=model,
                index_model=index_model,
                acquisition_cost=fields["acquisition_cost"],
                commissioned_at=fields["commissioned_at"],
                status=status,
            ))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise RegisterError(
                f"{where}: {field}: {err['msg'].removeprefix('Value error, ')}"
            ) from exc
    return out
