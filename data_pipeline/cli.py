"""`andes-data`: command-line entry point of the data pipeline (also `python -m data_pipeline`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from data_pipeline.commands.artifacts import cmd_pack, cmd_train_classifier, cmd_train_tokenizer
from data_pipeline.commands.info import SAMPLE_DIR, cmd_sample_path, cmd_stats, cmd_steps
from data_pipeline.commands.options import (
    PROG,
    _count,
    _fraction,
    _positive_int,
    allow_incomplete_option,
    executor_option,
    io_options,
    shard_output_options,
)
from data_pipeline.commands.recipe import cmd_run
from data_pipeline.commands.slurm import SLURM_DESTS, check_executor_options, slurm_options, submit_slurm
from data_pipeline.commands.stages import cmd_classify, cmd_dedup, cmd_filter, filter_step_specs
from data_pipeline.config import (
    DEDUP_METHODS,
    PACK_STRATEGIES,
    DedupStage,
    PackStage,
    TrainTokenizerStage,
    field_type,
    number_type,
)
from data_pipeline.executors.local import ExecutorError
from data_pipeline.shard import Interrupted

# The handlers live in `data_pipeline.commands`; callers import these names from here.
__all__ = [
    "PROG",
    "SAMPLE_DIR",
    "SLURM_DESTS",
    "build_parser",
    "cmd_classify",
    "cmd_dedup",
    "cmd_filter",
    "cmd_pack",
    "cmd_run",
    "cmd_sample_path",
    "cmd_stats",
    "cmd_steps",
    "cmd_train_classifier",
    "cmd_train_tokenizer",
    "filter_step_specs",
    "main",
]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, but not the meaningless `None` of required options and unset optionals."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Andes data pipeline: Parquet documents to training shards."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter)
        sub.set_defaults(func=func, _parser=sub)
        return sub

    sub = add(
        "train-tokenizer", cmd_train_tokenizer, "train a byte-level BPE and write a tiktoken ranks file"
    )
    sub.add_argument("--input", required=True, help="Parquet file, directory of *.parquet, or glob")
    sub.add_argument("--output", required=True, type=Path, help="ranks file to write")
    sub.add_argument(
        "--vocab-size",
        required=True,
        type=field_type(TrainTokenizerStage, "vocab_size"),
        help="total vocab incl. 256 special tokens",
    )
    sub.add_argument(
        "--max-chars",
        type=field_type(TrainTokenizerStage, "max_chars"),
        default=None,
        help="train on at most this many characters (default: all)",
    )
    allow_incomplete_option(sub)
    executor_option(sub)
    slurm_options(sub, arrays=False)

    sub = add("pack", cmd_pack, "tokenize documents and pack them into rows of seq_len+1 tokens")
    sub.add_argument(
        "--input",
        required=True,
        action="append",
        help="Parquet file, directory of *.parquet, or glob; repeat to mix sources (see --weights)",
    )
    sub.add_argument(
        "--strategy",
        choices=PACK_STRATEGIES,
        default=PackStage.strategy,
        help="best_fit: best-fit-decreasing, documents that fit a row are never split (Ding et al. 2024); "
        "concat: concatenate and chunk",
    )
    sub.add_argument("--no-shuffle", action="store_true", help="keep rows in packing order")
    sub.add_argument(
        "--weights",
        default=None,
        help="comma-separated token share of each --input, e.g. 0.5,0.25,0.17,0.08 (Llama 3's mix)",
    )
    sub.add_argument("--output", required=True, type=Path, help="output directory (replaced atomically)")
    sub.add_argument(
        "--seq-len", required=True, type=field_type(PackStage, "seq_len"), help="training sequence length"
    )
    sub.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="tiktoken ranks file (default: the Llama 3 model shipped in llama-models)",
    )
    sub.add_argument(
        "--val-fraction",
        type=field_type(PackStage, "val_fraction"),
        default=PackStage.val_fraction,
        help="fraction of documents for output/val/",
    )
    sub.add_argument(
        "--rows-per-shard",
        type=field_type(PackStage, "rows_per_shard"),
        default=PackStage.rows_per_shard,
        help="sequences per Parquet shard",
    )
    sub.add_argument(
        "--seed",
        type=field_type(PackStage, "seed"),
        default=PackStage.seed,
        help="salt of the id hash that picks validation documents",
    )
    allow_incomplete_option(sub)
    executor_option(sub)
    slurm_options(sub, arrays=False)

    sub = add("filter", cmd_filter, "annotate and filter Parquet documents (heuristic, NSFW, language steps)")
    sub.epilog = (
        "Steps and their parameters: `andes-data steps`. Outputs: OUT/<shard>-NNNNN.parquet (all input "
        "columns + annotation columns), OUT/.done/<shard>.json per finished shard, OUT/stats.json. "
        "Re-running the same command resumes: finished shards are skipped."
    )
    io_options(sub)
    slurm_options(sub)
    sub.add_argument(
        "--steps",
        default=None,
        help="comma-separated step names in order (default: FineWeb's order: "
        "url_filter,langid,gopher_repetition,gopher_quality,c4,fineweb)",
    )
    sub.add_argument("--recipe", default=None, help="take the steps of this recipe's first filter stage")
    sub.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STEP.PARAM=VALUE",
        help="override a step parameter (repeatable; VALUE parsed as YAML)",
    )
    shard_output_options(sub)

    sub = add("dedup", cmd_dedup, "remove (or mark) near-duplicate, exact-duplicate or same-URL documents")
    sub.epilog = (
        "Stages: hash -> buckets -> merge-0..merge-K -> remove, work files in OUT/.dedup/. Without "
        "--stage all run here; with --stage each is a job-array step (--rank/--world-size). Outputs: "
        "OUT/<shard>-NNNNN.parquet, OUT/.done/<shard>.json, OUT/stats.json, OUT/dedup_report.json "
        "(clusters, size histogram, example pairs). Re-running the same command resumes."
    )
    io_options(sub)
    slurm_options(sub)
    sub.add_argument(
        "--method",
        choices=DEDUP_METHODS,
        default=DedupStage.method,
        help="minhash: near duplicates by 5-gram Jaccard (LSH); exact: equal normalised text; "
        "url: same URL, keeping the newest version",
    )
    sub.add_argument(
        "--annotate",
        action="store_true",
        help="keep every document, adding <method>_cluster (keeper's key) and <method>_duplicate columns",
    )
    for flag, field in (("--ngram", "ngram_size"), ("--bands", "bands"), ("--rows", "rows")):
        sub.add_argument(
            flag,
            type=field_type(DedupStage, field),
            default=getattr(DedupStage, field),
            help=DedupStage.__dataclass_fields__[field].metadata["help"],
        )
    sub.add_argument(
        "--threshold",
        type=number_type(float, "(0, 1)"),
        default=None,
        help="pick bands x rows for this Jaccard threshold out of --num-perm permutations instead",
    )
    sub.add_argument("--num-perm", type=_positive_int, default=112, help="permutations for --threshold")
    sub.add_argument(
        "--seed",
        type=field_type(DedupStage, "seed"),
        default=DedupStage.seed,
        help="MinHash permutation seed (datasketch's default)",
    )
    sub.add_argument("--s-curve", action="store_true", help="print P(candidate) by Jaccard and exit")
    sub.add_argument(
        "--verify-threshold",
        type=field_type(DedupStage, "verify_threshold"),
        default=DedupStage.verify_threshold,
        help="minhash: link an LSH candidate pair only if its estimated Jaccard reaches this",
    )
    sub.add_argument(
        "--no-verify",
        action="store_true",
        help="minhash: every LSH candidate pair is a duplicate (datatrove)",
    )
    sub.add_argument(
        "--no-normalize", action="store_true", help="exact: compare raw text instead of normalised text"
    )
    sub.add_argument("--url-column", default="url", help="url: column holding the URL")
    sub.add_argument(
        "--timestamp-column",
        default="timestamp",
        help="url: keep the newest version by this column ('' keeps the first document instead)",
    )
    sub.add_argument(
        "--stage", default=None, help="run only this stage (see --list-stages), e.g. as a Slurm array step"
    )
    sub.add_argument("--list-stages", action="store_true", help="print this run's stage names and exit")
    sub.add_argument(
        "--partitions",
        type=field_type(DedupStage, "partitions"),
        default=None,
        help="bucket partitions (default: enough for --rows-per-partition each)",
    )
    sub.add_argument(
        "--rows-per-partition",
        type=field_type(DedupStage, "rows_per_partition"),
        default=DedupStage.rows_per_partition,
        help="bucket rows (72 bytes each with verification) one buckets task sorts in memory; bounds memory",
    )
    shard_output_options(sub)

    sub = add(
        "train-classifier",
        cmd_train_classifier,
        "train a fastText quality classifier (DCLM recipe) from labelled Parquet documents",
    )
    sub.epilog = (
        "Writes OUT (the model) and OUT.json (labels hq/cc, hyperparameters, counts, held-out precision, "
        "recall, F1 and ROC AUC). Defaults are DCLM's OH-2.5+ELI5 classifier: word bigrams, lr 0.1, "
        "dim 100, 5 epochs, minCount 1, 2M hash buckets (an ~800 MB model; --bucket shrinks it)."
    )
    sub.add_argument(
        "--positive", action="append", default=[], help="Parquet dir/file/glob of high-quality documents"
    )
    sub.add_argument(
        "--negative", action="append", default=[], help="Parquet dir/file/glob of low-quality documents"
    )
    sub.add_argument(
        "--labelled", action="append", default=[], help="Parquet dir/file/glob with text and a label column"
    )
    sub.add_argument("--label-column", default="label", help="label column of --labelled inputs")
    sub.add_argument(
        "--positive-label", default="1", help="value of --label-column that marks a positive document"
    )
    sub.add_argument("--output", required=True, type=Path, help="model file to write (e.g. quality.bin)")
    sub.add_argument("--epochs", type=_positive_int, default=5, help="training epochs (DCLM: 5)")
    sub.add_argument(
        "--lr", type=number_type(float, "(0, inf)"), default=0.1, help="learning rate (DCLM: 0.1)"
    )
    sub.add_argument("--word-ngrams", type=_positive_int, default=2, help="word n-gram length (DCLM: 2)")
    sub.add_argument("--dim", type=_positive_int, default=100, help="embedding size (DCLM: 100)")
    sub.add_argument("--min-count", type=_positive_int, default=1, help="minimum word count (DCLM: 1)")
    sub.add_argument(
        "--bucket", type=_positive_int, default=2_000_000, help="n-gram hash buckets (fastText/DCLM: 2M)"
    )
    sub.add_argument(
        "--valid-fraction", type=_fraction, default=0.1, help="share of documents held out (by text hash)"
    )
    sub.add_argument("--seed", type=int, default=0, help="seed of the split, the balancing and fastText")
    sub.add_argument(
        "--no-balance", action="store_true", help="keep both classes whole instead of downsampling the larger"
    )
    sub.add_argument(
        "--max-docs-per-class", type=_positive_int, default=None, help="downsample each class to at most this"
    )
    sub.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="fastText threads (default: all cores; 1 gives a bit-for-bit repeatable model)",
    )
    sub.add_argument("--quiet", action="store_true", help="no fastText progress output")
    allow_incomplete_option(sub)

    sub = add(
        "classify", cmd_classify, "score documents with a fastText classifier; keep a threshold or top share"
    )
    sub.epilog = (
        "Adds COLUMN (probability of the positive label) to every document. --top-fraction first scores "
        "the corpus (or --sample documents of it) to find the threshold that keeps that share (DCLM "
        "keeps the top 10%), then filters; the threshold is recorded in OUT/stats.json under 'classify'. "
        "Outputs and resuming as for `filter`."
    )
    io_options(sub)
    slurm_options(sub)
    sub.add_argument("--model", required=True, type=Path, help="fastText model from train-classifier")
    sub.add_argument("--column", default="quality_score", help="annotation column for the score")
    sub.add_argument(
        "--positive-label", default="hq", help="label whose probability is the score (train-classifier: hq)"
    )
    keep = sub.add_mutually_exclusive_group()
    keep.add_argument(  # the quality step's threshold (filters/quality.py)
        "--threshold",
        type=number_type(float, "[0, 1]"),
        default=None,
        help="drop documents scoring below this",
    )
    keep.add_argument(
        "--top-fraction",
        type=number_type(float, "(0, 1]"),
        default=None,
        help="keep this share of documents with the highest scores (DCLM: 0.1)",
    )
    sub.add_argument(
        "--sample",
        type=_count,
        default=1_000_000,
        help="--top-fraction: score about this many sampled documents for the threshold (0: all)",
    )
    sub.add_argument("--seed", type=int, default=0, help="--top-fraction: seed of the sample")
    shard_output_options(sub)

    sub = add("run", cmd_run, "run a multi-stage recipe (YAML): filter, train_tokenizer, pack")
    sub.add_argument("recipe", type=Path, help="recipe file, e.g. configs/pipeline/fineweb.yaml")
    sub.add_argument(
        "overrides", nargs="*", help="OmegaConf dotlist overrides: input=DIR output=DIR workers=4 ..."
    )
    sub.add_argument("--overwrite", action="store_true", help="delete earlier outputs of the stages first")
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved recipe and exit (with --executor slurm: print the sbatch scripts)",
    )
    sub.add_argument("--quiet", action="store_true", help="no progress bars")
    executor_option(sub)
    sub.add_argument(
        "--stage",
        default=None,
        metavar="I[:SUB]",
        help="run only stage I (0-based), or sub-stage SUB of a dedup stage (e.g. 1:hash)",
    )
    sub.add_argument("--rank", type=_count, default=0, help="with --stage: this task's index")
    sub.add_argument(
        "--world-size",
        type=_positive_int,
        default=1,
        help="with --stage: tasks sharing the stage; this one takes its units[rank::world_size]",
    )
    slurm_options(sub, dry_run=False)

    sub = add("stats", cmd_stats, "summarise a directory of Parquet shards (and its stats.json, if any)")
    sub.add_argument("--input", required=True, help="Parquet file, directory of *.parquet, or glob")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub.add_argument(
        "--max-rows",
        type=_positive_int,
        default=1_000_000,
        help="read at most about this many rows for the distributions (counts cover all files)",
    )
    allow_incomplete_option(sub)

    sub = add("steps", cmd_steps, "list the filter steps with their parameters, defaults and columns")
    sub.add_argument("names", nargs="*", help="only these steps")

    add("sample-path", cmd_sample_path, "print the directory of the bundled Shakespeare sample corpus")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return 0 on success, 1 for data errors, 2 for bad usage."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        slurm = check_executor_options(args)
    except SystemExit as e:  # argparse has printed usage or help already
        return e.code if isinstance(e.code, int) else 2
    try:
        if slurm:
            return submit_slurm(args, argv)
        return args.func(args)
    except (OSError, ValueError, ExecutorError) as e:  # OSError: missing files, disk full
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print(f"{PROG}: interrupted; finished shards are kept, re-run the command to resume", file=sys.stderr)
        return 130
