"""FineWeb's own line heuristics (Penedo et al. 2024, "The FineWeb Datasets", §3.6 "custom filters").

FineWeb added three filters on top of Gopher and C4, each chosen because it removed low-quality
pages that those missed. A page is dropped when

* at most 12% of its lines end in punctuation (`line_punct_ratio`; C4's per-line rule, relaxed to
  a page-level share),
* at least 10% of its characters sit in duplicated lines (`duplicate_line_chars`; Gopher's 0.2
  halved), or
* at least 67% of its lines are 30 characters or shorter (`short_lines`).

The paper gives the thresholds and the inclusive comparisons (<= 0.12, >= 0.1, >= 0.67); the
definitions follow datatrove's `FineWebQualityFilter` (src/datatrove/pipeline/filters/
fineweb_quality_filter.py) as released with FineWeb (2024), the code that built it, except:

* Lines are the non-empty lines with surrounding whitespace stripped (the `Doc.nonempty_lines`
  view). The 2024 code splits on "\n" and keeps blank and unstripped lines, so blank lines count
  as short lines without punctuation and "end. " does not end in punctuation; on text with one
  paragraph per line and no blank lines both agree, while with blank lines between paragraphs the
  2024 code would count half the lines as short.
* Duplicated-line characters: every copy of a line after its first counts with its length (as
  datatrove), over the characters of all lines. datatrove divides by the length of the text less
  its newlines, i.e. it also counts blank lines' and indentation whitespace.
* Default `char_duplicates_ratio` is the paper's 0.1; datatrove's default is 0.01, ten times
  stricter than the threshold FineWeb reports.
* datatrove also drops pages with more than 0.3 newlines per word ("list_ratio", words from its
  NLTK/spaCy word tokenizer). The paper does not list this rule, so `new_line_ratio` is off by
  default; when set, the `fineweb_new_line_ratio` column is added (newlines over whitespace-
  separated words, which are fewer than tokenizer words, so it runs a little above datatrove's).
* Punctuation is the 2024 stop set . ' " ! ? (the paper only says "punctuation").

Recent datatrove (0.10.1 checked) has moved further: it skips blank (but not unstripped) lines as
here, compares strictly (< 0.12, > 0.67, > 0.01), defaults `stop_chars` to a set of ~160 Unicode
terminal marks, and drops empty pages with reason "empty" (here: line_punct_ratio, the ratio is 0).

Checks are reported in datatrove's order: line_punct_ratio, short_lines, duplicate_line_chars,
list_ratio.
"""

from __future__ import annotations

import dataclasses
from operator import methodcaller

import pyarrow as pa

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, check_number, param, register

# datatrove FineWebQualityFilter `stop_chars`. Unlike C4's end marks it includes the single quote.
STOP_CHARS = [".", "'", '"', "!", "?"]


@register
@dataclasses.dataclass
class FineWebQualityFilter(Step):
    """FineWeb §3.6 line heuristics: punctuated-line share, duplicated-line chars, short-line share."""

    name = "fineweb"
    # Thresholds: FineWeb §3.6; parameter names as in datatrove's FineWebQualityFilter.
    line_punct_thr: float | None = param(0.12, "drop if the share of lines ending in stop_chars is <= this")
    line_punct_exclude_zero: bool = param(False, "keep pages where no line ends in stop_chars (datatrove)")
    stop_chars: list[str] = param(STOP_CHARS, "line endings counted as punctuation (datatrove's set)")
    short_line_thr: float | None = param(0.67, "drop if the share of short lines is >= this")
    short_line_length: int = param(30, "a line this long or shorter (in characters) is short")
    char_duplicates_ratio: float | None = param(
        0.1, "drop if the char share of repeated lines is >= this (paper: 0.1; datatrove: 0.01)"
    )
    new_line_ratio: float | None = param(
        None, "drop if newlines per word is > this (datatrove's list_ratio: 0.3; not in the paper)"
    )

    def __post_init__(self) -> None:
        check_number("line_punct_thr", self.line_punct_thr, 0.0, 1.0)
        check_number("short_line_thr", self.short_line_thr, 0.0, 1.0)
        check_number("char_duplicates_ratio", self.char_duplicates_ratio, 0.0, 1.0)
        if self.new_line_ratio is not None and (
            isinstance(self.new_line_ratio, bool)
            or not isinstance(self.new_line_ratio, (int, float))
            or self.new_line_ratio < 0
        ):
            raise ValueError(f"new_line_ratio={self.new_line_ratio!r}: expected a number >= 0 or None")
        length = self.short_line_length
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"short_line_length={length!r}: expected an integer >= 0")
        if not isinstance(self.line_punct_exclude_zero, bool):
            raise ValueError(
                f"line_punct_exclude_zero={self.line_punct_exclude_zero!r}: expected true or false"
            )
        stops = self.stop_chars
        if isinstance(stops, str) or not stops or not all(isinstance(s, str) and s for s in stops):
            raise ValueError(f"stop_chars={stops!r}: expected a non-empty list of non-empty strings")
        self.setup()

    def setup(self) -> None:
        self._ends_in_punct = methodcaller("endswith", tuple(self.stop_chars))

    def columns(self) -> dict[str, pa.DataType]:
        cols = {
            "fineweb_line_punct_ratio": pa.float32(),
            "fineweb_short_line_ratio": pa.float32(),
            "fineweb_char_dup_ratio": pa.float32(),
        }
        if self.new_line_ratio is not None:  # splitting every word costs more than the rest together
            cols["fineweb_new_line_ratio"] = pa.float32()
        return cols

    def apply(self, doc: Doc) -> str | None:
        lines = doc.nonempty_lines
        n_lines = len(lines)
        lengths = list(map(len, lines))
        total_chars = sum(lengths)
        # One division per share: k * (1 / n) can land above k / n (9 * (1/75) > 0.12) and flip
        # the inclusive thresholds of §3.6.
        punct_ratio = sum(map(self._ends_in_punct, lines)) / n_lines if n_lines else 0.0
        short_ratio = sum(map(self.short_line_length.__ge__, lengths)) / n_lines if n_lines else 0.0
        distinct = set(lines)
        # Characters of the copies after the first = all line characters - those of distinct lines.
        dup_chars = total_chars - sum(map(len, distinct)) if len(distinct) < n_lines else 0
        dup_ratio = dup_chars / total_chars if total_chars else 0.0
        ann = doc.annotations
        ann["fineweb_line_punct_ratio"] = punct_ratio
        ann["fineweb_short_line_ratio"] = short_ratio
        ann["fineweb_char_dup_ratio"] = dup_ratio
        new_line_ratio = 0.0
        if self.new_line_ratio is not None:
            n_words = len(doc.words)
            new_line_ratio = doc.text.count("\n") / n_words if n_words else 0.0
            ann["fineweb_new_line_ratio"] = new_line_ratio

        thr = self.line_punct_thr
        if thr is not None and punct_ratio <= thr and not (punct_ratio == 0 and self.line_punct_exclude_zero):
            return "line_punct_ratio"
        if self.short_line_thr is not None and short_ratio >= self.short_line_thr:
            return "short_lines"
        if self.char_duplicates_ratio is not None and dup_ratio >= self.char_duplicates_ratio:
            return "duplicate_line_chars"
        if self.new_line_ratio is not None and new_line_ratio > self.new_line_ratio:
            return "list_ratio"
        return None
