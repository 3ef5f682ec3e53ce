"""The stages of a semantic dedup run and its report (`andes-data dedup --method semantic`).

A run over N input shards with P partitions and k clusters: `embed` (N shards) -> `fit` (1 unit)
-> `assign` (N shards) -> `cluster` (P partitions) -> `remove` (N shards). As for MinHash
(data_pipeline/dedup/run.py, which runs and resumes them), a stage needs only the previous one
finished, so each can be a Slurm job array; work files live in `OUT/.dedup/`.

k (`clusters`, default one per `docs_per_cluster` input documents) and P (default: enough that one
partition holds about `rows_per_partition` x 16 bytes of embeddings, ~800 bytes per document at 384
dimensions) are fixed in the run's plan.json, so every task sees the same values. Memory per task
is then bounded whatever the corpus size: embed and assign stream a shard, fit holds its sample,
cluster one partition.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from data_pipeline.dedup.clusters import split_key
from data_pipeline.dedup.run import Plan, Stage, read_row
from data_pipeline.guard import DEDUP_WORK_DIR
from data_pipeline.semantic.decide import ClusterTask, SemanticMark, read_summaries, round_name, round_path
from data_pipeline.semantic.summary import merge_summaries
from data_pipeline.semantic.tasks import AssignTask, EmbedTask, FitTask
from data_pipeline.shard import FilterTask

UNIT_KINDS = {
    "embed": "shard",
    "fit": "k-means fit",
    "assign": "shard",
    "cluster": "partition",
    "remove": "shard",
}


def stage_names(rounds: int) -> list[str]:
    """embed fit assign cluster [assign-2 cluster-2 ...] remove."""
    names = ["embed", "fit"]
    for r in range(rounds):
        names += [round_name("assign", r), round_name("cluster", r)]
    return [*names, "remove"]


def unit_kind(name: str) -> str:
    return UNIT_KINDS[name.split("-")[0]]


def threads_per_worker(workers: int) -> int:
    """CPU threads for each of `workers` processes on the CPUs this process may use."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


def build_semantic_stages(
    plan: Plan,
    cfg: Any,  # dedup.tasks.DedupConfig
    out_dir: Path,
    *,
    batch_rows: int,
    rows_per_file: int | None,
    write_dropped: bool,
    skip_bad: bool,
    workers: int = 1,
) -> list[Stage]:
    work = out_dir / DEDUP_WORK_DIR
    sem = cfg.semantic
    shards = [Path(s) for s in plan.shards]
    index = {s.name: i for i, s in enumerate(shards)}
    threads = threads_per_worker(workers)
    parts = [Path(f"{p:05d}") for p in range(plan.partitions)]
    mark = SemanticMark(
        drop=not cfg.annotate,
        work=str(work),
        partitions=plan.partitions,
        rounds=sem.rounds,
        shard_index=index,
    )
    fit = FitTask(sem, work, shards, plan.clusters or 1, threads_per_worker(1), work / "fit")
    stages = [
        Stage("embed", EmbedTask(sem, work, batch_rows, skip_bad, threads, work / "embed"), shards),
        Stage("fit", fit, [Path("00000")]),
    ]
    n_eps = len(sem.eps_values())
    for r in range(sem.rounds):
        markers = round_path(work, "assign", r)
        assign = AssignTask(work, index, plan.partitions, batch_rows, r, n_eps, markers)
        stages.append(Stage(markers.name, assign, shards))
        markers = round_path(work, "cluster", r)
        stages.append(Stage(markers.name, ClusterTask(sem, work, r, markers), parts))
    remove = FilterTask([mark], out_dir, batch_rows, rows_per_file, write_dropped, skip_bad)
    return [*stages, Stage("remove", remove, shards)]


def _document(plan: Plan, key: int) -> dict:
    shard, row = (int(x) for x in split_key(key))
    path = Path(plan.shards[shard])
    values = read_row(path, row, ["id", "text"])
    text = values.get("text") or ""
    return {
        "shard": path.name,
        "row": row,
        "id": values.get("id"),
        "text": text[:160] + ("..." if len(text) > 160 else ""),
    }


def build_semantic_report(plan: Plan, cfg: Any, work: Path, docs: int) -> dict:
    """Clusters and their size histogram, documents removed, the eps sweep and example pairs."""
    summaries = read_summaries(work, plan.partitions, cfg.semantic.rounds)
    merged = merge_summaries(summaries)
    first = merge_summaries([x for x in summaries if x["round"] == 0])
    per_round = [sum(x["removed"] for x in summaries if x["round"] == r) for r in range(cfg.semantic.rounds)]
    examples = []
    for kind, pairs in merged["examples"].items():
        for cosine, kept, other in pairs:
            examples.append(
                {
                    "kind": kind,
                    "cosine": cosine,
                    "kept": _document(plan, kept),
                    "other": _document(plan, other),
                    "other_removed": kind != "kept",
                }
            )
    sem = cfg.semantic
    sweep = {
        e: {"removed": n, "fraction": round(n / docs, 6) if docs else 0.0} for e, n in merged["sweep"].items()
    }
    return {
        "method": "semantic",
        "documents": docs,
        "documents_embedded": first["documents"],
        "clusters": first["clusters"],
        "largest_cluster": first["largest_cluster"],
        "cluster_sizes": first["cluster_sizes"],
        "eps": sem.eps,
        "keep": sem.keep,
        "rounds": sem.rounds,
        "removed_per_round": per_round,
        "duplicates": merged["removed"],
        "duplicate_fraction": round(merged["removed"] / docs, 6) if docs else 0.0,
        "eps_sweep": sweep,
        "examples": examples,
    }


def format_semantic_report(report: dict) -> str:
    action = "annotated" if report.get("annotate") else "removed"
    lines = [
        f"semantic dedup (eps {report['eps']:g}, keep {report['keep']}): {report['clusters']} k-means "
        f"clusters over {report['documents_embedded']} embedded documents "
        f"(largest {report['largest_cluster']}); "
        f"{report['duplicates']} duplicates {action} ({100 * report['duplicate_fraction']:.2f}% of "
        f"{report['documents']})",
        "removed per round (each re-clusters the survivors): "
        + ", ".join(map(str, report["removed_per_round"])),
        "cluster size histogram (round 1): "
        + (", ".join(f"{s}: {c}" for s, c in report["cluster_sizes"].items()) or "(none)"),
    ]
    if len(report["eps_sweep"]) > 1:
        lines.append("eps sweep (removed at each eps, in this one run):")
        for e, row in report["eps_sweep"].items():
            share = f"{100 * row['fraction']:.2f}%"
            lines.append(
                f"  eps {float(e):<6g} cosine >= {1 - float(e):<6.4g} {row['removed']:>10,} ({share})"
            )
    titles = {
        "closest": "removed, closest",
        "borderline": "removed, nearest the threshold",
        "kept": "kept, nearest the threshold",
    }
    for ex in report["examples"]:
        lines.append(f"  example ({titles[ex['kind']]}, cosine {ex['cosine']:.4f}):")
        for label, d in (("kept", ex["kept"]), ("removed" if ex["other_removed"] else "kept", ex["other"])):
            where = d.get("id") or f"{d['shard']}#{d['row']}"
            lines.append(f"    {label:7s} {where}: {d['text']!r}")
    return "\n".join(lines)
