"""C4's line-level cleaning (Raffel et al. 2020, "Exploring the Limits of Transfer Learning", §2.2).

The `c4` step rewrites each page the way the Colossal Clean Crawled Corpus was built, following the
reference implementation that produced it (tensorflow_datasets `text/c4_utils.py`, `clean_page`):
every line is stripped and then, in this order,

1. removed if one of its whitespace words is longer than `max_word_length` (1000) characters;
2. cleared of Wikipedia-style citation markers ("[1]", "[]", "[edit]", "[citation needed]");
3. removed unless it ends in a terminal mark (. ? ! or a straight double quote), or if it ends in
   "..." (an ellipsis is not an end of sentence);
4. removed if it has fewer than `min_words_per_line` (5) words, counted after step 2;
5. marks the whole page for removal if it contains "lorem ipsum" (case-insensitive);
6. removed if it contains "javascript" (case-insensitive): "enable Javascript" notices;
7. marks the whole page for removal if it contains "{" (code);
8. removed if it contains one of `policy_substrings` (cookie and terms-of-use notices).

The page is dropped if its kept lines hold fewer than `min_num_sentences` (3) sentences; otherwise
its text becomes the kept lines joined by "\\n". The badword rule of §2.2 lives in the `nsfw` step,
language identification in `langid`, and C4's three-sentence-span deduplication in the dedup stage.

Numbers and where they come from. The paper says "fewer than 3 sentences" and "at least 5 words",
and c4_utils has `_MIN_NUM_SENTENCES = 3`, `_MIN_WORDS_PER_LINE = 5`, `_MAX_WORD_LENGTH = 1000`, so
those are the defaults. datatrove's `C4QualityFilter` (src/datatrove/pipeline/filters/c4_filters.py)
differs from the reference in these places:

* `min_num_sentences=5` and `min_words_per_line=3`: the two numbers swapped (its docstring misquotes
  the paper), which keeps short lines and drops more short pages than C4 did;
* it also accepts lines ending in a single quote "'", which c4_utils does not;
* it counts words before removing citations (c4_utils counts after), so "Text [1] [2] [3] here."
  has 5 words there and 2 here;
* `filter_no_terminal_punct`, `remove_citations` and the other switches default to on, as here;
  FineWeb ran it with `filter_no_terminal_punct=False` (datatrove examples/fineweb.py), which this
  step allows too;
* `max_word_length=1000` and the policy substring list ("terms of use", "privacy policy",
  "cookie policy", "uses cookies", "use of cookies", "use cookies") are the same as c4_utils;
* it counts sentences with NLTK's Punkt model (as c4_utils) in older releases and with spaCy's
  rule-based sentencizer in recent ones (0.10: `split_into_sentences`), see below;
* it turns a rule off with -1, where this step takes None (or the `filter_*` switches).

Where this step departs from both, and why:

* Sentences are counted with a small rule-based splitter (`count_sentences`), not Punkt or spaCy:
  no model or dependency, and far faster (sentence splitting dominates datatrove's run time).
  Every kept line is at least one sentence (it ends in a terminal mark), so the count matters only
  for pages with one or two kept lines, where the splitter adds a sentence after "?" or "!", after
  "." unless the word is a known abbreviation, an initial or dotted ("e.g.", "U.S."), and after
  "..." before a capital letter, as Punkt mostly does.
* The reference stops at the first page-level hit ("lorem ipsum", "{"); this step reads the whole
  page so that every `c4_*` column is filled (a line with such a hit is counted in
  `c4_lorem_ipsum_lines`/`c4_curly_bracket_lines` and otherwise treated as the other rules say).
  Reasons are reported in the fixed order lorem_ipsum, curly_bracket, too_few_sentences.
* Blank lines are dropped without being counted; c4_utils counts them as lines without an end mark.
* The page-level rules look only at lines that survive rules 1-4, exactly as c4_utils does: a "{" in
  a line without terminal punctuation does not drop the page, although §2.2 says "any page".
* A dropped page keeps its original text (so OUT/dropped/ shows what was judged).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pyarrow as pa

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, check_number, param, register

# c4_utils `_END_MARKS`: the paper's "period, exclamation mark, question mark, or end quotation mark";
# only the ASCII double quote counts as the latter (not ” or ').
END_MARKS = [".", "?", "!", '"']
ELLIPSIS = "..."
# c4_utils `_POLICY_SUBSTRINGS` (identical in datatrove).
POLICY_SUBSTRINGS = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
]
# c4_utils' citation regex: "[", any digits (possibly none), "]", or the two Wikipedia edit markers.
_CITATION = re.compile(r"\[(?:\d*|edit|citation needed)\]")

# A possible sentence end inside a line: a run of terminal marks (group 1), closing quotes/brackets,
# whitespace, and the next visible character (group 2). The lookbehind starts a match only at the
# first mark of a run: otherwise a long run of dots not followed by a space (a table of contents'
# leaders) is retried from each of its positions, which is quadratic.
_BOUNDARY = re.compile(r"(?<![.?!…])([.?!…]+)[\"'”’)\]}»]*\s+(\S)")
_OPENERS = "\"'“‘([{«"
# Words a period does not end (lowercase, without the period). Punkt learns a longer list from data;
# these are the frequent English ones. Single letters (initials) and dotted forms are handled apart.
ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc", "inc", "ltd", "co",
    "corp", "no", "nos", "fig", "figs", "vol", "vols", "pp", "ed", "eds", "jan", "feb", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "gen", "gov", "sen", "rep", "rev", "col", "lt",
    "sgt", "capt", "cmdr", "adm", "approx", "dept", "est", "al", "ave", "blvd", "rd", "ch", "sec",
    "art", "ref", "cf", "ca",
})  # fmt: skip
_LONGEST_ABBREVIATION = max(map(len, ABBREVIATIONS)) + 2  # room for an opening quote or bracket


def count_sentences(line: str) -> int:
    """Sentences in a non-empty line: one, plus one per sentence boundary found inside it."""
    n = 1
    for match in _BOUNDARY.finditer(line):
        marks = match.group(1)
        if marks == ".":  # not after an abbreviation, an initial or a dotted form ("e.g", "U.S")
            start = match.start()
            word = line[line.rfind(" ", 0, start) + 1 : start]  # the word the period ends
            if len(word) > _LONGEST_ABBREVIATION and "." not in word:
                n += 1
                continue
            word = word.lstrip(_OPENERS).lower()
            if not (word in ABBREVIATIONS or "." in word or (len(word) == 1 and word.isalpha())):
                n += 1
        elif "?" in marks or "!" in marks:
            n += 1
        else:  # an ellipsis ends a sentence only before a capital
            n += match.group(2).isupper()
    return n


_SWITCHES = (
    "remove_citations",
    "filter_no_terminal_punct",
    "filter_lorem_ipsum",
    "filter_javascript",
    "filter_curly_bracket",
    "filter_policy",
    "remove_lines",
)


def _check_strings(name: str, value: Any) -> None:
    if isinstance(value, str) or not all(isinstance(s, str) and s for s in value):
        raise ValueError(f"{name}={value!r}: expected a list of non-empty strings")


@register
@dataclasses.dataclass
class C4Filter(Step):
    """C4's line cleaning and page rules (c4_utils `clean_page`); rewrites the text of kept pages."""

    name = "c4"
    # Defaults: c4_utils.py and §2.2; datatrove's C4QualityFilter uses 3 and 5 for the first two.
    min_words_per_line: int | None = param(5, "remove lines with fewer words (C4: 5; datatrove: 3)")
    min_num_sentences: int | None = param(3, "drop pages whose kept lines hold fewer sentences (C4: 3)")
    max_word_length: int | None = param(1000, "remove lines with a longer word (c4_utils: 1000 chars)")
    remove_citations: bool = param(True, "delete [1], [edit], [citation needed] markers from lines")
    filter_no_terminal_punct: bool = param(True, "remove lines not ending in end_marks or ending in '...'")
    end_marks: list[str] = param(END_MARKS, 'line endings that count as terminal (C4: . ? ! ")')
    filter_lorem_ipsum: bool = param(True, "drop pages with a kept line containing 'lorem ipsum'")
    filter_javascript: bool = param(True, "remove lines containing 'javascript'")
    filter_curly_bracket: bool = param(True, "drop pages with a kept line containing '{'")
    filter_policy: bool = param(True, "remove lines containing one of policy_substrings")
    policy_substrings: list[str] = param(POLICY_SUBSTRINGS, "lowercase cookie/terms notices (c4_utils)")
    remove_lines: bool = param(True, "rewrite kept pages without the removed lines (False: only count)")

    def __post_init__(self) -> None:
        check_number("min_words_per_line", self.min_words_per_line, 0, integer=True)
        check_number("min_num_sentences", self.min_num_sentences, 0, integer=True)
        check_number("max_word_length", self.max_word_length, 1, integer=True)
        for field in _SWITCHES:
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"{field}={getattr(self, field)!r}: expected true or false")
        _check_strings("end_marks", self.end_marks)
        if not self.end_marks:
            raise ValueError("end_marks=[]: no line could end a sentence; use filter_no_terminal_punct=false")
        _check_strings("policy_substrings", self.policy_substrings)
        self.setup()

    def setup(self) -> None:
        self._end_marks = tuple(self.end_marks)
        self._policy = [p.lower() for p in self.policy_substrings]  # matched on the lowercased line

    def columns(self) -> dict[str, pa.DataType]:
        return {
            "c4_lines_kept": pa.int32(),
            "c4_lines_removed": pa.int32(),
            "c4_lines_too_long_word": pa.int32(),
            "c4_lines_no_terminal_punct": pa.int32(),
            "c4_lines_too_few_words": pa.int32(),
            "c4_lines_javascript": pa.int32(),
            "c4_lines_policy": pa.int32(),
            "c4_citations_removed": pa.int32(),
            "c4_lorem_ipsum_lines": pa.int32(),
            "c4_curly_bracket_lines": pa.int32(),
            "c4_sentences": pa.int32(),
        }

    def apply(self, doc: Doc) -> str | None:
        max_len = self.max_word_length
        min_words = self.min_words_per_line or 0
        end_marks = self._end_marks if self.filter_no_terminal_punct else None
        citations = self.remove_citations
        lorem, javascript, curly = self.filter_lorem_ipsum, self.filter_javascript, self.filter_curly_bracket
        policy = self._policy if self.filter_policy else []
        kept: list[str] = []
        too_long = no_punct = too_few = n_js = n_policy = n_cites = n_lorem = n_curly = sentences = 0

        # str.splitlines, as c4_utils: \r, \v, \f, \x1c-\x1e, \x85, U+2028/9 also end a line.
        for raw in doc.text.splitlines():
            line = raw.strip()
            if not line:
                continue
            # A word longer than max_len needs a line longer than max_len: most lines skip the split.
            if max_len is not None and len(line) > max_len and max(map(len, line.split())) > max_len:
                too_long += 1
                continue
            if citations and "[" in line:
                line, k = _CITATION.subn("", line)
                n_cites += k
            # No re-strip after removing citations (as c4_utils): "Text. [1]" now ends in a space.
            if end_marks is not None and (not line.endswith(end_marks) or line.endswith(ELLIPSIS)):
                no_punct += 1
                continue
            # Splitting at most min_words - 1 times tells whether there are min_words words, cheaply.
            if min_words and len(line.split(None, min_words - 1)) < min_words:
                too_few += 1
                continue
            lower = line.lower()
            if lorem and "lorem ipsum" in lower:
                n_lorem += 1
            if javascript and "javascript" in lower:
                n_js += 1
                continue
            if curly and "{" in line:
                n_curly += 1
            if policy and any(map(lower.__contains__, policy)):
                n_policy += 1
                continue
            sentences += count_sentences(line)
            kept.append(line)

        removed = too_long + no_punct + too_few + n_js + n_policy
        doc.annotations.update(
            c4_lines_kept=len(kept),
            c4_lines_removed=removed,
            c4_lines_too_long_word=too_long,
            c4_lines_no_terminal_punct=no_punct,
            c4_lines_too_few_words=too_few,
            c4_lines_javascript=n_js,
            c4_lines_policy=n_policy,
            c4_citations_removed=n_cites,
            c4_lorem_ipsum_lines=n_lorem,
            c4_curly_bracket_lines=n_curly,
            c4_sentences=sentences,
        )
        if n_lorem:
            reason: str | None = "lorem_ipsum"
        elif n_curly:
            reason = "curly_bracket"
        elif self.min_num_sentences is not None and sentences < self.min_num_sentences:
            reason = "too_few_sentences"
        else:
            reason = None
        if self.remove_lines and (reason is None or not self.drop):
            doc.text = "\n".join(kept)  # lines are stripped, so c4_utils' final .strip() is a no-op
        return reason
