"""Line-level de-duplication within a bucket of documents (CCNet; Llama 3 §3.1.1).

Web pages share boilerplate lines (navigation, cookie banners, "Share this article") that
document-level dedup cannot remove, because the pages around them differ. Llama 3 (§3.1.1,
"Line-level de-duplication"): "we remove lines that appeared more than 6 times in each bucket of 30M
documents", after CCNet (Wenzek et al. 2020, "Deduplication"), which hashes normalised lines and
removes every copy of a line seen before (`cc_net/dedup.py`, two passes: collect hashes, then remove).

Here a bucket is the documents still kept when one `process` call sees them: the executor reads
shards in batches of at least `batch_docs()` rows, so a bucket holds up to `bucket_docs` documents,
fewer at the end of a shard or when earlier steps dropped some; buckets never span shards.
Pass 1 counts normalised lines by a 64-bit BLAKE2b hash (stable across processes and runs, unlike
Python's salted `hash()`); pass 2 removes the lines counted more than `max_occurrences` times,
every copy including the first, as CCNet does. The result depends only on the bucket's documents
and their order, so reruns are byte-identical.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from hashlib import blake2b

import pyarrow as pa

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, param, register

# CCNet's dedup normalisation (`cc_net/text_normalizer.py::normalize_for_dedup`): lower-case, every
# Unicode digit to "0", then delete its list of Unicode punctuation and the non-printing characters
# U+0000-U+001F and U+007F-U+009F. ASCII punctuation is kept, as in CCNet. The newline is kept here
# only because whole documents are normalised at once and then split.
_CCNET_PUNCT = "，。、„”“«»１」「《》´∶：？！（）；–—．～’…━〈〉【】％►"
_NON_PRINTING = "".join(chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if c != 0x0A)
_DIGIT_RE = re.compile(r"\d")
_DELETE_RE = re.compile("[" + re.escape(_CCNET_PUNCT + _NON_PRINTING) + "]")
# ASCII-only documents (most of an English crawl) take a bytes path: one C-level translate call.
_ASCII_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")
_ASCII_DELETE = bytes(c for c in [*range(0x00, 0x20), 0x7F] if c != 0x0A)


def normalized_lines(text: str) -> list[bytes]:
    """CCNet-normalised UTF-8 of each "\\n"-separated line of `text`, stripped, in order."""
    lowered = text.lower()
    if lowered.isascii():
        raw = lowered.encode("ascii").translate(_ASCII_DIGITS, _ASCII_DELETE)
        return [line.strip() for line in raw.split(b"\n")]
    # Digits before punctuation, as in CCNet: a full-width "１" is a digit first.
    normalized = _DELETE_RE.sub("", _DIGIT_RE.sub("0", lowered))
    # Unlike CCNet we strip after deleting, so a control character at a line's edge cannot keep two
    # copies of a line apart. Lower-casing never adds or removes a newline, so lines stay aligned.
    return [line.strip().encode("utf-8") for line in normalized.split("\n")]


def line_hash(normalized: bytes) -> bytes:
    return blake2b(normalized, digest_size=8).digest()


@register
@dataclasses.dataclass
class LineDedup(Step):
    """Remove lines repeated more than `max_occurrences` times within a bucket of documents.

    Counting: by default a line counts once per document that contains it (how many pages carry
    it). That targets cross-page boilerplate, which is the point of the step; repetition inside one
    page is the job of the Gopher repetition filters, which drop the page instead of silently
    thinning it, and one spammy page cannot then strip a line from six legitimate ones. CCNet counts
    every occurrence (`count_once_per_doc=False`); its threshold of 1 makes the difference small
    there, Llama 3's 6 does not.

    Lines whose normalised form is empty (blank lines, lone punctuation) are never counted or
    removed: they are layout, not content. With `drop=False` the step only annotates how many lines
    it would remove and leaves text and documents alone.
    """

    name = "line_dedup"
    # Llama 3 §3.1.1: "more than 6 times". CCNet removes any line seen twice (threshold 1).
    max_occurrences: int = param(6, "remove lines counted more than this many times in a bucket")
    # The paper's bucket is 30M documents: corpus scale, for a dedicated dedup stage that shuffles
    # line hashes across workers. In a filter step one worker holds a whole bucket and its hashes in
    # memory (measured: ~55 MB over the documents themselves for 10,000 documents of 3 kB).
    bucket_docs: int = param(10_000, "documents per bucket (Llama 3: 30M, corpus-scale)")
    min_line_chars: int = param(0, "leave lines with fewer normalised characters alone (0: count all)")
    count_once_per_doc: bool = param(True, "count a line once per document containing it (False: CCNet)")

    def __post_init__(self) -> None:
        if self.max_occurrences < 1:
            raise ValueError(f"max_occurrences must be >= 1, got {self.max_occurrences}")
        if self.bucket_docs < 1:
            raise ValueError(f"bucket_docs must be >= 1, got {self.bucket_docs}")
        if self.min_line_chars < 0:
            raise ValueError(f"min_line_chars must be >= 0, got {self.min_line_chars}")

    def columns(self) -> dict[str, pa.DataType]:
        return {"line_dedup_removed": pa.int32()}

    def batch_docs(self) -> int | None:
        return self.bucket_docs

    def process(self, docs: list[Doc]) -> None:
        kept = [doc for doc in docs if doc.drop_reason is None]
        for start in range(0, len(kept), self.bucket_docs):
            self.dedup_bucket(kept[start : start + self.bucket_docs])

    def line_hashes(self, text: str) -> list[bytes | None]:
        """Hash of each line of `text`, None for lines that are neither counted nor removed."""
        lines = normalized_lines(text)
        floor = self.min_line_chars
        if floor <= 1:
            return [line_hash(line) if line else None for line in lines]
        # UTF-8 bytes >= characters, so only long-enough non-ASCII lines need decoding to measure.
        return [
            line_hash(line)
            if len(line) >= floor and (line.isascii() or len(line.decode("utf-8")) >= floor)
            else None
            for line in lines
        ]

    def dedup_bucket(self, bucket: list[Doc]) -> None:
        """Two passes over one bucket: count line hashes, then remove the over-represented lines."""
        counts: Counter[bytes | None] = Counter()
        hashes = []
        for doc in bucket:
            doc_hashes = self.line_hashes(doc.text)
            hashes.append(doc_hashes)
            counts.update(set(doc_hashes) if self.count_once_per_doc else doc_hashes)
        counts.pop(None, None)  # lines left alone
        frequent = {h for h, n in counts.items() if n > self.max_occurrences}
        for doc, doc_hashes in zip(bucket, hashes, strict=True):
            if frequent.isdisjoint(doc_hashes):
                doc.annotations["line_dedup_removed"] = 0
                continue
            lines = doc.text.split("\n")
            kept_lines = [line for line, h in zip(lines, doc_hashes, strict=True) if h not in frequent]
            doc.annotations["line_dedup_removed"] = len(lines) - len(kept_lines)
            if not self.drop:
                continue
            remaining = "\n".join(kept_lines)
            if remaining.strip():
                doc.text = remaining
            else:
                doc.drop_reason = f"{self.name}:empty_after_line_dedup"
