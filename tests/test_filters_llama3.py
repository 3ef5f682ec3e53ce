"""Llama 3 heuristic filters: line n-gram coverage, dirty-word density, token-distribution KL."""

from __future__ import annotations

import json
import math
import pickle
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_pipeline.filters.base import build_step, run_steps
from data_pipeline.filters.llama3 import load_reference

SAMPLE = Path(__file__).resolve().parents[1] / "data_pipeline" / "sample"


def run_one(name: str, text: str, **params):
    (doc,) = run_steps([build_step(name, params)], [text])
    return doc


# --- ngram_coverage --------------------------------------------------------------------------------

# n=2 on "alpha be alpha be alpha": bigram 2 repeats bigram 0 (alpha+be = 7 chars), bigram 3 repeats
# bigram 1 and adds only the last "alpha" (5 chars, "be" is already counted): 12 of 19 word characters.
REPEATED = "alpha be alpha be alpha"
REPEATED_COVERAGE = 12 / 19
PLAIN = "a line with no repeated words at all"  # 29 word characters


def test_line_coverage_is_hand_computed():
    step = build_step("ngram_coverage", {"n": 2})
    assert step.line_coverage(REPEATED.split()) == 12
    assert step.line_coverage(["x", "y"] * 3) == 4  # the first "x y" does not count, overlaps count once
    assert step.line_coverage(PLAIN.split()) == 0
    assert step.line_coverage(["x", "x"]) == 0  # needs n + 1 words


def test_coverage_threshold_is_strict_and_removes_the_line():
    text = f"{PLAIN}\n{REPEATED}"
    kept = run_one("ngram_coverage", text, n=2, max_line_coverage=REPEATED_COVERAGE, max_removed_frac=1.0)
    assert kept.text == text and kept.annotations["ngram_coverage_lines_removed"] == 0
    cut = run_one(
        "ngram_coverage", text, n=2, max_line_coverage=REPEATED_COVERAGE - 1e-6, max_removed_frac=1.0
    )
    assert cut.drop_reason is None
    assert cut.text == PLAIN
    assert cut.annotations["ngram_coverage_lines_removed"] == 1
    assert cut.annotations["ngram_coverage_removed_frac"] == pytest.approx(19 / 48)
    assert cut.annotations["ngram_coverage"] == pytest.approx(12 / 48)  # before removal, whole doc


def test_removed_fraction_bound_is_strict():
    text = f"{PLAIN}\n{REPEATED}"  # removing the repeated line loses 19 of 48 word characters
    params = {"n": 2, "max_line_coverage": 0.5}
    assert run_one("ngram_coverage", text, max_removed_frac=19 / 48, **params).drop_reason is None
    too_much = run_one("ngram_coverage", text, max_removed_frac=19 / 48 - 1e-6, **params)
    assert too_much.drop_reason == "ngram_coverage:too_much_removed"
    assert too_much.text == text  # a dropped document keeps its text


def test_all_lines_removed_reason_comes_first():
    doc = run_one("ngram_coverage", f"{REPEATED}\n\n{REPEATED}", n=2, max_removed_frac=1.0)
    assert doc.drop_reason == "ngram_coverage:all_lines_removed"


def test_log_lines_are_caught_through_digit_normalisation():
    rng = random.Random(0)
    log = " ".join(
        f"2024-05-01 12:00:{i:02d} WARN request {rng.randint(1000, 9999)} failed: connection reset by peer"
        for i in range(20)
    )
    intro = "Here is what the server prints when it starts, does anyone know what is wrong with it?"
    doc = run_one("ngram_coverage", f"{intro}\n{log}")
    assert doc.annotations["ngram_coverage_lines_removed"] == 1
    assert doc.drop_reason == "ngram_coverage:too_much_removed"
    raw = run_one("ngram_coverage", f"{intro}\n{log}", normalize=False, drop=False)
    assert raw.annotations["ngram_coverage"] < doc.annotations["ngram_coverage"]


def test_prose_and_annotate_only_mode_keep_text():
    prose = "It was the best of times, it was the worst of times, it was the age of wisdom."
    assert run_one("ngram_coverage", prose).annotations["ngram_coverage_lines_removed"] == 0
    text = f"{PLAIN}\n{REPEATED}"
    doc = run_one("ngram_coverage", text, n=2, max_line_coverage=0.1, max_removed_frac=1.0, drop=False)
    assert doc.text == text and doc.annotations["ngram_coverage_lines_removed"] == 1


def test_shakespeare_loses_almost_nothing():
    texts = pq.read_table(SAMPLE / "shakespeare-00000.parquet")["text"].to_pylist()
    docs = run_steps([build_step("ngram_coverage", {})], texts)
    assert all(d.drop_reason is None for d in docs)
    assert sum(d.annotations["ngram_coverage_removed_frac"] for d in docs) / len(docs) < 1e-3


@pytest.mark.parametrize(
    "params", [{"n": 0}, {"max_line_coverage": 1.5}, {"max_removed_frac": -0.1}, {"window": 3}]
)
def test_ngram_coverage_rejects_bad_params(params):
    with pytest.raises(ValueError):
        build_step("ngram_coverage", params)


# --- dirty_words -----------------------------------------------------------------------------------


def test_dirty_word_density_bound_is_strict():
    three = "porn s3x p0rn"  # leetspeak counted through the shared matcher
    inside = run_one("dirty_words", three + " word" * 57)  # 3 / 60 = 0.05
    assert inside.drop_reason is None
    assert inside.annotations["dirty_words_count"] == 3
    assert inside.annotations["dirty_words_ratio"] == pytest.approx(0.05)
    assert run_one("dirty_words", three + " word" * 56).drop_reason == "dirty_words:ratio_too_high"


def test_dirty_words_spares_few_hits_and_innocent_words():
    assert run_one("dirty_words", "you ass, you bastard").drop_reason is None  # 2 hits < 3
    assert run_one("dirty_words", "Scunthorpe assistant cockpit " * 5).annotations["dirty_words_count"] == 0


@pytest.mark.parametrize("params", [{"max_ratio": 2.0}, {"ratio_min_count": 0}, {"languages": ["zz"]}])
def test_dirty_words_rejects_bad_params(params):
    with pytest.raises(ValueError):
        build_step("dirty_words", params)


# --- token_kl --------------------------------------------------------------------------------------

# Reference {a: 3, b: 1}, alpha = 1: N = 4, V = 2, denominator N + alpha (V + 1) = 7, so
# q(a) = 4/7, q(b) = 2/7 and any unseen token 1/7. Document "a b c c": p = (1/4, 1/4, 1/2).
HAND_KL = 0.25 * math.log(0.25 / (4 / 7)) + 0.25 * math.log(0.25 / (2 / 7)) + 0.5 * math.log(0.5 / (1 / 7))


@pytest.fixture
def tiny_reference(tmp_path) -> Path:
    path = tmp_path / "ref.json"
    path.write_text(json.dumps({"a": 3, "b": 1}))
    return path


def test_kl_on_tiny_reference_is_hand_computed(tiny_reference):
    step = build_step("token_kl", {"reference_path": str(tiny_reference)})
    assert not step.needs_fit()
    doc = run_steps([step], ["A b c C"])[0]
    assert doc.annotations["token_kl"] == pytest.approx(HAND_KL)
    assert doc.annotations["token_kl_tokens"] == 4


def test_kl_threshold_is_strict(tiny_reference):
    ref = str(tiny_reference)
    exact = run_one("token_kl", "a b c c", reference_path=ref, drop=False).annotations["token_kl"]
    assert exact == pytest.approx(HAND_KL)
    assert run_one("token_kl", "a b c c", reference_path=ref, max_kl=exact).drop_reason is None
    dropped = run_one("token_kl", "a b c c", reference_path=ref, max_kl=HAND_KL - 1e-6)
    assert dropped.drop_reason == "token_kl:high_kl"


def test_kl_is_zero_when_document_matches_reference(tmp_path):
    path = tmp_path / "ref.json"
    path.write_text(json.dumps({"a": 999_999, "b": 999_999}))
    assert run_one("token_kl", "a b", reference_path=str(path), alpha=1e-9).annotations["token_kl"] == (
        pytest.approx(0.0, abs=1e-6)
    )


def test_empty_document_passes_with_null_kl(tiny_reference):
    doc = run_one("token_kl", "   ", reference_path=str(tiny_reference))
    assert doc.drop_reason is None and doc.annotations["token_kl"] is None
    assert doc.annotations["token_kl_tokens"] == 0


def test_word_tokens_split_punctuation_runs():
    step = build_step("token_kl", {})
    assert step.tokens("Hello, WORLD!!! |||x") == ["hello", ",", "world", "!!!", "|||", "x"]


@pytest.fixture(scope="module")
def shakespeare() -> list[str]:
    return pq.read_table(SAMPLE / "shakespeare-00000.parquet")["text"].to_pylist()


def test_fit_on_corpus_scores_spam_above_prose(shakespeare):
    step = build_step("token_kl", {})
    assert step.needs_fit()
    step.fit(shakespeare)
    step.setup()
    prose = (
        "My lord, I have a letter from the king, and I would speak with you of it before the night\n"
        "is out; for I do fear the time is short, and what we do must be done well and quickly."
    )
    spam = " ".join(["buy cheap viagra online pharmacy discount pills no prescription"] * 12)
    base64 = "QmFzZTY0IGVuY29kZWQgYmxvYiBvZiBqdW5rIGRhdGEgdGhhdCBub2JvZHkgcmVhZHM= " * 8
    prose_kl, spam_kl, blob_kl = (step.kl(step.tokens(t)) for t in (prose, spam, base64))
    assert prose_kl < step.max_kl < spam_kl
    assert step.max_kl < blob_kl
    assert all(step.kl(step.tokens(t)) < step.max_kl for t in shakespeare)


def test_fit_bounds_vocabulary_tokens_and_sample():
    texts = ["a a a b b c", "d e f g", "a h"]
    step = build_step("token_kl", {"max_vocab": 2})
    step.fit(texts)
    assert step._counts == {"a": 4, "b": 2}
    short = build_step("token_kl", {"fit_max_tokens": 6})
    short.fit(texts)  # stops after the first document
    assert sum(short._counts.values()) == 6
    sampled = build_step("token_kl", {"fit_sample_rate": 0.5})
    sampled.fit([f"doc {i}" for i in range(200)])
    assert 50 < sampled._counts["doc"] < 150
    with pytest.raises(ValueError, match="no tokens"):
        build_step("token_kl", {}).fit(["", "  "])


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_save_reference_round_trips(tmp_path, shakespeare, suffix):
    fitted = build_step("token_kl", {})
    fitted.fit(shakespeare[:20])
    path = tmp_path / f"ref{suffix}"
    fitted.save_reference(path)
    assert load_reference(path) == fitted._counts
    loaded = build_step("token_kl", {"reference_path": str(path)})
    loaded.setup()
    for text in shakespeare[20:25]:
        assert loaded.kl(loaded.tokens(text)) == pytest.approx(fitted.kl(fitted.tokens(text)))


def test_fitted_step_pickles_for_workers(shakespeare):
    step = build_step("token_kl", {})
    step.fit(shakespeare[:20])
    step.setup()
    clone = pickle.loads(pickle.dumps(step))
    clone.setup()
    text = shakespeare[30]
    assert clone.kl(clone.tokens(text)) == pytest.approx(step.kl(step.tokens(text)))


def test_llama3_token_unit(tmp_path):
    step = build_step("token_kl", {"unit": "llama3"})
    step.fit(["the cat sat on the mat", "the dog sat on the log"])
    assert pickle.loads(pickle.dumps(step))._tokenizer is None  # the tiktoken handle stays behind
    clone = pickle.loads(pickle.dumps(step))
    clone.setup()
    common, odd = clone.kl(clone.tokens("the cat sat")), clone.kl(clone.tokens("zyxw qqq vvv"))
    assert common < odd
    path = tmp_path / "ref.json"
    step.save_reference(path)
    loaded = build_step("token_kl", {"unit": "llama3", "reference_path": str(path)})
    loaded.setup()
    assert loaded.kl(loaded.tokens("the cat sat")) == pytest.approx(common)


def test_setup_without_reference_fails():
    with pytest.raises(ValueError, match="no reference"):
        build_step("token_kl", {}).setup()


@pytest.mark.parametrize(
    "params",
    [
        {"unit": "chars"},
        {"alpha": 0},
        {"max_kl": -1},
        {"max_vocab": 0},
        {"fit_max_tokens": 0},
        {"fit_sample_rate": 0.0},
        {"reference_path": "/nonexistent/ref.json"},
    ],
)
def test_token_kl_rejects_bad_params(params):
    with pytest.raises(ValueError):
        build_step("token_kl", params)


def test_load_reference_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(["a", "b"]))
    with pytest.raises(ValueError, match="JSON object"):
        load_reference(bad)
    negative = tmp_path / "neg.json"
    negative.write_text(json.dumps({"a": -1}))
    with pytest.raises(ValueError, match="non-negative"):
        load_reference(negative)
