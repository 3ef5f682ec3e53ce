"""NSFW filters: bad-word counting (C4) and URL/domain blocklists (RefinedWeb/FineWeb via datatrove).

Both look for listed words without a model. The bad-word lists are LDNOOBW's ("List of Dirty, Naughty,
Obscene and Otherwise Bad Words", CC-BY-4.0), the list C4 used (Raffel et al. 2020, §2.2), vendored
under resources/nsfw/ so nothing is downloaded at run time. Matching is on words, never on substrings,
so "Scunthorpe" and "assistant" are innocent; common leetspeak ("sh1t", "@ss") and stretched letters
("fuuuuck") are folded before lookup, since spam writes them that way to get past naive filters.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, param, register

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "nsfw"
LDNOOBW_DIR = RESOURCES / "ldnoobw"

# Words are runs of letters/digits; '@' and '$' count as letters because leetspeak uses them as such.
_TOKEN = re.compile(r"(?:[^\W_]|[@$])+")
# ASCII text (most of a crawl) is cut 10x faster than by _TOKEN: separators become spaces, then split.
_ASCII_SEPARATORS = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum() and c not in "@$"})
# 0→o, 1→i (1→l tried as a variant), 3→e, 4→a, 5→s, 7→t, @→a, $→s.
_LEET = str.maketrans("013457@$", "oieastas")
_LEET_L = str.maketrans("1", "l")
# A word may hide leetspeak if it has a digit, '@' or '$' and is not a plain number.
_LEET_CHAR = re.compile(r"[0-9@$]")
_RUN3 = re.compile(r"([a-z])\1\1")  # a letter three times in a row ("fuuuck", "xxxx")
_RUN3_FOLD = re.compile(r"([a-z])\1\1+")
_RUN2_FOLD = re.compile(r"([a-z])\1+")
# Scripts written without spaces between words: their entries match as substrings (as C4 does for
# ja/th/zh in tensorflow_datasets c4_utils.py).
_NO_SPACE_SCRIPT = re.compile(
    r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]"  # Thai, kana, Han
)
# Up to this many literal entries are each probed with `in` before the literal regex runs.
_MAX_PROBES = 16
# Common subwords that C4 allows in languages without spaces: each removed >10% of the documents of
# its language (tensorflow_datasets c4_utils.py `_BADWORDS_ALLOWLIST`, same in datatrove c4_filters).
C4_ALLOWLIST = {"ja": {"sm", "グロ", "女の子"}, "zh": {"性"}}
# Language labels of identifiers (lid.176, ISO 639-3, BCP 47) that differ from the LDNOOBW file names.
_LANG_ALIASES = {
    "tl": "fil", "tgl": "fil", "nb": "no", "nn": "no", "nob": "no", "nno": "no", "nor": "no",
    "ara": "ar", "ces": "cs", "dan": "da", "deu": "de", "eng": "en", "epo": "eo", "spa": "es",
    "fas": "fa", "pes": "fa", "fin": "fi", "fra": "fr", "hin": "hi", "hun": "hu", "ita": "it",
    "jpn": "ja", "kor": "ko", "nld": "nl", "pol": "pl", "por": "pt", "rus": "ru", "swe": "sv",
    "tha": "th", "tur": "tr", "zho": "zh", "cmn": "zh",
}  # fmt: skip


def read_list_file(path: str | Path) -> list[str]:
    """Entries of a list file: one per line, surrounding whitespace stripped, blanks and '#' lines skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{path}: list file not found")
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@cache
def ldnoobw_languages() -> frozenset[str]:
    """Languages with a vendored LDNOOBW list (file stems under resources/nsfw/ldnoobw)."""
    return frozenset(p.stem for p in LDNOOBW_DIR.glob("*.txt"))


def ldnoobw_words(lang: str) -> list[str]:
    """The LDNOOBW entries of one language, minus C4's allowlist for it."""
    if lang not in ldnoobw_languages():
        raise ValueError(f"no LDNOOBW list for language {lang!r} (have: {sorted(ldnoobw_languages())})")
    allowed = C4_ALLOWLIST.get(lang, set())
    return [w for w in read_list_file(LDNOOBW_DIR / f"{lang}.txt") if w not in allowed]


def list_language(label: Any) -> str | None:
    """The LDNOOBW language for a language label ("en", "__label__de", "pt-BR", "nob"), or None."""
    if not isinstance(label, str) or not label:
        return None
    code = label.removeprefix("__label__").lower().replace("_", "-")
    have = ldnoobw_languages()
    for candidate in (code, code.split("-")[0]):
        candidate = _LANG_ALIASES.get(candidate, candidate)
        if candidate in have:
            return candidate
    return None


def _canonical(token: str) -> str:
    """Fold a lowercased word: leetspeak (not in plain numbers) and runs of 3+ letters down to 2."""
    if not token.isdigit():
        token = token.translate(_LEET)
    return _RUN3_FOLD.sub(r"\1\1", token)


def _spaced_words(lowered: str) -> str:
    """The words of a lowercased text (as _TOKEN finds them) separated by whitespace only."""
    if lowered.isascii():
        return lowered.translate(_ASCII_SEPARATORS)
    return " ".join(_TOKEN.findall(lowered))


def _words_around(spaced: str, pattern: re.Pattern[str]) -> set[str]:
    """The distinct space-separated words of `spaced` that contain a match of `pattern`."""
    out: set[str] = set()
    pos = 0
    while (m := pattern.search(spaced, pos)) is not None:
        start = spaced.rfind(" ", 0, m.start()) + 1
        end = spaced.find(" ", m.end())
        end = len(spaced) if end < 0 else end
        out.add(spaced[start:end])
        pos = end
    return out


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex alternation sharing prefixes (a trie), so matching many literals stays linear."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [
            (r"\s+" if char == " " else re.escape(char)) + emit(child)
            for char, child in sorted(node.items())
            if char
        ]
        if not branches:
            return ""
        if "" in node:  # a word ends here: the longer continuations are optional (greedy, so preferred)
            return f"(?:{'|'.join(branches)})?"
        return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"

    return emit(trie)


class WordListMatcher:
    """Counts occurrences of listed words and phrases in a text, on whole (normalised) words only.

    The text is lowercased and cut into words; one set intersection finds the listed words. Only the
    few words with a digit, '@', '$' or a letter three times in a row are then folded and looked up
    again: leetspeak (0→o 1→i/l 3→e 4→a 5→s 7→t @→a $→s, never in plain numbers such as "455"), runs
    of three or more of a letter down to two and, failing that, to one ("asssss"→"ass",
    "fuuuuck"→"fuck"). Doubled letters are left alone, so "as" never becomes "ass". Phrases are found
    in the sequence of words (leetspeak folded, not stretched letters). Entries with punctuation
    ("g-spot") or in scripts written without spaces (Chinese, Japanese, Thai) are matched as literals
    by one trie-shaped regex, the latter without word boundaries as C4 does. Every entry is counted on
    its own: "big tits" counts once for the phrase and once for "tits".
    """

    def __init__(self, entries: Iterable[str], allow: Iterable[str] = ()) -> None:
        allowed = {" ".join(_canonical(t) for t in _TOKEN.findall(a.lower())) for a in allow}
        allowed |= {a.lower() for a in allow}
        self.words: set[str] = set()
        self.phrases: list[tuple[str, ...]] = []  # folded words of each multi-word entry
        literals: dict[str, bool] = {}  # lowercased literal -> needs word boundaries
        for entry in entries:
            lowered = " ".join(entry.lower().split())
            tokens = _TOKEN.findall(lowered)
            if not lowered or lowered in allowed:
                continue
            if _NO_SPACE_SCRIPT.search(lowered) or " ".join(tokens) != lowered:
                literals[lowered] = not _NO_SPACE_SCRIPT.search(lowered)
                continue
            folded = [_canonical(t) for t in tokens]
            if " ".join(folded) in allowed:
                continue
            if len(folded) == 1:
                self.words.add(folded[0])
            elif tuple(folded) not in self.phrases:
                self.phrases.append(tuple(folded))
        self._phrase_vocab = frozenset(w for phrase in self.phrases for w in phrase)
        self._vocab = frozenset(self.words | self._phrase_vocab)  # one pass over the text finds both
        self._literals = literals
        # A few literals: test each for presence with `in` before running the regex; many: regex only.
        self._literal_probes = (
            [max(lit.split(), key=len) for lit in literals] if len(literals) <= _MAX_PROBES else None
        )
        self._literal_re = None
        if literals:
            # Longest match first at each position; inner whitespace matches any whitespace run.
            self._literal_re = re.compile(_trie_pattern(literals))

    def __len__(self) -> int:
        return len(self.words) + len(self.phrases) + len(self._literals)

    def find(self, text: str) -> Counter[str]:
        """Occurrences of each matched entry (in folded form) in `text`."""
        lowered = text.lower()
        spaced = _spaced_words(lowered)
        tokens = spaced.split()
        found: Counter[str] = Counter()
        words = self.words
        present = self._vocab.intersection(tokens)
        for word in present & words:
            found[word] += tokens.count(word)
        # Only words that may hide leetspeak or stretched letters need folding; plain text skips this.
        odd = {t for t in _words_around(spaced, _LEET_CHAR) if not t.isdigit()}
        if _RUN3.search(spaced):
            odd |= _words_around(spaced, _RUN3)
        folded: dict[str, str] = {}  # word -> folded form, where that form occurs in a phrase
        for token in odd:
            form = _canonical(token)
            if form != token and form in self._phrase_vocab:
                folded[token] = form
            if token in words:
                continue
            for variant in self._variants(token, form):
                if variant in words:
                    found[variant] += tokens.count(token)
                    break
        if self._phrase_vocab:
            if folded:
                present = present.union(folded.values())
            self._find_phrases(tokens, present, folded, found)
        if self._literal_re is not None and (
            self._literal_probes is None or any(p in lowered for p in self._literal_probes)
        ):
            self._find_literals(lowered, found)
        return found

    def count(self, text: str) -> int:
        return sum(self.find(text).values())

    @staticmethod
    def _variants(token: str, form: str) -> Iterable[str]:
        yield form
        if "1" in token and not token.isdigit():
            yield _canonical(token.translate(_LEET_L))
        if _RUN3.search(token):
            yield _RUN2_FOLD.sub(r"\1", form)

    def _find_phrases(
        self, tokens: list[str], present: frozenset[str], folded: dict[str, str], found: Counter[str]
    ) -> None:
        candidates = [p for p in self.phrases if present.issuperset(p)]
        if not candidates:
            return
        sequence = " ".join([folded.get(t, t) for t in tokens] if folded else tokens)
        sequence = f" {sequence} "
        for phrase in candidates:
            joined = " ".join(phrase)
            n = sequence.count(f" {joined} ")
            if n:
                found[joined] += n

    def _find_literals(self, lowered: str, found: Counter[str]) -> None:
        for m in self._literal_re.finditer(lowered):
            key = " ".join(m.group().split())
            bounded = self._literals.get(key, False)
            if bounded and (
                (m.start() > 0 and lowered[m.start() - 1].isalnum())
                or (m.end() < len(lowered) and lowered[m.end()].isalnum())
            ):
                continue
            found[key] += 1


@dataclasses.dataclass
class WordCountStep(Step):
    """Shared body of the bad-word steps: count listed words per document, drop above count/ratio bounds.

    The list follows the document's language annotation (`lang_key`) when it names a language that
    has a list, else `languages`. Files in `word_files` are added to every document's list.
    """

    languages: list[str] = param(["en"], "LDNOOBW lists used when a document has no known language label")
    lang_key: str = param("lang", "annotation holding the document's language (set by the langid step)")
    word_files: list[str] = param([], "extra list files (one word/phrase per line, '#' comments), all docs")
    use_builtin: bool = param(True, "use the vendored LDNOOBW lists; False: only `word_files`")
    allow_words: list[str] = param([], "entries never counted (on top of C4's ja/zh allowlist)")
    max_count: int | None = param(None, "drop documents with more listed words than this (None: no bound)")
    max_ratio: float | None = param(None, "drop documents whose listed words / words exceeds this (None: no)")
    ratio_min_count: int = param(1, "apply max_ratio only from this many listed words (spares short docs)")

    def __post_init__(self) -> None:
        for field in ("languages", "word_files", "allow_words"):
            value = getattr(self, field)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{field} must be a list of non-empty strings, got {value!r}")
        if self.use_builtin:
            for lang in self.languages:
                if lang not in ldnoobw_languages():
                    raise ValueError(f"no LDNOOBW list for {lang!r} (have: {sorted(ldnoobw_languages())})")
        elif not self.word_files:
            raise ValueError("use_builtin=False needs at least one file in word_files")
        if self.max_count is not None and self.max_count < 0:
            raise ValueError(f"max_count must be >= 0 or None, got {self.max_count}")
        if self.max_ratio is not None and not 0.0 <= self.max_ratio <= 1.0:
            raise ValueError(f"max_ratio must lie in [0, 1] or be None, got {self.max_ratio}")
        if self.ratio_min_count < 1:
            raise ValueError(f"ratio_min_count must be >= 1, got {self.ratio_min_count}")
        self._extra = [entry for path in self.word_files for entry in read_list_file(path)]
        self._matchers: dict[str | None, WordListMatcher] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_matchers"] = {}  # rebuilt in each worker, cheaper than shipping the sets
        return state

    def columns(self) -> dict[str, pa.DataType]:
        return {f"{self.name}_count": pa.int32(), f"{self.name}_ratio": pa.float32()}

    def setup(self) -> None:
        self.matcher(None)

    def matcher(self, lang: str | None) -> WordListMatcher:
        """The matcher for one LDNOOBW language (None: the default `languages`), built once."""
        matcher = self._matchers.get(lang)
        if matcher is None:
            langs = self.languages if lang is None else [lang]
            entries = list(self._extra)
            if self.use_builtin:
                for code in langs:
                    entries += ldnoobw_words(code)
            matcher = self._matchers[lang] = WordListMatcher(entries, self.allow_words)
        return matcher

    def apply(self, doc: Doc) -> str | None:
        lang = list_language(doc.annotations.get(self.lang_key)) if self.use_builtin else None
        count = self.matcher(lang).count(doc.text)
        ratio = count / len(doc.words) if doc.words else 0.0
        doc.annotations[f"{self.name}_count"] = count
        doc.annotations[f"{self.name}_ratio"] = ratio
        # Order: count first, then ratio.
        if self.max_count is not None and count > self.max_count:
            return "count_too_high"
        if self.max_ratio is not None and count >= self.ratio_min_count and ratio > self.max_ratio:
            return "ratio_too_high"
        return None


@register
@dataclasses.dataclass
class BadWordsFilter(WordCountStep):
    """C4's bad-words rule: drop pages containing LDNOOBW words (by default any one of them)."""

    name = "badwords"
    # C4 (Raffel et al. 2020, §2.2) removes a page as soon as it holds one LDNOOBW word: count > 0.
    # datatrove's C4BadWordsFilter agrees (keep_fraction=0.0). This is known to remove innocent pages
    # (Dodge et al. 2021); raise it, or use max_ratio, to be gentler.
    max_count: int | None = param(0, "drop documents with more listed words than this (C4: 0, any word)")


@register
@dataclasses.dataclass
class URLFilter(Step):
    """Drop documents whose URL is on a domain blocklist or contains banned words.

    Semantics follow datatrove's URLFilter (src/datatrove/pipeline/filters/url_filter.py): a blocked
    domain, then any "hard" word, then at least `soft_word_threshold` distinct "soft" words, where URL
    words are the runs of letters and digits. Differences: a blocklist entry blocks every subdomain at
    any depth (datatrove checks only the registered domain and the full host, so blocking
    "a.example.com" misses "x.a.example.com"), and needs no tldextract/public-suffix download; URL words
    are lowercased (datatrove splits the URL as written, so "PORN" slips through); list lines may be
    URLs or "*.domain"/"www.domain" forms; no exact-URL list and no substring ("banned_subwords") list,
    whose substring matches hit innocent hosts. Documents without a URL pass with null annotations.
    """

    name = "url_filter"
    domain_files: list[str] = param([], "extra domain blocklists: one domain per line, '#' comments")
    use_default_domains: bool = param(True, "include resources/nsfw/blocked_domains.txt (small seed list)")
    hard_word_files: list[str] = param([], "extra hard-word lists (any one word in the URL drops)")
    soft_word_files: list[str] = param([], "extra soft-word lists (soft_word_threshold distinct drop)")
    use_default_words: bool = param(True, "include resources/nsfw/url_{hard,soft}_words.txt")
    # datatrove URLFilter default soft_word_threshold=2.
    soft_word_threshold: int = param(2, "drop URLs with at least this many distinct soft words")

    def __post_init__(self) -> None:
        for field in ("domain_files", "hard_word_files", "soft_word_files"):
            value = getattr(self, field)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{field} must be a list of file paths, got {value!r}")
        if self.soft_word_threshold < 1:
            raise ValueError(f"soft_word_threshold must be >= 1, got {self.soft_word_threshold}")
        domains = [*self.domain_files]
        hard = [*self.hard_word_files]
        soft = [*self.soft_word_files]
        if self.use_default_domains:
            domains.append(str(RESOURCES / "blocked_domains.txt"))
        if self.use_default_words:
            hard.append(str(RESOURCES / "url_hard_words.txt"))
            soft.append(str(RESOURCES / "url_soft_words.txt"))
        self._domains = frozenset(_clean_domain(d) for path in domains for d in read_list_file(path))
        self._hard = frozenset(w.lower() for path in hard for w in read_list_file(path))
        self._soft = frozenset(w.lower() for path in soft for w in read_list_file(path)) - self._hard

    def columns(self) -> dict[str, pa.DataType]:
        return {
            "url_blocked_domain": pa.string(),
            "url_banned_words": pa.string(),
            "url_soft_word_count": pa.int32(),
        }

    def blocked_domain(self, host: str) -> str | None:
        """The blocklist entry covering `host` (itself or a parent domain), most specific first."""
        labels = host.split(".")
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            if suffix in self._domains:
                return suffix
        return None

    def apply(self, doc: Doc) -> str | None:
        url = doc.url
        if not url:
            # Nothing to judge: the document passes with null annotations.
            for column in self.columns():
                doc.annotations[column] = None
            return None
        host = _host(url)
        domain = self.blocked_domain(host) if host else None
        words = set(_URL_WORD.split(url.lower()))
        hard = words & self._hard
        soft = words & self._soft
        doc.annotations["url_blocked_domain"] = domain
        doc.annotations["url_banned_words"] = ",".join(sorted(hard | soft))
        doc.annotations["url_soft_word_count"] = len(soft)
        if domain is not None:
            return "blocked_domain"
        if hard:
            return "hard_banned_word"
        if len(soft) >= self.soft_word_threshold:
            return "soft_banned_words"
        return None


_URL_WORD = re.compile(r"[^a-z0-9]+")


def _clean_domain(entry: str) -> str:
    """A blocklist line as a bare lowercase domain: no scheme, path, port, "*." or "www.", no end dots.

    "www." goes because lists write "www.site.com" to mean the site, and the bare domain also covers
    every other subdomain of it.
    """
    entry = entry.split()[0].lower()
    if "//" in entry:
        entry = entry.split("//", 1)[1]
    entry = entry.split("/", 1)[0].split(":", 1)[0].strip(".")
    entry = entry.removeprefix("*.")
    return entry[4:] if entry.startswith("www.") and entry.count(".") >= 2 else entry


def _host(url: str) -> str | None:
    """Lowercase host name of a URL, also for scheme-less ones ("example.com/page")."""
    try:
        parts = urlsplit(url if "//" in url else f"//{url}")
        host = parts.hostname
    except ValueError:  # malformed netloc (e.g. an unclosed IPv6 bracket)
        return None
    return host.strip(".") if host else None
