"""How well a classifier separates held-out documents: precision, recall, F1, ROC AUC, and their table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from data_pipeline.classifier.scoring import NEGATIVE, POSITIVE


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


def format_metrics(record: dict[str, Any]) -> str:
    """A training record as a short table: counts per class and the held-out metrics."""
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
