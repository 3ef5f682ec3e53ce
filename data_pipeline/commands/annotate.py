"""`andes-data annotate`: a causal LM's 0-5 score of every document, the labels of a quality classifier."""

from __future__ import annotations

import argparse
from pathlib import Path

from data_pipeline.commands.options import (
    AddCommand,
    config_option,
    io_options,
    shard_output_options,
    shard_run_options,
    slurm_options,
)
from data_pipeline.config import FilterStage
from data_pipeline.filters.llm import LLMScore


def add_annotate_parser(add: AddCommand) -> None:
    sub = add("annotate", cmd_annotate, "score documents with a causal LM through a prompt (0-5, one pass)")
    sub.epilog = (
        "Adds COLUMN (float32: the expected digit under the model's probabilities of the tokens 0..5 "
        "after the prompt, renormalised over them) and COLUMN_argmax (int8) to every document; drops "
        "nothing. Then `andes-data train-classifier --labelled OUT --label-column COLUMN --threshold 3` "
        "makes a classifier to run over the corpus with `classify` (docs/llm_annotation.md). An andes "
        "checkpoint is scored through its export (python -m pretrain.export). Outputs and resuming as "
        "for `filter`."
    )
    io_options(sub)
    slurm_options(sub)
    sub.add_argument(
        "--model", required=True, type=Path, help="Hugging Face causal-LM directory with its tokenizer"
    )
    config_option(sub, "--prompt", LLMScore, "prompt", type=Path, metavar="FILE")
    config_option(sub, "--column", LLMScore, "column")
    config_option(sub, "--max-doc-tokens", LLMScore, "max_doc_tokens")
    config_option(sub, "--batch-tokens", LLMScore, "batch_tokens")
    config_option(sub, "--device", LLMScore, "device")
    config_option(sub, "--dtype", LLMScore, "dtype")
    config_option(sub, "--threads", LLMScore, "threads")
    shard_output_options(sub, FilterStage)


def cmd_annotate(args: argparse.Namespace) -> int:
    from data_pipeline.annotate.stage import run_annotate
    from data_pipeline.stages import print_summary

    summary = run_annotate(
        args.input,
        args.output,
        args.model,
        prompt=args.prompt,
        column=args.column,
        max_doc_tokens=args.max_doc_tokens,
        batch_tokens=args.batch_tokens,
        device=args.device,
        dtype=args.dtype,
        threads=args.threads,
        **shard_run_options(args),
    )
    print_summary(summary, args.output)
    a = summary["annotate"]
    if a["scored_docs"]:
        counts = ", ".join(f"{d}: {n:,}" for d, n in a["argmax_counts"].items())
        print(f"{a['column']}: mean {a['mean']:.3f} over {a['scored_docs']:,} documents; argmax {counts}")
    return 0
