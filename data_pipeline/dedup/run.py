"""`andes-data dedup`: the plan and order of a dedup run's stages, and its report.

A run over N input shards with P partitions is a fixed sequence of stages, each a list of units
(`tasks.py`, `cc_tasks.py`): `hash` (N shards) -> `buckets` (P partitions) -> for minhash the
connected components, `cc-0` ... `cc-<S-1>` (K partitions each; S = 2R - 1 large-star and
small-star steps, none for K = 1) and `components` (1 unit) -> `remove` (N shards). A stage only
needs the previous one finished, so each can run as a Slurm job array depending on the one before
(`--stage NAME --rank R --world-size W` runs units[R::W] of one stage); without `--stage` all run
here in order, skipping the components stages left once a round settled (`needed`). Work files
live in `OUT/.dedup/`; every unit leaves a marker, so re-running any command resumes where it
stopped.

The plan (`.dedup/plan.json`: the input shard list, which fixes document keys, P, K and R) is
written once by whichever task starts first; later tasks must find the same input. P defaults to
enough partitions that one holds about `rows_per_partition` bucket rows (16 bytes each, sorted in
memory by its task), K to one per `DOCS_PER_CC_PARTITION` documents, which is what bounds memory
whatever the corpus size; R is `stars.round_limit` of the number of documents.
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

import pyarrow.parquet as pq
from tqdm import tqdm

from data_pipeline.config import DOCS_PER_CC_PARTITION, DedupStage, Recipe
from data_pipeline.dedup.cc_tasks import (
    COMPONENTS,
    GROUPS,
    ComponentsTask,
    StarTask,
    cc_results,
    find_results,
    step_dir,
    summarize_clusters,
)
from data_pipeline.dedup.clusters import split_key
from data_pipeline.dedup.minhash import shingles
from data_pipeline.dedup.stars import round_limit
from data_pipeline.dedup.tasks import BucketTask, DedupConfig, DedupMark, HashTask
from data_pipeline.executors.local import LOCAL, Executor
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
    cc_partitions: int | None = None  # minhash: connected-components partitions (K)
    cc_rounds: int | None = None  # minhash: large-star rounds planned (R)

    @property
    def cc_steps(self) -> int:
        """Round stages `cc-<i>`: alternately large-star and small-star, ending on a large-star."""
        return 0 if (self.cc_partitions or 1) == 1 else 2 * (self.cc_rounds or 1) - 1


def _count_docs(shards: list[Path]) -> int:
    total = 0
    for shard in shards:
        with contextlib.suppress(ValueError, OSError):  # a bad shard is reported when it is read
            total += open_parquet(shard).metadata.num_rows
    return total


def _plan_record(
    shards: list[Path],
    cfg: DedupConfig,
    partitions: int | None,
    rows_per_partition: int,
    cc_partitions: int | None,
) -> dict:
    """The plan of a run over `shards`: sizes left as None are chosen from the number of documents."""
    docs = _count_docs(shards)
    names = [str(s.resolve()) for s in shards]
    record: dict[str, Any] = {
        "shards": names,
        "partitions": partitions or max(1, math.ceil(docs * cfg.rows_per_doc / rows_per_partition)),
        "inputs": {name: input_fingerprint(s) for name, s in zip(names, shards, strict=True)},
    }
    if cfg.method == "minhash":
        record["cc_partitions"] = cc_partitions or max(1, math.ceil(docs / DOCS_PER_CC_PARTITION))
        record["cc_rounds"] = round_limit(docs)
    if cfg.method == "semantic":
        record["clusters"] = cfg.semantic.cluster_count(docs)
    return record


def sized_plan(
    shards: list[Path],
    cfg: DedupConfig,
    partitions: int | None,
    rows_per_partition: int,
    cc_partitions: int | None,
    work: Path | None = None,
) -> Plan:
    """The plan a run over `shards` would get, for launchers; once a run started in `work`, the
    sizes its plan.json holds (with these shards: a launcher sizes later stages by an upper bound)."""
    record = _plan_record(shards, cfg, partitions, rows_per_partition, cc_partitions)
    path = None if work is None else work / "plan.json"
    if path is not None and path.is_file():
        stored = json.loads(path.read_text())
        record.update({k: v for k, v in stored.items() if k not in ("shards", "inputs")})
    return Plan(**record)


def load_plan(
    work: Path,
    shards: list[Path],
    cfg: DedupConfig,
    partitions: int | None,
    rows_per_partition: int,
    cc_partitions: int | None,
) -> Plan:
    """Create the run's plan, or check that the input still matches the one the run started with."""
    record = _plan_record(shards, cfg, partitions, rows_per_partition, cc_partitions)
    names, inputs = record["shards"], record["inputs"]
    path = work / "plan.json"
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
            BucketTask(cfg, work, plan.cc_partitions or 1, work / GROUPS),
            [Path(f"{p:05d}") for p in range(plan.partitions)],
        ),
    ]
    if cfg.method == "minhash":
        stages += _components_stages(plan, work)
    results = _results(plan, cfg, work)
    mark = DedupMark(drop=not cfg.annotate, method=cfg.method, results=results, shard_index=index)
    remove = FilterTask([mark], out_dir, batch_rows, rows_per_file, write_dropped, skip_bad)
    stages.append(Stage("remove", remove, shards))
    return stages


def _components_stages(plan: Plan, work: Path) -> list[Stage]:
    """`cc-0` ... `cc-<S-1>` (K units each), then `components` (1 unit); see `cc_tasks`."""
    parts, steps = plan.cc_partitions, plan.cc_steps
    units = [Path(f"{p:05d}") for p in range(parts)]
    stages = []
    for i in range(steps):
        senders = plan.partitions if i == 0 else parts
        stages.append(Stage(f"cc-{i}", StarTask(work, i, parts, senders, step_dir(work, i)), units))
    senders = plan.partitions if steps == 0 else parts
    task = ComponentsTask(work, parts, steps, senders, work / COMPONENTS)
    return [*stages, Stage(COMPONENTS, task, [Path("00000")])]


def _results(plan: Plan, cfg: DedupConfig, work: Path) -> list[tuple[str, int]]:
    """Where the final labels and clusters may be (`cc_tasks.find_results` picks the complete one)."""
    if cfg.method == "minhash":
        return cc_results(work, plan.cc_partitions, plan.cc_steps)
    return [(str(work / GROUPS), plan.partitions)]  # exact/url groups never span partitions


def stage_needed(stage: Stage) -> bool:
    """False for a components stage left after a round settled: its units would do nothing."""
    needed = getattr(stage.task, "needed", None)
    return needed is None or needed()


def _unfinished(stage: Stage) -> list[Path]:
    if not stage_needed(stage):
        return []
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
    # The largest cluster, then clusters spread over the corpus (deterministic: by keeper key).
    summary = summarize_clusters(*find_results(_results(plan, cfg, work)), n_examples)
    examples = []
    for keeper, member, size in summary.examples:
        ex = _example(plan, cfg, keeper, member)
        ex["cluster_size"] = size
        examples.append(ex)
    duplicates = summary.documents - summary.clusters  # all but each cluster's keeper
    return {
        "method": cfg.method,
        "documents": docs,
        "clusters": summary.clusters,
        "documents_in_clusters": summary.documents,
        "duplicates": duplicates,
        "duplicate_fraction": round(float(duplicates) / docs, 6) if docs else 0.0,
        "cluster_sizes": {str(s): c for s, c in summary.sizes.items()},
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
    cc_partitions: int | None = DedupStage.cc_partitions,
    allow_incomplete: bool = False,
    executor: Executor = LOCAL,
) -> dict:
    """Run every dedup stage (or only `stage`, units[rank::world_size]) with `executor`; returns the summary.

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
        cc_partitions=cc_partitions,
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
        "cc_partitions": cc_partitions,
        "batch_rows": batch_rows,
        "rows_per_file": rows_per_file,
        "write_dropped": write_dropped,
        "on_bad_input": on_bad_input,
    }
    check_stage_dir(out_dir, config, overwrite)
    work = out_dir / DEDUP_WORK_DIR
    plan = load_plan(work, shards, cfg, partitions, rows_per_partition, cc_partitions)
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
        if not stage_needed(s):
            if progress:
                tqdm.write(f"dedup stage {s.name}: not needed (the components have settled)", file=sys.stderr)
            continue
        if i > 0 and (missing := _unfinished(stages[i - 1])):
            raise ValueError(
                f"stage {s.name} needs stage {stages[i - 1].name} finished first "
                f"({len(missing)} of {len(stages[i - 1].units)} units pending, e.g. {missing[0].name})"
            )
        if progress:
            tqdm.write(f"dedup stage {i + 1}/{len(stages)}: {s.name} ({len(s.units)} units)", file=sys.stderr)
        result = executor.run(
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


def stage_units(cfg: DedupConfig, plan: Plan) -> list[tuple[str, int, str]]:
    """(stage, units, unit kind) of a run with this plan (for launchers building job dependencies)."""
    shards, partitions = len(plan.shards), plan.partitions
    if cfg.method == "semantic":
        from data_pipeline.semantic.stages import stage_names, unit_kind

        counts = {"shard": shards, "partition": partitions}
        names = stage_names(cfg.semantic.rounds)
        return [(name, counts.get(unit_kind(name), 1), unit_kind(name)) for name in names]
    components = []
    if cfg.method == "minhash":
        rounds = [(f"cc-{i}", plan.cc_partitions, "partition") for i in range(plan.cc_steps)]
        components = [*rounds, (COMPONENTS, 1, "task")]
    return [
        ("hash", shards, "shard"),
        ("buckets", partitions, "partition"),
        *components,
        ("remove", shards, "shard"),
    ]


def stage_names(cfg: DedupConfig, plan: Plan) -> list[str]:
    """The stage sequence of a run with this plan (`sized_plan` for one not started yet)."""
    return [name for name, _, _ in stage_units(cfg, plan)]
