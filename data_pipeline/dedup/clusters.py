"""Candidate pairs and clusters of near-duplicate documents, as array functions for sharded stages.

The MinHash stages after `minhash.band_hashes` are pure functions of arrays, so each can run as a
local worker or a Slurm array task over its shard of Parquet files, and every result is
deterministic (independent of input row order, worker count and scheduling):

1. Each (band hash, document key) row goes to partition `partition_of(band_hash, P)`; equal band
   hashes (the LSH buckets of all bands, since the band index is mixed into the hash) therefore
   meet in one partition.
2. Per partition, `candidate_edges` links every bucket's smallest key to its other keys (a star:
   O(rows) edges instead of O(rows^2) pairs, same connectivity) and `connected_components` turns
   the edges into a forest `(nodes, roots)`, root = smallest key of the component; its edges
   (node, root) have the components of the bucket edges with far fewer rows.
3. The forests' edges of all partitions are joined into global components by `stars` (large-star /
   small-star rounds over K hash partitions of the edges, `cc_tasks`), or with K = 1 by one
   `connected_components` call. Every node then maps to the minimum key of its component, a
   canonical form of the partition of nodes into components, so the result is the single global
   union-find's whatever the partitioning. datatrove runs this clustering as one sequential task.
4. `removal_keys` lists every clustered document except its cluster's keeper (the smallest key,
   i.e. the first document of the lowest shard), `cluster_sizes` summarises the clusters.

Document keys are uint64 `(shard << 32) | row`: unique in a run, cheap to sort, and their order is
the corpus order, which makes "keep the smallest key" a deterministic keeper rule.

Documents without shingles (`minhash.empty_rows`) share all band hashes and must be dropped before
step 1, or they would form one giant cluster.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_U32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)

# scipy is not a declared dependency; its C components routine is kept as a cross-check backend. On
# 2M random edges (2 cores) the NumPy path labels in 0.5-1.0 s against scipy's 0.8-1.0 s (sparse matrix
# build plus per-label minimum included), so NumPy is the default.
try:
    from scipy.sparse import coo_matrix as _coo_matrix
    from scipy.sparse.csgraph import connected_components as _scipy_components
except ImportError:  # pragma: no cover - depends on the environment
    _scipy_components = None


# ---------------------------------------------------------------------------------------------
# Keys and partitions
# ---------------------------------------------------------------------------------------------


def doc_key(shard: int | np.ndarray, row: int | np.ndarray) -> np.ndarray:
    """uint64 key `(shard << 32) | row` of documents; both parts must lie in [0, 2^32)."""
    shard = np.asarray(shard)
    row = np.asarray(row)
    for name, part in (("shard", shard), ("row", row)):
        if part.size and (part.min() < 0 or part.max() > 0xFFFFFFFF):
            raise ValueError(f"{name} index out of range [0, 2**32)")
    return (shard.astype(np.uint64) << _U32) | row.astype(np.uint64)


def split_key(key: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shard, row) of keys made by `doc_key`, as int64 arrays."""
    key = np.asarray(key, dtype=np.uint64)
    return (key >> _U32).astype(np.int64), (key & _LOW32).astype(np.int64)


def partition_of(band_hash: np.ndarray, n_partitions: int) -> np.ndarray:
    """Partition index in [0, n_partitions) of each band hash, int64; stable across processes.

    Uses the top 32 bits scaled by n_partitions (multiply-shift, no modulo bias), so the partition
    is independent of the low bits; band hashes are MurmurHash3-finalised, hence uniform.
    """
    if isinstance(n_partitions, bool) or not isinstance(n_partitions, int) or n_partitions < 1:
        raise ValueError(f"n_partitions must be an integer >= 1, got {n_partitions!r}")
    if n_partitions > 0xFFFFFFFF:
        raise ValueError("n_partitions must be < 2**32")
    top = np.asarray(band_hash, dtype=np.uint64) >> _U32
    return ((top * np.uint64(n_partitions)) >> _U32).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Edges
# ---------------------------------------------------------------------------------------------


def unique_pairs(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (src, dst) pairs sorted by (src, dst); cheaper than np.unique(axis=0)."""
    if len(src) == 0:
        return src, dst
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    keep = np.empty(len(src), dtype=bool)
    keep[0] = True
    np.not_equal(src[1:], src[:-1], out=keep[1:])
    keep[1:] |= dst[1:] != dst[:-1]
    return src[keep], dst[keep]


def candidate_edges(band_hash: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges (src, dst), uint64, src < dst, sorted and distinct, linking documents of equal band hash.

    `band_hash[i]` and `keys[i]` describe one (document, band) row; rows of all bands may be mixed.
    Each group of equal hashes becomes a star from its smallest key to every other key, so a bucket
    of n documents costs n - 1 edges, not n(n-1)/2, with the same components. The result depends only
    on the set of rows, not on their order.
    """
    band_hash = np.asarray(band_hash, dtype=np.uint64).ravel()
    keys = np.asarray(keys, dtype=np.uint64).ravel()
    if band_hash.shape != keys.shape:
        raise ValueError(f"band_hash and keys differ in length: {band_hash.shape} vs {keys.shape}")
    empty = np.zeros(0, dtype=np.uint64)
    if len(keys) < 2:
        return empty, empty.copy()
    order = np.lexsort((keys, band_hash))
    h, k = band_hash[order], keys[order]
    new_group = np.empty(len(h), dtype=bool)
    new_group[0] = True
    np.not_equal(h[1:], h[:-1], out=new_group[1:])
    # Index of each row's group start (the group's smallest key, rows being sorted by key).
    first = np.maximum.accumulate(np.where(new_group, np.arange(len(h)), 0))
    src = k[first]
    linked = src != k  # drops group heads and repeats of the head's key
    return unique_pairs(src[linked], k[linked])


def verified_edges(
    band_hash: np.ndarray, keys: np.ndarray, similar: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Like `candidate_edges`, but an edge needs `similar(rows_a, rows_b)` (indices into the inputs).

    Each bucket is a star from its smallest key; the members that fail against that head form
    the next star among themselves (head = their smallest key), until every member has passed or
    has no one left to be compared with. A bucket of near copies costs one comparison per member;
    only buckets mixing dissimilar documents (rare: they share a whole band) take more rounds.
    The result depends only on the set of rows, as `similar` is symmetric and deterministic.
    """
    band_hash = np.asarray(band_hash, dtype=np.uint64).ravel()
    keys = np.asarray(keys, dtype=np.uint64).ravel()
    if band_hash.shape != keys.shape:
        raise ValueError(f"band_hash and keys differ in length: {band_hash.shape} vs {keys.shape}")
    order = np.lexsort((keys, band_hash))
    # Repeats of one key in a bucket (never happens for band hashes, which differ per band) go.
    h, k = band_hash[order], keys[order]
    distinct = np.ones(len(k), dtype=bool)
    distinct[1:] = (h[1:] != h[:-1]) | (k[1:] != k[:-1])
    rows = order[distinct]
    srcs, dsts = [], []
    while len(rows) > 1:
        h = band_hash[rows]
        new_group = np.empty(len(rows), dtype=bool)
        new_group[0] = True
        np.not_equal(h[1:], h[:-1], out=new_group[1:])
        head = rows[np.maximum.accumulate(np.where(new_group, np.arange(len(rows)), 0))]
        member = ~new_group
        a, b = head[member], rows[member]
        ok = np.asarray(similar(a, b), dtype=bool) if len(a) else np.zeros(0, dtype=bool)
        srcs.append(keys[a[ok]])
        dsts.append(keys[b[ok]])
        rows = b[~ok]  # still sorted by (hash, key): the next round's stars
    if not srcs:
        empty = np.zeros(0, dtype=np.uint64)
        return empty, empty.copy()
    return unique_pairs(np.concatenate(srcs), np.concatenate(dsts))


# ---------------------------------------------------------------------------------------------
# Connected components
# ---------------------------------------------------------------------------------------------


def _min_labels_numpy(u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """Parent array in which each node points at the smallest node index of its component.

    Shiloach-Vishkin style: with every tree a star (all parents are roots), each root is hooked onto
    the smallest root it shares an edge with (`np.minimum.at`), then pointer jumping flattens the
    trees again. Parents only decrease and parent[x] <= x, so there are no cycles and each
    component's root is its minimum index. Rounds repeat until no edge joins two trees; a round
    hooks every tree that is not a local minimum among its neighbours, so few rounds are needed.
    Edges inside one tree are dropped after each round, so later rounds touch few edges.
    """
    parent = np.arange(n, dtype=u.dtype)
    while len(u):
        pu, pv = parent[u], parent[v]
        cross = pu != pv
        if not cross.any():
            break
        u, v, pu, pv = u[cross], v[cross], pu[cross], pv[cross]
        low = np.minimum(pu, pv)
        np.minimum.at(parent, pu, low)
        np.minimum.at(parent, pv, low)
        while True:  # pointer jumping until every node points at a root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent


def _min_labels_scipy(u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """As `_min_labels_numpy`, via scipy's C union-find, then the minimum index per label."""
    # float32 ones: duplicate edges are summed, which must never wrap round to an explicit zero.
    graph = _coo_matrix((np.ones(len(u), dtype=np.float32), (u, v)), shape=(n, n)).tocsr()
    _, labels = _scipy_components(graph, directed=True, connection="weak")
    lowest = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(lowest, labels, np.arange(n, dtype=np.int64))
    return lowest[labels]


def connected_components(
    src: np.ndarray, dst: np.ndarray, backend: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, roots): every key in an edge, sorted, and the smallest key of its component.

    `backend` is "numpy", "scipy" (if importable) or "auto" (= "numpy", measured as fast or faster).
    Self-loops are allowed (they make a node its own component).
    """
    src = np.asarray(src, dtype=np.uint64).ravel()
    dst = np.asarray(dst, dtype=np.uint64).ravel()
    if src.shape != dst.shape:
        raise ValueError(f"src and dst differ in length: {src.shape} vs {dst.shape}")
    if backend not in ("auto", "numpy", "scipy"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'scipy', got {backend!r}")
    if backend == "scipy" and _scipy_components is None:
        raise ValueError("backend 'scipy' requested but scipy is not installed")
    # Dense indices in key order, so the smallest index of a component is its smallest key.
    nodes, inverse = np.unique(np.concatenate((src, dst)), return_inverse=True)
    n = len(nodes)
    if n == 0:
        return nodes, nodes.copy()
    index = np.int32 if n < 2**31 else np.int64  # halves index memory for typical partitions
    inverse = inverse.astype(index, copy=False)
    u, v = inverse[: len(src)], inverse[len(src) :]
    parent = _min_labels_scipy(u, v, n) if backend == "scipy" else _min_labels_numpy(u, v, n)
    return nodes, nodes[parent]


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


def removal_keys(nodes: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """Keys of documents to drop: every clustered node that is not its cluster's keeper (root)."""
    nodes = np.asarray(nodes, dtype=np.uint64)
    roots = np.asarray(roots, dtype=np.uint64)
    if nodes.shape != roots.shape:
        raise ValueError("nodes and roots differ in length")
    return np.sort(nodes[nodes != roots])


def cluster_sizes(roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Histogram (size, number of clusters of that size), both int64, sizes ascending.

    Only documents that appear in an edge are counted, so every size is >= 2 for forests from
    `candidate_edges` (documents without candidates are not in any forest).
    """
    roots = np.asarray(roots, dtype=np.uint64)
    if roots.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    _, per_cluster = np.unique(roots, return_counts=True)
    sizes, counts = np.unique(per_cluster, return_counts=True)
    return sizes.astype(np.int64), counts.astype(np.int64)
