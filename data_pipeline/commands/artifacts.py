"""Commands that build one artifact from documents: `train-tokenizer`, `pack`, `train-classifier`."""

from __future__ import annotations

import argparse

from data_pipeline.guard import check_io
from data_pipeline.io import list_parquet


def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    from data_pipeline.train_tokenizer import train_tokenizer_from_parquet

    check_io([args.input], [args.output], args.allow_incomplete)
    output = train_tokenizer_from_parquet(
        list_parquet(args.input), args.vocab_size, args.output, max_chars=args.max_chars
    )
    print(f"wrote {output} (vocab_size {args.vocab_size} incl. 256 special tokens)")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from data_pipeline.pack import pack
    from data_pipeline.tokenizer import Tokenizer

    weights = None
    if args.weights:
        weights = [float(w) for w in args.weights.split(",")]
    tokenizer = Tokenizer.from_file(args.tokenizer)
    manifest = pack(
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


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from data_pipeline.classifier import format_metrics, sidecar_path, train_classifier

    if args.labelled and (args.positive or args.negative):
        raise ValueError("give --labelled, or --positive and --negative, not both")
    if not args.labelled and not (args.positive and args.negative):
        raise ValueError("give --positive and --negative directories, or --labelled with --label-column")
    check_io([*args.positive, *args.negative, *args.labelled], [args.output], args.allow_incomplete)
    record = train_classifier(
        args.positive or None,
        args.negative or None,
        labelled=args.labelled or None,
        label_column=args.label_column,
        positive_label=args.positive_label,
        output=args.output,
        epochs=args.epochs,
        lr=args.lr,
        word_ngrams=args.word_ngrams,
        dim=args.dim,
        min_count=args.min_count,
        bucket=args.bucket,
        valid_fraction=args.valid_fraction,
        seed=args.seed,
        balance=not args.no_balance,
        max_docs_per_class=args.max_docs_per_class,
        threads=args.threads,
        verbose=not args.quiet,
    )
    print(format_metrics(record))
    print(f"\nwrote {args.output} (training record in {sidecar_path(args.output)})")
    return 0
