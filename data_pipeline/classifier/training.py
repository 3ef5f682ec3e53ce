"""Training a fastText classifier on the shared labelled examples (examples.py): fit, evaluate, record.

Hyperparameters and split options are declared once, with their defaults and ranges, in
`TrainClassifierOptions` (data_pipeline/config.py), which `andes-data train-classifier` also reads.
"""

from __future__ import annotations

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

from data_pipeline.classifier.examples import labelled_examples
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
from data_pipeline.io import atomic_write_text

_DEFAULTS = TrainClassifierOptions


def sidecar_path(model: Path | str) -> Path:
    """Where a model's training record lives: `<model>.json` next to it (e.g. quality.bin.json)."""
    model = Path(model)
    return model.with_name(model.name + ".json")


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
    train: list[tuple[str, bool]],
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
            for text, is_positive in train:
                f.write(f"{LABEL_PREFIX}{POSITIVE if is_positive else NEGATIVE} {fasttext_line(text)}\n")
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


def train_classifier(
    positive: Sequence[Path | str] | None = None,
    negative: Sequence[Path | str] | None = None,
    *,
    labelled: Sequence[Path | str] | None = None,
    label_column: str = _DEFAULTS.label_column,
    positive_label: Any = _DEFAULTS.positive_label,
    threshold: float | None = _DEFAULTS.threshold,
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
    whose `label_column` equals `positive_label` (cast to the column's type), or with `threshold` is
    at least `threshold`, for positive documents. Returns the record: counts, hyperparameters and
    held-out precision/recall/F1 at 0.5 and ROC AUC.
    Training is bit-for-bit repeatable with `threads=1`; with more threads fastText's lock-free SGD is not.
    """
    numbers = {"epochs": epochs, "word_ngrams": word_ngrams, "dim": dim, "bucket": bucket}
    numbers |= {"min_count": min_count, "max_docs_per_class": max_docs_per_class, "threads": threads}
    numbers |= {"lr": lr, "valid_fraction": valid_fraction, "threshold": threshold}
    check_fields(TrainClassifierOptions, numbers, "")
    data = labelled_examples(
        positive,
        negative,
        labelled=labelled,
        label_column=label_column,
        positive_label=positive_label,
        threshold=threshold,
        valid_fraction=valid_fraction,
        seed=seed,
        balance=balance,
        max_docs_per_class=max_docs_per_class,
    )
    hyper = {"lr": lr, "dim": dim, "ws": _DEFAULTS.ws, "epoch": epochs, "minCount": min_count}
    hyper |= {"wordNgrams": word_ngrams, "bucket": bucket, "loss": "softmax", "seed": seed}
    hyper["thread"] = threads or os.cpu_count() or 1
    output = Path(output)
    metrics, seconds = _fit_and_evaluate(data.train, data.valid, output, hyper, verbose)
    record = {
        "model": output.name,
        "kind": "fasttext",
        **data.record(),
        "hyperparameters": hyper,
        "valid_fraction": valid_fraction,
        "balance": balance,
        "max_docs_per_class": max_docs_per_class,
        "valid_metrics": metrics,
        "train_seconds": round(seconds, 3),
        "preprocessing": "lines joined with spaces, case kept (DCLM); '__label__' in text defused",
    }
    atomic_write_text(sidecar_path(output), json.dumps(record, indent=1, default=str) + "\n")
    return record
