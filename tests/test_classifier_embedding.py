"""Embedding quality classifiers: training a head on encoder embeddings, its safetensors file, scoring,
`classify` with either kind, reuse of the embeddings semantic dedup stores, and refusals.

Tiny random BERTs (tests/tiny_encoders.py) stand in for the encoder; positives use words w0-w29 and
negatives w30-w59, so a head on their mean-pooled embeddings separates them. Every score is checked
against the head computed by hand from the file's tensors on `encode`'s vectors.
"""

from __future__ import annotations

import json
import pickle
import random
import shutil
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_encoders import WORDS, make_bert

from data_pipeline.classifier import embedding_scoring
from data_pipeline.classifier.embedding_training import train_embedding_classifier
from data_pipeline.classifier.examples import labelled_examples
from data_pipeline.classifier.head import METADATA_KEY
from data_pipeline.classifier.scoring import load_scorer, score_texts, threshold_for_top_fraction
from data_pipeline.classifier.stage import run_classify
from data_pipeline.classifier.training import sidecar_path, train_classifier
from data_pipeline.cli import main
from data_pipeline.filters.base import build_step, run_steps
from data_pipeline.semantic.embed import embed_shard, embedding_schema, embeddings_table
from data_pipeline.semantic.encoder import encode, encoder_metadata, load_encoder

HEAD = {"epochs": 60, "batch_size": 64, "lr": 0.02}  # converges on a few hundred tiny documents


def _texts(words: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=rng.randint(3, 20))) for _ in range(n)]


def _write(path, texts, **columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": texts, **columns}), path)
    return path


def _read_dir(directory, columns=("id", "text", "quality_score")):
    files = sorted(directory.glob("*.parquet"))
    return pa.concat_tables(pq.read_table(f, columns=list(columns)) for f in files).to_pydict()


def _head_by_hand(model, vectors: np.ndarray) -> np.ndarray:
    """P(hq) from the file's tensors: sigmoid(w x + b), through a ReLU layer for an mlp head."""
    t = {k: v.double().numpy() for k, v in load_file(str(model)).items()}
    x = vectors.astype(np.float64)
    if "layers.2.weight" in t:
        x = np.maximum(x @ t["layers.0.weight"].T + t["layers.0.bias"], 0)
        logit = x @ t["layers.2.weight"].T + t["layers.2.bias"]
    else:
        logit = x @ t["layers.0.weight"].T + t["layers.0.bias"]
    return 1 / (1 + np.exp(-logit[:, 0]))


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("andes-data: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("emb")
    make_bert(root / "encoder", {"mean_tokens": True})
    pos, neg = _texts(WORDS[:30], 170, 1), _texts(WORDS[30:], 200, 2)
    _write(root / "labelled" / "a.parquet", pos + neg + ["  "], label=[1] * 170 + [0] * 201)
    mixed = _texts(WORDS[:30], 30, 3) + _texts(WORDS[30:], 30, 4) + _texts(WORDS, 40, 5)
    random.Random(6).shuffle(mixed)
    mixed[7] = ""  # an empty document: stored as a null embedding, encoded when scored
    ids = [f"doc{i}" for i in range(len(mixed))]
    _write(root / "docs" / "a.parquet", mixed[:55], id=ids[:55])
    _write(root / "docs" / "b.parquet", mixed[55:], id=ids[55:])
    return root


@pytest.fixture(scope="module")
def encoder(root):
    return load_encoder(root / "encoder", device="cpu")


@pytest.fixture(scope="module")
def trained(root):
    out = root / "models" / "q.safetensors"
    record = train_embedding_classifier(
        labelled=[root / "labelled"], output=out, encoder=root / "encoder", **HEAD
    )
    return out, record


@pytest.fixture
def docs(root):
    """Every document of root/docs in order: {"id": [...], "text": [...]}."""
    return pa.concat_tables(pq.read_table(f) for f in sorted((root / "docs").glob("*.parquet"))).to_pydict()


def test_separable_set_trains_well_on_the_fasttext_split(root, trained, encoder):
    out, record = trained
    m = record["valid_metrics"]
    assert m["f1"] > 0.95 and m["auc"] > 0.99
    assert json.loads(sidecar_path(out).read_text()) == json.loads(json.dumps(record))
    assert record["kind"] == "embedding" and record["encoder"] == encoder_metadata(encoder)
    assert record["hyperparameters"]["head"] == "linear" and record["hyperparameters"]["epochs"] == 60
    assert record["counts"]["read"] == {"hq": 170, "cc": 201}
    assert record["counts"]["used"] == {"hq": 170, "cc": 170}  # balanced, the blank one dropped
    # The same documents, balancing and held-out split as the fastText kind.
    fasttext = train_classifier(
        labelled=[root / "labelled"], output=root / "models" / "q.bin", bucket=20_000, threads=1
    )
    assert fasttext["counts"] == record["counts"]
    assert fasttext["valid_metrics"]["docs"] == m["docs"]
    examples = labelled_examples(labelled=[root / "labelled"])
    assert examples.counts == record["counts"]
    assert sorted(out.parent.iterdir()) == sorted(
        out.parent / n for n in ("q.bin", "q.bin.json", "q.safetensors", "q.safetensors.json")
    )


def test_cli_prints_metrics_and_same_seed_gives_the_same_bytes(root, tmp_path, capsys):
    args = ["train-classifier", "--kind", "embedding", "--labelled", str(root / "labelled")]
    args += ["--encoder", str(root / "encoder"), "--epochs", "60", "--batch-size", "64", "--lr", "0.02"]
    files = [tmp_path / n for n in ("a.safetensors", "b.safetensors", "c.safetensors")]
    assert main([*args, "--output", str(files[0])]) == 0
    printed = capsys.readouterr().out
    m = json.loads(sidecar_path(files[0]).read_text())["valid_metrics"]
    assert m["f1"] > 0.95
    assert f"precision {m['precision']:.4f}  recall {m['recall']:.4f}  F1 {m['f1']:.4f}" in printed
    assert f"ROC AUC {m['auc']:.4f}" in printed and f"wrote {files[0]}" in printed
    assert main([*args, "--output", str(files[1])]) == 0
    assert main([*args, "--output", str(files[2]), "--seed", "1"]) == 0
    assert files[0].read_bytes() == files[1].read_bytes()
    assert files[0].read_bytes() != files[2].read_bytes()


def test_file_is_plain_safetensors_with_the_encoder_recorded(trained, encoder):
    raw = trained[0].read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    # Header, then exactly the tensors' bytes back to back: no room for anything else (no pickle).
    assert sorted(tensors) == ["layers.0.bias", "layers.0.weight"]
    spans = sorted(v["data_offsets"] for v in tensors.values())
    assert spans[0][0] == 0 and spans[0][1] == spans[1][0] and 8 + n + spans[1][1] == len(raw)
    assert all(v["dtype"] == "F32" for v in tensors.values())
    assert list(header["__metadata__"]) == [METADATA_KEY]
    meta = json.loads(header["__metadata__"][METADATA_KEY])
    assert meta["kind"] == "embedding" and meta["head"] == {"type": "linear", "dim": 32, "hidden": None}
    assert meta["labels"] == {"positive": "hq", "negative": "cc"}
    assert meta["encoder"] == encoder_metadata(encoder)


def test_scoring_never_unpickles(trained, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)
    scores = load_scorer(trained[0]).score(["w1 w2 w3", "w40 w41"])
    assert scores[0] > 0.5 > scores[1]


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_scores_are_the_head_of_the_encoded_text(root, encoder, tmp_path, head, docs):
    model = tmp_path / "m.safetensors"
    options = {**HEAD, "head": head, "hidden": 16}
    record = train_embedding_classifier(
        labelled=[root / "labelled"], output=model, encoder=root / "encoder", **options
    )
    assert record["valid_metrics"]["f1"] > 0.95
    texts = docs["text"]
    expected = _head_by_hand(model, encode(encoder, texts))
    np.testing.assert_allclose(load_scorer(model).score(texts), expected, atol=1e-6)
    np.testing.assert_allclose(load_scorer(model, "cc").score(texts), 1 - expected, atol=1e-6)
    step = build_step("quality", {"model": str(model), "batch_size": 7})
    annotated = run_steps([step], texts)
    np.testing.assert_allclose([d.annotations["quality_score"] for d in annotated], expected, atol=1e-6)
    assert pickle.loads(pickle.dumps(step))._model is None  # workers load their own encoder


def test_classify_cli_threshold_and_top_fraction(root, trained, encoder, tmp_path, docs, capsys):
    model = str(trained[0])
    expected = dict(zip(docs["id"], _head_by_hand(trained[0], encode(encoder, docs["text"])), strict=True))
    args = ["classify", "--input", str(root / "docs"), "--model", model, "--quiet"]
    assert main([*args, "--output", str(tmp_path / "t"), "--threshold", "0.5"]) == 0
    out = _read_dir(tmp_path / "t")
    assert sorted(out["id"]) == sorted(i for i, p in expected.items() if p >= 0.5)
    np.testing.assert_allclose(out["quality_score"], [expected[i] for i in out["id"]], atol=1e-6)
    assert "kept quality_score >= 0.5" in capsys.readouterr().out
    assert main([*args, "--output", str(tmp_path / "f"), "--top-fraction", "0.3"]) == 0
    stats = json.loads((tmp_path / "f" / "stats.json").read_text())
    threshold = stats["classify"]["threshold"]
    assert stats["classify"]["scored_docs"] == 100 and stats["docs_out"] == 30
    ranked = sorted(expected.values(), reverse=True)
    assert threshold == pytest.approx(ranked[29], abs=1e-6)
    assert min(_read_dir(tmp_path / "f")["quality_score"]) >= threshold
    assert "top 30%" in capsys.readouterr().out


def test_a_fasttext_model_still_classifies(root, trained, tmp_path, docs):
    model = root / "models" / "ft.bin"
    train_classifier(labelled=[root / "labelled"], output=model, bucket=20_000, threads=1)
    out = tmp_path / "out"
    assert (
        main(
            [
                "classify",
                "--input",
                str(root / "docs"),
                "--output",
                str(out),
                "--model",
                str(model),
                "--quiet",
            ]
        )
        == 0
    )
    got = _read_dir(out)
    expected = score_texts(load_scorer(model).model, docs["text"])
    assert got["id"] == docs["id"]
    np.testing.assert_allclose(got["quality_score"], expected, atol=1e-6)


# ---------------------------------------------------------------- stored embeddings


def _dedup_output(root, encoder, out, keep=lambda i: i % 3 != 0):
    """A semantic-dedup-like output: kept rows as <stem>-00000.parquet, embeddings of every input row."""
    for shard in sorted((root / "docs").glob("*.parquet")):
        table = pq.read_table(shard)
        kept = table.filter(pa.array([keep(i) for i in range(table.num_rows)]))
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(kept, out / f"{shard.stem}-00000.parquet")
        embed_shard(encoder, shard, out / ".dedup" / "embeddings" / f"{shard.stem}.parquet")
    return out


def _count_encoded(monkeypatch) -> list[int]:
    counts: list[int] = []

    def counting(encoder, texts, **kwargs):
        counts.append(len(texts))
        return encode(encoder, texts, **kwargs)

    monkeypatch.setattr(embedding_scoring, "encode", counting)
    return counts


def test_dedup_output_embeddings_are_reused_by_id(root, trained, encoder, tmp_path, monkeypatch, capsys):
    deduped = _dedup_output(root, encoder, tmp_path / "deduped")
    counts = _count_encoded(monkeypatch)
    summary = run_classify(deduped, tmp_path / "out", trained[0], top_fraction=0.5, progress=False)
    got = _read_dir(tmp_path / "out", ("id", "text", "quality_score"))
    kept = _read_dir(deduped, ("id", "text"))
    # Only the empty document (a null embedding) was encoded, once per pass.
    assert sum(counts) == 2 * sum(t == "" for t in kept["text"]) == 2
    assert summary["docs_in"] == len(kept["id"])
    stored = pa.concat_tables(pq.read_table(f) for f in sorted((deduped / ".dedup" / "embeddings").glob("*")))
    ids, embeddings = stored.column("id").to_pylist(), stored.column("embedding").to_pylist()
    vectors = dict(zip(ids, embeddings, strict=True))
    fresh = encode(encoder, [""])[0]
    by_hand = {
        i: _head_by_hand(
            trained[0], np.array([fresh if vectors[i] is None else vectors[i]], dtype=np.float32)
        )[0]
        for i in kept["id"]
    }
    np.testing.assert_allclose(got["quality_score"], [by_hand[i] for i in got["id"]], atol=1e-6)
    assert "not reused" not in capsys.readouterr().err


def test_a_real_semantic_dedup_run_is_reused(root, trained, tmp_path, monkeypatch, capsys):
    """`dedup --method semantic` then `classify` on its output: only blank texts are encoded again."""
    from data_pipeline.cli import main

    out = tmp_path / "deduped"
    args = ["dedup", "--method", "semantic", "--input", str(root / "docs"), "--output", str(out)]
    assert main([*args, "--encoder", str(root / "encoder"), "--eps", "0.01", "--quiet"]) == 0
    counts = _count_encoded(monkeypatch)
    run_classify(out, tmp_path / "scored", trained[0], threshold=0.5, progress=False)
    kept = _read_dir(out, ("id", "text"))
    assert len(kept["id"]) > 0 and sum(counts) == sum(not t.strip() for t in kept["text"]) == 1
    assert "not reused" not in capsys.readouterr().err


def test_stored_vectors_are_looked_up_by_id_not_recomputed(root, trained, encoder, tmp_path, docs):
    """Embeddings files holding chosen vectors (another document's): the scores are the head of those."""
    rng = np.random.default_rng(0)
    directory = tmp_path / "emb"
    directory.mkdir()
    schema = embedding_schema(encoder.dim, encoder_metadata(encoder))
    chosen = {}
    for shard in sorted((root / "docs").glob("*.parquet")):
        ids = pq.read_table(shard).column("id").to_pylist()
        vectors = encode(encoder, rng.choice(docs["text"][:7], size=len(ids)).tolist())
        pq.write_table(embeddings_table(ids[::-1], vectors, schema), directory / f"{shard.stem}.parquet")
        chosen |= dict(zip(ids[::-1], vectors.astype(np.float16).astype(np.float32), strict=True))
    out = tmp_path / "out"
    cli = ["classify", "--input", str(root / "docs"), "--output", str(out), "--model", str(trained[0])]
    assert main([*cli, "--embeddings", str(directory), "--quiet"]) == 0
    got = _read_dir(out)
    expected = _head_by_hand(trained[0], np.stack([chosen[i] for i in got["id"]]))
    np.testing.assert_allclose(got["quality_score"], expected, atol=1e-6)
    assert json.loads((out / "stage.json").read_text())["steps"][-1]["quality"]["embeddings"] == str(
        directory
    )


@pytest.mark.parametrize(
    ("change", "named"), [({"weights_sha256": "0" * 64}, "weights_sha256"), ({"max_tokens": 8}, "max_tokens")]
)
def test_another_encoders_embeddings_are_not_reused(
    root, trained, encoder, tmp_path, monkeypatch, capsys, change, named
):
    deduped = _dedup_output(root, encoder, tmp_path / "deduped")
    for file in (deduped / ".dedup" / "embeddings").glob("*.parquet"):
        table = pq.read_table(file)
        meta = {**encoder_metadata(encoder), **change}
        pq.write_table(table.cast(embedding_schema(encoder.dim, meta)), file)
    counts = _count_encoded(monkeypatch)
    expected = threshold_for_top_fraction(deduped, trained[0], 1.0, embeddings=tmp_path / "nowhere")
    assert sum(counts) == expected["scored_docs"]  # nothing stored there: all encoded
    counts.clear()
    run_classify(deduped, tmp_path / "out", trained[0], threshold=0.5, progress=False)
    assert sum(counts) == expected["scored_docs"]  # every document encoded again
    lines = [line for line in capsys.readouterr().err.splitlines() if "not reused" in line]
    assert len(lines) == 1 and named in lines[0] and "encoding the documents instead" in lines[0]


def test_an_unreadable_embeddings_file_is_skipped_with_one_line(root, trained, tmp_path, monkeypatch, capsys):
    directory = tmp_path / "emb"
    directory.mkdir()
    pq.write_table(
        pa.table({"id": ["doc0"], "embedding": [[0.0] * 32]}), directory / "a.parquet"
    )  # no encoder
    counts = _count_encoded(monkeypatch)
    run_classify(root / "docs", tmp_path / "out", trained[0], embeddings=directory, progress=False)
    assert sum(counts) == 100
    lines = [line for line in capsys.readouterr().err.splitlines() if "not reused" in line]
    assert len(lines) == 1 and "a.parquet: stored embeddings not reused, unreadable" in lines[0]
    assert "andes.encoder" in lines[0]


# ---------------------------------------------------------------- refusals


def test_training_refuses_a_missing_or_non_encoder_directory(root, tmp_path, capsys):
    base = ["train-classifier", "--kind", "embedding", "--labelled", str(root / "labelled")]
    base += ["--output", str(tmp_path / "m.safetensors")]
    assert main([*base, "--encoder", str(tmp_path / "missing")]) == 1
    assert "no such encoder directory" in _one_error_line(capsys)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("not a model")
    assert main([*base, "--encoder", str(tmp_path / "plain")]) == 1
    assert "not a Hugging Face model directory" in _one_error_line(capsys)
    assert not (tmp_path / "m.safetensors").exists()


def test_classify_refuses_a_file_of_neither_kind(root, tmp_path, capsys):
    (tmp_path / "junk.bin").write_bytes(b"\x00\x01 not a model at all" * 10)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    for name in ("junk.bin", "other.safetensors"):
        args = ["classify", "--input", str(root / "docs"), "--output", str(tmp_path / f"o-{name}")]
        assert main([*args, "--model", str(tmp_path / name), "--quiet"]) == 1
        assert "neither a fastText model nor an embedding classifier" in _one_error_line(capsys)


def test_classify_refuses_an_encoder_changed_or_moved_since_training(root, tmp_path, capsys):
    enc = shutil.copytree(root / "encoder", tmp_path / "encoder")
    model = tmp_path / "m.safetensors"
    train_embedding_classifier(labelled=[root / "labelled"], output=model, encoder=enc, epochs=2)
    trained_sha = json.loads(sidecar_path(model).read_text())["encoder"]["weights_sha256"]
    weights = load_file(str(enc / "model.safetensors"))
    name = next(iter(weights))
    weights[name] = weights[name] + 0.01
    save_file(weights, str(enc / "model.safetensors"), metadata={"format": "pt"})
    args = ["classify", "--input", str(root / "docs"), "--model", str(model), "--quiet"]
    assert main([*args, "--output", str(tmp_path / "o1")]) == 1
    line = _one_error_line(capsys)
    now_sha = encoder_metadata(load_encoder(enc, device="cpu"))["weights_sha256"]
    assert trained_sha in line and now_sha in line and trained_sha != now_sha
    shutil.rmtree(enc)
    assert main([*args, "--output", str(tmp_path / "o2")]) == 1
    assert "does not exist" in _one_error_line(capsys)


# ---------------------------------------------------------------- acceptance: the real MiniLM

GOOD = [
    "The committee published a detailed report on {} and its long-term effects on {}.",
    "Researchers found that {} improves {}, according to a peer-reviewed study.",
    "This article explains how {} works and why {} matters for students and teachers.",
]
BAD = [
    "click here buy cheap {} now!!! best {} deals free shipping",
    "lol {} omg {} subscribe follow like share",
    "CASINO {} WIN BIG {} BONUS CODE ENTER NOW",
]
TOPICS = ["climate policy", "water quality", "solar energy", "public health", "economic growth", "vaccines"]


def test_minilm_acceptance(tmp_path):
    """200 short documents with the shipped all-MiniLM-L6-v2: train, then classify new ones (~10 s)."""
    rng = random.Random(0)

    def make(templates, n, tag):
        return [rng.choice(templates).format(*rng.sample(TOPICS, 2)) + f" ({tag}{i})" for i in range(n)]

    texts = make(GOOD, 100, "g") + make(BAD, 100, "b")
    _write(tmp_path / "train" / "x.parquet", texts, label=[1] * 100 + [0] * 100)
    record = train_embedding_classifier(
        labelled=[tmp_path / "train"], output=tmp_path / "m.safetensors", valid_fraction=0.2, threads=2
    )
    assert record["encoder"]["dim"] == 384 and record["valid_metrics"]["f1"] > 0.9
    fresh = make(GOOD, 20, "x") + make(BAD, 20, "y")
    _write(tmp_path / "in" / "x.parquet", fresh)
    run_classify(tmp_path / "in", tmp_path / "out", tmp_path / "m.safetensors", threshold=0.5, progress=False)
    kept = _read_dir(tmp_path / "out", ("text",))["text"]
    assert sum(t in kept for t in fresh[:20]) >= 18 and sum(t in kept for t in fresh[20:]) <= 2
