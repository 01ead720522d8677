"""oracle.verify.verify_log without a chain: a real log, then the tampering an operator
serving a doctored log could do, each caught at the entry where it shows.

The reference log (built once per module, as the oracle builds it):

    entry 0            the hub's 3-of-5 signer set, config version 1
    entry 2k+1         price report of day k (k = 0..5), from the real listings CSVs
    entry 2k+2         utilisation report of day k, from a constructed fleet snapshot

Every doctored log is a new file whose entries are re-appended (leaf and inputs) through
the AttestationLog API, so it passes the file's own integrity checks and only the
signatures and commitments can give it away. (Editing the SQLite file in place is caught
earlier, when the log is opened: see test_raw_sqlite_edit_is_caught_when_opening.)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from oracle import attest, merkle, methodology, reports
from oracle.entries import ReportEntry, SignerSetEntry, parse_leaf
from oracle.log import AttestationLog, LogCorrupted
from oracle.verify import Discrepancy, verify_log
from tests.oracle import factories as f
from tests.oracle.factories import Row

N_REPORTS = 2 * len(f.LISTING_CSVS)
N_ENTRIES = 1 + N_REPORTS
CHANGED = "an earlier entry was changed, dropped or reordered, or history was rewritten"
MOVED = "an entry was dropped, inserted or reordered"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttestationLog]:
    log = f.build_log(tmp_path_factory.mktemp("reference") / "attestations.sqlite3")
    yield log
    log.close()


@pytest.fixture(scope="module")
def rows(reference: AttestationLog) -> list[Row]:
    return f.rows_of(reference)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Sequence[Row]], AttestationLog]]:
    """Write `rows` into a new log file (a doctored copy an operator could serve)."""
    opened: list[AttestationLog] = []

    def write(rows: Sequence[Row]) -> AttestationLog:
        log = f.write_log(tmp_path / f"served-{len(opened)}.sqlite3", rows)
        opened.append(log)
        return log

    yield write
    for log in opened:
        log.close()


def discrepancy(log: AttestationLog) -> Discrepancy:
    with pytest.raises(Discrepancy) as exc:
        verify_log(log)
    assert str(exc.value) == f"{exc.value.where}: {exc.value.what}"
    return exc.value


def report_of(row: Row) -> attest.PriceReport | attest.UtilisationReport:
    entry = parse_leaf(row.leaf)
    assert isinstance(entry, ReportEntry)
    return entry.signed.report


def replaced(rows: Sequence[Row], index: int, **changes: Any) -> list[Row]:
    out = list(rows)
    row = out[index]
    out[index] = Row(changes.get("leaf", row.leaf), changes.get("kind", row.kind),
                     changes.get("inputs", row.inputs))
    return out


def re_signed(rows: Sequence[Row], index: int, keys: Sequence[bytes] | None = None,
              domain: attest.Domain = f.DOMAIN, inputs: bytes | None = None,
              **report_changes: Any) -> list[Row]:
    """`rows` with entry `index` replaced by its report with `report_changes`, co-signed by
    `keys` (default: the real quorum: an operator holding the keys)."""
    report = report_of(rows[index]).model_copy(update=report_changes)
    report = type(report).model_validate(report.model_dump())  # re-validate the copy
    leaf = f.report_leaf(index, report, keys, domain)
    return replaced(rows, index, leaf=leaf, **({"inputs": inputs} if inputs else {}))


def one_digit_changed(number: int) -> int:
    text = str(number)
    return int(text[:-1] + str((int(text[-1]) + 1) % 10))


# ------------------------------------------------------------------ the honest log


def test_reference_log_verifies(reference: AttestationLog, rows: list[Row]) -> None:
    summary = verify_log(reference)
    assert summary.model_dump() == {
        "entries": N_ENTRIES,
        "reports": N_REPORTS,
        "signer_sets": 1,
        "signatures": 3 * N_REPORTS,
        "recomputed": N_REPORTS,
        "not_recomputed": 0,
        "root": "0x" + reference.checkpoint().root.hex(),
        "signer_set_entries": [(0, 1)],  # offline, taken on the log's word
        "format_versions": {2: N_ENTRIES},  # every entry written today: RFC 8785
        "chain_values": 0,
        "chain_checkpoints": 0,
        "chain_checked": False,
    }
    assert [r.kind for r in rows] == ["signer_set"] + ["price", "utilisation"] * 6
    signer_set = parse_leaf(rows[0].leaf)
    assert isinstance(signer_set, SignerSetEntry)
    assert signer_set.signers == f.signer_addresses() and signer_set.threshold == 3
    for index, row in enumerate(rows[1:], start=1):
        report = report_of(row)
        # each report commits to the log just before it, and to its stored inputs
        assert report.log_size == index
        assert report.log_root == "0x" + reference.checkpoint(index).root.hex()
        assert row.inputs is not None
        assert report.inputs_hash == "0x" + hashlib.sha256(row.inputs).hexdigest()
    # the day-0 price is the median of the real listings of 2026-02-26
    day0 = methodology.compute("price", rows[1].inputs or b"")
    assert day0 is not None and report_of(rows[1]).value == day0.value == 160_083_350


def test_a_faithful_copy_verifies(rows: list[Row], serve) -> None:
    copy = serve(rows)
    assert verify_log(copy).root == "0x" + merkle.root_from_leaf_hashes(
        [merkle.leaf_hash(r.leaf) for r in rows]
    ).hex()


# --------------------------------------------------------- editing the file in place


def test_raw_sqlite_edit_is_caught_when_opening(rows: list[Row], tmp_path: Path) -> None:
    path = tmp_path / "edited.sqlite3"
    f.write_log(path, rows).close()
    value = report_of(rows[5]).value
    edited = f.replace_byte(rows[5].leaf, f'"value":{value}'.encode(),
                            f'"value":{one_digit_changed(value)}'.encode())
    conn = f.raw_connection(path)
    try:
        (trigger,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'entries_no_update'"
        ).fetchone()
        conn.execute("DROP TRIGGER entries_no_update")
        conn.execute("UPDATE entries SET leaf = ? WHERE idx = 5", (edited,))
        conn.execute(trigger)  # put the trigger back: only the leaf differs
    finally:
        conn.close()
    with pytest.raises(LogCorrupted) as exc:
        AttestationLog(path, create=False)
    assert exc.value.index == 5
    assert "entry 5 is corrupted (its stored leaf hash is not the hash of its leaf)" in str(
        exc.value
    )


def test_raw_sqlite_delete_is_caught_when_opening(rows: list[Row], tmp_path: Path) -> None:
    path = tmp_path / "edited.sqlite3"
    f.write_log(path, rows).close()
    conn = f.raw_connection(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM entries WHERE idx = 6")
        conn.execute("DROP TRIGGER entries_no_delete")
        conn.execute("DELETE FROM entries WHERE idx = 6")
    finally:
        conn.close()
    with pytest.raises(LogCorrupted) as exc:
        AttestationLog(path, create=False)
    assert exc.value.index == 6 and "entry 6 is missing" in str(exc.value)


# ------------------------------------------------------------- one byte changed


@pytest.mark.parametrize(("index", "field"), [(5, "value"), (8, "utilisationBps"),
                                              (11, "logSize"), (2, "rentalRevenue")])
def test_changed_report_field_breaks_its_signatures(rows: list[Row], serve, index: int,
                                                     field: str) -> None:
    number = json.loads(rows[index].leaf)["report"][field]
    leaf = f.replace_byte(rows[index].leaf, f'"{field}":{number}'.encode(),
                          f'"{field}":{one_digit_changed(number)}'.encode())
    d = discrepancy(serve(replaced(rows, index, leaf=leaf)))
    assert d.where == f"entry {index}"
    # the signatures were over another report: the first one recovers a stranger
    assert d.what.startswith("signature check failed: signature 0 recovers 0x")
    assert d.what.endswith(", which is not in the signer set of config version 1")
    stranger = d.what.split(" recovers ")[1].split(",")[0]
    assert stranger not in f.signer_addresses()


def test_changed_signature_byte(rows: list[Row], serve) -> None:
    data = json.loads(rows[7].leaf)
    sig = data["signatures"][1]
    last_s_digit = 2 + 64 + 63  # "0x" + r + s: the lowest hex digit of s
    data["signatures"][1] = (
        sig[:last_s_digit] + format(int(sig[last_s_digit], 16) ^ 1, "x") + sig[last_s_digit + 1:]
    )
    d = discrepancy(serve(replaced(rows, 7, leaf=f.to_leaf(data))))
    assert d.where == "entry 7"
    # signature 0 still recovers its signer; signature 1 now recovers someone else
    assert d.what.startswith("signature check failed: signature 1 recovers 0x")
    assert d.what.endswith("which is not in the signer set of config version 1")
    assert data["signers"][1] not in d.what


def test_signature_with_an_invalid_r(rows: list[Row], serve) -> None:
    data = json.loads(rows[7].leaf)
    data["signatures"][1] = "0x" + "00" * 32 + data["signatures"][1][66:]
    d = discrepancy(serve(replaced(rows, 7, leaf=f.to_leaf(data))))
    assert d.where == "entry 7"
    assert d.what.startswith("signature check failed: ")


def test_malleable_twin_of_a_signature(rows: list[Row], serve) -> None:
    # (r, N - s) with the other parity is the same key's signature, which the hub refuses
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    data = json.loads(rows[7].leaf)
    raw = bytes.fromhex(data["signatures"][2][2:])
    s = int.from_bytes(raw[32:64], "big")
    data["signatures"][2] = "0x" + (raw[:32] + (n - s).to_bytes(32, "big")
                                    + bytes([55 - raw[64]])).hex()
    d = discrepancy(serve(replaced(rows, 7, leaf=f.to_leaf(data))))
    assert d.where == "entry 7"
    assert d.what.startswith("signature check failed: ") and "malleable" in d.what


def test_signature_in_another_spelling(rows: list[Row], serve) -> None:
    data = json.loads(rows[7].leaf)
    data["signatures"][0] = "0x" + data["signatures"][0][2:].upper()  # same bytes
    d = discrepancy(serve(replaced(rows, 7, leaf=f.to_leaf(data))))
    assert d.where == "entry 7"
    assert d.what == ("not a valid entry: the leaf is not in canonical form (re-encoding it "
                      "differs)")


def test_envelope_names_another_signer(rows: list[Row], serve) -> None:
    data = json.loads(rows[7].leaf)
    signed_by = list(data["signers"])
    idle = next(a for a in f.signer_addresses() if a not in signed_by)
    data["signers"] = sorted([*signed_by[:2], idle], key=lambda a: int(a, 16))
    d = discrepancy(serve(replaced(rows, 7, leaf=f.to_leaf(data))))
    assert d.where == "entry 7"
    assert d.what == (f"signature check failed: the envelope names signers {data['signers']} "
                      f"but the signatures recover {signed_by}")


def test_changed_stored_inputs(rows: list[Row], serve) -> None:
    inputs = rows[4].inputs
    assert inputs is not None
    tampered = f.replace_byte(inputs, b'"87.5"', b'"97.5"')
    d = discrepancy(serve(replaced(rows, 4, inputs=tampered)))
    assert d.where == "entry 4"
    assert d.what == (
        f"its stored inputs hash to 0x{hashlib.sha256(tampered).hexdigest()}, the signed "
        f"report says {report_of(rows[4]).inputs_hash}"
    )


def test_missing_stored_inputs(rows: list[Row], serve) -> None:
    doctored = list(rows)
    doctored[9] = Row(rows[9].leaf, rows[9].kind, None)
    d = discrepancy(serve(doctored))
    assert (d.where, d.what) == ("entry 9", "its raw inputs are not stored in the log")


def test_changed_signer_set_breaks_the_next_commitment(rows: list[Row], serve) -> None:
    # the signer set entry carries no signature of its own: lowering the threshold passes
    # at entry 0, and shows at entry 1, whose signed report committed to the log before it
    leaf = f.replace_byte(rows[0].leaf, b'"threshold":3', b'"threshold":2')
    doctored = serve(replaced(rows, 0, leaf=leaf))
    d = discrepancy(doctored)
    assert d.where == "entry 1"
    assert d.what == (
        f"its signed report commits to log root {report_of(rows[1]).log_root} at size 1, but "
        f"the log's first 1 entries hash to 0x{doctored.checkpoint(1).root.hex()}: {CHANGED}"
    )


# ------------------------------------------------------- dropped / moved entries


def test_dropped_entry(rows: list[Row], serve) -> None:
    d = discrepancy(serve(rows[:6] + rows[7:]))
    assert (d.where, d.what) == ("entry 6", f"it says it is entry 7: {MOVED}")


def test_dropped_entry_with_renumbered_indices(rows: list[Row], serve) -> None:
    # the index field is not signed, so renumbering keeps every signature valid; the next
    # report's signed commitment still names the log size it was made at
    d = discrepancy(serve(f.renumbered(rows[:6] + rows[7:])))
    assert (d.where, d.what) == (
        "entry 6", "its report commits to log size 7, beyond its own position 6"
    )


def test_dropped_signer_set(rows: list[Row], serve) -> None:
    d = discrepancy(serve(f.renumbered(rows[1:])))
    assert (d.where, d.what) == (
        "entry 0", "names config version 1, but no earlier entry records that signer set"
    )


def test_dropped_last_entry_is_not_visible_offline(rows: list[Row], serve) -> None:
    # Nothing signed comes after the last entry, so truncating the log is only caught
    # against a checkpoint published later (verify with a chain compares the hub's
    # checkpoints: see the integration test).
    summary = verify_log(serve(rows[:-1]))
    assert (summary.entries, summary.reports, summary.recomputed) == (N_ENTRIES - 1,
                                                                      N_REPORTS - 1,
                                                                      N_REPORTS - 1)


def test_inserted_replayed_entry(rows: list[Row], serve) -> None:
    d = discrepancy(serve(rows[:4] + [rows[3]] + rows[4:]))
    assert (d.where, d.what) == ("entry 4", f"it says it is entry 3: {MOVED}")


def test_reordered_entries(rows: list[Row], serve) -> None:
    doctored = list(rows)
    doctored[3], doctored[8] = rows[8], rows[3]
    d = discrepancy(serve(doctored))
    assert (d.where, d.what) == ("entry 3", f"it says it is entry 8: {MOVED}")


def test_reordered_entries_with_renumbered_indices(rows: list[Row], serve) -> None:
    doctored = list(rows)
    doctored[5], doctored[6] = rows[6], rows[5]
    d = discrepancy(serve(f.renumbered(doctored)))
    assert (d.where, d.what) == (
        "entry 5", "its report commits to log size 6, beyond its own position 5"
    )


# ------------------------------------------------------------------ forged reports


def test_forged_signature(rows: list[Row], serve) -> None:
    outsider = f.address(f.outsider_key())
    keys = [*f.signer_keys()[:2], f.outsider_key()]
    doctored = re_signed(rows, 9, keys=keys)
    envelope = json.loads(doctored[9].leaf)["signers"]
    assert outsider in envelope  # the envelope is consistent with the signatures
    d = discrepancy(serve(doctored))
    assert d.where == "entry 9"
    assert d.what == (
        f"signature check failed: signature {envelope.index(outsider)} recovers {outsider}, "
        "which is not in the signer set of config version 1"
    )


def test_too_few_signatures(rows: list[Row], serve) -> None:
    d = discrepancy(serve(re_signed(rows, 9, keys=f.signer_keys()[3:])))
    assert (d.where, d.what) == (
        "entry 9", "signature check failed: 2 signatures, the signer set needs 3"
    )


@pytest.mark.parametrize(
    ("index", "field", "delta"),
    [(5, "value", 1), (3, "confidence", -7), (10, "utilisation_bps", -1),
     (12, "rental_revenue", 10**6), (6, "gpu_count", 1)],
)
def test_value_does_not_match_its_inputs(rows: list[Row], serve, index: int, field: str,
                                         delta: int) -> None:
    # an operator with the keys signs a wrong value over the real inputs (same inputs hash,
    # same log commitment): only recomputation catches it
    honest = getattr(report_of(rows[index]), field)
    d = discrepancy(serve(re_signed(rows, index, **{field: honest + delta})))
    assert d.where == f"entry {index}"
    assert d.what == (f"recomputing {field} from its inputs gives {honest}, the signed "
                      f"report says {honest + delta}")


def test_report_names_an_unrecorded_config_version(rows: list[Row], serve) -> None:
    doctored = re_signed(rows, 12, config_version=2)
    # recording that signer set after the report does not help: it must come earlier
    later = SignerSetEntry(index=13, domain=f.DOMAIN, config_version=2,
                           signers=f.signer_addresses(), threshold=3)
    d = discrepancy(serve([*doctored, Row(later.leaf(), "signer_set", None)]))
    assert (d.where, d.what) == (
        "entry 12", "names config version 2, but no earlier entry records that signer set"
    )


def test_signer_set_recorded_twice(rows: list[Row], serve) -> None:
    again = SignerSetEntry(index=N_ENTRIES, domain=f.DOMAIN, config_version=1,
                           signers=f.signer_addresses(), threshold=3)
    d = discrepancy(serve([*rows, Row(again.leaf(), "signer_set", None)]))
    assert (d.where, d.what) == (f"entry {N_ENTRIES}", "config version 1 recorded twice")


def test_report_for_another_hub(rows: list[Row], serve) -> None:
    other = attest.Domain(chain_id=1, hub=f.SPV)
    d = discrepancy(serve(re_signed(rows, 12, domain=other)))
    assert (d.where, d.what) == (
        "entry 12",
        f"it is for hub {f.SPV} on chain 1, the log's first entry for {f.HUB} on 31337",
    )


def test_unknown_methodology_is_counted_not_recomputed(rows: list[Row], serve) -> None:
    snapshot = json.loads(rows[11].inputs or b"")
    snapshot["version"] = 99
    inputs = attest.canonical_json(snapshot)
    doctored = re_signed(rows, 11, inputs=inputs, inputs_hash=attest.inputs_hash(inputs),
                         methodology_version=99)
    # entry 12 committed to the log including the original entry 11: keep it out
    summary = verify_log(serve(doctored[:12]))
    assert (summary.reports, summary.recomputed, summary.not_recomputed) == (11, 10, 1)


def test_inputs_that_cannot_be_evaluated(rows: list[Row], serve) -> None:
    inputs = b'{"methodology":"offer-median","version":[1]}'
    doctored = re_signed(rows, 11, inputs=inputs, inputs_hash=attest.inputs_hash(inputs))
    d = discrepancy(serve(doctored[:12]))
    assert d.where == "entry 11"
    assert d.what.startswith("its inputs cannot be evaluated: ")


def test_malformed_inputs_are_named(rows: list[Row], serve) -> None:
    snapshot = json.loads(rows[11].inputs or b"")
    snapshot["offers"][0]["pricePerGpuHour"] = "-1"
    inputs = attest.canonical_json(snapshot)
    doctored = re_signed(rows, 11, inputs=inputs, inputs_hash=attest.inputs_hash(inputs))
    d = discrepancy(serve(doctored[:12]))
    assert (d.where, d.what) == (
        "entry 11", "its inputs cannot be evaluated: snapshot field offers.0.pricePerGpuHour: "
                    "Value error, price must be positive, got -1"
    )


# ------------------------------------------------------- rewriting history with the keys


def test_rewritten_history_is_caught_by_an_earlier_checkpoint(
    reference: AttestationLog, rows: list[Row], tmp_path: Path
) -> None:
    """An operator holding the signer keys changes the day-1 price (entry 3: one listing
    left out) and re-signs every later report against the rewritten log. The rewritten
    log is self-consistent, so offline verification of it alone passes. What gives it away
    is any checkpoint published before the rewrite: the original entry 4 signed
    (size 4, root R); the rewritten log's first 4 entries do not hash to R.

    `verify_log(log, chain)` makes exactly this comparison against the checkpoints the hub
    accepted on-chain (covered by the integration test); here the original log's own
    signed report stands in for the published checkpoint."""
    snapshots = f.reference_snapshots()
    kind, day1 = snapshots[2]
    assert kind == "price" and report_of(rows[3]).observed_at == day1["observedAt"]
    day1["offers"] = day1["offers"][1:]
    rewritten = f.build_log(tmp_path / "rewritten.sqlite3", snapshots)
    try:
        summary = verify_log(rewritten)  # self-consistent
        assert (summary.entries, summary.reports, summary.signatures, summary.recomputed) == (
            N_ENTRIES, N_REPORTS, 3 * N_REPORTS, N_REPORTS
        )
        assert summary.root != "0x" + reference.checkpoint().root.hex()
        new_rows = f.rows_of(rewritten)
        assert new_rows[:3] == rows[:3] and new_rows[3] != rows[3]

        # Compare every checkpoint the original log's reports signed with the rewritten log.
        unreproduced = []
        for index in range(1, N_ENTRIES):
            signed = report_of(rows[index])
            size, root = signed.log_size, signed.log_root
            if "0x" + rewritten.checkpoint(size).root.hex() != root:
                unreproduced.append(index)
        assert unreproduced == list(range(4, N_ENTRIES))  # from the first report after it

        # The same with an RFC 6962 consistency proof, as a monitor holding the original
        # (4, R) checkpoint would check the rewritten log's new head.
        original = report_of(rows[4])
        head = rewritten.checkpoint()
        proof = rewritten.consistency_proof(4, head.size)
        assert not merkle.verify_consistency(
            4, head.size, bytes.fromhex(original.log_root[2:]), head.root, proof
        )
        # ...whereas the honest log is consistent with it.
        assert merkle.verify_consistency(
            4, N_ENTRIES, bytes.fromhex(original.log_root[2:]), reference.checkpoint().root,
            reference.consistency_proof(4),
        )
    finally:
        rewritten.close()


def test_rewriting_one_report_breaks_the_next_commitment(rows: list[Row], serve) -> None:
    # The operator re-signs entry 3 over different inputs but keeps the later reports as
    # they were: their signatures still commit to the old history, caught at the first one.
    snapshot = json.loads(rows[3].inputs or b"")
    snapshot["offers"] = snapshot["offers"][1:]
    inputs = attest.canonical_json(snapshot)
    fields = methodology.compute("price", inputs)
    assert fields is not None
    doctored = re_signed(rows, 3, keys=f.signer_keys()[:3], inputs=inputs,
                         inputs_hash=attest.inputs_hash(inputs), value=fields.value,
                         confidence=fields.confidence)
    served = serve(doctored)
    d = discrepancy(served)
    assert d.where == "entry 4"
    assert d.what == (
        f"its signed report commits to log root {report_of(rows[4]).log_root} at size 4, but "
        f"the log's first 4 entries hash to 0x{served.checkpoint(4).root.hex()}: {CHANGED}"
    )


# ------------------------------------------------ chain check against a stub (no node)


class _StubChain:
    """The three things verify reads from a ChainView, answered from memory: a hub that
    installed only the reference signer set and has accepted nothing yet."""

    domain = f.DOMAIN

    def events(self, name: str) -> list[dict[str, Any]]:
        if name == "SignerSetChanged":
            return [{"args": {"config_version": 1, "signers": f.signer_addresses(),
                              "threshold": 3}}]
        return []

    def checkpoint(self) -> tuple[int, bytes]:
        return 0, b"\0" * 32


def test_stub_chain_accepts_the_reference_log(reference: AttestationLog) -> None:
    summary = verify_log(reference, _StubChain())  # type: ignore[arg-type]
    assert summary.chain_checked and summary.chain_values == 0


def test_log_signer_set_unknown_to_the_hub(rows: list[Row], serve) -> None:
    fake_keys = [f.outsider_key(), *f.signer_keys()[3:]]
    fake_set = SignerSetEntry(
        index=N_ENTRIES, domain=f.DOMAIN, config_version=2, threshold=3,
        signers=sorted((f.address(k) for k in fake_keys), key=lambda a: int(a, 16)),
    )
    log = serve([*rows, Row(fake_set.leaf(), "signer_set", None)])
    kind, snapshot = f.reference_snapshots()[0]
    reports.attest_snapshot(log, kind, snapshot, domain=f.DOMAIN, config_version=2,
                            keys=fake_keys)
    assert verify_log(log).reports == N_REPORTS + 1  # offline: trust on first use
    # against the hub: a signer set it never installed
    with pytest.raises(Discrepancy) as exc:
        verify_log(log, _StubChain())  # type: ignore[arg-type]
    assert (exc.value.where, exc.value.what) == (
        f"entry {N_ENTRIES}", "records signer set config version 2, which the hub never installed"
    )
