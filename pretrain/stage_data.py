"""A training stage's rows: one packed directory or a weighted mix of several, chosen at load time.

Every step of a stage takes `global_batch_size` rows. Source k supplies `count_k` of them: the
counts are proportional to the mix weights (largest remainder) and the same every step. Each source
is read in its own seeded order (`RowOrder`, the single-stage loader's), starting where earlier
stages that read the same directory stopped: a batch ramp, or a later stage that returns to a
directory, continues through its rows instead of starting over. A step's rows are interleaved in
a seeded order, then split over data-parallel ranks as `StepLoader` splits them: which rows make
a step depends only on the config, the seed and the step, never on the layout, and the loader
state stays one integer per stage.

Rows, not tokens, are apportioned: packed rows are all seq_len long and nearly full, so the row
mix is the token mix that `andes-data pack --weights` realises on disk (data_pipeline/pack.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import numpy as np
import torch

from pretrain.data import Batch, PackedDataset, RowOrder, StepLoader


def apportion(weights: Sequence[float], total: int) -> list[int]:
    """Rows per source out of `total`, proportional to `weights` (Hamilton's largest remainder).

    Ties in the remainder go to the earlier source, so the counts are a pure function of the inputs.
    """
    w = np.asarray(weights, dtype=np.float64)
    quotas = w / w.sum() * total
    counts = np.floor(quotas).astype(np.int64)
    remainders = quotas - counts
    for k in sorted(range(len(w)), key=lambda k: (-remainders[k], k))[: total - int(counts.sum())]:
        counts[k] += 1
    return counts.tolist()


class MixedDataset:
    """Packed datasets of one seq_len read as one: row i of source k has index offsets[k] + i."""

    def __init__(self, sources: Sequence[PackedDataset]):
        self.sources = list(sources)
        self.seq_len = self.sources[0].seq_len
        sizes = [len(s) for s in self.sources]
        self.offsets = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
        self._len = sum(sizes)
        self.path = " + ".join(str(s.path) for s in self.sources)
        """For messages: the directories read."""

    def __len__(self) -> int:
        return self._len

    def get(self, indices: np.ndarray) -> Batch:
        """Rows by index (in the given order), each read from its own source."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(self.sources) == 1:
            return self.sources[0].get(indices)
        source = np.searchsorted(self.offsets, indices, side="right") - 1
        parts, where = [], []
        for k in np.unique(source).tolist():
            sel = np.flatnonzero(source == k)
            parts.append(self.sources[k].get(indices[sel] - self.offsets[k]))
            where.append(sel)
        back = torch.from_numpy(np.argsort(np.concatenate(where)))  # the rows back in the given order
        return Batch(**{f.name: torch.cat([getattr(p, f.name) for p in parts])[back] for f in fields(Batch)})


class StageLoader(StepLoader):
    """`StepLoader` over one stage's sources; its state names the stage (Stateful)."""

    def __init__(
        self,
        stage: str,
        first_step: int,
        sources: Sequence[PackedDataset],
        weights: Sequence[float],
        starts: Sequence[int],
        *,
        global_batch_size: int,
        micro_batch_size: int,
        dp_rank: int = 0,
        dp_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        prefetch: bool = True,
    ):
        """`starts`: rows of each source that earlier stages read; `first_step`: the stage's first
        step of the run (it seeds the interleaving, so no two steps of a run share it)."""
        super().__init__(
            MixedDataset(sources),
            global_batch_size=global_batch_size,
            micro_batch_size=micro_batch_size,
            dp_rank=dp_rank,
            dp_size=dp_size,
            seed=seed,
            shuffle=shuffle,
            prefetch=prefetch,
        )
        self.stage, self.first_step = stage, first_step
        self.counts = apportion(weights, global_batch_size)
        self.starts = list(starts)
        self.orders = [RowOrder(source, seed, shuffle) for source in sources]

    def global_indices(self, step: int) -> np.ndarray:
        """Indices (into the MixedDataset) of the whole global batch of stage-local step `step`."""
        parts = [
            offset + order.rows(start + step * count + np.arange(count))
            for offset, order, start, count in zip(
                self.dataset.offsets, self.orders, self.starts, self.counts, strict=True
            )
        ]
        rows = np.concatenate(parts)
        if len(parts) == 1:
            return rows
        return rows[np.random.default_rng([self.seed, self.first_step + step]).permutation(len(rows))]

    def state_dict(self) -> dict:
        return {"stage": self.stage, **super().state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("stage") != self.stage:
            raise ValueError(
                f"data state of stage {state.get('stage')!r} cannot resume stage {self.stage!r}: the "
                "stages that had begun at the checkpoint must not change"
            )
        super().load_state_dict(state)
