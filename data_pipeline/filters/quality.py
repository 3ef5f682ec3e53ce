"""Model-based quality filtering: a classifier's probability of a label, as a column and a cut.

DCLM (Li et al. 2024, §4.4) scores every document with a fastText classifier of high-quality
(`hq`) vs Common Crawl (`cc`) text and keeps the best-scored ones; Llama 3 (Dubey et al. 2024,
§3.1.1) does the same with several classifiers (quality, code, math). One `quality` step runs one
model; several run side by side with different `column`s. Models come from
`andes-data train-classifier`: fastText (data_pipeline/classifier/training.py, or any fastText
supervised model) or, with `--kind embedding`, a head on a text encoder's embeddings, Llama 3's
other kind of quality classifier (data_pipeline/classifier/embedding_training.py). The kind is read
from the file; an embedding classifier reuses embeddings semantic dedup stored, found by document id
(data_pipeline/classifier/embedding_reuse.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_pipeline.classifier.scoring import POSITIVE, label_name, load_scorer
from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, check_column_name, check_number, param, register


@register
@dataclasses.dataclass
class QualityClassifier(Step):
    """Annotate a classifier's probability of `positive_label`; optionally drop low scores."""

    name = "quality"
    model: str | None = param(
        None, "fastText model or embedding classifier from `andes-data train-classifier` (required)"
    )
    # DCLM's label for high-quality text (dclm baselines/README.md: `__label__hq` vs `__label__cc`).
    positive_label: str = param(POSITIVE, "label whose probability is the score (with or without __label__)")
    column: str = param(
        "quality_score", "annotation column for the score; give each classifier its own (code_score...)"
    )
    # No published absolute threshold carries over between models: DCLM-Baseline keeps its top 10%
    # (§4.4), which `andes-data classify --top-fraction 0.1` turns into a threshold for a given corpus
    # (0.018112 for their OH-2.5 + ELI5 model, dclm baselines/baselines_configs/fasttext_filter.yaml).
    # datatrove's FastTextClassifierFilter likewise has no default (keep_labels=None: annotate only).
    threshold: float | None = param(None, "drop documents scoring below this (0..1); None: annotate only")
    batch_size: int = param(1024, "documents per fastText predict call or encoder batch")
    embeddings: str | None = param(
        None,
        "embedding classifier: directory of <stem>.parquet stored embeddings to reuse by id "
        "(default: the input's own .dedup/embeddings/, if any)",
    )

    def __post_init__(self) -> None:
        if self.model is not None and (not isinstance(self.model, (str, Path)) or not str(self.model)):
            raise ValueError(f"model={self.model!r}: expected a path to a classifier model")
        if self.model is not None and not Path(self.model).expanduser().is_file():
            raise ValueError(f"model {self.model}: no such file")
        if self.embeddings is not None and not Path(self.embeddings).expanduser().is_dir():
            raise ValueError(f"embeddings {self.embeddings}: no such directory")
        if not isinstance(self.positive_label, str) or not label_name(self.positive_label):
            raise ValueError(f"positive_label={self.positive_label!r}: expected a label name such as 'hq'")
        check_column_name("column", self.column)
        check_number("threshold", self.threshold, 0.0, 1.0)
        if self.batch_size is None:
            raise ValueError("batch_size=None: expected a positive integer")
        check_number("batch_size", self.batch_size, 1, integer=True)
        self._reason = f"low_{self.column}"  # tells apart the drops of several classifiers
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Steps are pickled to worker processes; a fastText handle or an encoder is not: each worker
        # loads its own.
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    def label(self) -> str:
        """Name for per-step stats: one per classifier when several run in one stage."""
        return self.name if self.column == "quality_score" else f"{self.name}[{self.column}]"

    def columns(self) -> dict[str, pa.DataType]:
        return {self.column: pa.float32()}

    def setup(self) -> None:
        if self._model is not None:
            return
        if self.model is None:
            raise ValueError("quality: parameter 'model' is required (a train-classifier model file)")
        self._model = load_scorer(self.model, self.positive_label, self.embeddings)

    def begin_shard(self, shard: Path) -> None:
        self.setup()
        self._model.begin_shard(shard)

    def process(self, docs: list[Doc]) -> None:
        # One predict call per batch: fastText's per-call overhead is comparable to scoring a short doc.
        kept = [doc for doc in docs if doc.drop_reason is None]
        if not kept:
            return
        self.setup()
        drop = self.drop and self.threshold is not None
        for start in range(0, len(kept), self.batch_size):
            chunk = kept[start : start + self.batch_size]
            # A rewritten text has no stored embedding: its row is not looked up.
            rows = [None if doc.text_changed else doc.row for doc in chunk]
            scores = self._model.score([doc.text for doc in chunk], rows).tolist()
            for doc, score in zip(chunk, scores, strict=True):
                doc.annotations[self.column] = score
                if drop and score < self.threshold:
                    doc.drop_reason = f"{self.name}:{self._reason}"
