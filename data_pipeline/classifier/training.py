"""Training a fastText classifier: read labelled documents, balance and split them, fit, record.

Hyperparameters and split options are declared once, with their defaults and ranges, in
`TrainClassifierOptions` (data_pipeline/config.py), which `andes-data train-classifier` also reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_pipeline.classifier.metrics import binary_metrics
from data_pipeline.classifier.scoring import (
    LABEL_PREFIX,
    NEGATIVE,
    POSITIVE,
    fasttext_line,
    load_model,
    score_texts,
)
from data_pipeline.config import TrainClassifierOptions, check_fields
from data_pipeline.io import (
    atomic_write_text,
    check_string_column,
    iter_batches,
    list_parquet,
    read_text_column,
)

_DEFAULTS = TrainClassifierOptions


def sidecar_path(model: Path | str) -> Path:
    """Where a model's training record lives: `<model>.json` next to it (e.g. quality.bin.json)."""
    model = Path(model)
    return model.with_name(model.name + ".json")


def _read_texts(paths: Sequence[Path | str], what: str) -> list[str]:
    """All `text` values of the Parquet files under `paths` (errors name the file and row)."""
    texts: list[str] = []
    for path in paths:
        for file in list_parquet(path):
            texts.extend(read_text_column(file))
    if not texts:
        raise ValueError(f"{what}: no documents in {[str(p) for p in paths]}")
    return texts


def _label_mask(file: Path, array: pa.Array, positive_label: Any, label_column: str, row: int) -> list[bool]:
    """Which rows of a label column equal `positive_label` (cast to the column's type)."""
    if array.null_count:
        bad = row + array.is_null().to_pylist().index(True)
        raise ValueError(f"{file}: row {bad}: column '{label_column}' is null")
    try:
        wanted = pa.scalar(positive_label).cast(array.type)
    except (pa.ArrowException, ValueError) as e:
        raise ValueError(
            f"{file}: positive label {positive_label!r} does not fit column '{label_column}' "
            f"of type {array.type} ({e})"
        ) from None
    return pc.equal(array, wanted).to_pylist()


def _read_labelled(
    paths: Sequence[Path | str], label_column: str, positive_label: Any
) -> tuple[list[str], list[str]]:
    """(positive texts, negative texts) from files with a text column and a two-valued label column."""
    positives: list[str] = []
    negatives: list[str] = []
    values: set[Any] = set()
    for path in paths:
        for file in list_parquet(path):
            row = 0
            for batch in iter_batches(file, ["text", label_column]):
                texts = check_string_column(file, batch, "text", row)
                labels = batch.column(label_column)
                mask = _label_mask(file, labels, positive_label, label_column, row)
                values.update(labels.unique().to_pylist())
                if len(values) > 2:
                    raise ValueError(
                        f"{file}: column '{label_column}' has more than two values "
                        f"({sorted(map(str, values))[:10]}); a binary classifier needs two"
                    )
                for text, is_positive in zip(texts, mask, strict=True):
                    (positives if is_positive else negatives).append(text)
                row += batch.num_rows
    for what, texts, op in (("positive", positives, "=="), ("negative", negatives, "!=")):
        if not texts:
            raise ValueError(
                f"labelled input: no {what} documents (no row has {label_column} {op} {positive_label!r}; "
                f"values found: {sorted(map(str, values))})"
            )
    return positives, negatives


def _read_classes(
    positive: Sequence[Path | str] | None,
    negative: Sequence[Path | str] | None,
    labelled: Sequence[Path | str] | None,
    label_column: str,
    positive_label: Any,
) -> tuple[list[str], list[str]]:
    """(positive texts, negative texts) from positive/negative inputs, or from labelled ones."""
    if labelled is not None:
        if positive is not None or negative is not None:
            raise ValueError("give either positive/negative inputs or labelled inputs, not both")
        return _read_labelled(labelled, label_column, positive_label)
    if positive is None or negative is None:
        raise ValueError("both positive and negative inputs are needed (or labelled inputs)")
    return _read_texts(positive, "positive"), _read_texts(negative, "negative")


def _hash_unit(text: str, seed: int) -> float:
    """A deterministic number in [0, 1) from a document's text: its place in the held-out split.

    Keyed on the text, so duplicate documents land on the same side and never leak across.
    """
    salt = (seed % 2**64).to_bytes(8, "little") + b"andes-qc"
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8, salt=salt)
    return int.from_bytes(digest.digest(), "little") / 2.0**64


def _subsample(texts: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """`n` of the texts chosen without replacement, kept in their input order."""
    if n >= len(texts):
        return texts
    chosen = np.sort(rng.choice(len(texts), size=n, replace=False))
    return [texts[i] for i in chosen]


def _balance(
    classes: dict[str, list[str]],
    counts: dict[str, Any],
    rng: np.random.Generator,
    balance: bool,
    max_docs_per_class: int | None,
) -> None:
    """Drop empty documents, then downsample the classes (in place) to the smaller one and/or a cap."""
    # Whitespace-only documents carry no words for fastText to learn from.
    counts["read"] = {name: len(texts) for name, texts in classes.items()}
    for name, texts in classes.items():
        classes[name] = [t for t in texts if not t.isspace() and t]
    counts["empty_skipped"] = {name: counts["read"][name] - len(classes[name]) for name in classes}
    for name, texts in classes.items():
        if not texts:
            raise ValueError(f"class '{name}' has no non-empty documents")
    cap = min(len(texts) for texts in classes.values()) if balance else None
    if max_docs_per_class is not None:
        cap = max_docs_per_class if cap is None else min(cap, max_docs_per_class)
    if cap is not None:
        for name in classes:  # in order: positive, then negative (the draws of `rng`)
            classes[name] = _subsample(classes[name], cap, rng)
    counts["used"] = {name: len(texts) for name, texts in classes.items()}


def _split(
    classes: dict[str, list[str]],
    counts: dict[str, Any],
    rng: np.random.Generator,
    valid_fraction: float,
    seed: int,
) -> tuple[list[tuple[str, str]], list[tuple[str, bool]]]:
    """(label, fastText line) training examples in shuffled order, and (text, is positive) held-out ones."""
    train: list[tuple[str, str]] = []
    valid: list[tuple[str, bool]] = []
    for name, texts in classes.items():
        for text in texts:
            if valid_fraction and _hash_unit(text, seed) < valid_fraction:
                valid.append((text, name == POSITIVE))
            else:
                train.append((name, fasttext_line(text)))
    counts["train"] = {n: sum(label == n for label, _ in train) for n in (POSITIVE, NEGATIVE)}
    counts["valid"] = {POSITIVE: sum(y for _, y in valid), NEGATIVE: sum(not y for _, y in valid)}
    if not counts["train"][POSITIVE] or not counts["train"][NEGATIVE]:
        raise ValueError(f"the training split lacks a class ({counts['train']}); lower valid_fraction")
    # fastText's SGD sees the file in order: interleave the classes.
    return [train[i] for i in rng.permutation(len(train))], valid


def _tmp_name(path: Path, tag: str) -> Path:
    # After the full name and unique per writer, like io.py's temp files.
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{tag}.tmp")


# Runs in a fresh interpreter; arguments come as one JSON string.
_TRAIN_SCRIPT = """
import json, sys
import fasttext
args = json.loads(sys.argv[1])
fasttext.train_supervised(**args["hyper"]).save_model(args["output"])
"""


def _fit_fasttext(data_file: Path, model_file: Path, hyper: dict[str, Any], verbose: bool) -> None:
    """`fasttext.train_supervised` in a child process with fresh memory, saving the model to `model_file`.

    fastText initialises only the first thread/10 of the input matrix's rows (fastText issue #1061)
    and, in the fasttext-numpy2-wheel build, leaves the rest as allocated: zero pages in a fresh
    process, but a second training in the same process reuses freed memory, which made models
    differ from run to run and training fail with "Encountered NaN". A child process whose large
    allocations are all fresh (zeroed) mmaps (glibc's MALLOC_MMAP_THRESHOLD_) trains like upstream.
    """
    args = {"hyper": {"input": str(data_file), "verbose": 2 if verbose else 0, **hyper}}
    args["output"] = str(model_file)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}
    result = subprocess.run(
        [sys.executable, "-c", _TRAIN_SCRIPT, json.dumps(args)],
        env=env,
        stdout=None if verbose else subprocess.DEVNULL,
        stderr=None if verbose else subprocess.PIPE,
        text=True,
    )
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
        raise ValueError(f"fastText training failed: {detail[0]} (a lower lr helps against NaN)")


def _fit_and_evaluate(
    train: list[tuple[str, str]],
    valid: list[tuple[str, bool]],
    output: Path,
    hyper: dict[str, Any],
    verbose: bool,
) -> tuple[dict[str, Any] | None, float]:
    """Fit on `train`, score `valid`, move the model to `output`; returns (held-out metrics, seconds)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    data_file = _tmp_name(output, "train")
    model_tmp = _tmp_name(output, "model")
    start = time.perf_counter()
    try:
        with open(data_file, "w", encoding="utf-8", newline="\n") as f:
            for name, line in train:
                f.write(f"{LABEL_PREFIX}{name} {line}\n")
        _fit_fasttext(data_file, model_tmp, hyper, verbose)
        seconds = time.perf_counter() - start
        model = load_model(model_tmp)
        scores = score_texts(model, [t for t, _ in valid], POSITIVE)
        metrics = binary_metrics(scores, np.array([y for _, y in valid], dtype=bool)) if valid else None
        os.replace(model_tmp, output)
    finally:
        data_file.unlink(missing_ok=True)
        model_tmp.unlink(missing_ok=True)
    return metrics, seconds


def _describe_inputs(
    positive: Sequence[Path | str] | None,
    negative: Sequence[Path | str] | None,
    labelled: Sequence[Path | str] | None,
    label_column: str,
    positive_label: Any,
) -> dict[str, Any]:
    if labelled is not None:
        return {
            "labelled": [str(p) for p in labelled],
            "label_column": label_column,
            "positive": positive_label,
        }
    return {"positive": [str(p) for p in positive or []], "negative": [str(p) for p in negative or []]}


def train_classifier(
    positive: Sequence[Path | str] | None = None,
    negative: Sequence[Path | str] | None = None,
    *,
    labelled: Sequence[Path | str] | None = None,
    label_column: str = _DEFAULTS.label_column,
    positive_label: Any = _DEFAULTS.positive_label,
    output: Path | str,
    epochs: int = _DEFAULTS.epochs,
    lr: float = _DEFAULTS.lr,
    word_ngrams: int = _DEFAULTS.word_ngrams,
    dim: int = _DEFAULTS.dim,
    min_count: int = _DEFAULTS.min_count,
    bucket: int = _DEFAULTS.bucket,
    valid_fraction: float = _DEFAULTS.valid_fraction,
    seed: int = _DEFAULTS.seed,
    balance: bool = _DEFAULTS.balance,
    max_docs_per_class: int | None = _DEFAULTS.max_docs_per_class,
    threads: int | None = _DEFAULTS.threads,
    verbose: bool = False,
) -> dict[str, Any]:
    """Train a binary `hq`-vs-`cc` fastText classifier; save it atomically with a `<model>.json` record.

    Input is either `positive` and `negative` Parquet paths (dirs, files or globs) or `labelled` ones
    whose `label_column` equals `positive_label` (cast to the column's type) for positive documents.
    Returns the record: counts, hyperparameters and held-out precision/recall/F1 at 0.5 and ROC AUC.
    Training is bit-for-bit repeatable with `threads=1`; with more threads fastText's lock-free SGD is not.
    """
    numbers = {"epochs": epochs, "word_ngrams": word_ngrams, "dim": dim, "bucket": bucket}
    numbers |= {"min_count": min_count, "max_docs_per_class": max_docs_per_class, "threads": threads}
    check_fields(TrainClassifierOptions, {**numbers, "lr": lr, "valid_fraction": valid_fraction}, "")
    pos_texts, neg_texts = _read_classes(positive, negative, labelled, label_column, positive_label)
    classes = {POSITIVE: pos_texts, NEGATIVE: neg_texts}
    counts: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    _balance(classes, counts, rng, balance, max_docs_per_class)
    train, valid = _split(classes, counts, rng, valid_fraction, seed)
    hyper = {"lr": lr, "dim": dim, "ws": _DEFAULTS.ws, "epoch": epochs, "minCount": min_count}
    hyper |= {"wordNgrams": word_ngrams, "bucket": bucket, "loss": "softmax", "seed": seed}
    hyper["thread"] = threads or os.cpu_count() or 1
    output = Path(output)
    metrics, seconds = _fit_and_evaluate(train, valid, output, hyper, verbose)
    record = {
        "model": output.name,
        "labels": {"positive": POSITIVE, "negative": NEGATIVE, "prefix": LABEL_PREFIX},
        "hyperparameters": hyper,
        "valid_fraction": valid_fraction,
        "balance": balance,
        "max_docs_per_class": max_docs_per_class,
        "inputs": _describe_inputs(positive, negative, labelled, label_column, positive_label),
        "counts": counts,
        "valid_metrics": metrics,
        "train_seconds": round(seconds, 3),
        "preprocessing": "lines joined with spaces, case kept (DCLM); '__label__' in text defused",
    }
    atomic_write_text(sidecar_path(output), json.dumps(record, indent=1, default=str) + "\n")
    return record
