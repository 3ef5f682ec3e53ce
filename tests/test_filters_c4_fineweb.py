"""The `c4` and `fineweb` steps: C4's exact line rewriting, and every threshold from both sides."""

from __future__ import annotations

import pytest

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, build_step, run_steps
from data_pipeline.filters.c4 import count_sentences


def run(step: Step, text: str) -> Doc:
    [doc] = run_steps([step], [text])
    assert set(doc.annotations) == set(step.columns()), "every declared column is filled"
    return doc


# ----------------------------------------------------------------------------------------------- c4

# Three 5-word lines, one sentence each: passes every C4 rule at its defaults.
THREE_SENTENCES = [
    "The first line says something.",
    "The second line adds more.",
    "The third line ends here.",
]


def test_c4_rewrites_a_page_line_by_line() -> None:
    page = "\n".join(
        [
            "Home | About | Contact",  # no end mark
            "  This is the first real sentence of the page. And a second one here.  ",  # kept, 2 sentences
            "Please enable JavaScript to view the comments powered by Disqus.",  # javascript
            "Short line here.",  # 3 words < 5
            "The war ended in 1945.[1] Historians still debate its causes today.[citation needed]",  # kept, 2
            "",  # blank: neither kept nor counted
            "This site uses cookies to improve your experience, you agree.",  # policy
            'A final sentence that ends with a quote "like this"',  # kept: a straight quote is an end mark
            "An ending with an ellipsis is not a sentence end, so...",  # ellipsis
            "Seen in the wiki article about it. [edit]",  # citation removed, now ends in a space
            "x" * 1001 + " is a very long word indeed, surely.",  # word over 1000 characters
            "It ends with a curly quote which C4 does not accept.\u201d",  # ” is not an end mark
        ]
    )
    doc = run(build_step("c4"), page)
    assert doc.kept
    assert doc.text == (
        "This is the first real sentence of the page. And a second one here.\n"
        "The war ended in 1945. Historians still debate its causes today.\n"
        'A final sentence that ends with a quote "like this"'
    )
    assert doc.annotations == {
        "c4_lines_kept": 3,
        "c4_lines_removed": 8,
        "c4_lines_too_long_word": 1,
        "c4_lines_no_terminal_punct": 4,
        "c4_lines_too_few_words": 1,
        "c4_lines_javascript": 1,
        "c4_lines_policy": 1,
        "c4_citations_removed": 3,
        "c4_lorem_ipsum_lines": 0,
        "c4_curly_bracket_lines": 0,
        "c4_sentences": 5,
    }


def test_c4_splits_lines_like_str_splitlines_and_joins_with_newline() -> None:
    doc = run(build_step("c4"), "\r\n".join(THREE_SENTENCES[:2]) + "\u2028" + THREE_SENTENCES[2] + "\r\n")
    assert doc.text == "\n".join(THREE_SENTENCES)
    assert doc.annotations["c4_lines_kept"] == 3


def test_c4_min_words_per_line_boundary() -> None:
    step = build_step("c4", {"min_num_sentences": None})
    doc = run(step, "Alpha beta gamma delta epsilon.\nAlpha beta gamma delta.")
    assert doc.text == "Alpha beta gamma delta epsilon."  # 5 words kept, 4 removed
    assert doc.annotations["c4_lines_too_few_words"] == 1
    # Words are counted after citations go: "[1]" is not a word.
    doc = run(step, "Alpha beta gamma delta [1] epsilon.\nAlpha beta gamma [2] delta.")
    assert doc.text == "Alpha beta gamma delta  epsilon."
    assert doc.annotations["c4_lines_too_few_words"] == 1
    loose = build_step("c4", {"min_num_sentences": None, "min_words_per_line": 4})
    assert run(loose, "Alpha beta gamma delta.").text == "Alpha beta gamma delta."


def test_c4_max_word_length_boundary() -> None:
    step = build_step("c4", {"min_num_sentences": None})
    inside = "w" * 1000 + " and four more words."
    outside = "w" * 1001 + " and four more words."
    assert run(step, inside).text == inside
    doc = run(step, outside)
    assert doc.text == ""
    assert doc.annotations["c4_lines_too_long_word"] == 1


def test_c4_min_num_sentences_boundary() -> None:
    step = build_step("c4")
    kept = run(step, "\n".join(THREE_SENTENCES))
    assert kept.kept and kept.annotations["c4_sentences"] == 3
    page = "\n".join(THREE_SENTENCES[:2] + ["no end mark on this one"])
    dropped = run(step, page)
    assert dropped.drop_reason == "c4:too_few_sentences"
    assert dropped.annotations["c4_sentences"] == 2
    assert dropped.text == page  # a dropped page keeps its text for the dropped/ output
    # Sentences inside one line count too.
    one_line = run(step, "First one is here. Second one is here. Third one is here.")
    assert one_line.kept and one_line.annotations["c4_sentences"] == 3


def test_c4_page_rules_lorem_ipsum_and_curly_bracket() -> None:
    step = build_step("c4")
    lorem = run(step, "\n".join(THREE_SENTENCES + ["Lorem Ipsum dolor sit amet, consectetur."]))
    assert lorem.drop_reason == "c4:lorem_ipsum"
    assert lorem.annotations["c4_lorem_ipsum_lines"] == 1
    curly = run(step, "\n".join(THREE_SENTENCES + ["Call the function f() { return x; } now."]))
    assert curly.drop_reason == "c4:curly_bracket"
    assert curly.annotations["c4_curly_bracket_lines"] == 1
    # As in c4_utils, only lines that pass rules 1-4 can drop the page; a javascript line goes first.
    survivors = ["lorem ipsum without an end mark", "if (x) { y }", "Our javascript code { is here } today."]
    doc = run(step, "\n".join(THREE_SENTENCES + survivors))
    assert doc.kept and doc.text == "\n".join(THREE_SENTENCES)
    assert doc.annotations["c4_lines_javascript"] == 1
    assert doc.annotations["c4_lorem_ipsum_lines"] == doc.annotations["c4_curly_bracket_lines"] == 0
    both = run(step, "\n".join(THREE_SENTENCES + ["Lorem ipsum text with { a bracket }."]))
    assert both.drop_reason == "c4:lorem_ipsum"  # fixed order: lorem_ipsum before curly_bracket
    off = build_step("c4", {"filter_lorem_ipsum": False, "filter_curly_bracket": False})
    assert run(off, both.text).kept


@pytest.mark.parametrize(
    "line",
    [
        "Read our Terms of Use before going on.",
        "See the privacy policy for all details.",
        "Our cookie policy explains it all.",
        "This website uses cookies for analytics.",
        "We explain our use of cookies below.",
        "We use cookies to help you here.",
    ],
)
def test_c4_policy_lines(line: str) -> None:
    doc = run(build_step("c4"), "\n".join([*THREE_SENTENCES, line]))
    assert doc.text == "\n".join(THREE_SENTENCES)
    assert doc.annotations["c4_lines_policy"] == 1
    assert run(build_step("c4", {"filter_policy": False}), line).annotations["c4_lines_policy"] == 0


def test_c4_switches() -> None:
    page = "\n".join([*THREE_SENTENCES, "No end mark but enough words", "Citations stay right here now [1]."])
    loose = build_step("c4", {"filter_no_terminal_punct": False, "remove_citations": False})
    assert run(loose, page).text == page
    curly = build_step("c4", {"end_marks": [".", "\u201d"], "min_num_sentences": 1})
    assert run(curly, "He said \u201cthis is fine today.\u201d").annotations["c4_lines_kept"] == 1
    js_page = "\n".join([*THREE_SENTENCES, "Enable JavaScript in your browser now."])
    assert run(build_step("c4"), js_page).annotations["c4_lines_javascript"] == 1
    assert run(build_step("c4", {"filter_javascript": False}), js_page).text == js_page


def test_c4_annotate_only_modes() -> None:
    page = "\n".join(THREE_SENTENCES[:2] + ["menu"])
    # drop=False: the page stays (too few sentences) and is still cleaned.
    doc = run(build_step("c4", {"drop": False}), page)
    assert doc.kept and doc.text == "\n".join(THREE_SENTENCES[:2])
    assert doc.annotations["c4_sentences"] == 2
    # remove_lines=False: the text is left alone, the counts are the same.
    doc = run(build_step("c4", {"remove_lines": False}), "\n".join([*THREE_SENTENCES, "menu"]))
    assert doc.kept and doc.text == "\n".join([*THREE_SENTENCES, "menu"]) and not doc.text_changed
    assert doc.annotations["c4_lines_no_terminal_punct"] == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("A single plain sentence.", 1),
        ("Really? Yes! Fine.", 3),
        ("Dr. Smith went to Washington. He liked it.", 2),
        ("We use e.g. this and U.S. things here.", 1),
        ("J. R. R. Tolkien wrote books.", 1),
        ("It costs 3.5 dollars. Cheap.", 2),
        ("Wait... Then it came.", 2),
        ("wait... and then it went.", 1),
        ('He said "Stop!" and then left.', 2),
        ("A sentence ends. then a lowercase one.", 2),
        ("(See fig. 3 for details.) Next one.", 2),
    ],
)
def test_count_sentences(line: str, expected: int) -> None:
    assert count_sentences(line) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"min_words_per_line": -1},
        {"min_words_per_line": "5"},
        {"min_num_sentences": 2.5},
        {"max_word_length": 0},
        {"end_marks": "."},
        {"end_marks": []},
        {"policy_substrings": ["ok", ""]},
        {"filter_policy": "yes"},
        {"no_such_param": 1},
    ],
)
def test_c4_bad_params(params: dict) -> None:
    with pytest.raises(ValueError):
        build_step("c4", params)


# ------------------------------------------------------------------------------------------ fineweb


def prose(i: int) -> str:
    """A 43-character line ending in a period, distinct for each i < 100."""
    return f"Prose line number {i:02d} ends with a period ok."


def menu(i: int) -> str:
    """A 41-character line without punctuation, distinct for each i < 100."""
    return f"Navigation item {i:02d} without any final mark"


def short(i: int) -> str:
    return f"Item {i:02d}."


def test_fineweb_helpers_have_the_lengths_the_tests_rely_on() -> None:
    assert {len(prose(i)) for i in range(100)} == {43}
    assert {len(menu(i)) for i in range(100)} == {41}
    assert {len(short(i)) for i in range(100)} == {8}


def test_fineweb_line_punct_ratio_boundary() -> None:
    step = build_step("fineweb")
    at = run(step, "\n".join([prose(i) for i in range(3)] + [menu(i) for i in range(22)]))
    assert at.annotations["fineweb_line_punct_ratio"] == pytest.approx(3 / 25)  # 0.12: dropped (<=)
    assert at.drop_reason == "fineweb:line_punct_ratio"
    above = run(step, "\n".join([prose(i) for i in range(4)] + [menu(i) for i in range(21)]))
    assert above.annotations["fineweb_line_punct_ratio"] == pytest.approx(4 / 25)
    assert above.kept


def test_fineweb_lines_are_nonempty_and_stripped() -> None:
    # Blank lines do not count; "end.   " ends in punctuation; ' and " are stop chars.
    lines = [prose(0) + "   ", "", "  " + menu(0), "", "'Quoted line with enough characters'", menu(1)]
    doc = run(build_step("fineweb"), "\n".join(lines))
    assert doc.annotations["fineweb_line_punct_ratio"] == pytest.approx(2 / 4)
    assert doc.annotations["fineweb_short_line_ratio"] == 0.0


def test_fineweb_line_punct_exclude_zero() -> None:
    page = "\n".join(menu(i) for i in range(5))
    assert run(build_step("fineweb"), page).drop_reason == "fineweb:line_punct_ratio"
    assert run(build_step("fineweb", {"line_punct_exclude_zero": True}), page).kept
    assert run(build_step("fineweb", {"line_punct_thr": None}), page).kept


def test_fineweb_short_line_ratio_boundary() -> None:
    step = build_step("fineweb")
    at = run(step, "\n".join([short(i) for i in range(67)] + [prose(i) for i in range(33)]))
    assert at.annotations["fineweb_short_line_ratio"] == pytest.approx(0.67)
    assert at.drop_reason == "fineweb:short_lines"
    below = run(step, "\n".join([short(i) for i in range(66)] + [prose(i) for i in range(34)]))
    assert below.annotations["fineweb_short_line_ratio"] == pytest.approx(0.66)
    assert below.kept


def test_fineweb_short_line_length_is_inclusive() -> None:
    line_30 = "A line of exactly thirty char."
    line_31 = "A line of exactly thirty chars."
    assert (len(line_30), len(line_31)) == (30, 31)
    doc = run(build_step("fineweb"), f"{line_30}\n{line_31}")
    assert doc.annotations["fineweb_short_line_ratio"] == 0.5
    doc = run(build_step("fineweb", {"short_line_length": 31}), f"{line_30}\n{line_31}")
    assert doc.annotations["fineweb_short_line_ratio"] == 1.0
    assert doc.drop_reason == "fineweb:short_lines"


def test_fineweb_duplicate_line_chars_boundary() -> None:
    step = build_step("fineweb")
    # 10 lines of 43 characters, one a repeat: 43 / 430 = 0.1, dropped (>=).
    at = run(step, "\n".join([prose(i) for i in range(9)] + [prose(0)]))
    assert at.annotations["fineweb_char_dup_ratio"] == pytest.approx(0.1)
    assert at.drop_reason == "fineweb:duplicate_line_chars"
    below = run(step, "\n".join([prose(i) for i in range(10)] + [prose(0)]))
    assert below.annotations["fineweb_char_dup_ratio"] == pytest.approx(1 / 11)
    assert below.kept
    # Only the copies after the first count: three copies of one line in ten is 2/10.
    three = run(step, "\n".join([prose(i) for i in range(8)] + [prose(0), prose(0)]))
    assert three.annotations["fineweb_char_dup_ratio"] == pytest.approx(0.2)


def test_fineweb_new_line_ratio_is_off_by_default() -> None:
    # 10 lines of 5 words: 9 newlines / 50 words = 0.18.
    page = "\n".join(f"Alphabetical betatron gamma delta {i}." for i in range(10))
    doc = run(build_step("fineweb"), page)
    assert doc.kept and "fineweb_new_line_ratio" not in doc.annotations  # no column when off
    doc = run(build_step("fineweb", {"new_line_ratio": 0.18}), page)
    assert doc.kept and doc.annotations["fineweb_new_line_ratio"] == pytest.approx(0.18)  # not above
    assert run(build_step("fineweb", {"new_line_ratio": 0.17}), page).drop_reason == "fineweb:list_ratio"


def test_fineweb_annotations_of_a_mixed_page() -> None:
    lines = [prose(0), prose(0), menu(0), short(0), "", prose(1)]
    doc = run(build_step("fineweb", {"drop": False, "new_line_ratio": 0.3}), "\n".join(lines))
    assert doc.kept
    ann = doc.annotations
    assert ann["fineweb_line_punct_ratio"] == pytest.approx(4 / 5)  # prose x3, short(0)
    assert ann["fineweb_short_line_ratio"] == pytest.approx(1 / 5)
    assert ann["fineweb_char_dup_ratio"] == pytest.approx(43 / (43 * 3 + 41 + 8))
    words = 9 * 3 + 7 + 2  # prose: 9 words, menu: 7, short: 2
    assert ann["fineweb_new_line_ratio"] == pytest.approx(5 / words)


def test_fineweb_empty_page() -> None:
    doc = run(build_step("fineweb"), "\n\n  \n")
    assert doc.drop_reason == "fineweb:line_punct_ratio"
    assert doc.annotations == dict.fromkeys(build_step("fineweb").columns(), 0.0)


@pytest.mark.parametrize(
    "params",
    [
        {"line_punct_thr": 1.5},
        {"short_line_thr": -0.1},
        {"char_duplicates_ratio": "0.1"},
        {"short_line_length": -1},
        {"short_line_length": 30.5},
        {"new_line_ratio": -1},
        {"stop_chars": []},
        {"stop_chars": "."},
        {"line_punct_exclude_zero": 1},
        {"no_such_param": 1},
    ],
)
def test_fineweb_bad_params(params: dict) -> None:
    with pytest.raises(ValueError):
        build_step("fineweb", params)


def test_fineweb_shares_use_one_division_at_the_inclusive_boundary():
    # 9 of 75 lines punctuated is exactly 0.12 (drop, <= 0.12); 9 * (1/75) would be 0.12000000000000001.
    lines = [f"Line number {i} ends with a full stop." for i in range(9)]
    lines += [f"line number {i} without an ending mark and long enough" for i in range(66)]
    doc = run_steps([build_step("fineweb")], ["\n".join(lines)])[0]
    assert doc.annotations["fineweb_line_punct_ratio"] == 9 / 75
    assert doc.drop_reason == "fineweb:line_punct_ratio"


def test_c4_sentence_counting_is_linear_on_runs_of_dots():
    leaders = "Chapter one" + "." * 5000 + "1\n"
    page = leaders * 200 + "One sentence here is fine. Two sentences are here now. Three is enough here."
    doc = run_steps([build_step("c4", {"filter_no_terminal_punct": False})], [page])[0]
    assert doc.annotations["c4_sentences"] >= 3
