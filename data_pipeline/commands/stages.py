"""The sharded Parquet-to-Parquet stages: `filter`, `dedup` and `classify`, their options and handlers."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from data_pipeline.commands.options import (
    AddCommand,
    _positive_int,
    config_option,
    io_options,
    shard_output_options,
    shard_run_options,
    slurm_options,
)
from data_pipeline.config import ClassifyOptions, DedupStage, FilterStage, field_type, number_type
from data_pipeline.filters.quality import QualityClassifier
from data_pipeline.io import list_parquet


def add_filter_parser(add: AddCommand) -> None:
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
    shard_output_options(sub, FilterStage)


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
    from data_pipeline.stages import DEFAULT_FILTER_STEPS, parse_step_specs, with_size_step

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
    specs = with_size_step(specs)  # before --set, which may change its limit
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
        **shard_run_options(args),
    )
    print_summary(summary, args.output)
    return 0


def add_dedup_parser(add: AddCommand) -> None:
    sub = add(
        "dedup",
        cmd_dedup,
        "remove (or mark) near-duplicate, exact-duplicate, same-URL or same-meaning documents",
    )
    sub.epilog = (
        "Stages: hash -> buckets -> (minhash: cc-0..cc-S -> components) -> remove (semantic: embed -> fit "
        "-> assign -> cluster -> remove), work files in OUT/.dedup/. Without "
        "--stage all run here; with --stage each is a job-array step (--rank/--world-size). Outputs: "
        "OUT/<shard>-NNNNN.parquet, OUT/.done/<shard>.json, OUT/stats.json, OUT/dedup_report.json "
        "(clusters, size histogram, example pairs). Re-running the same command resumes."
    )
    io_options(sub)
    slurm_options(sub)
    _dedup_method_options(sub)
    _semantic_options(sub)
    sub.add_argument(
        "--stage", default=None, help="run only this stage (see --list-stages), e.g. as a Slurm array step"
    )
    sub.add_argument("--list-stages", action="store_true", help="print this run's stage names and exit")
    config_option(
        sub,
        "--partitions",
        DedupStage,
        "partitions",
        help="bucket partitions (default: enough for --rows-per-partition each)",
    )
    config_option(
        sub,
        "--rows-per-partition",
        DedupStage,
        "rows_per_partition",
        help="bucket rows (72 bytes each with verification) one buckets task sorts in memory; bounds memory",
    )
    config_option(
        sub,
        "--cc-partitions",
        DedupStage,
        "cc_partitions",
        help="minhash: partitions of the duplicate pairs in the connected-components rounds (1: one task "
        "holds them all); bounds memory",
    )
    shard_output_options(sub, DedupStage)


def _dedup_method_options(sub: argparse.ArgumentParser) -> None:
    """What `dedup` compares: the method and its MinHash, verification, exact and URL settings."""
    config_option(
        sub,
        "--method",
        DedupStage,
        "method",
        help="minhash: near duplicates by 5-gram Jaccard (LSH); exact: equal normalised text; "
        "url: same URL, keeping the newest version",
    )
    sub.add_argument(
        "--annotate",
        action="store_true",
        help="keep every document, adding <method>_cluster (keeper's key) and <method>_duplicate columns",
    )
    for flag, field in (("--ngram", "ngram_size"), ("--bands", "bands"), ("--rows", "rows")):
        config_option(sub, flag, DedupStage, field)
    sub.add_argument(
        "--threshold",
        type=number_type(float, "(0, 1)"),
        default=None,
        help="pick bands x rows for this Jaccard threshold out of --num-perm permutations instead",
    )
    sub.add_argument(
        "--num-perm",
        type=_positive_int,
        default=DedupStage.bands * DedupStage.rows,
        help="permutations for --threshold",
    )
    config_option(sub, "--seed", DedupStage, "seed")
    sub.add_argument("--s-curve", action="store_true", help="print P(candidate) by Jaccard and exit")
    config_option(
        sub,
        "--verify-threshold",
        DedupStage,
        "verify_threshold",
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
    config_option(sub, "--url-column", DedupStage, "url_column")
    config_option(
        sub,
        "--timestamp-column",
        DedupStage,
        "timestamp_column",
        help="url: keep the newest version by this column ('' keeps the first document instead)",
    )


def _eps_list(text: str) -> list[float]:
    """--eps-sweep 0.01,0.05,0.1: each in (0, 1], as the eps field allows."""
    parse = field_type(DedupStage, "eps")
    return [parse(part.strip()) for part in text.split(",") if part.strip()]


def _semantic_options(sub: argparse.ArgumentParser) -> None:
    """semantic dedup: the encoder, the threshold and keep policy, and the k-means settings."""
    group = sub.add_argument_group("semantic (with --method semantic; docs/semantic_dedup.md)")
    config_option(group, "--encoder", DedupStage, "encoder")
    config_option(group, "--max-tokens", DedupStage, "max_tokens")
    config_option(group, "--embed-dtype", DedupStage, "embed_dtype")
    config_option(group, "--eps", DedupStage, "eps")
    config_option(
        group,
        "--eps-sweep",
        DedupStage,
        "eps_sweep",
        type=_eps_list,
        help="e.g. 0.01,0.05,0.1: report what each removes",
    )
    config_option(group, "--clusters", DedupStage, "clusters")
    config_option(group, "--docs-per-cluster", DedupStage, "docs_per_cluster")
    config_option(group, "--keep", DedupStage, "keep")
    config_option(group, "--kmeans-sample", DedupStage, "kmeans_sample")
    config_option(group, "--kmeans-iterations", DedupStage, "kmeans_iterations")
    config_option(group, "--kmeans-backend", DedupStage, "kmeans_backend")
    config_option(group, "--rounds", DedupStage, "rounds")


_SEMANTIC_FIELDS = (
    "encoder",
    "max_tokens",
    "embed_dtype",
    "eps",
    "eps_sweep",
    "clusters",
    "docs_per_cluster",
    "keep",
    "kmeans_sample",
    "kmeans_iterations",
    "kmeans_backend",
    "rounds",
)


def dedup_config(args: argparse.Namespace):
    """The `DedupConfig` of `andes-data dedup`'s options, built as a recipe's dedup stage builds it."""
    from data_pipeline.dedup.minhash import choose_bands_rows
    from data_pipeline.dedup.tasks import DedupConfig

    bands, rows = args.bands, args.rows
    if args.threshold is not None:  # in (0, 1): checked by its argument type
        bands, rows = choose_bands_rows(args.threshold, args.num_perm)
    return DedupConfig.from_options(
        {
            "method": args.method,
            "ngram_size": args.ngram,
            "bands": bands,
            "rows": rows,
            "seed": args.seed,
            "normalize": not args.no_normalize,
            "url_column": args.url_column,
            "timestamp_column": args.timestamp_column,
            "annotate": args.annotate,
            "verify_threshold": None if args.no_verify else args.verify_threshold,
            **{name: getattr(args, name) for name in _SEMANTIC_FIELDS},
        }
    )


def cmd_dedup(args: argparse.Namespace) -> int:
    from data_pipeline.dedup.minhash import format_s_curve
    from data_pipeline.dedup.run import print_dedup_summary, run_dedup, sized_plan, stage_names

    cfg = dedup_config(args)
    if args.s_curve:
        bands, rows = cfg.minhash.bands, cfg.minhash.rows
        print(f"{bands} bands x {rows} rows ({bands * rows} permutations):")
        print(format_s_curve(bands, rows))
        return 0
    if args.list_stages:
        plan = sized_plan(
            list_parquet(args.input), cfg, args.partitions, args.rows_per_partition, args.cc_partitions
        )
        print(" ".join(stage_names(cfg, plan)))
        return 0
    summary = run_dedup(
        args.input,
        args.output,
        cfg,
        **shard_run_options(args),
        stage=args.stage,
        partitions=args.partitions,
        rows_per_partition=args.rows_per_partition,
        cc_partitions=args.cc_partitions,
    )
    print_dedup_summary(summary, args.output)
    return 0


def add_classify_parser(add: AddCommand) -> None:
    sub = add(
        "classify",
        cmd_classify,
        "score documents with a fastText or embedding classifier; keep a threshold or top share",
    )
    sub.epilog = (
        "Adds COLUMN (probability of the positive label) to every document. --top-fraction first scores "
        "the corpus (or --sample documents of it) to find the threshold that keeps that share (DCLM "
        "keeps the top 10%), then filters; the threshold is recorded in OUT/stats.json under 'classify'. "
        "An embedding classifier reuses the embeddings a semantic dedup stored (INPUT/.dedup/embeddings/ "
        "or --embeddings) when they come from the same encoder. Outputs and resuming as for `filter`."
    )
    io_options(sub)
    slurm_options(sub)
    sub.add_argument(
        "--model", required=True, type=Path, help="fastText model or embedding classifier (train-classifier)"
    )
    # The quality step's parameters (data_pipeline/filters/quality.py), then the top-fraction pass's.
    config_option(sub, "--column", QualityClassifier, "column", help="annotation column for the score")
    config_option(
        sub,
        "--positive-label",
        QualityClassifier,
        "positive_label",
        help="label whose probability is the score (train-classifier: hq)",
    )
    keep = sub.add_mutually_exclusive_group()
    config_option(  # in [0, 1], as the quality step checks it
        keep,
        "--threshold",
        QualityClassifier,
        "threshold",
        type=number_type(float, "[0, 1]"),
        help="drop documents scoring below this",
    )
    config_option(keep, "--top-fraction", ClassifyOptions, "top_fraction")
    config_option(sub, "--sample", ClassifyOptions, "sample")
    config_option(sub, "--seed", ClassifyOptions, "seed", type=int)
    config_option(sub, "--embeddings", QualityClassifier, "embeddings", metavar="DIR")
    shard_output_options(sub, FilterStage)


def cmd_classify(args: argparse.Namespace) -> int:
    from data_pipeline.classifier.stage import run_classify
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
        embeddings=args.embeddings,
        **shard_run_options(args),
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
