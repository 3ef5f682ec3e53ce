"""Packing benchmark: padding and split documents of best-fit-decreasing vs concat-and-chunk, and speed.

1. Packing alone on document lengths drawn from a log-normal law (web documents: median ~600 tokens,
   long tail; mu=6.4, sigma=1.1 in log-tokens) and on the bundled sample corpus's real lengths, at
   seq_len 8192: rows, padding fraction, documents split across rows (concat: every document that
   straddles a row boundary; best-fit: only documents longer than a row) and packing time.
2. `andes-data pack` end to end (tokenize with the Llama 3 tokenizer + pack + write) on the sample
   corpus replicated to --mb MB: tokens/s, for both strategies.

Run: `python bench/bench_pack.py [--docs 200000] [--mb 64]`; appends a section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import data_pipeline.pack as pack_module
from data_pipeline.pack import pack
from data_pipeline.packing import best_fit_rows, concat_chunks
from data_pipeline.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_pipeline" / "sample"


def split_counts(rows, starts: np.ndarray, lengths: np.ndarray, capacity: int) -> tuple[int, int]:
    """Documents spread over more than one row, and how many of those would have fit in one row."""
    first_len = dict(zip(starts.tolist(), lengths.tolist(), strict=True))
    split = [first_len[s] for row in rows for s, n in row if s in first_len and n < first_len[s]]
    return len(split), sum(n <= capacity for n in split)


def packing_table(lengths: np.ndarray, capacity: int) -> list[tuple]:
    starts = np.cumsum(lengths) - lengths
    out = []
    for name, fn in (("best_fit", best_fit_rows), ("concat", concat_chunks)):
        t0 = time.perf_counter()
        rows = fn(starts, lengths, capacity)
        seconds = time.perf_counter() - t0
        padding = 1 - lengths.sum() / (len(rows) * capacity)
        out.append((name, len(rows), padding, *split_counts(rows, starts, lengths, capacity), seconds))
    return out


def sample_lengths(tokenizer: Tokenizer) -> np.ndarray:
    texts = [
        t
        for f in sorted(SAMPLE.glob("*.parquet"))
        for t in pq.read_table(f, columns=["text"])["text"].to_pylist()
    ]
    return np.array([len(ids) for ids in tokenizer.encode_batch(texts, bos=True, eos=True)], dtype=np.int64)


def end_to_end(tokenizer: Tokenizer, mb: int, tmp: Path) -> list[tuple]:
    texts = [
        t
        for f in sorted(SAMPLE.glob("*.parquet"))
        for t in pq.read_table(f, columns=["text"])["text"].to_pylist()
    ]
    size = sum(len(t.encode()) for t in texts)
    reps = max(1, round(mb * 1_000_000 / size))
    src = tmp / "src"
    src.mkdir()
    for r in range(reps):
        ids = [f"{r}-{i}" for i in range(len(texts))]
        pq.write_table(pa.table({"id": ids, "text": texts}), src / f"part-{r:03d}.parquet")
    out = []
    for threads in sorted({1, pack_module.ENCODE_THREADS}):
        saved, pack_module.ENCODE_THREADS = pack_module.ENCODE_THREADS, threads
        for strategy in ("best_fit", "concat"):
            t0 = time.perf_counter()
            manifest = pack([src], tmp / strategy, tokenizer, 8192, strategy=strategy, progress=False)
            seconds = time.perf_counter() - t0
            out.append((strategy, threads, manifest["total_tokens"], seconds, manifest["padding_fraction"]))
            shutil.rmtree(tmp / strategy)
        pack_module.ENCODE_THREADS = saved
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=8192)
    args = parser.parse_args()
    capacity = args.seq_len + 1
    tokenizer = Tokenizer.from_file()
    rng = np.random.default_rng(0)
    lognormal = np.maximum(2, rng.lognormal(6.4, 1.1, args.docs).astype(np.int64))
    lines = [
        f"\n## Packing: best-fit-decreasing vs concat-and-chunk ({datetime.date.today()})\n",
        f"`python bench/bench_pack.py --docs {args.docs} --mb {args.mb}`, seq_len {args.seq_len}, "
        f"2-core CPU, {os.cpu_count()} visible CPUs. Split = documents spread over 2+ rows; "
        "fitting split = documents <= seq_len+1 tokens that were split (best-fit's guarantee: 0).\n",
        "| lengths | docs | tokens | strategy | rows | padding | split docs | fitting split | pack s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, lengths in (("log-normal(6.4, 1.1)", lognormal), ("sample corpus", sample_lengths(tokenizer))):
        for name, rows, padding, split, fitting, seconds in packing_table(lengths, capacity):
            lines.append(
                f"| {label} | {len(lengths)} | {int(lengths.sum())} | {name} | {rows} | {100 * padding:.3f}% "
                f"| {split} | {fitting} | {seconds:.2f} |"
            )
    with tempfile.TemporaryDirectory() as tmp:
        e2e = end_to_end(tokenizer, args.mb, Path(tmp))
    lines += [
        "",
        "End to end (`pack`: read Parquet, Llama 3 tiktoken with the given encode threads, pack, shuffle, "
        f"write zstd Parquet) on the sample corpus replicated to ~{args.mb} MB; 1 thread = per core:",
        "",
        "| strategy | encode threads | tokens | seconds | tokens/s |",
        "|---|---|---|---|---|",
    ]
    for strategy, threads, tokens, seconds, _ in e2e:
        lines.append(f"| {strategy} | {threads} | {tokens} | {seconds:.1f} | {tokens / seconds:,.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(ROOT / "bench" / "RESULTS.md", "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
