"""Packed training shards (output of `andes-data pack`) and the deterministic per-rank batch stream.

Every step takes the next `global_batch_size` sequences of one seeded global order; data-parallel
rank r takes the r-th contiguous slice of them. Which sequences make a step thus depends only on
the seed and the step, never on the parallel layout, so runs in different layouts (and runs
resumed in a new layout) see the same data. The loader's state is one integer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from data_pipeline.pack import read_manifest

IGNORE_INDEX = -100
"""Label value that the loss skips (padding)."""


@dataclass
class Batch:
    tokens: torch.Tensor
    """Input ids (batch, seq_len)."""
    labels: torch.Tensor
    """Next-token targets (batch, seq_len); IGNORE_INDEX on padding."""
    doc_ids: torch.Tensor
    """Document index of every position (batch, seq_len), for document-masked attention."""
    positions: torch.Tensor
    """Position of every token within its document (batch, seq_len): RoPE restarts per document."""


class PackedDataset:
    """All sequences of a packed-shard directory, held as one (num_sequences, seq_len + 1) array."""

    def __init__(self, path: str | Path, seq_len: int):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        if self.manifest["seq_len"] != seq_len:
            raise ValueError(
                f"data.seq_len={seq_len} but {self.path} was packed with seq_len={self.manifest['seq_len']}"
            )
        self.seq_len = seq_len
        files = sorted(self.path.glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"{self.path}: no *.parquet training shards")
        tokens, cu_seqlens = [], []
        for f in files:
            tokens_f, cu_f = _read_shard(f, seq_len)
            tokens.append(tokens_f)
            cu_seqlens.extend(cu_f)
        self.tokens = np.concatenate(tokens)
        self.cu_seqlens = cu_seqlens

    @property
    def tokenizer_info(self) -> dict:
        return self.manifest["tokenizer"]

    def __len__(self) -> int:
        return len(self.tokens)

    def get(self, indices: np.ndarray) -> Batch:
        rows = torch.from_numpy(self.tokens[indices].astype(np.int64))
        labels = rows[:, 1:].clone()
        doc_ids = np.empty((len(indices), self.seq_len), dtype=np.int64)
        pos = np.empty((len(indices), self.seq_len), dtype=np.int64)
        positions = np.arange(self.seq_len)
        for i, idx in enumerate(indices):
            cu = self.cu_seqlens[idx]
            # Padding (from cu[-1] on) forms one more "document" so it never attends to real text.
            starts = np.append(cu[:-1], cu[-1])
            doc = np.searchsorted(starts, positions, side="right") - 1
            doc_ids[i] = doc
            pos[i] = positions - starts[doc]
            n_real = int(cu[-1])
            labels[i, max(0, n_real - 1) :] = IGNORE_INDEX
        return Batch(
            tokens=rows[:, :-1].contiguous(),
            labels=labels,
            doc_ids=torch.from_numpy(doc_ids),
            positions=torch.from_numpy(pos),
        )


def _read_shard(path: Path, seq_len: int) -> tuple[np.ndarray, list[np.ndarray]]:
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path}: not a readable training shard ({e})") from e
    if not {"tokens", "cu_seqlens"} <= set(names):
        raise ValueError(f"{path}: training shard needs columns 'tokens' and 'cu_seqlens' (found: {names})")
    table = pq.read_table(path, columns=["tokens", "cu_seqlens"])
    tokens = table.column("tokens").combine_chunks()
    flat = tokens.flatten().to_numpy()
    n = len(tokens)
    if len(flat) != n * (seq_len + 1):
        raise ValueError(f"{path}: rows must hold seq_len+1={seq_len + 1} tokens each")
    cu = [np.asarray(c, dtype=np.int64) for c in table.column("cu_seqlens").to_pylist()]
    return flat.reshape(n, seq_len + 1).astype(np.int32, copy=False), cu


class StepLoader:
    """Yields, per optimizer step, this rank's micro-batches of the global batch."""

    def __init__(
        self,
        dataset: PackedDataset,
        *,
        global_batch_size: int,
        micro_batch_size: int,
        dp_rank: int = 0,
        dp_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ):
        per_rank, rem = divmod(global_batch_size, dp_size)
        if rem or per_rank % micro_batch_size:
            raise ValueError(
                f"training.global_batch_size={global_batch_size} must be a multiple of "
                f"micro_batch_size*dp = {micro_batch_size}*{dp_size}"
            )
        if global_batch_size > len(dataset):
            raise ValueError(
                f"training.global_batch_size={global_batch_size} exceeds the {len(dataset)} sequences "
                f"in {dataset.path}"
            )
        self.dataset = dataset
        self.global_batch_size = global_batch_size
        self.micro_batch_size = micro_batch_size
        self.dp_rank, self.dp_size = dp_rank, dp_size
        self.seed, self.shuffle = seed, shuffle
        self.accumulation_steps = per_rank // micro_batch_size
        self.step = 0
        self._order_epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if epoch != self._order_epoch:
            n = len(self.dataset)
            if self.shuffle:
                self._order = np.random.default_rng([self.seed, epoch]).permutation(n)
            else:
                self._order = np.arange(n)
            self._order_epoch = epoch
        return self._order

    def _global_indices(self, step: int) -> np.ndarray:
        n = len(self.dataset)
        start = step * self.global_batch_size
        positions = np.arange(start, start + self.global_batch_size)
        out = np.empty_like(positions)
        for epoch in np.unique(positions // n):  # a step may straddle two epochs
            sel = positions // n == epoch
            out[sel] = self._epoch_order(int(epoch))[positions[sel] % n]
        return out

    def next_step(self) -> list[Batch]:
        """This rank's micro-batches for the next step (advances the loader)."""
        indices = self._global_indices(self.step)
        per_rank = self.global_batch_size // self.dp_size
        mine = indices[self.dp_rank * per_rank : (self.dp_rank + 1) * per_rank]
        self.step += 1
        mb = self.micro_batch_size
        return [self.dataset.get(mine[i : i + mb]) for i in range(0, per_rank, mb)]

    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed, "global_batch_size": self.global_batch_size}

    def load_state_dict(self, state: dict) -> None:
        if state["global_batch_size"] != self.global_batch_size or state["seed"] != self.seed:
            raise ValueError(
                f"data state from a run with global_batch_size={state['global_batch_size']}, "
                f"seed={state['seed']} cannot resume one with {self.global_batch_size}, {self.seed}"
            )
        self.step = state["step"]
