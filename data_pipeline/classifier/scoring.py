"""Scoring documents: labels, fastText scores, either kind of model as a scorer, top-fraction thresholds.

A scorer (`load_scorer`) is what the `quality` step and the top-fraction pass call: `begin_shard`,
then `score(texts, rows)`, where rows (the texts' rows in that input shard) let an embedding
classifier reuse stored embeddings (embedding_reuse.py); fastText ignores them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from data_pipeline.config import ClassifyOptions
from data_pipeline.io import list_parquet, open_parquet

LABEL_PREFIX = "__label__"
# DCLM's label names (dclm baselines/README.md, "Training your own fasttext classifiers": the label
# space is `__label__hq` for high quality and `__label__cc` for low quality).
POSITIVE = "hq"
NEGATIVE = "cc"
# fastText returns log-probabilities smoothed by 1e-5, so a certain prediction reads 1.00001.
_MAX_PROBABILITY = np.float32(1.0)
# The first int32 of every fastText model (.bin, .ftz): FASTTEXT_FILEFORMAT_MAGIC_INT32 in fastText's
# src/fasttext.cc.
FASTTEXT_MAGIC = 793712314


def label_name(label: str) -> str:
    """A label without fastText's `__label__` prefix (both spellings are accepted everywhere)."""
    return str(label).removeprefix(LABEL_PREFIX)


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


class Scorer(Protocol):
    def begin_shard(self, shard: Path) -> None: ...

    def score(self, texts: Sequence[str], rows: Sequence[int | None] | None = None) -> np.ndarray: ...


class FastTextScorer:
    """A fastText model's probability of one label."""

    def __init__(self, model: Path | str, positive_label: str) -> None:
        self.model = load_model(model)
        self.label = check_label(self.model, positive_label)

    def begin_shard(self, shard: Path) -> None:
        """fastText reads only the text."""

    def score(self, texts: Sequence[str], rows: Sequence[int | None] | None = None) -> np.ndarray:
        return score_texts(self.model, texts, self.label)


def model_kind(path: Path | str) -> str:
    """`fasttext` or `embedding` (classifier/head.py), from the file's first bytes or header."""
    from data_pipeline.classifier.head import METADATA_KEY, read_metadata

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model {path}: no such file")
    with open(path, "rb") as f:
        if int.from_bytes(f.read(4), "little") == FASTTEXT_MAGIC:
            return "fasttext"
    if read_metadata(path) is not None:
        return "embedding"
    raise ValueError(
        f"{path}: neither a fastText model nor an embedding classifier "
        f"(safetensors with '{METADATA_KEY}' metadata) from andes-data train-classifier"
    )


def check_model(model: Path | str, positive_label: str = POSITIVE) -> str:
    """A model's kind, after the checks that load nothing big (an embedding classifier's file, label
    and encoder weights), so a bad model is named before any worker starts."""
    kind = model_kind(model)
    if kind == "embedding":
        from data_pipeline.classifier.embedding_scoring import check_embedding_model

        check_embedding_model(model, positive_label)
    return kind


def load_scorer(
    model: Path | str, positive_label: str = POSITIVE, embeddings: Path | str | None = None
) -> Scorer:
    """A scorer for either kind of model; `embeddings`: where an embedding classifier finds stored ones."""
    if model_kind(model) == "fasttext":
        return FastTextScorer(model, positive_label)
    from data_pipeline.classifier.embedding_scoring import EmbeddingScorer

    return EmbeddingScorer(model, positive_label, embeddings)


def _iter_sampled_rows(
    shards: Sequence[Path], sample: int | None, seed: int, skip_bad: bool
) -> Iterator[tuple[Path, int, str]]:
    """(shard, row, text) of every valid text, or of about `sample` of them chosen by seeded positions.

    Positions are drawn over the row count in the Parquet metadata, so rows skipped as invalid
    (`skip_bad`) make the sample slightly smaller than `sample`.
    """
    # Imported here: shard.py imports the steps, and the `quality` step imports this module.
    from data_pipeline.shard import iter_shard_rows

    chosen: list[int] | None = None
    if sample is not None:
        total = sum(open_parquet(s).metadata.num_rows for s in shards)
        if total > sample:
            chosen = sorted(np.random.default_rng(seed).choice(total, size=sample, replace=False).tolist())
    position = 0
    following = 0  # index in `chosen` of the next sampled position
    for shard in shards:
        for row, text in iter_shard_rows(shard, skip_bad):
            if chosen is None:
                yield shard, row, text
            elif following < len(chosen) and chosen[following] == position:
                following += 1
                yield shard, row, text
            position += 1


def _batched(
    items: Iterable[tuple[Path, int, str]], size: int
) -> Iterator[tuple[Path, list[int], list[str]]]:
    """(shard, rows, texts) of at most `size` consecutive items of one shard."""
    shard: Path | None = None
    rows: list[int] = []
    texts: list[str] = []
    for item_shard, row, text in items:
        if texts and (item_shard != shard or len(texts) == size):
            yield shard, rows, texts
            rows, texts = [], []
        shard = item_shard
        rows.append(row)
        texts.append(text)
    if texts:
        yield shard, rows, texts


def threshold_for_top_fraction(
    shards: Sequence[Path | str] | Path | str,
    model: Path | str,
    fraction: float,
    *,
    positive_label: str = POSITIVE,
    sample: int | None = ClassifyOptions.sample,
    seed: int = ClassifyOptions.seed,
    batch_size: int = 4096,
    skip_bad: bool = False,
    embeddings: Path | str | None = None,
) -> dict[str, Any]:
    """The score that keeps the top `fraction` of documents (`score >= threshold`), from a first pass.

    Scores every document, or a seeded sample of about `sample` of them (None: all). The threshold is
    the k-th highest score with k = ceil(fraction * n), so exactly the top k pass on the scored set
    (more if scores tie). DCLM-Baseline keeps the top 10% (fraction 0.1). Documents are scored as
    the `quality` step scores them (stored embeddings included), so the threshold fits its scores.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"top fraction {fraction!r}: expected a number in (0, 1]")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 1):
        raise ValueError(f"sample={sample!r}: expected a positive integer or None")
    if isinstance(shards, (str, Path)):
        files = list_parquet(shards)
    else:
        files = [f for s in shards for f in list_parquet(s)]
    scorer = load_scorer(model, positive_label, embeddings)
    parts = []
    for shard, rows, texts in _batched(_iter_sampled_rows(files, sample, seed, skip_bad), batch_size):
        scorer.begin_shard(shard)
        parts.append(scorer.score(texts, rows))
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
