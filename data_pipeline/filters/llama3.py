"""The heuristic filters of Llama 3 (Dubey et al. 2024, §3.1.1 "Heuristic filtering").

The paper names three heuristics and gives no thresholds or code, so every number here is ours,
measured on the bundled corpus (data_pipeline/sample, Shakespeare) and the spam of tests/web_corpus.py;
each is a parameter, and every step annotates its metric so a run with drop=False can re-tune them:

- duplicated n-gram coverage (after Rae et al. 2021, Gopher) to remove *lines* of repeated content such
  as logging or error messages, which are long and unique and so escape line-level dedup;
- dirty-word counting (after Raffel et al. 2020, C4) to drop adult pages that domain blocklists miss;
- a KL divergence between a document's token distribution and the corpus' to drop documents with
  too many outlier tokens.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, param, register
from data_pipeline.filters.nsfw import WordCountStep

_DIGITS = str.maketrans("123456789", "000000000")


@register
@dataclasses.dataclass
class NgramCoverageFilter(Step):
    """Remove lines mostly made of repeated word n-grams; drop the document if too little is left.

    Interpretation (the paper has one sentence): the coverage of a line is the fraction of its word
    characters that lie in a repeated occurrence of an n-gram *of that same line*, Gopher's
    "duplicate n-gram character fraction" (Rae et al. 2021, Table A1) taken per line, since the paper
    removes lines and says they are long and unique (so repeated within themselves, not across the
    corpus). The first occurrence does not count and overlapping repeats count each character once
    (datatrove's find_all_duplicate skips ahead instead). A line repeating one message ("ERROR ...
    ERROR ...") is covered almost entirely, while running prose seldom repeats a 5-gram in a line.
    Lines with fewer than n + 1 words cannot repeat an n-gram and are kept: line dedup handles those.
    With drop=False the text is left as it is and only the annotations are written.
    """

    name = "ngram_coverage"
    # Gopher counts duplicated n-grams for n = 5..10 (Rae et al. 2021, Table A1): 5 is the smallest
    # size that prose seldom repeats; n = 3 also flags phrases like "one of the" in long lines.
    n: int = param(5, "words per n-gram")
    # Ours: over the bundled Shakespeare (lowercase, digits as 0) only 14 lines pass 0.2, the highest
    # a row of asterisks (0.83) and a shouted "Here, sir! here, sir! ..." (0.75); the CPython prose
    # of tests/web_corpus.py peaks at 0.26; lines of concatenated log or stack-trace messages reach
    # 0.92-0.95. Above half covered, a line consists of repeated content in the paper's sense.
    max_line_coverage: float = param(0.5, "remove lines with more repeated-n-gram character coverage")
    normalize: bool = param(True, "compare n-grams lowercased, digits as 0 (log lines differ in them)")
    # Ours: when more than half of the text was repeated lines, what is left is mostly a fragment.
    max_removed_frac: float = param(0.5, "drop documents losing more than this fraction of word characters")

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        for field in ("max_line_coverage", "max_removed_frac"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise ValueError(f"{field} must lie in [0, 1], got {getattr(self, field)}")

    def columns(self) -> dict[str, pa.DataType]:
        return {
            "ngram_coverage": pa.float32(),
            "ngram_coverage_lines_removed": pa.int32(),
            "ngram_coverage_removed_frac": pa.float32(),
        }

    def line_coverage(self, words: list[str]) -> int:
        """Characters of `words` inside a repeat of an earlier n-gram of the same list."""
        n = self.n
        if len(words) <= n or len(set(words)) == len(words):
            return 0  # no word repeats, so no n-gram can
        grams = list(zip(*(words[i:] for i in range(n)), strict=False))  # shorter tails end it
        if len(set(grams)) == len(grams):
            return 0
        seen: set[tuple[str, ...]] = set()
        covered = marked_to = 0
        for i, gram in enumerate(grams):
            if gram in seen:
                # Count only the words of this occurrence not already counted by an overlapping one.
                covered += sum(map(len, words[max(i, marked_to) : i + n]))
                marked_to = i + n
            else:
                seen.add(gram)
        return covered

    def apply(self, doc: Doc) -> str | None:
        text = doc.text
        raw_lines = text.split("\n")
        compared = text.lower().translate(_DIGITS).split("\n") if self.normalize else raw_lines
        total = covered = removed_chars = 0
        removed: list[int] = []
        for index, line in enumerate(compared):
            words = line.split()
            chars = sum(map(len, words))
            total += chars
            line_covered = self.line_coverage(words)
            covered += line_covered
            if line_covered and line_covered > self.max_line_coverage * chars:
                removed.append(index)
                removed_chars += chars
        removed_frac = removed_chars / total if total else 0.0
        doc.annotations["ngram_coverage"] = covered / total if total else 0.0
        doc.annotations["ngram_coverage_lines_removed"] = len(removed)
        doc.annotations["ngram_coverage_removed_frac"] = removed_frac
        if not removed:
            return None
        # Order: nothing left, then too much removed.
        if removed_chars == total:
            return "all_lines_removed"
        if removed_frac > self.max_removed_frac:
            return "too_much_removed"
        if self.drop:
            gone = set(removed)
            doc.text = "\n".join(line for i, line in enumerate(raw_lines) if i not in gone)
        return None


@register
@dataclasses.dataclass
class DirtyWordsFilter(WordCountStep):
    """Drop documents dense in dirty words: adult pages that domain blocklists do not cover.

    Same LDNOOBW lists and matcher as the `badwords` step (the list C4 used, which the paper cites via
    Raffel et al. 2020), but with a density bound instead of C4's any-word rule, which the paper's
    "counting" suggests and which spares literature: Shakespeare says "bastard" 203 times.
    """

    name = "dirty_words"
    # Ours (the paper gives no number): the densest bundled Shakespeare scene has 10 hits in 208
    # words (0.048), no scene passes 0.05 with 3+ hits; adult spam pages run far above 0.1.
    max_ratio: float | None = param(0.05, "drop documents whose dirty words / words exceeds this (None: off)")
    ratio_min_count: int = param(3, "apply max_ratio only from this many dirty words (spares short docs)")


# Words and runs of punctuation, lowercased: punctuation junk ("|||", "»»") becomes its own token.
_WORD_TOKENS = re.compile(r"\w+|[^\w\s]+")
_UNITS = ("word", "llama3")


@cache
def _llama3_tokenizer() -> Any:
    """The shipped Llama 3 tokenizer, loaded once per process (0.5 s)."""
    from data_pipeline.tokenizer import Tokenizer

    return Tokenizer.from_file()


def load_reference(path: str | Path) -> dict[str, int]:
    """Token counts from a JSON object {token: count} or a Parquet file with columns token, count."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{path}: reference file not found")
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        if not {"token", "count"} <= set(table.column_names):
            raise ValueError(f"{path}: need columns 'token' and 'count' (found: {table.column_names})")
        counts = dict(zip(table["token"].to_pylist(), table["count"].to_pylist(), strict=True))
    else:
        counts = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(counts, dict):
            raise ValueError(f"{path}: expected a JSON object mapping token to count")
    if not counts or any(not isinstance(c, int) or c < 0 for c in counts.values()):
        raise ValueError(f"{path}: counts must be a non-empty mapping to non-negative integers")
    return {str(token): count for token, count in counts.items()}


@register
@dataclasses.dataclass
class TokenKLFilter(Step):
    """Drop documents whose token distribution is far from the corpus': KL(document || reference).

    The reference is a unigram distribution, counted from the input itself by `fit` (the executor runs
    it over every input shard before the workers start) or read from `reference_path`. With p the
    document's token frequencies and q the reference with additive smoothing,
    q(t) = (count(t) + alpha) / (N + alpha * (V + 1)), where every token missing from the reference gets
    the mass of a single extra type, KL = sum_t p(t) log(p(t) / q(t)) in nats. Spam, word salad, tag
    soup and encoded blobs repeat rare or unseen tokens and score high. Short documents score higher
    too (their p is concentrated on few tokens): run this after the length/word-count filters.
    """

    name = "token_kl"
    # Ours: words, not the Llama 3 BPE the paper presumably used. Cutting words is ~3x faster than BPE,
    # needs no tokenizer file, and separates better on the bundled data: BPE cuts a base64 blob into
    # common pieces (4.8 nats, near prose's 4.0) where words see unseen tokens (9.2 nats).
    unit: str = param("word", "tokens: 'word' (lowercased words and punctuation runs) or 'llama3' (BPE ids)")
    reference_path: str | None = param(None, "reference counts (.json {token: count} or .parquet); None: fit")
    # Ours (the paper gives none), fit and scored on the bundled Shakespeare plus tests/web_corpus.py
    # (CPython reference prose and spam): English prose scores 0.6-3.6 nats, the highest legitimate
    # document is Henry V's scene in French (4.06), the lowest spam is cookie boilerplate (4.94, then
    # repeated log lines 5.2, word salad 5.3, menus/hashtags/adult/SEO spam 6-7.5). 4.5 splits the gap.
    max_kl: float = param(4.5, "drop documents whose KL divergence from the reference exceeds this (nats)")
    alpha: float = param(1.0, "additive smoothing count given to every token, seen or not")
    max_vocab: int = param(200_000, "keep the reference's most frequent tokens only (bounds fit memory)")
    fit_max_tokens: int = param(100_000_000, "fit reads documents until it has counted this many tokens")
    fit_sample_rate: float = param(1.0, "fraction of documents fit counts (picked by a hash of the text)")

    def __post_init__(self) -> None:
        if self.unit not in _UNITS:
            raise ValueError(f"unit must be one of {_UNITS}, got {self.unit!r}")
        if self.max_kl < 0 or self.alpha <= 0:
            raise ValueError(f"need max_kl >= 0 and alpha > 0, got {self.max_kl}, {self.alpha}")
        if self.max_vocab < 1 or self.fit_max_tokens < 1:
            raise ValueError(
                f"max_vocab and fit_max_tokens must be >= 1, got {self.max_vocab}, {self.fit_max_tokens}"
            )
        if not 0.0 < self.fit_sample_rate <= 1.0:
            raise ValueError(f"fit_sample_rate must lie in (0, 1], got {self.fit_sample_rate}")
        if self.reference_path is not None and not Path(self.reference_path).expanduser().is_file():
            raise ValueError(f"reference_path {self.reference_path}: file not found")
        self._counts: dict[Any, int] | None = None
        self._log_q: dict[Any, float] = {}
        self._log_unseen = 0.0
        self._tokenizer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Workers get the counts and rebuild the rest in setup(); the tiktoken handle does not pickle.
        state = self.__dict__.copy()
        state["_log_q"] = {}
        state["_tokenizer"] = None
        return state

    def columns(self) -> dict[str, pa.DataType]:
        return {"token_kl": pa.float32(), "token_kl_tokens": pa.int32()}

    def needs_fit(self) -> bool:
        return self.reference_path is None

    def tokens(self, text: str) -> list[Any]:
        if self.unit == "word":
            return _WORD_TOKENS.findall(text.lower())
        if self._tokenizer is None:
            self._tokenizer = _llama3_tokenizer()
        return self._tokenizer.encode(text)

    def fit(self, texts: Iterable[str]) -> None:
        """Count tokens over (a sample of) the corpus, keeping at most 2 * max_vocab types in memory."""
        counts: Counter[Any] = Counter()
        seen = 0
        threshold = int(self.fit_sample_rate * 2**32)
        for text in texts:
            if threshold < 2**32 and zlib.crc32(text.encode("utf-8", "replace")) >= threshold:
                continue
            tokens = self.tokens(text)
            counts.update(tokens)
            seen += len(tokens)
            if len(counts) > 2 * self.max_vocab:
                # Space-saving prune: the rarest types go (ties: first seen stays), counts stay exact.
                counts = Counter(dict(counts.most_common(self.max_vocab)))
            if seen >= self.fit_max_tokens:
                break
        if not counts:
            raise ValueError("token_kl: fit saw no tokens (empty corpus, or fit_sample_rate too small)")
        self._counts = dict(counts.most_common(self.max_vocab))
        self._log_q = {}

    def save_reference(self, path: str | Path) -> None:
        """Write the fitted counts as .json or .parquet (by suffix), to reuse with `reference_path`."""
        if self._counts is None:
            raise ValueError("token_kl: nothing to save, call fit() first")
        path = Path(path).expanduser()
        tokens = [str(t) for t in self._counts]
        if path.suffix == ".parquet":
            table = pa.table({"token": tokens, "count": pa.array(list(self._counts.values()), pa.int64())})
            pq.write_table(table, path)
        else:
            counts = dict(zip(tokens, self._counts.values(), strict=True))
            path.write_text(json.dumps(counts, ensure_ascii=False), encoding="utf-8")

    def setup(self) -> None:
        if self._counts is None:
            if self.reference_path is None:
                raise ValueError("token_kl: no reference distribution (give reference_path or call fit())")
            counts = load_reference(self.reference_path)
            if self.unit == "llama3":
                counts = {int(t): c for t, c in counts.items()}
            self._counts = dict(islice(sorted(counts.items(), key=lambda kv: -kv[1]), self.max_vocab))
        if not self._log_q:
            norm = math.log(sum(self._counts.values()) + self.alpha * (len(self._counts) + 1))
            self._log_q = {t: math.log(c + self.alpha) - norm for t, c in self._counts.items()}
            self._log_unseen = math.log(self.alpha) - norm

    def kl(self, tokens: list[Any]) -> float:
        """KL(p_doc || q_reference) in nats for a non-empty token list."""
        if not self._log_q:
            self.setup()
        log_q, unseen = self._log_q, self._log_unseen
        n = len(tokens)
        # sum_t (c/n) log((c/n) / q) = (1/n) sum_t c (log c - log q) - log n
        total = sum(c * (math.log(c) - log_q.get(t, unseen)) for t, c in Counter(tokens).items())
        return total / n - math.log(n)

    def apply(self, doc: Doc) -> str | None:
        tokens = self.tokens(doc.text)
        doc.annotations["token_kl_tokens"] = len(tokens)
        if not tokens:
            doc.annotations["token_kl"] = None
            return None
        kl = self.kl(tokens)
        doc.annotations["token_kl"] = kl
        return "high_kl" if kl > self.max_kl else None
