"""`andes-data classify`: score every document of a stage's shards, keep a threshold or a top share.

Either kind of model (fastText or embedding classifier) runs the same way: one `quality` step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_pipeline.classifier.scoring import check_model, label_name, threshold_for_top_fraction
from data_pipeline.config import ClassifyOptions
from data_pipeline.filters.quality import QualityClassifier
from data_pipeline.guard import check_io
from data_pipeline.stages import run_filter
from data_pipeline.stats import write_stats


def run_classify(
    input: Path | str,
    output: Path | str,
    model: Path | str,
    *,
    column: str = QualityClassifier.column,
    positive_label: str = QualityClassifier.positive_label,
    threshold: float | None = QualityClassifier.threshold,
    top_fraction: float | None = ClassifyOptions.top_fraction,
    sample: int | None = ClassifyOptions.sample,
    seed: int = ClassifyOptions.seed,
    embeddings: Path | str | None = QualityClassifier.embeddings,
    **filter_kwargs: Any,
) -> dict[str, Any]:
    """Score every document into `column`, keeping those above `threshold` or the top `top_fraction`.

    `top_fraction` needs the corpus' score distribution, so it is turned into a threshold by a first
    pass (`threshold_for_top_fraction`); the second pass is an ordinary filter run with one `quality`
    step (filters/quality.py). The derived threshold is added to stats.json under `classify`.
    `embeddings` names stored embeddings for an embedding classifier (default: the input's own).
    """
    if threshold is not None and top_fraction is not None:
        raise ValueError("give a threshold or a top fraction, not both")
    stored = [embeddings] if embeddings is not None else []
    check_io([input, model, *stored], [output], filter_kwargs.get("allow_incomplete", False))
    check_model(model, positive_label)
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
            embeddings=embeddings,
        )
        threshold = derived["threshold"]
    params = {"model": str(model), "positive_label": label_name(positive_label), "column": column}
    params["threshold"] = threshold
    if embeddings is not None:  # absent otherwise, so earlier stage.json files still match
        params["embeddings"] = str(embeddings)
    summary = run_filter(input, output, [("quality", params)], **filter_kwargs)
    summary["classify"] = {"column": column, "threshold": threshold, **(derived or {})}
    write_stats(Path(output), summary)
    return summary
