"""Pack log-likelihood requests into rows and batches: one forward per context, not per request.

A row holds one context followed by several of its continuations:

    ctx_0 .. ctx_{L-1} | a_0 .. a_{n-2} | b_0 .. b_{m-2} | pad
    doc 0 (prefix)       doc 1            doc 2            doc -1

and attention is `document_mask_mod(doc_ids, prefix_doc=0)`: every continuation sees the context
and itself, never another continuation, and its RoPE positions continue from L as if it followed
the context alone. The logits at ctx_{L-1} predict the first token of every continuation, those
at a_j predict a_{j+1}; a continuation's last token is never an input. So a question with four
answers costs one pass over its context instead of four, and single-token answers (" A", " yes")
add no tokens at all. Exact in fp32: each score equals a separate forward over context +
continuation (tests/test_eval.py compares with transformers).

Continuations that do not fit `max_len` after their context start another row with the same
context; one that does not fit even alone has its context cut from the left, as OLMo's and
lm-eval's scorers do. Rows are sorted longest first and cut into batches of at most
`batch_tokens` padded tokens, so padding stays small and memory trouble shows on the first batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

PREFIX_DOC = 0
PAD_DOC = -1


@dataclass
class Row:
    """One model input row and the continuation tokens it scores."""

    context_len: int
    tokens: list[int]
    positions: list[int]
    doc_ids: list[int]
    continuations: int = 0
    targets: list[tuple[int, int, int]] = field(default_factory=list)
    """(request index, position whose logits predict the token, token id)."""


@dataclass
class Batch:
    """Padded tensors of some rows plus flat indices of every scored token."""

    tokens: torch.Tensor
    positions: torch.Tensor
    doc_ids: torch.Tensor
    row: torch.Tensor
    pos: torch.Tensor
    target: torch.Tensor
    request: torch.Tensor


def _start_row(context: Sequence[int]) -> Row:
    n = len(context)
    return Row(n, list(context), list(range(n)), [PREFIX_DOC] * n)


def _add(row: Row, request: int, continuation: Sequence[int]) -> None:
    """Append a continuation's inputs (all but its last token) and the targets they score."""
    row.continuations += 1
    start, inputs = len(row.tokens), continuation[:-1]
    row.targets.append((request, row.context_len - 1, continuation[0]))
    row.targets += [(request, start + j, tok) for j, tok in enumerate(continuation[1:])]
    row.tokens += inputs
    row.positions += range(row.context_len, row.context_len + len(inputs))
    row.doc_ids += [PREFIX_DOC + row.continuations] * len(inputs)


def build_rows(requests: Sequence[tuple[Sequence[int], Sequence[int]]], max_len: int) -> list[Row]:
    """Rows scoring every (context ids, continuation ids) pair; requests with equal contexts share."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (ctx, cont) in enumerate(requests):
        if not ctx or not cont:
            raise ValueError(f"request {i}: empty context or continuation (every context starts with BOS)")
        if len(cont) > max_len:
            raise ValueError(f"request {i}: continuation of {len(cont)} tokens exceeds max_len={max_len}")
        groups.setdefault(tuple(ctx), []).append(i)
    rows = []
    for ctx, members in groups.items():
        row = None
        for i in members:
            cont = requests[i][1]
            extra = len(cont) - 1
            if len(ctx) + extra > max_len:  # alone, and the context cut from the left
                alone = _start_row(ctx[len(ctx) + extra - max_len :])
                _add(alone, i, cont)
                rows.append(alone)
                continue
            if row is None or len(row.tokens) + extra > max_len:
                row = _start_row(ctx)
                rows.append(row)
            _add(row, i, cont)
    return rows


def make_batches(rows: Sequence[Row], batch_tokens: int, multiple: int = 1) -> list[list[Row]]:
    """Rows longest first, grouped so rows x padded length stays within `batch_tokens`."""
    batches: list[list[Row]] = []
    for row in sorted(rows, key=lambda r: -len(r.tokens)):
        if batches:
            width = padded_len(len(batches[-1][0].tokens), multiple)
            if (len(batches[-1]) + 1) * width <= batch_tokens:
                batches[-1].append(row)
                continue
        batches.append([row])
    return batches


def padded_len(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def collate(rows: Sequence[Row], multiple: int = 1, pad_id: int = 0) -> Batch:
    """Right-padded tensors, the length rounded up to `multiple` (sequence parallelism splits it)."""
    width = padded_len(max(len(r.tokens) for r in rows), multiple)

    def pad(values: list[int], fill: int) -> list[int]:
        return values + [fill] * (width - len(values))

    targets = [(b, *t) for b, r in enumerate(rows) for t in r.targets]
    flat = torch.tensor(targets, dtype=torch.long).reshape(-1, 4)
    return Batch(
        tokens=torch.tensor([pad(r.tokens, pad_id) for r in rows], dtype=torch.long),
        positions=torch.tensor([pad(r.positions, 0) for r in rows], dtype=torch.long),
        doc_ids=torch.tensor([pad(r.doc_ids, PAD_DOC) for r in rows], dtype=torch.long),
        row=flat[:, 0],
        request=flat[:, 1],
        pos=flat[:, 2],
        target=flat[:, 3],
    )
