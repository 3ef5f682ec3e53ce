"""Group keys of exact and URL deduplication: 128-bit hashes of normalised text or canonical URLs.

Exact dedup groups documents whose normalised text (the MinHash normalisation: case, digits,
diacritics, punctuation and whitespace folded, `minhash.normalize_bytes`) is equal, so copies that
differ only in formatting fall together, and keeps the first document of each group. URL dedup
(Llama 3, §3.1.1: "we perform URL-level de-duplication across the entire dataset. We keep the most
recent version for pages corresponding to each URL") groups documents by canonical URL and keeps the
one with the newest timestamp.

Hashes are BLAKE2b cut to 128 bits, as two uint64 halves: at 10^10 documents the chance of any
collision is ~10^-19, so equal hashes mean equal keys. A document with no words (or no URL) gets
no key and is never grouped: documents that normalise to nothing ("!!!" and "???") are not copies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_pipeline.dedup.minhash import MinHashConfig, normalize_bytes

NO_ORDER = np.iinfo(np.int64).max
"""Keeper order of a document without a usable timestamp: it loses to every dated version."""


def _hash128(data: bytes) -> tuple[int, int]:
    digest = hashlib.blake2b(data, digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")


def _hashes(items: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(high, low, valid) arrays; None or empty items are invalid (hash 0)."""
    hi = np.zeros(len(items), dtype=np.uint64)
    lo = np.zeros(len(items), dtype=np.uint64)
    valid = np.zeros(len(items), dtype=bool)
    for i, item in enumerate(items):
        if item:
            hi[i], lo[i] = _hash128(item)
            valid[i] = True
    return hi, lo, valid


def text_hashes(
    texts: Sequence[str | None], cfg: MinHashConfig | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """128-bit hashes of normalised texts (raw UTF-8 when `cfg` is None) and which texts have words."""
    if cfg is None:
        return _hashes([t.encode("utf-8") if t and t.strip() else None for t in texts])
    return _hashes([normalize_bytes(t, cfg) if t else None for t in texts])


def canonical_url(url: str) -> str:
    """The URL with its scheme and host lower-cased, the fragment and a default port dropped.

    These never change which page is served; the path and query are kept as they are (case and
    parameter order can matter to a server).
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host; compare such URLs as plain strings
        return url
    host = (parts.hostname or "").rstrip(".")
    port = parts.port if parts.port is not None else None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if port is None or port == default else f"{host}:{port}"
    if parts.username or parts.password:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def url_hashes(urls: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """128-bit hashes of canonical URLs and which documents have a (non-blank) URL."""
    return _hashes([canonical_url(u).encode("utf-8") if u and u.strip() else None for u in urls])


def keeper_order(column: pa.Array | pa.ChunkedArray, where: str) -> np.ndarray:
    """int64 keeper order from a timestamp column: smaller = preferred, i.e. minus the time.

    Accepts Arrow timestamps, dates, integers (e.g. Unix seconds), floats and ISO-8601 strings;
    null or unparseable-as-null values get `NO_ORDER`. `where` names the file for errors.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    dtype = column.type
    try:
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
            column = pc.cast(column, pa.timestamp("us"))
            dtype = column.type
        if pa.types.is_date(dtype):
            column, dtype = column.cast(pa.timestamp("us")), pa.timestamp("us")
        if pa.types.is_timestamp(dtype):  # to one unit, so shards stored in s and ms compare right
            values = pc.cast(pc.cast(column, pa.timestamp("us", tz=dtype.tz)), pa.int64())
        elif pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
            values = pc.cast(column, pa.int64(), safe=False)
        elif pa.types.is_null(dtype):
            values = pa.nulls(len(column), pa.int64())
        else:
            raise ValueError(f"type {dtype} is not a timestamp, date, number or ISO-8601 string")
    except (pa.ArrowInvalid, ValueError) as e:
        raise ValueError(f"{where}: timestamp column: {e}") from None
    order = -np.asarray(values.fill_null(0), dtype=np.int64)
    order[np.asarray(values.is_null())] = NO_ORDER
    return order
