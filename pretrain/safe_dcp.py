"""Reading DCP checkpoints without running code from them.

Torch's `FileSystemReader.read_metadata` unpickles `<ckpt>/.metadata` with plain `pickle.load`, and
`DefaultLoadPlanner.load_bytes` reads every non-tensor entry (our `train` state, the optimizer's
hyper-parameters) with `torch.load(weights_only=False)`: a crafted checkpoint would run code on
resume or export. Here `.metadata` goes through an unpickler that only builds DCP's own metadata
classes (plus torch.Size, dtypes, layouts, paths and plain containers) and byte entries through
`torch.load(weights_only=True)`. Anything else is one `CheckpointReadError` naming the file.

Tensors were already safe: `FileSystemReader.read_data` loads them with `weights_only=True`.
Every DCP read of the repository goes through `load` or `read_metadata` here
(`pretrain/checkpoint.py`, `pretrain/checkpoint_files.py`); docs/checkpointing.md says what is
unpickled and how.
"""

from __future__ import annotations

import collections
import io
import os
import pathlib
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import metadata as dcp_metadata
from torch.distributed.checkpoint._traverse import set_element  # what DefaultLoadPlanner uses
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.filesystem import FileSystemReader, _StorageInfo
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta, TensorStorageMetadata
from torch.distributed.checkpoint.planner import ReadItem

METADATA = ".metadata"


class CheckpointReadError(ValueError):
    """A checkpoint file that is corrupt, or that holds objects we refuse to unpickle."""


_METADATA_CLASSES = (
    "Metadata",
    "MetadataIndex",
    "StorageMeta",
    "TensorStorageMetadata",
    "BytesStorageMetadata",
    "ChunkStorageMetadata",
    "TensorProperties",
    "_MEM_FORMAT_ENCODING",
)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> object for everything a DCP `.metadata` pickle references (torch 2.x)."""
    allowed: dict[tuple[str, str], Any] = {
        ("torch.distributed.checkpoint.metadata", n): getattr(dcp_metadata, n) for n in _METADATA_CLASSES
    }
    allowed[("torch.distributed.checkpoint.filesystem", "_StorageInfo")] = _StorageInfo
    allowed[("torch", "Size")] = torch.Size
    allowed[("torch.serialization", "_get_layout")] = torch.serialization._get_layout  # str -> layout
    # StorageMeta.checkpoint_id is the Path the writer was given.
    for module in ("pathlib", "pathlib._local"):  # the latter: Python >= 3.13
        allowed[(module, "PosixPath")] = pathlib.PosixPath
        allowed[(module, "PurePosixPath")] = pathlib.PurePosixPath
    for t in (dict, list, tuple, set, frozenset):
        allowed[("builtins", t.__name__)] = t
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    # dtypes and layouts are pickled as `torch.<name>` constants; vars() avoids torch's lazy __getattr__.
    for name, value in vars(torch).items():
        if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
            allowed[("torch", name)] = value
    return allowed


_ALLOWED = _allowed_globals()


class _Refused(pickle.UnpicklingError):
    pass


class _MetadataUnpickler(pickle.Unpickler):
    """Builds only the allowlisted classes; every other global (os.system, eval, ...) raises."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused(f"persistent id {pid!r}")


# Classes and functions of the allowlist: a pickle's BUILD can replace their attributes (say
# `Metadata.__eq__`, or `_get_layout.cache`). No code runs, but such a change would outlive the
# load, so every load compares them before and after and undoes any change.
_GUARDED = [v for v in {id(v): v for v in _ALLOWED.values()}.values() if hasattr(v, "__dict__")]


def _undo_attribute_changes(before: list[dict[str, Any]]) -> list[str]:
    """Restore the attributes of `_GUARDED` to `before`; the names of the objects that had changed."""
    changed = []
    for obj, old in zip(_GUARDED, before, strict=True):
        now = dict(vars(obj))
        if now.keys() == old.keys() and all(now[k] is v for k, v in old.items()):
            continue
        changed.append(getattr(obj, "__qualname__", repr(obj)))
        for k in now.keys() - old.keys():
            delattr(obj, k)
        for k, v in old.items():
            if k not in now or now[k] is not v:
                setattr(obj, k, v)
    return changed


def _unpickle(f: io.BufferedReader, path: Path) -> Any:
    before = [dict(vars(obj)) for obj in _GUARDED]
    try:
        return _MetadataUnpickler(f).load()
    finally:
        changed = _undo_attribute_changes(before)
        if changed:
            raise CheckpointReadError(
                f"{path}: tried to change attributes of {', '.join(changed)} while unpickling, which DCP "
                "metadata never does: the file was tampered with (the changes were undone)"
            )


def _check_metadata(md: Any, path: Path) -> Metadata:
    """The unpickled object must be DCP Metadata whose data files are plain names beside `.metadata`."""
    try:
        return _check_fields(md, path)
    except CheckpointReadError:
        raise
    except Exception as e:  # an allowed object with missing or odd fields
        raise CheckpointReadError(f"{path}: malformed DCP metadata ({type(e).__name__}: {e})") from None


def _check_fields(md: Any, path: Path) -> Metadata:
    if not isinstance(md, Metadata) or not isinstance(md.state_dict_metadata, dict):
        raise CheckpointReadError(f"{path}: holds a {type(md).__name__}, not DCP checkpoint metadata")
    if not isinstance(md.storage_data, dict):
        raise CheckpointReadError(f"{path}: DCP metadata without storage_data (written by another reader?)")
    for key, meta in md.state_dict_metadata.items():
        if isinstance(meta, TensorStorageMetadata) and not (
            isinstance(meta.size, torch.Size)
            and isinstance(getattr(meta.properties, "dtype", None), torch.dtype)
            and isinstance(meta.chunks, list)
        ):
            raise CheckpointReadError(f"{path}: malformed tensor metadata for {key!r}")
    for info in md.storage_data.values():
        name = getattr(info, "relative_path", None)
        if not isinstance(info, _StorageInfo) or not isinstance(name, str) or Path(name).name != name:
            raise CheckpointReadError(
                f"{path}: names data file {name!r}; DCP data files are plain names in the checkpoint dir"
            )
    return md


def read_metadata_file(path: str | os.PathLike) -> Metadata:
    """Unpickle one DCP metadata file with the allowlist; any failure is one CheckpointReadError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            md = _unpickle(f, path)
    except CheckpointReadError:
        raise
    except _Refused as e:
        raise CheckpointReadError(
            f"{path}: refused to unpickle {e}, which DCP metadata never holds: the file was not written "
            "by torch.distributed.checkpoint or was tampered with (nothing in it was run)"
        ) from None
    except OSError as e:
        raise CheckpointReadError(f"{path}: cannot read DCP metadata ({e.strerror or e})") from e
    except Exception as e:  # EOFError, UnpicklingError, RecursionError, bad opcode arguments, ...
        kind = "empty" if path.stat().st_size == 0 else "truncated or corrupt"
        raise CheckpointReadError(
            f"{path}: {kind} DCP metadata ({type(e).__name__}: {e}); the save did not finish or the "
            "file was damaged"
        ) from None
    return _check_metadata(md, path)


def read_metadata(step_dir: str | os.PathLike) -> Metadata:
    """The metadata of the DCP checkpoint in `step_dir` (its `.metadata`), read safely."""
    return read_metadata_file(Path(step_dir) / METADATA)


class SafeFileSystemReader(FileSystemReader):
    """FileSystemReader whose metadata is read with the allowlisting unpickler.

    `metadata` (already read by `read_metadata`) is reused, so DCP never reads the file a second
    time, and a bad file fails before DCP's fallback to per-rank metadata could hide the reason.
    """

    def __init__(self, path: str | os.PathLike, metadata: Metadata | None = None) -> None:
        super().__init__(path)
        self._metadata = metadata

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        rank = kwargs.get("rank")
        md = self._metadata if rank is None and self._metadata is not None else None
        if md is None:
            md = read_metadata_file(self._get_metadata_path(rank))
        if getattr(md, "storage_meta", None) is None:
            md.storage_meta = StorageMeta()
        md.storage_meta.load_id = self.load_id
        return md


def _short(e: BaseException) -> str:
    """The line of torch's long weights-only error that names the refused global."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    keys = ("GLOBAL", "WeightsUnpickler error", "nsupported")  # torch's wording varies by version
    named = [line for line in lines if any(k in line for k in keys)]
    return (named or lines or [type(e).__name__])[0]


class SafeLoadPlanner(dcp.DefaultLoadPlanner):
    """DefaultLoadPlanner that reads non-tensor entries with `torch.load(weights_only=True)`.

    Our byte entries (step, scheduler, loader, world size, optimizer hyper-parameters) are ints,
    floats, strings, lists and dicts, which weights-only loading admits; an entry holding any other
    object is a CheckpointReadError naming the data file and the key.
    """

    def __init__(self, step_dir: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step_dir = Path(step_dir)

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        fqn = read_item.dest_index.fqn
        try:
            obj = torch.load(value, weights_only=True)
        except Exception as e:
            info = (self.metadata.storage_data or {}).get(read_item.storage_index) if self.metadata else None
            where = self.step_dir / info.relative_path if info is not None else self.step_dir
            raise CheckpointReadError(
                f"{where}: entry {fqn!r} refused by weights-only loading ({_short(e)}): it is corrupt or "
                "holds more than plain data, so it was not written by this trainer (nothing in it was run)"
            ) from None
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[fqn], obj)
        else:
            self.state_dict[fqn] = obj


def first_failure(e: BaseException) -> BaseException:
    """The exception inside DCP's CheckpointException (failures: rank -> (exc, traceback)), preferring
    a CheckpointReadError of any rank; `e` itself when it wraps nothing."""
    failures = [f[0] if isinstance(f, tuple) else f for f in getattr(e, "failures", {}).values()]
    ours = [f for f in failures if isinstance(f, CheckpointReadError)]
    return (ours or failures or [e])[0]


def load(
    state: dict, step_dir: str | os.PathLike, *, no_dist: bool, metadata: Metadata | None = None
) -> None:
    """`dcp.load(state)` from `step_dir`, with safe metadata and byte entries.

    `metadata` is the caller's `read_metadata(step_dir)`, if it already has it. A CheckpointReadError
    is raised as itself (on every rank that hit it), not wrapped in DCP's CheckpointException; other
    failures propagate as DCP raises them.
    """
    md = metadata if metadata is not None else read_metadata(step_dir)
    reader = SafeFileSystemReader(step_dir, metadata=md)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load(state, storage_reader=reader, planner=SafeLoadPlanner(step_dir), no_dist=no_dist)
    except (Exception, CheckpointException) as e:  # the latter is a BaseException
        cause = first_failure(e)
        if isinstance(cause, CheckpointReadError):
            raise CheckpointReadError(str(cause)) from e
        raise
