"""Gopher quality and repetition steps: hand-computed metrics, every threshold from both sides, params.

Threshold tests build documents whose metric sits exactly on the published value (kept: the rules
drop only beyond it) and one step past it (dropped with that check's reason), with every other
metric safely inside, so each test fails if either the metric or the comparison is off.
"""

from __future__ import annotations

import itertools
import random
import string
from collections import Counter

import pytest
from web_corpus import SPAM_KINDS, web_corpus

from data_pipeline.document import Doc
from data_pipeline.filters.base import annotation_table, build_step, run_steps
from data_pipeline.filters.gopher import duplicate_fractions, ngram_char_fractions

# Mean length 4.0 (40 characters per 10 words), five distinct stop words, every word alphabetic.
PROSE = ["the", "river", "runs", "to", "of", "stone", "and", "bright", "fields", "with"]
NO_STOP = ["river", "runs", "stone", "bright", "fields"]


def prose(n: int) -> list[str]:
    return list(itertools.islice(itertools.cycle(PROSE), n))


def tokens(text: str) -> list[str]:
    return text.split()


def run(step_name: str, text: str, **params) -> Doc:
    return run_steps([build_step(step_name, params)], [text])[0]


def reason(step_name: str, text: str, **params) -> str | None:
    return run(step_name, text, **params).drop_reason


# --------------------------------------------------------------------------- gopher_quality


def test_quality_metrics_of_a_small_document():
    text = "The cat, of course, sat.\n• Buy 42 apples...\n\n# Notes … 2024 —\n   \nthe end"
    doc = run("gopher_quality", text, drop=False)
    # 16 tokens; "•", "#", "…", "—" are punctuation only, so 12 words of 49 characters.
    assert doc.annotations == pytest.approx(
        {
            "gopher_word_count": 12,
            "gopher_mean_word_length": 49 / 12,
            "gopher_hash_ratio": 1 / 16,
            "gopher_ellipsis_ratio": 2 / 16,  # "..." and "…"
            "gopher_bullet_lines": 1 / 4,  # 4 non-empty lines; blank and whitespace-only ones do not count
            "gopher_ellipsis_lines": 1 / 4,
            "gopher_alpha_words": 10 / 16,  # "42", "2024" and the four symbols have no letter
            "gopher_stop_words": 2,  # "The"/"the" and "of": distinct words, any case
        }
    )
    assert doc.kept  # drop=False only annotates
    assert run("gopher_quality", text).drop_reason == "gopher_quality:too_few_words"


def test_quality_keeps_prose_and_declares_its_columns():
    step = build_step("gopher_quality")
    doc = run_steps([step], [" ".join(prose(60))])[0]
    assert doc.kept
    assert list(doc.annotations) == list(step.columns())
    table = annotation_table([step], [doc], lambda d: True)
    assert table["gopher_mean_word_length"].to_pylist() == [4.0]


@pytest.mark.parametrize(("n_words", "expected"), [(50, None), (49, "too_few_words")])
def test_min_words(n_words, expected):
    doc = run("gopher_quality", " ".join(prose(n_words)))
    assert doc.annotations["gopher_word_count"] == n_words
    assert doc.drop_reason == (expected and f"gopher_quality:{expected}")


@pytest.mark.parametrize(
    ("n_words", "expected"), [(100_000, None), (100_001, "gopher_quality:too_many_words")]
)
def test_max_words(n_words, expected):
    assert reason("gopher_quality", " ".join(prose(n_words))) == expected


def test_punctuation_tokens_are_not_words():
    text = " ".join(prose(49)) + " - | ... ©"
    doc = run("gopher_quality", text)
    assert doc.annotations["gopher_word_count"] == 49
    assert doc.annotations["gopher_mean_word_length"] == pytest.approx(4.0)  # 196 characters / 49
    assert doc.drop_reason == "gopher_quality:too_few_words"


@pytest.mark.parametrize(
    ("words", "mean", "expected"),
    [
        (["of", "with"] * 25, 3.0, None),
        (["of", "with"] * 24 + ["of", "wit"], 2.98, "short_words"),
        (["understand"] * 47 + ["of", "the", "x" * 25], 10.0, None),
        (["understand"] * 47 + ["of", "the", "x" * 26], 10.02, "long_words"),
    ],
)
def test_mean_word_length(words, mean, expected):
    doc = run("gopher_quality", " ".join(words))
    assert doc.annotations["gopher_mean_word_length"] == pytest.approx(mean)
    assert doc.drop_reason == (expected and f"gopher_quality:{expected}")


def _marked(n_marked: int, mark, n_words: int = 50) -> str:
    """Prose with `mark(word, i)` applied to the first `n_marked` words (never the last one)."""
    words = prose(n_words)
    return " ".join(mark(w, i) if i < n_marked else w for i, w in enumerate(words))


@pytest.mark.parametrize(("n_hashes", "expected"), [(5, None), (6, "gopher_quality:too_many_hashes")])
def test_hash_ratio(n_hashes, expected):
    doc = run("gopher_quality", _marked(n_hashes, lambda w, i: "#" + w))
    assert doc.annotations["gopher_hash_ratio"] == pytest.approx(n_hashes / 50)
    assert doc.drop_reason == expected


@pytest.mark.parametrize(("n_ellipses", "expected"), [(5, None), (6, "gopher_quality:too_many_ellipses")])
def test_ellipsis_ratio(n_ellipses, expected):
    doc = run("gopher_quality", _marked(n_ellipses, lambda w, i: w + ("..." if i % 2 else "…")))
    assert doc.annotations["gopher_ellipsis_ratio"] == pytest.approx(n_ellipses / 50)
    assert doc.annotations["gopher_ellipsis_lines"] == 0.0
    assert doc.drop_reason == expected


def _lines(n_lines: int, decorate) -> str:
    """Lines of six prose words, `decorate(line, i)` applied, separated by blank lines."""
    words = prose(6 * n_lines)
    return "\n\n".join(decorate(" ".join(words[6 * i : 6 * i + 6]), i) for i in range(n_lines))


@pytest.mark.parametrize(
    ("n_lines", "share", "expected"), [(10, 0.9, None), (11, 10 / 11, "gopher_quality:bullet_lines")]
)
def test_bullet_lines(n_lines, share, expected):
    bullets = ["•", "-", "*", "–", "▪"]
    text = _lines(n_lines, lambda line, i: f"  {bullets[i % 5]} {line}" if i < n_lines - 1 else line)
    doc = run("gopher_quality", text)
    assert doc.annotations["gopher_bullet_lines"] == pytest.approx(share)
    assert doc.drop_reason == expected


@pytest.mark.parametrize(("n_ending", "expected"), [(3, None), (4, "gopher_quality:ellipsis_lines")])
def test_ellipsis_lines(n_ending, expected):
    text = _lines(10, lambda line, i: line + ("...  " if i % 2 else " …") if i < n_ending else line)
    doc = run("gopher_quality", text)
    assert doc.annotations["gopher_ellipsis_lines"] == pytest.approx(n_ending / 10)
    assert doc.drop_reason == expected


@pytest.mark.parametrize(
    ("tokens", "share", "expected"),
    [
        (prose(40) + ["1234"] * 10, 0.8, None),
        (prose(39) + ["1234"] * 11, 0.78, "too_few_alpha_words"),
        (prose(56) + ["—"] * 14, 0.8, None),  # symbol tokens count against the share too
        (prose(56) + ["—"] * 15, 56 / 71, "too_few_alpha_words"),
    ],
)
def test_alpha_words(tokens, share, expected):
    doc = run("gopher_quality", " ".join(tokens))
    assert doc.annotations["gopher_alpha_words"] == pytest.approx(share)
    assert doc.drop_reason == (expected and f"gopher_quality:{expected}")


@pytest.mark.parametrize(
    ("extra", "count", "expected"),
    [
        (["The", "of,"], 2, None),  # case and a trailing comma do not hide a stop word
        (["THAT.", "have"], 2, None),
        (["the", "the", "the"], 1, "gopher_quality:too_few_stop_words"),  # distinct words, not occurrences
        (["theory", "often"], 0, "gopher_quality:too_few_stop_words"),
    ],
)
def test_stop_words(extra, count, expected):
    words = list(itertools.islice(itertools.cycle(NO_STOP), 50)) + extra
    doc = run("gopher_quality", " ".join(words))
    assert doc.annotations["gopher_stop_words"] == count
    assert doc.drop_reason == expected


def test_quality_reports_the_first_failing_check_and_custom_stop_words():
    assert reason("gopher_quality", "#a #b #c") == "gopher_quality:too_few_words"
    assert reason("gopher_quality", "#a #b #c", min_words=None) == "gopher_quality:short_words"
    french = " ".join(["le", "chat", "des", "montagnes"] * 13)
    assert reason("gopher_quality", french) == "gopher_quality:too_few_stop_words"
    assert reason("gopher_quality", french, stop_words=["le", "la", "des"]) is None


def test_quality_of_an_empty_document():
    doc = run("gopher_quality", "")
    assert set(doc.annotations.values()) == {0}
    assert doc.drop_reason == "gopher_quality:too_few_words"


@pytest.mark.parametrize(
    "params",
    [
        {"min_words": -1},
        {"min_words": 2.5},
        {"min_words": 100, "max_words": 10},
        {"min_mean_word_length": 11},
        {"max_hash_ratio": "0.1"},
        {"max_bullet_lines": 1.5},
        {"min_alpha_words": True},
        {"stop_words": "the"},
        {"bullets": ["•", ""]},
        {"no_such_param": 1},
    ],
)
def test_quality_rejects_bad_params(params):
    with pytest.raises(ValueError):
        build_step("gopher_quality", params)


# --------------------------------------------------------------------------- gopher_repetition


def fillers(total_chars: int) -> list[str]:
    """Distinct words ("z" + 3 letters, the last one padded) with `total_chars` characters in all."""
    combos = ("z" + "".join(p) for p in itertools.product(string.ascii_lowercase, repeat=3))
    words = list(itertools.islice(combos, total_chars // 4))
    words[-1] += "z" * (total_chars % 4)
    return words


def interleave(gram: list[str], times: int, total_chars: int) -> str:
    """`gram` `times` times, each copy between distinct fillers; `total_chars` token characters in all."""
    fill = fillers(total_chars - times * sum(map(len, gram)))
    groups = [fill[i :: times + 1] for i in range(times + 1)]
    return " ".join(groups[0] + [w for g in groups[1:] for w in gram + g])


def test_repetition_metrics_of_small_documents():
    # Lines: "a b" three times (stripped, blank lines ignored) among five lines of 13 characters.
    doc = run("gopher_repetition", "a b\nc d\na b\n\n  a b  \ne", drop=False)
    assert doc.annotations["gopher_dup_line_frac"] == pytest.approx(3 / 5)
    assert doc.annotations["gopher_dup_line_char_frac"] == pytest.approx(9 / 13)
    # Paragraphs of 10, 5 and 10 characters; the first is repeated.
    doc = run("gopher_repetition", "alpha beta\n\ngamma\n \nalpha beta", drop=False)
    assert doc.annotations["gopher_dup_para_frac"] == pytest.approx(2 / 3)
    assert doc.annotations["gopher_dup_para_char_frac"] == pytest.approx(20 / 25)
    # "the cat" twice: 2 x 6 characters of 15; no 3-gram repeats.
    doc = run("gopher_repetition", "the cat the cat sat", drop=False)
    assert doc.annotations["gopher_top_2gram_char_frac"] == pytest.approx(12 / 15)
    assert doc.annotations["gopher_top_3gram_char_frac"] == 0.0


def test_top_ngram_definition():
    # Equally frequent 2-grams: the one with more characters counts, wherever it first occurs.
    assert ngram_char_fractions(tokens("d e d e ab c ab c"), [2], [])[0] == {2: pytest.approx(6 / 10)}
    # Overlapping occurrences each count (the definition is count x characters).
    assert ngram_char_fractions(tokens("a a a a"), [2], [])[0] == {2: pytest.approx(6 / 4)}
    # An n-gram seen once is no repetition (datatrove scores "one two" here, 7/13 > 0.2).
    assert ngram_char_fractions(tokens("one two three"), [2], [])[0] == {2: 0.0}


def test_duplicate_ngram_definition():
    # Both copies of "aa b cc" count: 10 of 12 characters (datatrove counts only the second copy).
    assert ngram_char_fractions(tokens("aa b cc d aa b cc e"), [], [3])[1] == {3: pytest.approx(10 / 12)}
    # Overlapping repeats cover every token once: 5/5, not the 6/5 of summing both 3-grams.
    assert ngram_char_fractions(tokens("a b a b a"), [], [3])[1] == {3: 1.0}
    # Every 3-gram repeats, so all 9 tokens are covered; datatrove's skip-ahead walk finds 6 of 9.
    assert ngram_char_fractions(tokens("a b c a b c a b c"), [], [3])[1] == {3: 1.0}
    assert ngram_char_fractions(["x"] * 4, [], [5])[1] == {5: 0.0}  # shorter than n


def reference_ngram_fractions(words, top_ns, dup_ns):
    """The definitions, computed the slow obvious way."""
    total = sum(map(len, words))
    top, dup = {}, {}
    for n in top_ns:
        counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        most = max(counts.values(), default=0)
        chars = max((sum(map(len, g)) for g, k in counts.items() if k == most), default=0)
        top[n] = most * chars / total if most > 1 else 0.0
    for n in dup_ns:
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        counts = Counter(grams)
        covered = {i + k for i, g in enumerate(grams) if counts[g] > 1 for k in range(n)}
        dup[n] = sum(len(words[i]) for i in covered) / total if covered else 0.0
    return top, dup


def test_ngram_fractions_match_the_reference():
    rng = random.Random(0)
    for _ in range(300):
        vocab = [
            "".join(rng.choices("abcxyz", k=rng.randint(1, 5))) for _ in range(rng.choice([1, 2, 4, 30]))
        ]
        words = rng.choices(vocab, k=rng.randint(0, 60))
        if len(words) > 10:  # splice in a copied run, so that long n-grams repeat too
            a = rng.randrange(len(words) - 5)
            words[rng.randrange(len(words)) : 0] = words[a : a + rng.randint(2, 12)]
        top_ns, dup_ns = set(rng.sample(range(1, 12), 3)), set(rng.sample(range(1, 12), 5))
        got_top, got_dup = ngram_char_fractions(words, top_ns, dup_ns)
        ref_top, ref_dup = reference_ngram_fractions(words, top_ns, dup_ns)
        assert got_top == pytest.approx(ref_top) and got_dup == pytest.approx(ref_dup), words


def test_duplicate_fractions_match_the_reference():
    rng = random.Random(1)
    for _ in range(200):
        items = rng.choices(["a", "bb", "ccc", "dddd", "e e"], k=rng.randint(0, 8))
        counts = Counter(items)
        dups = [x for x in items if counts[x] > 1]
        chars = sum(map(len, items))
        expected = (len(dups) / len(items), sum(map(len, dups)) / chars) if dups else (0.0, 0.0)
        assert duplicate_fractions(items) == pytest.approx(expected)


@pytest.mark.parametrize(("n_unique", "expected"), [(7, None), (6, "dup_lines")])
def test_dup_line_frac(n_unique, expected):
    # "ok" on 3 of 10 lines (0.30), then of 9 (0.33); their characters stay under 0.20 (6/34, 6/30).
    fill = fillers(4 * n_unique)
    doc = run("gopher_repetition", "\n".join(["ok", *fill[:2], "ok", *fill[2:4], "ok", *fill[4:]]))
    assert doc.annotations["gopher_dup_line_frac"] == pytest.approx(3 / (3 + n_unique))
    assert doc.annotations["gopher_dup_line_char_frac"] == pytest.approx(6 / (6 + 4 * n_unique))
    assert doc.drop_reason == (expected and f"gopher_repetition:{expected}")


@pytest.mark.parametrize(
    ("dup", "share", "expected"),
    [("okok", 8 / 40, None), ("okoko", 10 / 42, "dup_line_chars")],  # 2 of 10 lines of 4 characters
)
def test_dup_line_char_frac(dup, share, expected):
    fill = fillers(32)
    doc = run("gopher_repetition", "\n".join([dup, *fill[:4], dup, *fill[4:]]))
    assert doc.annotations["gopher_dup_line_frac"] == pytest.approx(0.2)
    assert doc.annotations["gopher_dup_line_char_frac"] == pytest.approx(share)
    assert doc.drop_reason == (expected and f"gopher_repetition:{expected}")


@pytest.mark.parametrize(("n_unique", "expected"), [(7, None), (6, "dup_paragraphs")])
def test_dup_para_frac(n_unique, expected):
    # "ok" paragraphs 3 times among three-line unique ones: 3 of 24 (21) lines are duplicates.
    fill = fillers(4 * 3 * n_unique)
    unique = ["\n".join(fill[3 * i : 3 * i + 3]) for i in range(n_unique)]
    doc = run("gopher_repetition", "\n\n".join(["ok", *unique[:3], "ok", *unique[3:], "ok"]))
    assert doc.annotations["gopher_dup_para_frac"] == pytest.approx(3 / (3 + n_unique))
    assert doc.annotations["gopher_dup_line_frac"] == pytest.approx(3 / (3 + 3 * n_unique))
    assert doc.drop_reason == (expected and f"gopher_repetition:{expected}")


@pytest.mark.parametrize(
    ("dup", "para_share", "line_share", "expected"),
    [  # a two-line paragraph twice among ten one-word paragraphs of 8 characters
        ("aaaa\nbbbbb", 20 / 100, 18 / 98, None),
        ("aaaaa\nbbbbb", 22 / 102, 20 / 100, "dup_paragraph_chars"),
    ],
)
def test_dup_para_char_frac(dup, para_share, line_share, expected):
    fill = [w + "zzzz" for w in fillers(40)]
    doc = run("gopher_repetition", "\n\n".join([fill[0], dup, *fill[1:5], dup, *fill[5:]]))
    assert doc.annotations["gopher_dup_para_char_frac"] == pytest.approx(para_share)
    assert doc.annotations["gopher_dup_line_char_frac"] == pytest.approx(line_share)
    assert doc.annotations["gopher_dup_line_frac"] == pytest.approx(4 / 14)
    assert doc.drop_reason == (expected and f"gopher_repetition:{expected}")


@pytest.mark.parametrize(
    ("gram", "times", "limit"),
    [(["aa", "bb"], 5, 0.20), (["aa", "bb", "cc"], 3, 0.18), (["aa", "bb", "cc", "dd"], 2, 0.16)],
)
def test_top_ngram_thresholds(gram, times, limit):
    n = len(gram)
    at_limit = run("gopher_repetition", interleave(gram, times, 100))  # 100 characters of tokens
    assert at_limit.annotations[f"gopher_top_{n}gram_char_frac"] == limit
    assert at_limit.kept
    past = run("gopher_repetition", interleave(gram, times, 99))
    assert past.annotations[f"gopher_top_{n}gram_char_frac"] == pytest.approx(limit * 100 / 99)
    assert past.drop_reason == f"gopher_repetition:top_{n}gram"


@pytest.mark.parametrize(("n", "limit"), [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)])
def test_dup_ngram_thresholds(n, limit):
    # An n-gram of 500 * limit characters twice: 1000 * limit of 1000 characters, then of 999.
    chars = round(500 * limit)
    gram = [string.ascii_lowercase[i] * (chars // n + (i < chars % n)) for i in range(n)]
    at_limit = run("gopher_repetition", interleave(gram, 2, 1000))
    for m in range(5, 11):  # shorter n-grams inside the copies cover the same tokens, longer ones repeat not
        assert at_limit.annotations[f"gopher_dup_{m}gram_char_frac"] == (limit if m <= n else 0.0)
    assert at_limit.kept
    past = run("gopher_repetition", interleave(gram, 2, 999))
    assert past.drop_reason == f"gopher_repetition:dup_{n}grams"


def test_repetition_of_tiny_documents():
    for text in ("", "word", "\n\n\n"):
        doc = run("gopher_repetition", text)
        assert doc.kept and set(doc.annotations.values()) == {0.0}


def test_repetition_ngram_params():
    # YAML/JSON give string keys, and [n, limit] pairs work too; the columns follow the n's.
    params = {"max_top_ngram_char_frac": {"3": 0.5}, "max_dup_ngram_char_frac": [[2, 0.9]]}
    step = build_step("gopher_repetition", params)
    assert step.max_top_ngram_char_frac == {3: 0.5} and step.max_dup_ngram_char_frac == {2: 0.9}
    grams = [c for c in step.columns() if "gram" in c]
    assert grams == ["gopher_top_3gram_char_frac", "gopher_dup_2gram_char_frac"]
    doc = run_steps([step], ["a b c a b c"])[0]
    assert list(doc.annotations) == list(step.columns())
    assert doc.annotations["gopher_top_3gram_char_frac"] == 1.0  # "a b c" twice: 2 x 3 of 6 characters
    assert doc.annotations["gopher_dup_2gram_char_frac"] == 1.0
    assert doc.drop_reason == "gopher_repetition:top_3gram"  # top n-grams are checked before duplicates
    params["max_top_ngram_char_frac"] = {"3": 1.0}
    assert run("gopher_repetition", "a b c a b c", **params).drop_reason == "gopher_repetition:dup_2grams"


@pytest.mark.parametrize(
    "params",
    [
        {"max_dup_line_frac": 1.5},
        {"max_dup_para_char_frac": -0.1},
        {"max_top_ngram_char_frac": {0: 0.2}},
        {"max_top_ngram_char_frac": {"two": 0.2}},
        {"max_dup_ngram_char_frac": {5: None}},
        {"max_dup_ngram_char_frac": [5, 0.15]},
        {"max_dup_ngram_char_frac": {2.5: 0.1}},
    ],
)
def test_repetition_rejects_bad_params(params):
    with pytest.raises(ValueError):
        build_step("gopher_repetition", params)


def test_web_corpus_spam_is_dropped_and_prose_mostly_kept():
    corpus = web_corpus()
    docs = run_steps([build_step("gopher_repetition"), build_step("gopher_quality")], [t for _, t in corpus])
    by_kind: dict[str, Counter] = {}
    for (kind, _), doc in zip(corpus, docs, strict=True):
        by_kind.setdefault(kind, Counter())[doc.drop_reason] += 1
    expected = {
        "repeated_lines": "gopher_repetition:dup_lines",
        "menu": "gopher_repetition:dup_lines",
        "boilerplate": "gopher_repetition:dup_lines",
        "hashtags": "gopher_quality:too_many_hashes",
        "word_salad": "gopher_quality:too_few_stop_words",
        "one_liner": "gopher_quality:too_few_words",
    }
    assert set(expected) == set(SPAM_KINDS)
    for kind, why in expected.items():
        assert set(by_kind[kind]) == {why}, kind
    prose_docs = by_kind["prose"]
    assert prose_docs[None] >= 0.8 * sum(prose_docs.values())
