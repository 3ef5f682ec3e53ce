"""MinHash clustering: edges, components vs a brute-force union-find, partitions joined, results."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipeline.dedup import clusters as C
from data_pipeline.dedup.minhash import band_hashes

BACKENDS = ["numpy"] + (["scipy"] if C._scipy_components is not None else [])


def brute_components(edges: list[tuple[int, int]]) -> dict[int, int]:
    """Plain Python union-find: node -> smallest node of its component."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def as_map(nodes: np.ndarray, roots: np.ndarray) -> dict[int, int]:
    return dict(zip(nodes.tolist(), roots.tolist(), strict=True))


def random_edges(rng: np.random.Generator, n_nodes: int, n_edges: int) -> tuple[np.ndarray, np.ndarray]:
    keys = C.doc_key(rng.integers(0, 4, n_nodes), rng.integers(0, 2**32, n_nodes))
    return keys[rng.integers(0, n_nodes, n_edges)], keys[rng.integers(0, n_nodes, n_edges)]


# ---------------------------------------------------------------------------------------------
# Keys and partitions
# ---------------------------------------------------------------------------------------------


def test_doc_key_roundtrip_and_order() -> None:
    shard = np.array([0, 0, 1, 2**32 - 1])
    row = np.array([0, 5, 0, 2**32 - 1])
    keys = C.doc_key(shard, row)
    assert keys.dtype == np.uint64
    assert keys.tolist() == [0, 5, 1 << 32, 2**64 - 1]
    s, r = C.split_key(keys)
    assert s.tolist() == shard.tolist() and r.tolist() == row.tolist()
    assert int(C.doc_key(3, 7)) == (3 << 32) | 7
    # Corpus order: a lower shard beats any row of a higher shard.
    assert C.doc_key(0, 2**32 - 1) < C.doc_key(1, 0)
    with pytest.raises(ValueError):
        C.doc_key(2**32, 0)
    with pytest.raises(ValueError):
        C.doc_key(0, -1)


def test_partition_of_range_stability_and_balance() -> None:
    rng = np.random.default_rng(1)
    h = band_hashes(rng.integers(0, 2**32, (2000, 112), dtype=np.uint32), 14, 8).ravel()
    for p in (1, 2, 3, 7, 64):
        part = C.partition_of(h, p)
        assert part.min() >= 0 and part.max() < p
        assert np.array_equal(part, C.partition_of(h.copy(), p))
    counts = np.bincount(C.partition_of(h, 8), minlength=8)
    assert counts.min() > 0.8 * len(h) / 8
    # Hand-computed: top 32 bits 0x80000000 of 4 partitions -> 2; 0xFFFFFFFF -> 3; 0 -> 0.
    vals = np.array([0x8000000012345678, 0xFFFFFFFF00000000, 0x00000000FFFFFFFF], dtype=np.uint64)
    assert C.partition_of(vals, 4).tolist() == [2, 3, 0]
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError):
            C.partition_of(h, bad)


# ---------------------------------------------------------------------------------------------
# Edges
# ---------------------------------------------------------------------------------------------


def test_candidate_edges_star_from_smallest_key() -> None:
    h = np.array([7, 9, 7, 7, 9, 3], dtype=np.uint64)
    k = np.array([30, 12, 10, 20, 11, 99], dtype=np.uint64)
    src, dst = C.candidate_edges(h, k)
    assert src.dtype == dst.dtype == np.uint64
    assert list(zip(src.tolist(), dst.tolist(), strict=True)) == [(10, 20), (10, 30), (11, 12)]


def test_candidate_edges_dedups_across_bands_and_repeats() -> None:
    # Docs 1 and 2 collide in two bands (two buckets) -> one edge; repeated rows add nothing.
    h = np.array([5, 5, 6, 6, 6, 8], dtype=np.uint64)
    k = np.array([2, 1, 1, 2, 2, 1], dtype=np.uint64)
    src, dst = C.candidate_edges(h, k)
    assert src.tolist() == [1] and dst.tolist() == [2]


def test_candidate_edges_order_independent() -> None:
    rng = np.random.default_rng(2)
    n = 5000
    h = rng.integers(0, 400, n).astype(np.uint64)
    k = rng.choice(10**6, n, replace=False).astype(np.uint64)
    src, dst = C.candidate_edges(h, k)
    assert np.all(src < dst)
    pairs = np.stack([src, dst], axis=1)
    assert len(np.unique(pairs, axis=0)) == len(pairs)
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(n)
        s2, d2 = C.candidate_edges(h[perm], k[perm])
        assert np.array_equal(s2, src) and np.array_equal(d2, dst)
    # Star edges: n_rows - n_groups of size >= 1.
    assert len(src) == n - len(np.unique(h))


def test_candidate_edges_empty_and_mismatch() -> None:
    for n in (0, 1):
        src, dst = C.candidate_edges(np.zeros(n, np.uint64), np.zeros(n, np.uint64))
        assert len(src) == len(dst) == 0 and src.dtype == np.uint64
    with pytest.raises(ValueError):
        C.candidate_edges(np.zeros(2, np.uint64), np.zeros(3, np.uint64))


# ---------------------------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("n_nodes", "n_edges"), [(10, 4), (200, 150), (2000, 1000), (2000, 5000)])
def test_components_match_brute_force(backend: str, n_nodes: int, n_edges: int) -> None:
    rng = np.random.default_rng(n_nodes + n_edges)
    src, dst = random_edges(rng, n_nodes, n_edges)
    nodes, roots = C.connected_components(src, dst, backend=backend)
    expected = brute_components(list(zip(src.tolist(), dst.tolist(), strict=True)))
    assert as_map(nodes, roots) == expected
    assert np.all(nodes[1:] > nodes[:-1])  # sorted, distinct


@pytest.mark.parametrize("backend", BACKENDS)
def test_components_long_path_in_random_order(backend: str) -> None:
    keys = np.random.default_rng(3).permutation(20_000).astype(np.uint64) + np.uint64(5)
    nodes, roots = C.connected_components(keys[:-1], keys[1:], backend=backend)
    assert len(nodes) == 20_000 and np.all(roots == 5)


def test_components_self_loops_and_empty() -> None:
    nodes, roots = C.connected_components(np.array([4, 9], np.uint64), np.array([4, 2], np.uint64))
    assert as_map(nodes, roots) == {2: 2, 4: 4, 9: 2}
    for backend in BACKENDS:
        nodes, roots = C.connected_components(np.zeros(0, np.uint64), np.zeros(0, np.uint64), backend)
        assert len(nodes) == len(roots) == 0 and nodes.dtype == np.uint64
    with pytest.raises(ValueError):
        C.connected_components(np.zeros(1, np.uint64), np.zeros(1, np.uint64), backend="magic")


def test_planted_band_collisions() -> None:
    """Signatures sharing a band become candidates; clusters and keepers are as planted."""
    rng = np.random.default_rng(4)
    bands, rows = 14, 8
    sig = rng.integers(0, 2**32, (60, bands * rows), dtype=np.uint32)
    # Cluster A: 3 <- 10 (band 0), 10 <- 25 (band 5): 3, 10, 25 chained. Cluster B: 40 <- 41, 42 (band 13).
    sig[10, 0:8] = sig[3, 0:8]
    sig[25, 40:48] = sig[10, 40:48]
    sig[41, 104:112] = sig[40, 104:112]
    sig[42, 104:112] = sig[40, 104:112]
    # Equal rows in different bands must not collide (band index is mixed into the hash).
    sig[50, 8:16] = sig[51, 16:24]
    h = band_hashes(sig, bands, rows)
    keys = C.doc_key(np.repeat(np.arange(60) // 20, bands), np.repeat(np.arange(60) % 20, bands))
    src, dst = C.candidate_edges(h.ravel(), keys)
    nodes, roots = C.connected_components(src, dst)

    def doc_index(k: np.ndarray) -> list[int]:
        shard, row = C.split_key(k)
        return (shard * 20 + row).tolist()

    got = dict(zip(doc_index(nodes), doc_index(roots), strict=True))
    assert got == {3: 3, 10: 3, 25: 3, 40: 40, 41: 40, 42: 40}
    removed = C.removal_keys(nodes, roots)
    assert removed.tolist() == C.doc_key([0, 1, 2, 2], [10, 5, 1, 2]).tolist()


# ---------------------------------------------------------------------------------------------
# Joining partitions (what the buckets stage hands to the rounds of tests/test_dedup_components.py)
# ---------------------------------------------------------------------------------------------


def forest_edges(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A partition's forest as edges (node, root), node != root: what the buckets stage sends on."""
    nodes, roots = C.connected_components(src, dst)
    linked = nodes != roots
    return nodes[linked], roots[linked]


@pytest.mark.parametrize("n_parts", [1, 2, 3, 5, 8])
def test_forest_edges_of_partitions_equal_global_union_find(n_parts: int) -> None:
    rng = np.random.default_rng(n_parts)
    src, dst = random_edges(rng, 3000, 2500)
    part = rng.integers(0, n_parts, len(src))
    forests = [forest_edges(src[part == p], dst[part == p]) for p in range(n_parts)]
    nodes, roots = C.connected_components(*(np.concatenate(x) for x in zip(*forests, strict=True)))
    g_nodes, g_roots = C.connected_components(src[src != dst], dst[src != dst])
    assert np.array_equal(nodes, g_nodes) and np.array_equal(roots, g_roots)
    edges = [(a, b) for a, b in zip(src.tolist(), dst.tolist(), strict=True) if a != b]
    assert as_map(nodes, roots) == brute_components(edges)


def test_chain_split_across_partitions_joins() -> None:
    a, b, c = C.doc_key([2, 0, 1], [0, 9, 4])  # smallest is b
    f1 = forest_edges(np.array([a]), np.array([b]))
    f2 = forest_edges(np.array([b]), np.array([c]))
    assert f1[0].tolist() == [int(a)] and f1[1].tolist() == [int(b)]
    nodes, roots = C.connected_components(np.concatenate((f1[0], f2[0])), np.concatenate((f1[1], f2[1])))
    assert as_map(nodes, roots) == {int(a): int(b), int(b): int(b), int(c): int(b)}
    assert C.removal_keys(nodes, roots).tolist() == sorted([int(a), int(c)])


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


def test_removal_keys_and_cluster_sizes() -> None:
    nodes = np.array([1, 2, 3, 7, 8, 9, 10], np.uint64)
    roots = np.array([1, 1, 1, 7, 7, 9, 9], np.uint64)
    assert C.removal_keys(nodes, roots).tolist() == [2, 3, 8, 10]
    sizes, counts = C.cluster_sizes(roots)
    assert sizes.tolist() == [2, 3] and counts.tolist() == [2, 1]
    sizes, counts = C.cluster_sizes(np.zeros(0, np.uint64))
    assert len(sizes) == len(counts) == 0
    assert len(C.removal_keys(np.zeros(0, np.uint64), np.zeros(0, np.uint64))) == 0
    with pytest.raises(ValueError):
        C.removal_keys(nodes, roots[:3])


def reference_verified(buckets: dict[int, list[int]], similar) -> set[tuple[int, int]]:
    """The documented rule, one bucket at a time: a member joins the first star (heads in key
    order) whose head it resembles; members resembling no head so far become the next head."""
    edges = set()
    for members in buckets.values():
        rest = sorted(set(members))
        while len(rest) > 1:
            head, failed = rest[0], []
            for m in rest[1:]:
                (edges.add((head, m)) if similar(head, m) else failed.append(m))
            rest = failed
    return edges


@pytest.mark.parametrize("seed", range(4))
def test_verified_edges_follow_the_star_rule(seed):
    rng = np.random.default_rng(seed)
    n_rows = 400
    keys = rng.integers(0, 60, n_rows).astype(np.uint64)
    hashes = rng.integers(0, 25, n_rows).astype(np.uint64)
    # A symmetric, deterministic similarity: documents in the same "family" resemble each other.
    family = rng.integers(0, 3, 60)

    def similar_keys(a: int, b: int) -> bool:
        return family[a] == family[b]

    src, dst = C.verified_edges(hashes, keys, lambda i, j: family[keys[i]] == family[keys[j]])
    buckets: dict[int, list[int]] = {}
    for h, k in zip(hashes.tolist(), keys.tolist(), strict=True):
        buckets.setdefault(h, []).append(k)
    assert set(zip(src.tolist(), dst.tolist(), strict=True)) == reference_verified(buckets, similar_keys)
    assert (src < dst).all()


def test_verified_edges_with_everything_similar_equal_candidate_edges():
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 1000, 500).astype(np.uint64)
    hashes = rng.integers(0, 80, 500).astype(np.uint64)
    got = C.verified_edges(hashes, keys, lambda i, j: np.ones(len(i), dtype=bool))
    want = C.candidate_edges(hashes, keys)
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    none = C.verified_edges(hashes, keys, lambda i, j: np.zeros(len(i), dtype=bool))
    assert len(none[0]) == 0
