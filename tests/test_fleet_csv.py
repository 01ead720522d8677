"""`gpushares.fleet.load_fleet_csv`: the fleet CSV an operator registers GPUs from."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from hypothesis import given
from hypothesis import strategies as st

from gpushares.devnode import PROJECT_ROOT
from gpushares.fleet import REQUIRED_COLUMNS, FleetCSVError, GPURow, load_fleet_csv

EXAMPLE = PROJECT_ROOT / "examples" / "fleet-h100.csv"
HEADER = ",".join(REQUIRED_COLUMNS)
GOOD = "SN-0001,H100-SXM5-80GB,840,US-TX-DFW-01,27500.00,2025-03-17"


def keccak256(data: bytes) -> bytes:
    """keccak256 from pycryptodome, independent of the eth_utils one the loader uses."""
    return pycryptodome_keccak.new(digest_bits=256, data=data).digest()


def write(tmp_path: Path, text: str, name: str = "fleet.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rejection(path: Path) -> str:
    with pytest.raises(FleetCSVError) as excinfo:
        load_fleet_csv(path)
    return str(excinfo.value)


# ---------------------------------------------------------------------------------
# The shipped example
# ---------------------------------------------------------------------------------


def test_example_fleet_loads() -> None:
    rows = load_fleet_csv(EXAMPLE)
    serials = [line.split(",")[0] for line in EXAMPLE.read_text().splitlines()[1:]]
    assert len(rows) == 8
    assert [row.serial for row in rows] == serials
    assert len(set(serials)) == 8
    for row in rows:
        assert row.model == "H100-SXM5-80GB"
        assert row.location_iso3166_numeric == 840
        assert row.datacenter == "US-TX-DFW-01"
        assert row.acquisition_cost_usd == Decimal("27500")
        assert row.commissioned_at == datetime(2025, 3, 17, tzinfo=UTC)


def test_example_serial_hashes_are_keccak_of_the_serial() -> None:
    for row in load_fleet_csv(EXAMPLE):
        assert row.serial_hash == keccak256(row.serial.encode())
        assert len(row.serial_hash) == 32
    # a known vector, so the hash is keccak256 and not NIST SHA3-256
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


def test_example_onchain_tuple() -> None:
    row = load_fleet_csv(EXAMPLE)[0]
    onchain = row.onchain()
    assert len(onchain) == 7
    serial_hash, model, location, datacenter, cost, commissioned_at, subdivision = onchain
    assert subdivision == 0  # the example has no location_iso3166_2 column
    assert serial_hash == keccak256(b"1654923041107")
    assert model == b"H100-SXM5-80GB" + b"\0" * 18
    assert datacenter == b"US-TX-DFW-01" + b"\0" * 20
    assert len(model) == len(datacenter) == 32
    assert location == 840
    assert cost == 27_500 * 10**8  # 8 decimals
    # a date is midnight UTC: 2025-03-17T00:00:00Z
    assert commissioned_at == 1_742_169_600
    assert [type(value) for value in onchain] == [bytes, bytes, int, bytes, int, int, int]


def test_region_column_is_optional_and_encoded(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER},location_iso3166_2\nSN-1,M,804,DC,1,2025-03-17, ua-30 \n"
                 "SN-2,M,840,DC,1,2025-03-17,\n")
    kyiv, plain = load_fleet_csv(path)
    assert kyiv.location_iso3166_2 == "UA-30" and kyiv.onchain()[6] == 0x3330
    assert plain.location_iso3166_2 is None and plain.onchain()[6] == 0


def test_bad_region_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER},location_iso3166_2\nSN-1,M,804,DC,1,2025-03-17,Kyiv\n")
    with pytest.raises(FleetCSVError, match="line 2: location_iso3166_2"):
        load_fleet_csv(path)


# ---------------------------------------------------------------------------------
# Accepted variants
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-17", datetime(2025, 3, 17, tzinfo=UTC)),
        (" 2025-03-17 ", datetime(2025, 3, 17, tzinfo=UTC)),
        ("2025-03-17T12:30:00Z", datetime(2025, 3, 17, 12, 30, tzinfo=UTC)),
        ("2025-03-17T12:30:00", datetime(2025, 3, 17, 12, 30, tzinfo=UTC)),  # naive = UTC
        ("2025-03-17T12:30:00+02:00", datetime(2025, 3, 17, 10, 30, tzinfo=UTC)),
    ],
)
def test_commissioned_at_forms(tmp_path: Path, value: str, expected: datetime) -> None:
    path = write(tmp_path, f"{HEADER}\nSN-1,M,840,DC,1,{value}\n")
    (row,) = load_fleet_csv(path)
    assert row.commissioned_at == expected
    assert row.onchain()[5] == int(expected.timestamp())


def test_columns_in_any_order_with_padding_and_blank_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        " commissioned_at , acquisition_cost_usd ,datacenter,"
        "location_iso3166_numeric,model,serial\n"
        "\n"
        "2025-03-17 , 0.00000001 , DC-1 , 4 , A100 , SN-9 \n",
    )
    (row,) = load_fleet_csv(path)
    assert row.serial == "SN-9"
    assert row.onchain()[1:] == (
        b"A100".ljust(32, b"\0"),
        4,
        b"DC-1".ljust(32, b"\0"),
        1,
        1_742_169_600,
        0,
    )


# ---------------------------------------------------------------------------------
# Rejections: every one names the file and the line
# ---------------------------------------------------------------------------------


def test_missing_column_is_reported_on_line_1(tmp_path: Path) -> None:
    header = HEADER.replace(",datacenter", "")
    path = write(tmp_path, f"{header}\nSN-1,M,840,1,2025-03-17\n")
    message = rejection(path)
    assert message.startswith(f"{path}: line 1: missing column(s) datacenter")
    assert HEADER in message  # the expected header is spelled out


def test_empty_file_is_missing_every_column(tmp_path: Path) -> None:
    message = rejection(write(tmp_path, ""))
    assert "line 1: missing column(s) " + ", ".join(REQUIRED_COLUMNS) in message


BAD_ROWS = {
    "non-numeric location": (
        "SN-2,M,Texas,DC,1,2025-03-17",
        ["location_iso3166_numeric", "valid integer"],
    ),
    "location 0": ("SN-2,M,0,DC,1,2025-03-17", ["location_iso3166_numeric", "1"]),
    "location 1000": ("SN-2,M,1000,DC,1,2025-03-17", ["location_iso3166_numeric", "999"]),
    "cost with 9 decimals": (
        "SN-2,M,840,DC,27500.000000001,2025-03-17",
        ["acquisition_cost_usd", "more than 8 decimals"],
    ),
    "negative cost": ("SN-2,M,840,DC,-27500,2025-03-17", ["acquisition_cost_usd", "positive"]),
    "zero cost": ("SN-2,M,840,DC,0.00,2025-03-17", ["acquisition_cost_usd", "positive"]),
    "non-numeric cost": ("SN-2,M,840,DC,$27500,2025-03-17", ["acquisition_cost_usd"]),
    "model of 33 characters": (
        f"SN-2,{'M' * 33},840,DC,1,2025-03-17",
        ["model", "at most 32 characters"],
    ),
    "non-ASCII model": ("SN-2,H100-é,840,DC,1,2025-03-17", ["model", "pattern"]),
    "model with a space": ("SN-2,H100 SXM5,840,DC,1,2025-03-17", ["model", "pattern"]),
    "empty datacenter": ("SN-2,M,840,,1,2025-03-17", ["datacenter"]),
    "datacenter of 33 characters": (
        f"SN-2,M,840,{'D' * 33},1,2025-03-17",
        ["datacenter", "at most 32 characters"],
    ),
    "empty serial": ("  ,M,840,DC,1,2025-03-17", ["serial"]),
    "impossible date": ("SN-2,M,840,DC,1,2025-02-30", ["commissioned_at"]),
    "not a date": ("SN-2,M,840,DC,1,last spring", ["commissioned_at"]),
    "extra field": ("SN-2,M,840,DC,1,2025-03-17,spare", ["more fields than the header has"]),
    "missing field": ("SN-2,M,840,DC,1", ["commissioned_at"]),
}


@pytest.mark.parametrize("bad_row", BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_bad_row_is_named_by_line(tmp_path: Path, bad_row: tuple[str, list[str]]) -> None:
    row, fragments = bad_row
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n{row}\n")
    message = rejection(path)
    assert message.startswith(f"{path}: line 3: "), message
    assert "line 2" not in message
    for fragment in fragments:
        assert fragment in message


def test_every_bad_line_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEADER}\n{GOOD}\n"
        "SN-2,M,0,DC,1,2025-03-17\n"
        "SN-3,M,840,DC,1,2025-03-17\n"
        "SN-4,M,840,DC,-1,2025-03-17\n",
    )
    lines = rejection(path).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["line 3", "line 5"]


def test_duplicate_serial_names_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEADER}\n{GOOD}\n"
        "SN-0002,H100-SXM5-80GB,840,US-TX-DFW-01,27500.00,2025-03-17\n"
        "SN-0001,H100-SXM5-80GB,840,US-TX-DFW-02,26000.00,2025-03-18\n",
    )
    message = rejection(path)
    assert message == f"{path}: line 4: serial 'SN-0001' repeats line 2"


def test_duplicate_serial_after_trimming_spaces(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n  SN-0001  ,M,840,DC,1,2025-03-17\n")
    assert "line 3: serial 'SN-0001' repeats line 2" in rejection(path)


def test_header_only_has_no_rows(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n\n")
    assert rejection(path) == f"{path}: no GPU rows after the header"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    message = rejection(path)
    assert message.startswith(f"{path}: cannot open fleet CSV")
    assert "No such file or directory" in message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    message = rejection(tmp_path)
    assert message.startswith(f"{tmp_path}: cannot open fleet CSV")


# ---------------------------------------------------------------------------------
# Inputs that once slipped through (kept as regression tests)
# ---------------------------------------------------------------------------------


def test_file_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"{HEADER}\nSN-\xe9,M,840,DC,1,2025-03-17\n".encode("latin-1"))
    assert str(path) in rejection(path)


def test_excel_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(f"\ufeff{HEADER}\r\n{GOOD}\r\n".encode())
    assert len(load_fleet_csv(path)) == 1


@pytest.mark.parametrize("when", ["1969-12-31", "1999-12-31", "174216960", "1742169600"])
def test_implausible_or_non_iso_commissioning_time_is_rejected(tmp_path: Path, when: str) -> None:
    path = write(tmp_path, f"{HEADER}\nSN-1,M,840,DC,1,{when}\n")
    assert "commissioned_at" in rejection(path)


def test_huge_cost_gets_a_clear_message(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\nSN-1,M,840,DC,1000000000000000000000,2025-03-17\n")
    message = rejection(path)
    assert "line 2" in message
    assert "acquisition_cost_usd" in message


# ---------------------------------------------------------------------------------
# Property: any valid fleet written with csv.writer reads back unchanged
# ---------------------------------------------------------------------------------

OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]

serials = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=128
).filter(lambda text: text == text.strip() and text != "")
ascii32 = st.text(alphabet=[chr(c) for c in range(0x21, 0x7F)], min_size=1, max_size=32)
costs = st.integers(min_value=1, max_value=10**17 - 1).map(lambda units: Decimal(units).scaleb(-8))
moments = st.one_of(
    st.dates(min_value=date(2000, 1, 2), max_value=date(2100, 12, 31)),
    st.datetimes(
        min_value=datetime(2000, 1, 2),
        max_value=datetime(2100, 12, 31),
        timezones=st.none() | st.sampled_from(OFFSETS),
    ),
)


@st.composite
def fleets(draw: st.DrawFn) -> list[dict[str, object]]:
    rows = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "serial": serials,
                    "model": ascii32,
                    "location_iso3166_numeric": st.integers(min_value=1, max_value=999),
                    "datacenter": ascii32,
                    "acquisition_cost_usd": costs,
                    "commissioned_at": moments,
                }
            ),
            min_size=1,
            max_size=8,
            unique_by=lambda row: row["serial"],
        )
    )
    order = draw(st.permutations(REQUIRED_COLUMNS))
    return [{column: row[column] for column in order} for row in rows]


def expected_moment(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def to_csv(rows: list[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                **row,
                "acquisition_cost_usd": f"{row['acquisition_cost_usd']:f}",
                "commissioned_at": row["commissioned_at"].isoformat(),  # type: ignore[attr-defined]
            }
        )
    return out.getvalue()


@given(fleets())
def test_valid_rows_round_trip(rows: list[dict[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fleet.csv"
        path.write_text(to_csv(rows), encoding="utf-8", newline="")
        loaded = load_fleet_csv(path)
    assert len(loaded) == len(rows)
    for got, row in zip(loaded, rows, strict=True):
        assert isinstance(got, GPURow)
        when = expected_moment(row["commissioned_at"])  # type: ignore[arg-type]
        assert got.serial == row["serial"]
        assert got.model == row["model"]
        assert got.datacenter == row["datacenter"]
        assert got.location_iso3166_numeric == row["location_iso3166_numeric"]
        assert got.acquisition_cost_usd == row["acquisition_cost_usd"]
        assert got.commissioned_at == when
        assert got.onchain() == (
            keccak256(str(row["serial"]).encode()),
            str(row["model"]).encode("ascii").ljust(32, b"\0"),
            row["location_iso3166_numeric"],
            str(row["datacenter"]).encode("ascii").ljust(32, b"\0"),
            int(row["acquisition_cost_usd"].scaleb(8)),  # type: ignore[attr-defined]
            int(when.timestamp()),
            0,
        )


@given(st.integers(min_value=1, max_value=10**19), st.integers(min_value=9, max_value=12))
def test_any_cost_with_more_than_8_decimals_is_rejected(units: int, places: int) -> None:
    cost = Decimal(units).scaleb(-places)
    if cost == cost.quantize(Decimal("1e-8")):
        return  # trailing zeros: really 8 decimals or fewer
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fleet.csv"
        path.write_text(f"{HEADER}\nSN-1,M,840,DC,{cost:f},2025-03-17\n", encoding="utf-8")
        with pytest.raises(FleetCSVError, match="more than 8 decimals"):
            load_fleet_csv(path)
