"""oracle.log: the append-only SQLite attestation log."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from itertools import count
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.log import (
    SCHEMA_VERSION,
    AppendResult,
    AttestationLog,
    AttestationLogError,
    Checkpoint,
    EntryNotFound,
    LogClosed,
    LogConflict,
    LogCorrupted,
    LogEntry,
    MetaConflict,
    PublicationConflict,
)
from oracle.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)


def fake_clock(start: int = 1_700_000_000):
    ticks = count(start)
    return lambda: next(ticks)


def leaf(i: int) -> bytes:
    return b"attestation-%d" % i


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "attestations.sqlite3"


@pytest.fixture
def log(db: Path):
    with AttestationLog(db, clock=fake_clock()) as lg:
        yield lg


def fill(lg: AttestationLog, n: int, start: int = 0) -> list[AppendResult]:
    kinds = ("price", "utilisation", "signer_set")
    return [
        lg.append(
            leaf(i),
            kind=kinds[i % 3],
            inputs=(b"inputs-%d" % i) * 50 if i % 2 == 0 else None,
            inputs_location=None if i % 2 == 0 else f"s3://snapshots/{i}.json",
        )
        for i in range(start, start + n)
    ]


def raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


def tamper(db: Path, *statements: str) -> None:
    """Run SQL against the file behind the log's back (dropping triggers as needed)."""
    conn = raw(db)
    try:
        for s in statements:
            conn.execute(s)
    finally:
        conn.close()


# --------------------------------------------------------------------------- basics


def test_new_log_is_empty(log: AttestationLog, db: Path) -> None:
    assert db.exists()
    assert log.size == 0
    assert log.checkpoint() == Checkpoint(size=0, root=EMPTY_ROOT)
    assert log.checkpoint(0).root == EMPTY_ROOT
    assert log.leaf_hashes() == []
    assert list(log.entries()) == []
    assert log.unpublished() == []
    assert log.publications() == []
    assert log.get_meta("schema_version") == str(SCHEMA_VERSION)
    assert log.verify_integrity() == Checkpoint(size=0, root=EMPTY_ROOT)


def test_append_and_read_back(log: AttestationLog) -> None:
    r0 = log.append(b"first", kind="price", inputs=b'{"quotes":[1,2,3]}')
    r1 = log.append(b"second", kind="signer_set", inputs_location="file:///snap/1.json")
    assert r0 == AppendResult(
        index=0, checkpoint=Checkpoint(size=1, root=root_from_leaf_hashes([leaf_hash(b"first")]))
    )
    assert r1.index == 1
    assert r1.checkpoint.root == root_from_leaf_hashes([leaf_hash(b"first"), leaf_hash(b"second")])
    e0, e1 = log.entry(0), log.entry(1)
    assert e0 == LogEntry(
        index=0,
        kind="price",
        leaf=b"first",
        leaf_hash=leaf_hash(b"first"),
        inputs=b'{"quotes":[1,2,3]}',
        inputs_location=None,
        appended_at=e0.appended_at,
    )
    assert e0.appended_at < e1.appended_at  # the fake clock ticks
    assert (e1.kind, e1.leaf, e1.inputs, e1.inputs_location) == (
        "signer_set",
        b"second",
        None,
        "file:///snap/1.json",
    )
    assert list(log.entries()) == [e0, e1]
    assert log.leaf_hashes() == [leaf_hash(b"first"), leaf_hash(b"second")]
    # Entries are frozen value objects.
    with pytest.raises(ValueError):
        e0.leaf = b"other"  # type: ignore[misc]


def test_roots_and_proofs_for_every_size(log: AttestationLog) -> None:
    results = fill(log, 37)
    hashes = [leaf_hash(leaf(i)) for i in range(37)]
    assert log.leaf_hashes() == hashes
    roots = [root_from_leaf_hashes(hashes[:n]) for n in range(38)]
    for n in range(38):
        assert log.checkpoint(n) == Checkpoint(size=n, root=roots[n])
    for r in results:
        assert r.checkpoint == log.checkpoint(r.index + 1)
    assert log.checkpoint() == Checkpoint(size=37, root=roots[37])
    for n in (1, 2, 5, 16, 17, 37):
        for i in range(n):
            proof = log.inclusion_proof(i, n)
            assert verify_inclusion(hashes[i], i, n, proof, roots[n])
        for m in range(n + 1):
            proof = log.consistency_proof(m, n)
            assert verify_consistency(m, n, roots[m], roots[n], proof)
    # Defaults: the whole log.
    assert verify_inclusion(hashes[3], 3, 37, log.inclusion_proof(3), roots[37])
    assert verify_consistency(10, 37, roots[10], roots[37], log.consistency_proof(10))


def test_reopen_gives_same_state(db: Path) -> None:
    with AttestationLog(db) as lg:
        fill(lg, 20)
        lg.record_pending(3, tx_hash="0x03", raw_tx=b"\x02raw", nonce=7, sender="0xabc")
        lg.set_meta("chain_id", "31337")
        before = (lg.checkpoint(), list(lg.entries()), lg.publications())
    with AttestationLog(db, create=False) as lg:
        assert (lg.checkpoint(), list(lg.entries()), lg.publications()) == before
        assert lg.get_meta("chain_id") == "31337"
        assert lg.append(leaf(20), kind="price").index == 20
        assert lg.checkpoint().root == root_from_leaf_hashes(
            [leaf_hash(leaf(i)) for i in range(21)]
        )


def test_create_false_refuses_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.sqlite3"
    with pytest.raises(FileNotFoundError, match="does not exist.*create=True"):
        AttestationLog(path, create=False)
    assert not path.exists()


def test_pragmas(log: AttestationLog, db: Path) -> None:
    conn = raw(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert log._conn is not None
    assert log._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert log._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_closed_log(db: Path) -> None:
    lg = AttestationLog(db)
    lg.append(b"x", kind="price")
    lg.close()
    lg.close()  # idempotent
    with pytest.raises(LogClosed, match="closed"):
        lg.append(b"y", kind="price")
    with pytest.raises(LogClosed):
        _ = lg.size
    with AttestationLog(db) as lg2:
        assert lg2.size == 1
    assert lg2._conn is None


# --------------------------------------------------------------------------- append-only


def test_triggers_refuse_update_and_delete(log: AttestationLog, db: Path) -> None:
    fill(log, 3)
    conn = raw(db)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE entries SET leaf = x'00' WHERE idx = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE entries SET kind = 'price'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM entries WHERE idx = 2")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM entries")
        # Inserting out of order (a gap, or a rewrite of history) is refused too.
        for idx in (5, 1):
            with pytest.raises(sqlite3.DatabaseError, match=r"max\(idx\) \+ 1"):
                conn.execute(
                    "INSERT INTO entries (idx, kind, leaf, leaf_hash, appended_at) "
                    "VALUES (?, 'price', x'01', ?, 0)",
                    (idx, leaf_hash(b"\x01")),
                )
        with pytest.raises(sqlite3.DatabaseError, match="write-once"):
            conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        with pytest.raises(sqlite3.DatabaseError, match="write-once"):
            conn.execute("DELETE FROM meta")
        log.record_outcome(0, status="refused", tx_hash=None, block_number=None)
        with pytest.raises(sqlite3.DatabaseError, match="cannot be deleted"):
            conn.execute("DELETE FROM publications")
    finally:
        conn.close()
    assert log.verify_integrity().size == 3
    assert [e.leaf for e in log.entries()] == [leaf(i) for i in range(3)]


def test_expect_size_conflict_writes_nothing(log: AttestationLog, db: Path) -> None:
    fill(log, 4)
    before = log.checkpoint()
    for wrong in (0, 3, 5, 100):
        with pytest.raises(LogConflict, match="another writer appended first") as info:
            log.append(b"late", kind="price", expect_size=wrong)
        assert (info.value.expected, info.value.actual) == (wrong, 4)
    assert log.checkpoint() == before
    conn = raw(db)
    assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 4
    conn.close()
    assert log.find_leaf(b"late") is None
    assert log.append(b"on time", kind="price", expect_size=4).index == 4


def test_expect_size_between_two_writers(db: Path) -> None:
    with AttestationLog(db) as a, AttestationLog(db) as b:
        size = a.size
        assert b.size == size
        a.append(b"a wins", kind="price", expect_size=size)
        with pytest.raises(LogConflict):
            b.append(b"b loses", kind="price", expect_size=size)
        # b rebuilds against the current checkpoint and retries.
        r = b.append(b"b retries", kind="price", expect_size=b.size)
        assert r.index == 1
        assert a.checkpoint() == b.checkpoint() == r.checkpoint


def test_find_leaf(log: AttestationLog) -> None:
    log.append(b"alpha", kind="price")
    log.append(b"beta", kind="price")
    log.append(b"alpha", kind="utilisation")  # the log does not forbid repeats
    assert log.find_leaf(b"alpha") == 0
    assert log.find_leaf(b"beta") == 1
    assert log.find_leaf(b"gamma") is None
    assert log.find_leaf(bytearray(b"beta")) == 1
    with pytest.raises(TypeError, match="bytes"):
        log.find_leaf("alpha")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- validation


def test_input_validation(log: AttestationLog) -> None:
    with pytest.raises(ValueError, match="leaf is empty"):
        log.append(b"", kind="price")
    with pytest.raises(TypeError, match="encode it"):
        log.append("text", kind="price")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="leaf must be bytes"):
        log.append(123, kind="price")  # type: ignore[arg-type]
    for bad_kind in ("", "x" * 65, "has space", "naïve", "a\nb"):
        with pytest.raises(ValueError, match="kind"):
            log.append(b"x", kind=bad_kind)
    with pytest.raises(TypeError, match="kind must be a str"):
        log.append(b"x", kind=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="inputs is empty"):
        log.append(b"x", kind="price", inputs=b"")
    with pytest.raises(TypeError, match="inputs must be bytes"):
        log.append(b"x", kind="price", inputs="{}")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="inputs_location is empty"):
        log.append(b"x", kind="price", inputs_location="")
    with pytest.raises(ValueError, match=">= 0"):
        log.append(b"x", kind="price", expect_size=-1)
    with pytest.raises(TypeError, match="expect_size must be an int"):
        log.append(b"x", kind="price", expect_size=True)
    assert log.size == 0  # nothing written by any of the above
    assert log.append(b"x", kind="a" * 64).index == 0
    assert log.append(bytearray(b"y"), kind="price", inputs=memoryview(b"in")).index == 1
    assert log.entry(1).leaf == b"y" and log.entry(1).inputs == b"in"


def test_reading_out_of_range(log: AttestationLog) -> None:
    with pytest.raises(EntryNotFound, match="the log is empty"):
        log.entry(0)
    fill(log, 5)
    with pytest.raises(EntryNotFound, match=r"has 5 entries \(indices 0..4\)"):
        log.entry(5)
    with pytest.raises(IndexError):  # EntryNotFound is also an IndexError
        log.entry(99)
    with pytest.raises(ValueError, match=">= 0"):
        log.entry(-1)
    with pytest.raises(ValueError, match="beyond the end of the log"):
        log.checkpoint(6)
    with pytest.raises(TypeError, match="checkpoint size must be an int"):
        log.checkpoint(True)
    with pytest.raises(ValueError, match="beyond the end of the log"):
        log.leaf_hashes(6)
    with pytest.raises(ValueError, match="beyond the end of the log"):
        log.inclusion_proof(0, 6)
    with pytest.raises(EntryNotFound, match="not in the tree of size 3"):
        log.inclusion_proof(3, 3)
    with pytest.raises(ValueError, match="larger than new size"):
        log.consistency_proof(4, 3)
    with pytest.raises(ValueError, match="beyond the end of the log"):
        log.consistency_proof(4, 6)
    with pytest.raises(ValueError, match="beyond the end of the log"):
        log.entries(0, 6)
    with pytest.raises(ValueError, match="after stop"):
        log.entries(4, 3)
    assert [e.index for e in log.entries(2, 4)] == [2, 3]
    assert [e.index for e in log.entries(3)] == [3, 4]
    assert list(log.entries(5)) == []


def test_entries_iterates_in_batches_while_appending(log: AttestationLog) -> None:
    fill(log, 1100)  # more than one read batch
    seen = []
    for e in log.entries():
        seen.append(e.index)
        if e.index == 10:
            log.append(b"during iteration", kind="price")
    assert seen == list(range(1100))  # stop was fixed when iteration started
    assert log.size == 1101


# --------------------------------------------------------------------------- corruption


def test_open_refuses_modified_leaf(db: Path) -> None:
    with AttestationLog(db) as lg:
        fill(lg, 10)
    tamper(
        db,
        "DROP TRIGGER entries_no_update",
        "UPDATE entries SET leaf = CAST(x'41' || substr(leaf, 2) AS BLOB) WHERE idx = 6",
    )
    with pytest.raises(LogCorrupted, match="entry 6 is corrupted") as info:
        AttestationLog(db, create=False)
    assert info.value.index == 6


def test_open_refuses_modified_leaf_hash(db: Path) -> None:
    with AttestationLog(db) as lg:
        fill(lg, 4)
    tamper(
        db,
        "DROP TRIGGER entries_no_update",
        f"UPDATE entries SET leaf_hash = x'{leaf_hash(b'forged').hex()}' WHERE idx = 0",
    )
    with pytest.raises(LogCorrupted) as info:
        AttestationLog(db)
    assert info.value.index == 0


def test_open_detects_gap(db: Path) -> None:
    with AttestationLog(db) as lg:
        fill(lg, 8)
        lg.record_pending(2, tx_hash="0x2", raw_tx=b"r", nonce=0, sender="0xs")
    tamper(db, "DROP TRIGGER entries_no_delete", "DELETE FROM entries WHERE idx = 3")
    with pytest.raises(LogCorrupted, match="entry 3 is missing") as info:
        AttestationLog(db)
    assert info.value.index == 3


def test_open_detects_missing_first_and_last_rows(db: Path) -> None:
    with AttestationLog(db) as lg:
        fill(lg, 3)
    tamper(db, "DROP TRIGGER entries_no_delete", "DELETE FROM entries WHERE idx = 0")
    with pytest.raises(LogCorrupted) as info:
        AttestationLog(db)
    assert info.value.index == 0


def test_verify_integrity_on_open_log(log: AttestationLog, db: Path) -> None:
    fill(log, 5)
    assert log.verify_integrity() == log.checkpoint()
    tamper(
        db,
        "DROP TRIGGER entries_no_update",
        "UPDATE entries SET leaf = x'00' WHERE idx = 2",
    )
    with pytest.raises(LogCorrupted) as info:
        log.verify_integrity()
    assert info.value.index == 2
    # Reading the tampered entry also checks its hash.
    with pytest.raises(LogCorrupted, match="entry 2"):
        log.entry(2)
    with pytest.raises(LogCorrupted, match="entry 2"):
        list(log.entries())


def test_open_refuses_missing_triggers(db: Path) -> None:
    with AttestationLog(db) as lg:
        fill(lg, 2)
    tamper(db, "DROP TRIGGER entries_no_delete")
    with pytest.raises(LogCorrupted, match="append-only triggers.*entries_no_delete"):
        AttestationLog(db)


def test_open_refuses_unknown_schema_version(db: Path) -> None:
    AttestationLog(db).close()
    tamper(
        db,
        "DROP TRIGGER meta_write_once",
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
    )
    with pytest.raises(LogCorrupted, match="schema version '99'"):
        AttestationLog(db)


def test_open_refuses_foreign_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LogCorrupted, match="not a readable SQLite database"):
        AttestationLog(garbage)
    other = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE stuff (x)")
    conn.commit()
    conn.close()
    with pytest.raises(LogCorrupted, match="not an attestation log"):
        AttestationLog(other)
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    with pytest.raises(AttestationLogError, match="empty database"):
        AttestationLog(empty, create=False)
    with AttestationLog(empty) as lg:  # create=True initialises an empty file
        assert lg.size == 0
    with pytest.raises(IsADirectoryError):
        AttestationLog(tmp_path)


# --------------------------------------------------------------------------- concurrency


def test_concurrent_reader_sees_writer_appends(db: Path) -> None:
    with AttestationLog(db) as writer, AttestationLog(db, create=False) as reader:
        assert reader.size == 0
        results = fill(writer, 5)
        assert reader.size == 5
        assert reader.checkpoint() == results[-1].checkpoint
        assert reader.entry(4).leaf == leaf(4)
        more = fill(writer, 3, start=5)
        # Every read path refreshes first.
        assert reader.checkpoint() == more[-1].checkpoint
        assert reader.checkpoint(6) == writer.checkpoint(6)
        root = more[-1].checkpoint.root
        assert verify_inclusion(leaf_hash(leaf(7)), 7, 8, reader.inclusion_proof(7), root)
        assert verify_consistency(
            5, 8, results[-1].checkpoint.root, root, reader.consistency_proof(5)
        )
        assert [e.index for e in reader.entries()] == list(range(8))
        # And the reader can append in turn; the writer sees it.
        r = reader.append(b"from the reader", kind="price")
        assert r.index == 8
        assert writer.checkpoint() == r.checkpoint
        assert writer.find_leaf(b"from the reader") == 8


def test_threads_and_connections_append_without_gaps(db: Path) -> None:
    logs = [AttestationLog(db), AttestationLog(db)]
    per_thread = 40
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            lg = logs[t % 2]  # two threads share each connection
            for i in range(per_thread):
                lg.append(b"t%d-%d" % (t, i), kind="price")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    try:
        for lg in logs:
            assert lg.size == 4 * per_thread
        assert logs[0].checkpoint() == logs[1].checkpoint() == logs[0].verify_integrity()
        leaves = [e.leaf for e in logs[0].entries()]
        assert sorted(leaves) == sorted(
            b"t%d-%d" % (t, i) for t in range(4) for i in range(per_thread)
        )
        # Each thread's own entries are in its order.
        for t in range(4):
            mine = [x for x in leaves if x.startswith(b"t%d-" % t)]
            assert mine == [b"t%d-%d" % (t, i) for i in range(per_thread)]
    finally:
        for lg in logs:
            lg.close()


# --------------------------------------------------------------------------- publications


def test_publication_lifecycle(log: AttestationLog) -> None:
    fill(log, 6)  # kinds: price, utilisation, signer_set, price, utilisation, signer_set
    assert log.unpublished() == [0, 1, 2, 3, 4, 5]
    assert log.unpublished(kind="price") == [0, 3]
    assert log.publication(0) is None

    log.record_pending(0, tx_hash="0xaa", raw_tx=b"\x02signed", nonce=5, sender="0xS")
    p = log.publication(0)
    assert p is not None
    assert (p.status, p.tx_hash, p.raw_tx, p.nonce, p.sender, p.block_number) == (
        "pending",
        "0xaa",
        b"\x02signed",
        5,
        "0xS",
        None,
    )
    assert log.unpublished() == [1, 2, 3, 4, 5]  # pending is not "unpublished"

    # Fee bump: same sender and nonce, new transaction.
    log.record_pending(0, tx_hash="0xbb", raw_tx=b"\x02bumped", nonce=5, sender="0xS")
    assert log.publication(0).tx_hash == "0xbb"  # type: ignore[union-attr]
    # A different nonce could get both mined: refused.
    with pytest.raises(PublicationConflict, match="already pending"):
        log.record_pending(0, tx_hash="0xcc", raw_tx=b"\x02other", nonce=6, sender="0xS")

    log.record_outcome(0, status="published", tx_hash="0xaa", block_number=101)
    p = log.publication(0)
    assert p is not None
    assert (p.status, p.tx_hash, p.block_number, p.nonce, p.raw_tx) == (
        "published",
        "0xaa",  # the original transaction was the one mined
        101,
        5,
        b"\x02bumped",
    )
    # Final: the same outcome again is a no-op, anything else is refused.
    log.record_outcome(0, status="published", tx_hash="0xaa", block_number=101)
    with pytest.raises(PublicationConflict, match="already published"):
        log.record_outcome(0, status="failed", tx_hash=None, block_number=None)
    with pytest.raises(PublicationConflict, match="must not be published again"):
        log.record_pending(0, tx_hash="0xdd", raw_tx=b"\x02again", nonce=9, sender="0xS")

    # A failed attempt goes back to the unpublished list and may be retried.
    log.record_pending(1, tx_hash="0x11", raw_tx=b"\x02one", nonce=6, sender="0xS")
    log.record_outcome(1, status="failed", tx_hash=None, block_number=None, detail="dropped")
    assert log.publication(1).detail == "dropped"  # type: ignore[union-attr]
    assert log.publication(1).tx_hash == "0x11"  # type: ignore[union-attr]
    assert log.unpublished() == [1, 2, 3, 4, 5]
    log.record_pending(1, tx_hash="0x12", raw_tx=b"\x02one again", nonce=7, sender="0xS")
    log.record_outcome(1, status="published", tx_hash="0x12", block_number=102)

    # Refused without ever being sent (pre-flight simulation), and refused is final.
    log.record_outcome(2, status="refused", tx_hash=None, block_number=None, detail="stale")
    with pytest.raises(PublicationConflict, match="already refused"):
        log.record_pending(2, tx_hash="0x22", raw_tx=b"\x02", nonce=8, sender="0xS")

    assert log.unpublished() == [3, 4, 5]
    assert log.unpublished(kind="signer_set") == [5]
    assert [(p.index, p.status) for p in log.publications()] == [
        (0, "published"),
        (1, "published"),
        (2, "refused"),
    ]


def test_publication_survives_restart(db: Path) -> None:
    with AttestationLog(db) as lg:
        fill(lg, 2)
        lg.record_pending(1, tx_hash="0x1", raw_tx=b"\x02", nonce=0, sender="0xS")
    with AttestationLog(db) as lg:
        assert lg.unpublished() == [0]
        p = lg.publication(1)
        assert p is not None and p.status == "pending"
        with pytest.raises(PublicationConflict):
            lg.record_pending(1, tx_hash="0x2", raw_tx=b"\x02", nonce=1, sender="0xS")


def test_publication_validation(log: AttestationLog) -> None:
    fill(log, 1)
    with pytest.raises(EntryNotFound, match="append the entry before"):
        log.record_pending(1, tx_hash="0x1", raw_tx=b"\x02", nonce=0, sender="0xS")
    with pytest.raises(EntryNotFound):
        log.record_outcome(7, status="failed", tx_hash=None, block_number=None)
    with pytest.raises(ValueError, match="tx_hash and block_number"):
        log.record_outcome(0, status="published", tx_hash="0x1", block_number=None)
    with pytest.raises(ValueError, match="record_pending"):
        log.record_outcome(0, status="pending", tx_hash=None, block_number=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="raw_tx is empty"):
        log.record_pending(0, tx_hash="0x1", raw_tx=b"", nonce=0, sender="0xS")
    with pytest.raises(ValueError, match="nonce must be >= 0"):
        log.record_pending(0, tx_hash="0x1", raw_tx=b"\x02", nonce=-1, sender="0xS")
    with pytest.raises(ValueError, match="tx_hash is empty"):
        log.record_pending(0, tx_hash="", raw_tx=b"\x02", nonce=0, sender="0xS")
    with pytest.raises(TypeError, match="sender must be a str"):
        log.record_pending(0, tx_hash="0x1", raw_tx=b"\x02", nonce=0, sender=None)  # type: ignore[arg-type]
    assert log.publications() == []


# --------------------------------------------------------------------------- meta


def test_meta_is_write_once(log: AttestationLog, db: Path) -> None:
    assert log.get_meta("chain_id") is None
    log.set_meta("chain_id", "31337")
    log.set_meta("hub", "0x" + "ab" * 20)
    log.set_meta("chain_id", "31337")  # same value: fine
    with pytest.raises(MetaConflict, match="already '31337'.*use another log file"):
        log.set_meta("chain_id", "1")
    with pytest.raises(MetaConflict):
        log.set_meta("schema_version", "2")
    assert log.get_meta("chain_id") == "31337"
    assert log.get_meta("tree") == "rfc6962-sha256"
    with pytest.raises(TypeError, match="meta value must be a str"):
        log.set_meta("n", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="meta key is empty"):
        log.set_meta("", "x")
    with AttestationLog(db) as again:
        assert again.get_meta("hub") == "0x" + "ab" * 20


# --------------------------------------------------------------------------- models


def test_models_round_trip_json(log: AttestationLog) -> None:
    r = log.append(b"\x00\xffbinary", kind="price", inputs=b"\x01\x02")
    assert AppendResult.model_validate_json(r.model_dump_json()) == r
    e = log.entry(0)
    assert LogEntry.model_validate_json(e.model_dump_json()) == e
    assert r.checkpoint.model_dump(mode="json")["root"] == r.checkpoint.root.hex()
    with pytest.raises(ValueError):
        Checkpoint(size=1, root=b"short")
    with pytest.raises(ValueError):
        Checkpoint(size=-1, root=EMPTY_ROOT)


# --------------------------------------------------------------------------- property


@given(st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=40), st.data())
def test_log_agrees_with_merkle_module(leaves: list[bytes], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "log.sqlite3"
        with AttestationLog(path) as lg:
            results = [lg.append(x, kind="price") for x in leaves]
            hashes = [leaf_hash(x) for x in leaves]
            n = len(leaves)
            for r in results:
                assert r.checkpoint.root == root_from_leaf_hashes(hashes[: r.index + 1])
            i = data.draw(st.integers(0, n - 1), label="index")
            size = data.draw(st.integers(i + 1, n), label="size")
            old = data.draw(st.integers(0, size), label="old")
            root = lg.checkpoint(size).root
            assert verify_inclusion(hashes[i], i, size, lg.inclusion_proof(i, size), root)
            assert verify_consistency(
                old, size, lg.checkpoint(old).root, root, lg.consistency_proof(old, size)
            )
            assert lg.find_leaf(leaves[i]) == leaves.index(leaves[i])
        with AttestationLog(path, create=False) as lg:
            assert lg.checkpoint() == results[-1].checkpoint
