"""The sharded Parquet-to-Parquet stages: `filter`, `dedup` and `classify`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from data_pipeline.commands.options import shard_run_options
from data_pipeline.io import list_parquet


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


def dedup_config(args: argparse.Namespace):
    """The `DedupConfig` of `andes-data dedup`'s options."""
    from data_pipeline.dedup.minhash import MinHashConfig, choose_bands_rows
    from data_pipeline.dedup.tasks import DedupConfig

    bands, rows = args.bands, args.rows
    if args.threshold is not None:  # in (0, 1): checked by its argument type (cli.py)
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

    cfg = dedup_config(args)
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
        **shard_run_options(args),
        stage=args.stage,
        partitions=args.partitions,
        rows_per_partition=args.rows_per_partition,
    )
    print_dedup_summary(summary, args.output)
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
