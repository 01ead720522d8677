"""The fleet CSV an SPV operator registers GPUs from (`ape run spv add-gpus`).

Columns (header required, order free):

    serial                     the GPU's board serial number (hashed on-chain with keccak256)
    model                      model code, at most 32 ASCII characters (e.g. H100-SXM5-80GB)
    location_iso3166_numeric   ISO 3166-1 numeric code of where the GPU physically sits
    datacenter                 datacenter id, at most 32 ASCII characters
    acquisition_cost_usd       purchase price in USD, up to 8 decimals
    commissioned_at            commissioning date or time, ISO 8601, UTC if no offset

Optional column:

    location_iso3166_2         ISO 3166-2 region of the location (e.g. UA-30), empty for
                               none; required where the country's rules list regions
                               (parts of it under embargo), and must belong to the country

Every row is validated; errors name the file and line number.
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, TextIO

from eth_utils import keccak
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from jurisdictions.rules import SUBDIVISION_PATTERN, encode_subdivision

USD_DECIMALS = 8
# Upper bound on one GPU's acquisition cost, to catch unit mistakes (cents, wei, ...).
MAX_COST_USD = Decimal(10) ** 9
# Commissioning times before this (2000-01-01 UTC) are certainly typos.
EARLIEST_COMMISSIONING = datetime(2000, 1, 1, tzinfo=UTC)
REQUIRED_COLUMNS = (
    "serial",
    "model",
    "location_iso3166_numeric",
    "datacenter",
    "acquisition_cost_usd",
    "commissioned_at",
)
OPTIONAL_COLUMNS = ("location_iso3166_2",)

Ascii32 = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[\x21-\x7e]+$")]


class FleetCSVError(ValueError):
    """A fleet CSV that cannot be registered; the message names file and line."""


class GPURow(BaseModel):
    """One GPU as the operator describes it."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    serial: Annotated[str, Field(min_length=1, max_length=128)]
    model: Ascii32
    location_iso3166_numeric: Annotated[int, Field(ge=1, le=999)]
    datacenter: Ascii32
    acquisition_cost_usd: Decimal
    commissioned_at: datetime
    location_iso3166_2: Annotated[str, StringConstraints(pattern=SUBDIVISION_PATTERN)] | None = None

    @field_validator("location_iso3166_2", mode="before")
    @classmethod
    def _region(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().upper()
            return value or None
        return value

    @field_validator("acquisition_cost_usd")
    @classmethod
    def _cost(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value <= 0:
            raise ValueError("must be a positive USD amount")
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < -USD_DECIMALS:
            raise ValueError(f"has more than {USD_DECIMALS} decimals")
        if value >= MAX_COST_USD:
            raise ValueError(f"is not a plausible GPU price (at least {MAX_COST_USD:,} USD)")
        return value

    @field_validator("commissioned_at", mode="before")
    @classmethod
    def _when(cls, value: object) -> object:
        if not isinstance(value, str) or value.strip().isdigit():
            raise ValueError("must be an ISO 8601 date or date-time, e.g. 2025-03-17")
        text = value.strip()
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        return text

    @field_validator("commissioned_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        if value < EARLIEST_COMMISSIONING:
            raise ValueError(f"is before {EARLIEST_COMMISSIONING:%Y-%m-%d}: check the date")
        return value

    @property
    def serial_hash(self) -> bytes:
        """keccak256 of the UTF-8 serial: what the register stores on-chain."""
        return keccak(text=self.serial)

    @property
    def subdivision(self) -> int:
        """The region in the registry's `uint24` encoding (0: none)."""
        return encode_subdivision(self.location_iso3166_2) if self.location_iso3166_2 else 0

    def onchain(self) -> tuple[bytes, bytes, int, bytes, int, int, int]:
        """The `GPUInput` struct for `GPUShareToken.add_gpus`."""
        return (
            self.serial_hash,
            self.model.encode("ascii").ljust(32, b"\0"),
            self.location_iso3166_numeric,
            self.datacenter.encode("ascii").ljust(32, b"\0"),
            int(self.acquisition_cost_usd.scaleb(USD_DECIMALS)),
            int(self.commissioned_at.timestamp()),
            self.subdivision,
        )


def bytes32_text(value: bytes) -> str:
    """Decode a right-padded ASCII bytes32 (model, datacenter) for display."""
    return bytes(value).rstrip(b"\0").decode("ascii", errors="replace")


def load_fleet_csv(path: Path) -> list[GPURow]:
    """Parse and validate a fleet CSV. Raises FleetCSVError naming every bad line."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # -sig: Excel's BOM
    except OSError as exc:
        raise FleetCSVError(f"{path}: cannot open fleet CSV: {exc.strerror}") from exc
    try:
        return _parse(path, handle)
    except UnicodeDecodeError as exc:
        raise FleetCSVError(
            f"{path}: not UTF-8 text (byte {exc.start}): save the CSV as UTF-8"
        ) from exc
    finally:
        handle.close()


def _parse(path: Path, handle: TextIO) -> list[GPURow]:
    """Validate every row of an open fleet CSV; collect all errors before raising."""
    reader = csv.DictReader(handle)
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [col for col in REQUIRED_COLUMNS if col not in header]
    if missing:
        raise FleetCSVError(
            f"{path}: line 1: missing column(s) {', '.join(missing)}; "
            f"expected header: {','.join(REQUIRED_COLUMNS)}"
        )
    rows: list[GPURow] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        if None in raw:
            errors.append(f"{path}: line {line}: more fields than the header has")
            continue
        values = {(k or "").strip(): v for k, v in raw.items()}
        try:
            row = GPURow.model_validate(
                {col: values.get(col) for col in REQUIRED_COLUMNS + OPTIONAL_COLUMNS})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            errors.append(f"{path}: line {line}: {problems}")
            continue
        if row.serial in seen:
            errors.append(
                f"{path}: line {line}: serial {row.serial!r} repeats line {seen[row.serial]}"
            )
            continue
        seen[row.serial] = line
        rows.append(row)
    if errors:
        raise FleetCSVError("\n".join(errors))
    if not rows:
        raise FleetCSVError(f"{path}: no GPU rows after the header")
    return rows
