"""Line-level de-duplication within a bucket (CCNet normalisation, Llama 3's "more than 6 times")."""

from __future__ import annotations

from hashlib import blake2b

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_pipeline.dedup.lines import LineDedup, line_hash, normalized_lines
from data_pipeline.document import Doc
from data_pipeline.filters.base import build_step, run_steps
from data_pipeline.stages import run_filter

BOILER = "Subscribe to our newsletter"


def corpus(n_docs: int, n_with_line: int, line: str = BOILER) -> list[str]:
    """Documents with unique content lines; the first `n_with_line` also carry `line`."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    texts = []
    for i in range(n_docs):
        unique = f"Story {words[i % 10]} {words[i // 10 % 10]} about rivers."  # digits would fold to 0
        texts.append(f"{unique}\n{line}" if i < n_with_line else unique)
    return texts


def dedup(texts: list[str], **params) -> list[Doc]:
    return run_steps([build_step("line_dedup", params)], texts)


def test_line_in_six_documents_kept_in_seven_removed():
    kept = dedup(corpus(10, 6))
    assert all(BOILER in d.text for d in kept[:6])
    assert [d.annotations["line_dedup_removed"] for d in kept] == [0] * 10
    removed = dedup(corpus(10, 7))
    assert [d.text for d in removed[:7]] == corpus(10, 0)[:7]  # every copy goes, the first included
    assert [d.annotations["line_dedup_removed"] for d in removed] == [1] * 7 + [0] * 3
    assert all(d.drop_reason is None for d in removed)


def test_max_occurrences_threshold_is_a_parameter():
    assert BOILER in dedup(corpus(10, 3), max_occurrences=3)[0].text
    assert BOILER not in dedup(corpus(10, 4), max_occurrences=3)[0].text


def test_repeats_inside_one_document_count_once_unless_ccnet_counting():
    text = "Unique opening line.\n" + "\n".join(["Yes"] * 7)
    assert dedup([text])[0].text == text
    ccnet = dedup([text], count_once_per_doc=False)[0]
    assert ccnet.text == "Unique opening line." and ccnet.annotations["line_dedup_removed"] == 7
    six = "Unique opening line.\n" + "\n".join(["Yes"] * 6)
    assert dedup([six], count_once_per_doc=False)[0].text == six


def test_ccnet_normalisation_merges_case_digits_unicode_punct_and_edges():
    variants = [
        "Call us on 555-1234",
        "CALL US ON 555-9876",
        "  call us on 123-4567\t",
        "Call us on “555-1234”",
        "Call us on 555-1234 —",
        "Call\x01 us on 555-1234",
        "Call us on ５５５-１２３４",  # full-width digits are digits
    ]
    texts = [f"Unique line {chr(97 + i)}.\n{v}" for i, v in enumerate(variants)]
    assert [d.annotations["line_dedup_removed"] for d in dedup(texts)] == [1] * 7
    # CCNet keeps ASCII punctuation: with "!" the first line differs, leaving six copies.
    texts[0] += "!"
    assert [d.annotations["line_dedup_removed"] for d in dedup(texts)] == [0] * 7


def test_normalized_lines_values():
    assert normalized_lines("Hello World 2024!\n\tTab\x01bed  \nCafé １２３ — “quoted” …\n\n") == [
        b"hello world 0000!",
        b"tabbed",
        "café 000  quoted".encode(),
        b"",
        b"",
    ]
    # The ASCII fast path and the Unicode path agree on ASCII lines.
    assert normalized_lines("Line 42\nè")[0] == normalized_lines("Line 42")[0] == b"line 00"


def test_hash_is_stable_across_processes():
    # BLAKE2b, not Python's per-process salted hash(): buckets give the same result on every worker.
    assert line_hash(b"home") == blake2b(b"home", digest_size=8).digest()
    assert line_hash(b"home").hex() == "a76316f670584a93"


def test_document_left_empty_is_dropped_with_its_text_intact():
    texts = [BOILER] * 7 + ["Other page.\n" + BOILER]
    docs = dedup(texts)
    assert [d.drop_reason for d in docs] == ["line_dedup:empty_after_line_dedup"] * 7 + [None]
    assert docs[0].text == BOILER and docs[7].text == "Other page."
    assert docs[0].annotations["line_dedup_removed"] == 1


def test_blank_lines_are_never_counted_or_removed():
    texts = [f"Page {w}.\n\n\n—\n  \nEnd {w}" for w in "abcdefghij"]
    docs = dedup(texts)
    assert [d.text for d in docs] == texts


def test_min_line_chars_inside_and_outside():
    texts = [f"Page about {w}.\nOK" for w in "abcdefgh"]
    assert all(d.text.endswith("\nOK") for d in dedup(texts, min_line_chars=3))
    assert all(d.text.endswith(".") for d in dedup(texts, min_line_chars=2))  # "ok" has 2 chars
    # Non-ASCII lengths count characters, not UTF-8 bytes: "né" is 2 characters, 3 bytes.
    texts = [f"Page about {w}.\nNé" for w in "abcdefgh"]
    assert all(d.text.endswith("\nNé") for d in dedup(texts, min_line_chars=3))
    assert all(d.text.endswith(".") for d in dedup(texts, min_line_chars=2))


def test_buckets_count_separately():
    step = build_step("line_dedup", {"bucket_docs": 5})
    assert step.batch_docs() == 5
    texts = corpus(10, 10)
    assert all(BOILER in d.text for d in run_steps([step], texts))  # 5 per bucket: kept
    assert all(BOILER not in d.text for d in dedup(texts, bucket_docs=10))


def test_drop_false_annotates_without_rewriting():
    texts = [BOILER] * 7 + ["Other.\n" + BOILER]
    docs = dedup(texts, drop=False)
    assert [d.text for d in docs] == texts
    assert all(d.drop_reason is None and not d.text_changed for d in docs)
    assert [d.annotations["line_dedup_removed"] for d in docs] == [1] * 8


def test_already_dropped_documents_do_not_count_and_kept_text_keeps_its_form():
    docs = [Doc(t, index=i) for i, t in enumerate(corpus(7, 7))]
    docs[0].drop_reason = "length:too_short"
    LineDedup().process(docs)
    assert all(BOILER in d.text for d in docs[1:])  # six live copies: kept
    assert "line_dedup_removed" not in docs[0].annotations
    crlf = [f"  Indented {w}\r\n{BOILER}\r\n\ttail {w}" for w in "abcdefg"]
    assert dedup(crlf)[0].text == "  Indented a\r\n\ttail a"


def test_deterministic_through_the_executor(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    pq.write_table(pa.table({"text": corpus(30, 8) + [BOILER]}), src / "s.parquet")
    steps = [("line_dedup", {"bucket_docs": 40})]
    first = run_filter(src, tmp_path / "a", steps, progress=False)
    run_filter(src, tmp_path / "b", steps, progress=False)
    assert first["dropped"] == {"line_dedup:empty_after_line_dedup": 1}
    a, b = (pq.read_table(tmp_path / d / "s-00000.parquet") for d in "ab")
    assert a.equals(b) and BOILER not in "".join(a["text"].to_pylist())
    assert a["line_dedup_removed"].to_pylist()[:8] == [1] * 8


@pytest.mark.parametrize(
    "params", [{"max_occurrences": 0}, {"bucket_docs": 0}, {"min_line_chars": -1}, {"bucket": 5}]
)
def test_bad_params(params):
    with pytest.raises(ValueError, match="line_dedup"):
        build_step("line_dedup", params)
