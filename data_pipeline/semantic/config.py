"""What a semantic dedup run compares and how: one frozen value every task of the run shares.

Built from a dedup stage's options (`DedupStage` in data_pipeline/config.py, where each default
and range is declared) by `dedup.tasks.DedupConfig.from_options`; recorded in the run's stage.json,
so resuming with another encoder, eps or policy is refused.
"""

from __future__ import annotations

import dataclasses
import math

from data_pipeline.config import DedupStage

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

    def __post_init__(self) -> None:
        for e in (self.eps, *self.eps_sweep):
            if not (isinstance(e, (int, float)) and not isinstance(e, bool) and 0 < e <= 1):
                raise ValueError(f"eps {e!r}: expected a number in (0, 1]")

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
