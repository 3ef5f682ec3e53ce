"""Executor option checks, and `--executor slurm`: the glue handing a command to `executors.slurm`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from data_pipeline.commands.options import PROG, RAY_PREFIX, SLURM_DESTS
from data_pipeline.commands.stages import dedup_config
from data_pipeline.config import Recipe
from data_pipeline.executors.ray import import_ray
from data_pipeline.guard import check_io
from data_pipeline.io import list_parquet


def check_executor_options(args: argparse.Namespace) -> bool:
    """True when this command is to be submitted to Slurm.

    Slurm (Ray) options without --executor slurm (ray) are refused, and so is --executor ray
    without the ray package: before anything is read or written."""
    executor = getattr(args, "executor", "local")
    # Commands that only print something run here.
    prints_only = getattr(args, "list_stages", False) or getattr(args, "s_curve", False)
    ray_given = [a.dest for a in args._parser._actions if a.dest.startswith(RAY_PREFIX)]
    ray_given = [d for d in ray_given if getattr(args, d) is not None]
    if executor != "ray" and ray_given:
        _refuse(args, ray_given, "ray")
    if executor == "ray" and not prints_only and not (args.command == "run" and args.dry_run):
        try:
            import_ray()
        except ImportError as e:
            print(f"{PROG}: error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
    if executor == "slurm":
        return not prints_only
    given = [d for d in SLURM_DESTS if getattr(args, d, None) not in (None, False, [])]
    if args.command != "run" and getattr(args, "dry_run", False):
        given.append("dry_run")
    if given:
        _refuse(args, given, "slurm")
    return False


def _refuse(args: argparse.Namespace, dests: Sequence[str], executor: str) -> None:
    names = ", ".join("--" + d.replace("_", "-") for d in dests)
    args._parser.error(f"{names}: only with --executor {executor}")


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


def submit_slurm(args: argparse.Namespace, argv: Sequence[str]) -> int:
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

        cpus = int(load_recipe(args.recipe, args.overrides).get("workers", Recipe.workers))
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
    if command in ("filter", "classify", "annotate"):
        output = args.output
        jobs = slurm.sharded_jobs(base, list_parquet(args.input), output, opts)
        paths["--input"] = Path(args.input)
    elif command == "dedup":
        output = args.output
        jobs = slurm.dedup_jobs(
            base,
            list_parquet(args.input),
            output,
            dedup_config(args),
            opts,
            partitions=args.partitions,
            rows_per_partition=args.rows_per_partition,
            cc_partitions=args.cc_partitions,
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
    given = getattr(args, "input", None)
    reads = [*(given if isinstance(given, list) else [given]), paths.get("input")]
    reads += [getattr(args, name, None) for name in ("model", "tokenizer", "embeddings", "prompt")]
    check_io(reads, [output], getattr(args, "allow_incomplete", False))  # as each task will, but now
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
