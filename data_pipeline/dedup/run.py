"""`andes-data dedup`: the plan and order of a dedup run's stages, and its report.

A run over N input shards with P partitions is a fixed sequence of stages, each a list of units
(`tasks.py`): `hash` (N shards) -> `buckets` (P partitions) -> `merge-0` ... `merge-<R-1>` (a tree
reduction, R = floor(log2 P) rounds of halving width) -> `remove` (N shards). A stage only needs
the previous one finished, so each can run as a Slurm job array depending on the one before
(`--stage NAME --rank R --world-size W` runs units[R::W] of one stage); without `--stage` all run
here in order. Work files live in `OUT/.dedup/`; every unit leaves a marker, so re-running any
command resumes where it stopped.

The plan (`.dedup/plan.json`: the input shard list, which fixes document keys, and P) is written
once by whichever task starts first; later tasks must find the same input. P defaults to enough
partitions that one holds about `rows_per_partition` bucket rows (16 bytes each, sorted in
memory by its task), which is what bounds memory whatever the corpus size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from data_pipeline.config import DedupStage, Recipe
from data_pipeline.dedup.clusters import cluster_sizes, reduction_rounds, split_key
from data_pipeline.dedup.minhash import shingles
from data_pipeline.dedup.tasks import (
    BucketTask,
    DedupConfig,
    DedupMark,
    HashTask,
    MergeTask,
    forest_path,
    read_forest,
)
from data_pipeline.executors.local import run_local
from data_pipeline.guard import DEDUP_REPORT, DEDUP_WORK_DIR, check_io, record_shards
from data_pipeline.io import atomic_write_text, create_text_once, list_parquet, open_parquet
from data_pipeline.shard import FilterTask, input_fingerprint, read_marker
from data_pipeline.stages import check_run_options, check_stage_dir, unique_stems
from data_pipeline.stats import format_stats, merge_stats, write_stats

# Documents per hashing batch: MinHash vectorises over a batch, so larger batches pay.
HASH_BATCH_ROWS = 4096


@dataclasses.dataclass
class Stage:
    name: str
    task: Any  # executors.local.ShardTask
    units: list[Path]


@dataclasses.dataclass(frozen=True)
class Plan:
    """What fixes document keys and the stage layout; identical for every task of a run."""

    shards: list[str]
    partitions: int
    inputs: dict[str, dict[str, int]] | None = None  # shard -> `input_fingerprint` (None: older plans)
    clusters: int | None = None  # semantic: k-means clusters (from the input's size unless set)

    def rounds(self) -> list[list[list[int]]]:
        return reduction_rounds(self.partitions)

    def final_forest(self, work: Path) -> Path:
        return forest_path(work, len(self.rounds()), 0)


def _count_docs(shards: list[Path]) -> int:
    total = 0
    for shard in shards:
        with contextlib.suppress(ValueError, OSError):  # a bad shard is reported when it is read
            total += open_parquet(shard).metadata.num_rows
    return total


def default_partitions(shards: list[Path], cfg: DedupConfig, rows_per_partition: int) -> int:
    return max(1, math.ceil(_count_docs(shards) * cfg.rows_per_doc / rows_per_partition))


def load_plan(
    work: Path, shards: list[Path], cfg: DedupConfig, partitions: int | None, rows_per_partition: int
) -> Plan:
    """Create the run's plan, or check that the input still matches the one the run started with."""
    if partitions is None:
        partitions = default_partitions(shards, cfg, rows_per_partition)
    names = [str(s.resolve()) for s in shards]
    inputs = {name: input_fingerprint(s) for name, s in zip(names, shards, strict=True)}
    path = work / "plan.json"
    record = {"shards": names, "partitions": partitions, "inputs": inputs}
    if cfg.method == "semantic":
        record["clusters"] = cfg.semantic.cluster_count(_count_docs(shards))
    create_text_once(path, json.dumps(record, indent=1) + "\n")
    plan = Plan(**json.loads(path.read_text()))
    if plan.shards != names:
        added = sorted(set(names) - set(plan.shards))
        removed = sorted(set(plan.shards) - set(names))
        raise ValueError(
            f"the input changed since this dedup run started (added: {added[:3]}, removed: {removed[:3]}); "
            "document keys depend on the shard list: use a new output directory or --overwrite"
        )
    changed = [name for name in names if plan.inputs is not None and plan.inputs.get(name) != inputs[name]]
    if changed:
        raise ValueError(
            f"input shard(s) {changed[:3]} changed (size or mtime) since this dedup run started; duplicates "
            "are found across all shards, so no part can be redone alone: use --overwrite or a new output"
        )
    return plan


def build_stages(
    plan: Plan,
    cfg: DedupConfig,
    out_dir: Path,
    *,
    batch_rows: int,
    rows_per_file: int | None,
    write_dropped: bool,
    skip_bad: bool,
    workers: int = 1,
) -> list[Stage]:
    if cfg.method == "semantic":
        from data_pipeline.semantic.stages import build_semantic_stages

        return build_semantic_stages(
            plan,
            cfg,
            out_dir,
            batch_rows=batch_rows,
            rows_per_file=rows_per_file,
            write_dropped=write_dropped,
            skip_bad=skip_bad,
            workers=workers,
        )
    work = out_dir / DEDUP_WORK_DIR
    shards = [Path(s) for s in plan.shards]
    index = {s.name: i for i, s in enumerate(shards)}
    hash_rows = max(batch_rows, HASH_BATCH_ROWS)
    stages = [
        Stage(
            "hash", HashTask(cfg, index, work, plan.partitions, hash_rows, skip_bad, work / "hash"), shards
        ),
        Stage(
            "buckets",
            BucketTask(cfg, work, work / "forest-0"),
            [Path(f"{p:05d}") for p in range(plan.partitions)],
        ),
    ]
    rounds = plan.rounds()
    for r, tasks in enumerate(rounds):
        task = MergeTask(cfg.method, work, r, tasks, work / f"forest-{r + 1}")
        stages.append(Stage(f"merge-{r}", task, [Path(f"{t:05d}") for t in range(len(tasks))]))
    mark = DedupMark(
        drop=not cfg.annotate, method=cfg.method, final_forest=str(plan.final_forest(work)), shard_index=index
    )
    remove = FilterTask([mark], out_dir, batch_rows, rows_per_file, write_dropped, skip_bad)
    stages.append(Stage("remove", remove, shards))
    return stages


def _unfinished(stage: Stage) -> list[Path]:
    return [u for u in stage.units if read_marker(stage.task.out_dir, u) is None]


def _skipped_shards(stage: Stage) -> dict[str, str]:
    """Shards the hash stage skipped as bad input (--on-bad-input skip), with the reason."""
    out = {}
    for unit in stage.units:
        marker = read_marker(stage.task.out_dir, unit)
        if marker is not None and marker.dropped.get("invalid:shard"):
            out[unit.name] = marker.outputs[0] if marker.outputs else "bad input"
    return out


def read_row(path: Path, row: int, columns: list[str]) -> dict:
    file = pq.ParquetFile(path)
    names = [c for c in columns if c in file.schema_arrow.names]
    start = 0
    for g in range(file.num_row_groups):
        n = file.metadata.row_group(g).num_rows
        if row < start + n:
            return file.read_row_group(g, columns=names).slice(row - start, 1).to_pylist()[0]
        start += n
    raise IndexError(f"{path}: no row {row}")


def _example(plan: Plan, cfg: DedupConfig, keeper: int, member: int) -> dict:
    docs = []
    for key in (keeper, member):
        shard, row = (int(x) for x in split_key(key))
        path = Path(plan.shards[shard])
        values = read_row(path, row, ["id", "text", cfg.url_column])
        values["url"] = values.pop(cfg.url_column, None)
        docs.append({"shard": path.name, "row": row, **values})
    example: dict[str, Any] = {"kept": docs[0], "removed": docs[1]}
    if cfg.method != "url":
        a, b = (set(shingles(d.get("text") or "", cfg.minhash)) for d in docs)
        example["jaccard"] = round(len(a & b) / len(a | b), 4) if a | b else 1.0
    for d in docs:
        text = d.get("text") or ""
        d["text"] = text[:160] + ("..." if len(text) > 160 else "")
    return example


def build_report(plan: Plan, cfg: DedupConfig, work: Path, docs: int, n_examples: int = 5) -> dict:
    """Clusters, their size histogram, documents removed and a few (kept, removed) example pairs."""
    if cfg.method == "semantic":
        from data_pipeline.semantic.stages import build_semantic_report

        return build_semantic_report(plan, cfg, work, docs)
    nodes, roots = read_forest(plan.final_forest(work))
    sizes, counts = cluster_sizes(roots)
    duplicate = nodes != roots
    examples = []
    if duplicate.any():
        members, keepers = nodes[duplicate], roots[duplicate]
        first = np.unique(keepers, return_index=True)[1]  # each cluster's smallest removed member
        cluster_keepers, cluster_members = keepers[first], members[first]
        per_cluster = np.unique(roots, return_counts=True)
        size_of = dict(zip(per_cluster[0].tolist(), per_cluster[1].tolist(), strict=True))
        # The largest cluster, then clusters spread over the corpus (deterministic: by keeper key).
        largest = max(range(len(cluster_keepers)), key=lambda i: (size_of[int(cluster_keepers[i])], -i))
        step = max(1, len(cluster_keepers) // max(1, n_examples - 1))
        picks = list(dict.fromkeys([largest, *range(0, len(cluster_keepers), step)]))[:n_examples]
        for i in picks:
            ex = _example(plan, cfg, int(cluster_keepers[i]), int(cluster_members[i]))
            ex["cluster_size"] = size_of[int(cluster_keepers[i])]
            examples.append(ex)
    return {
        "method": cfg.method,
        "documents": docs,
        "clusters": int(counts.sum()),
        "documents_in_clusters": int(len(nodes)),
        "duplicates": int(duplicate.sum()),
        "duplicate_fraction": round(float(duplicate.sum()) / docs, 6) if docs else 0.0,
        "cluster_sizes": {str(s): int(c) for s, c in zip(sizes.tolist(), counts.tolist(), strict=True)},
        "examples": examples,
    }


def format_report(report: dict) -> str:
    if report["method"] == "semantic":
        from data_pipeline.semantic.stages import format_semantic_report

        return format_semantic_report(report)
    action = "annotated" if report.get("annotate") else "removed"
    lines = [
        f"{report['method']} dedup: {report['clusters']} clusters over {report['documents_in_clusters']} "
        f"documents; {report['duplicates']} duplicates {action} "
        f"({100 * report['duplicate_fraction']:.2f}% of {report['documents']})",
        "cluster size histogram: "
        + (", ".join(f"{s}: {c}" for s, c in report["cluster_sizes"].items()) or "(none)"),
    ]
    for ex in report["examples"]:
        sim = f", 5-gram Jaccard {ex['jaccard']:.3f}" if "jaccard" in ex else ""
        lines.append(f"  example (cluster of {ex['cluster_size']}{sim}):")
        for label in ("kept", "removed"):
            d = ex[label]
            where = d.get("id") or f"{d['shard']}#{d['row']}"
            url = f" <{d['url']}>" if report["method"] == "url" and d.get("url") else ""
            lines.append(f"    {label:7s} {where}{url}: {d['text']!r}")
    return "\n".join(lines)


def run_dedup(
    input: str | Path,
    output: str | Path,
    cfg: DedupConfig,
    *,
    workers: int = Recipe.workers,
    batch_rows: int = DedupStage.batch_rows,
    rows_per_file: int | None = DedupStage.rows_per_file,
    write_dropped: bool = DedupStage.write_dropped,
    on_bad_input: str = DedupStage.on_bad_input,
    overwrite: bool = False,
    progress: bool = True,
    stage: str | None = None,
    rank: int = 0,
    world_size: int = 1,
    partitions: int | None = DedupStage.partitions,
    rows_per_partition: int = DedupStage.rows_per_partition,
    allow_incomplete: bool = False,
) -> dict:
    """Run every dedup stage (or only `stage`, units[rank::world_size]); returns the summary.

    The summary (also `OUT/stats.json`, with the report in `OUT/dedup_report.json`) is complete
    once the remove stage has finished every shard.
    """
    if world_size > 1 and stage is None:
        raise ValueError("--world-size > 1 needs --stage: a stage must finish on all tasks before the next")
    check_run_options(
        on_bad_input,
        rank,
        world_size,
        overwrite,
        workers=workers,
        batch_rows=batch_rows,
        rows_per_file=rows_per_file,
        partitions=partitions,
        rows_per_partition=rows_per_partition,
    )
    check_io([input], [output], allow_incomplete)
    shards = list_parquet(input)
    unique_stems(shards)
    out_dir = Path(output)
    config = {
        "stage": "dedup",
        "input": str(Path(input).resolve()),
        **cfg.to_json(),
        "partitions": partitions,
        "rows_per_partition": rows_per_partition,
        "batch_rows": batch_rows,
        "rows_per_file": rows_per_file,
        "write_dropped": write_dropped,
        "on_bad_input": on_bad_input,
    }
    check_stage_dir(out_dir, config, overwrite)
    work = out_dir / DEDUP_WORK_DIR
    plan = load_plan(work, shards, cfg, partitions, rows_per_partition)
    record_shards(out_dir, shards)
    skip_bad = on_bad_input == "skip"
    stages = build_stages(
        plan,
        cfg,
        out_dir,
        batch_rows=batch_rows,
        rows_per_file=rows_per_file,
        write_dropped=write_dropped,
        skip_bad=skip_bad,
        workers=workers,
    )
    names = [s.name for s in stages]
    if stage is not None and stage not in names:
        raise ValueError(f"--stage {stage!r}: this run's stages are {', '.join(names)}")
    selected = [s for s in stages if stage is None or s.name == stage]
    skipped: dict[str, str] = {}
    start = time.perf_counter()
    for s in selected:
        i = names.index(s.name)
        if i > 0 and (missing := _unfinished(stages[i - 1])):
            raise ValueError(
                f"stage {s.name} needs stage {stages[i - 1].name} finished first "
                f"({len(missing)} of {len(stages[i - 1].units)} units pending, e.g. {missing[0].name})"
            )
        if progress:
            tqdm.write(f"dedup stage {i + 1}/{len(stages)}: {s.name} ({len(s.units)} units)", file=sys.stderr)
        result = run_local(
            s.task, s.units[rank::world_size], workers=workers, skip_bad=skip_bad, progress=progress
        )
        skipped.update(result.skipped)
    remove = stages[-1]
    finished = [m for u in remove.units if (m := read_marker(remove.task.out_dir, u)) is not None]
    skipped.update(_skipped_shards(stages[0]))
    summary = merge_stats(finished, skipped=skipped, wall_seconds=time.perf_counter() - start)
    summary["pending_shards"] = len(remove.units) - len(finished) - len(skipped)
    if summary["pending_shards"] == 0:
        docs = sum(m.docs_in for u in stages[0].units if (m := read_marker(stages[0].task.out_dir, u)))
        report = build_report(plan, cfg, work, docs)
        report["annotate"] = cfg.annotate
        atomic_write_text(out_dir / DEDUP_REPORT, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        summary["dedup"] = {k: v for k, v in report.items() if k != "examples"}
        summary["report"] = report
    write_stats(out_dir, {k: v for k, v in summary.items() if k != "report"})
    return summary


def print_dedup_summary(summary: dict, out_dir: Path) -> None:
    print(format_stats(summary))
    if "report" in summary:
        print("\n" + format_report(summary["report"]))
        print(f"\nwrote {out_dir} (stats in {out_dir / 'stats.json'}, report in {out_dir / DEDUP_REPORT})")
    else:
        print(f"\n{summary['pending_shards']} shards pending (other tasks or stages); wrote {out_dir}")


def stage_units(cfg: DedupConfig, shards: int, partitions: int) -> list[tuple[str, int, str]]:
    """(stage, units, unit kind) of a run over `shards` input shards with `partitions` partitions."""
    if cfg.method == "semantic":
        from data_pipeline.semantic.stages import stage_names, unit_kind

        counts = {"shard": shards, "partition": partitions}
        names = stage_names(cfg.semantic.rounds)
        return [(name, counts.get(unit_kind(name), 1), unit_kind(name)) for name in names]
    merges = [(f"merge-{r}", len(tasks), "merge") for r, tasks in enumerate(reduction_rounds(partitions))]
    return [
        ("hash", shards, "shard"),
        ("buckets", partitions, "partition"),
        *merges,
        ("remove", shards, "shard"),
    ]


def stage_names(
    shards: list[Path], cfg: DedupConfig, partitions: int | None, rows_per_partition: int
) -> list[str]:
    """The stage sequence a run over `shards` would have (for launchers building job dependencies)."""
    if partitions is None:
        partitions = default_partitions(shards, cfg, rows_per_partition)
    return [name for name, _, _ in stage_units(cfg, len(shards), partitions)]
