"""The quote model: one price observation for renting GPUs, whatever the source.

Every source (marketplace snapshot, listings CSV, HTTP JSON feed) turns its rows into
`Quote`s and reports how many rows it accepted and rejected and why (`SourceResult`).
Quotes hold no floats: prices and fractions are plain decimal strings, so a list of
quotes serialises to canonical JSON (`oracle.attest.canonical_json`) byte for byte the
same on every machine, and the index snapshot built from them hashes to the report's
`inputsHash`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _plain_decimal(value: Any, what: str) -> Decimal:
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise ValueError(f"{what} must be a plain decimal string like 2.15, got {value!r}")
    return Decimal(value)


class SourceTier(StrEnum):
    """How binding a price is, strongest first. The index weights tiers differently."""

    TRADE = "trade"  # a price someone actually paid (a settled rental)
    EXECUTABLE_OFFER = "executable_offer"  # a live offer anyone could take now
    RATE_CARD = "rate_card"  # a published list price, not necessarily executable


class Quote(BaseModel):
    """One observed price for renting `gpu_count` GPUs of one model."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    source: Annotated[str, Field(min_length=1, max_length=120)]  # which feed produced it
    provider: Annotated[str, Field(min_length=1, max_length=120)]  # marketplace or cloud
    # The contributor the index reduces to one value: the marketplace host, or the
    # provider itself for a rate card. Unique within `provider`.
    host: Annotated[str, Field(min_length=1, max_length=120)]
    offer_id: Annotated[str, Field(alias="offerId", min_length=1, max_length=120)]
    machine: Annotated[str | None, Field(max_length=120)] = None
    gpu_name: Annotated[str, Field(alias="gpuName", min_length=1, max_length=120)]  # as listed
    gpu_ram_gb: Annotated[int | None, Field(alias="gpuRamGb", ge=1, le=4096)] = None
    gpu_count: Annotated[int, Field(alias="gpuCount", ge=1, le=1024)]
    # Share of the machine's GPUs this offer covers (0 < f <= 1), when the source says.
    gpu_fraction: Annotated[str | None, Field(alias="gpuFraction")] = None
    price_per_gpu_hour: Annotated[str, Field(alias="pricePerGpuHour")]  # USD, decimal string
    region: Annotated[str | None, Field(max_length=120)] = None
    country: Annotated[str | None, Field(min_length=2, max_length=2,
                                         pattern=r"^[A-Z]{2}$")] = None
    reliability: str | None = None  # 0..1, decimal string
    rented: bool = False
    observed_at: Annotated[int, Field(alias="observedAt", ge=0)]
    tier: SourceTier

    @field_validator("price_per_gpu_hour")
    @classmethod
    def _price(cls, v: Any) -> str:
        if _plain_decimal(v, "pricePerGpuHour") <= 0:
            raise ValueError(f"pricePerGpuHour must be positive, got {v}")
        return v

    @field_validator("gpu_fraction")
    @classmethod
    def _fraction(cls, v: Any) -> str | None:
        if v is not None and not Decimal(0) < _plain_decimal(v, "gpuFraction") <= 1:
            raise ValueError(f"gpuFraction must be in (0, 1], got {v}")
        return v

    @field_validator("reliability")
    @classmethod
    def _reliability(cls, v: Any) -> str | None:
        if v is not None and not Decimal(0) <= _plain_decimal(v, "reliability") <= 1:
            raise ValueError(f"reliability must be in [0, 1], got {v}")
        return v

    def price(self) -> Decimal:
        return Decimal(self.price_per_gpu_hour)

    def canonical(self) -> dict[str, Any]:
        """The quote as it appears in a canonical snapshot (camelCase, no Nones)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SourceResult(BaseModel):
    """What one run of one source produced: quotes, plus the honest count of what it
    could not use."""

    model_config = ConfigDict(frozen=True)

    source: str
    observed_at: int  # collection time of the data, unix seconds
    quotes: list[Quote]
    rows_seen: int
    rows_rejected: int
    rejected_reasons: dict[str, int] = Field(default_factory=dict)  # reason -> count
    low_row_count: bool = False  # far fewer rows than this source usually returns
    note: str | None = None  # why it was flagged, in words

    @property
    def rows_accepted(self) -> int:
        return len(self.quotes)
