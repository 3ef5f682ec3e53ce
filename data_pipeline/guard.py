"""The checks every `andes-data` writer makes before it touches anything, and what a stage output records.

* An output must not be, contain or lie inside an input (paths resolved, symlinks followed):
  `--overwrite`, pack's directory swap or a stage's cleanup would delete or mix with the input.
* `--overwrite` deletes a directory only when an earlier stage run wrote it (`stage.json`) and every
  file in it is one a stage run writes there (`_written_by_andes`); anything else is named and kept.
* A directory with a `stage.json` is a stage output: it is read only once every shard its last run
  listed (`shards.json`) has a completion marker or was skipped as bad input (`stats.json`), unless
  `--allow-incomplete`. A plain directory of Parquet files is read as it is.
* A resumed run redoes shards whose input file changed (size or mtime, recorded in each marker) and
  deletes the output of shards no longer in the input (`sync_with_input`), so outputs, markers and
  `stats.json` describe the input as it is now.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from data_pipeline.io import _GLOB_CHARS, atomic_write_text, final_name
from data_pipeline.shard import (
    DONE_DIR,
    DROPPED_DIR,
    clean_partial,
    input_fingerprint,
    marker_path,
    part_stem,
    read_marker,
)
from data_pipeline.stats import STATS_FILE

STAGE_FILE = "stage.json"
SHARDS_FILE = "shards.json"  # the input shards of the stage's latest run, by file name
# The dedup stage's work directory and report (data_pipeline/dedup/run.py).
DEDUP_WORK_DIR = ".dedup"
DEDUP_REPORT = "dedup_report.json"
_STAGE_FILES = {STAGE_FILE, STATS_FILE, SHARDS_FILE, DEDUP_REPORT}

Spec = str | Path | None


def _named_paths(spec: str | Path) -> list[Path]:
    """What an input names: the path itself, or a glob's matches; and a directory's Parquet files."""
    path = Path(spec)
    if path.is_dir():
        return [path, *sorted(path.glob("*.parquet"))]
    if path.exists() or not _GLOB_CHARS.intersection(str(spec)):
        return [path]
    return sorted(Path(f) for f in glob.glob(str(spec)))


def _relation(output: Path, input: Path) -> str | None:
    if output == input:
        return "is the same as"
    if input.is_relative_to(output):
        return "contains"
    if output.is_relative_to(input):
        return "lies inside"
    return None


def check_no_overlap(inputs: Sequence[Spec], outputs: Sequence[str | Path]) -> None:
    """Refuse an output that is, contains or lies inside an input, naming both."""
    for output in outputs:
        resolved = Path(output).resolve()
        for spec in inputs:
            if spec is None:
                continue
            for path in _named_paths(spec):
                relation = _relation(resolved, path.resolve())
                if relation is not None:
                    via = "" if path == Path(spec) else f" (its file {path})"
                    raise ValueError(
                        f"output {output} {relation} input {spec}{via}; choose an output outside the input"
                    )


def _stage_dirs(spec: str | Path) -> list[Path]:
    """Directories an input reads from: the directory itself, or the parents of the files it names."""
    path = Path(spec)
    if path.is_dir():
        return [path]
    return list(dict.fromkeys(p.parent for p in _named_paths(spec) if p.is_file()))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def recorded_shards(directory: Path) -> list[str] | None:
    record = _read_json(directory / SHARDS_FILE)
    return None if record is None else list(record["shards"])


def unfinished_shards(directory: Path) -> list[str]:
    """Shards a stage output's latest run has not finished (empty for a finished or non-stage dir)."""
    if not (directory / STAGE_FILE).is_file():
        return []
    stats = _read_json(directory / STATS_FILE)
    names = recorded_shards(directory)
    if names is None:  # written before shards.json existed: only stats.json can tell
        if stats is None:
            return ["every shard (no stats.json)"]
        pending = stats.get("pending_shards", 0)
        return [f"{pending} shards (stats.json's pending_shards)"] if pending else []
    skipped = set((stats or {}).get("skipped_shards", {}))
    return [n for n in names if n not in skipped and not marker_path(directory, Path(n)).is_file()]


def check_finished(inputs: Iterable[Spec]) -> None:
    """Refuse to read a stage output whose latest run left shards unfinished, naming them."""
    for spec in inputs:
        for directory in [] if spec is None else _stage_dirs(spec):
            missing = unfinished_shards(directory)
            if missing:
                more = len(missing) - 5
                listed = ", ".join(missing[:5]) + (f" and {more} more" if more > 0 else "")
                raise ValueError(
                    f"{directory}: unfinished andes-data stage output (not done: {listed}); "
                    "re-run the command that writes it, or pass --allow-incomplete"
                )


def check_io(inputs: Sequence[Spec], outputs: Sequence[str | Path], allow_incomplete: bool = False) -> None:
    """What every writer checks first: no output overlaps an input, and every input stage finished."""
    check_no_overlap(inputs, outputs)
    if not allow_incomplete:
        check_finished(inputs)


def _written_by_andes(rel: Path, stems: set[str]) -> bool:
    """Whether a path (relative to a stage output) is one a stage run writes, temp files included."""
    parts, name = rel.parts, final_name(rel.name)
    if parts[0] == DEDUP_WORK_DIR:
        return True
    if len(parts) == 1:
        return name in _STAGE_FILES or name in (DONE_DIR, DROPPED_DIR) or part_stem(name) in stems
    if len(parts) == 2 and parts[0] == DONE_DIR:
        return name.endswith(".json")
    return len(parts) == 2 and parts[0] == DROPPED_DIR and part_stem(name) in stems


def _stage_paths(out_dir: Path) -> list[Path]:
    """Every entry under a stage output, not descending into symlinks."""
    found = []
    for root, dirs, files in os.walk(out_dir):
        found += [Path(root, name) for name in sorted(dirs) + sorted(files)]
    return found


def _known_stems(out_dir: Path) -> set[str]:
    """Stems of the input shards a stage run wrote output for: its markers and its shards.json."""
    stems = {p.stem for p in (out_dir / DONE_DIR).glob("*.json")}
    return stems | {Path(n).stem for n in recorded_shards(out_dir) or []}


def remove_stage_output(out_dir: Path) -> None:
    """`--overwrite`: delete an earlier stage run's output; refused if it holds what andes did not write."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / STAGE_FILE).is_file()):
        raise ValueError(f"{out_dir}: not an andes-data output (no {STAGE_FILE}); refusing to delete it")
    stems = _known_stems(out_dir)
    for path in _stage_paths(out_dir):
        if not _written_by_andes(path.relative_to(out_dir), stems):
            raise ValueError(
                f"{out_dir}: --overwrite would delete {path}, which andes-data did not write; "
                "move it away first"
            )
    shutil.rmtree(out_dir)


def record_shards(out_dir: Path, shards: Sequence[Path]) -> None:
    """Record this run's input shards: what the stage output is complete with (`unfinished_shards`)."""
    names = [s.name for s in shards]
    atomic_write_text(out_dir / SHARDS_FILE, json.dumps({"shards": names}, indent=1) + "\n")


def _forget(out_dir: Path, shard: Path) -> None:
    """Make a shard unfinished: marker first, so a kill midway never leaves a marker for deleted parts."""
    marker_path(out_dir, shard).unlink(missing_ok=True)
    clean_partial(out_dir, shard)


def sync_with_input(out_dir: Path, shards: Sequence[Path], mine: Sequence[Path]) -> None:
    """Before resuming: redo `mine` whose input changed; drop the output of shards gone from the input.

    Only what a run wrote for such a shard goes: its marker and its `<stem>-NNNNN.parquet` parts.
    """
    for shard in mine:
        marker = read_marker(out_dir, shard)
        if marker is not None and marker.input is not None and marker.input != input_fingerprint(shard):
            _forget(out_dir, shard)
    current = {s.stem for s in shards}
    for stem in sorted(_known_stems(out_dir) - current):
        _forget(out_dir, Path(f"{stem}.parquet"))
    record_shards(out_dir, shards)
