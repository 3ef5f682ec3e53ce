"""`andes-data run`: a multi-stage recipe."""

from __future__ import annotations

import argparse


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
