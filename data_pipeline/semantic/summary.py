"""What one cluster partition found, summarised so that summaries of all partitions merge exactly.

Each partition's summary (stored in its decisions file by the cluster stage) holds counts, which
add up, and a few candidate example pairs per kind, ranked by (cosine, key): the report's examples
are the best of the union, the same as if one task had seen the whole corpus.

Example kinds, chosen to help pick eps: `closest` (removed pairs of highest cosine: the copies),
`borderline` (removed pairs of lowest cosine: what the threshold only just removed) and `kept`
(near misses: kept documents of highest cosine to an earlier kept member, just under the threshold).
"""

from __future__ import annotations

import math

import numpy as np

EXAMPLES_PER_KIND = 2


def size_bucket(size: int) -> str:
    """Decade label of a cluster size: 1, 2-9, 10-99, 100-999, ..."""
    if size <= 1:
        return "1"
    lo = 10 ** int(math.log10(size))
    return f"{max(2, lo)}-{10 * lo - 1}"


def _pairs(keys: np.ndarray, dup_key: np.ndarray, sim: np.ndarray, rows: np.ndarray, highest: bool) -> list:
    """[cosine, kept key, other key] of `rows`, the EXAMPLES_PER_KIND of highest or lowest cosine."""
    if not len(rows):
        return []
    score = -sim[rows].astype(np.float64) if highest else sim[rows].astype(np.float64)
    pick = rows[np.lexsort((keys[rows], score))][:EXAMPLES_PER_KIND]
    return [[float(sim[i]), int(dup_key[i]), int(keys[i])] for i in pick]


def partition_summary(
    keys: np.ndarray,
    clusters: np.ndarray,
    removed: np.ndarray,
    max_sim: np.ndarray,
    dup_key: np.ndarray,
    swept: dict[float, int],
) -> dict:
    """Counts and example candidates of one partition's decisions (all arrays row-aligned)."""
    sizes = np.unique(clusters, return_counts=True)[1] if len(clusters) else np.zeros(0, np.int64)
    histogram: dict[str, int] = {}
    for size in sizes.tolist():
        histogram[size_bucket(size)] = histogram.get(size_bucket(size), 0) + 1
    has_sim = ~np.isnan(max_sim)
    kept_near = np.flatnonzero(~removed & has_sim)
    gone = np.flatnonzero(removed)
    return {
        "documents": int(len(keys)),
        "clusters": int(len(sizes)),
        "largest_cluster": int(sizes.max()) if len(sizes) else 0,
        "cluster_sizes": histogram,
        "removed": int(removed.sum()),
        "sweep": {repr(e): n for e, n in swept.items()},
        "examples": {
            "closest": _pairs(keys, dup_key, max_sim, gone, highest=True),
            "borderline": _pairs(keys, dup_key, max_sim, gone, highest=False),
            "kept": _pairs(keys, dup_key, max_sim, kept_near, highest=True),
        },
    }


def merge_summaries(summaries: list[dict]) -> dict:
    """One summary of several partitions' (counts added, the best example candidates kept)."""
    out: dict = {"documents": 0, "clusters": 0, "largest_cluster": 0, "cluster_sizes": {}, "removed": 0}
    sweep: dict[str, int] = {}
    pools: dict[str, list] = {"closest": [], "borderline": [], "kept": []}
    for s in summaries:
        for name in ("documents", "clusters", "removed"):
            out[name] += s[name]
        out["largest_cluster"] = max(out["largest_cluster"], s["largest_cluster"])
        for label, n in s["cluster_sizes"].items():
            out["cluster_sizes"][label] = out["cluster_sizes"].get(label, 0) + n
        for e, n in s["sweep"].items():
            sweep[e] = sweep.get(e, 0) + n
        for kind, pairs in s["examples"].items():
            pools[kind] += pairs
    order = sorted(out["cluster_sizes"], key=lambda label: int(label.split("-")[0]))
    out["cluster_sizes"] = {label: out["cluster_sizes"][label] for label in order}
    out["sweep"] = {e: sweep[e] for e in sorted(sweep, key=float)}
    out["examples"] = {
        "closest": sorted(pools["closest"], key=lambda p: (-p[0], p[2]))[:EXAMPLES_PER_KIND],
        "borderline": sorted(pools["borderline"], key=lambda p: (p[0], p[2]))[:EXAMPLES_PER_KIND],
        "kept": sorted(pools["kept"], key=lambda p: (-p[0], p[2]))[:EXAMPLES_PER_KIND],
    }
    return out
