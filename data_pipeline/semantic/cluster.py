"""Which members of one k-means cluster SemDeDup removes, block by block, for one or several eps.

Rule (the issue's `--eps`: "remove if cosine >= 1-eps to a kept document"): the members are put in
keep-priority order (`priority_order`), then, in that order, a member is removed when its cosine to
some earlier member that was KEPT is >= 1 - eps; otherwise it is kept. This greedy rule is what
"keep one document per group of near-duplicates" means: a chain a~b~c with a and c far apart keeps
a and c. SemDeDup's reference code instead removes a member whose cosine to ANY earlier member,
kept or removed, exceeds 1 - eps (the column maximum of the upper triangle of the similarity
matrix), which would also drop c; it removes a superset of what this rule removes.

Keep policies (the order in which members claim to be kept; ties always by the stable document key,
so the result does not depend on the order of the input rows):
- `hard`: farthest from the centroid first. SemDeDup's default ("keep hard examples": its reference
  code sorts each cluster by distance to the centroid, descending, and keeps the first member of
  each group), and the default here: within a group of near-copies (cosine >= 0.9) the content
  barely differs, and the copy farthest from the cluster's centre is its least typical version;
- `easy`: closest to the centroid first (the most typical member);
- `random`: order of a seeded hash of the document key (independent of cluster and input order);
- `first`: corpus order, smallest key first, as exact and MinHash dedup keep (data_pipeline/dedup/).

Memory and work: members are processed in blocks of `block` rows. A block is compared with the
earlier kept members `block` columns at a time, then with itself; no similarity matrix is ever larger
than `block x block`, so a 100k-member cluster needs no 100k x 100k matrix.

Precision: similarities are float64 products of the rows (float16/32 input, normalised in float64
tile by tile, so the sorted copy of the cluster stays in the input dtype).
In float32 the last bit of a product depends on the tile shape BLAS sees, so a pair whose cosine
lies within ~1e-7 of 1 - eps could be removed with one block size and kept with another, or differ
between a sweep and a single run; float64's ~1e-16 error makes the decisions independent of
`block` in practice. The cost is small: a 1024 x 1024 x 384 tile takes 26 ms in float64 against
14 ms in float32 on one AMD EPYC core, while the encoder spends ~10 GFLOP per 256-token document.
`max_sim` is reported as float32.

Eps sweep: `dedup_cluster_sweep` answers several eps values in one pass. Under the kept rule the
removed set of each eps depends on its own kept set (the sets are not even nested), so each eps runs
its own greedy. The pass shares the expensive part: every block is multiplied once with the members
kept under ANY of the eps values, and each eps then masks the columns to its own kept members. The
result equals separate runs exactly (tests/test_semantic_cluster.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

Policy = Literal["hard", "easy", "random", "first"]
POLICIES: tuple[str, ...] = get_args(Policy)
DEFAULT_POLICY: Policy = "hard"
DEFAULT_BLOCK = 1024
SWEEP_EPS = (0.01, 0.05, 0.1)


@dataclass(frozen=True)
class ClusterResult:
    """Per input row (same order as the input): the decision and why."""

    removed: np.ndarray  # bool
    max_sim: np.ndarray  # float32: max cosine to an earlier kept member; NaN for the first member
    duplicate_of: np.ndarray  # int64: input row of that kept member; -1 for the first member
    order: np.ndarray  # int64: input rows in keep-priority order


def _sim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine block `a @ b.T` of unit rows; the only product of the cluster step (tests record it)."""
    return a @ b.T


def _mix64(keys: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 finaliser of `keys ^ seed`: a seeded, well-spread order of document keys."""
    with np.errstate(over="ignore"):
        z = keys.astype(np.uint64) ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def priority_order(keys: np.ndarray, dists: np.ndarray, policy: Policy, seed: int = 0) -> np.ndarray:
    """Input rows in the order in which they claim to be kept; ties broken by the document key."""
    keys = np.asarray(keys)
    if len(np.unique(keys)) != len(keys):
        raise ValueError("document keys of a cluster must be unique")
    dists = np.asarray(dists, dtype=np.float64)
    if policy == "hard":
        return np.lexsort((keys, -dists)).astype(np.int64)
    if policy == "easy":
        return np.lexsort((keys, dists)).astype(np.int64)
    if policy == "random":
        return np.lexsort((keys, _mix64(keys, seed))).astype(np.int64)
    if policy == "first":
        return np.argsort(keys, kind="stable").astype(np.int64)
    raise ValueError(f"unknown keep policy {policy!r}; expected one of {POLICIES}")


class _Rows:
    """The cluster's rows in priority order, handed out as float64 unit rows one tile at a time."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
        self.inv = 1.0 / np.maximum(norms, 1e-300)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: slice | np.ndarray) -> np.ndarray:
        return self.x[idx].astype(np.float64) * self.inv[idx, None]


def _earlier_kept(
    xb: np.ndarray, x: _Rows, kept: np.ndarray, stop: int, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Best (cosine, sorted position) of each block row among rows < `stop` kept per eps column."""
    n_eps = kept.shape[1]
    best = np.full((len(xb), n_eps), -np.inf)
    arg = np.full((len(xb), n_eps), -1, dtype=np.int64)
    prev = np.flatnonzero(kept[:stop].any(axis=1))
    rows = np.arange(len(xb))
    for c0 in range(0, len(prev), block):
        cols = prev[c0 : c0 + block]
        s = _sim(xb, x[cols])
        for e in range(n_eps):
            mask = kept[cols, e]
            if not mask.any():
                continue
            se = s if mask.all() else np.where(mask[None, :], s, -np.inf)
            j = se.argmax(axis=1)
            v = se[rows, j]
            better = v > best[:, e]  # strict: on ties the earlier chunk (earlier member) wins
            best[better, e] = v[better]
            arg[better, e] = cols[j[better]]
    return best, arg


def _block_greedy(
    s: np.ndarray, earlier: np.ndarray, prev_best: np.ndarray, thr: float, active: np.ndarray
) -> np.ndarray:
    """Kept flags of one block's rows, in order, given their best cosine to earlier blocks' kept rows.

    `earlier` is the strict lower triangle (row j, column i < j). Only rows with an in-block earlier
    neighbour >= thr need the sequential decision; the others are kept iff no earlier block's kept
    member reaches thr. Inactive rows are never kept (nor counted as removed by the caller)."""
    kept = (prev_best < thr) & active
    near = (s >= thr) & earlier
    for j in np.flatnonzero(near.any(axis=1) & kept):
        if (near[j, :j] & kept[:j]).any():
            kept[j] = False
    return kept


def _in_block_best(s: np.ndarray, earlier: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best (cosine, row) of each block row among the earlier kept rows of the same block."""
    masked = np.where(earlier & kept[None, :], s, -np.inf)
    j = masked.argmax(axis=1)
    return masked[np.arange(len(s)), j], j


def _sweep_sorted(
    x: _Rows, thresholds: Sequence[float], block: int, active: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy over the rows `x`, already in priority order, one column per threshold; `active` (n, E)
    says which rows take part for each threshold.

    Returns kept (n, E) bool, best cosine to an earlier kept row (n, E) float64 (-inf if none) and
    its sorted position (n, E) int64 (-1 if none)."""
    n, n_eps = len(x), len(thresholds)
    kept = np.zeros((n, n_eps), dtype=bool)
    best = np.full((n, n_eps), -np.inf)
    arg = np.full((n, n_eps), -1, dtype=np.int64)
    for b0 in range(0, n, block):
        xb = x[b0 : b0 + block]
        pb, pa = _earlier_kept(xb, x, kept, b0, block)
        s = _sim(xb, xb)
        earlier = np.tri(len(xb), len(xb), -1, dtype=bool)
        for e, thr in enumerate(thresholds):
            k = _block_greedy(s, earlier, pb[:, e], thr, active[b0 : b0 + len(xb), e])
            v, j = _in_block_best(s, earlier, k)
            inside = v > pb[:, e]  # strict: on ties the earlier block's member wins
            best[b0 : b0 + len(xb), e] = np.where(inside, v, pb[:, e])
            arg[b0 : b0 + len(xb), e] = np.where(inside, b0 + j, pa[:, e])
            kept[b0 : b0 + len(xb), e] = k
    return kept, best, arg


def dedup_cluster_sweep(
    embeddings: np.ndarray,
    keys: np.ndarray,
    dists: np.ndarray,
    eps: Sequence[float] = SWEEP_EPS,
    *,
    policy: Policy = DEFAULT_POLICY,
    block: int = DEFAULT_BLOCK,
    seed: int = 0,
    active: np.ndarray | None = None,
) -> dict[float, ClusterResult]:
    """One cluster's decisions for every eps in one pass: {eps: ClusterResult}, each exact.

    `embeddings` (float16/32 rows), `keys` (unique document keys) and `dists` (cosine distance to
    the centroid, from kmeans.assign) describe the same members in the same order. `active` (n, E
    bool, default all) leaves members out for some eps: a member already removed under that eps
    (an earlier round) is neither kept nor removed again, as if it were not in the cluster."""
    if block < 1:
        raise ValueError("block must be >= 1")
    n = len(keys)
    if len(embeddings) != n or len(dists) != n:
        raise ValueError("embeddings, keys and dists must have one row per member")
    act = np.ones((n, len(eps)), dtype=bool) if active is None else np.asarray(active, dtype=bool)
    if act.shape != (n, len(eps)):
        raise ValueError(f"active must have shape {(n, len(eps))}, got {act.shape}")
    order = priority_order(keys, dists, policy, seed)
    emb = np.asarray(embeddings)
    x = _Rows(emb[order])
    act = act[order]
    kept, best, arg = _sweep_sorted(x, [1.0 - float(e) for e in eps], block, act)
    out = {}
    for e_idx, e in enumerate(eps):
        removed = np.zeros(n, dtype=bool)
        max_sim = np.full(n, np.nan, dtype=np.float32)
        dup = np.full(n, -1, dtype=np.int64)
        has = (arg[:, e_idx] >= 0) & act[:, e_idx]
        removed[order] = act[:, e_idx] & ~kept[:, e_idx]
        max_sim[order[has]] = best[has, e_idx]
        dup[order[has]] = order[arg[has, e_idx]]
        out[float(e)] = ClusterResult(removed, max_sim, dup, order)
    return out


def dedup_cluster(
    embeddings: np.ndarray,
    keys: np.ndarray,
    dists: np.ndarray,
    eps: float,
    *,
    policy: Policy = DEFAULT_POLICY,
    block: int = DEFAULT_BLOCK,
    seed: int = 0,
    active: np.ndarray | None = None,
) -> ClusterResult:
    """One cluster's decisions for one eps: remove a member if cosine >= 1 - eps to an earlier kept one."""
    act = None if active is None else np.asarray(active, dtype=bool).reshape(-1, 1)
    out = dedup_cluster_sweep(
        embeddings, keys, dists, [eps], policy=policy, block=block, seed=seed, active=act
    )
    return out[float(eps)]
