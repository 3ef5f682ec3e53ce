"""Document length bounds: the cheapest filter, and a guard before the expensive ones."""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, param, register


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
