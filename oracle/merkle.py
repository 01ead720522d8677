"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification (SHA-256).

Pure functions, no I/O. The tree is the one of RFC 9162 section 2.1:

- ``MTH({}) = SHA-256()`` (:data:`EMPTY_ROOT`),
- ``MTH({d0}) = SHA-256(0x00 || d0)`` (:func:`leaf_hash`),
- ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` for ``n > 1``, where ``k`` is
  the largest power of two strictly smaller than ``n`` (:func:`node_hash`).

Everything that takes "hashes" takes *leaf hashes* (32 bytes each), not leaf data: callers
hash their leaves once with :func:`leaf_hash` and keep the hashes.

The generators (:func:`inclusion_proof`, :func:`consistency_proof`) raise ``ValueError`` on
bad arguments. The verifiers (:func:`verify_inclusion`, :func:`verify_consistency`) are
independent of the generators (they implement the bit-twiddling algorithms of RFC 9162
sections 2.1.3.2 and 2.1.4.2, they do not rebuild the tree) and never raise: anything
malformed is simply not a valid proof, so they return ``False``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT: bytes = sha256(b"").digest()
"""Root hash of the empty tree: SHA-256 of the empty string (RFC 9162 section 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``SHA-256(0x00 || data)``."""
    return sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return sha256(_NODE_PREFIX + left + right).digest()


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_uint(value: object) -> bool:
    # bool is an int subclass; True/False as a tree size or index is a caller bug.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_hashes(hashes: Sequence[bytes], count: int) -> None:
    for i in range(count):
        h = hashes[i]
        if not _is_hash(h):
            raise ValueError(
                f"leaf hash #{i} is not {HASH_SIZE} bytes ({type(h).__name__} "
                f"of length {len(h) if isinstance(h, bytes | bytearray) else '?'}); "
                "pass leaf hashes from leaf_hash(), not raw leaf data"
            )


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of ``hashes[lo:hi]`` (already validated), by folding a stack of perfect subtrees.

    Appending leaves left to right and merging equal-height subtrees leaves one perfect
    subtree per set bit of the count, largest first; folding that stack from the right
    gives exactly the RFC 6962 recursive split at the largest power of two below ``n``.
    """
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    h = sha256
    prefix = _NODE_PREFIX
    stack: list[bytes] = []
    for count in range(n):
        node = hashes[lo + count]
        # `count` leaves are already on the stack; each trailing 1 bit of `count` is a
        # perfect subtree of the same height as the one being carried, so merge it.
        c = count
        while c & 1:
            node = h(prefix + stack.pop() + node).digest()
            c >>= 1
        stack.append(node)
    root = stack.pop()
    while stack:
        root = h(prefix + stack.pop() + root).digest()
    return root


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash (RFC 9162 MTH) of the given leaf hashes.

    Iterative, O(n) hashing and O(log n) memory. ``[]`` gives :data:`EMPTY_ROOT`.
    """
    _check_hashes(hashes, len(hashes))
    return _mth(hashes, 0, len(hashes))


class CompactRange:
    """Incremental Merkle tree root: the roots of the perfect subtrees covering ``[0, size)``.

    Holds one hash per set bit of ``size`` (at most 64 for any realistic log), so
    :meth:`append` is amortised O(1) hashing and :meth:`root` is O(log n).
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        """Start from the empty tree, then :meth:`append` every hash in ``leaf_hashes``."""
        self._nodes: list[bytes] = []
        self._size = 0
        self.extend(leaf_hashes)

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> CompactRange:
        """Build the compact range of a whole list of leaf hashes."""
        return cls(leaf_hashes)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        """The perfect-subtree roots, leftmost (largest) first."""
        return tuple(self._nodes)

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash (32 bytes, from :func:`leaf_hash`)."""
        if not _is_hash(leaf_hash):
            raise ValueError(
                f"CompactRange.append needs a {HASH_SIZE}-byte leaf hash, got "
                f"{type(leaf_hash).__name__}; hash the leaf with leaf_hash() first"
            )
        node = leaf_hash
        c = self._size
        while c & 1:
            node = node_hash(self._nodes.pop(), node)
            c >>= 1
        self._nodes.append(node)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append every hash of ``leaf_hashes`` in order."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """The Merkle tree hash of the leaves appended so far."""
        if not self._nodes:
            return EMPTY_ROOT
        root = self._nodes[-1]
        for node in reversed(self._nodes[:-1]):
            root = node_hash(node, root)
        return root

    def copy(self) -> CompactRange:
        """An independent copy (appending to it leaves this one unchanged)."""
        other = CompactRange()
        other._nodes = list(self._nodes)
        other._size = self._size
        return other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._nodes == other._nodes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def _resolve_size(hashes: Sequence[bytes], size: int | None, what: str) -> int:
    if size is None:
        size = len(hashes)
    if not _is_uint(size):
        raise ValueError(f"{what} must be a non-negative int, got {size!r}")
    if size > len(hashes):
        raise ValueError(
            f"{what} {size} is larger than the {len(hashes)} leaf hashes given; "
            "pass the hashes of at least that many leaves"
        )
    return size


def inclusion_proof(hashes: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """Return the audit path ``PATH(index, D[size])`` of RFC 6962 section 2.1.1.

    ``hashes`` are leaf hashes (at least ``size`` of them; ``size`` defaults to all), the
    proof lists the sibling subtree hashes from the leaf up to the root. Raises
    ``ValueError`` if ``index`` is not in ``[0, size)``.
    """
    size = _resolve_size(hashes, size, "tree size")
    if not _is_uint(index) or index >= size:
        raise ValueError(
            f"leaf index {index!r} is out of range for a tree of size {size}; "
            f"valid indices are 0..{size - 1}"
            if size
            else f"leaf index {index!r}: the tree of size 0 has no leaves to prove"
        )
    _check_hashes(hashes, size)
    path: list[bytes] = []
    lo, hi = 0, size
    # Walk down from the root; each split contributes the hash of the other side.
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            path.append(_mth(hashes, lo + k, hi))
            hi = lo + k
        else:
            path.append(_mth(hashes, lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof(
    hashes: Sequence[bytes], old_size: int, new_size: int | None = None
) -> list[bytes]:
    """Return the consistency proof ``PROOF(old_size, D[new_size])`` of RFC 6962 section 2.1.2.

    ``hashes`` are leaf hashes (at least ``new_size`` of them; ``new_size`` defaults to
    all). The proof is empty when ``old_size == new_size`` (RFC 9162 2.1.4.1) and when
    ``old_size == 0`` (every tree is consistent with the empty tree). Raises ``ValueError``
    if ``old_size > new_size``.
    """
    new_size = _resolve_size(hashes, new_size, "new tree size")
    if not _is_uint(old_size):
        raise ValueError(f"old tree size must be a non-negative int, got {old_size!r}")
    if old_size > new_size:
        raise ValueError(
            f"old tree size {old_size} is larger than new tree size {new_size}; a consistency "
            "proof goes from an older (smaller) tree to a newer one"
        )
    if old_size == 0 or old_size == new_size:
        return []
    _check_hashes(hashes, new_size)
    proof: list[bytes] = []
    # SUBPROOF(m, D[lo:hi], b), unrolled; like the inclusion path it is built root-first
    # and reversed at the end.
    lo, hi, m, complete = 0, new_size, old_size, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                proof.append(_mth(hashes, lo, hi))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            proof.append(_mth(hashes, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_mth(hashes, lo, lo + k))
            lo += k
            m -= k
            complete = False
    proof.reverse()
    return proof


# No valid proof for a tree of fewer than 2**64 leaves is longer than this; longer input
# is rejected before hashing anything.
_MAX_PROOF_LEN = 130


def _valid_proof(proof: object) -> list[bytes] | None:
    if isinstance(proof, str | bytes | bytearray | memoryview):
        return None
    try:
        items = list(proof)  # type: ignore[call-overload]
    except Exception:
        return None
    if len(items) > _MAX_PROOF_LEN or not all(_is_hash(p) for p in items):
        return None
    return items


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an inclusion proof with the algorithm of RFC 9162 section 2.1.3.2.

    True iff ``proof`` shows that the leaf with hash ``leaf_hash`` is at ``index`` in the
    tree of ``size`` leaves whose root is ``root``. Never raises: malformed input (wrong
    types, hashes that are not 32 bytes, ``index >= size``, too short or too long proofs)
    gives ``False``.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and _is_uint(index) and _is_uint(size)):
        return False
    path = _valid_proof(proof)
    if path is None or index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check a consistency proof with the algorithm of RFC 9162 section 2.1.4.2.

    True iff ``proof`` shows that the tree of ``old_size`` leaves with root ``old_root`` is
    a prefix of the tree of ``new_size`` leaves with root ``new_root``. The trivial cases
    need an empty proof: ``old_size == new_size`` needs equal roots, and ``old_size == 0``
    needs ``old_root`` to be :data:`EMPTY_ROOT` (the only root an empty tree has). Never
    raises: malformed input gives ``False``.
    """
    if not (
        _is_uint(old_size) and _is_uint(new_size) and _is_hash(old_root) and _is_hash(new_root)
    ):
        return False
    path = _valid_proof(proof)
    if path is None or old_size > new_size:
        return False
    if old_size == 0 and old_root != EMPTY_ROOT:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if old_size == 0:
        return not path
    # 1. An empty proof cannot prove anything non-trivial.
    if not path:
        return False
    # 2. If old_size is a power of two, the old root is itself a node of the new tree.
    if old_size & (old_size - 1) == 0:
        path = [old_root, *path]
    # 3.-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    return fr == old_root and sr == new_root and sn == 0
