"""Scoring with an embedding classifier: its recorded encoder, stored or fresh embeddings, its head.

The encoder is loaded from the path the classifier recorded, after checking that its weights still
hash to the recorded sha256 and that it still embeds the same way (pooling, normalisation, case,
token limit, size): a head is meaningless on other vectors, so a changed encoder is refused, never
used quietly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline.classifier.embedding_reuse import StoredEmbeddings, encoder_mismatch
from data_pipeline.classifier.head import check_positive_label, load_classifier, probabilities
from data_pipeline.semantic.encoder import Encoder, encode, encoder_metadata, load_encoder, weights_sha256


def check_recorded_encoder(model: Path, recorded: dict[str, Any]) -> Path:
    """The directory of a classifier's encoder, if its weights still hash to the recorded sha256."""
    path = Path(str(recorded.get("path", "")))
    if not path.is_dir():
        raise ValueError(f"{model}: its encoder directory {path} does not exist (move it back or retrain)")
    actual = weights_sha256(path)
    if actual != recorded.get("weights_sha256"):
        raise ValueError(
            f"{model}: encoder {path} has weights sha256 {actual}, but the classifier was trained on "
            f"weights sha256 {recorded.get('weights_sha256')}; retrain it or restore those weights"
        )
    return path


def check_embedding_model(model: Path | str, positive_label: str) -> None:
    """What can be checked without loading the encoder: the file, the label, the encoder's weights."""
    classifier = load_classifier(model)
    check_positive_label(classifier, positive_label)
    check_recorded_encoder(classifier.path, classifier.encoder)


def load_recorded_encoder(model: Path, recorded: dict[str, Any]) -> Encoder:
    """The encoder a classifier was trained on, or a one-line ValueError saying how it changed."""
    path = check_recorded_encoder(model, recorded)
    encoder = load_encoder(path, max_tokens=recorded.get("max_tokens"))
    problem = encoder_mismatch(encoder_metadata(encoder), recorded)
    if problem is not None:
        raise ValueError(f"{model}: encoder {path} now embeds differently (now vs trained: {problem})")
    return encoder


class EmbeddingScorer:
    """P(label) of texts: stored embeddings where found (by input row), the encoder for the rest."""

    def __init__(self, model: Path | str, positive_label: str, embeddings: Path | str | None = None) -> None:
        self.classifier = load_classifier(model)
        self.positive = check_positive_label(self.classifier, positive_label)
        self.encoder = load_recorded_encoder(self.classifier.path, self.classifier.encoder)
        self.stored = StoredEmbeddings(embeddings, self.classifier.encoder)
        self.shard: Path | None = None

    def begin_shard(self, shard: Path) -> None:
        """Rows given to `score` from now on are rows of `shard`."""
        if shard != self.shard:
            self.stored.begin_shard(shard)
            self.shard = shard

    def score(self, texts: Sequence[str], rows: Sequence[int | None] | None = None) -> np.ndarray:
        """Scores (float32 in [0, 1]) of `texts`; `rows` (input rows of the current shard) enable reuse."""
        if rows is None or self.shard is None:
            rows = [None] * len(texts)
        vectors, found = self.stored.lookup(list(rows))
        missing = np.flatnonzero(~found)
        if len(missing):
            vectors[missing] = encode(self.encoder, [texts[i] for i in missing])
        p = probabilities(self.classifier.head, vectors)
        return p if self.positive else (1 - p).astype(np.float32)
