"""The entry format migration: a log written before RFC 8785 (entry format version 1,
tests/oracle/data/log_v1.json, bytes as the old code wrote them) still verifies, and a
node that keeps appending to it (version 2, RFC 8785) leaves a mixed log that verifies
too, through `verify_log` and `gpu-oracle verify`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from oracle import reports
from oracle.cli import main
from oracle.entries import ReportEntry, parse_leaf
from oracle.log import AttestationLog
from oracle.verify import Discrepancy, verify_log
from tests.oracle import factories as f
from tests.oracle.factories import Row

V1_LOG = Path(__file__).parent / "data" / "log_v1.json"
WIDE_REVENUE = 10**20 + 7  # beyond the I-JSON range: a number in v1, a string in v2


def v1_fixture() -> dict[str, Any]:
    return json.loads(V1_LOG.read_text())


def v1_rows() -> list[Row]:
    return [Row(r["leaf"].encode(), r["kind"],
                r["inputs"].encode() if r["inputs"] is not None else None)
            for r in v1_fixture()["rows"]]


@pytest.fixture
def mixed(tmp_path: Path) -> Iterator[AttestationLog]:
    """The shipped v1 log, continued by today's code: a price report (day 1) and a
    utilisation report with a revenue beyond the I-JSON range, both version 2."""
    log = f.write_log(tmp_path / "mixed.sqlite3", v1_rows())
    fleet = f.fleet_snapshot(1)
    fleet["rentalInvoices"] = [WIDE_REVENUE - 7, 7]
    for kind, snapshot in (f.reference_snapshots()[2], ("utilisation", fleet)):
        reports.attest_snapshot(log, kind, snapshot, domain=f.DOMAIN,
                                config_version=f.CONFIG_VERSION, keys=f.quorum())
    yield log
    log.close()


def test_the_shipped_v1_log_verifies_as_written(tmp_path: Path) -> None:
    fixture = v1_fixture()
    with f.write_log(tmp_path / "v1.sqlite3", v1_rows()) as log:
        summary = verify_log(log)
        assert log.checkpoint().size == fixture["size"]
    # the root the old code computed: the leaves are the bytes it wrote
    assert summary.root == fixture["root"]
    assert summary.format_versions == {1: 3}
    assert (summary.entries, summary.reports, summary.recomputed, summary.signatures) == (
        3, 2, 2, 6)


def test_a_mixed_log_verifies(mixed: AttestationLog) -> None:
    summary = verify_log(mixed)
    assert summary.format_versions == {1: 3, 2: 2}
    assert (summary.entries, summary.reports, summary.recomputed, summary.signatures) == (
        5, 4, 4, 12)
    entries = [parse_leaf(e.leaf) for e in mixed.entries()]
    assert [e.format_version for e in entries] == [1, 1, 1, 2, 2]
    # the first v2 report commits to the root over the three v1 entries
    first_new = entries[3]
    assert isinstance(first_new, ReportEntry)
    assert first_new.signed.report.log_size == 3
    assert first_new.signed.report.log_root == v1_fixture()["root"]
    old_wide, new_wide = mixed.entry(2).leaf, mixed.entry(4).leaf
    assert f'"rentalRevenue":{WIDE_REVENUE},'.encode() in old_wide
    assert f'"rentalRevenue":"{WIDE_REVENUE}",'.encode() in new_wide


def test_gpu_oracle_verify_accepts_a_mixed_log(mixed: AttestationLog) -> None:
    result = CliRunner(mix_stderr=False).invoke(main, ["verify", "--log", str(mixed.path)])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK 5 entries (4 reports, 1 signer sets), 12 signatures, "
                                    "4 values recomputed")
    assert "0x" + mixed.checkpoint().root.hex() in result.stdout


def test_rewriting_old_entries_in_the_new_form_is_caught(mixed: AttestationLog,
                                                         tmp_path: Path) -> None:
    """Migration never re-encodes a stored entry: its leaf is hashed into every later
    commitment, so a v1 entry rewritten as v2 (same content) breaks the next report."""
    rows = f.rows_of(mixed)
    entry = parse_leaf(rows[1].leaf)
    rows[1] = Row(entry.model_copy(update={"format_version": 2}).leaf(), rows[1].kind,
                  rows[1].inputs)
    with f.write_log(tmp_path / "rewritten.sqlite3", rows) as log, \
            pytest.raises(Discrepancy) as exc:
        verify_log(log)
    assert exc.value.where == "entry 2"
    assert "history was rewritten" in exc.value.what


def test_a_v1_entry_relabelled_v2_is_not_a_valid_entry(tmp_path: Path) -> None:
    rows = v1_rows()
    rows[2] = Row(rows[2].leaf.replace(b'"v":1', b'"v":2'), rows[2].kind, rows[2].inputs)
    with f.write_log(tmp_path / "relabelled.sqlite3", rows) as log, \
            pytest.raises(Discrepancy) as exc:
        verify_log(log)
    assert exc.value.where == "entry 2"
    assert "not in canonical form" in exc.value.what
