"""oracle.merkle: RFC 6962 / RFC 9162 hashing, proofs and verifiers.

Known answers come from the transparency-dev/merkle test suite (proof/verify_test.go,
proof/proof_test.go, rfc6962/rfc6962_test.go). Everything else is checked against a
naive transcription of the RFC 6962 recursive definitions below.
"""

from __future__ import annotations

import time
from hashlib import sha256

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from oracle.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# --------------------------------------------------------------------------- reference model
# A literal transcription of RFC 6962 section 2.1, recursive and slow on purpose.


def ref_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) over leaf *data*."""
    n = len(d)
    if n == 0:
        return sha256(b"").digest()
    if n == 1:
        return sha256(b"\x00" + d[0]).digest()
    k = ref_k(n)
    return sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n])."""
    n = len(d)
    if n == 1:
        return []
    k = ref_k(n)
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) for 0 < m <= n."""
    return ref_subproof(m, d, True)


def make_leaves(n: int, salt: bytes = b"") -> list[bytes]:
    """Distinct leaf data (identical leaves would make some index swaps verify)."""
    return [b"leaf-" + salt + i.to_bytes(4, "big") for i in range(n)]


def flip_bit(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --------------------------------------------------------------------------- known answers

KAT_LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
KAT_HASHES = [leaf_hash(x) for x in KAT_LEAVES]
KAT_ROOTS = [
    bytes.fromhex(x)
    for x in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# (0-based leaf index, tree size, proof)
KAT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _h(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]

# (old size, new size, proof)
KAT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _h(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def test_hasher_known_answers() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )
    # Domain separation: a node is not the leaf hash of its children's concatenation,
    # and the order of children matters.
    a, b = leaf_hash(b"Hello"), leaf_hash(b"World")
    assert node_hash(a, b) != leaf_hash(a + b)
    assert node_hash(a, b) != node_hash(b, a)


@pytest.mark.parametrize("n", range(1, 9))
def test_known_roots(n: int) -> None:
    assert root_from_leaf_hashes(KAT_HASHES[:n]) == KAT_ROOTS[n - 1]
    assert CompactRange(KAT_HASHES[:n]).root() == KAT_ROOTS[n - 1]
    assert ref_mth(KAT_LEAVES[:n]) == KAT_ROOTS[n - 1]


def test_empty_tree() -> None:
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    cr = CompactRange()
    assert cr.size == 0 and cr.root() == EMPTY_ROOT
    assert consistency_proof([], 0, 0) == []
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


def inclusion_probes(index: int, size: int, proof: list[bytes], root: bytes, lh: bytes):
    """Port of corruptInclusionProof from transparency-dev/merkle proof/verify_test.go."""
    probes = [
        ("index - 1", index - 1, size, root, lh, proof),
        ("index + 1", index + 1, size, root, lh, proof),
        ("index ^ 2", index ^ 2, size, root, lh, proof),
        ("size * 2", index, size * 2, root, lh, proof),
        ("size // 2", index, size // 2, root, lh, proof),
        ("wrong leaf", index, size, root, leaf_hash(b"WrongLeaf"), proof),
        ("empty root", index, size, EMPTY_ROOT, lh, proof),
        ("random root", index, size, SOME_HASH, lh, proof),
        ("trailing garbage", index, size, root, lh, [*proof, b""]),
        ("trailing root", index, size, root, lh, [*proof, root]),
        ("preceding garbage", index, size, root, lh, [b"", *proof]),
        ("preceding root", index, size, root, lh, [root, *proof]),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = flip_bit(wrong[i], 3)
        probes.append((f"proof[{i}] bit 3", index, size, root, lh, wrong))
    if proof:
        probes.append(("removed component", index, size, root, lh, proof[:-1]))
    if len(proof) > 1:
        probes.append(
            ("inserted component", index, size, root, lh, [proof[0], SOME_HASH, *proof[1:]])
        )
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), KAT_INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    root = KAT_ROOTS[size - 1]
    lh = KAT_HASHES[index]
    assert inclusion_proof(KAT_HASHES, index, size) == proof
    assert ref_path(index, KAT_LEAVES[:size]) == proof
    assert verify_inclusion(lh, index, size, proof, root)
    wrongly_accepted = [
        desc
        for desc, i, n, r, h, p in inclusion_probes(index, size, proof, root, lh)
        if verify_inclusion(h, i, n, p, r)
    ]
    assert wrongly_accepted == []


def consistency_probes(m: int, n: int, root1: bytes, root2: bytes, proof: list[bytes]):
    """Port of corruptConsistencyProof from transparency-dev/merkle proof/verify_test.go."""
    probes = [
        ("size1 - 1", m - 1, n, root1, root2, proof),
        ("size1 + 1", m + 1, n, root1, root2, proof),
        ("size1 ^ 2", m ^ 2, n, root1, root2, proof),
        ("size2 * 2", m, n * 2, root1, root2, proof),
        ("size2 // 2", m, n // 2, root1, root2, proof),
        ("wrong root1", m, n, b"WrongRoot", root2, proof),
        ("wrong root2", m, n, root1, b"WrongRoot", proof),
        ("other root1", m, n, SOME_HASH, root2, proof),
        ("other root2", m, n, root1, SOME_HASH, proof),
        ("swapped roots", m, n, root2, root1, proof),
        ("empty proof", m, n, root1, root2, []),
        ("trailing garbage", m, n, root1, root2, [*proof, b""]),
        ("trailing root1", m, n, root1, root2, [*proof, root1]),
        ("trailing root2", m, n, root1, root2, [*proof, root2]),
        ("preceding garbage", m, n, root1, root2, [b"", *proof]),
        ("preceding root1", m, n, root1, root2, [root1, *proof]),
        ("preceding root2", m, n, root1, root2, [root2, *proof]),
        ("preceding proof[0]", m, n, root1, root2, [proof[0], *proof]),
        ("truncated proof", m, n, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = flip_bit(wrong[i], 4)
        probes.append((f"proof[{i}] bit 4", m, n, root1, root2, wrong))
    return probes


@pytest.mark.parametrize(("old", "new", "proof"), KAT_CONSISTENCY)
def test_known_consistency_proofs(old: int, new: int, proof: list[bytes]) -> None:
    root1, root2 = KAT_ROOTS[old - 1], KAT_ROOTS[new - 1]
    assert consistency_proof(KAT_HASHES, old, new) == proof
    assert ref_proof(old, KAT_LEAVES[:new]) == proof
    assert verify_consistency(old, new, root1, root2, proof)
    if not proof:
        return
    wrongly_accepted = [
        desc
        for desc, m, n, r1, r2, p in consistency_probes(old, new, root1, root2, proof)
        if verify_consistency(m, n, r1, r2, p)
    ]
    assert wrongly_accepted == []


def test_known_proofs_every_bit_flipped() -> None:
    """Exhaustively: flipping any single bit of any KAT proof element or root fails."""
    for index, size, proof in KAT_INCLUSION:
        root, lh = KAT_ROOTS[size - 1], KAT_HASHES[index]
        for i in range(len(proof)):
            for bit in range(256):
                wrong = list(proof)
                wrong[i] = flip_bit(proof[i], bit)
                assert not verify_inclusion(lh, index, size, wrong, root)
        for bit in range(256):
            assert not verify_inclusion(lh, index, size, proof, flip_bit(root, bit))
            assert not verify_inclusion(flip_bit(lh, bit), index, size, proof, root)
    for old, new, proof in KAT_CONSISTENCY:
        r1, r2 = KAT_ROOTS[old - 1], KAT_ROOTS[new - 1]
        for i in range(len(proof)):
            for bit in range(256):
                wrong = list(proof)
                wrong[i] = flip_bit(proof[i], bit)
                assert not verify_consistency(old, new, r1, r2, wrong)
        for bit in range(256):
            assert not verify_consistency(old, new, flip_bit(r1, bit), r2, proof)
            assert not verify_consistency(old, new, r1, flip_bit(r2, bit), proof)


def test_trivial_consistency_cases() -> None:
    """Adapted from TestVerifyConsistency in transparency-dev/merkle proof/verify_test.go."""
    r1, r2 = leaf_hash(b"don't care 1"), leaf_hash(b"don't care 2")
    # Same size: roots must match, proof must be empty.
    assert not verify_consistency(1, 1, r1, r2, [])
    assert verify_consistency(1, 1, r2, r2, [])
    assert not verify_consistency(1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(0, 0, r1, r1, [])  # an empty tree's root is EMPTY_ROOT
    assert not verify_consistency(0, 0, EMPTY_ROOT, r2, [])
    # Every tree extends the empty tree, with an empty proof.
    assert verify_consistency(0, 1, EMPTY_ROOT, r2, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, KAT_ROOTS[4], [])
    assert consistency_proof(KAT_HASHES, 0, 5) == []
    assert not verify_consistency(0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert not verify_consistency(0, 1, r1, r2, [])  # this library insists on EMPTY_ROOT
    # Time travel to the past.
    assert not verify_consistency(1, 0, r1, r2, [])
    assert not verify_consistency(2, 1, r1, r2, [])
    # Non-trivial sizes need a proof.
    assert not verify_consistency(1, 2, r1, r2, [])


def test_single_entry_inclusion() -> None:
    lh = leaf_hash(b"data")
    assert verify_inclusion(lh, 0, 1, [], lh)
    assert not verify_inclusion(lh, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], lh)
    for index, size in [(0, 0), (1, 0), (1, 1), (2, 1)]:
        assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
        assert not verify_inclusion(SOME_HASH, index, size, [], SOME_HASH)


# Proof shapes from transparency-dev/merkle proof/proof_test.go (TestInclusion and
# TestConsistency). Their node IDs (level, index) are written here as the leaf ranges
# [lo, hi) whose MTH is the proof element; "rehashed" ephemeral nodes are the union range.
SHAPE_INCLUSION = [
    (0, 1, []),
    (0, 2, [(1, 2)]),
    (1, 2, [(0, 1)]),
    (1, 3, [(0, 1), (2, 3)]),
    (0, 7, [(1, 2), (2, 4), (4, 7)]),
    (1, 7, [(0, 1), (2, 4), (4, 7)]),
    (2, 7, [(3, 4), (0, 2), (4, 7)]),
    (3, 7, [(2, 3), (0, 2), (4, 7)]),
    (4, 7, [(5, 6), (6, 7), (0, 4)]),
    (5, 7, [(4, 5), (6, 7), (0, 4)]),
    (6, 7, [(4, 6), (0, 4)]),
    (2, 4, [(3, 4), (0, 2)]),
    (3, 5, [(2, 3), (0, 2), (4, 5)]),
    (3, 6, [(2, 3), (0, 2), (4, 6)]),
    (4, 6, [(5, 6), (0, 4)]),
    (10, 15, [(11, 12), (8, 10), (12, 15), (0, 8)]),
    (24, 31, [(25, 26), (26, 28), (28, 31), (16, 24), (0, 16)]),
    (81, 95, [(80, 81), (82, 84), (84, 88), (88, 95), (64, 80), (0, 64)]),
]
SHAPE_CONSISTENCY = [
    (1, 2, [(1, 2)]),
    (1, 4, [(1, 2), (2, 4)]),
    (1, 6, [(1, 2), (2, 4), (4, 6)]),
    (2, 3, [(2, 3)]),
    (2, 8, [(2, 4), (4, 8)]),
    (3, 7, [(2, 3), (3, 4), (0, 2), (4, 7)]),
    (4, 7, [(4, 7)]),
    (5, 7, [(4, 5), (5, 6), (6, 7), (0, 4)]),
    (6, 7, [(4, 6), (6, 7), (0, 4)]),
    (7, 8, [(6, 7), (7, 8), (4, 6), (0, 4)]),
    (2, 4, [(2, 4)]),
    (3, 5, [(2, 3), (3, 4), (0, 2), (4, 5)]),
    (3, 6, [(2, 3), (3, 4), (0, 2), (4, 6)]),
    (4, 6, [(4, 6)]),
    (1, 7, [(1, 2), (2, 4), (4, 7)]),
    (10, 15, [(8, 10), (10, 12), (12, 15), (0, 8)]),
    (24, 31, [(16, 24), (24, 31), (0, 16)]),
    (81, 95, [(80, 81), (81, 82), (82, 84), (84, 88), (88, 95), (64, 80), (0, 64)]),
    *[(n, n, []) for n in (1, 2, 3, 4, 5, 7, 8)],
]
SHAPE_DATA = make_leaves(100, b"shape")
SHAPE_HASHES = [leaf_hash(x) for x in SHAPE_DATA]


@pytest.mark.parametrize(("index", "size", "ranges"), SHAPE_INCLUSION)
def test_inclusion_proof_shapes(index: int, size: int, ranges: list[tuple[int, int]]) -> None:
    want = [ref_mth(SHAPE_DATA[lo:hi]) for lo, hi in ranges]
    assert inclusion_proof(SHAPE_HASHES, index, size) == want
    assert verify_inclusion(SHAPE_HASHES[index], index, size, want, ref_mth(SHAPE_DATA[:size]))


@pytest.mark.parametrize(("old", "new", "ranges"), SHAPE_CONSISTENCY)
def test_consistency_proof_shapes(old: int, new: int, ranges: list[tuple[int, int]]) -> None:
    want = [ref_mth(SHAPE_DATA[lo:hi]) for lo, hi in ranges]
    assert consistency_proof(SHAPE_HASHES, old, new) == want
    assert verify_consistency(old, new, ref_mth(SHAPE_DATA[:old]), ref_mth(SHAPE_DATA[:new]), want)


def test_exhaustive_small_trees_against_reference() -> None:
    data = make_leaves(24, b"exh")
    hashes = [leaf_hash(x) for x in data]
    roots = [ref_mth(data[:n]) for n in range(len(data) + 1)]
    for n in range(1, len(data) + 1):
        assert root_from_leaf_hashes(hashes[:n]) == roots[n]
        for i in range(n):
            proof = inclusion_proof(hashes, i, n)
            assert proof == ref_path(i, data[:n])
            assert verify_inclusion(hashes[i], i, n, proof, roots[n])
        for m in range(1, n + 1):
            proof = consistency_proof(hashes, m, n)
            assert proof == ref_proof(m, data[:n])
            assert verify_consistency(m, n, roots[m], roots[n], proof)
            if m < n:
                # A proof between other sizes does not pass for these roots.
                assert not verify_consistency(m, n, roots[m - 1], roots[n], proof)
                assert not verify_consistency(m, n, roots[m], roots[n - 1], proof)


# --------------------------------------------------------------------------- generators: errors


def test_generators_reject_bad_arguments() -> None:
    hashes = KAT_HASHES
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(hashes, 8, 8)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(hashes, -1, 8)
    with pytest.raises(ValueError, match="no leaves"):
        inclusion_proof(hashes, 0, 0)
    with pytest.raises(ValueError, match="larger than the 8 leaf hashes"):
        inclusion_proof(hashes, 0, 9)
    with pytest.raises(ValueError, match="larger than new tree size"):
        consistency_proof(hashes, 5, 4)
    with pytest.raises(ValueError, match="larger than the 8 leaf hashes"):
        consistency_proof(hashes, 5, 9)
    with pytest.raises(ValueError, match="non-negative"):
        consistency_proof(hashes, -1, 4)
    with pytest.raises(ValueError, match="not 32 bytes"):
        root_from_leaf_hashes([b"raw leaf data"])
    with pytest.raises(ValueError, match="not 32 bytes"):
        inclusion_proof([b"x" * 31, b"y" * 32], 0, 2)
    with pytest.raises(ValueError, match="32-byte leaf hash"):
        CompactRange().append(b"short")
    # Sizes default to all the hashes given.
    assert inclusion_proof(hashes, 3) == inclusion_proof(hashes, 3, 8)
    assert consistency_proof(hashes, 3) == consistency_proof(hashes, 3, 8)


def test_root_of_10000_leaves_is_fast() -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(10_000)]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        root = root_from_leaf_hashes(hashes)
        best = min(best, time.perf_counter() - t0)
    assert best < 0.05, f"root of 10,000 leaves took {best * 1000:.1f} ms"
    assert root == CompactRange(hashes).root()
    # Spot-check against the reference model on the same data (one recursive pass).
    assert root == ref_mth([i.to_bytes(4, "big") for i in range(10_000)])


# --------------------------------------------------------------------------- property tests

sizes = st.integers(min_value=1, max_value=300)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], int, int]:
    n = draw(sizes)
    salt = draw(st.binary(max_size=4))
    data = make_leaves(n, salt)
    return data, [leaf_hash(x) for x in data], n, draw(st.integers(0, n - 1))


@st.composite
def tree_and_sizes(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], int, int]:
    n = draw(sizes)
    salt = draw(st.binary(max_size=4))
    data = make_leaves(n, salt)
    return data, [leaf_hash(x) for x in data], draw(st.integers(1, n)), n


@given(st.lists(st.binary(max_size=40), max_size=300))
def test_root_matches_reference(data: list[bytes]) -> None:
    hashes = [leaf_hash(x) for x in data]
    want = ref_mth(data)
    assert root_from_leaf_hashes(hashes) == want
    assert CompactRange(hashes).root() == want


@given(st.lists(st.binary(max_size=8), max_size=70))
def test_compact_range_matches_every_prefix(data: list[bytes]) -> None:
    hashes = [leaf_hash(x) for x in data]
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT
    for n, h in enumerate(hashes, start=1):
        snapshot = cr.copy()
        cr.append(h)
        assert cr.size == n
        assert len(cr.nodes) == bin(n).count("1")
        assert cr.root() == root_from_leaf_hashes(hashes[:n])
        assert snapshot.size == n - 1  # copies are independent
    assert cr == CompactRange.from_leaf_hashes(hashes)


@given(tree_and_index())
def test_inclusion_proofs_verify_and_match_reference(case) -> None:
    data, hashes, n, i = case
    root = root_from_leaf_hashes(hashes)
    proof = inclusion_proof(hashes, i, n)
    assert proof == ref_path(i, data)
    assert verify_inclusion(hashes[i], i, n, proof, root)
    # Proving a different leaf at that index fails.
    other = (i + 1) % n
    if other != i:
        assert not verify_inclusion(hashes[other], i, n, proof, root)


@given(tree_and_sizes())
def test_consistency_proofs_verify_and_match_reference(case) -> None:
    data, hashes, m, n = case
    root1 = root_from_leaf_hashes(hashes[:m])
    root2 = root_from_leaf_hashes(hashes)
    proof = consistency_proof(hashes, m, n)
    assert proof == ref_proof(m, data)
    assert verify_consistency(m, n, root1, root2, proof)
    assert verify_consistency(0, n, EMPTY_ROOT, root2, consistency_proof(hashes, 0, n))


@given(tree_and_index(), st.data())
def test_inclusion_single_bit_flips_fail(case, data: st.DataObject) -> None:
    _, hashes, n, i = case
    root = root_from_leaf_hashes(hashes)
    proof = inclusion_proof(hashes, i, n)
    bit = data.draw(st.integers(0, 255), label="bit")
    assert not verify_inclusion(hashes[i], i, n, proof, flip_bit(root, bit))
    assert not verify_inclusion(flip_bit(hashes[i], bit), i, n, proof, root)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1), label="element")
        wrong = list(proof)
        wrong[k] = flip_bit(proof[k], bit)
        assert not verify_inclusion(hashes[i], i, n, wrong, root)
        assert not verify_inclusion(hashes[i], i, n, proof[:k] + proof[k + 1 :], root)
    for index_bit in range(64):
        assert not verify_inclusion(hashes[i], i ^ (1 << index_bit), n, proof, root)


@given(tree_and_sizes(), st.data())
def test_consistency_single_bit_flips_fail(case, data: st.DataObject) -> None:
    _, hashes, m, n = case
    assume(m < n)
    root1 = root_from_leaf_hashes(hashes[:m])
    root2 = root_from_leaf_hashes(hashes)
    proof = consistency_proof(hashes, m, n)
    bit = data.draw(st.integers(0, 255), label="bit")
    assert not verify_consistency(m, n, flip_bit(root1, bit), root2, proof)
    assert not verify_consistency(m, n, root1, flip_bit(root2, bit), proof)
    k = data.draw(st.integers(0, len(proof) - 1), label="element")
    wrong = list(proof)
    wrong[k] = flip_bit(proof[k], bit)
    assert not verify_consistency(m, n, root1, root2, wrong)
    assert not verify_consistency(m, n, root1, root2, proof[:k] + proof[k + 1 :])
    assert not verify_consistency(m, n, root1, root2, [*proof, proof[-1]])


garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.binary(max_size=40),
    st.text(max_size=40),
    st.lists(st.binary(min_size=30, max_size=34), max_size=5),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=5),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.just(object()),
)
hash_like = st.one_of(st.binary(min_size=32, max_size=32), garbage)
size_like = st.one_of(st.integers(min_value=-5, max_value=2**65), garbage)


@given(
    hash_like, size_like, size_like, st.one_of(garbage, st.lists(hash_like, max_size=4)), hash_like
)
def test_verify_inclusion_never_raises(leaf, index, size, proof, root) -> None:
    result = verify_inclusion(leaf, index, size, proof, root)
    assert result is True or result is False
    if not isinstance(leaf, bytes) or not isinstance(root, bytes):
        assert result is False
    if isinstance(index, int) and isinstance(size, int) and index >= size:
        assert result is False


@given(
    size_like, size_like, hash_like, hash_like, st.one_of(garbage, st.lists(hash_like, max_size=4))
)
def test_verify_consistency_never_raises(old, new, root1, root2, proof) -> None:
    result = verify_consistency(old, new, root1, root2, proof)
    assert result is True or result is False
    if not isinstance(root1, bytes) or not isinstance(root2, bytes):
        assert result is False
    if isinstance(old, int) and isinstance(new, int) and old > new:
        assert result is False


def test_verifiers_reject_oversized_and_non_hash_proofs() -> None:
    hashes = make_leaves(8)
    lhs = [leaf_hash(x) for x in hashes]
    root = root_from_leaf_hashes(lhs)
    proof = inclusion_proof(lhs, 2)
    assert verify_inclusion(lhs[2], 2, 8, proof, root)
    assert verify_inclusion(lhs[2], 2, 8, tuple(proof), root)  # any sequence works
    assert not verify_inclusion(lhs[2], 2, 8, b"".join(proof), root)
    assert not verify_inclusion(lhs[2], 2, 8, [bytearray(p) for p in proof], root)
    assert not verify_inclusion(lhs[2], 2, 8, [p.hex() for p in proof], root)
    assert not verify_inclusion(lhs[2], True, 8, proof, root)
    assert not verify_inclusion(lhs[2], 2, 8, proof * 100, root)
    assert not verify_consistency(3, 8, root, root, [root] * 1000)
