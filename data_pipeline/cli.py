"""`andes-data`: command-line entry point of the data pipeline (also `python -m data_pipeline`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from data_pipeline.executors.local import ExecutorError
from data_pipeline.io import list_parquet
from data_pipeline.shard import Interrupted

PROG = "andes-data"
SAMPLE_DIR = Path(__file__).resolve().parent / "sample"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, but not the meaningless `None` of required options and unset optionals."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None:
            return action.help
        return super()._get_help_string(action)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 1)")
    return number


# Commands import their heavy modules (tokenizers, tiktoken) lazily so `--help` and `sample-path` start fast.
def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    from data_pipeline.train_tokenizer import train_tokenizer_from_parquet

    output = train_tokenizer_from_parquet(
        list_parquet(args.input), args.vocab_size, args.output, max_chars=args.max_chars
    )
    print(f"wrote {output} (vocab_size {args.vocab_size} incl. 256 special tokens)")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from data_pipeline.pack import pack
    from pretrain.tokenizer import Tokenizer

    weights = None
    if args.weights:
        weights = [float(w) for w in args.weights.split(",")]
    tokenizer = Tokenizer.from_file(args.tokenizer)
    manifest = pack(
        args.input,
        args.output,
        tokenizer,
        args.seq_len,
        strategy=args.strategy,
        shuffle=not args.no_shuffle,
        weights=weights,
        val_fraction=args.val_fraction,
        rows_per_shard=args.rows_per_shard,
        seed=args.seed,
    )
    splits = [("train", manifest)] + ([("val", manifest["val"])] if manifest["val"] else [])
    for name, stats in splits:
        slots = stats["total_tokens"] + stats["padding_tokens"]
        padding = 100 * stats["padding_tokens"] / slots if slots else 0.0
        print(
            f"{name}: {stats['num_sequences']} sequences of {args.seq_len + 1} tokens, "
            f"{stats['total_tokens']} tokens, {padding:.2f}% padding, {stats['num_documents']} documents"
        )
    if manifest["empty_documents"]:
        print(f"skipped {manifest['empty_documents']} empty documents")
    print(f"wrote {args.output}")
    return 0


def _parse_set(values: Sequence[str]) -> dict[str, dict]:
    """`--set step.param=value` pairs (values parsed as YAML: 0.5, [en, fr], true) by step name."""
    import yaml

    out: dict[str, dict] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        step, dot, name = key.partition(".")
        if not sep or not dot or not step or not name:
            raise ValueError(f"--set {item!r}: expected STEP.PARAM=VALUE (e.g. langid.min_score=0.5)")
        out.setdefault(step, {})[name] = yaml.safe_load(raw)
    return out


def filter_step_specs(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """Steps of `andes-data filter`: --recipe's filter stage, or --steps, then --set overrides."""
    from data_pipeline.stages import DEFAULT_FILTER_STEPS, parse_step_specs

    if args.recipe:
        from data_pipeline.recipe import load_recipe

        stages = [s for s in load_recipe(args.recipe).get("stages", []) if "filter" in s]
        if not stages:
            raise ValueError(f"{args.recipe}: has no filter stage")
        from omegaconf import OmegaConf

        specs = parse_step_specs(OmegaConf.to_container(stages[0]["filter"]["steps"], resolve=True))
    else:
        names = args.steps.split(",") if args.steps else list(DEFAULT_FILTER_STEPS)
        specs = [(n.strip(), {}) for n in names if n.strip()]
    overrides = _parse_set(args.set)
    unused = set(overrides) - {name for name, _ in specs}
    if unused:
        raise ValueError(f"--set names step(s) {sorted(unused)} that are not in this run")
    return [(name, {**params, **overrides.get(name, {})}) for name, params in specs]


def cmd_filter(args: argparse.Namespace) -> int:
    from data_pipeline.stages import print_summary, run_filter

    summary = run_filter(
        args.input,
        args.output,
        filter_step_specs(args),
        **_shard_run_options(args),
    )
    print_summary(summary, args.output)
    return 0


def _dedup_config(args: argparse.Namespace):
    """The `DedupConfig` of `andes-data dedup`'s options."""
    from data_pipeline.dedup.minhash import MinHashConfig, choose_bands_rows
    from data_pipeline.dedup.tasks import DedupConfig

    bands, rows = args.bands, args.rows
    if args.threshold is not None:
        if not 0.0 < args.threshold < 1.0:
            raise ValueError(f"--threshold {args.threshold}: expected a Jaccard similarity in (0, 1)")
        bands, rows = choose_bands_rows(args.threshold, args.num_perm)
    minhash = MinHashConfig(ngram_size=args.ngram, bands=bands, rows=rows, seed=args.seed)
    return DedupConfig(
        method=args.method,
        minhash=minhash,
        normalize=not args.no_normalize,
        url_column=args.url_column,
        timestamp_column=args.timestamp_column or None,
        annotate=args.annotate,
        verify_threshold=None if args.no_verify else args.verify_threshold,
    )


def cmd_dedup(args: argparse.Namespace) -> int:
    from data_pipeline.dedup.minhash import format_s_curve
    from data_pipeline.dedup.run import print_dedup_summary, run_dedup, stage_names

    cfg = _dedup_config(args)
    if args.s_curve:
        bands, rows = cfg.minhash.bands, cfg.minhash.rows
        print(f"{bands} bands x {rows} rows ({bands * rows} permutations):")
        print(format_s_curve(bands, rows))
        return 0
    if args.list_stages:
        print(" ".join(stage_names(list_parquet(args.input), cfg, args.partitions, args.rows_per_partition)))
        return 0
    summary = run_dedup(
        args.input,
        args.output,
        cfg,
        **_shard_run_options(args),
        stage=args.stage,
        partitions=args.partitions,
        rows_per_partition=args.rows_per_partition,
    )
    print_dedup_summary(summary, args.output)
    return 0


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from data_pipeline.classifier import format_metrics, sidecar_path, train_classifier

    if args.labelled and (args.positive or args.negative):
        raise ValueError("give --labelled, or --positive and --negative, not both")
    if not args.labelled and not (args.positive and args.negative):
        raise ValueError("give --positive and --negative directories, or --labelled with --label-column")
    record = train_classifier(
        args.positive or None,
        args.negative or None,
        labelled=args.labelled or None,
        label_column=args.label_column,
        positive_label=args.positive_label,
        output=args.output,
        epochs=args.epochs,
        lr=args.lr,
        word_ngrams=args.word_ngrams,
        dim=args.dim,
        min_count=args.min_count,
        bucket=args.bucket,
        valid_fraction=args.valid_fraction,
        seed=args.seed,
        balance=not args.no_balance,
        max_docs_per_class=args.max_docs_per_class,
        threads=args.threads,
        verbose=not args.quiet,
    )
    print(format_metrics(record))
    print(f"\nwrote {args.output} (training record in {sidecar_path(args.output)})")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from data_pipeline.classifier import run_classify
    from data_pipeline.stages import print_summary

    summary = run_classify(
        args.input,
        args.output,
        args.model,
        column=args.column,
        positive_label=args.positive_label,
        threshold=args.threshold,
        top_fraction=args.top_fraction,
        sample=args.sample or None,
        seed=args.seed,
        **_shard_run_options(args),
    )
    print_summary(summary, args.output)
    c = summary["classify"]
    if c.get("top_fraction") is not None:
        print(
            f"top {100 * c['top_fraction']:g}%: {args.column} >= {c['threshold']:.6g} "
            f"(from {c['scored_docs']:,} scored documents)"
        )
    elif c["threshold"] is not None:
        print(f"kept {args.column} >= {c['threshold']:.6g}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from data_pipeline.recipe import load_recipe, parse_stages, run_recipe

    if args.dry_run:
        from omegaconf import OmegaConf

        cfg = load_recipe(args.recipe, args.overrides)
        parse_stages(cfg, str(args.recipe))
        print(OmegaConf.to_yaml(cfg))
        return 0
    out = run_recipe(
        args.recipe,
        args.overrides,
        overwrite=args.overwrite,
        progress=not args.quiet,
        stage=args.stage,
        rank=args.rank,
        world_size=args.world_size,
    )
    print(f"stage done: {out}" if args.stage is not None else f"recipe done: {out}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    import json

    from data_pipeline.stats import describe_dir, format_description

    summary = describe_dir(args.input, max_rows=args.max_rows)
    print(json.dumps(summary, indent=1) if args.json else format_description(summary))
    return 0


def cmd_steps(args: argparse.Namespace) -> int:
    import data_pipeline.filters  # noqa: F401  (registers the steps)
    from data_pipeline.filters.base import STEPS, describe_step

    names = args.names or sorted(STEPS)
    for name in names:
        if name not in STEPS:
            raise ValueError(f"unknown step '{name}' (known: {', '.join(sorted(STEPS))})")
        cls = STEPS[name]
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name}: {doc}")
        for param, default, help_text in describe_step(cls):
            print(f"    {param} = {default}\n        {help_text}")
        columns = ", ".join(cls().columns())
        print(f"    columns: {columns or '(none)'}\n")
    return 0


def cmd_sample_path(args: argparse.Namespace) -> int:
    list_parquet(SAMPLE_DIR)  # fail loudly if the package was installed without its data
    print(SAMPLE_DIR)
    return 0


def _io_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--input", required=True, help="Parquet file, directory of *.parquet, or glob")
    sub.add_argument("--output", required=True, type=Path, help="output directory")
    sub.add_argument("--workers", type=_positive_int, default=1, help="worker processes (one shard each)")
    _executor_option(sub)
    sub.add_argument(
        "--on-bad-input",
        choices=["fail", "skip"],
        default="fail",
        help="fail: stop at a corrupt shard or bad row, naming it; skip: skip the shard or row, "
        "recording the reason in stats.json",
    )
    sub.add_argument("--overwrite", action="store_true", help="delete an earlier output instead of resuming")
    sub.add_argument("--quiet", action="store_true", help="no progress bars")
    sub.add_argument(
        "--rank", type=int, default=0, help="this task's index when the shards are split over tasks"
    )
    sub.add_argument(
        "--world-size",
        type=_positive_int,
        default=1,
        help="tasks (e.g. a Slurm array) sharing the shards; this one takes shards[rank::world_size]",
    )


def _executor_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--executor",
        choices=["local", "slurm"],
        default="local",
        help="local: processes here; slurm: submit job arrays and return (docs/cluster_data.md)",
    )


SLURM_DESTS = (
    "tasks",
    "shards_per_task",
    "array_parallelism",
    "partition",
    "account",
    "time",
    "cpus_per_task",
    "mem",
    "slurm_logs",
    "sbatch_arg",
    "job_name",
    "only_missing",
)


def _slurm_options(sub: argparse.ArgumentParser, *, arrays: bool = True, dry_run: bool = True) -> None:
    """Options of `--executor slurm` (docs/cluster_data.md); each needs --executor slurm."""
    group = sub.add_argument_group("Slurm (with --executor slurm)")
    if arrays:
        size = group.add_mutually_exclusive_group()
        size.add_argument(
            "--tasks",
            type=_positive_int,
            default=None,
            help="array tasks per stage (at most one per shard; default: one per --shards-per-task shards)",
        )
        size.add_argument(
            "--shards-per-task",
            "--tasks-per-job",
            dest="shards_per_task",
            type=_positive_int,
            default=None,
            help="shards (dedup: units) each array task takes; the array gets ceil(shards / this) tasks "
            "(default 1)",
        )
        group.add_argument(
            "--array-parallelism",
            type=_positive_int,
            default=None,
            help="run at most this many tasks of an array at once (sbatch --array=...%%P)",
        )
        group.add_argument(
            "--only-missing",
            action="store_true",
            help="submit only the array tasks that still have unfinished shards (plain re-submission "
            "also works: finished shards are skipped)",
        )
    group.add_argument("--partition", default=None, help="sbatch --partition")
    group.add_argument("--account", default=None, help="sbatch --account")
    group.add_argument("--time", default=None, help="sbatch --time per job, e.g. 04:00:00")
    group.add_argument(
        "--cpus-per-task",
        type=_positive_int,
        default=None,
        help="CPUs per job, also each task's --workers (default: --workers, or the recipe's workers)",
    )
    group.add_argument("--mem", default=None, help="sbatch --mem per job, e.g. 16G")
    group.add_argument(
        "--slurm-logs",
        type=Path,
        default=None,
        help="directory for the job scripts, the per-task logs and submissions.jsonl (default: OUT.slurm)",
    )
    group.add_argument(
        "--sbatch-arg",
        action="append",
        default=[],
        metavar="OPTION",
        help="extra sbatch option for every job, written --sbatch-arg=--qos=high (repeatable)",
    )
    group.add_argument("--job-name", default=None, help="job name prefix (default: andes-COMMAND)")
    if dry_run:
        group.add_argument(
            "--dry-run", action="store_true", help="print the sbatch scripts instead of submitting them"
        )


def _shard_run_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of the sharded stages (filter, dedup, classify) from their shared options."""
    return {
        "workers": args.workers,
        "batch_rows": args.batch_rows,
        "rows_per_file": args.rows_per_file,
        "write_dropped": args.write_dropped,
        "on_bad_input": args.on_bad_input,
        "overwrite": args.overwrite,
        "progress": not args.quiet,
        "rank": args.rank,
        "world_size": args.world_size,
    }


def _shard_output_options(sub: argparse.ArgumentParser) -> None:
    """Options of commands that rewrite shards through `shard.process_shard` (filter, dedup)."""
    sub.add_argument("--batch-rows", type=_positive_int, default=1024, help="documents per processing batch")
    sub.add_argument(
        "--rows-per-file",
        type=_positive_int,
        default=None,
        help="split each shard's output into parts of at most this many rows (default: one part)",
    )
    sub.add_argument(
        "--write-dropped",
        action="store_true",
        help="also write dropped documents, with a drop_reason column, to OUT/dropped/",
    )


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
        "--vocab-size", required=True, type=_positive_int, help="total vocab incl. 256 special tokens"
    )
    sub.add_argument(
        "--max-chars",
        type=_positive_int,
        default=None,
        help="train on at most this many characters (default: all)",
    )
    _executor_option(sub)
    _slurm_options(sub, arrays=False)

    sub = add("pack", cmd_pack, "tokenize documents and pack them into rows of seq_len+1 tokens")
    sub.add_argument(
        "--input",
        required=True,
        action="append",
        help="Parquet file, directory of *.parquet, or glob; repeat to mix sources (see --weights)",
    )
    sub.add_argument(
        "--strategy",
        choices=["best_fit", "concat"],
        default="best_fit",
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
    sub.add_argument("--seq-len", required=True, type=_positive_int, help="training sequence length")
    sub.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="tiktoken ranks file (default: the Llama 3 model shipped in llama-models)",
    )
    sub.add_argument(
        "--val-fraction", type=_fraction, default=0.0, help="fraction of documents for output/val/"
    )
    sub.add_argument("--rows-per-shard", type=_positive_int, default=4096, help="sequences per Parquet shard")
    sub.add_argument(
        "--seed", type=int, default=0, help="salt of the id hash that picks validation documents"
    )
    _executor_option(sub)
    _slurm_options(sub, arrays=False)

    sub = add("filter", cmd_filter, "annotate and filter Parquet documents (heuristic, NSFW, language steps)")
    sub.epilog = (
        "Steps and their parameters: `andes-data steps`. Outputs: OUT/<shard>-NNNNN.parquet (all input "
        "columns + annotation columns), OUT/.done/<shard>.json per finished shard, OUT/stats.json. "
        "Re-running the same command resumes: finished shards are skipped."
    )
    _io_options(sub)
    _slurm_options(sub)
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
    _shard_output_options(sub)

    sub = add("dedup", cmd_dedup, "remove (or mark) near-duplicate, exact-duplicate or same-URL documents")
    sub.epilog = (
        "Stages: hash -> buckets -> merge-0..merge-K -> remove, work files in OUT/.dedup/. Without "
        "--stage all run here; with --stage each is a job-array step (--rank/--world-size). Outputs: "
        "OUT/<shard>-NNNNN.parquet, OUT/.done/<shard>.json, OUT/stats.json, OUT/dedup_report.json "
        "(clusters, size histogram, example pairs). Re-running the same command resumes."
    )
    _io_options(sub)
    _slurm_options(sub)
    sub.add_argument(
        "--method",
        choices=["minhash", "exact", "url"],
        default="minhash",
        help="minhash: near duplicates by 5-gram Jaccard (LSH); exact: equal normalised text; "
        "url: same URL, keeping the newest version",
    )
    sub.add_argument(
        "--annotate",
        action="store_true",
        help="keep every document, adding <method>_cluster (keeper's key) and <method>_duplicate columns",
    )
    sub.add_argument("--ngram", type=_positive_int, default=5, help="words per shingle (minhash)")
    sub.add_argument("--bands", type=_positive_int, default=14, help="LSH bands (minhash; FineWeb: 14)")
    sub.add_argument("--rows", type=_positive_int, default=8, help="MinHash values per band (FineWeb: 8)")
    sub.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="pick bands x rows for this Jaccard threshold out of --num-perm permutations instead",
    )
    sub.add_argument("--num-perm", type=_positive_int, default=112, help="permutations for --threshold")
    sub.add_argument("--seed", type=int, default=1, help="MinHash permutation seed (datasketch's default)")
    sub.add_argument("--s-curve", action="store_true", help="print P(candidate) by Jaccard and exit")
    sub.add_argument(
        "--verify-threshold",
        type=float,
        default=0.75,
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
        type=_positive_int,
        default=None,
        help="bucket partitions (default: enough for --rows-per-partition each)",
    )
    sub.add_argument(
        "--rows-per-partition",
        type=_positive_int,
        default=4_000_000,
        help="bucket rows (72 bytes each with verification) one buckets task sorts in memory; bounds memory",
    )
    _shard_output_options(sub)

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
    sub.add_argument("--lr", type=float, default=0.1, help="learning rate (DCLM: 0.1)")
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

    sub = add(
        "classify", cmd_classify, "score documents with a fastText classifier; keep a threshold or top share"
    )
    sub.epilog = (
        "Adds COLUMN (probability of the positive label) to every document. --top-fraction first scores "
        "the corpus (or --sample documents of it) to find the threshold that keeps that share (DCLM "
        "keeps the top 10%), then filters; the threshold is recorded in OUT/stats.json under 'classify'. "
        "Outputs and resuming as for `filter`."
    )
    _io_options(sub)
    _slurm_options(sub)
    sub.add_argument("--model", required=True, type=Path, help="fastText model from train-classifier")
    sub.add_argument("--column", default="quality_score", help="annotation column for the score")
    sub.add_argument(
        "--positive-label", default="hq", help="label whose probability is the score (train-classifier: hq)"
    )
    keep = sub.add_mutually_exclusive_group()
    keep.add_argument("--threshold", type=float, default=None, help="drop documents scoring below this")
    keep.add_argument(
        "--top-fraction",
        type=float,
        default=None,
        help="keep this share of documents with the highest scores (DCLM: 0.1)",
    )
    sub.add_argument(
        "--sample",
        type=int,
        default=1_000_000,
        help="--top-fraction: score about this many sampled documents for the threshold (0: all)",
    )
    sub.add_argument("--seed", type=int, default=0, help="--top-fraction: seed of the sample")
    _shard_output_options(sub)

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
    _executor_option(sub)
    sub.add_argument(
        "--stage",
        default=None,
        metavar="I[:SUB]",
        help="run only stage I (0-based), or sub-stage SUB of a dedup stage (e.g. 1:hash)",
    )
    sub.add_argument("--rank", type=int, default=0, help="with --stage: this task's index")
    sub.add_argument(
        "--world-size",
        type=_positive_int,
        default=1,
        help="with --stage: tasks sharing the stage; this one takes its units[rank::world_size]",
    )
    _slurm_options(sub, dry_run=False)

    sub = add("stats", cmd_stats, "summarise a directory of Parquet shards (and its stats.json, if any)")
    sub.add_argument("--input", required=True, help="Parquet file, directory of *.parquet, or glob")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub.add_argument(
        "--max-rows",
        type=_positive_int,
        default=1_000_000,
        help="read at most about this many rows for the distributions (counts cover all files)",
    )

    sub = add("steps", cmd_steps, "list the filter steps with their parameters, defaults and columns")
    sub.add_argument("names", nargs="*", help="only these steps")

    add("sample-path", cmd_sample_path, "print the directory of the bundled Shakespeare sample corpus")
    return parser


def _check_executor_options(args: argparse.Namespace) -> bool:
    """True when this command is to be submitted to Slurm; Slurm options without it are refused."""
    executor = getattr(args, "executor", "local")
    if executor == "slurm":
        # Commands that only print something run here.
        return not (getattr(args, "list_stages", False) or getattr(args, "s_curve", False))
    given = [d for d in SLURM_DESTS if getattr(args, d, None) not in (None, False, [])]
    if args.command != "run" and getattr(args, "dry_run", False):
        given.append("dry_run")
    if given:
        names = ", ".join("--" + d.replace("_", "-") for d in given)
        args._parser.error(f"{names}: only with --executor slurm")
    return False


# Options a submitted task gets from the submitter (or that make no sense in a task).
_NOT_FOR_TASKS = {
    "help",
    "executor",
    "rank",
    "world_size",
    "workers",
    "dry_run",
    "overwrite",
    "stage",
    "list_stages",
    "s_curve",
    *SLURM_DESTS,
}


def _task_command(args: argparse.Namespace):
    """The command's own options as a task command line (what every Slurm job re-runs)."""
    from data_pipeline.executors.slurm import TaskCommand

    task = TaskCommand(args.command)
    for action in args._parser._actions:
        if action.dest in _NOT_FOR_TASKS or action.dest == argparse.SUPPRESS:
            continue
        value = getattr(args, action.dest, None)
        if not action.option_strings:  # positional
            task.positionals += [str(v) for v in (value if isinstance(value, list) else [value])]
            continue
        if value is None or value == action.default:
            continue
        flag = action.option_strings[0]
        if action.nargs == 0:  # store_true
            task.options.append(flag)
            continue
        for v in value if isinstance(action, argparse._AppendAction) else [value]:
            text = str(v)
            task.options += [f"{flag}={text}"] if text.startswith("-") else [flag, text]
    return task


def _submit_slurm(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """`--executor slurm`: plan this command's jobs, check the setup, submit (or print) them."""
    import shlex

    from data_pipeline.executors import slurm

    command = args.command
    if getattr(args, "overwrite", False):
        raise ValueError(
            "--overwrite with --executor slurm: tasks would delete each other's output; remove the "
            "output directory (or pick a new one) and submit again"
        )
    if command == "dedup" and args.stage is not None:
        raise ValueError("--stage with --executor slurm: the submitter makes one job array per stage itself")
    if command == "run" and args.stage is not None:
        raise ValueError("--stage with --executor slurm: the submitter makes one job per stage itself")
    if command == "run" and args.only_missing:
        raise ValueError(
            "--only-missing: not for recipes; submit the same command again (finished shards and "
            "stages are skipped)"
        )
    cpus = args.cpus_per_task
    if cpus is None:
        cpus = getattr(args, "workers", 1)
    if command == "run" and args.cpus_per_task is None:
        from data_pipeline.recipe import load_recipe

        cpus = int(load_recipe(args.recipe, args.overrides).get("workers", 1))
    opts = slurm.SlurmOptions(
        tasks=getattr(args, "tasks", None),
        shards_per_task=getattr(args, "shards_per_task", None),
        array_parallelism=getattr(args, "array_parallelism", None),
        partition=args.partition,
        account=args.account,
        time=args.time,
        cpus_per_task=cpus,
        mem=args.mem,
        logs=args.slurm_logs,
        sbatch_args=list(args.sbatch_arg),
        job_name=args.job_name,
        dry_run=args.dry_run,
        only_missing=getattr(args, "only_missing", False),
    )
    base = _task_command(args)
    paths: dict[str, Path] = {}
    if command in ("filter", "classify"):
        output = args.output
        jobs = slurm.sharded_jobs(base, list_parquet(args.input), output, opts)
        paths["--input"] = Path(args.input)
    elif command == "dedup":
        output = args.output
        jobs = slurm.dedup_jobs(
            base,
            list_parquet(args.input),
            output,
            _dedup_config(args),
            opts,
            partitions=args.partitions,
            rows_per_partition=args.rows_per_partition,
            batch_rows=args.batch_rows,
            rows_per_file=args.rows_per_file,
            write_dropped=args.write_dropped,
            skip_bad=args.on_bad_input == "skip",
        )
        paths["--input"] = Path(args.input)
    elif command == "run":
        from data_pipeline.recipe import load_recipe

        cfg = load_recipe(args.recipe, args.overrides)
        output = Path(str(cfg.output))
        jobs = slurm.recipe_jobs(base, args.recipe, args.overrides, opts)
        paths["input"] = Path(str(cfg.input))
    else:  # pack, train-tokenizer: one job
        output = args.output
        for item in args.input if isinstance(args.input, list) else [args.input]:
            list_parquet(item)  # a missing input fails before submitting
        jobs = slurm.single_jobs(base, opts)
    slurm_dir = opts.logs or output.with_name(output.name + slurm.SLURM_DIR_SUFFIX)
    paths.update({"--output": output, "--slurm-logs": slurm_dir, "the working directory": Path.cwd()})
    for warning in slurm.shared_path_warnings(paths):
        print(f"{PROG}: {warning}", file=sys.stderr)
    prefix = opts.job_name or f"andes-{Path(args.recipe).stem if command == 'run' else command}"
    submission = slurm.Submission(
        command=f"{PROG} {shlex.join(argv)}",
        jobs=jobs,
        opts=opts,
        slurm_dir=Path(slurm_dir).resolve(),
        prefix=prefix,
    )
    slurm.submit(submission)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return 0 on success, 1 for data errors, 2 for bad usage."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        slurm = _check_executor_options(args)
    except SystemExit as e:  # argparse has printed usage or help already
        return e.code if isinstance(e.code, int) else 2
    try:
        if slurm:
            return _submit_slurm(args, argv)
        return args.func(args)
    except (OSError, ValueError, ExecutorError) as e:  # OSError: missing files, disk full
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print(f"{PROG}: interrupted; finished shards are kept, re-run the command to resume", file=sys.stderr)
        return 130
