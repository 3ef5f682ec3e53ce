"""Connected components of hash-partitioned edges in rounds: large-star and small-star.

Kiveris, Lattanzi, Mirrokni, Rastogi and Vassilvitskii (2014), "Connected Components in MapReduce
and Beyond". The graph is a set of undirected edges stored as (hi, lo), hi > lo (document keys,
`clusters.doc_key`); two operations alternate, each a function of one node's neighbourhood only:

- large-star(u): link every neighbour v > u to m(u), the smallest of u and its neighbours;
- small-star(u): link u and every neighbour v < u to the smallest of those.

Each new edge joins two nodes that were connected and each dropped edge is replaced by a path
through m, so components never change while labels only go down. The fixed point is one star per
component, centred on its smallest node: no node has two smaller neighbours, or both a smaller and
a larger one (`LargeStar.unsettled` counts the nodes that do). The paper proves O(log^2 n) rounds;
paths with keys in order, the slowest graphs tried here, take about log2(n) + 1 rounds, random
sparse graphs 5-9 (tests/test_dedup_components.py), hence `round_limit`.

Sharding: node u belongs to partition `node_partition(u, K)`. large-star needs all edges of the
nodes it owns, so its input holds every edge in the partitions of both ends; small-star needs each
node's edges to smaller neighbours, so its input holds every edge in the partition of its larger
end. A task therefore holds about 2E/K edges (large-star) or E/K (small-star), plus what high-degree
nodes add: a component's smallest node ends up linked to every member, so its partition holds that
component's edges (16 bytes per member) in the last rounds.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from data_pipeline.dedup.clusters import partition_of, unique_pairs
from data_pipeline.dedup.minhash import _fmix64  # MurmurHash3's 64-bit finalizer

# Rounds beyond log2(documents) before `round_limit` gives up on the rounds (sorted paths need +1).
EXTRA_ROUNDS = 2


def node_partition(nodes: np.ndarray, parts: int) -> np.ndarray:
    """Partition in [0, parts) of each node key, int64; keys `(shard << 32) | row` are mixed first,
    as `partition_of` reads the top bits, here the shard index."""
    return partition_of(_fmix64(np.asarray(nodes, dtype=np.uint64)), parts)


def round_limit(docs: int) -> int:
    """Large-star rounds planned for a corpus of `docs` documents (an upper bound on a component)."""
    return math.ceil(math.log2(max(docs, 2))) + EXTRA_ROUNDS


def edge_set(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct undirected edges as (hi, lo), hi > lo, sorted; self-loops dropped."""
    a = np.asarray(a, dtype=np.uint64).ravel()
    b = np.asarray(b, dtype=np.uint64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"edge ends differ in length: {a.shape} vs {b.shape}")
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    linked = hi != lo
    return unique_pairs(hi[linked], lo[linked])


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Index of the first row of each run of equal keys."""
    first = np.empty(len(sorted_keys), dtype=bool)
    first[:1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    return np.flatnonzero(first)


@dataclasses.dataclass
class LargeStar:
    """What large-star gives for the nodes of one partition."""

    hi: np.ndarray  # new edges (hi, lo)
    lo: np.ndarray
    unsettled: int  # owned nodes with two smaller neighbours, or a smaller and a larger one
    nodes: np.ndarray  # owned nodes, sorted, and the smallest of each one's neighbourhood:
    roots: np.ndarray  # its component's smallest node once no partition is unsettled
    keepers: np.ndarray  # owned nodes with only larger neighbours (star centres), sorted,
    members: np.ndarray  # their smallest neighbour
    sizes: np.ndarray  # and 1 + their degree (int64): the clusters, once settled


def large_star(hi: np.ndarray, lo: np.ndarray, part: int, parts: int) -> LargeStar:
    """Large-star of the nodes of partition `part` given every edge that touches one of them."""
    mine_hi = node_partition(hi, parts) == part
    mine_lo = node_partition(lo, parts) == part
    u = np.concatenate((hi[mine_hi], lo[mine_lo]))  # each edge seen from each owned end
    v = np.concatenate((lo[mine_hi], hi[mine_lo]))
    if len(u) == 0:
        empty = np.zeros(0, dtype=np.uint64)
        return LargeStar(empty, empty, 0, empty, empty, empty, empty, np.zeros(0, dtype=np.int64))
    order = np.argsort(u, kind="stable")
    u, v = u[order], v[order]
    start = _group_starts(u)
    nodes = u[start]
    low = np.minimum.reduceat(v, start)
    roots = np.minimum(low, nodes)
    up = v > u
    n_up = np.add.reduceat(up.astype(np.int64), start)
    n_down = np.diff(np.append(start, len(u))) - n_up
    unsettled = int(np.count_nonzero((n_down > 1) | ((n_down > 0) & (n_up > 0))))
    root_of_row = np.repeat(roots, np.diff(np.append(start, len(u))))
    centre = n_down == 0
    return LargeStar(
        hi=v[up],
        lo=root_of_row[up],
        unsettled=unsettled,
        nodes=nodes,
        roots=roots,
        keepers=nodes[centre],
        members=low[centre],
        sizes=n_up[centre] + 1,
    )


def small_star(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Small-star of every `hi` node, given its edges to smaller nodes sorted by (hi, lo) (`edge_set`)."""
    if len(hi) == 0:
        return hi, lo
    start = _group_starts(hi)
    smallest = np.repeat(lo[start], np.diff(np.append(start, len(hi))))
    other = lo != smallest
    return np.concatenate((hi[start], lo[other])), np.concatenate((lo[start], smallest[other]))


def route(hi: np.ndarray, lo: np.ndarray, parts: int, both_ends: bool) -> list[np.ndarray]:
    """Per partition, the edges it receives as a (2, n) uint64 array, in input order.

    An edge goes to the partition of its larger end (small-star's input) and, with `both_ends`,
    also to that of its smaller end (large-star's input). Repeats are left to the receiver, which
    sorts and dedups its input anyway (`edge_set`): sorting here as well doubled a round's time.
    """
    dest = node_partition(hi, parts)
    if both_ends:
        other = node_partition(lo, parts)
        extra = other != dest
        hi, lo, dest = (np.concatenate((x, y[extra])) for x, y in ((hi, hi), (lo, lo), (dest, other)))
    # A stable sort of small integers is a linear-time radix sort in NumPy.
    order = np.argsort(dest.astype(np.uint16) if parts <= 1 << 16 else dest, kind="stable")
    bounds = np.searchsorted(dest[order], np.arange(parts + 1))
    return [np.stack((hi[order[a:b]], lo[order[a:b]])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def cluster_rows(nodes: np.ndarray, roots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keeper, smallest other member, size) of each cluster of a (node -> keeper) map, by keeper.

    Every cluster must have a member besides its keeper (clusters come from edges or groups of 2+).
    """
    order = np.lexsort((nodes, roots))
    nodes, roots = nodes[order], roots[order]
    start = _group_starts(roots)
    sizes = np.diff(np.append(start, len(roots))).astype(np.int64)
    other = nodes != roots
    first_other = np.unique(roots[other], return_index=True)[1]
    return roots[start], nodes[other][first_other], sizes
