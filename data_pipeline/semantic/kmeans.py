"""Spherical k-means on a seeded sample of unit embeddings, and batched nearest-centroid assignment.

SemDeDup clusters the embeddings first so that the pairwise step only compares documents of one
cluster. Here the clustering is trained on a seeded sample (`sample_indices`), then `assign` puts
every document of the corpus on its nearest centroid, batch by batch (a `batch x k` score block at
a time, never `n x k`).

Choices:
- cosine geometry: rows are L2-normalised, a point goes to the centroid of highest dot product, and
  each centroid is its members' mean re-normalised to unit length every iteration. Inertia is
  `sum(1 - cos(x, centroid))`; on the unit sphere squared euclidean distance is `2 - 2 cos`, so
  this is half the euclidean inertia of the same unit centroids.
- init: `k` distinct sample rows drawn with `numpy.random.default_rng(seed)` (seeded random, as
  faiss does), not k-means++: k-means++ needs k sequential passes over the sample, each a
  memory-bound matrix-vector product (k = 1000 over 200,000 x 384 floats: 300 GB read, by estimate
  the time of ~20 Lloyd iterations).
- empty clusters (torch backend): re-seeded from the farthest points, i.e. the sample rows with the
  lowest cosine to their centroid of that iteration (ties: lowest row), one distinct row per empty
  cluster. A
  centroid whose members cancel out (zero mean) counts as empty. The faiss backend uses faiss'
  own rule (it splits a large cluster).
- stop: after `niter` iterations or as soon as no sample row changes cluster (torch backend; faiss
  always runs `niter`).

Determinism, bit for bit: same input and seed give the same centroids across runs; for the torch
backend also across batch sizes and thread counts, by construction. BLAS float32 products are not
batch-invariant (a 1-row or 7-row batch takes another kernel than a 1000-row one, so the last bit
of a score changes), yet an exact copy of a document must land in the same cluster wherever it sits
in its batch. So `assign` takes the BLAS argmax only where the top-2 gap exceeds twice the float32
dot-product error bound `gamma_d` (then it is the exact-arithmetic argmax); the few rows under that
margin (0.03-0.05% of bench/bench_kmeans.py's rows at k = 250 and 1000) are rescored in float64,
where products of float32 numbers are exact and the sum over `d` runs in a fixed order whatever
the batch. Distances to the chosen centroid are computed the same way for every row; centroid sums
are accumulated by a serial `index_add_` in row order. faiss' training has no such construction:
it is deterministic for a fixed thread count, and tests/test_semantic_cluster.py checks that 1 and
2 threads give the same centroids; `faiss_threads` defaults to torch's thread count.

Backends (bench/bench_kmeans.py, results in bench/RESULTS.md; 200,000 x 384 float32 unit rows,
k = 1000, 10 Lloyd iterations from the same initial centroids, 1 thread, AMD EPYC, 2 shared cores):
faiss.Kmeans(spherical=True) 1.56 s per iteration, torch 1.67 s, scikit-learn's KMeans (lloyd,
euclidean) 1.98 s. faiss and torch reach the same cosine inertia (113,715.15 both: the same
algorithm); scikit-learn's centroids, normalised, score 4.9% worse on that measure. At k = 250
(50,000 rows) faiss leads by 10% (0.117 vs 0.129 s). Both sit near the sgemm floor (about 1.5 s
per iteration for this shape); faiss, the faster, is the default for training. `assign` always
takes the torch path, whose labels are exact and batch-independent (102,000 rows/s for k = 1000).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Backend = Literal["torch", "faiss"]
DEFAULT_BACKEND: Backend = "faiss"
DEFAULT_BATCH = 8192
_EXACT_CHUNK_BYTES = 1 << 25
"""Working memory of the exact float64 rescoring of near-tie rows."""


@dataclass(frozen=True)
class KMeansResult:
    centroids: np.ndarray  # (k, d) float32, unit rows
    labels: np.ndarray  # (m,) int64, nearest centroid of each sample row
    dists: np.ndarray  # (m,) float32, 1 - cos to that centroid
    inertia: float  # sum of dists
    iterations: int  # Lloyd iterations run
    reseeded: int  # empty clusters re-seeded in all (torch backend)


def sample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted, distinct row indices of a seeded sample (all rows when size >= n)."""
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)


def normalize(x: np.ndarray) -> np.ndarray:
    """float32 copy of `x` with unit rows (all-zero rows stay zero)."""
    t = torch.from_numpy(np.require(x, np.float32, ["C_CONTIGUOUS", "WRITEABLE"]))
    return torch.nn.functional.normalize(t, dim=1).numpy()


def random_init(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """`k` distinct rows of `x`, drawn with the seed, as unit float32 centroids."""
    if k > len(x):
        raise ValueError(f"k={k} exceeds the {len(x)} sample rows")
    rows = np.random.default_rng(seed).choice(len(x), size=k, replace=False)
    return normalize(x[np.sort(rows)])


def _margin(d: int) -> float:
    """Twice the bound gamma_d = d u / (1 - d u) on a float32 dot product of unit vectors (u = 2^-24)."""
    du = d * 2.0**-24
    return 2.0 * 1.001 * du / (1.0 - du)


def _exact_cos(xb: torch.Tensor, c64: torch.Tensor) -> torch.Tensor:
    """Cosines of rows to all centroids in float64 with a per-row fixed summation order."""
    rows = max(1, _EXACT_CHUNK_BYTES // (8 * c64.numel()))
    x64 = xb.double()
    return torch.cat([(x64[i : i + rows, None, :] * c64[None]).sum(-1) for i in range(0, len(x64), rows)])


def _labels(xb: torch.Tensor, c32: torch.Tensor, c64: torch.Tensor) -> torch.Tensor:
    """Nearest centroid of unit rows `xb`, independent of the batch they sit in."""
    if c32.shape[0] == 1:
        return torch.zeros(len(xb), dtype=torch.int64)
    # NumPy on CPU: its OpenBLAS sgemm beats torch's MKL on AMD EPYC (17 vs 28 ms for 8192 x 384 x 250),
    # and its argmax/max top-2 beats torch.topk 4x; the result is exact either way (see _margin).
    scores = xb.numpy() @ c32.numpy().T
    rows = np.arange(len(scores))
    best = scores.argmax(axis=1)
    top = scores[rows, best]
    scores[rows, best] = -np.inf
    near = torch.from_numpy(np.flatnonzero(top - scores.max(axis=1) <= _margin(xb.shape[1])))
    labels = torch.from_numpy(best.astype(np.int64))
    if len(near):
        labels[near] = _exact_cos(xb[near], c64).argmax(dim=1)
    return labels


def _cos_to(xb: torch.Tensor, c64: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """float64 cosine of each row to its centroid, summed in a fixed per-row order."""
    return (xb.double() * c64[labels]).sum(1)


def _batches(x: np.ndarray, batch: int, unit: bool = False):
    """(start, unit float32 torch rows) of `x` (any float dtype), `batch` rows at a time; `unit`
    says the rows are already normalised float32."""
    for start in range(0, len(x), batch):
        part = np.require(x[start : start + batch], np.float32, ["C_CONTIGUOUS", "WRITEABLE"])
        rows = torch.from_numpy(part)  # a copy only where x is not float32 or read-only (a memmap)
        yield start, rows if unit else torch.nn.functional.normalize(rows, dim=1)


def assign(
    embeddings: np.ndarray, centroids: np.ndarray, batch: int = DEFAULT_BATCH
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid (int64) and cosine distance `1 - cos` (float32) of every row, in batches.

    Rows are normalised here, so float16 embeddings that are only nearly unit work too. The labels
    and distances do not depend on `batch` (see the module docstring)."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    c32 = torch.from_numpy(normalize(centroids))
    c64 = c32.double()
    labels = np.empty(len(embeddings), dtype=np.int64)
    dists = np.empty(len(embeddings), dtype=np.float32)
    for start, xb in _batches(embeddings, batch):
        lab = _labels(xb, c32, c64)
        labels[start : start + len(xb)] = lab.numpy()
        dists[start : start + len(xb)] = (1.0 - _cos_to(xb, c64, lab)).float().numpy()
    return labels, dists


def cosine_inertia(embeddings: np.ndarray, centroids: np.ndarray, batch: int = DEFAULT_BATCH) -> float:
    """sum(1 - cos) of every row to its nearest (normalised) centroid: one yardstick for all backends."""
    return float(assign(embeddings, centroids, batch)[1].astype(np.float64).sum())


def _reseed(c: torch.Tensor, x: np.ndarray, empty: np.ndarray, old: torch.Tensor, batch: int) -> None:
    """Move each empty centroid onto a distinct sample row farthest from its centroid in `old`
    (ties: lowest row). Rare, so the distances are computed only here, in one more pass."""
    dists = assign(x, old.numpy(), batch)[1]
    far = np.argsort(-dists, kind="stable")[: len(empty)]
    c[torch.from_numpy(empty)] = torch.from_numpy(x[far])


def _torch_kmeans(x: np.ndarray, init: np.ndarray, niter: int, batch: int) -> tuple[np.ndarray, int, int]:
    """Lloyd iterations on unit rows `x`: (centroids, iterations run, clusters re-seeded)."""
    k, d = init.shape
    c = torch.from_numpy(init.copy())
    labels = np.full(len(x), -1, dtype=np.int64)
    reseeded = iterations = 0
    while iterations < niter:
        iterations += 1
        c64 = c.double()
        sums = torch.zeros(k, d)
        changed = False
        for start, xb in _batches(x, batch, unit=True):
            lab = _labels(xb, c, c64)
            sl = slice(start, start + len(xb))
            changed |= bool((labels[sl] != lab.numpy()).any())
            labels[sl] = lab.numpy()
            sums.index_add_(0, lab, xb)  # serial, in row order: the same sums for any batch
        if not changed:
            break
        norms = sums.norm(dim=1)
        empty = torch.nonzero(norms <= 1e-12).flatten().numpy()
        old, c = c, sums / norms.clamp_min(1e-12)[:, None]
        if len(empty):
            _reseed(c, x, empty, old, batch)
            reseeded += len(empty)
    return c.numpy(), iterations, reseeded


def _faiss_kmeans(x: np.ndarray, init: np.ndarray, niter: int, seed: int, threads: int) -> np.ndarray:
    """faiss.Kmeans(spherical=True) from the same initial centroids, on all sample rows."""
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the faiss k-means backend needs faiss-cpu (extra 'semantic'); or pass backend='torch'"
        ) from err

    k, d = init.shape
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        km = faiss.Kmeans(
            d,
            k,
            niter=niter,
            spherical=True,
            seed=seed,
            max_points_per_centroid=math.ceil(len(x) / k) + 1,  # no subsampling: x is the sample
            min_points_per_centroid=1,
            verbose=False,
        )
        km.train(x, init_centroids=init)
        return normalize(km.centroids)
    finally:
        faiss.omp_set_num_threads(before)


def train(
    x: np.ndarray,
    init: np.ndarray,
    niter: int,
    *,
    backend: Backend = DEFAULT_BACKEND,
    batch: int = DEFAULT_BATCH,
    seed: int = 0,
    faiss_threads: int | None = None,
) -> tuple[np.ndarray, int, int]:
    """Centroids trained from `init` on unit rows `x`: (centroids, iterations, clusters re-seeded)."""
    if backend == "torch":
        return _torch_kmeans(x, init, niter, batch)
    if backend == "faiss":
        threads = torch.get_num_threads() if faiss_threads is None else faiss_threads
        return _faiss_kmeans(x, init, niter, seed, threads), niter, 0
    raise ValueError(f"unknown backend {backend!r}")


def spherical_kmeans(
    sample: np.ndarray,
    k: int,
    *,
    niter: int = 20,
    seed: int = 0,
    backend: Backend = DEFAULT_BACKEND,
    batch: int = DEFAULT_BATCH,
    init: np.ndarray | None = None,
    faiss_threads: int | None = None,
) -> KMeansResult:
    """Cluster the (already sampled) rows on the unit sphere; deterministic for a seed.

    `init` (k x d) overrides the seeded random initial centroids, e.g. to compare backends."""
    if k < 1 or niter < 1:
        raise ValueError("k and niter must be >= 1")
    x = normalize(sample)
    start = random_init(x, k, seed) if init is None else normalize(init)
    if start.shape != (k, x.shape[1]):
        raise ValueError(f"init has shape {start.shape}, expected {(k, x.shape[1])}")
    centroids, iterations, reseeded = train(
        x, start, niter, backend=backend, batch=batch, seed=seed, faiss_threads=faiss_threads
    )
    labels, dists = assign(sample, centroids, batch)  # as `assign` will label these rows in the corpus
    inertia = float(dists.astype(np.float64).sum())
    return KMeansResult(centroids, labels, dists, inertia, iterations, reseeded)
