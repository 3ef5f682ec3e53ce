"""Stages the CLI and recipes run: `filter` (steps over shards, resumable) and whole-directory stages.

Every stage is a function of (config, input dir) -> output dir. An output dir records the config
that made it (`stage.json`); resuming into a dir made with a different config is refused rather
than silently mixing two pipelines' outputs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_pipeline.config import ON_BAD_INPUT, FilterStage, Recipe
from data_pipeline.executors.local import LOCAL, Executor
from data_pipeline.filters.base import Step, build_step
from data_pipeline.guard import STAGE_FILE, check_io, remove_stage_output, sync_with_input
from data_pipeline.io import create_text_once, list_parquet
from data_pipeline.shard import FilterTask, ShardError, iter_shard_texts, read_marker
from data_pipeline.stats import format_stats, merge_stats, write_stats

# FineWeb's order (Penedo et al. 2024, §3): URL filtering, language ID, Gopher repetition, Gopher
# quality, C4, FineWeb's custom filters. Text extraction (trafilatura) happens before andes.
DEFAULT_FILTER_STEPS = ("url_filter", "langid", "gopher_repetition", "gopher_quality", "c4", "fineweb")
# Opens every filter stage (filters/length.py): no later step sees a document above its size limit.
SIZE_STEP = "doc_size"


def parse_step_specs(specs: Sequence[str | Mapping[str, Any]]) -> list[tuple[str, dict]]:
    """Normalise recipe step entries (`name` or `{name: {params}}`) to (name, params) pairs."""
    out = []
    for i, spec in enumerate(specs):
        if isinstance(spec, str):
            out.append((spec, {}))
        elif isinstance(spec, Mapping) and len(spec) == 1:
            name, params = next(iter(spec.items()))
            if params is not None and not isinstance(params, Mapping):
                raise ValueError(f"step {i} ('{name}'): parameters must be a mapping, got {params!r}")
            out.append((str(name), dict(params or {})))
        else:
            raise ValueError(f"step {i}: expected a step name or {{name: {{params}}}}, got {spec!r}")
    return out


def with_size_step(specs: Sequence[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The steps with `doc_size` first, added with its default limit where a stage does not name it."""
    names = [name for name, _ in specs]
    if SIZE_STEP not in names:
        return [(SIZE_STEP, {}), *specs]
    if names[0] != SIZE_STEP:
        raise ValueError(f"step '{SIZE_STEP}' must come first: the steps before it would see every document")
    return list(specs)


def build_steps(specs: Sequence[tuple[str, dict]]) -> list[Step]:
    """Build steps, refusing two steps that would write the same annotation column."""
    steps = [build_step(name, params) for name, params in specs]
    owner: dict[str, str] = {}
    for step in steps:
        for column in step.columns():
            if column in owner:
                raise ValueError(
                    f"steps '{owner[column]}' and '{step.name}' both write column '{column}'; "
                    "a step may appear only once per filter stage"
                )
            owner[column] = step.name
    labels = [step.label() for step in steps]
    if len(set(labels)) != len(labels):
        twice = sorted({x for x in labels if labels.count(x) > 1})
        raise ValueError(f"step(s) {twice} appear twice in one filter stage; run them in separate stages")
    return steps


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the keys whose values differ, descending into nested dicts; a key only one
    side has (a setting an earlier andes did not record) counts, and says so."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if (k in old) != (k in new):
            out.append(f"{prefix}{k} (not recorded {'then' if k in new else 'now'})")
        elif isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def check_stage_dir(out_dir: Path, config: dict, overwrite: bool) -> None:
    """Make `out_dir` ready for this config: fresh, resumable (same config) or, with overwrite, emptied.

    Overwrite deletes only an earlier run's own files (`guard.remove_stage_output`). Safe when
    several tasks of a job array start at once: the first creates the record, the others find the
    same config in it.
    """
    record = out_dir / STAGE_FILE
    config = json.loads(json.dumps(config))  # compare as stored: JSON turns int keys into strings
    if overwrite:
        remove_stage_output(out_dir)
    if not record.is_file():
        # Other tasks' temp files may be here already; anything else means the dir is not ours.
        foreign = out_dir.exists() and any(not p.name.endswith(".tmp") for p in out_dir.iterdir())
        # Re-checked after listing: a task started at the same time may have just created it.
        if foreign and not record.is_file():
            raise ValueError(f"{out_dir}: exists, is not empty and is not an andes-data output")
        if create_text_once(record, json.dumps(config, indent=1, sort_keys=True) + "\n"):
            return
    previous = json.loads(record.read_text())
    if previous != config:
        changed = changed_keys(previous, config)
        raise ValueError(
            f"{out_dir} was made with a different configuration (differs in: {', '.join(changed)}); "
            "use a new output directory or --overwrite"
        )


def check_run_options(
    on_bad_input: str, rank: int, world_size: int, overwrite: bool, **counts: int | None
) -> None:
    """Usage checks shared by the sharded stages; `counts` must be positive integers (or None)."""
    if on_bad_input not in ON_BAD_INPUT:
        raise ValueError(f"on_bad_input={on_bad_input!r}: expected 'fail' or 'skip'")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if overwrite and world_size > 1:
        raise ValueError("--overwrite with world_size > 1 would let tasks delete each other's output")


def unique_stems(shards: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for shard in shards:
        if shard.stem in seen:
            raise ValueError(f"input shards {seen[shard.stem]} and {shard} share the name '{shard.stem}'")
        seen[shard.stem] = shard


def _all_texts(shards: Sequence[Path], skip_bad: bool, label: str, progress: bool) -> Iterator[str]:
    for shard in tqdm(shards, desc=label, unit="shard", disable=not progress, file=sys.stderr):
        try:
            yield from iter_shard_texts(shard, skip_bad)
        except ShardError:
            if not skip_bad:
                raise  # skipped shards are reported when they are processed


def run_filter(
    input: str | Path,
    output: str | Path,
    steps: Sequence[tuple[str, dict]],
    *,
    workers: int = Recipe.workers,
    batch_rows: int = FilterStage.batch_rows,
    rows_per_file: int | None = FilterStage.rows_per_file,
    write_dropped: bool = FilterStage.write_dropped,
    on_bad_input: str = FilterStage.on_bad_input,
    overwrite: bool = False,
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
    allow_incomplete: bool = False,
    executor: Executor = LOCAL,
) -> dict:
    """Run filter steps over the shards of `input` into `output`; returns (and writes) stats.json.

    With `world_size` > 1 this call takes only shards[rank::world_size] (one task of a job array);
    stats.json then covers every shard finished so far, by any task, and counts the pending ones.
    Shards whose input changed since they finished are redone, and the output of shards no longer
    in the input is deleted (`guard.sync_with_input`). `executor` runs the shards (`--executor`).
    """
    check_run_options(
        on_bad_input,
        rank,
        world_size,
        overwrite,
        workers=workers,
        batch_rows=batch_rows,
        rows_per_file=rows_per_file,
    )
    check_io([input], [output], allow_incomplete)
    shards = list_parquet(input)
    unique_stems(shards)
    steps = with_size_step(steps)
    built = build_steps(steps)
    out_dir = Path(output)
    config = {
        "stage": "filter",
        # Resuming from another corpus would keep its finished shards; new files in the same input
        # directory are fine (they are simply not finished yet).
        "input": str(Path(input).resolve()),
        "steps": [{name: params} for name, params in steps],
        "batch_rows": batch_rows,  # sets row groups (bytes) and dedup buckets (content)
        "rows_per_file": rows_per_file,
        "write_dropped": write_dropped,
        "on_bad_input": on_bad_input,
    }
    check_stage_dir(out_dir, config, overwrite)
    mine = shards[rank::world_size]
    sync_with_input(out_dir, shards, mine)
    for step in built:
        if step.needs_fit():
            step.fit(_all_texts(shards, on_bad_input == "skip", f"{step.name}: fit", progress))
    task = FilterTask(built, out_dir, batch_rows, rows_per_file, write_dropped, on_bad_input == "skip")
    result = executor.run(task, mine, workers=workers, skip_bad=on_bad_input == "skip", progress=progress)
    finished = result.finished
    if world_size > 1:
        finished = [m for s in shards if (m := read_marker(out_dir, s)) is not None]
    summary = merge_stats(finished, skipped=result.skipped, wall_seconds=result.wall_seconds)
    summary["resumed_shards"] = result.resumed
    summary["pending_shards"] = len(shards) - len(finished) - len(result.skipped)
    write_stats(out_dir, summary)
    return summary


def print_summary(summary: dict, out_dir: Path) -> None:
    print(format_stats(summary))
    print(f"\nwrote {out_dir} (stats in {out_dir / 'stats.json'})")
