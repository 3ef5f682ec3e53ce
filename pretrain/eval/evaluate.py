"""`evaluate`: tasks in, metrics out, on whatever layout the model is in (CLI and trainer alike)."""

from __future__ import annotations

from collections.abc import Sequence

from pretrain.eval.layout import EvalLayout
from pretrain.eval.metrics import OE_EVAL_METRICS, task_metrics
from pretrain.eval.scorer import ScoreOptions, score
from pretrain.eval.tasks import read_requests, task_config
from pretrain.eval.tokenize import EvalTokenizer, encode_requests


def primary_metric(task: str) -> str | None:
    """Our name of the variant's OLMES primary metric (None for one we do not compute)."""
    return OE_EVAL_METRICS.get(task_config(task).get("primary_metric", ""))


def evaluate(
    layout: EvalLayout,
    tokenizer: EvalTokenizer,
    tasks: Sequence[str],
    limit: int | None = None,
    options: ScoreOptions | None = None,
) -> dict[str, dict]:
    """{task as given: {acc, acc_per_char, acc_per_token, bpb, n, primary_metric}} on every rank.

    Every rank must call it (all take part in the forwards). The requests of all tasks are scored
    together, so batches mix tasks and contexts shared across them are computed once.
    """
    options = options or ScoreOptions()
    per_task = {task: read_requests(task, limit) for task in tasks}
    requests = [r for rs in per_task.values() for r in rs]
    encoded = encode_requests(tokenizer, requests)
    vocab = layout.args.vocab_size
    too_big = max((max(max(c), max(x)) for c, x in encoded), default=0)
    if too_big >= vocab:
        raise ValueError(f"token id {too_big} from the tokenizer is outside the model's vocab_size={vocab}")
    scores = score(layout, encoded, options)
    results, start = {}, 0
    for task, rs in per_task.items():
        end = start + len(rs)
        metrics = task_metrics(
            rs, [s.logprob for s in scores[start:end]], [len(c) for _, c in encoded[start:end]]
        )
        results[task] = {**metrics, "primary_metric": primary_metric(task)}
        start = end
    return results
