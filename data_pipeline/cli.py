"""`andes-data`: command-line entry point of the data pipeline (also `python -m data_pipeline`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from data_pipeline.io import list_parquet

PROG = "andes-data"
SAMPLE_DIR = Path(__file__).resolve().parent / "sample"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, but not the meaningless `None` of required options and unset optionals."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None:
            return action.help
        return super()._get_help_string(action)


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


# Commands import their heavy modules (tokenizers, tiktoken) lazily so `--help` and `sample-path` start fast.
def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    from data_pipeline.train_tokenizer import train_tokenizer_from_parquet

    output = train_tokenizer_from_parquet(
        list_parquet(args.input), args.vocab_size, args.output, max_chars=args.max_chars
    )
    print(f"wrote {output} (vocab_size {args.vocab_size} incl. 256 special tokens)")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from data_pipeline.pack import pack_chunks
    from pretrain.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_file(args.tokenizer)
    manifest = pack_chunks(
        [args.input],
        args.output,
        tokenizer,
        args.seq_len,
        val_fraction=args.val_fraction,
        rows_per_shard=args.rows_per_shard,
        seed=args.seed,
    )
    splits = [("train", manifest)] + ([("val", manifest["val"])] if manifest["val"] else [])
    for name, stats in splits:
        slots = stats["total_tokens"] + stats["padding_tokens"]
        padding = 100 * stats["padding_tokens"] / slots if slots else 0.0
        print(
            f"{name}: {stats['num_sequences']} sequences of {args.seq_len + 1} tokens, "
            f"{stats['total_tokens']} tokens, {padding:.2f}% padding, {stats['num_documents']} documents"
        )
    if manifest["empty_documents"]:
        print(f"skipped {manifest['empty_documents']} empty documents")
    print(f"wrote {args.output}")
    return 0


def cmd_sample_path(args: argparse.Namespace) -> int:
    list_parquet(SAMPLE_DIR)  # fail loudly if the package was installed without its data
    print(SAMPLE_DIR)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Andes data pipeline: Parquet documents to training shards."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter)
        sub.set_defaults(func=func)
        return sub

    sub = add(
        "train-tokenizer", cmd_train_tokenizer, "train a byte-level BPE and write a tiktoken ranks file"
    )
    sub.add_argument("--input", required=True, help="Parquet file, directory of *.parquet, or glob")
    sub.add_argument("--output", required=True, type=Path, help="ranks file to write")
    sub.add_argument(
        "--vocab-size", required=True, type=_positive_int, help="total vocab incl. 256 special tokens"
    )
    sub.add_argument(
        "--max-chars",
        type=_positive_int,
        default=None,
        help="train on at most this many characters (default: all)",
    )

    sub = add("pack", cmd_pack, "tokenize documents and cut them into rows of seq_len+1 tokens")
    sub.add_argument("--input", required=True, help="Parquet file, directory of *.parquet, or glob")
    sub.add_argument("--output", required=True, type=Path, help="output directory (replaced atomically)")
    sub.add_argument("--seq-len", required=True, type=_positive_int, help="training sequence length")
    sub.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="tiktoken ranks file (default: the Llama 3 model shipped in llama-models)",
    )
    sub.add_argument(
        "--val-fraction", type=_fraction, default=0.0, help="fraction of documents for output/val/"
    )
    sub.add_argument("--rows-per-shard", type=_positive_int, default=4096, help="sequences per Parquet shard")
    sub.add_argument(
        "--seed", type=int, default=0, help="salt of the id hash that picks validation documents"
    )

    add("sample-path", cmd_sample_path, "print the directory of the bundled Shakespeare sample corpus")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return 0 on success, 1 for data errors, 2 for bad usage."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed usage or help already
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
