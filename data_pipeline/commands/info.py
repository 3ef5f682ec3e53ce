"""Commands that only print something: `stats`, `steps` and `sample-path`."""

from __future__ import annotations

import argparse
from pathlib import Path

from data_pipeline.commands.options import AddCommand, _positive_int, allow_incomplete_option
from data_pipeline.io import list_parquet

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample"


def add_stats_parser(add: AddCommand) -> None:
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


def add_steps_parser(add: AddCommand) -> None:
    sub = add("steps", cmd_steps, "list the filter steps with their parameters, defaults and columns")
    sub.add_argument("names", nargs="*", help="only these steps")


def add_sample_path_parser(add: AddCommand) -> None:
    add("sample-path", cmd_sample_path, "print the directory of the bundled Shakespeare sample corpus")


def cmd_stats(args: argparse.Namespace) -> int:
    import json

    from data_pipeline.guard import check_io
    from data_pipeline.stats import describe_dir, format_description

    check_io([args.input], [], args.allow_incomplete)
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
