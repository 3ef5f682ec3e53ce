"""Run a chain of steps over one input shard: stream row groups in, write kept rows out, then a marker.

`process_shard` is a pure function of (steps, input shard, output dir): every executor (local
processes, Slurm array tasks) calls it, and the same input always gives the same output bytes.
Outputs appear only under their final names once complete (`*.tmp` + rename), and the shard's
completion marker `.done/<stem>.json` is written last, holding the shard's stats and output names.
A shard without a marker is unfinished: its leftovers are deleted before it is processed again.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, annotation_table
from data_pipeline.io import DEFAULT_BATCH_ROWS, atomic_write_text, open_parquet

DONE_DIR = ".done"
DROPPED_DIR = "dropped"
# Reasons for rows that never reach a step (recorded, with --on-bad-input skip, instead of failing).
NULL_TEXT = "invalid:null_text"
BAD_UTF8 = "invalid:utf8"


class ShardError(ValueError):
    """Bad input in a shard (unreadable file, wrong schema, null or undecodable text)."""


class Interrupted(Exception):
    """The executor asked this worker to stop (Ctrl-C, SIGTERM); the shard is left unfinished."""


@dataclass
class StepStats:
    docs_in: int = 0
    docs_out: int = 0
    seconds: float = 0.0


@dataclass
class ShardStats:
    """What happened to one input shard; summed over shards into stats.json."""

    shard: str = ""
    docs_in: int = 0
    docs_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    dropped: dict[str, int] = field(default_factory=dict)
    steps: dict[str, StepStats] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    input: dict[str, int] | None = None  # `input_fingerprint` of the shard this output was made from

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ShardStats:
        steps = {k: StepStats(**v) for k, v in data.get("steps", {}).items()}
        return cls(**{**data, "steps": steps})


def marker_path(out_dir: Path, shard: Path) -> Path:
    return out_dir / DONE_DIR / f"{shard.stem}.json"


def write_marker_text(path: Path, text: str) -> None:
    """Write a completion marker atomically, then drop temp files of earlier, killed attempts at it."""
    atomic_write_text(path, text)
    for stale in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)


def read_marker(out_dir: Path, shard: Path) -> ShardStats | None:
    """The finished shard's stats, or None when it has not been completed."""
    path = marker_path(out_dir, shard)
    if not path.is_file():
        return None
    return ShardStats.from_json(json.loads(path.read_text()))


def part_name(stem: str, index: int) -> str:
    return f"{stem}-{index:05d}.parquet"


def part_stem(name: str) -> str | None:
    """The shard stem of an output part's name (`part_name`), or None for any other name."""
    match = re.fullmatch(r"(.+)-[0-9]{5}\.parquet", name)
    return match[1] if match else None


def input_fingerprint(shard: Path) -> dict[str, int]:
    """Size and modification time of an input shard: cheap to read, and changed by any rewrite of it."""
    stat = shard.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def clean_partial(out_dir: Path, shard: Path) -> None:
    """Delete what a killed run may have left of this shard (parts and temp files, kept or dropped)."""
    for directory in (out_dir, out_dir / DROPPED_DIR):
        if directory.is_dir():
            for path in directory.glob(f"{glob.escape(shard.stem)}-[0-9][0-9][0-9][0-9][0-9].parquet*"):
                path.unlink(missing_ok=True)  # tasks of a job array may clean the same orphan


class _PartWriter:
    """Writes row groups into `<stem>-NNNNN.parquet` parts of at most `rows_per_file` rows."""

    def __init__(self, directory: Path, stem: str, rows_per_file: int | None) -> None:
        self.directory, self.stem, self.rows_per_file = directory, stem, rows_per_file
        self.writer: pq.ParquetWriter | None = None
        self.rows_in_part = 0
        self.finished: list[Path] = []  # temp paths of complete parts, renamed together at the end
        self.schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        self.schema = table.schema
        while table.num_rows:
            if self.writer is None:
                self._open(table.schema)
            room = table.num_rows if self.rows_per_file is None else self.rows_per_file - self.rows_in_part
            chunk, table = table.slice(0, room), table.slice(room)
            self.writer.write_table(chunk)
            self.rows_in_part += chunk.num_rows
            if self.rows_per_file is not None and self.rows_in_part >= self.rows_per_file:
                self._close()

    def _open(self, schema: pa.Schema) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / (part_name(self.stem, len(self.finished)) + ".tmp")
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.rows_in_part = 0

    def _close(self) -> None:
        assert self.writer is not None
        self.writer.close()
        self.finished.append(Path(self.writer.where))
        self.writer = None

    def commit(self, schema: pa.Schema) -> list[Path]:
        """Close the open part (or write one empty part, so the schema survives) and rename all parts."""
        if self.writer is None and not self.finished:
            self._open(self.schema or schema)
        if self.writer is not None:
            self._close()
        final = []
        for tmp in self.finished:
            path = tmp.with_name(tmp.name.removesuffix(".tmp"))
            os.replace(tmp, path)
            final.append(path)
        return final

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.finished.append(Path(self.writer.where))
            self.writer = None
        for tmp in self.finished:
            tmp.unlink(missing_ok=True)


def batch_texts(shard: Path, batch: pa.RecordBatch, first_row: int, skip_bad: bool) -> list[str | None]:
    """The text column as Python strings; None marks a row that is null or not valid UTF-8."""
    column = batch.column("text")
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            column.validate(full=True)  # Arrow does not check UTF-8 when it reads Parquet
            raw = None
        except pa.ArrowInvalid:
            raw = column.cast(pa.binary()).to_pylist()
        if raw is None:
            if column.null_count and not skip_bad:
                row = first_row + column.is_null().to_pylist().index(True)
                raise ShardError(f"{shard}: row {row}: column 'text' is null")
            return column.to_pylist()
    elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        raw = column.to_pylist()
    else:
        raise ShardError(f"{shard}: column 'text' has type {column.type}, expected string")
    texts: list[str | None] = []
    for i, value in enumerate(raw):
        if value is None:
            if not skip_bad:
                raise ShardError(f"{shard}: row {first_row + i}: column 'text' is null")
            texts.append(None)
            continue
        try:
            texts.append(value.decode("utf-8"))
        except UnicodeDecodeError as e:
            if not skip_bad:
                raise ShardError(f"{shard}: row {first_row + i}: text is not valid UTF-8 ({e})") from None
            texts.append(None)
    return texts


def _is_binary(dtype: pa.DataType) -> bool:
    return pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype)


def _put_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """Append a column, or replace it when the input has it already (re-filtering annotated output)."""
    index = table.schema.get_field_index(name)
    return table.set_column(index, name, values) if index >= 0 else table.append_column(name, values)


def _output_table(
    table: pa.Table, docs: list[Doc], steps: Sequence[Step], keep: Callable[[Doc], bool], extra: dict
) -> pa.Table:
    """Input columns of the chosen rows, with rewritten text, plus annotation columns."""
    chosen = [d for d in docs if keep(d)]
    out = table.take(pa.array([d.index for d in chosen], type=pa.int64()))
    text_type = out.schema.field("text").type
    invalid = [d.drop_reason in (NULL_TEXT, BAD_UTF8) for d in chosen]
    if _is_binary(text_type) or any(invalid) or any(d.text_changed for d in chosen):
        # Null or undecodable input text is written as null: never invalid UTF-8 in a string column.
        values = [None if bad else d.text for d, bad in zip(chosen, invalid, strict=True)]
        texts = pa.array(values, type=pa.string() if _is_binary(text_type) else text_type)
        out = out.set_column(out.schema.get_field_index("text"), "text", texts)
    for name, values in {**annotation_table(steps, docs, keep), **extra}.items():
        out = _put_column(out, name, values)
    return out


def read_batches(shard: Path, file: pq.ParquetFile, batch_rows: int) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first row, batch) pairs; read errors become ShardError naming the shard and row."""
    row = 0
    batches = file.iter_batches(batch_size=batch_rows)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as e:
            raise ShardError(f"{shard}: corrupt Parquet data near row {row} ({e})") from e
        yield row, batch
        row += batch.num_rows


def open_shard(shard: Path) -> pq.ParquetFile:
    try:
        file = open_parquet(shard)
    except (ValueError, FileNotFoundError) as e:
        raise ShardError(str(e)) from e
    names = file.schema_arrow.names
    if "text" not in names:
        raise ShardError(f"{shard}: column 'text' missing (found: {names})")
    if "url" in names:
        url_type = file.schema_arrow.field("url").type
        if not (
            pa.types.is_string(url_type) or pa.types.is_large_string(url_type) or pa.types.is_null(url_type)
        ):
            raise ShardError(f"{shard}: column 'url' has type {url_type}, expected string")
    return file


def iter_shard_rows(shard: Path, skip_bad: bool = False) -> Iterator[tuple[int, str]]:
    """(row, text) of every valid text of a shard, with the same checks as processing it."""
    file = open_shard(shard)
    for first, batch in read_batches(shard, file, DEFAULT_BATCH_ROWS):
        texts = batch_texts(shard, batch, first, skip_bad)
        yield from ((first + i, t) for i, t in enumerate(texts) if t is not None)


def iter_shard_texts(shard: Path, skip_bad: bool = False) -> Iterator[str]:
    """Every valid text of a shard, with the same checks as processing it (for corpus-level fits)."""
    yield from (text for _, text in iter_shard_rows(shard, skip_bad))


def made_ids(stem: str, first_row: int, n: int) -> list[str]:
    """The ids given to rows of a shard without an `id` column (docs/contract.md): `<stem>/<row>`."""
    return [f"{stem}/{i}" for i in range(first_row, first_row + n)]


def _documents(batch: pa.RecordBatch, texts: list[str | None], first_row: int) -> list[Doc]:
    urls = batch.column("url").to_pylist() if "url" in batch.schema.names else None
    nulls = batch.column("text").is_null().to_pylist()
    docs = []
    for i, text in enumerate(texts):
        doc = Doc(text if text is not None else "", urls[i] if urls else None, i, first_row + i)
        if text is None:
            doc.drop_reason = NULL_TEXT if nulls[i] else BAD_UTF8
        docs.append(doc)
    return docs


def _run_steps(steps: Sequence[Step], docs: list[Doc], stats: ShardStats) -> None:
    for step in steps:
        step_stats = stats.steps[step.label()]
        step_stats.docs_in += sum(d.drop_reason is None for d in docs)
        t0 = time.perf_counter()
        step.process(docs)
        step_stats.seconds += time.perf_counter() - t0
        step_stats.docs_out += sum(d.drop_reason is None for d in docs)


class _ShardOutputs:
    """A shard's kept rows in `<stem>-NNNNN.parquet` and, with `write_dropped`, its dropped rows (with a
    `drop_reason` column) under DROPPED_DIR: written together, committed or aborted together."""

    def __init__(self, out_dir: Path, stem: str, rows_per_file: int | None, write_dropped: bool) -> None:
        self.out_dir = out_dir
        self.kept = _PartWriter(out_dir, stem, rows_per_file)
        self.dropped = _PartWriter(out_dir / DROPPED_DIR, stem, rows_per_file) if write_dropped else None

    def write(self, table: pa.Table, docs: list[Doc], steps: Sequence[Step]) -> int:
        """Write one batch's rows; returns the UTF-8 bytes of the kept texts."""
        kept_table = _output_table(table, docs, steps, lambda d: d.drop_reason is None, {})
        self.kept.write(kept_table)
        if self.dropped is not None:
            reasons = [d.drop_reason for d in docs if d.drop_reason is not None]
            extra = {"drop_reason": pa.array(reasons, type=pa.string())}
            self.dropped.write(_output_table(table, docs, steps, lambda d: d.drop_reason is not None, extra))
        return pc.sum(pc.binary_length(kept_table.column("text"))).as_py() or 0

    def commit(self, schema: pa.Schema) -> list[str]:
        """Rename every part to its final name; returns their paths relative to the output directory."""
        outputs = self.kept.commit(schema)
        if self.dropped is not None:
            outputs += self.dropped.commit(_add_field(schema, pa.field("drop_reason", pa.string())))
        return [str(p.relative_to(self.out_dir)) for p in outputs]

    def abort(self) -> None:
        self.kept.abort()
        if self.dropped is not None:
            self.dropped.abort()


def _filter_batch(
    shard: Path, row: int, batch: pa.RecordBatch, steps: Sequence[Step], stats: ShardStats, skip_bad: bool
) -> tuple[pa.Table, list[Doc]]:
    """Run the steps over one batch, counting it into `stats`; returns the batch as a table and its docs."""
    table = pa.Table.from_batches([batch])
    if "id" not in table.schema.names:  # docs/contract.md: ids are made if missing
        ids = made_ids(shard.stem, row, batch.num_rows)
        table = table.append_column("id", pa.array(ids, type=pa.string()))
    docs = _documents(batch, batch_texts(shard, batch, row, skip_bad), row)
    # UTF-8 sizes from Arrow's offsets, not by re-encoding every document in Python.
    valid = pa.array([d.drop_reason is None for d in docs], type=pa.bool_())
    lengths = pc.if_else(valid, pc.binary_length(batch.column("text")), 0)
    stats.bytes_in += pc.sum(lengths).as_py() or 0
    _run_steps(steps, docs, stats)
    stats.docs_in += len(docs)
    stats.docs_out += sum(d.drop_reason is None for d in docs)
    return table, docs


def write_marker(out_dir: Path, unit: Path, stats: ShardStats) -> None:
    """Write a unit's completion marker `.done/<stem>.json`: its stats, atomically."""
    write_marker_text(marker_path(out_dir, unit), json.dumps(stats.to_json(), indent=1) + "\n")


@contextlib.contextmanager
def shard_task(out_dir: Path, unit: Path) -> Iterator[ShardStats]:
    """One unit of work (an input shard, a dedup partition or merge) with its stats, timed.

    The completion marker is written only when the body finishes: a unit that raised (bad input,
    disk full, `Interrupted`) has none, so it counts as unfinished and is redone on resume.
    """
    start = time.perf_counter()
    stats = ShardStats(shard=unit.name)
    yield stats
    stats.seconds = time.perf_counter() - start
    write_marker(out_dir, unit, stats)


def process_shard(
    shard: Path,
    out_dir: Path,
    steps: Sequence[Step],
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    rows_per_file: int | None = None,
    write_dropped: bool = False,
    skip_bad: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int], None] = lambda n: None,
) -> ShardStats:
    """Filter one shard into `out_dir`; returns its stats, also saved as its completion marker.

    Bad input raises ShardError; errors writing the output (disk full) or in a step propagate as
    they are, so that `skip` mode never mistakes them for a bad shard.
    """
    if batch_rows < 1 or (rows_per_file is not None and rows_per_file < 1):
        raise ValueError(f"batch_rows={batch_rows} and rows_per_file={rows_per_file} must be >= 1")
    with shard_task(out_dir, shard) as stats:
        clean_partial(out_dir, shard)
        file = open_shard(shard)
        stats.input = input_fingerprint(shard)  # before reading: a rewrite during the run shows on resume
        stats.steps = {s.label(): StepStats() for s in steps}
        batch_rows = max([batch_rows, *(s.batch_docs() or 0 for s in steps)])
        dropped: Counter[str] = Counter()
        outputs = _ShardOutputs(out_dir, shard.stem, rows_per_file, write_dropped)
        try:
            for step in steps:
                step.begin_shard(shard)
            for row, batch in read_batches(shard, file, batch_rows):
                if should_stop():
                    raise Interrupted(str(shard))
                table, docs = _filter_batch(shard, row, batch, steps, stats, skip_bad)
                dropped.update(d.drop_reason for d in docs if d.drop_reason is not None)
                stats.bytes_out += outputs.write(table, docs, steps)
                progress(batch.num_rows)
            stats.outputs = outputs.commit(_empty_schema(file.schema_arrow, steps))
        except BaseException:
            outputs.abort()
            clean_partial(out_dir, shard)
            raise
        stats.dropped = dict(sorted(dropped.items()))
    return stats


def _add_field(schema: pa.Schema, field: pa.Field) -> pa.Schema:
    index = schema.get_field_index(field.name)
    return schema.set(index, field) if index >= 0 else schema.append(field)


def _empty_schema(input_schema: pa.Schema, steps: Sequence[Step]) -> pa.Schema:
    """The output schema for a shard with no rows at all (input columns, id, annotations)."""
    schema = input_schema
    if _is_binary(schema.field("text").type):
        schema = _add_field(schema, pa.field("text", pa.string()))
    if "id" not in schema.names:
        schema = _add_field(schema, pa.field("id", pa.string()))
    for step in steps:
        for name, dtype in step.columns().items():
            schema = _add_field(schema, pa.field(name, dtype))
    return schema


@dataclass
class FilterTask:
    """`process_shard` with its settings bound: what an executor runs once per shard, in any process."""

    steps: list[Step]
    out_dir: Path
    batch_rows: int = DEFAULT_BATCH_ROWS
    rows_per_file: int | None = None
    write_dropped: bool = False
    skip_bad: bool = False

    def setup(self) -> None:
        """Load models etc. once per worker process."""
        for step in self.steps:
            step.setup()

    def __call__(
        self,
        shard: Path,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ShardStats:
        return process_shard(
            shard,
            self.out_dir,
            self.steps,
            batch_rows=self.batch_rows,
            rows_per_file=self.rows_per_file,
            write_dropped=self.write_dropped,
            skip_bad=self.skip_bad,
            should_stop=should_stop,
            progress=progress,
        )
