"""The connected-components stages of a MinHash dedup run: edge files, round tasks and the results.

Files under the run's work dir (OUT/.dedup), all `.npy` arrays of uint64 rows, written under temp
names and renamed:

    cc-<i>/edges/<p>/<sender>.npy   step i's input for partition p: (2, n) edges (hi, lo), one file
                                    per unit of the stage before (bucket partitions for step 0, else K)
    cc-<i>/labels/<p>.npy           a large-star step whose partition p is settled: (2, n) (node, root)
    cc-<i>/clusters/<p>.npy         and its stars, (3, n) (keeper, smallest other member, size)
    cc-<i>/.done/<p>.json           markers
    components/labels/00000.npy     the `components` stage (one unit), same formats
    groups/labels/<p>.npy           exact and url dedup: each bucket partition's groups, same formats

With K partitions and R = `stars.round_limit(documents)`, stage `cc-<i>` (i < S = 2R - 1, none for
K = 1) runs large-star on even and small-star on odd steps, K units each, then `components` (one
unit) finishes in one task what the rounds left. A large-star step all of whose K partitions are
settled holds the result (`converged_step`); every later stage is then a no-op (`needed`: the
driver skips it, locally or in a Slurm task started for it; a unit run anyway only writes its
marker). `components` thus runs
only with K = 1, where it is the whole clustering (as the single final merge of a tree reduction
was), or if the rounds did not settle in R (never seen: about log2(n) + 1 rounds suffice on paths
of n documents in key order, the slowest graphs tried); it then warns, as it holds every edge.
"""

from __future__ import annotations

import dataclasses
import glob
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_pipeline.dedup.clusters import connected_components
from data_pipeline.dedup.stars import cluster_rows, edge_set, large_star, route, small_star
from data_pipeline.io import atomic_path
from data_pipeline.shard import Interrupted, ShardStats, marker_path, shard_task

COMPONENTS = "components"  # stage and directory of the one-task components
GROUPS = "groups"  # exact/url: the buckets stage's markers and results

# Where results may be: (directory, number of label files), first complete one wins.
Results = list[tuple[str, int]]


def step_dir(work: Path, step: int) -> Path:
    return work / f"cc-{step}"


def _name(index: int) -> str:
    return f"{index:05d}.npy"


def save_rows(path: Path, rows: np.ndarray) -> None:
    """Write a uint64 array atomically, first removing temp files a killed writer left for `path`."""
    for stale in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(rows, dtype=np.uint64), allow_pickle=False)


def load_rows(path: Path, mmap: bool = False) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def send_edges(
    work: Path, step: int, sender: int, hi: np.ndarray, lo: np.ndarray, parts: int, both_ends: bool
) -> None:
    """Write step `step`'s input from `sender`: one file per partition, empty ones too."""
    for p, rows in enumerate(route(hi, lo, parts, both_ends)):
        save_rows(step_dir(work, step) / "edges" / f"{p:05d}" / _name(sender), rows)


def read_edges(work: Path, step: int, part: int, senders: int) -> tuple[np.ndarray, np.ndarray]:
    """Partition `part`'s input edges of step `step`, distinct and sorted."""
    folder = step_dir(work, step) / "edges" / f"{part:05d}"
    rows = [load_rows(folder / _name(s)) for s in range(senders)]
    both = np.concatenate(rows, axis=1) if rows else np.zeros((2, 0), dtype=np.uint64)
    return edge_set(both[0], both[1])


def write_results(folder: Path, part: int, nodes: np.ndarray, roots: np.ndarray, clusters: tuple) -> None:
    """Labels (node -> root, sorted by node) and clusters (sorted by keeper) of one partition."""
    order = np.argsort(nodes, kind="stable")
    # One dtype before stacking: uint64 with int64 sizes would make float64.
    save_rows(folder / "clusters" / _name(part), np.stack([np.asarray(c, dtype=np.uint64) for c in clusters]))
    save_rows(folder / "labels" / _name(part), np.stack((nodes[order], roots[order])))


def _complete(folder: Path, files: int) -> bool:
    """Whether every unit writing to `folder` wrote its labels and finished (its marker)."""
    units = (Path(f"{p:05d}") for p in range(files))
    return all((folder / "labels" / f"{u}.npy").is_file() and marker_path(folder, u).is_file() for u in units)


def converged_step(work: Path, parts: int, steps: int) -> int | None:
    """The first large-star step before `steps` that settled in every partition, if any."""
    return next((i for i in range(0, steps, 2) if _complete(step_dir(work, i), parts)), None)


def cc_results(work: Path, parts: int, steps: int) -> Results:
    """Where a MinHash run's labels may be: the large-star steps in order, then `components`."""
    return [(str(step_dir(work, i)), parts) for i in range(0, steps, 2)] + [(str(work / COMPONENTS), 1)]


def find_results(results: Results) -> tuple[Path, int]:
    """(directory, label files) of the first complete candidate: the run's final labels and clusters."""
    for folder, files in results:
        if _complete(Path(folder), files):
            return Path(folder), files
    raise FileNotFoundError(f"no dedup clusters under {Path(results[0][0]).parent}: run the stages before")


@dataclasses.dataclass
class StarTask:
    """Stage `cc-<step>`: unit p runs large-star (even steps) or small-star (odd) on partition p."""

    work: Path
    step: int
    parts: int  # K
    senders: int  # units of the stage before: bucket partitions for step 0, else K
    out_dir: Path  # markers

    def setup(self) -> None:
        pass

    def needed(self) -> bool:
        return converged_step(self.work, self.parts, self.step) is None

    def __call__(
        self,
        unit: Path,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ShardStats:
        with shard_task(self.out_dir, unit) as stats:
            if not self.needed():
                return stats
            part = int(unit.name)
            hi, lo = read_edges(self.work, self.step, part, self.senders)
            if should_stop():
                raise Interrupted(unit.name)
            if self.step % 2 == 0:
                star = large_star(hi, lo, part, self.parts)
                if star.unsettled == 0:
                    clusters = (star.keepers, star.members, star.sizes)
                    write_results(self.out_dir, part, star.nodes, star.roots, clusters)
                out_hi, out_lo = star.hi, star.lo
            else:
                out_hi, out_lo = small_star(hi, lo)
            send_edges(
                self.work, self.step + 1, part, out_hi, out_lo, self.parts, both_ends=self.step % 2 == 1
            )
            progress(1)
            stats.docs_in, stats.docs_out = len(hi), len(out_hi)  # edges
        return stats


@dataclasses.dataclass
class ComponentsTask:
    """Stage `components` (one unit): components of the edges the rounds left, in one task."""

    work: Path
    parts: int
    steps: int  # rounds before it: it reads cc-<steps>/edges
    senders: int
    out_dir: Path

    def setup(self) -> None:
        pass

    def needed(self) -> bool:
        return converged_step(self.work, self.parts, self.steps) is None

    def __call__(
        self,
        unit: Path,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ShardStats:
        with shard_task(self.out_dir, unit) as stats:
            if not self.needed():
                return stats
            if self.steps:
                print(
                    f"warning: connected components did not settle in {self.steps} steps; finishing in "
                    "one task, which holds every edge",
                    file=sys.stderr,
                )
            edges = [read_edges(self.work, self.steps, p, self.senders) for p in range(self.parts)]
            hi = np.concatenate([e[0] for e in edges])
            lo = np.concatenate([e[1] for e in edges])
            if should_stop():
                raise Interrupted(unit.name)
            nodes, roots = connected_components(hi, lo)
            write_results(self.out_dir, 0, nodes, roots, cluster_rows(nodes, roots))
            progress(1)
            stats.docs_in, stats.docs_out = len(hi), len(nodes)
        return stats


def read_labels(folder: Path, files: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, roots) of the nodes in [lo, hi), sorted; only that slice of each file is read."""
    bounds = np.array([lo, hi], dtype=np.uint64)
    parts = []
    for p in range(files):
        rows = load_rows(folder / "labels" / _name(p), mmap=True)
        a, b = np.searchsorted(rows[0], bounds)
        parts.append(np.array(rows[:, a:b]))
    rows = np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), dtype=np.uint64)
    order = np.argsort(rows[0], kind="stable")
    return rows[0][order], rows[1][order]


@dataclasses.dataclass
class ClusterSummary:
    clusters: int
    documents: int  # in clusters, keepers included
    sizes: dict[int, int]  # cluster size -> clusters of that size, ascending
    examples: list[tuple[int, int, int]]  # (keeper, smallest other member, size)


def _at_rank(keepers: list[np.ndarray], rank: int) -> tuple[int, int]:
    """(file, row) of the rank-th smallest key over sorted arrays of distinct keys (value bisection)."""
    lo, hi = 0, 2**64 - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(int(np.searchsorted(k, np.uint64(mid), side="right")) for k in keepers) > rank:
            hi = mid
        else:
            lo = mid + 1
    for f, k in enumerate(keepers):
        i = int(np.searchsorted(k, np.uint64(lo)))
        if i < len(k) and int(k[i]) == lo:
            return f, i
    raise IndexError(f"rank {rank} beyond {sum(len(k) for k in keepers)} keys")


def summarize_clusters(folder: Path, files: int, n_examples: int) -> ClusterSummary:
    """Counts, size histogram and example clusters: the largest (smallest keeper among equals), then
    clusters at even steps of keeper order. Files are memory-mapped, each read whole only for its sizes."""
    tables = [load_rows(folder / "clusters" / _name(p), mmap=True) for p in range(files)]
    hist: Counter[int] = Counter()
    documents, largest = 0, (0, 0, 0, 0)  # (size, -keeper, file, row)
    for f, rows in enumerate(tables):
        sizes = np.asarray(rows[2])
        if len(sizes):
            values, counts = np.unique(sizes, return_counts=True)
            hist.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
            documents += int(sizes.sum())
            i = int(np.argmax(sizes))  # the first of the largest: its smallest keeper
            largest = max(largest, (int(sizes[i]), -int(rows[0][i]), f, i))
    clusters = sum(hist.values())
    examples: list[tuple[int, int, int]] = []
    if clusters:
        keepers = [rows[0] for rows in tables]
        size, neg_keeper, f_big, i_big = largest
        big_rank = sum(int(np.searchsorted(k, np.uint64(-neg_keeper))) for k in keepers)
        step = max(1, clusters // max(1, n_examples - 1))
        for rank in list(dict.fromkeys([big_rank, *range(0, clusters, step)]))[:n_examples]:
            f, i = (f_big, i_big) if rank == big_rank else _at_rank(keepers, rank)
            examples.append((int(tables[f][0][i]), int(tables[f][1][i]), int(tables[f][2][i])))
    return ClusterSummary(clusters, documents, dict(sorted(hist.items())), examples)
