"""fastText quality classifiers: train from labelled Parquet, score documents, derive top-fraction thresholds.

The recipe is DCLM's (Li et al. 2024, "DataComp-LM", §4.4 and the `baselines/` code of
github.com/mlfoundations/dclm): a bag of word unigrams + bigrams fastText model trained with
`train_supervised` on balanced high-quality (`__label__hq`) and low-quality (`__label__cc`) documents,
whose probability of `hq` is the document's score; DCLM-Baseline keeps the top 10% of documents by it.
Llama 3 (Dubey et al. 2024, §3.1.1 "Model-based quality filtering") runs several such classifiers
(quality, code, math), each written to its own column by a `quality` step.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_pipeline.io import (
    atomic_write_text,
    check_string_column,
    iter_batches,
    list_parquet,
    open_parquet,
    read_text_column,
)

LABEL_PREFIX = "__label__"
# DCLM's label names (dclm baselines/README.md, "Training your own fasttext classifiers": the label
# space is `__label__hq` for high quality and `__label__cc` for low quality).
POSITIVE = "hq"
NEGATIVE = "cc"
# The fastText hyperparameters DCLM used for its OH-2.5 + ELI5 classifier: `--wordNgrams 2` and the
# defaults of dclm baselines/train_fasttext_classifier.py otherwise (lr 0.1, dim 100, ws 5, epoch 5,
# minCount 1, and fastText's bucket 2,000,000; the README says they "did not deviate from their default
# values"). These are also fastText's own supervised defaults. The bigram hash table is bucket x dim
# floats (800 MB at the defaults), hence DCLM's multi-GB model; a smaller `bucket` shrinks it.
DCLM_HYPERPARAMETERS: dict[str, Any] = {
    "lr": 0.1,
    "dim": 100,
    "ws": 5,
    "epoch": 5,
    "minCount": 1,
    "wordNgrams": 2,
    "bucket": 2_000_000,
}
# fastText returns log-probabilities smoothed by 1e-5, so a certain prediction reads 1.00001.
_MAX_PROBABILITY = np.float32(1.0)


def label_name(label: str) -> str:
    """A label without fastText's `__label__` prefix (both spellings are accepted everywhere)."""
    return str(label).removeprefix(LABEL_PREFIX)


def sidecar_path(model: Path | str) -> Path:
    """Where a model's training record lives: `<model>.json` next to it (e.g. quality.bin.json)."""
    model = Path(model)
    return model.with_name(model.name + ".json")


def fasttext_line(text: str) -> str:
    """A document as one fastText example line, the same way for training and scoring.

    Like DCLM's scorer (baselines/mappers/enrichers/quality_prediction_enrichers_calc_fasttext.py:
    `" ".join(content.strip().splitlines())`) lines are joined with spaces and case is kept; fastText
    reads one example per line and splits words on whitespace itself. A `__label__` token inside a
    document would be read as an extra label in the training file, so it is defused.
    """
    line = " ".join(text.splitlines())
    if LABEL_PREFIX in line:
        line = line.replace(LABEL_PREFIX, "__lbl__")
    return line


def load_model(path: Path | str) -> Any:
    """Load a fastText model; a missing file raises an error naming it."""
    from data_pipeline.filters.langid import load_fasttext

    return load_fasttext(Path(path).expanduser())


def check_label(model: Any, label: str) -> str:
    """The model's full label for `label`, or a ValueError listing the labels it has."""
    full = LABEL_PREFIX + label_name(label)
    if full not in model.labels:
        found = sorted(label_name(x) for x in model.labels)
        raise ValueError(f"label '{label_name(label)}' is not one of the model's labels {found}")
    return full


def score_texts(model: Any, texts: Sequence[str], positive_label: str = POSITIVE) -> np.ndarray:
    """Probability of `positive_label` for each text (float32 in [0, 1]; 0 if fastText omits the label)."""
    scores = np.zeros(len(texts), dtype=np.float32)
    if not texts:
        return scores
    wanted = LABEL_PREFIX + label_name(positive_label)
    # One call for the whole list (per-call overhead dominates on short documents); k=-1 returns every
    # label, so the positive label's probability is read directly, for binary and multi-class models.
    labels, probs = model.predict([fasttext_line(t) for t in texts], k=-1)
    for i, (names, values) in enumerate(zip(labels, probs, strict=True)):
        if wanted in names:
            scores[i] = values[names.index(wanted)]
    return np.minimum(scores, _MAX_PROBABILITY)


def roc_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney rank statistic; tied scores share their mean rank.

    Equals the probability that a random positive outscores a random negative, ties counting half.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be 1-d and of the same length")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes (got {n_pos} positives, {n_neg} negatives)")
    order = np.argsort(s, kind="stable")
    ordered = s[order]
    starts_group = np.empty(len(s), dtype=bool)
    starts_group[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts_group[1:])
    first = np.flatnonzero(starts_group)  # 0-based start of each group of equal scores
    end = np.append(first[1:], len(s))  # exclusive end
    mean_rank = (first + 1 + end) / 2.0  # mean of the 1-based ranks first+1 .. end
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = mean_rank[np.cumsum(starts_group) - 1]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Precision, recall and F1 of `score >= threshold`, ROC AUC, and the confusion counts."""
    y = np.asarray(labels, dtype=bool)
    predicted = np.asarray(scores) >= threshold
    tp = int((predicted & y).sum())
    fp = int((predicted & ~y).sum())
    fn = int((~predicted & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    has_both = 0 < int(y.sum()) < len(y)
    return {
        "docs": len(y),
        "positives": int(y.sum()),
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": float((predicted == y).mean()) if len(y) else 0.0,
        "auc": roc_auc(scores, y) if has_both else None,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": len(y) - tp - fp - fn,
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


def _tmp_name(path: Path, tag: str) -> Path:
    # After the full name and unique per writer, like io.py's temp files.
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{tag}.tmp")


def train_classifier(
    positive: Sequence[Path | str] | None = None,
    negative: Sequence[Path | str] | None = None,
    *,
    labelled: Sequence[Path | str] | None = None,
    label_column: str = "label",
    positive_label: Any = 1,
    output: Path | str,
    epochs: int = DCLM_HYPERPARAMETERS["epoch"],
    lr: float = DCLM_HYPERPARAMETERS["lr"],
    word_ngrams: int = DCLM_HYPERPARAMETERS["wordNgrams"],
    dim: int = DCLM_HYPERPARAMETERS["dim"],
    min_count: int = DCLM_HYPERPARAMETERS["minCount"],
    bucket: int = DCLM_HYPERPARAMETERS["bucket"],
    valid_fraction: float = 0.1,
    seed: int = 0,
    balance: bool = True,
    max_docs_per_class: int | None = None,
    threads: int | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Train a binary `hq`-vs-`cc` fastText classifier; save it atomically with a `<model>.json` record.

    Input is either `positive` and `negative` Parquet paths (dirs, files or globs) or `labelled` ones
    whose `label_column` equals `positive_label` for positive documents. Returns the record: counts,
    hyperparameters and held-out precision/recall/F1 at 0.5 and ROC AUC. Training is bit-for-bit
    repeatable with `threads=1`; with more threads fastText's lock-free SGD is not.
    """
    for name, value in (("epochs", epochs), ("word_ngrams", word_ngrams), ("dim", dim), ("bucket", bucket)):
        _check_positive_int(name, value)
    _check_positive_int("min_count", min_count)
    _check_positive_int("max_docs_per_class", max_docs_per_class, optional=True)
    _check_positive_int("threads", threads, optional=True)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr={lr!r}: expected a positive number")
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)):
        raise ValueError(f"valid_fraction={valid_fraction!r}: expected a number in [0, 1)")
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction={valid_fraction!r}: expected a number in [0, 1)")
    if labelled is not None:
        if positive is not None or negative is not None:
            raise ValueError("give either positive/negative inputs or labelled inputs, not both")
        pos_texts, neg_texts = _read_labelled(labelled, label_column, positive_label)
    elif positive is None or negative is None:
        raise ValueError("both positive and negative inputs are needed (or labelled inputs)")
    else:
        pos_texts, neg_texts = _read_texts(positive, "positive"), _read_texts(negative, "negative")
    counts: dict[str, Any] = {"read": {POSITIVE: len(pos_texts), NEGATIVE: len(neg_texts)}}
    # Whitespace-only documents carry no words for fastText to learn from.
    pos_texts = [t for t in pos_texts if not t.isspace() and t]
    neg_texts = [t for t in neg_texts if not t.isspace() and t]
    counts["empty_skipped"] = {
        POSITIVE: counts["read"][POSITIVE] - len(pos_texts),
        NEGATIVE: counts["read"][NEGATIVE] - len(neg_texts),
    }
    for name, texts in ((POSITIVE, pos_texts), (NEGATIVE, neg_texts)):
        if not texts:
            raise ValueError(f"class '{name}' has no non-empty documents")
    rng = np.random.default_rng(seed)
    cap = min(len(pos_texts), len(neg_texts)) if balance else None
    if max_docs_per_class is not None:
        cap = max_docs_per_class if cap is None else min(cap, max_docs_per_class)
    if cap is not None:
        pos_texts, neg_texts = _subsample(pos_texts, cap, rng), _subsample(neg_texts, cap, rng)
    counts["used"] = {POSITIVE: len(pos_texts), NEGATIVE: len(neg_texts)}

    train: list[tuple[str, str]] = []
    valid: list[tuple[str, bool]] = []
    for name, texts in ((POSITIVE, pos_texts), (NEGATIVE, neg_texts)):
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
    train = [train[i] for i in rng.permutation(len(train))]

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    hyper = {"lr": lr, "dim": dim, "ws": DCLM_HYPERPARAMETERS["ws"], "epoch": epochs, "minCount": min_count}
    hyper |= {"wordNgrams": word_ngrams, "bucket": bucket, "loss": "softmax", "seed": seed}
    hyper["thread"] = threads or os.cpu_count() or 1
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
        os.replace(model_tmp, output)
    finally:
        data_file.unlink(missing_ok=True)
        model_tmp.unlink(missing_ok=True)
    atomic_write_text(sidecar_path(output), json.dumps(record, indent=1, default=str) + "\n")
    return record


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


def _check_positive_int(name: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if type(value) is not int or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer{' or None' if optional else ''}")


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


def format_metrics(record: dict[str, Any]) -> str:
    """The training record as a short table: counts per class and the held-out metrics."""
    counts = record["counts"]
    lines = [f"{'class':<8}{'read':>10}{'used':>10}{'train':>10}{'held out':>10}"]
    for name in (POSITIVE, NEGATIVE):
        lines.append(
            f"{name:<8}{counts['read'][name]:>10,}{counts['used'][name]:>10,}"
            f"{counts['train'][name]:>10,}{counts['valid'][name]:>10,}"
        )
    m = record.get("valid_metrics")
    if m is None:
        lines.append("\nno held-out documents (valid_fraction 0): no metrics")
    else:
        auc = "n/a" if m["auc"] is None else f"{m['auc']:.4f}"
        lines += [
            "",
            f"held out ({m['docs']:,} docs, positive if P({POSITIVE}) >= {m['threshold']}):",
            f"  precision {m['precision']:.4f}  recall {m['recall']:.4f}  F1 {m['f1']:.4f}  "
            f"accuracy {m['accuracy']:.4f}  ROC AUC {auc}",
        ]
    return "\n".join(lines)


def _iter_sampled_texts(
    shards: Sequence[Path], sample: int | None, seed: int, skip_bad: bool
) -> Iterator[str]:
    """Every valid text of the shards, or about `sample` of them chosen by seeded row positions.

    Positions are drawn over the row count in the Parquet metadata, so rows skipped as invalid
    (`skip_bad`) make the sample slightly smaller than `sample`.
    """
    from data_pipeline.shard import iter_shard_texts

    chosen: list[int] | None = None
    if sample is not None:
        total = sum(open_parquet(s).metadata.num_rows for s in shards)
        if total > sample:
            chosen = sorted(np.random.default_rng(seed).choice(total, size=sample, replace=False).tolist())
    position = 0
    following = 0  # index in `chosen` of the next sampled position
    for shard in shards:
        for text in iter_shard_texts(shard, skip_bad):
            if chosen is None:
                yield text
            elif following < len(chosen) and chosen[following] == position:
                following += 1
                yield text
            position += 1


def _batched(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def threshold_for_top_fraction(
    shards: Sequence[Path | str] | Path | str,
    model: Path | str,
    fraction: float,
    *,
    positive_label: str = POSITIVE,
    sample: int | None = 1_000_000,
    seed: int = 0,
    batch_size: int = 4096,
    skip_bad: bool = False,
) -> dict[str, Any]:
    """The score that keeps the top `fraction` of documents (`score >= threshold`), from a first pass.

    Scores every document, or a seeded sample of about `sample` of them (None: all). The threshold is
    the k-th highest score with k = ceil(fraction * n), so exactly the top k pass on the scored set
    (more if scores tie). DCLM-Baseline keeps the top 10% (fraction 0.1).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"top fraction {fraction!r}: expected a number in (0, 1]")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 1):
        raise ValueError(f"sample={sample!r}: expected a positive integer or None")
    if isinstance(shards, (str, Path)):
        files = list_parquet(shards)
    else:
        files = [f for s in shards for f in list_parquet(s)]
    ft = load_model(model)
    check_label(ft, positive_label)
    texts = _iter_sampled_texts(files, sample, seed, skip_bad)
    parts = [score_texts(ft, batch, positive_label) for batch in _batched(texts, batch_size)]
    scores = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    if not len(scores):
        raise ValueError(f"no documents to score in {[str(f) for f in files]}")
    k = max(1, math.ceil(fraction * len(scores)))
    threshold = float(np.partition(scores, len(scores) - k)[len(scores) - k])
    return {
        "top_fraction": fraction,
        "threshold": threshold,
        "scored_docs": int(len(scores)),
        "kept_in_sample": int((scores >= np.float32(threshold)).sum()),
        "sample": sample,
        "seed": seed,
    }


def run_classify(
    input: Path | str,
    output: Path | str,
    model: Path | str,
    *,
    column: str = "quality_score",
    positive_label: str = POSITIVE,
    threshold: float | None = None,
    top_fraction: float | None = None,
    sample: int | None = 1_000_000,
    seed: int = 0,
    **filter_kwargs: Any,
) -> dict[str, Any]:
    """Score every document into `column`, keeping those above `threshold` or the top `top_fraction`.

    `top_fraction` needs the corpus' score distribution, so it is turned into a threshold by a first
    pass (`threshold_for_top_fraction`); the second pass is an ordinary filter run with one `quality`
    step. The derived threshold is added to stats.json under `classify`.
    """
    from data_pipeline.guard import check_io
    from data_pipeline.stages import run_filter
    from data_pipeline.stats import write_stats

    if threshold is not None and top_fraction is not None:
        raise ValueError("give a threshold or a top fraction, not both")
    check_io([input, model], [output], filter_kwargs.get("allow_incomplete", False))
    derived = None
    if top_fraction is not None:
        derived = threshold_for_top_fraction(
            input,
            model,
            top_fraction,
            positive_label=positive_label,
            sample=sample,
            seed=seed,
            skip_bad=filter_kwargs.get("on_bad_input") == "skip",
        )
        threshold = derived["threshold"]
    params = {"model": str(model), "positive_label": label_name(positive_label), "column": column}
    params["threshold"] = threshold
    summary = run_filter(input, output, [("quality", params)], **filter_kwargs)
    summary["classify"] = {"column": column, "threshold": threshold, **(derived or {})}
    write_stats(Path(output), summary)
    return summary
