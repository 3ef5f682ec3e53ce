"""Options several `andes-data` commands share, their argument types, and the program name."""

from __future__ import annotations

import argparse
from pathlib import Path

from data_pipeline.config import ON_BAD_INPUT, FilterStage, Recipe, field_type, number_type

PROG = "andes-data"


# Argument types of numbers (data_pipeline/config.py): a value outside the interval is a usage
# error naming the option. Options that set a recipe stage's option take its field's type instead.
_positive_int = number_type(int, "[1, inf)")
_count = number_type(int, "[0, inf)")
_fraction = number_type(float, "[0, 1)")


def io_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--input", required=True, help="Parquet file, directory of *.parquet, or glob")
    sub.add_argument("--output", required=True, type=Path, help="output directory")
    sub.add_argument(
        "--workers",
        type=field_type(Recipe, "workers"),
        default=Recipe.workers,
        help="worker processes (one shard each)",
    )
    executor_option(sub)
    sub.add_argument(
        "--on-bad-input",
        choices=ON_BAD_INPUT,
        default=FilterStage.on_bad_input,
        help="fail: stop at a corrupt shard or bad row, naming it; skip: skip the shard or row, "
        "recording the reason in stats.json",
    )
    sub.add_argument(
        "--overwrite",
        action="store_true",
        help="delete an earlier output of this command instead of resuming (refused if it holds other files)",
    )
    allow_incomplete_option(sub)
    sub.add_argument("--quiet", action="store_true", help="no progress bars")
    sub.add_argument(
        "--rank", type=_count, default=0, help="this task's index when the shards are split over tasks"
    )
    sub.add_argument(
        "--world-size",
        type=_positive_int,
        default=1,
        help="tasks (e.g. a Slurm array) sharing the shards; this one takes shards[rank::world_size]",
    )


def allow_incomplete_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="read an andes-data stage output even if its run left shards unfinished",
    )


def executor_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--executor",
        choices=["local", "slurm"],
        default="local",
        help="local: processes here; slurm: submit job arrays and return (docs/cluster_data.md)",
    )


def shard_run_options(args: argparse.Namespace) -> dict:
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
        "allow_incomplete": args.allow_incomplete,
    }


def shard_output_options(sub: argparse.ArgumentParser) -> None:
    """Options of commands that rewrite shards through `shard.process_shard` (filter, dedup)."""
    sub.add_argument(
        "--batch-rows",
        type=field_type(FilterStage, "batch_rows"),
        default=FilterStage.batch_rows,
        help="documents per processing batch",
    )
    sub.add_argument(
        "--rows-per-file",
        type=field_type(FilterStage, "rows_per_file"),
        default=None,
        help="split each shard's output into parts of at most this many rows (default: one part)",
    )
    sub.add_argument(
        "--write-dropped",
        action="store_true",
        help="also write dropped documents, with a drop_reason column, to OUT/dropped/",
    )
