"""Gopher's heuristic filters for MassiveText (Rae et al. 2021, "Scaling Language Models", App. A.1.1).

Two steps, in the paper's terms:

* `gopher_quality` drops documents that do not read like natural language: too few or too many
  words, implausible mean word length, hash/ellipsis spam, bullet or ellipsis lists, too few words
  with a letter, and no English function words.
* `gopher_repetition` (Table A1) drops documents that repeat themselves: duplicate lines and
  paragraphs, one dominating 2/3/4-gram, or many characters inside repeated 5..10-grams.

The paper names the measures but not how to count, so the definitions used here are spelled out in
each step's docstring together with where datatrove's `GopherQualityFilter` /
`GopherRepetitionFilter` (src/datatrove/pipeline/filters/gopher_*_filter.py) count differently.
Both steps compute every measure for every document (the `gopher_*` columns), so thresholds can be
re-tuned from the columns without re-running; the drop reason is the first failing check in the
order the columns are declared.
"""

from __future__ import annotations

import dataclasses
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate, filterfalse
from typing import Any

import numpy as np
import pyarrow as pa

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, check_number, param, register

# Gopher App. A.1.1: "at least two of the following English words: the, be, to, of, and, that, have, with".
STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]
# The paper does not list its bullet characters. datatrove checks "•" and "-"; RedPajama-V2's
# `rps_lines_start_with_bulletpoint` uses a set of Unicode bullets, squares, triangles and the en dash.
# We take both, plus "*" (Markdown lists); the em dash is left out because it opens dialogue lines.
BULLETS = ["•", "‣", "◦", "●", "○", "▪", "▫", "■", "□", "▶", "►", "-", "–", "*"]
ELLIPSES = ("...", "…")
# Punctuation a stop word may carry and still count ("of,", "that."): tokens are whitespace-split.
_TRAILING_PUNCT = ("", ",", ".", ";", ":", "!", "?")


def _ngram_thresholds(name: str, value: Mapping[Any, Any] | Sequence[Sequence[Any]]) -> dict[int, float]:
    """Normalise {n: max_fraction} (keys may be YAML/JSON strings) or [[n, max_fraction], ...]."""
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else value
    out: dict[int, float] = {}
    try:
        for n, frac in items:
            n_int = int(n)
            if n_int < 1 or isinstance(n, float) and n != n_int:
                raise ValueError
            check_number(f"{name}[{n_int}]", frac)
            if frac is None:
                raise ValueError
            out[n_int] = float(frac)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}={value!r}: expected {{n: max_fraction}} with integer n >= 1") from e
    return dict(sorted(out.items()))


def _share(part: int, whole: int) -> float:
    """part / whole, 0 for an empty whole; one division, so 3/10 is exactly the literal 0.3."""
    return part / whole if whole else 0.0


def _too_low(value: float, limit: float | None) -> bool:
    return limit is not None and value < limit


def _too_high(value: float, limit: float | None) -> bool:
    return limit is not None and value > limit


@register
@dataclasses.dataclass
class GopherQualityFilter(Step):
    """Gopher's quality rules: word count and length, symbols, list-like lines, letters, stop words.

    Definitions (a *token* is a whitespace-separated string, the paper's "word"):

    * words: tokens with at least one letter or digit (`str.isalnum`). Tokens made only of
      punctuation or symbols ("-", "|", "...", "©") are not words, so they neither count towards the
      50-word minimum nor pull the mean length down; a word's length includes attached punctuation
      ("end." is 4). datatrove also drops punctuation-only tokens, but its NLTK/spaCy tokenizer
      splits punctuation off words first, so its means run ~0.1-0.2 characters lower on prose.
    * hash / ellipsis ratio: occurrences of "#" and of "..." plus "…" per token. datatrove divides
      by its tokens too, but its tokenizer splits "#tag" into "#" and "tag", halving the ratio of a
      hashtag list.
    * bullet / ellipsis lines: share of non-empty lines that start with one of `bullets` / end with
      "..." or "…", surrounding whitespace ignored. datatrove divides by all lines, blank ones
      included, which lowers both shares on blank-line-separated text.
    * alpha words: share of tokens with at least one letter (`str.isalpha`). Every token counts,
      so symbol-separated menus ("Home | Shop | Cart") score low, as the rule intends.
    * stop words: how many *distinct* `stop_words` occur ("at least two of the following words"),
      matched in lower, Title or UPPER case, optionally followed by one of , . ; : ! ?.
      datatrove counts occurrences of the exact lowercase form, so "the ... the" passes there.
    """

    name = "gopher_quality"
    # Every default is Gopher App. A.1.1 (datatrove's defaults are the same); None turns a check off.
    min_words: int | None = param(50, "drop documents with fewer words (Gopher: 50)")
    max_words: int | None = param(100_000, "drop documents with more words (Gopher: 100,000)")
    min_mean_word_length: float | None = param(3.0, "drop if the mean word length is below (Gopher: 3)")
    max_mean_word_length: float | None = param(10.0, "drop if the mean word length is above (Gopher: 10)")
    max_hash_ratio: float | None = param(0.1, "drop if '#' per token is above (Gopher: 0.1)")
    max_ellipsis_ratio: float | None = param(0.1, "drop if '...' and '…' per token is above (Gopher: 0.1)")
    max_bullet_lines: float | None = param(0.9, "drop if more lines open with a bullet (Gopher: 0.9)")
    max_ellipsis_lines: float | None = param(0.3, "drop if more lines end in an ellipsis (Gopher: 0.3)")
    min_alpha_words: float | None = param(0.8, "drop if fewer tokens have a letter (Gopher: 0.8)")
    min_stop_words: int | None = param(2, "drop if fewer distinct stop words occur (Gopher: 2)")
    stop_words: list[str] = param(STOP_WORDS, "Gopher's English stop words (replace for other languages)")
    bullets: list[str] = param(BULLETS, "line openings that mark a bullet point")

    def __post_init__(self) -> None:
        check_number("min_words", self.min_words, integer=True)
        check_number("max_words", self.max_words, integer=True)
        check_number("min_mean_word_length", self.min_mean_word_length)
        check_number("max_mean_word_length", self.max_mean_word_length)
        bounds = [(self.min_words, self.max_words), (self.min_mean_word_length, self.max_mean_word_length)]
        for lo, hi in bounds:
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"minimum {lo} is above maximum {hi}")
        check_number("max_hash_ratio", self.max_hash_ratio)
        check_number("max_ellipsis_ratio", self.max_ellipsis_ratio)
        check_number("max_bullet_lines", self.max_bullet_lines, hi=1.0)
        check_number("max_ellipsis_lines", self.max_ellipsis_lines, hi=1.0)
        check_number("min_alpha_words", self.min_alpha_words, hi=1.0)
        check_number("min_stop_words", self.min_stop_words, integer=True)
        for field in ("stop_words", "bullets"):
            value = getattr(self, field)
            if isinstance(value, str) or not all(isinstance(s, str) and s for s in value):
                raise ValueError(f"{field}={value!r}: expected a list of non-empty strings")
        self.setup()

    def setup(self) -> None:
        # Every accepted spelling of a stop word maps to the word, so one set intersection with the
        # tokens finds the distinct stop words of a document.
        self._stop_word_of = {
            form + punct: word
            for word in self.stop_words
            for form in (word, word.capitalize(), word.upper())
            for punct in _TRAILING_PUNCT
        }
        self._stop_forms = frozenset(self._stop_word_of)
        self._bullets = tuple(self.bullets)

    def columns(self) -> dict[str, pa.DataType]:
        return {
            "gopher_word_count": pa.int32(),
            "gopher_mean_word_length": pa.float32(),
            "gopher_hash_ratio": pa.float32(),
            "gopher_ellipsis_ratio": pa.float32(),
            "gopher_bullet_lines": pa.float32(),
            "gopher_ellipsis_lines": pa.float32(),
            "gopher_alpha_words": pa.float32(),
            "gopher_stop_words": pa.int32(),
        }

    def apply(self, doc: Doc) -> str | None:
        tokens = doc.words
        n_tokens = len(tokens)
        n_words, word_chars, n_alpha = _count_words(tokens)
        text = doc.text
        lines = doc.nonempty_lines
        n_lines = len(lines)
        mean_length = _share(word_chars, n_words)
        hash_ratio = _share(text.count("#"), n_tokens)
        ellipsis_ratio = _share(text.count("...") + text.count("…"), n_tokens)
        bullet_lines = _share(sum(1 for line in lines if line.startswith(self._bullets)), n_lines)
        ellipsis_lines = _share(sum(1 for line in lines if line.endswith(ELLIPSES)), n_lines)
        alpha_words = _share(n_alpha, n_tokens)
        stop_words = len({self._stop_word_of[t] for t in self._stop_forms.intersection(tokens)})

        doc.annotations.update(
            gopher_word_count=n_words,
            gopher_mean_word_length=mean_length,
            gopher_hash_ratio=hash_ratio,
            gopher_ellipsis_ratio=ellipsis_ratio,
            gopher_bullet_lines=bullet_lines,
            gopher_ellipsis_lines=ellipsis_lines,
            gopher_alpha_words=alpha_words,
            gopher_stop_words=stop_words,
        )
        if _too_low(n_words, self.min_words):
            return "too_few_words"
        if _too_high(n_words, self.max_words):
            return "too_many_words"
        if _too_low(mean_length, self.min_mean_word_length):
            return "short_words"
        if _too_high(mean_length, self.max_mean_word_length):
            return "long_words"
        if _too_high(hash_ratio, self.max_hash_ratio):
            return "too_many_hashes"
        if _too_high(ellipsis_ratio, self.max_ellipsis_ratio):
            return "too_many_ellipses"
        if _too_high(bullet_lines, self.max_bullet_lines):
            return "bullet_lines"
        if _too_high(ellipsis_lines, self.max_ellipsis_lines):
            return "ellipsis_lines"
        if _too_low(alpha_words, self.min_alpha_words):
            return "too_few_alpha_words"
        if _too_low(stop_words, self.min_stop_words):
            return "too_few_stop_words"
        return None


def _count_words(tokens: list[str]) -> tuple[int, int, int]:
    """(words, characters in words, tokens with a letter) of whitespace tokens.

    Most tokens are plain letters; `str.isalpha` sorts those in C and only the rest (punctuation
    attached, digits, symbols) is looked at one by one.
    """
    others = list(filterfalse(str.isalpha, tokens))
    n_alpha = len(tokens) - len(others)
    n_words = len(tokens)
    word_chars = sum(map(len, tokens))
    for token in others:
        core = token.strip(string.punctuation)
        if core.isalpha() or any(map(str.isalpha, core)):
            n_alpha += 1
        elif not any(map(str.isalnum, core)):
            n_words -= 1  # punctuation or symbols only: not a word
            word_chars -= len(token)
    return n_words, word_chars, n_alpha


# Words from which ngram_char_fractions switches to arrays: below, NumPy's per-call overhead costs
# more than the walk (about 2,000 words on a 2-core x86 box), and the walk's memory is a few MB at most.
ARRAY_MIN_WORDS = 2_000
# The repetition thresholds on line and paragraph shares; each column is the field's name less "max_".
_UNIT_FIELDS = ("max_dup_line_frac", "max_dup_line_char_frac", "max_dup_para_frac", "max_dup_para_char_frac")


@register
@dataclasses.dataclass
class GopherRepetitionFilter(Step):
    """Gopher's repetition rules (Table A1): duplicate lines, paragraphs and n-grams.

    Definitions (lines are the non-empty lines with surrounding whitespace stripped; paragraphs are
    separated by blank lines and keep their inner line breaks; n-grams are over whitespace tokens;
    "characters" are the characters of the units being compared, so each fraction is exact and at
    most 1 except the top n-gram's):

    * duplicate line / paragraph fraction: share of lines (paragraphs) whose text occurs more than
      once in the document, every copy counted; character fraction: their characters over the
      characters of all lines (paragraphs). The paper's "fraction that are duplicates, and the
      fraction of characters contained within those duplicates" is read like its n-gram rule, where
      all occurrences of a repeated n-gram count. datatrove counts only the repeats after the first
      copy (a length once per repeat), divides characters by len(text) with whitespace, does not
      strip lines and splits lines on "\\n+" (whitespace-only lines are lines there).
    * top n-gram character fraction (n = 2, 3, 4): characters of the most frequent n-gram (its
      tokens, no spaces) times its number of occurrences, over all token characters; 0 when no
      n-gram occurs twice; among equally frequent n-grams the one with most characters. Overlapping
      occurrences each count, so "a a a a" scores 1.5 for "a a". datatrove scores a document whose
      n-grams are all distinct too (a 3-word text fails top-2), breaks ties by first occurrence,
      counts the joining spaces and divides by len(text).
    * duplicate n-gram character fraction (n = 5..10): characters of the tokens covered by any
      occurrence of an n-gram occurring more than once, each token counted once however many
      occurrences overlap it, over all token characters. datatrove walks the text, skips the first
      occurrence, and after each repeat jumps n tokens ahead, so it misses the first copy and
      repeats that overlap a counted one; it also divides by len(text).
    """

    name = "gopher_repetition"
    # Defaults: Gopher Table A1 (datatrove uses the same numbers); None turns a check off.
    max_dup_line_frac: float | None = param(0.30, "drop if more lines are duplicated (Gopher: 0.30)")
    max_dup_line_char_frac: float | None = param(0.20, "drop if duplicated lines hold more chars (0.20)")
    max_dup_para_frac: float | None = param(0.30, "drop if more paragraphs are duplicated (0.30)")
    max_dup_para_char_frac: float | None = param(0.20, "drop if duplicated paragraphs hold more chars (0.20)")
    max_top_ngram_char_frac: dict[int, float] = param(
        {2: 0.20, 3: 0.18, 4: 0.16}, "{n: max char share of the most frequent n-gram}; Gopher Table A1"
    )
    max_dup_ngram_char_frac: dict[int, float] = param(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        "{n: max char share of repeated n-grams}; Gopher Table A1",
    )

    def __post_init__(self) -> None:
        for field in _UNIT_FIELDS:
            check_number(field, getattr(self, field), hi=1.0)
        for field in ("max_top_ngram_char_frac", "max_dup_ngram_char_frac"):
            setattr(self, field, _ngram_thresholds(field, getattr(self, field)))

    def columns(self) -> dict[str, pa.DataType]:
        cols = {"gopher_" + field.removeprefix("max_"): pa.float32() for field in _UNIT_FIELDS}
        cols.update({f"gopher_top_{n}gram_char_frac": pa.float32() for n in self.max_top_ngram_char_frac})
        cols.update({f"gopher_dup_{n}gram_char_frac": pa.float32() for n in self.max_dup_ngram_char_frac})
        return cols

    def apply(self, doc: Doc) -> str | None:
        line_frac, line_char_frac = duplicate_fractions(doc.nonempty_lines)
        para_frac, para_char_frac = duplicate_fractions(doc.paragraphs)
        top, dup = ngram_char_fractions(doc.words, self.max_top_ngram_char_frac, self.max_dup_ngram_char_frac)
        ann = doc.annotations
        ann["gopher_dup_line_frac"] = line_frac
        ann["gopher_dup_line_char_frac"] = line_char_frac
        ann["gopher_dup_para_frac"] = para_frac
        ann["gopher_dup_para_char_frac"] = para_char_frac
        for n, value in top.items():
            ann[f"gopher_top_{n}gram_char_frac"] = value
        for n, value in dup.items():
            ann[f"gopher_dup_{n}gram_char_frac"] = value

        if _too_high(line_frac, self.max_dup_line_frac):
            return "dup_lines"
        if _too_high(line_char_frac, self.max_dup_line_char_frac):
            return "dup_line_chars"
        if _too_high(para_frac, self.max_dup_para_frac):
            return "dup_paragraphs"
        if _too_high(para_char_frac, self.max_dup_para_char_frac):
            return "dup_paragraph_chars"
        for n, limit in self.max_top_ngram_char_frac.items():
            if top[n] > limit:
                return f"top_{n}gram"
        for n, limit in self.max_dup_ngram_char_frac.items():
            if dup[n] > limit:
                return f"dup_{n}grams"
        return None


def duplicate_fractions(items: list[str]) -> tuple[float, float]:
    """(share of items whose text occurs more than once, their share of the items' characters)."""
    if len(set(items)) == len(items):
        return 0.0, 0.0
    dup_items = dup_chars = 0
    for item, n in Counter(items).items():
        if n > 1:
            dup_items += n
            dup_chars += n * len(item)
    return _share(dup_items, len(items)), _share(dup_chars, sum(map(len, items)))


def ngram_char_fractions(
    words: list[str], top_ns: Iterable[int], dup_ns: Iterable[int]
) -> tuple[dict[int, float], dict[int, float]]:
    """Top n-gram and duplicate n-gram character fractions of a token list (see GopherRepetitionFilter).

    Both ways give the same numbers: a walk over Python tuples, fastest on a typical page, and NumPy
    arrays above `ARRAY_MIN_WORDS`, whose memory stays near 60 bytes per word however repetitive the
    text (the walk needs several hundred bytes per word on spam, gigabytes for one 50 MB document).
    """
    if len(words) >= ARRAY_MIN_WORDS:
        return _ngram_fractions_arrays(words, set(top_ns), set(dup_ns))
    return _ngram_fractions_walk(words, set(top_ns), set(dup_ns))


def _ngram_fractions_walk(
    words: list[str], top_ns: set[int], dup_ns: set[int]
) -> tuple[dict[int, float], dict[int, float]]:
    """`ngram_char_fractions` by counting n-gram tuples, visiting only positions that may repeat.

    Only duplicated n-grams matter to either measure, and an m-gram can only be duplicated where
    every n-gram inside it (n < m) is: if the m-grams at i and j are equal, so are the n-grams at
    i+k and j+k. So after one full count at the smallest n, each larger n counts only the positions
    whose first and last smaller n-gram were duplicated; all occurrences of a duplicated m-gram are
    among them, so its count is exact, and an m-gram seen once there occurs once in the document.
    On prose this leaves a small fraction of the tokens to look at for n >= 3. Where most positions
    hold a repeat instead (spam), every n is counted in full, equal words are made one object so
    that equal n-grams compare by identity, and coverage comes from the few n-grams seen once, so
    no step walks all positions in Python.
    """
    top = dict.fromkeys(top_ns, 0.0)
    dup = dict.fromkeys(dup_ns, 0.0)
    prefix = list(accumulate(map(len, words), initial=0))  # prefix[i]: characters of words[:i]
    total_chars = prefix[-1]
    prev_n, prev_starts = 0, None  # starts of the previous n's repeats; None: count all positions
    shared_words = False
    ns = sorted(top_ns | dup_ns)
    for n in ns:
        positions = len(words) - n + 1
        if positions < 2 or total_chars == 0:
            break  # no n-gram can repeat, hence no larger one either
        full = prev_starts is None or 2 * len(prev_starts) > positions
        if full:
            grams: list[tuple[str, ...]] = list(zip(*(words[k:] for k in range(n)), strict=False))
            starts: Iterable[int] = range(positions)
        else:  # only where the n-gram's first and last (prev_n)-grams were duplicated
            prev_set = set(prev_starts)
            shift = n - prev_n
            starts = [i for i in prev_starts if i + shift in prev_set]
            grams = [tuple(words[i : i + n]) for i in starts]
        counts = Counter(grams)
        if len(counts) == len(grams):
            break  # every n-gram is unique, hence every larger one too
        repeated = {gram for gram, k in counts.items() if k > 1}
        if n in top_ns:
            most = max(counts.values())
            chars = max(sum(map(len, gram)) for gram in repeated if counts[gram] == most)
            top[n] = most * chars / total_chars
        if n == ns[-1] and n not in dup_ns:
            break  # positions of repeats are only needed by the duplicate measure and larger n
        singles = len(counts) - len(repeated)  # each n-gram seen once holds one position
        if full and 2 * singles < positions:  # mostly repeats: count every position from now on
            prev_starts = None
            if not shared_words:  # equal words as one object: repeated n-grams compare by identity
                one_of = dict(zip(words, words, strict=True))
                words, shared_words = list(map(one_of.__getitem__, words)), True
            if n in dup_ns:
                once = dict(zip(grams, starts, strict=True))  # a single n-gram's only position
                single_starts = sorted(once[gram] for gram, k in counts.items() if k == 1)
                uncovered = _uncovered_chars(single_starts, n, positions, prefix)
                dup[n] = (total_chars - uncovered) / total_chars
        else:
            prev_starts = [i for i, gram in zip(starts, grams, strict=True) if gram in repeated]
            if n in dup_ns:
                dup[n] = _covered_chars(prev_starts, n, prefix) / total_chars
        prev_n = n
    return top, dup


def _word_numbers(words: list[str]) -> np.ndarray:
    """Each word's first position (int32): equal words, equal numbers. A dict of the distinct words
    needs a third of the memory of Arrow's dictionary encoding, whose pool also keeps it afterwards."""
    first: dict[str, int] = {}
    return np.fromiter(map(first.setdefault, words, range(len(words))), np.int32, len(words))


def _number(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element: the rank of its value among the distinct values, and how often the value occurs."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    first = np.empty(len(keys), dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    del keys
    sizes = np.diff(np.append(np.flatnonzero(first), len(first))).astype(np.int32)
    numbers = np.empty(len(first), dtype=np.int32)
    numbers[order] = np.cumsum(first, dtype=np.int32) - 1
    return numbers, sizes[numbers]


def _ngram_fractions_arrays(
    words: list[str], top_ns: set[int], dup_ns: set[int]
) -> tuple[dict[int, float], dict[int, float]]:
    """`ngram_char_fractions` with each n-gram as a number: exact (no hashing), memory linear in words.

    The (n+1)-gram at p is numbered from the n-gram's number at p and the number of word p+n, which
    fit one int64 together. As in the walk, an (n+1)-gram can only repeat where the n-grams at p and
    p+1 both do, so only those positions are carried on.
    """
    top = dict.fromkeys(top_ns, 0.0)
    dup = dict.fromkeys(dup_ns, 0.0)
    ns = sorted(top_ns | dup_ns)
    prefix = np.zeros(len(words) + 1, dtype=np.int64)  # prefix[i]: characters of words[:i]
    np.cumsum(np.fromiter(map(len, words), np.int64, len(words)), out=prefix[1:])
    total = int(prefix[-1])
    if not ns or len(words) <= ns[0] or total == 0:
        return top, dup
    ids = _word_numbers(words)
    starts = np.arange(len(words), dtype=np.int32)  # positions whose `size`-gram may repeat
    (grams, counts), size = _number(ids), 1
    for n in ns:
        while size < n and len(starts):
            keep = (counts[:-1] > 1) & (counts[1:] > 1) & (starts[1:] == starts[:-1] + 1)
            starts, grams = starts[:-1][keep], grams[:-1][keep]
            size += 1
            grams, counts = _number(grams.astype(np.int64) * len(words) + ids[starts + (size - 1)])
        if not len(counts) or counts.max() < 2:
            break  # every n-gram is unique, hence every larger one too
        most = int(counts.max())
        if n in top_ns:
            chars = prefix[starts + n] - prefix[starts]
            top[n] = most * int(chars[counts == most].max()) / total
        if n in dup_ns:
            edges = np.zeros(len(words) + 1, dtype=np.int32)  # +1 where a repeat begins, -1 past its end
            repeated = starts[counts > 1]
            edges[repeated] += 1
            edges[repeated + n] -= 1
            covered = np.cumsum(edges[:-1]) > 0
            dup[n] = int(np.diff(prefix)[covered].sum()) / total
    return top, dup


def _covered_chars(starts: list[int], n: int, prefix: list[int]) -> int:
    """Characters of the tokens covered by n-grams starting at sorted `starts`, each token once."""
    covered = 0
    run_begin = run_end = starts[0]
    for i in starts:
        if i > run_end:  # a gap: the run of overlapping n-grams before it is complete
            covered += prefix[run_end] - prefix[run_begin]
            run_begin = i
        run_end = i + n
    return covered + prefix[run_end] - prefix[run_begin]


def _uncovered_chars(single_starts: list[int], n: int, positions: int, prefix: list[int]) -> int:
    """Characters of the tokens that no repeated n-gram covers, from the sorted starts of the others.

    Token j lies in the n-grams starting at max(0, j-n+1)..min(j, positions-1); it is uncovered when
    all of them are single, i.e. that window lies inside one run a..b of consecutive single starts.
    """
    uncovered = 0
    i = 0
    while i < len(single_starts):
        a = b = single_starts[i]
        i += 1
        while i < len(single_starts) and single_starts[i] == b + 1:
            b = single_starts[i]
            i += 1
        first = a + n - 1 if a > 0 else 0  # tokens before it also lie in the n-gram at a-1
        last = b if b < positions - 1 else len(prefix) - 2  # the last n-gram's tokens up to the end
        if first <= last:
            uncovered += prefix[last + 1] - prefix[first]
    return uncovered
