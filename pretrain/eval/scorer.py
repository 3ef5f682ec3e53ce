"""Log-likelihoods of continuations given contexts, batched, on any dp x tp x pp layout.

Every rank builds the same rows and batches (`batching`); data-parallel rank d scores batches d,
d + dp, ... (they are sorted longest first, so the shares are about equal), tensor and pipeline
ranks of one replica score the same batches together, and the scores are gathered to every rank.
Replicas run the same number of forwards (a short one when a rank runs out of batches), so the
scorer also works on FSDP-sharded training parts, whose forwards all-gather across replicas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from tqdm import tqdm

from pretrain.eval.batching import Batch, Row, build_rows, collate, make_batches
from pretrain.eval.layout import EvalLayout, forward


@dataclass(frozen=True)
class ScoreOptions:
    """How requests are batched (the one place these defaults live; the CLI reads them)."""

    batch_tokens: int = 4096
    """Padded tokens per forward (rows x longest row). Logits take batch_tokens x vocab x 4 bytes
    (2 GiB at 128K vocab); a row longer than this is a batch of its own."""
    max_len: int | None = None
    """Longest row; None = the model's max_seq_len."""
    progress: bool = False
    """tqdm bar on stderr (data-parallel rank 0 of the last pipeline stage)."""


@dataclass(frozen=True)
class Score:
    logprob: float
    """Sum of log P(token | everything before it) over the continuation's tokens."""
    greedy: bool
    """Whether every continuation token is the argmax of its prediction."""


def _score_batch(logits: torch.Tensor, batch: Batch) -> dict[int, tuple[float, bool]]:
    """Per request in `batch`: (summed log-prob, greedy) from the logits of its targets, in fp32."""
    device = logits.device
    picked = logits.float()
    target = batch.target.to(device)
    token_lp = torch.log_softmax(picked, dim=-1).gather(1, target[:, None])[:, 0]
    hit = (picked.argmax(dim=-1) == target).float()
    requests, slot = torch.unique(batch.request, return_inverse=True)
    slot = slot.to(device)
    sums = torch.zeros(len(requests), device=device).index_add_(0, slot, token_lp)
    misses = torch.zeros(len(requests), device=device).index_add_(0, slot, 1 - hit)
    return {
        int(r): (float(s), bool(m == 0))
        for r, s, m in zip(requests.tolist(), sums.tolist(), misses.tolist(), strict=True)
    }


def _dummy(layout: EvalLayout) -> Batch:
    """The cheapest forward for a replica out of batches: one row of tp tokens, nothing scored."""
    row = Row(1, [0] * layout.tp, list(range(layout.tp)), [0] * layout.tp)
    return collate([row], layout.tp)


def _gather(local: dict[int, tuple[float, bool]]) -> dict[int, tuple[float, bool]]:
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return local
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, local)
    merged: dict[int, tuple[float, bool]] = {}
    for part in everyone:
        merged.update(part)  # tensor-parallel ranks send the same scores
    return merged


def score(
    layout: EvalLayout,
    requests: Sequence[tuple[Sequence[int], Sequence[int]]],
    options: ScoreOptions | None = None,
) -> list[Score]:
    """Scores of (context ids, continuation ids) pairs, the same list on every rank."""
    options = options or ScoreOptions()
    max_len = min(options.max_len or layout.args.max_seq_len, layout.args.max_seq_len)
    batches = make_batches(build_rows(requests, max_len), options.batch_tokens, layout.tp)
    per_replica = -(-len(batches) // layout.dp_size)
    mine = batches[layout.dp_rank :: layout.dp_size]
    show = options.progress and layout.dp_rank == 0 and layout.has_last and layout.tp_rank == 0
    local: dict[int, tuple[float, bool]] = {}
    was_training = [part.training for part in layout.parts]
    for part in layout.parts:
        part.eval()
    try:
        for i in tqdm(range(per_replica), desc="eval batches", disable=not show):
            batch = collate(mine[i], layout.tp) if i < len(mine) else _dummy(layout)
            logits = forward(layout, batch)
            if logits is not None and i < len(mine):
                local.update(_score_batch(logits, batch))
    finally:
        for part, mode in zip(layout.parts, was_training, strict=True):
            part.train(mode)
    scores = _gather(local)
    missing = len(requests) - len(scores)
    if missing:
        raise RuntimeError(f"{missing} of {len(requests)} requests were not scored")
    return [Score(*scores[i]) for i in range(len(requests))]
