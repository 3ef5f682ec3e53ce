"""`andes-data`: command-line entry point of the data pipeline (also `python -m data_pipeline`).

This module builds the top-level parser and dispatches; each command's options are declared next to
its handler in `data_pipeline/commands/`, and options that set a configuration field take its
default, range and help from data_pipeline/config.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from data_pipeline.commands import annotate, artifacts, info, recipe, stages
from data_pipeline.commands.options import PROG, AddCommand
from data_pipeline.commands.slurm import check_executor_options, submit_slurm
from data_pipeline.executors.local import ExecutorError
from data_pipeline.shard import Interrupted

# In the order `andes-data --help` lists them.
COMMANDS: tuple[Callable[[AddCommand], None], ...] = (
    artifacts.add_train_tokenizer_parser,
    artifacts.add_pack_parser,
    stages.add_filter_parser,
    stages.add_dedup_parser,
    annotate.add_annotate_parser,
    artifacts.add_train_classifier_parser,
    stages.add_classify_parser,
    recipe.add_run_parser,
    info.add_stats_parser,
    info.add_steps_parser,
    info.add_sample_path_parser,
)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, but not the meaningless `None` of required options and unset optionals."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Andes data pipeline: Parquet documents to training shards."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter)
        sub.set_defaults(func=func, _parser=sub)
        return sub

    for register in COMMANDS:
        register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return 0 on success, 1 for data errors, 2 for bad usage."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        slurm = check_executor_options(args)
    except SystemExit as e:  # argparse has printed usage or help already
        return e.code if isinstance(e.code, int) else 2
    try:
        if slurm:
            return submit_slurm(args, argv)
        return args.func(args)
    except (OSError, ValueError, ExecutorError) as e:  # OSError: missing files, disk full
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Interrupted):
        print(f"{PROG}: interrupted; finished shards are kept, re-run the command to resume", file=sys.stderr)
        return 130
    finally:
        if getattr(args, "executor", None) == "ray":
            from data_pipeline.executors.ray import shutdown

            shutdown()  # leave the Ray cluster (a local one this command started stops)
