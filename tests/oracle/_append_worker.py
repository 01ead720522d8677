"""Child process of test_log_crash.py: append deterministic entries until killed.

Usage: ``python _append_worker.py LOG_PATH``. Prints ``READY <size>`` once the log is
open, then appends entry ``i = size, size + 1, ...`` with the content given by the
``expected_*`` functions below and prints ``ACK <index> <root hex>`` (flushed) after
each ``append`` has returned, i.e. after the entry is committed. It stops by itself
after a while so that a crashed parent cannot leave it running.
"""

from __future__ import annotations

import hashlib
import sys
import time

KINDS = ("price", "utilisation", "signer_set")
MAX_RUNTIME_S = 20.0


def _stream(index: int, label: bytes, length: int) -> bytes:
    out = b""
    block = 0
    while len(out) < length:
        out += hashlib.sha256(b"%s:%d:%d" % (label, index, block)).digest()
        block += 1
    return out[:length]


def expected_leaf(index: int) -> bytes:
    """The leaf appended at ``index``: deterministic bytes of a pseudo-random size."""
    length = 1 + int.from_bytes(_stream(index, b"len", 2), "big") % 600
    return b"leaf-%d|" % index + _stream(index, b"leaf", length)


def expected_inputs(index: int) -> bytes | None:
    """Every third entry carries an input snapshot of a few KB."""
    if index % 3:
        return None
    length = 1024 + int.from_bytes(_stream(index, b"ilen", 2), "big") % 6000
    return _stream(index, b"inputs", length)


def expected_kind(index: int) -> str:
    return KINDS[index % len(KINDS)]


def main(argv: list[str]) -> int:
    from oracle.log import AttestationLog

    log = AttestationLog(argv[1])
    index = log.size
    out = sys.stdout
    out.write(f"READY {index}\n")
    out.flush()
    deadline = time.monotonic() + MAX_RUNTIME_S
    while time.monotonic() < deadline:
        result = log.append(
            expected_leaf(index),
            kind=expected_kind(index),
            inputs=expected_inputs(index),
            expect_size=index,
        )
        out.write(f"ACK {result.index} {result.checkpoint.root.hex()}\n")
        out.flush()
        index += 1
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
