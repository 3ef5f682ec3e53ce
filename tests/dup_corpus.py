"""Synthetic corpus with planted duplicates and exact ground truth, for near-duplicate detection.

`make_corpus` writes prose-like documents whose words follow a Zipf law over a 32k-word vocabulary:
the ~3k words of the Python language reference shipped with CPython (`pydoc_data.topics`, ranked by
their frequency there), then pronounceable synthetic words. With that many types two unrelated
documents share a word 5-gram only by rare accident (Jaccard ~0), so the similar pairs are the
planted ones. About 10% of the documents are group bases; each group's copies follow its base:

- "exact": byte-identical text, or ("variant") text differing only in case, punctuation, accents and
  whitespace, which normalises to the same shingles (`minhash.normalize`);
- "near": words replaced, inserted and deleted at random positions until the Jaccard similarity of
  the word 5-gram sets (`minhash.shingles`) to the base is within `NEAR_TOLERANCE` of a target.

URLs are unique, except that in groups with `group % SHARED_URL_EVERY == 0` every copy reuses its
base's URL (a page re-crawled while it was edited). Copies are always younger than their base, so
"keep the oldest" keeps the base. `similar_pairs` gives the exact pairs above a Jaccard threshold for
any texts and `pair_scores` grades a clustering against them. Run this file to time both.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import functools
import itertools
import pydoc_data.topics
import random
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_pipeline.dedup.minhash import MinHashConfig, normalize_bytes, shingles

VOCAB_SIZE = 32768
ZIPF_EXPONENT = 1.0  # Zipf's law for English word frequencies: p(rank) ~ rank^-1
NEAR_TOLERANCE = 0.01
"""A near copy's measured Jaccard to its base lies within this of its target."""
MIN_WORDS = 50
"""Shortest document: cutting one word must move a near copy's Jaccard by less than the tolerance."""
SHARED_URL_EVERY = 4
DEFAULT_COPY_FRACTIONS: Mapping[str | float, float] = {
    "exact": 0.04,
    "variant": 0.04,
    0.95: 0.03,
    0.85: 0.03,
    0.7: 0.03,
    0.5: 0.03,
}
"""Share of the corpus made of each copy kind: "exact" byte copies, "variant" normalise-equal copies,
near copies keyed by target Jaccard. With 10% bases, 70% of the documents are unrelated."""

# Prose shape: mean sentence length in words; chance of a comma after a word, of "?" ending a
# sentence, of a sentence end also ending the paragraph.
_SENTENCE_WORDS = 16
_P_COMMA, _P_QUESTION, _P_PARAGRAPH = 0.06, 0.08, 0.2
# A token is a word in one of 10 forms: (capitalised, suffix), index (cap * 5 + suffix) * V + word.
_SUFFIXES = ("", ",", ".", "?", ".\n\n")
_PLAIN, _PERIOD, _QUESTION, _PARA_END = 0, 2, 3, 4
_REPLACE, _INSERT, _DELETE = 0, 1, 2
_ATTEMPTS = 20  # random edit sequences tried per near copy before giving up
# Variant copies: share of tokens given each cosmetic change, and the characters used.
_P_VARIANT = 0.08
_OPENERS, _CLOSERS = ('"', "(", "«", "“", "'"), (",", ";", "!", "…", ")", "”", ":")
_ACCENTS = {"a": "á", "e": "é", "i": "í", "o": "ó", "u": "ü"}
_SPACES = ("  ", "\t", "\n", " \u00a0", "\u2003")
# Timestamps: bases in [2013-01-01, 2023-01-01); copies a day or more apart, within 2 years of the base.
_TS_START, _TS_BASE_END, _DAY = 1_356_998_400, 1_672_531_200, 86_400
_TLDS = ("com", "org", "net", "io", "info", "co.uk", "de")
# similar_pairs: polynomial byte hash (odd base, the FNV prime, so invertible mod 2^64), length salt,
# MurmurHash3 fmix64 multipliers; normalised bytes hashed per pass; pairs or words per NumPy pass.
_POLY = 0x100000001B3
_POLY_INV = pow(_POLY, -1, 1 << 64)
_LEN_MUL = np.uint64(0x9E3779B97F4A7C15)
_FMIX = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_POWERS: list[np.ndarray] = [np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64)]
_TEXT_CHUNK = 1 << 22
_CHUNK = 1 << 22


@dataclasses.dataclass(frozen=True)
class PlantedDoc:
    """One document and what was planted: its group (-1 if unrelated) and similarity to the base."""

    id: str
    text: str
    url: str
    timestamp: int
    group: int
    target: float | None
    """Planted Jaccard to the base: 1.0 for exact copies, the target for near ones, None otherwise."""
    kind: str
    """One of "unrelated", "base", "exact", "near"."""
    jaccard: float | None = None
    """Measured exact Jaccard of the shingle sets to the base (None for bases and unrelated)."""


# ---------------------------------------------------------------------------------------------
# Vocabulary and prose
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Vocab:
    words: list[str]
    cdf: np.ndarray
    cdf_list: list[float]
    guide: np.ndarray
    """guide[b] = first rank whose cdf exceeds b / len(guide): where inverse-CDF sampling starts."""
    forms: np.ndarray
    """Object array of every token form, indexed (cap * 5 + suffix) * V + word."""

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Zipf ranks by inverse CDF, a guide table then a few steps (= searchsorted, 5x faster)."""
        u = rng.random(size)
        ranks = self.guide[(u * len(self.guide)).astype(np.int64)]
        todo = np.flatnonzero(self.cdf[ranks] <= u)
        while len(todo):
            ranks[todo] += 1
            todo = todo[self.cdf[ranks[todo]] <= u[todo]]
        return ranks

    def draw_one(self, rnd: random.Random) -> int:
        return bisect.bisect_right(self.cdf_list, rnd.random())

    def render(self, ids: Sequence[int], kinds: Sequence[int]) -> str:
        tokens = self.forms[np.asarray(kinds) * len(self.words) + np.asarray(ids)].tolist()
        return " ".join(tokens).replace("\n\n ", "\n\n")


def _synthetic_words(n: int, exclude: set[str]) -> list[str]:
    """`n` distinct pronounceable lower-case words, the same on every run (fixed seed)."""
    onsets = ["", *"bcdfghjklmnprstvwz", "br", "ch", "dr", "gr", "pr", "sh", "st", "th", "tr"]
    vowels, codas = [*"aeiou", "ai", "ea", "ou", "io"], ["", "", *"nrslmt", "nd", "st"]
    rnd = random.Random(20240601)
    out: dict[str, None] = {}
    while len(out) < n:
        syllables = (
            rnd.choice(onsets) + rnd.choice(vowels) + rnd.choice(codas) for _ in range(rnd.randint(2, 3))
        )
        if (word := "".join(syllables)) not in exclude:
            out[word] = None
    return list(out)


@functools.cache
def vocabulary() -> _Vocab:
    """Real words ranked by frequency in the CPython language reference, then synthetic words.

    Every word is lower-case ASCII letters: its own normal form and a single shingle token.
    """
    text = " ".join(pydoc_data.topics.topics.values()).lower()
    counts = collections.Counter(w for w in re.findall(r"[a-z]+", text) if len(w) > 1 or w == "a")
    real = sorted(counts, key=lambda w: (-counts[w], w))
    words = real + _synthetic_words(VOCAB_SIZE - len(real), set(real))
    weights = np.arange(1, len(words) + 1, dtype=np.float64) ** -ZIPF_EXPONENT
    cdf = np.cumsum(weights) / weights.sum()
    cdf[-1] = 1.0  # every u in [0, 1) lands on a word
    guide = np.searchsorted(cdf, np.arange(4 * len(words)) / (4 * len(words)), side="right")
    forms = [(w.capitalize() if cap else w) + suffix for cap in (0, 1) for suffix in _SUFFIXES for w in words]
    return _Vocab(words, cdf, cdf.tolist(), guide, np.array(forms, dtype=object))


def _restrict(kinds: np.ndarray, cfg: MinHashConfig) -> np.ndarray:
    """Token kinds without the capitals or punctuation `cfg` would keep (so ids stay its words)."""
    if not cfg.remove_punctuation:
        kinds = kinds - kinds % len(_SUFFIXES)
    return kinds if cfg.lowercase else kinds % len(_SUFFIXES)


def _prose(lengths: np.ndarray, rng: np.random.Generator, vocab: _Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Word ids and token kinds of documents of the given lengths, concatenated.

    Sentences end at random (geometric lengths) and at every document end and start with a capital;
    some sentence ends also end a paragraph (never a document's last word).
    """
    total = int(lengths.sum())
    ids = vocab.draw(rng, total)
    doc_end = np.cumsum(lengths) - 1
    u = rng.random((3, total))
    sentence_end = u[0] < 1 / _SENTENCE_WORDS
    sentence_end[doc_end] = True
    suffix = np.where(u[1] < _P_COMMA, 1, _PLAIN)
    suffix[sentence_end] = np.where(u[1] < _P_QUESTION, _QUESTION, _PERIOD)[sentence_end]
    paragraph = sentence_end & (u[2] < _P_PARAGRAPH)
    paragraph[doc_end] = False
    suffix[paragraph] = _PARA_END
    cap = np.ones(total, dtype=np.int64)
    cap[1:] = sentence_end[:-1]
    return ids, cap * len(_SUFFIXES) + suffix


# ---------------------------------------------------------------------------------------------
# Copies
# ---------------------------------------------------------------------------------------------


class _Editor:
    """A copy of a base under word edits, with its n-gram multiset and Jaccard kept up to date.

    An edit at position p changes only the n-grams starting in [p - n + 1, p]: they are removed,
    the word list is edited, and those starting in [p - n + 1, p + delta] are added (delta = +1 for
    an insert, -1 for a delete), so each edit costs O(n), not a rebuild of the set.
    """

    def __init__(self, ids: list[int], kinds: list[int], n: int, base: dict[tuple[int, ...], int]) -> None:
        self.words, self.kinds, self.n, self.base = list(ids), list(kinds), n, base
        self.grams = dict(base)  # n-gram -> how often the copy holds it
        self.shared = len(base)  # distinct copy n-grams also in the base

    def _starts(self, lo: int, hi: int) -> range:
        return range(max(0, lo), min(hi, len(self.words) - self.n) + 1)

    def apply(self, op: int, u: float, word: int) -> None:
        """Edit op at fraction u of the text (an insert may go after the last word)."""
        w, n, grams = self.words, self.n, self.grams
        p = min(int(u * (len(w) + (op == _INSERT))), len(w) - (op != _INSERT))
        for s in self._starts(p - n + 1, p):
            g = tuple(w[s : s + n])
            if grams[g] > 1:
                grams[g] -= 1
            else:
                del grams[g]
                self.shared -= g in self.base
        if op == _REPLACE:
            w[p] = word
        elif op == _INSERT:
            w.insert(p, word)
            self.kinds.insert(p, _PLAIN)
        else:
            del w[p], self.kinds[p]
        for s in self._starts(p - n + 1, p + (0, 1, -1)[op]):
            g = tuple(w[s : s + n])
            if g in grams:
                grams[g] += 1
            else:
                grams[g] = 1
                self.shared += g in self.base

    def score(self) -> float:
        return self.shared / (len(self.base) + len(self.grams) - self.shared)


def _near_copy(
    ids: list[int], kinds: list[int], target: float, rnd: random.Random, vocab: _Vocab, n: int
) -> tuple[list[int], list[int], float]:
    """Word ids and kinds of a copy whose n-gram Jaccard to the base is within NEAR_TOLERANCE of target.

    Word ids map one-to-one to normalised words, so this Jaccard is that of `minhash.shingles` sets.
    Scattered edits move it in steps of ~2n / |shingles|, too coarse for the tolerance, so when the
    first edit count at or below target + tolerance overshoots, the copy instead gets one edit fewer
    and loses words at its end, each cut removing one n-gram.
    """
    lo, hi = target - NEAR_TOLERANCE, target + NEAR_TOLERANCE
    base = dict(collections.Counter(zip(*(ids[j:] for j in range(n)), strict=False)))
    for _ in range(_ATTEMPTS):
        edits: list[tuple[int, float, int]] = []
        copy = _Editor(ids, kinds, n, base)
        while copy.score() > hi and len(edits) < len(ids):
            edits.append((rnd.randrange(3), rnd.random(), vocab.draw_one(rnd)))
            copy.apply(*edits[-1])
        if copy.score() < lo:
            copy = _Editor(ids, kinds, n, base)
            for edit in edits[:-1]:
                copy.apply(*edit)
            while copy.score() > hi and len(copy.words) > 3 * len(ids) // 4:
                copy.apply(_DELETE, 1.0, 0)
        if lo <= copy.score() <= hi:
            k = copy.kinds
            k[0] = len(_SUFFIXES) + k[0] % len(_SUFFIXES)  # capital first word
            if k[-1] % len(_SUFFIXES) not in (_PERIOD, _QUESTION):
                k[-1] += _PERIOD - k[-1] % len(_SUFFIXES)
            return copy.words, k, copy.score()
    raise RuntimeError(f"no near copy within {NEAR_TOLERANCE} of Jaccard {target} in {_ATTEMPTS} tries")


def _variant(tokens: list[str], rnd: random.Random, cfg: MinHashConfig) -> str:
    """The tokens with cosmetic changes that `normalize` undoes, for the flags `cfg` turns on.

    `_P_VARIANT` of the tokens get each change: upper or swapped case, a punctuation mark before or
    after (not on paragraph ends), an accented vowel; as many spaces become other whitespace.
    """
    toks, seps = list(tokens), [" "] * (len(tokens) - 1)
    k = max(1, round(_P_VARIANT * len(toks)))
    if cfg.lowercase:
        for i in rnd.sample(range(len(toks)), k):
            toks[i] = toks[i].upper() if rnd.random() < 0.5 else toks[i].swapcase()
    if cfg.remove_punctuation:
        for i in rnd.sample(range(len(toks)), k):
            if "\n" not in toks[i]:
                toks[i] = (
                    rnd.choice(_OPENERS) + toks[i] if rnd.random() < 0.5 else toks[i] + rnd.choice(_CLOSERS)
                )
    if cfg.strip_diacritics:
        for i in rnd.sample(range(len(toks)), k):
            j = min((toks[i].find(v) for v in _ACCENTS if v in toks[i]), default=-1)
            if j >= 0:
                toks[i] = toks[i][:j] + _ACCENTS[toks[i][j]] + toks[i][j + 1 :]
    for i in rnd.sample(range(len(seps)), k):
        seps[i] = rnd.choice(_SPACES)
    text = "".join(itertools.chain.from_iterable(zip(toks, seps, strict=False))) + toks[-1]
    return text.replace("\n\n ", "\n\n")


def _copies(
    text: str,
    ids: np.ndarray,
    kinds: np.ndarray,
    specs: list[str | float],
    rnd: random.Random,
    cfg: MinHashConfig,
) -> list[tuple[str, float, str, float]]:
    """(text, target, kind, measured Jaccard) of each copy of one base."""
    vocab, out = vocabulary(), []
    for spec in specs:
        if spec == "exact":
            out.append((text, 1.0, "exact", 1.0))
        elif spec == "variant":
            copy = _variant(vocab.forms[kinds * VOCAB_SIZE + ids].tolist(), rnd, cfg)
            copy = copy if copy != text else copy + "\n"
            if normalize_bytes(copy, cfg) != normalize_bytes(text, cfg):
                raise RuntimeError("a variant copy does not normalise to its base")
            out.append((copy, 1.0, "exact", 1.0))
        else:
            w, k, jac = _near_copy(ids.tolist(), kinds.tolist(), float(spec), rnd, vocab, cfg.ngram_size)
            out.append((vocab.render(w, _restrict(np.asarray(k), cfg)), float(spec), "near", jac))
    return out


# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------


def _copy_plan(
    n_docs: int, base_fraction: float, copy_fractions: Mapping[str | float, float]
) -> tuple[int, list]:
    """Number of bases and the list of copy specs ("exact", "variant" or a target)."""
    if not 0 <= base_fraction <= 1:
        raise ValueError(f"base_fraction must be in [0, 1], got {base_fraction}")
    specs: list[str | float] = []
    for key, frac in copy_fractions.items():
        target_ok = not isinstance(key, str | bool) and 2 * NEAR_TOLERANCE <= key <= 1 - NEAR_TOLERANCE
        if key not in ("exact", "variant") and not target_ok:
            raise ValueError(
                f"copy_fractions key must be 'exact', 'variant' or a target in [0.02, 0.99]: {key!r}"
            )
        if not 0 <= frac <= 1:
            raise ValueError(f"copy_fractions[{key!r}] must be in [0, 1], got {frac}")
        specs += [key] * round(frac * n_docs)
    n_bases = min(round(base_fraction * n_docs), len(specs)) if specs else 0
    if n_bases + len(specs) > n_docs:
        raise ValueError(f"{n_bases} bases + {len(specs)} copies exceed n_docs={n_docs}")
    return n_bases, specs


def make_corpus(
    n_docs: int,
    seed: int = 0,
    words_per_doc: tuple[int, int] = (150, 400),
    copy_fractions: Mapping[str | float, float] = DEFAULT_COPY_FRACTIONS,
    *,
    base_fraction: float = 0.1,
    cfg: MinHashConfig = MinHashConfig(),  # noqa: B008 (frozen, never mutated)
) -> list[PlantedDoc]:
    """`n_docs` documents: unrelated ones and group bases, each base followed by its copies.

    Every base gets one copy while copies last, the rest go to random bases; `copy_fractions` is
    explained at `DEFAULT_COPY_FRACTIONS`. Lengths are uniform in `words_per_doc` (near copies move a
    little). Same arguments, same corpus; ids are "doc-0000000" upwards in list order.
    """
    lo, hi = words_per_doc
    if not MIN_WORDS <= lo <= hi:
        raise ValueError(f"words_per_doc must satisfy {MIN_WORDS} <= lo <= hi, got {words_per_doc}")
    if n_docs < 0:
        raise ValueError(f"n_docs must be >= 0, got {n_docs}")
    n_bases, specs = _copy_plan(n_docs, base_fraction, copy_fractions)
    rng, rnd, vocab = np.random.default_rng(seed), random.Random(seed), vocabulary()
    rnd.shuffle(specs)
    copies_of: list[list[str | float]] = [[] for _ in range(n_bases)]
    for j, spec in enumerate(specs):
        copies_of[j if j < n_bases else rnd.randrange(n_bases)].append(spec)
    n_orig = n_docs - len(specs)
    is_base = np.zeros(n_orig, dtype=bool)
    is_base[rng.choice(n_orig, n_bases, replace=False)] = True
    lengths = rng.integers(lo, hi + 1, n_orig)
    stamps = rng.integers(_TS_START, _TS_BASE_END, n_orig).tolist()
    w = vocab.words  # URL of position i: two host words, a TLD, a section word and a slug word
    parts = rng.integers(0, VOCAB_SIZE, (n_docs, 5)).tolist()
    urls = [
        f"https://www.{w[a]}{w[b]}.{_TLDS[t % len(_TLDS)]}/{w[c % 3000]}/{w[d]}-{i}"
        for i, (a, b, c, d, t) in enumerate(parts)
    ]
    out: list[PlantedDoc] = []
    group = 0
    chunk = max(1, (1 << 20) // hi)  # documents per vectorised batch, ~1M words
    for c0 in range(0, n_orig, chunk):
        ids, kinds = _prose(lengths[c0 : c0 + chunk], rng, vocab)
        kinds = _restrict(kinds, cfg)
        tokens = vocab.forms[kinds * VOCAB_SIZE + ids].tolist()
        ends = np.cumsum(lengths[c0 : c0 + chunk]).tolist()
        for i, (a, b) in enumerate(zip([0, *ends[:-1]], ends, strict=True)):
            text = " ".join(tokens[a:b]).replace("\n\n ", "\n\n")
            base_url, ts = urls[len(out)], stamps[c0 + i]
            if not is_base[c0 + i]:
                out.append(PlantedDoc(f"doc-{len(out):07d}", text, base_url, ts, -1, None, "unrelated"))
                continue
            out.append(PlantedDoc(f"doc-{len(out):07d}", text, base_url, ts, group, None, "base"))
            step = max(2 * _DAY, 2 * 365 * _DAY // len(copies_of[group]))
            for copy, target, kind, jac in _copies(text, ids[a:b], kinds[a:b], copies_of[group], rnd, cfg):
                ts += rnd.randrange(_DAY, step)
                url = base_url if group % SHARED_URL_EVERY == 0 else urls[len(out)]
                out.append(PlantedDoc(f"doc-{len(out):07d}", copy, url, ts, group, target, kind, jac))
            group += 1
    return out


def write_shards(
    docs: Sequence[PlantedDoc], out_dir: str | Path, n_shards: int, shuffle_seed: int | None = None
) -> list[Path]:
    """Parquet shards `shard-00000.parquet`... (id, text, url, timestamp int64) of near-equal size.

    Without `shuffle_seed` the corpus order is kept, so a group mostly sits in one shard; a seed
    permutes the documents first, so copies land in other shards than their base.
    """
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = np.arange(len(docs))
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(docs))
    fields = {"id": pa.string(), "text": pa.string(), "url": pa.string(), "timestamp": pa.int64()}
    paths = []
    for i, part in enumerate(np.array_split(order, n_shards)):
        rows = [docs[j] for j in part.tolist()]
        columns = {name: pa.array([getattr(d, name) for d in rows], t) for name, t in fields.items()}
        paths.append(out / f"shard-{i:05d}.parquet")
        pq.write_table(pa.table(columns), paths[-1])
    return paths


# ---------------------------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------------------------


def jaccard(a: str, b: str, cfg: MinHashConfig = MinHashConfig()) -> float:  # noqa: B008
    """Exact Jaccard similarity of the shingle sets; 0.0 when neither text has a shingle."""
    sa, sb = set(shingles(a, cfg)), set(shingles(b, cfg))
    union = len(sa | sb)
    return len(sa & sb) / union if union else 0.0


def _range_keys(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each byte range data[s:e], equal for equal bytes wherever they sit.

    Polynomial in P over prefix sums, rescaled by P^-s, salted with the length, then fmix64.
    """
    if len(_POWERS[0]) < len(data):
        size = 1 << (len(data) - 1).bit_length()
        forward, inverse = np.full(size, _POLY, dtype=np.uint64), np.full(size, _POLY_INV, dtype=np.uint64)
        forward[0] = inverse[0] = 1
        _POWERS[:] = [np.cumprod(forward, dtype=np.uint64), np.cumprod(inverse, dtype=np.uint64)]
    prefix = np.zeros(len(data) + 1, dtype=np.uint64)
    np.cumsum(data * _POWERS[0][: len(data)], out=prefix[1:])
    h = prefix[ends] - prefix[starts]
    h *= _POWERS[1][starts]
    h ^= (ends - starts).astype(np.uint64) * _LEN_MUL
    for mul in _FMIX:
        h ^= h >> np.uint64(33)
        h *= mul
    return h ^ (h >> np.uint64(33))


@dataclasses.dataclass
class _Shingles:
    """Every shingle occurrence, in document order: hash key, byte range in `buf`, document."""

    buf: bytes
    keys: np.ndarray
    starts: np.ndarray
    lens: np.ndarray
    docs: np.ndarray

    def bytes_of(self, row: int) -> bytes:
        return self.buf[self.starts[row] : self.starts[row] + self.lens[row]]


def _shingle_rows(texts: Sequence[str], cfg: MinHashConfig) -> _Shingles:
    """Shingles of the normalised texts as byte ranges of one buffer (texts joined by spaces).

    A shingle is `" ".join` of n consecutive normalised words: exactly the bytes from the first
    word's start to the last word's end. Fewer than n words make one shingle, as in `shingles`.
    """
    n = cfg.ngram_size
    bufs, keys, starts, lens, docs = [], [], [], [], []
    batch, batch_docs, offset, size = [], [], 0, 0
    for i, text in enumerate(texts):
        if norm := normalize_bytes(text, cfg):
            batch.append(norm)
            batch_docs.append(i)
            size += len(norm) + 1
        if batch and (size >= _TEXT_CHUNK or i == len(texts) - 1):
            buf = b" ".join(batch)
            data = np.frombuffer(buf, dtype=np.uint8)
            spaces = np.flatnonzero(data == 32)
            word_start, word_end = np.r_[0, spaces + 1], np.r_[spaces, len(buf)]
            words = np.array([t.count(b" ") + 1 for t in batch], dtype=np.int64)
            count = np.where(words >= n, words - n + 1, 1)
            first = np.repeat(np.cumsum(words) - words, count)
            lo = first + np.arange(len(first)) - np.repeat(np.cumsum(count) - count, count)
            s, e = word_start[lo], word_end[lo + np.repeat(np.minimum(words, n) - 1, count)]
            keys.append(_range_keys(data, s, e))
            starts.append(s + offset)
            lens.append((e - s).astype(np.int32))
            docs.append(np.repeat(np.array(batch_docs, dtype=np.int32), count))
            bufs.append(buf)
            offset += len(buf) + 1
            batch, batch_docs, size = [], [], 0
    if not bufs:
        return _Shingles(b"", *(np.zeros(0, dtype=t) for t in (np.uint64, np.int64, np.int32, np.int32)))
    # 8 bytes of padding: `_equal_rows` reads whole 8-byte words up to 7 bytes past a range's end.
    parts = (np.concatenate(x) for x in (keys, starts, lens, docs))
    return _Shingles(b" ".join(bufs) + bytes(8), *parts)


def _equal_rows(sh: _Shingles, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether rows a[i] and b[i] hold the same shingle (equal key, length and bytes).

    Compared 8 bytes at a time through an unaligned uint64 view of the buffer, one 2-D gather per
    word count; a range's last word is masked to the bytes that belong to it.
    """
    view = np.ndarray((len(sh.buf) - 7,), dtype="<u8", buffer=sh.buf, strides=(1,))
    out = (sh.keys[a] == sh.keys[b]) & (sh.lens[a] == sh.lens[b])
    idx = np.flatnonzero(out)
    idx = idx[np.argsort(a[idx], kind="stable")]  # by address: runs of copied shingles read in step
    lens = sh.lens[a[idx]].astype(np.int64)
    n_words = lens // 8 + 1
    for k in np.unique(n_words).tolist():
        sel = idx[n_words == k]
        for part in np.array_split(sel, -(-len(sel) * k // _CHUNK)):
            offs = 8 * np.arange(k)
            diff = view[sh.starts[a[part], None] + offs] ^ view[sh.starts[b[part], None] + offs]
            diff[:, -1] &= (np.uint64(1) << (8 * (sh.lens[a[part]] % 8)).astype(np.uint64)) - np.uint64(1)
            out[part] = ~diff.any(axis=1)
    return out


def similar_pairs(
    texts: Sequence[str],
    threshold: float,
    cfg: MinHashConfig = MinHashConfig(),  # noqa: B008
) -> dict[tuple[int, int], float]:
    """Every pair (i < j) whose shingle-set Jaccard is >= threshold, with its exact Jaccard.

    A pair with Jaccard >= threshold > 0 shares a shingle, so counting, for every shingle, the pairs
    of documents that hold it finds every such pair with its exact intersection size, without an
    all-pairs loop. The index is exact although keyed by a 64-bit hash: a shingle whose hash occurs
    once is unlike all others; the rest are sorted by hash and compared byte by byte with their
    neighbour, and hash runs that mix different shingles are re-sorted by bytes. No shingle is
    skipped however common: k exact copies share every shingle only among themselves, so a
    document-frequency cap could lose exactly those pairs. The work is the sum over shingles of
    C(documents holding it, 2): quick for sparse duplicates, quadratic in the size of big clusters
    (counted in bounded chunks). Documents without shingles never pair.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    sh, n_docs = _shingle_rows(texts, cfg), len(texts)
    if not len(sh.keys):
        return {}
    # Keys that occur more than once, as a bitmap over their top bits; rows outside it are unique.
    sk = np.sort(sh.keys)
    repeated = sk[1:][sk[1:] == sk[:-1]]
    bits = min(28, max(10, int(len(repeated)).bit_length() + 5))
    bitmap = np.zeros(1 << bits, dtype=bool)
    bitmap[repeated >> np.uint64(64 - bits)] = True
    del sk, repeated
    maybe_shared = bitmap[sh.keys >> np.uint64(64 - bits)]
    sizes = np.bincount(sh.docs[~maybe_shared], minlength=n_docs)
    rows = np.flatnonzero(maybe_shared)
    # One np.sort (much faster than argsort) of keys whose low bits are replaced by the row's rank:
    # rows come out by key, documents ascending within a key; the truncation is undone by the checks.
    low = np.uint64(max(1, len(rows).bit_length()))
    packed = (sh.keys[rows] >> low << low) | np.arange(len(rows), dtype=np.uint64)
    packed.sort()
    order, top = rows[(packed & ((np.uint64(1) << low) - np.uint64(1))).astype(np.int64)], packed >> low
    del packed
    same = np.zeros(len(rows), dtype=bool)  # row holds the same shingle as the row before it
    at = np.flatnonzero(top[1:] == top[:-1]) + 1
    same[at] = _equal_rows(sh, order[at], order[at - 1])
    mixed = np.unique(top[at[~same[at]]])  # runs of one truncated key holding several shingles
    for lo, hi in zip(
        np.searchsorted(top, mixed).tolist(), np.searchsorted(top, mixed, "right").tolist(), strict=True
    ):
        _split_run(sh, order[lo:hi], same[lo:hi])
    docs = sh.docs[order]
    keep = ~same
    keep[1:] |= docs[1:] != docs[:-1]  # one row per (shingle, document)
    shingle, docs = np.cumsum(~same)[keep], docs[keep].astype(np.int64)
    sizes += np.bincount(docs, minlength=n_docs)
    bounds = np.flatnonzero(np.r_[True, shingle[1:] != shingle[:-1], True])
    starts, lens = bounds[:-1], np.diff(bounds)
    pair_keys, inters = _count_pairs(docs, starts[lens > 1], lens[lens > 1], n_docs)
    a, b = pair_keys // n_docs, pair_keys % n_docs
    jac = inters / (sizes[a] + sizes[b] - inters)
    hit = jac >= threshold
    return dict(zip(zip(a[hit].tolist(), b[hit].tolist(), strict=True), jac[hit].tolist(), strict=True))


def _split_run(sh: _Shingles, order: np.ndarray, same: np.ndarray) -> None:
    """Re-sort one run of equal truncated keys that holds several shingles by (key, bytes, row).

    Writes into the views `order` and `same`. Rare (collisions of the truncated 64-bit hash), so
    plain Python; the row before the run has another key, hence another shingle.
    """
    run = sorted(order.tolist(), key=lambda r: (int(sh.keys[r]), sh.bytes_of(r), r))
    order[:] = run
    ident = [(int(sh.keys[r]), sh.bytes_of(r)) for r in run]
    same[:] = [False] + [x == y for x, y in zip(ident[1:], ident[:-1], strict=True)]


def _count_pairs(
    docs: np.ndarray, starts: np.ndarray, lens: np.ndarray, n_docs: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keys a * n_docs + b (a < b) of documents sharing shingles, and how many shingles they share.

    Run docs[s : s + l] lists, ascending, the documents holding one shingle.
    """
    n_pairs = lens * (lens - 1) // 2
    cuts = np.searchsorted(np.cumsum(n_pairs), np.arange(_CHUNK, int(n_pairs.sum()), _CHUNK))
    keys, counts = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for s, k in zip(np.split(starts, cuts), np.split(lens, cuts), strict=True):
        pos = np.repeat(s, k) + np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
        after = np.repeat(s + k, k) - 1 - pos  # partners after each position in its run
        left = np.repeat(pos, after)
        right = left + 1 + np.arange(len(left)) - np.repeat(np.cumsum(after) - after, after)
        key, count = np.unique(docs[left] * n_docs + docs[right], return_counts=True)
        keys.append(key)
        counts.append(count)
    if len(keys) == 2:
        return keys[1], counts[1]
    key, count = np.concatenate(keys), np.concatenate(counts)
    o = np.argsort(key, kind="stable")
    key, count = key[o], count[o]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return key[first], np.add.reduceat(count, first) if len(key) else count


def pair_scores(pred_clusters: Mapping[int, int], true_pairs: Iterable[tuple[int, int]]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of a clustering against the true similar pairs.

    Predicted pairs are all pairs inside a cluster (documents absent from `pred_clusters` are
    singletons); they are counted, not listed. Precision is 1.0 with nothing predicted, recall 1.0
    with nothing true, F1 0.0 when both are 0.
    """
    truth = {(min(i, j), max(i, j)) for i, j in true_pairs}
    if any(i == j for i, j in truth):
        raise ValueError("true_pairs must pair distinct documents")
    n_pred = sum(k * (k - 1) // 2 for k in collections.Counter(pred_clusters.values()).values())
    tp = sum(1 for i, j in truth if i in pred_clusters and pred_clusters.get(j) == pred_clusters[i])
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_true": len(truth),
        "n_pred": n_pred,
        "tp": tp,
    }


def main(argv: list[str]) -> None:
    """Time corpus generation and ground truth: `python tests/dup_corpus.py [n_docs]` (CPU seconds)."""
    n = int(argv[0]) if argv else 100_000
    t0 = time.process_time()
    docs = make_corpus(n)
    t1 = time.process_time()
    pairs = similar_pairs([d.text for d in docs], 0.8)
    t2 = time.process_time()
    print(f"make_corpus({n}): {t1 - t0:.1f} s, {dict(collections.Counter(d.kind for d in docs))}")
    print(f"similar_pairs(0.8): {t2 - t1:.1f} s, {len(pairs)} pairs")


if __name__ == "__main__":
    main(sys.argv[1:])
