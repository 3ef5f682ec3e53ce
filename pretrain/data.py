"""Packed training shards (output of `andes-data pack`) and the deterministic per-rank batch stream.

The dataset is read lazily, one Parquet row group ("block") at a time, so a corpus of any size
streams through a few blocks of memory. Every step takes the next `global_batch_size` rows of one
seeded global order; data-parallel rank r takes the r-th contiguous slice of them. The order
shuffles blocks per epoch and keeps rows within a block in file order (`pack` has already shuffled
rows globally), so consecutive steps read consecutive rows of a block. Which rows make a step thus
depends only on the seed and the step, never on the parallel layout: runs in different layouts,
and runs resumed in a new layout, see the same data, and the loader's whole state is one integer.
A background thread reads the next step's rows while the current one trains.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from data_pipeline.packed_format import read_manifest

IGNORE_INDEX = -100
"""Label value that the loss skips (padding)."""
CACHED_BLOCKS = 4
"""Row groups kept decoded per dataset: a step's rows span one or two consecutive blocks."""


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


def _open(path: Path) -> pq.ParquetFile:
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path}: not a readable training shard ({e})") from e
    names = file.schema_arrow.names
    if not {"tokens", "cu_seqlens"} <= set(names):
        raise ValueError(f"{path}: training shard needs columns 'tokens' and 'cu_seqlens' (found: {names})")
    return file


class PackedDataset:
    """The rows of a packed-shard directory, read by row group on demand."""

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
        self.blocks: list[tuple[Path, int]] = []
        sizes = []
        for f in files:
            meta = _open(f).metadata
            for g in range(meta.num_row_groups):
                if meta.row_group(g).num_rows:
                    self.blocks.append((f, g))
                    sizes.append(meta.row_group(g).num_rows)
        self.block_sizes = np.asarray(sizes, dtype=np.int64)
        self.block_starts = np.cumsum(self.block_sizes) - self.block_sizes
        self._cache: OrderedDict[int, tuple[np.ndarray, list[np.ndarray]]] = OrderedDict()
        self._lock = threading.Lock()  # the prefetch thread and the trainer share the cache

    @property
    def tokenizer_info(self) -> dict:
        return self.manifest["tokenizer"]

    def __len__(self) -> int:
        return int(self.block_sizes.sum())

    def block(self, b: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Rows of block b: tokens (n, seq_len + 1) int32 and each row's cu_seqlens."""
        with self._lock:
            if b in self._cache:
                self._cache.move_to_end(b)
                return self._cache[b]
        path, group = self.blocks[b]
        table = _open(path).read_row_group(group, columns=["tokens", "cu_seqlens"])
        tokens = table.column("tokens").combine_chunks()
        flat = tokens.flatten().to_numpy()
        n = len(tokens)
        if len(flat) != n * (self.seq_len + 1):
            raise ValueError(f"{path}: rows must hold seq_len+1={self.seq_len + 1} tokens each")
        cu = [np.asarray(c, dtype=np.int64) for c in table.column("cu_seqlens").to_pylist()]
        rows = (flat.reshape(n, self.seq_len + 1).astype(np.int32, copy=False), cu)
        with self._lock:
            self._cache[b] = rows
            while len(self._cache) > CACHED_BLOCKS:
                self._cache.popitem(last=False)
        return rows

    def rows(self, indices: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Tokens and cu_seqlens of rows by global index (blocks in file order)."""
        indices = np.asarray(indices, dtype=np.int64)
        blocks = np.searchsorted(self.block_starts, indices, side="right") - 1
        tokens = np.empty((len(indices), self.seq_len + 1), dtype=np.int32)
        cu: list[np.ndarray] = [np.empty(0)] * len(indices)
        for b in np.unique(blocks).tolist():
            sel = np.flatnonzero(blocks == b)
            block_tokens, block_cu = self.block(b)
            local = indices[sel] - self.block_starts[b]
            tokens[sel] = block_tokens[local]
            for i, j in zip(sel.tolist(), local.tolist(), strict=True):
                cu[i] = block_cu[j]
        return tokens, cu

    @property
    def tokens(self) -> np.ndarray:
        """Every row's tokens at once (small datasets and tests)."""
        return self.rows(np.arange(len(self)))[0]

    @property
    def cu_seqlens(self) -> list[np.ndarray]:
        return self.rows(np.arange(len(self)))[1]

    def get(self, indices: np.ndarray) -> Batch:
        tokens, cus = self.rows(indices)
        rows = torch.from_numpy(tokens.astype(np.int64))
        labels = rows[:, 1:].clone()
        doc_ids = np.empty((len(tokens), self.seq_len), dtype=np.int64)
        pos = np.empty((len(tokens), self.seq_len), dtype=np.int64)
        positions = np.arange(self.seq_len)
        for i, cu in enumerate(cus):
            # Padding (from cu[-1] on) forms one more "document" so it never attends to real text.
            starts = np.append(cu[:-1], cu[-1])
            doc = np.searchsorted(starts, positions, side="right") - 1
            doc_ids[i] = doc
            pos[i] = positions - starts[doc]
            labels[i, max(0, int(cu[-1]) - 1) :] = IGNORE_INDEX
        return Batch(
            tokens=rows[:, :-1].contiguous(),
            labels=labels,
            doc_ids=torch.from_numpy(doc_ids),
            positions=torch.from_numpy(pos),
        )


def check_batch_split(global_batch_size: int, micro_batch_size: int, dp_size: int) -> int:
    """Micro-batches per step on each data-parallel rank; the global batch must split evenly."""
    n_micro, rem = divmod(global_batch_size, micro_batch_size * dp_size)
    if rem or not n_micro:
        raise ValueError(
            f"training.global_batch_size={global_batch_size} must be a multiple of "
            f"training.micro_batch_size*dp = {micro_batch_size}*{dp_size}"
        )
    return n_micro


class RowOrder:
    """A dataset's rows in one endless seeded order: blocks shuffled anew every epoch, rows within
    a block in file order (`pack` already shuffled rows globally)."""

    def __init__(self, dataset: PackedDataset, seed: int, shuffle: bool):
        self.dataset, self.seed, self.shuffle = dataset, seed, shuffle
        self._epoch: tuple[int, np.ndarray, np.ndarray] = (-1, np.empty(0, np.int64), np.empty(0, np.int64))

    def _blocks(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Block order of an epoch and where each block starts in it."""
        if epoch != self._epoch[0]:
            n = len(self.dataset.block_sizes)
            rng = np.random.default_rng([self.seed, epoch])
            blocks = rng.permutation(n) if self.shuffle else np.arange(n)
            sizes = self.dataset.block_sizes[blocks]
            self._epoch = (epoch, blocks, np.cumsum(sizes) - sizes)  # one assignment: threads share it
        return self._epoch[1], self._epoch[2]

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Dataset row indices at `positions` of the order (position p falls in epoch p // len)."""
        n = len(self.dataset)
        out = np.empty_like(positions)
        for epoch in np.unique(positions // n).tolist():  # a step may straddle two epochs
            sel = positions // n == epoch
            blocks, starts = self._blocks(epoch)
            p = positions[sel] % n
            k = np.searchsorted(starts, p, side="right") - 1
            out[sel] = self.dataset.block_starts[blocks[k]] + (p - starts[k])
        return out


class StepLoader:
    """Yields, per optimizer step, this rank's micro-batches of the global batch (Stateful)."""

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
        prefetch: bool = True,
    ):
        per_rank = global_batch_size // dp_size
        check_batch_split(global_batch_size, micro_batch_size, dp_size)
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
        self.order = RowOrder(dataset, seed, shuffle)
        self._pool = concurrent.futures.ThreadPoolExecutor(1) if prefetch else None
        self._ahead: tuple[int, concurrent.futures.Future] | None = None

    def global_indices(self, step: int) -> np.ndarray:
        """Dataset row indices of the whole global batch of `step`."""
        return self.order.rows(np.arange(step * self.global_batch_size, (step + 1) * self.global_batch_size))

    def _load(self, step: int) -> list[Batch]:
        indices = self.global_indices(step)
        per_rank = self.global_batch_size // self.dp_size
        mine = indices[self.dp_rank * per_rank : (self.dp_rank + 1) * per_rank]
        mb = self.micro_batch_size
        return [self.dataset.get(mine[i : i + mb]) for i in range(0, per_rank, mb)]

    def next_step(self) -> list[Batch]:
        """This rank's micro-batches for the next step (advances the loader)."""
        step = self.step
        if self._ahead is not None and self._ahead[0] == step:
            batches = self._ahead[1].result()
        else:
            batches = self._load(step)
        self.step += 1
        if self._pool is not None:
            self._ahead = (self.step, self._pool.submit(self._load, self.step))
        return batches

    def close(self) -> None:
        """Stop the prefetch thread (a training stage that ends replaces its loader)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._ahead = None

    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed, "global_batch_size": self.global_batch_size}

    def load_state_dict(self, state: dict) -> None:
        if state["global_batch_size"] != self.global_batch_size or state["seed"] != self.seed:
            raise ValueError(
                f"data state from a run with global_batch_size={state['global_batch_size']}, "
                f"seed={state['seed']} cannot resume one with {self.global_batch_size}, {self.seed}"
            )
        self.step = state["step"]
        self._ahead = None  # a prefetched step is simply recomputed
