"""Helpers shared by the source parsers: strict number conversion (no floats reach a
`Quote`), geolocation and timestamp parsing, and the per-row rejection tally."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any

from pydantic import ValidationError

from oracle.methodology import CONTEXT
from oracle.sources.history import RowCountHistory
from oracle.sources.quote import Quote, SourceResult

# Decimal places the parsers keep (ROUND_HALF_EVEN): USD per GPU-hour to 8 (the report's
# PRICE_DECIMALS), GPU fraction and reliability to 6.
PRICE_PLACES = 8
FRACTION_PLACES = 6
RELIABILITY_PLACES = 6

_PLAIN = re.compile(r"[0-9]+(\.[0-9]+)?")
# A number as a text file may write it: optional sign, digits, optional exponent.
_NUMBER_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_COUNTRY = re.compile(r"[A-Z]{2}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# No price, count or score in a feed comes near this; larger magnitudes are refused as
# `out_of_range:<field>` rather than rounded in a context they do not fit.
_LIMIT = Decimal(10) ** 30


class RowRejected(Exception):  # noqa: N818 - control flow, not an error for callers
    """Raised inside a row parser; `reason` is the short stable string that is counted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def plain(value: Decimal, places: int) -> str:
    """`value` rounded to `places` decimals (ROUND_HALF_EVEN) as a plain decimal string:
    no exponent, no sign on zero, trailing zeros stripped ("2.15", "1", "0.125")."""
    with localcontext(CONTEXT):
        q = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = format(q, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text


def json_number(value: Any, field: str) -> Decimal:
    """A JSON number as an exact Decimal: ints as they are, floats through `repr` (the
    shortest string that round-trips, so the same float always gives the same Decimal).
    Booleans, strings, null and non-finite floats are rejected."""
    if value is None:
        raise RowRejected(f"missing:{field}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowRejected(f"wrong_type:{field}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RowRejected(f"non_finite:{field}")
        return _in_range(Decimal(repr(value)), field)
    return _in_range(Decimal(value), field)


def _in_range(number: Decimal, field: str) -> Decimal:
    if abs(number) >= _LIMIT:
        raise RowRejected(f"out_of_range:{field}")
    return number


def json_int(value: Any, field: str) -> int:
    """A JSON integer (an integral float such as 2.0 is accepted, 2.5 is not)."""
    number = json_number(value, field)
    if number != number.to_integral_value():
        raise RowRejected(f"wrong_type:{field}")
    return int(number)


def text_number(value: str | None, field: str, *, plain_only: bool = False) -> Decimal:
    """A number written in a text cell. `plain_only`: digits and an optional fraction
    only (the form the file is documented to use); otherwise a sign and an exponent are
    allowed too (a float printed by a program)."""
    if value is None or value.strip() == "":
        raise RowRejected(f"missing:{field}")
    text = value.strip()
    pattern = _PLAIN if plain_only else _NUMBER_TEXT
    if not pattern.fullmatch(text):
        raise RowRejected(f"not_a_number:{field}")
    try:
        number = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
        raise RowRejected(f"not_a_number:{field}") from None
    if not number.is_finite():  # pragma: no cover - idem
        raise RowRejected(f"non_finite:{field}")
    return _in_range(number, field)


def identifier(value: Any, field: str) -> str:
    """An id as text: a non-negative JSON integer, or a non-empty string."""
    if value is None:
        raise RowRejected(f"missing:{field}")
    if isinstance(value, bool):
        raise RowRejected(f"wrong_type:{field}")
    if isinstance(value, int):
        if value < 0:
            raise RowRejected(f"wrong_type:{field}")
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise RowRejected(f"wrong_type:{field}")


def nonempty_text(value: Any, field: str) -> str:
    if value is None:
        raise RowRejected(f"missing:{field}")
    if not isinstance(value, str):
        raise RowRejected(f"wrong_type:{field}")
    if not value.strip():
        raise RowRejected(f"missing:{field}")
    return value.strip()


def geolocation(value: Any) -> tuple[str | None, str]:
    """("Texas, US") -> ("Texas", "US"); (", US") -> (None, "US"). The country is the
    ISO 3166-1 alpha-2 code after the last comma, upper-cased."""
    if value is None:
        raise RowRejected("missing:geolocation")
    if not isinstance(value, str):
        raise RowRejected("wrong_type:geolocation")
    if "," not in value:
        raise RowRejected("bad_geolocation")
    region, _, country = value.rpartition(",")
    country = country.strip().upper()
    if not _COUNTRY.fullmatch(country):
        raise RowRejected("bad_geolocation")
    return (region.strip() or None), country


def iso_to_unix(value: str) -> int:
    """An ISO-8601 time with a UTC offset (or Z) as whole unix seconds (floored).
    ValueError if it has no offset or does not parse."""
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{value!r} has no UTC offset")
    try:
        seconds = (moment - _EPOCH) // timedelta(seconds=1)
    except OverflowError as exc:
        raise ValueError(f"{value!r} is out of range") from exc
    if seconds < 0:
        raise ValueError(f"{value!r} is before 1970")
    return seconds


def per_gpu_price(total: Decimal, gpu_count: int) -> str:
    """Whole-offer USD/hour divided by the GPU count, 8 decimals; rejects if not > 0."""
    if total <= 0:
        raise RowRejected("non_positive_price")
    with localcontext(CONTEXT):
        price = plain(total / gpu_count, PRICE_PLACES)
    if Decimal(price) <= 0:
        raise RowRejected("non_positive_price")
    return price


def gpu_ram_gb_from_mib(mib: int) -> int:
    """MiB -> GiB rounded half-even (81559 -> 80); rejects values outside the Quote's
    1..4096 range."""
    if mib <= 0:
        raise RowRejected("bad_gpu_ram")
    with localcontext(CONTEXT):
        gb = int((Decimal(mib) / 1024).to_integral_value(rounding=ROUND_HALF_EVEN))
    if not 1 <= gb <= 4096:
        raise RowRejected("bad_gpu_ram")
    return gb


def fraction(value: Decimal) -> str:
    """A GPU fraction in (0, 1], 6 decimals."""
    text = plain(value, FRACTION_PLACES)
    if not Decimal(0) < Decimal(text) <= 1:
        raise RowRejected("bad_gpu_fraction")
    return text


def reliability(value: Decimal) -> str:
    """A reliability score in [0, 1], 6 decimals."""
    if not Decimal(0) <= value <= 1:
        raise RowRejected("bad_reliability")
    return plain(value, RELIABILITY_PLACES)


def build_quote(fields: dict[str, Any]) -> Quote:
    """The Quote, or a rejection naming the first field the model refused."""
    try:
        return Quote(**fields)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        raise RowRejected(f"invalid:{loc[0] if loc else 'quote'}") from None


class Tally:
    """Accepted quotes plus the count of rejected rows by reason."""

    def __init__(self) -> None:
        self.quotes: list[Quote] = []
        self.seen = 0
        self.reasons: Counter[str] = Counter()
        self._ids: set[str] = set()

    def reject(self, reason: str) -> None:
        self.reasons[reason] += 1

    def row(self, make: Callable[[], Quote], *,
            duplicate: str = "duplicate_offer_id") -> Quote | None:
        """Count one row: its quote from `make()`, or None when `make` rejects it
        (`RowRejected`) or its offer id was already accepted (counted as `duplicate`)."""
        self.seen += 1
        try:
            quote = make()
            if quote.offer_id in self._ids:
                raise RowRejected(duplicate)
        except RowRejected as rejected:
            self.reject(rejected.reason)
            return None
        self._ids.add(quote.offer_id)
        self.quotes.append(quote)
        return quote

    def result(self, source: str, observed_at: int,
               history: RowCountHistory | None = None) -> SourceResult:
        """The SourceResult; with a `RowCountHistory`, the run is checked against the
        source's usual row count and recorded."""
        low, note = False, None
        if history is not None:
            low, note = history.check_and_record(source, len(self.quotes))
        return SourceResult(
            source=source,
            observed_at=observed_at,
            quotes=self.quotes,
            rows_seen=self.seen,
            rows_rejected=sum(self.reasons.values()),
            rejected_reasons=dict(sorted(self.reasons.items())),
            low_row_count=low,
            note=note,
        )
