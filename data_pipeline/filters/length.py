"""Document length bounds: the cheapest filters, and guards before the expensive ones.

`doc_size` opens every filter stage (`stages.with_size_step`): the later steps hold views of a
document (words, lines, n-gram counts) that cost a multiple of its size, so one runaway document
(a 50 MB log dump) must not reach them.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, param, register

# 10 MB of UTF-8: ten times the largest English page gopher_quality keeps (100,000 words of at most
# 10 characters, about 1.1 MB), so the default steps lose nothing to it; its job is to bound memory,
# about 25 times the document in the default steps (docs/data_pipeline.md).
MAX_DOC_BYTES = 10_000_000


@register
@dataclasses.dataclass
class LengthFilter(Step):
    """Drop documents shorter or longer than character bounds (empty and runaway documents)."""

    name = "length"
    min_chars: int = param(1, "drop documents with fewer characters (surrounding whitespace not counted)")
    max_chars: int | None = param(None, "drop documents with more characters (None: no limit)")

    def __post_init__(self) -> None:
        if self.min_chars < 0 or (self.max_chars is not None and self.max_chars < self.min_chars):
            raise ValueError(f"need 0 <= min_chars <= max_chars, got {self.min_chars}, {self.max_chars}")

    def columns(self) -> dict[str, pa.DataType]:
        return {"length_chars": pa.int64()}

    def apply(self, doc: Doc) -> str | None:
        n = len(doc.text.strip())
        doc.annotations["length_chars"] = n
        if n < self.min_chars:
            return "too_short"
        if self.max_chars is not None and n > self.max_chars:
            return "too_long"
        return None


def utf8_size_over(text: str, limit: int) -> bool:
    """Whether `text` takes more than `limit` bytes as UTF-8, encoding it only when length cannot tell."""
    if len(text) > limit:  # every character takes at least one byte
        return True
    if 4 * len(text) <= limit:  # and at most four
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


@register
@dataclasses.dataclass
class DocSizeFilter(Step):
    """Drop documents above a size in UTF-8 bytes; runs first in every filter stage."""

    name = "doc_size"
    max_bytes: int | None = param(
        MAX_DOC_BYTES, "drop documents of more bytes of UTF-8 text (None: no limit)", bounds="[1, inf)"
    )

    def apply(self, doc: Doc) -> str | None:
        if self.max_bytes is not None and utf8_size_over(doc.text, self.max_bytes):
            return "too_large"
        return None
