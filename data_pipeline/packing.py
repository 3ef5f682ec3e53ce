"""How tokenized documents become fixed-length rows: best-fit-decreasing packing or concat-and-chunk.

Rows hold `capacity` = seq_len + 1 tokens. Each row is described by its segments, (start, length)
slices of one token stream in which every document is stored contiguously, so the packers only
look at lengths and the tokens are copied once, when rows are written.

- `best_fit_decreasing` (Ding et al. 2024, "Fewer Truncations Improve Language Modeling", §3):
  documents longer than a row are first cut into row-sized pieces; pieces are then taken longest
  first and each goes into the open row with the least room that still holds it, or a new row. A
  document that fits a row is never split, so no document <= seq_len + 1 tokens is truncated, and
  with a corpus worth of pieces the rows are nearly full (padding well under 1%).
- `concat_chunks`: documents back to back, cut every `capacity` tokens (GPT-style); nothing is
  padded but the last row, and most documents straddle two rows.

The best-fit search keeps open rows in stacks by remaining room (an integer <= capacity) and finds
the smallest room >= the piece's length with one NumPy scan of a boolean array of `capacity`
entries, so each piece costs O(capacity / SIMD width) rather than O(open rows).
"""

from __future__ import annotations

import numpy as np

Segments = list[tuple[int, int]]
"""(start in the token stream, length) of each document piece in a row, in row order."""


def split_pieces(starts: np.ndarray, lengths: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut documents into pieces of at most `capacity` tokens: (piece starts, piece lengths), int64.

    Pieces keep document order; a document of n tokens gives ceil(n / capacity) pieces, all full
    except the last.
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if capacity < 1:
        raise ValueError(f"capacity={capacity} must be >= 1")
    if (lengths < 1).any():
        raise ValueError("documents must have at least one token")
    count = -(-lengths // capacity)
    doc = np.repeat(np.arange(len(lengths)), count)
    first = np.cumsum(count) - count  # index of each document's first piece
    k = np.arange(len(doc)) - first[doc]  # piece number within its document
    piece_starts = starts[doc] + k * capacity
    piece_lengths = np.minimum(capacity, lengths[doc] - k * capacity)
    return piece_starts, piece_lengths


def best_fit_decreasing(lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Bins (lists of piece indices, in the order they were placed) of total length <= capacity.

    Ties are broken deterministically: equal lengths in index order, and among rows with the same
    room the most recently opened one. Rows are returned in the order they were opened.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and (lengths.min() < 1 or lengths.max() > capacity):
        raise ValueError(f"piece lengths must be in [1, {capacity}]")
    order = np.argsort(-lengths, kind="stable")
    bins: list[list[int]] = []
    by_room: list[list[int]] = [[] for _ in range(capacity + 1)]  # room -> open bins with that room
    has_room = np.zeros(capacity + 1, dtype=bool)
    for i, n in zip(order.tolist(), lengths[order].tolist(), strict=True):
        room = n + int(has_room[n:].argmax())
        if has_room[room]:
            stack = by_room[room]
            b = stack.pop()
            if not stack:
                has_room[room] = False
            bins[b].append(i)
        else:  # no open row holds it
            b, room = len(bins), capacity
            bins.append([i])
        left = room - n
        if left:
            by_room[left].append(b)
            has_room[left] = True
    return bins


def concat_chunks(starts: np.ndarray, lengths: np.ndarray, capacity: int) -> list[Segments]:
    """Rows of the documents laid back to back, in order, and cut every `capacity` tokens."""
    rows: list[Segments] = []
    current: Segments = []
    room = capacity
    for start, n in zip(np.asarray(starts).tolist(), np.asarray(lengths).tolist(), strict=True):
        while n > 0:
            take = min(n, room)
            current.append((start, take))
            start, n, room = start + take, n - take, room - take
            if room == 0:
                rows.append(current)
                current, room = [], capacity
    if current:
        rows.append(current)
    return rows


def best_fit_rows(starts: np.ndarray, lengths: np.ndarray, capacity: int) -> list[Segments]:
    """Rows of best-fit-decreasing packing of documents (split into row-sized pieces first)."""
    piece_starts, piece_lengths = split_pieces(starts, lengths, capacity)
    bins = best_fit_decreasing(piece_lengths, capacity)
    ps, pl = piece_starts.tolist(), piece_lengths.tolist()
    return [[(ps[i], pl[i]) for i in b] for b in bins]


def assemble(
    tokens: np.ndarray, segments: Segments, capacity: int, pad_id: int
) -> tuple[np.ndarray, list[int]]:
    """One row's tokens, padded to capacity, and its cu_seqlens (segment starts, then the real length)."""
    row = np.full(capacity, pad_id, dtype=np.int32)
    cu, pos = [], 0
    for start, length in segments:
        row[pos : pos + length] = tokens[start : start + length]
        cu.append(pos)
        pos += length
    return row, [*cu, pos]
