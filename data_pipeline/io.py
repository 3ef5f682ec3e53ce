"""Shared Parquet and file I/O: shard listing, atomic writes, streaming column reads with clear errors."""

from __future__ import annotations

import glob
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Small enough to keep memory flat on huge shards, large enough to amortize per-batch overhead.
DEFAULT_BATCH_ROWS = 1024

_GLOB_CHARS = frozenset("*?[")


def list_parquet(path: Path | str) -> list[Path]:
    """Resolve a directory (its *.parquet, sorted, non-recursive), a single file or a glob to files."""
    path_str = str(path)
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.glob("*.parquet") if f.is_file())
        if not files:
            raise FileNotFoundError(f"{path}: directory contains no *.parquet files")
        return files
    if p.is_file():
        return [p]
    if _GLOB_CHARS.intersection(path_str):
        files = sorted(Path(f) for f in glob.glob(path_str) if Path(f).is_file())
        if not files:
            raise FileNotFoundError(f"{path}: no files match this pattern")
        return files
    raise FileNotFoundError(f"{path}: no such file or directory")


def _tmp_path(path: Path) -> Path:
    # Suffix after the full name so that `*.parquet` globs never pick up an unfinished file; unique
    # per writer, so tasks of a job array writing the same file (stats.json) never share a temp name.
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def final_name(name: str) -> str:
    """The name a temp file (of `_tmp_path`, or a `<part>.tmp` of a shard writer) is renamed to when done."""
    return re.sub(r"(\.\d+-[0-9a-f]{8})?\.tmp$", "", name)


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temp name to write `path` under; renamed to `path` if the body finishes, deleted if not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_parquet(table: pa.Table, path: Path | str, **kwargs) -> Path:
    """Write a Parquet file as `path.tmp` then rename, so readers never see a partial file."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)
    return Path(path)


@contextmanager
def _staged_text(path: Path, text: str) -> Iterator[Path]:
    """Write UTF-8 text to a unique temp file beside `path`; the temp file is gone afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write UTF-8 text as a temp file then rename, so readers never see a partial file."""
    path = Path(path)
    with _staged_text(path, text) as tmp:
        os.replace(tmp, path)
    return path


def create_text_once(path: Path | str, text: str) -> bool:
    """Create a complete file at `path` unless one exists; True if this call created it.

    Atomic among concurrent writers: the temp file is hard-linked to `path`, which fails if `path`
    exists, so readers never see a partial file.
    """
    path = Path(path)
    with _staged_text(path, text) as tmp:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    return True


def open_parquet(path: Path | str) -> pq.ParquetFile:
    """Open a Parquet file; a missing or unreadable file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: not a readable Parquet file ({e})") from e


def iter_batches(
    path: Path | str,
    columns: Sequence[str],
    *,
    optional: Sequence[str] = (),
    batch_size: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Stream record batches of `columns` (all required) plus whichever `optional` columns exist."""
    path = Path(path)
    file = open_parquet(path)
    found = file.schema_arrow.names
    missing = [c for c in columns if c not in found]
    if missing:
        names = ", ".join(f"'{c}'" for c in missing)
        raise ValueError(f"{path}: column {names} missing (found: {found})")
    wanted = [*columns, *(c for c in optional if c in found and c not in columns)]
    try:
        yield from file.iter_batches(batch_size=batch_size, columns=wanted)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: corrupt Parquet data ({e})") from e


def text_values(path: Path | str, array: pa.Array, column: str, first_row: int) -> list[str | None]:
    """A string or binary column as Python strings (None where null), as `filter` reads text.

    Arrow does not check UTF-8 when it reads Parquet, so bytes that are not UTF-8 are found here and
    raise an error naming the file and row instead of a bare UnicodeDecodeError.
    """
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        try:
            array.validate(full=True)
            return array.to_pylist()
        except pa.ArrowInvalid:
            array = array.cast(pa.large_binary())
    elif not (pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)):
        raise ValueError(
            f"{path}: column '{column}' has type {array.type}, expected string (or UTF-8 binary)"
        )
    values = array.to_pylist()
    for i, value in enumerate(values):
        if value is not None:
            try:
                values[i] = value.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path}: row {first_row + i}: column '{column}' is not valid UTF-8 "
                    f"({e.reason} at byte {e.start})"
                ) from None
    return values


def check_string_column(path: Path | str, batch: pa.RecordBatch, column: str, first_row: int) -> list[str]:
    """Return the column's values as str, raising (naming file and row) on a null or non-UTF-8 text."""
    array = batch.column(column)
    values = text_values(path, array, column, first_row)
    if array.null_count:
        row = first_row + next(i for i, valid in enumerate(array.is_valid().to_pylist()) if not valid)
        raise ValueError(f"{path}: row {row}: column '{column}' is null, expected a string")
    return values  # no None left: nulls were refused above


def read_text_column(
    path: Path | str, column: str = "text", batch_size: int = DEFAULT_BATCH_ROWS
) -> Iterator[str]:
    """Yield the strings of one column in row order, reading a batch at a time."""
    row = 0
    for batch in iter_batches(path, [column], batch_size=batch_size):
        yield from check_string_column(path, batch, column, row)
        row += batch.num_rows
