"""A classifier's training data: labelled documents read, balanced and split into train and held out.

Both kinds of classifier (fastText, `training.py`; embedding head, `embedding_training.py`) train on
exactly these examples, so for one input and seed they see the same documents and are measured on
the same held-out ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_pipeline.classifier.scoring import LABEL_PREFIX, NEGATIVE, POSITIVE
from data_pipeline.config import TrainClassifierOptions
from data_pipeline.io import check_string_column, iter_batches, list_parquet, read_text_column

_DEFAULTS = TrainClassifierOptions


@dataclass
class Examples:
    """Shuffled training examples, held-out ones, and the counts of each step (for the record)."""

    train: list[tuple[str, bool]]  # (text, is positive), classes interleaved
    valid: list[tuple[str, bool]]
    counts: dict[str, Any]
    inputs: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """The training-record fields both kinds share."""
        return {
            "labels": {"positive": POSITIVE, "negative": NEGATIVE, "prefix": LABEL_PREFIX},
            "inputs": self.inputs,
            "counts": self.counts,
        }


def _read_texts(paths: Sequence[Path | str], what: str) -> list[str]:
    """All `text` values of the Parquet files under `paths` (errors name the file and row)."""
    texts: list[str] = []
    for path in paths:
        for file in list_parquet(path):
            texts.extend(read_text_column(file))
    if not texts:
        raise ValueError(f"{what}: no documents in {[str(p) for p in paths]}")
    return texts


def _label_mask(
    file: Path, array: pa.Array, label_column: str, row: int, positive_label: Any, threshold: float | None
) -> list[bool]:
    """Which rows of a label column are positive: `>= threshold`, else `== positive_label` (cast to
    the column's type)."""
    if array.null_count:
        bad = row + array.is_null().to_pylist().index(True)
        raise ValueError(f"{file}: row {bad}: column '{label_column}' is null")
    if threshold is not None:
        if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)):
            raise ValueError(
                f"{file}: column '{label_column}' is {array.type}; --threshold needs numeric labels"
            )
        if pa.types.is_floating(array.type) and pc.any(pc.is_nan(array)).as_py():
            bad = row + pc.is_nan(array).to_pylist().index(True)
            raise ValueError(f"{file}: row {bad}: column '{label_column}' is NaN")
        return pc.greater_equal(array, pa.scalar(float(threshold))).to_pylist()
    try:
        wanted = pa.scalar(positive_label).cast(array.type)
    except (pa.ArrowException, ValueError) as e:
        raise ValueError(
            f"{file}: positive label {positive_label!r} does not fit column '{label_column}' "
            f"of type {array.type} ({e})"
        ) from None
    return pc.equal(array, wanted).to_pylist()


def _read_labelled(
    paths: Sequence[Path | str], label_column: str, positive_label: Any, threshold: float | None
) -> tuple[list[str], list[str]]:
    """(positive texts, negative texts) from files with a text column and a label column: two-valued,
    or any numbers split at `threshold`."""
    positives: list[str] = []
    negatives: list[str] = []
    values: set[Any] = set()
    for path in paths:
        for file in list_parquet(path):
            row = 0
            for batch in iter_batches(file, ["text", label_column]):
                texts = check_string_column(file, batch, "text", row)
                labels = batch.column(label_column)
                mask = _label_mask(file, labels, label_column, row, positive_label, threshold)
                if threshold is None:
                    values.update(labels.unique().to_pylist())
                if len(values) > 2:
                    raise ValueError(
                        f"{file}: column '{label_column}' has more than two values "
                        f"({sorted(map(str, values))[:10]}); a binary classifier needs two "
                        "(or give --threshold for numeric labels)"
                    )
                for text, is_positive in zip(texts, mask, strict=True):
                    (positives if is_positive else negatives).append(text)
                row += batch.num_rows
    rule = f"== {positive_label!r}" if threshold is None else f">= {threshold:g}"
    for what, texts, op in (("positive", positives, ""), ("negative", negatives, "not ")):
        if not texts:
            found = f"; values found: {sorted(map(str, values))}" if threshold is None else ""
            raise ValueError(
                f"labelled input: no {what} documents (no row has {op}{label_column} {rule}{found})"
            )
    return positives, negatives


def _read_classes(
    positive: Sequence[Path | str] | None,
    negative: Sequence[Path | str] | None,
    labelled: Sequence[Path | str] | None,
    label_column: str,
    positive_label: Any,
    threshold: float | None,
) -> tuple[list[str], list[str]]:
    """(positive texts, negative texts) from positive/negative inputs, or from labelled ones."""
    if labelled is not None:
        if positive is not None or negative is not None:
            raise ValueError("give either positive/negative inputs or labelled inputs, not both")
        return _read_labelled(labelled, label_column, positive_label, threshold)
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
    # Whitespace-only documents carry no words to learn from (nor anything an encoder should read).
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
) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """(text, is positive) training examples in shuffled order, and held-out ones in input order."""
    train: list[tuple[str, bool]] = []
    valid: list[tuple[str, bool]] = []
    for name, texts in classes.items():
        for text in texts:
            (valid if valid_fraction and _hash_unit(text, seed) < valid_fraction else train).append(
                (text, name == POSITIVE)
            )
    counts["train"] = {POSITIVE: sum(y for _, y in train), NEGATIVE: sum(not y for _, y in train)}
    counts["valid"] = {POSITIVE: sum(y for _, y in valid), NEGATIVE: sum(not y for _, y in valid)}
    if not counts["train"][POSITIVE] or not counts["train"][NEGATIVE]:
        raise ValueError(f"the training split lacks a class ({counts['train']}); lower valid_fraction")
    # fastText's SGD sees the file in order, minibatches see it in chunks: interleave the classes.
    return [train[i] for i in rng.permutation(len(train))], valid


def _describe_inputs(
    positive: Sequence[Path | str] | None,
    negative: Sequence[Path | str] | None,
    labelled: Sequence[Path | str] | None,
    label_column: str,
    positive_label: Any,
    threshold: float | None,
) -> dict[str, Any]:
    if labelled is not None:
        rule = {"positive": positive_label} if threshold is None else {"threshold": threshold}
        return {"labelled": [str(p) for p in labelled], "label_column": label_column, **rule}
    return {"positive": [str(p) for p in positive or []], "negative": [str(p) for p in negative or []]}


def labelled_examples(
    positive: Sequence[Path | str] | None = None,
    negative: Sequence[Path | str] | None = None,
    *,
    labelled: Sequence[Path | str] | None = None,
    label_column: str = _DEFAULTS.label_column,
    positive_label: Any = _DEFAULTS.positive_label,
    threshold: float | None = _DEFAULTS.threshold,
    valid_fraction: float = _DEFAULTS.valid_fraction,
    seed: int = _DEFAULTS.seed,
    balance: bool = _DEFAULTS.balance,
    max_docs_per_class: int | None = _DEFAULTS.max_docs_per_class,
) -> Examples:
    """Read `hq` (positive) and `cc` documents, drop empty ones, balance them and split off a held-out set.

    Input is either `positive` and `negative` Parquet paths (dirs, files or globs) or `labelled` ones
    whose `label_column` equals `positive_label` (cast to the column's type) for positive documents,
    or, with `threshold`, is a number at least `threshold` (an LLM's 0-5 score: `andes-data annotate`).
    One seeded generator draws the balancing and then the shuffle, so a seed fixes both.
    """
    pos_texts, neg_texts = _read_classes(
        positive, negative, labelled, label_column, positive_label, threshold
    )
    classes = {POSITIVE: pos_texts, NEGATIVE: neg_texts}
    counts: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    _balance(classes, counts, rng, balance, max_docs_per_class)
    train, valid = _split(classes, counts, rng, valid_fraction, seed)
    inputs = _describe_inputs(positive, negative, labelled, label_column, positive_label, threshold)
    return Examples(train, valid, counts, inputs)
