"""Options several `andes-data` commands share, the Slurm option group, and options set from config fields.

An option that sets a configuration field (data_pipeline/config.py) is declared with `config_option`,
which takes the field's default, help, choices and, for a number, its type and interval: the
command line, the recipes and the Python API then share one declaration of each default and range.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_pipeline.config import (
    FilterStage,
    Recipe,
    config_field,
    field_default,
    field_type,
    is_number,
    number_type,
)

if TYPE_CHECKING:
    from data_pipeline.executors.local import Executor

PROG = "andes-data"

AddCommand = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]
"""`add(name, handler, help)`: registers a command (data_pipeline/cli.py) and returns its parser."""

# Argument types of numbers that set no config field: a value outside the interval is a usage
# error naming the option.
_positive_int = number_type(int, "[1, inf)")
_count = number_type(int, "[0, inf)")

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
RAY_PREFIX = "ray_"  # `--ray-<field>` sets field <field> of executors/ray.py's RayExecutor


def config_option(container: Any, flag: str, cls: type, name: str, **kwargs: Any) -> argparse.Action:
    """Add option `flag` setting field `name` of config dataclass `cls`; its default, help, choices and,
    for a number, type and interval come from the field unless given in `kwargs`."""
    field = config_field(cls, name)
    kwargs.setdefault("default", field_default(cls, name))
    kwargs.setdefault("help", field.metadata["help"])
    if field.metadata.get("choices") is not None:
        kwargs.setdefault("choices", field.metadata["choices"])
    elif is_number(field):
        kwargs.setdefault("type", field_type(cls, name))
    return container.add_argument(flag, **kwargs)


def io_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--input", required=True, help="Parquet file, directory of *.parquet, or glob")
    sub.add_argument("--output", required=True, type=Path, help="output directory")
    config_option(sub, "--workers", Recipe, "workers", help="worker processes (one shard each)")
    executor_option(sub)
    config_option(
        sub,
        "--on-bad-input",
        FilterStage,
        "on_bad_input",
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
    split_options(sub, "this task's index when the shards are split over tasks")


def split_options(sub: argparse.ArgumentParser, rank_help: str, world_size_help: str | None = None) -> None:
    """--rank and --world-size: which units[rank::world_size] of a stage this task runs."""
    sub.add_argument("--rank", type=_count, default=0, help=rank_help)
    sub.add_argument(
        "--world-size",
        type=_positive_int,
        default=1,
        help=world_size_help
        or "tasks (e.g. a Slurm array) sharing the shards; this one takes shards[rank::world_size]",
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
        choices=["local", "slurm", "ray"],
        default="local",
        help="local: processes here; slurm: submit job arrays and return; ray: one Ray task per shard "
        "(docs/cluster_data.md)",
    )
    ray_options(sub)


def ray_options(sub: argparse.ArgumentParser) -> None:
    """Options of `--executor ray` (executors/ray.py's `RayExecutor` fields); each needs --executor ray.

    Their parser default is None, so that a given one is told apart; the field's default applies."""
    from data_pipeline.executors.ray import RayExecutor

    group = sub.add_argument_group("Ray (with --executor ray)")
    for name in ray_fields():
        default = field_default(RayExecutor, name)
        help = config_field(RayExecutor, name).metadata["help"]
        if default is not None and "(default" not in help:
            help += f" (default: {default:g})"
        kwargs = {"type": memory_size, "metavar": "SIZE"} if name == "memory_per_task" else {}
        config_option(
            group, "--ray-" + name.replace("_", "-"), RayExecutor, name, default=None, help=help, **kwargs
        )


def memory_size(text: str) -> int:
    """An argparse type: bytes, or a number with K, M, G or T (powers of 1024, as sbatch --mem)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = number[-1:] if number[-1:] in units else ""
    try:
        value = float(number.removesuffix(unit)) * units[unit]
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size such as 4G, 512M or 1073741824")
    return int(value)


def command_executor(args: argparse.Namespace) -> Executor:
    """The executor that `--executor` names, with its `--ray-*` settings."""
    from data_pipeline.executors.local import LOCAL

    if getattr(args, "executor", "local") != "ray":
        return LOCAL
    from data_pipeline.executors.ray import RayExecutor

    given = {name: getattr(args, RAY_PREFIX + name) for name in ray_fields()}
    return RayExecutor(**{name: value for name, value in given.items() if value is not None})


def ray_fields() -> list[str]:
    """The `RayExecutor` fields that `--ray-*` options set: all of them."""
    from data_pipeline.executors.ray import RayExecutor

    return [field.name for field in dataclasses.fields(RayExecutor)]


def shard_run_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of the sharded stages (filter, dedup, classify) from their shared options."""
    return {
        "executor": command_executor(args),
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


def shard_output_options(sub: argparse.ArgumentParser, stage: type = FilterStage) -> None:
    """Options of commands that rewrite shards through `shard.process_shard` (filter, dedup, classify),
    from the fields of their recipe stage `stage` (data_pipeline/config.py)."""
    config_option(sub, "--batch-rows", stage, "batch_rows")
    config_option(
        sub,
        "--rows-per-file",
        stage,
        "rows_per_file",
        help="split each shard's output into parts of at most this many rows (default: one part)",
    )
    sub.add_argument(
        "--write-dropped",
        action="store_true",
        help="also write dropped documents, with a drop_reason column, to OUT/dropped/",
    )


def slurm_options(sub: argparse.ArgumentParser, *, arrays: bool = True, dry_run: bool = True) -> None:
    """Options of `--executor slurm` (docs/cluster_data.md); each needs --executor slurm."""
    group = sub.add_argument_group("Slurm (with --executor slurm)")
    if arrays:
        _slurm_array_options(group)
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


def _slurm_array_options(group: argparse._ArgumentGroup) -> None:
    """How a sharded command's units are spread over the tasks of each job array."""
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
