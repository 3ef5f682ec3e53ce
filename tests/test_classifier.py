"""fastText quality classifiers: DCLM-style training, AUC, scores, the `quality` step, top-fraction runs."""

from __future__ import annotations

import itertools
import json
import pickle
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_pipeline.classifier.metrics import binary_metrics, format_metrics, roc_auc
from data_pipeline.classifier.scoring import (
    fasttext_line,
    load_model,
    score_texts,
    threshold_for_top_fraction,
)
from data_pipeline.classifier.stage import run_classify
from data_pipeline.classifier.training import sidecar_path
from data_pipeline.classifier.training import train_classifier as _train_classifier
from data_pipeline.filters.base import build_step, run_steps
from data_pipeline.stages import build_steps

# Two topics with a few shared words: separable, but not by any single token.
SCIENCE = "atom electron proton energy quantum particle orbit spectrum photon measure theory experiment"
COOKING = "flour butter sugar oven bake recipe dough simmer garlic onion pepper taste"
SHARED = "the a of and with this that is was very"


def _docs(vocab: str, n: int, seed: int, words: int = 40) -> list[str]:
    rng = random.Random(seed)
    pool = vocab.split() + SHARED.split()
    docs = []
    for i in range(n):
        lines = [" ".join(rng.choice(pool) for _ in range(words // 4)) for _ in range(4)]
        docs.append(f"doc {i} " + "\n".join(lines))
    return docs


def train_classifier(*args, **kwargs):
    """DCLM's hyperparameters, but a 20k-bucket bigram table (the default 2M is 800 MB) on one thread."""
    return _train_classifier(*args, **{"bucket": 20_000, "threads": 1, **kwargs})


def _write(path, texts, **columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": texts, **columns}), path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("qc")
    pos, neg = _docs(SCIENCE, 200, 1), _docs(COOKING, 260, 2)
    _write(root / "pos" / "a.parquet", pos[:120])
    _write(root / "pos" / "b.parquet", pos[120:])
    _write(root / "neg" / "a.parquet", neg)
    return root


@pytest.fixture(scope="module")
def trained(corpus):
    out = corpus / "models" / "quality.bin"
    record = train_classifier([corpus / "pos"], [corpus / "neg"], output=out, seed=0)
    return out, record


def test_separable_task_trains_well_and_writes_model_and_sidecar(trained):
    out, record = trained
    m = record["valid_metrics"]
    assert m["auc"] > 0.95 and m["precision"] > 0.9 and m["recall"] > 0.9
    assert out.is_file()
    assert json.loads(sidecar_path(out).read_text()) == json.loads(json.dumps(record))
    assert sidecar_path(out).name == "quality.bin.json"
    # Only the model and its record: the training text and the model's temp file are gone.
    assert sorted(p.name for p in out.parent.iterdir()) == ["quality.bin", "quality.bin.json"]
    assert record["labels"] == {"positive": "hq", "negative": "cc", "prefix": "__label__"}
    hp = record["hyperparameters"]
    assert (hp["wordNgrams"], hp["lr"], hp["dim"], hp["epoch"], hp["minCount"]) == (2, 0.1, 100, 5, 1)
    assert (hp["bucket"], hp["thread"], hp["seed"]) == (20_000, 1, 0)
    assert sorted(load_model(out).labels) == ["__label__cc", "__label__hq"]


def test_balancing_downsamples_larger_class_and_split_counts_add_up(trained):
    counts = trained[1]["counts"]
    assert counts["read"] == {"hq": 200, "cc": 260}
    assert counts["used"] == {"hq": 200, "cc": 200}
    for name in ("hq", "cc"):
        assert counts["train"][name] + counts["valid"][name] == 200
    held_out = counts["valid"]["hq"] + counts["valid"]["cc"]
    assert 15 < held_out < 70  # ~10% of 400 by hash
    assert trained[1]["valid_metrics"]["docs"] == held_out


def test_no_balance_and_max_docs_per_class(corpus, tmp_path):
    unbalanced = train_classifier(
        [corpus / "pos"], [corpus / "neg"], output=tmp_path / "u.bin", balance=False, epochs=1
    )
    assert unbalanced["counts"]["used"] == {"hq": 200, "cc": 260}
    capped = train_classifier(
        [corpus / "pos"], [corpus / "neg"], output=tmp_path / "c.bin", max_docs_per_class=50
    )
    assert capped["counts"]["used"] == {"hq": 50, "cc": 50}


def test_same_seed_same_split_and_metrics_other_seed_other_split(corpus, tmp_path):
    def run(name, seed):
        return train_classifier([corpus / "pos"], [corpus / "neg"], output=tmp_path / name, seed=seed)

    # Several trainings in one process (the fixture's first): fasttext-numpy2-wheel leaves part of the
    # input matrix uninitialised, so in-process training gave different models (and NaN) before
    # training moved to a child process.
    a, b, c = run("a.bin", 0), run("b.bin", 0), run("c.bin", 1)
    assert a["counts"] == b["counts"] and a["valid_metrics"] == b["valid_metrics"]
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert c["counts"]["valid"] != a["counts"]["valid"]


def test_label_column_input_string_and_integer_labels(corpus, tmp_path):
    pos, neg = _docs(SCIENCE, 60, 3), _docs(COOKING, 90, 4)
    texts = pos + neg
    _write(tmp_path / "s" / "x.parquet", texts, label=["good"] * 60 + ["bad"] * 90)
    _write(tmp_path / "i" / "x.parquet", texts, label=pa.array([1] * 60 + [0] * 90, type=pa.int8()))
    by_str = train_classifier(labelled=[tmp_path / "s"], positive_label="good", output=tmp_path / "s.bin")
    # "1" as the CLI passes it, cast to the int8 column.
    by_int = train_classifier(labelled=[tmp_path / "i"], positive_label="1", output=tmp_path / "i.bin")
    for record in (by_str, by_int):
        assert record["counts"]["read"] == {"hq": 60, "cc": 90}
        assert record["counts"]["used"] == {"hq": 60, "cc": 60}
    assert by_str["counts"] == by_int["counts"]  # same texts, same hash split
    with pytest.raises(ValueError, match="more than two values"):
        _write(tmp_path / "t" / "x.parquet", texts[:3], label=["a", "b", "c"])
        train_classifier(labelled=[tmp_path / "t"], positive_label="a", output=tmp_path / "t.bin")
    with pytest.raises(ValueError, match="no positive documents"):
        train_classifier(labelled=[tmp_path / "s"], positive_label="great", output=tmp_path / "n.bin")
    with pytest.raises(ValueError, match=r"positive label 'hq' does not fit column 'label' of type int8"):
        train_classifier(labelled=[tmp_path / "i"], positive_label="hq", output=tmp_path / "n.bin")
    _write(tmp_path / "u" / "x.parquet", texts[:3], label=[1, None, 0])
    with pytest.raises(ValueError, match=r"x.parquet: row 1: column 'label' is null"):
        train_classifier(labelled=[tmp_path / "u"], output=tmp_path / "n.bin")
    with pytest.raises(ValueError, match="column 'grade' missing"):
        train_classifier(labelled=[tmp_path / "s"], label_column="grade", output=tmp_path / "n.bin")


def test_no_held_out_split(corpus, tmp_path):
    record = train_classifier([corpus / "pos"], [corpus / "neg"], output=tmp_path / "m.bin", valid_fraction=0)
    assert record["valid_metrics"] is None and record["counts"]["train"] == {"hq": 200, "cc": 200}
    assert "no held-out documents" in format_metrics(record)


def test_printed_table_shows_counts_and_metrics(trained):
    table = format_metrics(trained[1])
    counts, m = trained[1]["counts"], trained[1]["valid_metrics"]
    assert f"hq      {200:>10,}{200:>10,}{counts['train']['hq']:>10,}{counts['valid']['hq']:>10,}" in table
    assert f"precision {m['precision']:.4f}" in table and f"ROC AUC {m['auc']:.4f}" in table


def test_roc_auc_matches_brute_force_pairs_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        scores = rng.integers(0, 5, size=n).astype(float)  # many ties
        labels = rng.random(n) < 0.5
        if labels.all() or not labels.any():
            labels[0] = not labels[0]
        pairs = [
            1.0 if p > q else 0.5 if p == q else 0.0
            for p, q in itertools.product(scores[labels], scores[~labels])
        ]
        assert roc_auc(scores, labels) == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)
    assert roc_auc([0.1, 0.9], [False, True]) == 1.0
    assert roc_auc([0.9, 0.1], [False, True]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5], [True, False, True]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([float("nan"), 0.2], [True, False])


def test_binary_metrics_hand_computed():
    scores = np.array([0.9, 0.6, 0.5, 0.4, 0.2, 0.7])
    labels = np.array([True, True, False, True, False, False])
    m = binary_metrics(scores, labels)  # predicted: T T T F F T -> tp 2, fp 2, fn 1, tn 1
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 2, 1, 1)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m["auc"] == pytest.approx(6 / 9)  # pos > neg pairs: 0.9 beats 3, 0.6 beats 2, 0.4 beats 1


def test_scores_are_the_positive_labels_probability(trained):
    model = load_model(trained[0])
    texts = ["atom electron photon\nquantum theory", "flour butter\nsugar oven", ""]
    scores = score_texts(model, texts, "hq")
    assert scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()
    labels, probs = model.predict([fasttext_line(t) for t in texts], k=-1)
    for score, names, values in zip(scores, labels, probs, strict=True):
        assert score == pytest.approx(min(1.0, values[list(names).index("__label__hq")]))
    assert scores[0] > 0.5 > scores[1]
    assert score_texts(model, texts, "__label__cc") == pytest.approx(1 - scores, abs=1e-4)
    assert (score_texts(model, texts, "math") == 0).all()  # a label the model lacks
    assert score_texts(model, [], "hq").shape == (0,)


def test_fasttext_line_is_one_line_and_defuses_labels():
    assert fasttext_line("a\nb\r\nc\u2028d") == "a b c d"
    assert fasttext_line("see __label__hq here") == "see __lbl__hq here"
    assert fasttext_line("Case Kept") == "Case Kept"


def test_quality_step_annotates_and_threshold_is_inclusive(trained):
    model = str(trained[0])
    texts = ["atom electron quantum photon", "flour butter sugar oven", "the a of and"]
    annotated = run_steps([build_step("quality", {"model": model})], texts)
    scores = [d.annotations["quality_score"] for d in annotated]
    assert all(d.drop_reason is None for d in annotated)  # threshold None: annotate only
    s = scores[2]
    at = run_steps([build_step("quality", {"model": model, "threshold": s})], texts)
    above = run_steps(
        [build_step("quality", {"model": model, "threshold": float(np.nextafter(np.float32(s), 1))})], texts
    )
    assert at[2].drop_reason is None
    assert above[2].drop_reason == "quality:low_quality_score"
    assert [d.drop_reason is None for d in at] == [x >= s for x in scores]
    kept = run_steps([build_step("quality", {"model": model, "threshold": 0.5, "drop": False})], texts)
    assert all(d.drop_reason is None for d in kept) and kept[1].annotations["quality_score"] < 0.5


def test_quality_step_batches_skip_dropped_docs_and_pickle(trained):
    step = build_step("quality", {"model": str(trained[0]), "batch_size": 2})
    docs = run_steps([step], _docs(SCIENCE, 5, 9))
    one_batch = run_steps([build_step("quality", {"model": str(trained[0])})], _docs(SCIENCE, 5, 9))
    assert [d.annotations for d in docs] == [d.annotations for d in one_batch]
    clone = pickle.loads(pickle.dumps(step))
    assert clone._model is None
    dropped = run_steps([clone], ["atom photon"] * 2)
    dropped[0].drop_reason = "x:y"
    clone.process(dropped)
    assert "quality_score" in dropped[1].annotations


def test_two_classifiers_in_one_stage_with_their_own_columns(trained, tmp_path):
    model = str(trained[0])
    specs = [
        ("quality", {"model": model}),
        ("quality", {"model": model, "positive_label": "cc", "column": "cooking_score", "threshold": 0.5}),
    ]
    steps = build_steps(specs)
    assert [s.label() for s in steps] == ["quality", "quality[cooking_score]"]
    docs = run_steps(steps, ["atom electron quantum photon", "flour butter sugar oven"])
    for d in docs:
        assert d.annotations["quality_score"] + d.annotations["cooking_score"] == pytest.approx(1, abs=1e-4)
    assert [d.drop_reason for d in docs] == ["quality:low_cooking_score", None]
    with pytest.raises(ValueError, match="both write column 'quality_score'"):
        build_steps([("quality", {"model": model}), ("quality", {"model": model})])


def test_top_fraction_keeps_about_that_share(trained, tmp_path):
    texts = _docs(SCIENCE, 40, 11) + _docs(COOKING, 60, 12) + _docs(SCIENCE + " " + COOKING, 100, 13)
    _write(tmp_path / "in" / "a.parquet", texts[::2])
    _write(tmp_path / "in" / "b.parquet", texts[1::2])
    summary = run_classify(tmp_path / "in", tmp_path / "out", trained[0], top_fraction=0.3, progress=False)
    assert summary["docs_in"] == 200 and 60 <= summary["docs_out"] <= 63  # ties may keep a few more
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["classify"]["threshold"] == summary["classify"]["threshold"]
    assert stats["classify"]["top_fraction"] == 0.3 and stats["classify"]["scored_docs"] == 200
    out = pa.concat_tables(pq.read_table(p) for p in sorted((tmp_path / "out").glob("*.parquet")))
    assert min(out.column("quality_score").to_pylist()) >= stats["classify"]["threshold"]
    sampled = threshold_for_top_fraction(tmp_path / "in", trained[0], 0.5, sample=50, seed=3)
    assert sampled["scored_docs"] == 50 and sampled["kept_in_sample"] >= 25
    again = threshold_for_top_fraction(tmp_path / "in", trained[0], 0.5, sample=50, seed=3)
    assert again == sampled
    everything = threshold_for_top_fraction(tmp_path / "in", trained[0], 1.0)
    assert everything["kept_in_sample"] == 200
    with pytest.raises(ValueError, match="not both"):
        run_classify(tmp_path / "in", tmp_path / "o2", trained[0], threshold=0.5, top_fraction=0.1)
    with pytest.raises(ValueError, match="top fraction"):
        threshold_for_top_fraction(tmp_path / "in", trained[0], 0.0)


def test_bad_training_input_names_the_problem(corpus, tmp_path):
    out = tmp_path / "m.bin"
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        train_classifier([tmp_path / "missing_dir"], [corpus / "neg"], output=out)
    _write(tmp_path / "notext" / "x.parquet", ["a"], body=["b"]).unlink()
    pq.write_table(pa.table({"body": ["b"]}), tmp_path / "notext" / "x.parquet")
    with pytest.raises(ValueError, match=r"x.parquet: column 'text' missing"):
        train_classifier([tmp_path / "notext"], [corpus / "neg"], output=out)
    _write(tmp_path / "blank" / "x.parquet", ["  ", "\n"])
    with pytest.raises(ValueError, match="class 'hq' has no non-empty documents"):
        train_classifier([tmp_path / "blank"], [corpus / "neg"], output=out)
    _write(tmp_path / "null" / "x.parquet", ["ok", None])
    with pytest.raises(ValueError, match="row 1: column 'text' is null"):
        train_classifier([corpus / "pos"], [tmp_path / "null"], output=out)
    with pytest.raises(ValueError, match="both positive and negative"):
        train_classifier([corpus / "pos"], None, output=out)
    with pytest.raises(ValueError, match="valid_fraction"):
        train_classifier([corpus / "pos"], [corpus / "neg"], output=out, valid_fraction=1.0)
    with pytest.raises(ValueError, match="word_ngrams"):
        train_classifier([corpus / "pos"], [corpus / "neg"], output=out, word_ngrams=0)
    assert not out.exists() and not sidecar_path(out).exists()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "high"}, "threshold"),
        ({"batch_size": 0}, "batch_size"),
        ({"column": "text"}, "overwrite a document column"),
        ({"column": "bad column"}, "column="),
        ({"positive_label": ""}, "positive_label"),
        ({"model": "/no/such/model.bin"}, "no such file"),
        ({"modle": "x"}, "unknown parameter"),
    ],
)
def test_quality_step_rejects_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        build_step("quality", params)


def test_quality_step_model_errors_at_setup(trained):
    with pytest.raises(ValueError, match="'model' is required"):
        build_step("quality", {}).setup()
    with pytest.raises(ValueError, match=r"label 'math' is not one of the model's labels \['cc', 'hq'\]"):
        build_step("quality", {"model": str(trained[0]), "positive_label": "math"}).setup()
