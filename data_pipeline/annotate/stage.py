"""`andes-data annotate`: score every document of a stage's shards with a causal LM, resumably.

An ordinary sharded filter run (markers, --workers, --rank/--world-size, Slurm arrays) with one
`llm_score` step (filters/llm.py); what can be refused without loading the model is refused first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from data_pipeline.annotate.prompt import load_template
from data_pipeline.filters.base import build_step
from data_pipeline.filters.llm import LLMScore
from data_pipeline.guard import check_io
from data_pipeline.stages import run_filter
from data_pipeline.stats import write_stats


def score_summary(output: Path, column: str) -> dict[str, Any]:
    """Count, mean and argmax histogram of the scores written so far (every finished shard)."""
    scores, digits = [], []
    for part in sorted(output.glob("*.parquet")):
        table = pq.read_table(part, columns=[column, f"{column}_argmax"])
        scores.append(table.column(column).to_numpy(zero_copy_only=False))
        digits.append(table.column(f"{column}_argmax").to_numpy(zero_copy_only=False))
    score = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
    digit = np.concatenate(digits) if digits else np.zeros(0, dtype=np.int8)
    return {
        "scored_docs": int(score.size),
        "mean": round(float(score.mean()), 4) if score.size else None,
        "argmax_counts": {str(d): int((digit == d).sum()) for d in range(6)},
    }


def run_annotate(
    input: Path | str,
    output: Path | str,
    model: Path | str,
    *,
    prompt: Path | str | None = LLMScore.prompt,
    column: str = LLMScore.column,
    max_doc_tokens: int = LLMScore.max_doc_tokens,
    batch_tokens: int | None = LLMScore.batch_tokens,
    device: str | None = LLMScore.device,
    dtype: str | None = LLMScore.dtype,
    threads: int | None = LLMScore.threads,
    **filter_kwargs: Any,
) -> dict[str, Any]:
    """Write each document's LLM score into `column` (and its argmax digit into `<column>_argmax`).

    `filter_kwargs` are run_filter's (workers, rank, world_size, batch_rows, ...). stats.json gets
    an `annotate` entry: the column, the model, and the count, mean and argmax histogram of scores.
    """
    from data_pipeline.annotate.scorer import check_annotator

    reads = [input, model] + ([prompt] if prompt is not None else [])
    check_io(reads, [output], filter_kwargs.get("allow_incomplete", False))
    params: dict[str, Any] = {"model": str(Path(model).expanduser().resolve()), "column": column}
    params |= {"prompt": str(Path(prompt).expanduser().resolve()) if prompt is not None else None}
    params |= {"max_doc_tokens": max_doc_tokens, "batch_tokens": batch_tokens, "device": device}
    params |= {"dtype": dtype, "threads": threads}
    build_step("llm_score", params)  # refuses bad parameters and a template without {document}
    check_annotator(model, load_template(prompt), max_doc_tokens)
    summary = run_filter(input, output, [("llm_score", params)], **filter_kwargs)
    summary["annotate"] = {"column": column, "model": params["model"], "prompt": params["prompt"]}
    summary["annotate"] |= score_summary(Path(output), column)
    write_stats(Path(output), summary)
    return summary
