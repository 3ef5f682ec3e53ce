"""Spherical k-means for SemDeDup: the torch and faiss backends of data_pipeline/semantic/kmeans.py
against scikit-learn's KMeans (euclidean Lloyd on the same unit rows), the yardstick for inertia.

Data: `--n` unit rows of dimension `--d` (all-MiniLM-L6-v2's 384 by default) around `2 k` random
directions with gaussian noise, float32, seed 0. Every method starts from the same initial
centroids (`kmeans.random_init`, seed 0) and runs `--niter` Lloyd iterations (torch stops early only
if no row changes cluster); each method gets `--threads` threads (torch, faiss' OpenMP and sklearn's
through threadpoolctl). Inertia is the cosine inertia sum(1 - cos) of each method's normalised
centroids, evaluated by `kmeans.cosine_inertia` for all; the table also times `kmeans.assign` of the
sample with the torch centroids (rows per second).

Run: `python bench/bench_kmeans.py [--n 200000] [--d 384] [--k 1000] [--niter 10] [--threads 1]`;
`--smoke` runs a tiny problem and writes nothing.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_pipeline.semantic import kmeans as km  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")


def make_sample(n: int, d: int, n_centres: int, seed: int = 0) -> np.ndarray:
    """Unit float32 rows around random directions (noise norm about 1.4x the direction's)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, d), dtype=np.float32)
    x = centres[rng.integers(0, n_centres, n)]
    x += 1.4 * rng.standard_normal((n, d), dtype=np.float32)
    return km.normalize(x)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


NOTES = """
- inertia: sum(1 - cos) of every row to the nearest of a method's centroids (normalised), by
  `kmeans.cosine_inertia` for all three; scikit-learn minimises euclidean inertia to unnormalised
  means, so its normalised centroids need not be best on this measure. `s / iteration` = train s /
  iterations; torch's train time has no final assignment, faiss' includes its setup.
"""


def run_sklearn(x: np.ndarray, init: np.ndarray, niter: int, threads: int) -> tuple[np.ndarray, int]:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        model = KMeans(len(init), init=init, n_init=1, max_iter=niter, tol=0, algorithm="lloyd").fit(x)
    return model.cluster_centers_.astype(np.float32), int(model.n_iter_)


def measure(args: argparse.Namespace, x: np.ndarray, init: np.ndarray) -> list[dict]:
    runs = {
        "torch (kmeans.train)": lambda: km.train(x, init, args.niter, backend="torch")[:2],
        "faiss.Kmeans spherical (kmeans.train)": lambda: km.train(
            x, init, args.niter, backend="faiss", faiss_threads=args.threads
        )[:2],
        f"sklearn {__import__('sklearn').__version__} KMeans lloyd": lambda: run_sklearn(
            x, init, args.niter, args.threads
        ),
    }
    rows = []
    for name, fn in runs.items():
        t0 = time.perf_counter()
        centroids, iterations = fn()
        wall = time.perf_counter() - t0
        inertia = km.cosine_inertia(x, centroids)
        rows.append({"impl": name, "iters": iterations, "wall": wall, "inertia": inertia, "c": centroids})
        print(f"{name}: {wall:.2f} s, {iterations} iterations, inertia {inertia:.2f}", flush=True)
    return rows


def table(rows: list[dict], x: np.ndarray, assign_s: float) -> str:
    ref = rows[-1]["inertia"]
    lines = [
        "| impl | iterations | train s | s / iteration | cosine inertia | mean 1 - cos "
        "| inertia vs sklearn |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['impl']} | {r['iters']} | {r['wall']:.2f} | {r['wall'] / r['iters']:.3f} | "
            f"{r['inertia']:,.1f} | {r['inertia'] / len(x):.5f} | {r['inertia'] / ref:.4f} |"
        )
    lines.append("")
    lines.append(
        f"`kmeans.assign` of the {len(x):,} rows to the torch centroids: {assign_s:.2f} s "
        f"({len(x) / assign_s:,.0f} rows/s)."
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--niter", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="tiny problem, nothing written")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.smoke:
        args.n, args.d, args.k, args.niter = 2000, 32, 20, 5
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    x = make_sample(args.n, args.d, 2 * args.k)
    init = km.random_init(x, args.k, seed=0)
    rows = measure(args, x, init)
    t0 = time.perf_counter()
    km.assign(x, rows[0]["c"])
    body = table(rows, x, time.perf_counter() - t0)
    print(body)
    if args.smoke:
        return
    import faiss
    import sklearn

    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    cmd = "python bench/bench_kmeans.py " + " ".join(sys.argv[1:])
    with args.results.open("a") as f:
        f.write(f"\n## Spherical k-means (SemDeDup clustering): torch vs faiss vs sklearn — {stamp}\n\n")
        f.write(f"- command: `OMP_NUM_THREADS={args.threads} {cmd.strip()}`\n")
        f.write(
            f"- machine: {platform.machine()} {cpu_model()}, nproc={os.cpu_count()}, "
            f"{args.threads} thread(s) per method, torch {torch.__version__}, faiss {faiss.__version__}, "
            f"scikit-learn {sklearn.__version__}; load average before: {load_before[0]:.2f}, "
            f"after: {os.getloadavg()[0]:.2f}\n"
        )
        f.write(
            f"- data: {args.n:,} x {args.d} float32 unit rows around {2 * args.k} random directions "
            "(seed 0), "
            f"k = {args.k}, {args.niter} Lloyd iterations from the same `kmeans.random_init` centroids\n\n"
        )
        f.write(body + "\n" + NOTES)


if __name__ == "__main__":
    main()
