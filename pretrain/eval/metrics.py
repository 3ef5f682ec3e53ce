"""Task metrics from per-continuation log-likelihoods, with OLMES' definitions.

For each document the choices are ranked by their summed log-probability, raw or normalised:
- `acc`: argmax of log P(continuation | context) (oe-eval `acc_raw`);
- `acc_per_char`: argmax of log P / number of characters of the continuation, leading space
  included (oe-eval `acc_per_char`, the primary metric of most OLMES RC tasks; OLMo's in-loop
  `len_norm`);
- `acc_per_token`: argmax of log P / number of its tokens (oe-eval `acc_per_token`);
- `bpb`: bits per UTF-8 byte of the gold continuation, -log P / ln 2 / bytes (OLMo's `bpb_v2`).
Each is the mean over documents; ties go to the lowest choice index, as torch.argmax does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from pretrain.eval.tasks import Request

METRICS = ("acc", "acc_per_char", "acc_per_token", "bpb")
OE_EVAL_METRICS = {
    "acc_raw": "acc",
    "acc_per_char": "acc_per_char",
    "acc_per_token": "acc_per_token",
    "bits_per_byte": "bpb",
    "bits_per_byte_corr": "bpb",
    "logits_per_byte": "bpb",
}
"""oe-eval's `primary_metric` names -> ours (its others, e.g. exact_match, need generation)."""


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def task_metrics(
    requests: Sequence[Request], logprobs: Sequence[float], n_tokens: Sequence[int]
) -> dict[str, float]:
    """Mean acc, acc_per_char, acc_per_token and bpb over the documents of `requests`, and `n`.

    `logprobs[i]` is the summed log-probability of `requests[i].continuation` and `n_tokens[i]`
    its token count.
    """
    docs: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(requests):
        docs[r.doc_id].append(i)
    totals = dict.fromkeys(METRICS, 0.0)
    for doc_id, idx in docs.items():
        idx.sort(key=lambda i: requests[i].choice)
        choices = [requests[i].choice for i in idx]
        gold = requests[idx[0]].gold
        if choices != list(range(len(idx))) or gold not in choices:
            raise ValueError(f"document {doc_id}: choices {choices} do not hold the gold choice {gold}")
        lp = [logprobs[i] for i in idx]
        totals["acc"] += _argmax(lp) == gold
        totals["acc_per_char"] += _argmax([logprobs[i] / len(requests[i].continuation) for i in idx]) == gold
        totals["acc_per_token"] += _argmax([logprobs[i] / n_tokens[i] for i in idx]) == gold
        gold_text = requests[idx[gold]].continuation
        totals["bpb"] += -lp[gold] / math.log(2) / len(gold_text.encode("utf-8"))
    n = len(docs)
    return {**{k: v / n if n else float("nan") for k, v in totals.items()}, "n": n}
