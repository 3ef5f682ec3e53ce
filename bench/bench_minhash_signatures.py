"""MinHash signature throughput per core: andes `signatures` against datasketch on ~3 KB English docs.

Documents: paragraphs of the Python language reference (tests/web_corpus.py prose) drawn at random
until each document holds >= 3,000 characters. Every implementation gets the same shingles (andes'
normalisation and word 5-grams) and 112 permutations:
- andes `signatures`: normalisation, shingling, hashing and permutations, batch-vectorised;
- datasketch `MinHash.update_batch` per document with xxhash's `xxh32_intdigest`;
- datasketch `MinHash.bulk` with xxhash's `xxh32_intdigest` (its fastest hash) + `LeanMinHash`;
- shingling alone (`shingles()` + `xxh32_intdigest` per shingle), the floor of any per-shingle loop.
CPU time of this process (best of --repeats), pinned to one CPU when possible.

Run: `python bench/bench_minhash_signatures.py [--docs 2000] [--repeats 3] [--cpu 1]`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from web_corpus import prose_paragraphs  # noqa: E402

from data_pipeline.dedup.minhash import MinHashConfig, shingles, signatures  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")


def make_docs(n: int, seed: int = 0) -> list[str]:
    paras, rng = prose_paragraphs(), random.Random(seed)
    docs = []
    for _ in range(n):
        parts: list[str] = []
        while sum(map(len, parts)) < 3000:
            parts.append(rng.choice(paras))
        docs.append("\n".join(parts))
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=os.cpu_count() - 1)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    import datasketch
    import xxhash

    cfg = MinHashConfig()
    docs = make_docs(args.docs)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    h32 = xxhash.xxh32_intdigest

    def ds_update_batch() -> None:
        for d in docs:
            m = datasketch.MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=h32)
            m.update_batch([s.encode() for s in shingles(d, cfg)])

    def ds_bulk() -> None:
        sets = ([s.encode() for s in shingles(d, cfg)] for d in docs)
        kw = {"num_perm": cfg.num_perm, "seed": cfg.seed, "hashfunc": h32}
        [datasketch.LeanMinHash(m) for m in datasketch.MinHash.bulk(sets, **kw)]

    def shingle_only() -> None:
        for d in docs:
            np.fromiter((h32(s.encode()) for s in shingles(d, cfg)), dtype=np.uint32)

    impls = {
        "andes signatures (batch NumPy)": lambda: signatures(docs, cfg),
        "shingles() + xxh32 per shingle, no MinHash": shingle_only,
        "datasketch MinHash.bulk + xxh32 + LeanMinHash": ds_bulk,
        "datasketch MinHash.update_batch + xxh32": ds_update_batch,
    }
    best = dict.fromkeys(impls, float("inf"))
    for _ in range(args.repeats):
        for name, fn in impls.items():
            t = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t)
    ref = best["datasketch MinHash.update_batch + xxh32"]
    n = args.docs
    rows = [f"| {k} | {s:.2f} | {n / s:,.0f} | {mb / s:.2f} | {ref / s:.2f} |" for k, s in best.items()]
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    text = "\n".join(
        [
            f"\n## MinHash signatures (112 perms, word 5-grams) vs datasketch — {stamp}\n",
            "- command: `python bench/bench_minhash_signatures.py "
            f"--docs {args.docs} --repeats {args.repeats}`",
            f"- machine: {platform.machine()}, nproc={os.cpu_count()}, python {platform.python_version()}, "
            f"numpy {np.__version__}, datasketch {datasketch.__version__}, xxhash {xxhash.VERSION}; "
            f"pinned to CPU {args.cpu}; load average before: {os.getloadavg()[0]:.2f}",
            f"- docs: {args.docs} x ~3 KB prose (tests/web_corpus.py), {mb:.1f} MB; "
            f"CPU time, best of {args.repeats}",
            "",
            "| impl | CPU s | docs/s per core | MB/s per core | ratio vs update_batch |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    print(text)
    with RESULTS.open("a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
