"""Commands that build one artifact from documents: `train-tokenizer`, `pack`, `train-classifier`."""

from __future__ import annotations

import argparse
from pathlib import Path

from data_pipeline.commands.options import (
    AddCommand,
    allow_incomplete_option,
    command_executor,
    config_option,
    executor_option,
    slurm_options,
)
from data_pipeline.config import (
    EmbeddingClassifierOptions,
    PackStage,
    TrainClassifierOptions,
    TrainTokenizerStage,
    field_default,
)
from data_pipeline.guard import check_io
from data_pipeline.io import list_parquet


def add_train_tokenizer_parser(add: AddCommand) -> None:
    sub = add(
        "train-tokenizer", cmd_train_tokenizer, "train a byte-level BPE and write a tiktoken ranks file"
    )
    sub.add_argument("--input", required=True, help="Parquet file, directory of *.parquet, or glob")
    sub.add_argument("--output", required=True, type=Path, help="ranks file to write")
    config_option(sub, "--vocab-size", TrainTokenizerStage, "vocab_size", required=True)
    config_option(
        sub,
        "--max-chars",
        TrainTokenizerStage,
        "max_chars",
        help="train on at most this many characters (default: all)",
    )
    allow_incomplete_option(sub)
    executor_option(sub)
    slurm_options(sub, arrays=False)


def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    from data_pipeline.train_tokenizer import train_tokenizer_from_parquet

    check_io([args.input], [args.output], args.allow_incomplete)
    output = command_executor(args).call(
        train_tokenizer_from_parquet,
        list_parquet(args.input),
        args.vocab_size,
        args.output,
        max_chars=args.max_chars,
    )
    print(f"wrote {output} (vocab_size {args.vocab_size} incl. 256 special tokens)")
    return 0


def add_pack_parser(add: AddCommand) -> None:
    sub = add("pack", cmd_pack, "tokenize documents and pack them into rows of seq_len+1 tokens")
    sub.add_argument(
        "--input",
        required=True,
        action="append",
        help="Parquet file, directory of *.parquet, or glob; repeat to mix sources (see --weights)",
    )
    config_option(
        sub,
        "--strategy",
        PackStage,
        "strategy",
        help="best_fit: best-fit-decreasing, documents that fit a row are never split (Ding et al. 2024); "
        "concat: concatenate and chunk",
    )
    sub.add_argument("--no-shuffle", action="store_true", help="keep rows in packing order")
    sub.add_argument(
        "--weights",
        default=None,
        help="comma-separated token share of each --input, e.g. 0.5,0.25,0.17,0.08 (Llama 3's mix)",
    )
    sub.add_argument("--output", required=True, type=Path, help="output directory (replaced atomically)")
    config_option(sub, "--seq-len", PackStage, "seq_len", required=True)
    config_option(
        sub,
        "--tokenizer",
        PackStage,
        "tokenizer",
        type=Path,
        help="tiktoken ranks file, HF tokenizer.json or a directory holding one "
        "(default: the Llama 3 model shipped in llama-models)",
    )
    config_option(sub, "--val-fraction", PackStage, "val_fraction")
    config_option(sub, "--rows-per-shard", PackStage, "rows_per_shard")
    config_option(
        sub, "--seed", PackStage, "seed", help="salt of the id hash that picks validation documents"
    )
    allow_incomplete_option(sub)
    executor_option(sub)
    slurm_options(sub, arrays=False)


def cmd_pack(args: argparse.Namespace) -> int:
    from data_pipeline.pack import pack
    from data_pipeline.tokenizer import load_tokenizer

    weights = None
    if args.weights:
        weights = [float(w) for w in args.weights.split(",")]
    tokenizer = load_tokenizer(args.tokenizer)
    manifest = command_executor(args).call(
        pack,
        args.input,
        args.output,
        tokenizer,
        args.seq_len,
        strategy=args.strategy,
        shuffle=not args.no_shuffle,
        weights=weights,
        val_fraction=args.val_fraction,
        rows_per_shard=args.rows_per_shard,
        seed=args.seed,
        allow_incomplete=args.allow_incomplete,
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


def add_train_classifier_parser(add: AddCommand) -> None:
    sub = add(
        "train-classifier",
        cmd_train_classifier,
        "train a quality classifier (fastText, DCLM's recipe, or a head on embeddings) from labelled Parquet",
    )
    sub.epilog = (
        "Writes OUT (the model) and OUT.json (labels hq/cc, hyperparameters, counts, held-out precision, "
        "recall, F1 and ROC AUC). fastText defaults are DCLM's OH-2.5+ELI5 classifier: word bigrams, lr 0.1, "
        "dim 100, 5 epochs, minCount 1, 2M hash buckets (an ~800 MB model; --bucket shrinks it). "
        "--kind embedding trains a head on a frozen encoder's embeddings of the same documents, split "
        "the same way, and writes one safetensors file recording the encoder (docs/contract.md)."
    )
    config_option(sub, "--kind", TrainClassifierOptions, "kind")
    for flag, what in (
        ("--positive", "Parquet dir/file/glob of high-quality documents"),
        ("--negative", "Parquet dir/file/glob of low-quality documents"),
        ("--labelled", "Parquet dir/file/glob with text and a label column"),
    ):
        sub.add_argument(flag, action="append", default=[], help=what)
    config_option(sub, "--label-column", TrainClassifierOptions, "label_column")
    rule = sub.add_mutually_exclusive_group()
    config_option(rule, "--positive-label", TrainClassifierOptions, "positive_label")
    config_option(rule, "--threshold", TrainClassifierOptions, "threshold")
    sub.add_argument("--output", required=True, type=Path, help="model file to write (e.g. quality.bin)")
    # Their default depends on --kind: None here, the kind's field when the trainer is called.
    for name, what in (("epochs", "training epochs"), ("lr", "learning rate")):
        per_kind = ", ".join(
            f"{kind} {field_default(cls, name)}"
            for kind, cls in (("fasttext", TrainClassifierOptions), ("embedding", EmbeddingClassifierOptions))
        )
        config_option(
            sub, "--" + name, TrainClassifierOptions, name, default=None, help=f"{what} (default: {per_kind})"
        )
    config_option(sub, "--valid-fraction", TrainClassifierOptions, "valid_fraction")
    config_option(sub, "--seed", TrainClassifierOptions, "seed", type=int)
    sub.add_argument(
        "--no-balance", action="store_true", help="keep both classes whole instead of downsampling the larger"
    )
    config_option(sub, "--max-docs-per-class", TrainClassifierOptions, "max_docs_per_class")
    config_option(sub, "--threads", TrainClassifierOptions, "threads")
    fasttext = sub.add_argument_group("fastText (--kind fasttext)")
    for name in ("word_ngrams", "dim", "min_count", "bucket"):
        config_option(fasttext, "--" + name.replace("_", "-"), TrainClassifierOptions, name)
    embedding = sub.add_argument_group("embedding head (--kind embedding)")
    for name in ("head", "hidden", "weight_decay", "batch_size", "encoder", "max_tokens"):
        config_option(embedding, "--" + name.replace("_", "-"), EmbeddingClassifierOptions, name)
    sub.add_argument("--quiet", action="store_true", help="no fastText progress output")
    allow_incomplete_option(sub)


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from data_pipeline.classifier.metrics import format_metrics
    from data_pipeline.classifier.training import sidecar_path

    if args.labelled and (args.positive or args.negative):
        raise ValueError("give --labelled, or --positive and --negative, not both")
    if not args.labelled and not (args.positive and args.negative):
        raise ValueError("give --positive and --negative directories, or --labelled with --label-column")
    check_io([*args.positive, *args.negative, *args.labelled], [args.output], args.allow_incomplete)
    common = {
        "labelled": args.labelled or None,
        "label_column": args.label_column,
        "positive_label": args.positive_label,
        "threshold": args.threshold,
        "output": args.output,
        "valid_fraction": args.valid_fraction,
        "seed": args.seed,
        "balance": not args.no_balance,
        "max_docs_per_class": args.max_docs_per_class,
        "threads": args.threads,
    }
    common |= {name: getattr(args, name) for name in ("epochs", "lr") if getattr(args, name) is not None}
    if args.kind == "embedding":
        from data_pipeline.classifier.embedding_training import train_embedding_classifier

        head = {name: getattr(args, name) for name in ("head", "hidden", "weight_decay", "batch_size")}
        head |= {"encoder": args.encoder, "max_tokens": args.max_tokens}
        record = train_embedding_classifier(args.positive or None, args.negative or None, **common, **head)
    else:
        from data_pipeline.classifier.training import train_classifier

        fasttext = {name: getattr(args, name) for name in ("word_ngrams", "dim", "min_count", "bucket")}
        record = train_classifier(
            args.positive or None, args.negative or None, **common, **fasttext, verbose=not args.quiet
        )
    print(format_metrics(record))
    print(f"\nwrote {args.output} (training record in {sidecar_path(args.output)})")
    return 0
