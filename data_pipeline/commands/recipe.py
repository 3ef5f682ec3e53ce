"""`andes-data run`: a multi-stage recipe."""

from __future__ import annotations

import argparse
from pathlib import Path

from data_pipeline.commands.options import (
    AddCommand,
    command_executor,
    executor_option,
    slurm_options,
    split_options,
)


def add_run_parser(add: AddCommand) -> None:
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
    split_options(
        sub,
        "with --stage: this task's index",
        "with --stage: tasks sharing the stage; this one takes its units[rank::world_size]",
    )
    slurm_options(sub, dry_run=False)


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
        executor=command_executor(args),
    )
    print(f"stage done: {out}" if args.stage is not None else f"recipe done: {out}")
    return 0
