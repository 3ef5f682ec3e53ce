"""LLM annotation throughput per core (`andes-data annotate`'s scorer) and the cost of 500k labels.

Model: a random-weight Llama of SmolLM-135M's shape (30 layers, hidden 576, 9 heads / 3 KV heads,
MLP 1536, vocabulary 49,152; 106M parameters outside the embeddings, 163M with an untied head),
built here with tests/tiny_lm.py and a byte-level BPE trained on the sample corpus; weights do not
change the work, so the time is that of a trained model of this shape. Documents: bench_embed's
(sample corpus paragraphs in groups of 1-32), scored through the default 0-5 prompt with the
default --max-doc-tokens, in one process pinned to one CPU with one torch thread (CPU seconds are
per core), float32 (the CPU default), the step's own batching (`score_probabilities`).

Projection: 500,000 documents at the measured CPU seconds per document. Larger models are projected
from the measured seconds per FLOP, with FLOPs per prompt token = 2 x non-embedding parameters +
2 x layers x tokens x hidden (causal attention over the average context); an estimate, not a
measurement. Run: `python bench/bench_annotate.py [--docs 12] [--smoke]` (--smoke: a 2-layer model,
4 documents, nothing appended to bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_embed import bench_docs  # noqa: E402

from data_pipeline.annotate.prompt import load_template  # noqa: E402
from data_pipeline.annotate.scorer import load_annotator, score_probabilities  # noqa: E402
from data_pipeline.annotate.tokens import prompt_ids  # noqa: E402
from data_pipeline.filters.llm import LLMScore  # noqa: E402
from tests.tiny_lm import make_causal_lm  # noqa: E402

RESULTS = HERE / "RESULTS.md"
LABELS = 500_000
# name: (layers, hidden, intermediate, heads, kv heads, vocab)
SHAPES = {
    "SmolLM-135M shape (measured)": (30, 576, 1536, 9, 3, 49_152),
    "Llama-3.2-1B shape": (16, 2048, 8192, 32, 8, 128_256),
    "Llama-3.1-8B shape": (32, 4096, 14336, 32, 8, 128_256),
    "Llama-3.1-70B shape": (80, 8192, 28672, 64, 8, 128_256),
}
SMOKE = (2, 64, 128, 4, 2, 2_000)


def non_embedding_params(layers: int, hidden: int, inter: int, heads: int, kv: int) -> int:
    """Weights of the attention and MLP matrices (what each token multiplies through)."""
    kv_dim = hidden // heads * kv
    return layers * (2 * hidden * hidden + 2 * hidden * kv_dim + 3 * hidden * inter)


def flops_per_token(shape: tuple, context: float) -> float:
    layers, hidden, inter, heads, kv, _ = shape
    return 2 * non_embedding_params(layers, hidden, inter, heads, kv) + 2 * layers * context * hidden


def build_model(root: Path, shape: tuple, docs: list[str]) -> Path:
    layers, hidden, inter, heads, kv, vocab = shape
    path = make_causal_lm(
        root / "lm",
        docs,
        vocab_size=min(vocab, 8_000),
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv,
        intermediate=inter,
        positions=2048,
    )
    config = transformers.AutoConfig.from_pretrained(path)
    if config.vocab_size < vocab:  # the model's full vocabulary: embeddings and head of its size
        model = transformers.AutoModelForCausalLM.from_pretrained(path)
        model.resize_token_embeddings(vocab, mean_resizing=False)
        model.save_pretrained(path)
    return path


def measure(path: Path, docs: list[str]) -> dict:
    template = load_template(None)
    annotator = load_annotator(path, template, LLMScore.max_doc_tokens, threads=1, device="cpu")
    lengths = np.array(
        [len(ids) for ids in prompt_ids(annotator.tokenizer, template, docs, LLMScore.max_doc_tokens)]
    )
    cpu, wall = time.process_time(), time.perf_counter()
    score_probabilities(annotator, docs)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    params = sum(p.numel() for p in annotator.model.parameters())
    return {"cpu": cpu, "wall": wall, "lengths": lengths, "params": params}


def tables(shape: tuple, m: dict, n_docs: int, smoke: bool) -> str:
    lengths, cpu = m["lengths"], m["cpu"]
    tokens = int(lengths.sum())
    layers, hidden = shape[0], shape[1]
    rows = [
        "| model | parameters | layers x hidden | docs | prompt tokens (mean) | CPU s | wall s "
        "| docs/s per core | prompt tokens/s per core |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| random Llama | {m['params'] / 1e6:,.1f}M | {layers} x {hidden} | {n_docs} | {tokens:,} "
        f"({lengths.mean():,.0f}) | {cpu:.1f} | {m['wall']:.1f} | {n_docs / cpu:.3f} | {tokens / cpu:,.0f} |",
        "",
        f"Projected cost of {LABELS:,} labels (documents like these, one CPU core = one core-hour per hour):",
        "",
        "| model | basis | core-hours | core-days |",
        "|---|---|---|---|",
    ]
    context = float(lengths.mean()) / 2
    per_flop = cpu / (tokens * flops_per_token(shape, context))
    for name, other in SHAPES.items():
        if smoke and other is not SHAPES["SmolLM-135M shape (measured)"]:
            continue
        measured = other is SHAPES["SmolLM-135M shape (measured)"]
        seconds = (
            cpu / n_docs * LABELS
            if measured
            else per_flop * tokens / n_docs * LABELS * flops_per_token(other, context)
        )
        basis = "measured" if measured else "FLOPs x measured s/FLOP"
        label = "smoke model" if smoke else name
        rows.append(f"| {label} | {basis} | {seconds / 3600:,.0f} | {seconds / 86400:,.1f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=12, help="documents scored (default 12)")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last)")
    parser.add_argument("--smoke", action="store_true", help="2-layer model, 4 documents, no results")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to append to")
    args = parser.parse_args()
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    shape = SMOKE if args.smoke else SHAPES["SmolLM-135M shape (measured)"]
    n_docs = 4 if args.smoke else args.docs
    docs = bench_docs(max(n_docs, 400))
    transformers.utils.logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        path = build_model(Path(tmp), shape, docs)
        m = measure(path, docs[:n_docs])
    now = datetime.datetime.now().isoformat(timespec="seconds")
    load_after = os.getloadavg()[0]
    header = (
        f"\n## LLM annotation (andes-data annotate), CPU — {now}\n\n"
        f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n"
        f"- machine: {platform.processor() or platform.machine()}, nproc={os.cpu_count()}, pinned to CPU "
        f"{cpu}, torch.set_num_threads(1), float32, torch {torch.__version__}, transformers "
        f"{transformers.__version__}; load average before: {load_before:.2f}, after: {load_after:.2f}\n"
        f"- model: random weights, SmolLM-135M's shape (bench/bench_annotate.py docstring); default prompt, "
        f"--max-doc-tokens {LLMScore.max_doc_tokens}, the step's batching (2,048 padded tokens on CPU)\n"
        f"- docs: bench_embed's sample-corpus documents, first {n_docs}\n\n"
    )
    out = header + tables(shape, m, n_docs, args.smoke)
    print(out)
    if not args.smoke:
        with args.results.open("a") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
