"""SemDeDup's clustering and per-cluster removal (data_pipeline/semantic/kmeans.py, cluster.py).

The block implementation is checked against a brute-force reference (one full similarity matrix
per cluster, the greedy written out member by member), the eps sweep against separate runs, the
k-means against scikit-learn, and both for determinism and bounded memory.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from data_pipeline.semantic import cluster as cl
from data_pipeline.semantic import kmeans as km

# ---------------------------------------------------------------------------------------------
# Planted clusters and the brute-force reference
# ---------------------------------------------------------------------------------------------


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def toward(a: np.ndarray, cos: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at cosine `cos` from unit vector `a` (a random orthogonal direction)."""
    u = rng.standard_normal(a.shape)
    u -= (u @ a) * a
    u /= np.linalg.norm(u)
    return (cos * a + np.sqrt(1 - cos**2) * u).astype(np.float32)


def planted_cluster(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, keys, dists): a cluster with exact copies, near copies and chains a~b~c."""
    rng = np.random.default_rng(seed)
    centre = unit(rng.standard_normal((1, d)))[0]
    rows = list(unit(centre + 0.8 * rng.standard_normal((n // 2, d))))
    while len(rows) < n:
        a = rows[rng.integers(len(rows))]
        kind = rng.integers(3)
        if kind == 0:
            rows.append(a.copy())
        elif kind == 1:
            rows.append(toward(a, float(rng.uniform(0.85, 0.999)), rng))
        else:  # chain: b near a, c near b, c farther from a
            b = toward(a, float(rng.uniform(0.9, 0.97)), rng)
            rows += [b, toward(b, float(rng.uniform(0.9, 0.97)), rng)]
    x = np.stack(rows[:n])
    x = x[rng.permutation(n)]
    keys = rng.choice(2**40, size=n, replace=False).astype(np.uint64)
    dists = (1.0 - x @ centre).astype(np.float32)
    return x, keys, dists


def reference_order(keys: np.ndarray, dists: np.ndarray, policy: str, seed: int) -> list[int]:
    """Keep priority written out with Python's sort."""
    rows = range(len(keys))
    if policy == "hard":
        return sorted(rows, key=lambda i: (-float(dists[i]), int(keys[i])))
    if policy == "easy":
        return sorted(rows, key=lambda i: (float(dists[i]), int(keys[i])))
    if policy == "first":
        return sorted(rows, key=lambda i: int(keys[i]))
    mix = cl._mix64(keys, seed)
    return sorted(rows, key=lambda i: (int(mix[i]), int(keys[i])))


def brute_force(x, keys, dists, eps, policy, seed=0, rule="kept"):
    """Full n x n similarity matrix; member j removed if cos >= 1-eps to an earlier kept member
    (rule="kept") or to any earlier member (rule="any", SemDeDup's reference)."""
    order = reference_order(keys, dists, policy, seed)
    xs = np.asarray(x, dtype=np.float64)[order]
    xs /= np.linalg.norm(xs, axis=1, keepdims=True)
    s = xs @ xs.T
    n = len(order)
    removed = np.zeros(n, dtype=bool)
    max_sim = np.full(n, np.nan, dtype=np.float32)
    dup = np.full(n, -1, dtype=np.int64)
    kept: list[int] = []
    for j in range(n):
        pool = kept if rule == "kept" else list(range(j))
        if pool:
            sims = s[j, pool]
            i = int(np.argmax(sims))  # first maximum: the earliest member
            max_sim[order[j]], dup[order[j]] = sims[i], order[pool[i]]
            removed[order[j]] = sims[i] >= 1 - eps
        if not removed[order[j]]:
            kept.append(j)
    return removed, max_sim, dup


def assert_same(result: cl.ClusterResult, ref) -> None:
    removed, max_sim, dup = ref
    np.testing.assert_array_equal(result.removed, removed)
    np.testing.assert_array_equal(result.duplicate_of, dup)
    np.testing.assert_allclose(result.max_sim, max_sim, rtol=0, atol=1e-7, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# Cluster step
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", cl.POLICIES)
@pytest.mark.parametrize("block", [1, 7, 64, 400])
def test_block_equals_brute_force(policy, block):
    x, keys, dists = planted_cluster(300, 48, seed=block)
    for eps in (0.01, 0.1):
        result = cl.dedup_cluster(x, keys, dists, eps, policy=policy, block=block, seed=3)
        ref = brute_force(x, keys, dists, eps, policy, seed=3)
        assert 0 < ref[0].sum() < len(keys)
        assert_same(result, ref)


def test_float16_rows_match_the_reference_on_the_same_rows():
    x, keys, dists = planted_cluster(200, 32, seed=11)
    x16 = x.astype(np.float16)
    result = cl.dedup_cluster(x16, keys, dists, 0.05, block=16)
    assert_same(result, brute_force(x16, keys, dists, 0.05, "hard"))


def arc(angles: list[float], d: int, seed: int) -> np.ndarray:
    """Unit vectors at the given angles on one great circle of a random plane in R^d."""
    q = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, 2)))[0]
    return np.stack([np.cos(t) * q[:, 0] + np.sin(t) * q[:, 1] for t in angles]).astype(np.float32)


def test_kept_rule_keeps_the_end_of_a_chain():
    """a~b and b~c at 0.95, a~c at 0.805: b goes, c stays (SemDeDup's any-earlier rule drops c too)."""
    t = float(np.arccos(0.95))
    x = arc([0.0, t, 2 * t], 16, seed=0)
    keys = np.array([1, 2, 3], dtype=np.uint64)
    result = cl.dedup_cluster(x, keys, np.zeros(3), 0.1, policy="first")
    assert result.removed.tolist() == [False, True, False]
    assert result.duplicate_of.tolist() == [-1, 0, 0]
    assert np.isnan(result.max_sim[0]) and result.max_sim[2] == pytest.approx(0.805, abs=1e-5)
    assert brute_force(x, keys, np.zeros(3), 0.1, "first", rule="any")[0].tolist() == [False, True, True]


def test_kept_rule_removes_a_subset_of_semdedups_rule():
    x, keys, dists = planted_cluster(400, 32, seed=5)
    ours = cl.dedup_cluster(x, keys, dists, 0.1, block=50).removed
    theirs = brute_force(x, keys, dists, 0.1, "hard", rule="any")[0]
    assert not (ours & ~theirs).any() and (theirs & ~ours).any()


@pytest.mark.parametrize("policy", cl.POLICIES)
def test_input_row_order_does_not_matter(policy):
    x, keys, dists = planted_cluster(250, 32, seed=2)
    perm = np.random.default_rng(9).permutation(len(keys))
    a = cl.dedup_cluster(x, keys, dists, 0.05, policy=policy, block=32)
    b = cl.dedup_cluster(x[perm], keys[perm], dists[perm], 0.05, policy=policy, block=32)
    pairs_a = dict(zip(keys[a.removed].tolist(), keys[a.duplicate_of[a.removed]].tolist(), strict=True))
    pairs_b = dict(
        zip(keys[perm][b.removed].tolist(), keys[perm][b.duplicate_of[b.removed]].tolist(), strict=True)
    )
    assert pairs_a == pairs_b and len(pairs_a) > 0
    assert keys[a.order].tolist() == keys[perm][b.order].tolist()


def test_policies_keep_what_they_say():
    """Three exact copies: hard keeps the one farthest from the centroid, easy the closest, first the
    smallest key, random any of them depending on the seed."""
    v = unit(np.ones((1, 8)))[0]
    x = np.stack([v, v, v])
    keys = np.array([30, 10, 20], dtype=np.uint64)
    dists = np.array([0.2, 0.1, 0.3], dtype=np.float32)
    kept = {
        p: int(np.flatnonzero(~cl.dedup_cluster(x, keys, dists, 0.01, policy=p).removed)[0])
        for p in cl.POLICIES
    }
    assert (kept["hard"], kept["easy"], kept["first"]) == (2, 1, 1)
    seeds = {
        int(np.flatnonzero(~cl.dedup_cluster(x, keys, dists, 0.01, policy="random", seed=s).removed)[0])
        for s in range(20)
    }
    assert seeds == {0, 1, 2}


def test_non_nested_kept_sets_and_sweep():
    """cos(a,b)=0.85, cos(b,c)=0.95, cos(a,c)=0.64: eps 0.1 keeps {a,b}, eps 0.2 keeps {a,c}."""
    ab, bc = float(np.arccos(0.85)), float(np.arccos(0.95))
    x = arc([0.0, ab, ab + bc], 16, seed=1)
    keys = np.array([1, 2, 3], dtype=np.uint64)
    sweep = cl.dedup_cluster_sweep(x, keys, np.zeros(3), (0.1, 0.2), policy="first")
    assert sweep[0.1].removed.tolist() == [False, False, True]
    assert sweep[0.2].removed.tolist() == [False, True, False]
    for eps in (0.1, 0.2):
        alone = cl.dedup_cluster(x, keys, np.zeros(3), eps, policy="first")
        np.testing.assert_array_equal(sweep[eps].removed, alone.removed)


@pytest.mark.parametrize("policy", ["hard", "random"])
@pytest.mark.parametrize("block", [5, 64, 1000])
def test_sweep_equals_separate_runs(policy, block):
    x, keys, dists = planted_cluster(350, 32, seed=block + 1)
    sweep = cl.dedup_cluster_sweep(x, keys, dists, cl.SWEEP_EPS, policy=policy, block=block)
    counts = []
    for eps in cl.SWEEP_EPS:
        alone = cl.dedup_cluster(x, keys, dists, eps, policy=policy, block=block)
        np.testing.assert_array_equal(sweep[eps].removed, alone.removed)
        np.testing.assert_array_equal(sweep[eps].duplicate_of, alone.duplicate_of)
        np.testing.assert_array_equal(sweep[eps].max_sim, alone.max_sim)
        assert_same(alone, brute_force(x, keys, dists, eps, policy))
        counts.append(int(alone.removed.sum()))
    assert counts[0] < counts[1] < counts[2]


def test_big_cluster_never_builds_an_n_by_n_matrix(monkeypatch):
    n, d, block = 20_000, 32, 1024
    rng = np.random.default_rng(0)
    x = unit(rng.standard_normal((n, d)))
    copies = rng.choice(n, size=300, replace=False)
    x[copies[150:]] = x[copies[:150]]  # 150 exact copies
    keys = np.arange(n, dtype=np.uint64)
    shapes: list[tuple[int, int]] = []
    real = cl._sim

    def recording(a, b):
        shapes.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(cl, "_sim", recording)
    tracemalloc.start()
    result = cl.dedup_cluster(x, keys, np.zeros(n, dtype=np.float32), 0.05, policy="first", block=block)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert max(max(s) for s in shapes) == block
    assert sum(a * b for a, b in shapes) >= n * (n - 1) // 2  # every pair was scored
    assert peak < n * n * 4 / 20, peak  # an n x n float32 matrix would be 1.6 GB
    assert result.removed[np.maximum(copies[:150], copies[150:])].all()
    assert result.removed.sum() >= 150


def test_bad_inputs_raise():
    x, keys, dists = planted_cluster(10, 8, seed=0)
    with pytest.raises(ValueError, match="unique"):
        cl.dedup_cluster(x, np.zeros(10, dtype=np.uint64), dists, 0.1)
    with pytest.raises(ValueError, match="policy"):
        cl.dedup_cluster(x, keys, dists, 0.1, policy="middle")
    empty = cl.dedup_cluster(x[:0], keys[:0], dists[:0], 0.1)
    assert empty.removed.shape == (0,)


# ---------------------------------------------------------------------------------------------
# k-means and assignment
# ---------------------------------------------------------------------------------------------


def mixture(m: int, d: int, n_centres: int, seed: int, spread: float = 0.5) -> np.ndarray:
    """Unit rows around `n_centres` random directions."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, d))
    return unit(centres[rng.integers(0, n_centres, m)] + spread * rng.standard_normal((m, d)))


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_inertia_within_1pct_of_sklearn(backend):
    """Cosine inertia sum(1 - cos) of each method's (normalised) centroids on the same sample, from
    the same initial centroids and 50 Lloyd iterations; sklearn's euclidean KMeans on unit rows is
    the yardstick (on the unit sphere squared euclidean distance is 2 - 2 cos)."""
    from sklearn.cluster import KMeans

    x, k = mixture(6000, 32, 40, seed=0), 30
    init = km.random_init(x, k, seed=0)
    ours = km.spherical_kmeans(x, k, niter=50, backend=backend, init=init)
    sk = KMeans(k, init=init, n_init=1, max_iter=50, tol=0, algorithm="lloyd").fit(x)
    ref = km.cosine_inertia(x, sk.cluster_centers_)
    assert abs(ours.inertia - ref) <= 0.01 * ref, (ours.inertia, ref)
    assert ours.inertia == pytest.approx(km.cosine_inertia(x, ours.centroids), rel=1e-12)
    assert ours.inertia < 0.8 * km.cosine_inertia(x, init)
    np.testing.assert_allclose(np.linalg.norm(ours.centroids, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_kmeans_is_bitwise_deterministic(backend):
    x = mixture(3000, 24, 20, seed=1)
    a, b = (km.spherical_kmeans(x, 16, niter=15, seed=4, backend=backend) for _ in range(2))
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.labels, b.labels)
    other = km.spherical_kmeans(x, 16, niter=15, seed=5, backend=backend)
    assert not np.array_equal(a.centroids, other.centroids)


def test_torch_and_faiss_backends_run_the_same_algorithm():
    x = mixture(5000, 32, 25, seed=7)
    init = km.random_init(x, 20, seed=2)
    runs = {b: km.spherical_kmeans(x, 20, niter=12, backend=b, init=init) for b in ("torch", "faiss")}
    assert runs["torch"].reseeded == 0
    np.testing.assert_allclose(runs["torch"].centroids, runs["faiss"].centroids, atol=1e-5)
    np.testing.assert_array_equal(runs["torch"].labels, runs["faiss"].labels)


def test_faiss_kmeans_gives_the_same_centroids_with_one_and_two_threads():
    x = mixture(4000, 24, 20, seed=6)
    init = km.random_init(x, 16, seed=0)
    runs = [km.train(x, init, 10, backend="faiss", faiss_threads=t)[0] for t in (1, 2, 2, 1)]
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0], other)
    assert km.DEFAULT_BACKEND == "faiss"  # the faster one in bench/bench_kmeans.py


def test_torch_kmeans_does_not_depend_on_batch_or_threads():
    x = mixture(1500, 24, 20, seed=2)
    base = km.spherical_kmeans(x, 16, niter=10, seed=1, batch=1500, backend="torch")
    runs = [km.spherical_kmeans(x, 16, niter=10, seed=1, batch=7, backend="torch")]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        runs.append(km.spherical_kmeans(x, 16, niter=10, seed=1, batch=256, backend="torch"))
    finally:
        torch.set_num_threads(before)
    assert base.iterations > 2
    for run in runs:
        np.testing.assert_array_equal(run.centroids, base.centroids)
        np.testing.assert_array_equal(run.dists, base.dists)


def test_assign_is_exact_and_does_not_depend_on_batch():
    """Rows exactly between two centroids, and exact copies of them at many batch positions, get one
    label: the float64 argmax, whatever the batch size (float32 BLAS scores alone would not)."""
    rng = np.random.default_rng(3)
    c = mixture(40, 48, 40, seed=4, spread=0.0)
    ties = unit(c[rng.integers(0, 40, 300)] + c[rng.integers(0, 40, 300)])
    x = np.concatenate([mixture(1500, 48, 30, seed=5), ties, ties[::-1]])[rng.permutation(2100)]
    base_labels, base_dists = km.assign(x, c, batch=len(x))
    for batch in (1, 7, 63, 64, 65, 999):
        labels, dists = km.assign(x, c, batch=batch)
        np.testing.assert_array_equal(labels, base_labels)
        np.testing.assert_array_equal(dists, base_dists)
    exact = km.normalize(x).astype(np.float64) @ km.normalize(c).astype(np.float64).T
    np.testing.assert_array_equal(base_labels, exact.argmax(axis=1))
    np.testing.assert_allclose(base_dists, 1 - exact.max(axis=1), atol=1e-6)
    half = x.astype(np.float16)
    np.testing.assert_array_equal(km.assign(half, c, batch=5)[0], km.assign(half, c, batch=2100)[0])


def test_empty_cluster_is_reseeded_from_the_farthest_row():
    x = km.normalize(mixture(500, 16, 5, seed=3))
    init = km.random_init(x, 6, seed=0)
    init[5] = init[4]  # an exact tie goes to the lower index: cluster 5 starts empty
    labels, dists = km.assign(x, init)
    assert (labels != 5).all()
    one = km.spherical_kmeans(x, 6, niter=1, init=init, backend="torch")
    assert one.reseeded == 1
    np.testing.assert_array_equal(one.centroids[5], x[np.argmax(dists)])
    full = km.spherical_kmeans(x, 6, niter=30, init=init, backend="torch")
    assert np.bincount(full.labels, minlength=6).min() > 0


def test_sample_indices_are_seeded_sorted_and_distinct():
    a = km.sample_indices(10_000, 500, seed=1)
    assert len(np.unique(a)) == 500 and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(a, km.sample_indices(10_000, 500, seed=1))
    assert not np.array_equal(a, km.sample_indices(10_000, 500, seed=2))
    np.testing.assert_array_equal(km.sample_indices(7, 500, seed=1), np.arange(7))


@pytest.mark.parametrize("policy", ["hard", "first"])
def test_inactive_members_are_as_if_absent(policy):
    """A member left out for one eps (removed in an earlier round) is neither kept nor removed there,
    and the others' decisions equal a run without it."""
    x, keys, dists = planted_cluster(300, 32, seed=11)
    rng = np.random.default_rng(5)
    eps = [0.05, 0.2]
    active = rng.random((len(keys), 2)) < 0.7
    out = cl.dedup_cluster_sweep(x, keys, dists, eps, policy=policy, block=64, active=active)
    for i, e in enumerate(eps):
        on = active[:, i]
        alone = cl.dedup_cluster(x[on], keys[on], dists[on], e, policy=policy)
        assert out[e].removed.any() and not out[e].removed[~on].any() and np.isnan(out[e].max_sim[~on]).all()
        np.testing.assert_array_equal(out[e].removed[on], alone.removed)
        np.testing.assert_array_equal(out[e].max_sim[on], alone.max_sim)
