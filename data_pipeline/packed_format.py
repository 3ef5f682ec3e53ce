"""The packed training-shard format (`andes-packed-v1`) shared by `andes-data pack` and the trainer.

A pack output directory holds Parquet shards of SHARD_SCHEMA rows (`tokens`: seq_len + 1 ids,
`cu_seqlens`: document starts then the count of real tokens) and `manifest.json` naming the format,
seq_len and the tokenizer (kind, name, sha256, n_vocab, special ids); see docs/contract.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

PACKED_FORMAT = "andes-packed-v1"
MANIFEST = "manifest.json"
SHARD_SCHEMA = pa.schema([("tokens", pa.list_(pa.int32())), ("cu_seqlens", pa.list_(pa.int32()))])


def read_manifest(path: Path | str) -> dict:
    """Read `manifest.json` of a pack output directory (or the file itself), checking its format."""
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no manifest; is {path} an `andes-data pack` output?")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != PACKED_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{file}: format {found!r}, expected {PACKED_FORMAT!r}")
    if isinstance(manifest.get("tokenizer"), dict):
        manifest["tokenizer"].setdefault("kind", "tiktoken")  # written before HF tokenizers were packed
    return manifest
