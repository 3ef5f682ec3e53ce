"""Options several `andes-data` commands share, their argument types, and the program name."""

from __future__ import annotations

import argparse
from pathlib import Path

PROG = "andes-data"


# The type functions keep their underscore names: argparse prints them ("invalid _positive_int value").
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


def io_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--input", required=True, help="Parquet file, directory of *.parquet, or glob")
    sub.add_argument("--output", required=True, type=Path, help="output directory")
    sub.add_argument("--workers", type=_positive_int, default=1, help="worker processes (one shard each)")
    executor_option(sub)
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
    }


def shard_output_options(sub: argparse.ArgumentParser) -> None:
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
