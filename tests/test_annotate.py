"""`andes-data annotate` with tiny random Llama causal LMs (tests/tiny_lm.py).

Scores must equal a reference computed here with plain transformers, one document at a time
(softmax over the six score tokens' logits, expected digit); the output must not depend on workers,
rank splits or a kill -9 and re-run; bad models and prompts get one clear line; and annotated
output must train a classifier (`train-classifier --label-column llm_score --threshold 3`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import transformers
from conftest import REPO
from tiny_encoders import WORDS, make_bert, make_llama
from tiny_lm import make_causal_lm, teach_scores

from data_pipeline.annotate.prompt import DEFAULT_PROMPT, load_template
from data_pipeline.cli import main

SHORT_PROMPT = "Text: {document}\nScore: "


def word_docs(n: int, seed: int = 0) -> list[str]:
    """Texts of 0 to 60 words, with digits, punctuation, braces and non-ASCII among them."""
    rng = random.Random(seed)
    extra = ["3.", "12", "(x)", "{y}", "café", "naïve", "日本語", "😀", "\n\n"]
    docs = [" ".join(rng.choices(WORDS + extra, k=rng.randint(0, 60))) for _ in range(n)]
    return [*docs, "", "{document}"]


def write_shards(path: Path, docs: list[str], shards: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        rows = list(range(s, len(docs), shards))
        table = pa.table({"id": [f"doc-{r}" for r in rows], "text": [docs[r] for r in rows]})
        pq.write_table(table, path / f"shard-{s}.parquet")


def annotate_args(inp: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["annotate", "--input", str(inp), "--output", str(out), "--model", str(model), "--quiet", *extra]


def read_output(out: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(out.glob("*.parquet")))


def output_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.parquet"))}


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> Path:
    return make_causal_lm(tmp_path_factory.mktemp("lm") / "llama", word_docs(200, seed=9))


def reference(model_dir: Path, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(expected digit, argmax digit) of each prompt: transformers, one prompt at a time, float32."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()
    score_ids = tokenizer.convert_tokens_to_ids([str(d) for d in range(6)])
    expected, argmax = [], []
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([tokenizer(prompt)["input_ids"]])
            p = torch.softmax(model(input_ids=ids).logits[0, -1, score_ids], dim=0)
            expected.append(float((p * torch.arange(6)).sum()))
            argmax.append(int(p.argmax()))
    return np.array(expected), np.array(argmax)


# ---------------------------------------------------------------------------------------------
# Scores equal a reference computation
# ---------------------------------------------------------------------------------------------


def test_scores_equal_one_document_at_a_time(tmp_path, lm):
    docs = word_docs(40)
    write_shards(tmp_path / "in", docs, shards=1)
    # A budget of ~5 default prompts per forward pass: batches mix lengths, so rows are padded.
    assert main(annotate_args(tmp_path / "in", tmp_path / "out", lm, "--batch-tokens", "1500")) == 0
    table = read_output(tmp_path / "out")
    assert table.column_names == ["id", "text", "llm_score", "llm_score_argmax"]
    assert table.schema.field("llm_score").type == pa.float32()
    assert table.schema.field("llm_score_argmax").type == pa.int8()
    prompts = [DEFAULT_PROMPT.replace("{document}", d) for d in table.column("text").to_pylist()]
    expected, argmax = reference(lm, prompts)
    scores = table.column("llm_score").to_numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)
    assert table.column("llm_score_argmax").to_pylist() == argmax.tolist()
    assert np.ptp(scores) > 0.1  # the documents do change the score
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["annotate"]["scored_docs"] == len(docs)
    assert sum(stats["annotate"]["argmax_counts"].values()) == len(docs)


def test_long_documents_are_cut_after_their_max_doc_tokens_th_token(tmp_path, lm):
    """The stated rule: cut at the end of the character holding the document's n-th token (tokenized
    alone), then the whole prompt is tokenized; checked here with transformers' offsets."""
    n = 24
    docs = [d for d in word_docs(30, seed=4) if len(d) > 200]
    write_shards(tmp_path / "in", docs, shards=1)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Read this.\n{document}\nScore: \n")  # the final newline is dropped
    args = ["--max-doc-tokens", str(n), "--prompt", str(prompt)]
    assert main(annotate_args(tmp_path / "in", tmp_path / "out", lm, *args)) == 0
    tokenizer = transformers.AutoTokenizer.from_pretrained(lm)
    prompts = []
    for doc in docs:
        offsets = tokenizer(doc, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        assert len(offsets) > n
        prompts.append(f"Read this.\n{doc[: offsets[n - 1][1]]}\nScore: ")
        assert (
            len(tokenizer(prompts[-1])["input_ids"])
            <= len(tokenizer("Read this.\n\nScore: ")["input_ids"]) + n + 2
        )
    expected, _ = reference(lm, prompts)
    np.testing.assert_allclose(
        read_output(tmp_path / "out").column("llm_score").to_numpy(), expected, atol=1e-5
    )


def test_andes_export_is_scored_with_its_tiktoken_tokenizer(tmp_path):
    """An andes checkpoint gets a one-line pointer to its export; the export is scored on [BOS] + the
    ids of its tiktoken ranks (here one token per byte), as the model was trained."""
    import base64

    from test_export_generate import SHAPE, make_run

    from pretrain import export

    ranks = tmp_path / "bytes.tiktoken"
    ranks.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)))
    make_run(tmp_path / "run", {**SHAPE, "vocab_size": 512}, tokenizer=ranks)
    assert export.main([f"run.dir={tmp_path / 'run'}", "--out", str(tmp_path / "hf")]) == 0
    assert not (tmp_path / "hf" / "tokenizer.json").exists()
    docs = ["w1 w2", "a longer text that the token limit cuts short", ""]
    write_shards(tmp_path / "in", docs, shards=1)
    prompt = tmp_path / "p.txt"
    prompt.write_text("Doc: {document}\nScore: ")
    args = ["--prompt", str(prompt), "--max-doc-tokens", "20"]
    checkpoint = tmp_path / "run" / "checkpoints" / "step-3"
    assert main(annotate_args(tmp_path / "in", tmp_path / "o1", checkpoint, *args)) == 1
    assert main(annotate_args(tmp_path / "in", tmp_path / "out", tmp_path / "hf", *args)) == 0
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    expected = []
    with torch.no_grad():
        for doc in docs:
            ids = torch.tensor([[256, *f"Doc: {doc[:20]}\nScore: ".encode()]])  # BOS = first special id
            p = torch.softmax(model(input_ids=ids).logits[0, -1, 48:54], dim=0)  # bytes of "0".."5"
            expected.append(float((p * torch.arange(6)).sum()))
    np.testing.assert_allclose(
        read_output(tmp_path / "out").column("llm_score").to_numpy(), expected, atol=1e-5
    )


# ---------------------------------------------------------------------------------------------
# The output does not depend on how the run is split, stopped or resumed
# ---------------------------------------------------------------------------------------------


def test_output_is_identical_across_workers_and_rank_splits(tmp_path, lm):
    write_shards(tmp_path / "in", word_docs(60, seed=1), shards=4)
    common = ("--batch-rows", "16", "--max-doc-tokens", "32")
    assert main(annotate_args(tmp_path / "in", tmp_path / "one", lm, *common)) == 0
    assert main(annotate_args(tmp_path / "in", tmp_path / "two", lm, *common, "--workers", "2")) == 0
    for rank in range(3):
        split = ("--rank", str(rank), "--world-size", "3")
        assert main(annotate_args(tmp_path / "in", tmp_path / "ranks", lm, *common, *split)) == 0
    one = output_bytes(tmp_path / "one")
    assert len(one) == 4
    assert output_bytes(tmp_path / "two") == one and output_bytes(tmp_path / "ranks") == one


def test_killed_run_reruns_to_identical_output(tmp_path, lm):
    write_shards(tmp_path / "in", word_docs(300, seed=2), shards=6)
    common = ("--batch-rows", "8", "--max-doc-tokens", "64")
    assert main(annotate_args(tmp_path / "in", tmp_path / "clean", lm, *common)) == 0
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "data_pipeline",
        *annotate_args(tmp_path / "in", out, lm, *common, "--workers", "2"),
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((out / ".done").glob("*.json")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # parent and workers, mid-run
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert len(list((out / ".done").glob("*.json"))) < 6 and not (out / "stats.json").exists()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=300)
    assert output_bytes(out) == output_bytes(tmp_path / "clean")
    assert not list(out.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------
# Bad models and prompts get one line
# ---------------------------------------------------------------------------------------------


def _fails(args: list[str], capsys, *needles: str) -> str:
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err
    return err[0]


def test_bad_prompts_and_models_get_one_line(tmp_path, lm, capsys):
    write_shards(tmp_path / "in", word_docs(5), shards=1)
    inp = tmp_path / "in"
    bert = make_bert(tmp_path / "bert", None)
    no_digits = make_llama(tmp_path / "words")  # a word-level tokenizer without "0".."5"
    config = transformers.AutoConfig.from_pretrained(lm)
    base = tmp_path / "base"  # a Llama without its LM head
    transformers.LlamaModel(config).save_pretrained(base)
    transformers.AutoTokenizer.from_pretrained(lm).save_pretrained(base)
    headless = tmp_path / "headless"  # the same weights, its config claiming a causal LM
    shutil.copytree(base, headless)
    meta = json.loads((headless / "config.json").read_text())
    (headless / "config.json").write_text(json.dumps({**meta, "architectures": ["LlamaForCausalLM"]}))
    capsys.readouterr()  # their save_pretrained progress bars
    no_slot = tmp_path / "no_slot.txt"
    no_slot.write_text("Rate this text from 0 to 5.\nScore: ")
    _fails(
        annotate_args(inp, tmp_path / "o1", lm, "--prompt", str(no_slot)), capsys, str(no_slot), "{document}"
    )
    twice = tmp_path / "twice.txt"
    twice.write_text("{document} {document}")
    _fails(annotate_args(inp, tmp_path / "o2", lm, "--prompt", str(twice)), capsys, "found 2")
    _fails(
        annotate_args(inp, tmp_path / "o3", bert),
        capsys,
        str(bert),
        "not a causal language model",
        "BertModel",
    )
    _fails(annotate_args(inp, tmp_path / "o4", no_digits), capsys, "no single token for score digit '0'")
    _fails(annotate_args(inp, tmp_path / "o8", base), capsys, "not a causal language model", "LlamaModel")
    _fails(annotate_args(inp, tmp_path / "o9", headless), capsys, "weights ['lm_head.weight'] missing")
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / ".metadata").write_bytes(b"")
    _fails(annotate_args(inp, tmp_path / "o5", checkpoint), capsys, "an andes checkpoint", "pretrain.export")
    _fails(annotate_args(inp, tmp_path / "o6", tmp_path / "nope"), capsys, "no such model directory")
    args = annotate_args(inp, tmp_path / "o7", lm, "--max-doc-tokens", "5000")
    _fails(args, capsys, "exceed the model's 2048 positions")
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 8))  # refused before any shard


def test_prompt_ending_merged_with_the_digit_is_refused(tmp_path, lm, capsys):
    """A template ending in a digit: Llama 3's split keeps up to three digits together, and this BPE
    has the token "10", so "1" + "0" is one token and no score digit would follow on its own."""
    write_shards(tmp_path / "in", word_docs(3), shards=1)
    prompt = tmp_path / "p.txt"
    prompt.write_text("{document}\nScore out of 5, from 0 to 5: 1")
    args = annotate_args(tmp_path / "in", tmp_path / "o", lm, "--prompt", str(prompt))
    _fails(args, capsys, "no single token for score digit '0'", "ends in tokens ['10']")


def test_default_prompt_gives_llama3_its_digit_tokens():
    """In Llama 3's own tokenizer (tiktoken ranks from llama-models) "Score: " + "3" ends in the token
    "3" alone: the default prompt's score tokens are Llama 3's digits 0..5 (ids 15..20)."""
    from data_pipeline.annotate.tokens import RanksText, score_token_ids
    from data_pipeline.semantic.encoder import RanksTokenizer
    from data_pipeline.tokenizer import shipped_llama3_model

    assert DEFAULT_PROMPT.count("{document}") == 1 and DEFAULT_PROMPT.endswith("Score: ")
    llama3 = RanksText(RanksTokenizer(shipped_llama3_model(), None))
    assert score_token_ids(Path("llama3"), llama3, load_template(None)) == (15, 16, 17, 18, 19, 20)


# ---------------------------------------------------------------------------------------------
# Annotated sample -> classifier -> corpus
# ---------------------------------------------------------------------------------------------


def _topic_docs(n: int, seed: int) -> tuple[list[str], list[bool]]:
    """Texts drawn from the first half of WORDS ("educational") or the second; which is which."""
    rng = random.Random(seed)
    good = [rng.random() < 0.5 for _ in range(n)]
    docs = [" ".join(rng.choices(WORDS[:30] if g else WORDS[30:], k=rng.randint(3, 30))) for g in good]
    return docs, good


def test_annotated_sample_trains_a_classifier(tmp_path, capsys):
    """annotate a sample -> train-classifier --label-column llm_score --threshold 3 (fastText and
    embedding kinds) -> classify the corpus: the docs/llm_annotation.md walkthrough."""
    teach, teach_good = _topic_docs(120, seed=1)
    lm = make_causal_lm(tmp_path / "lm", teach)
    teach_scores(lm, SHORT_PROMPT, teach, [5 if g else 0 for g in teach_good], steps=60)
    sample, good = _topic_docs(200, seed=2)
    write_shards(tmp_path / "sample", sample, shards=2)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(SHORT_PROMPT)
    assert main(annotate_args(tmp_path / "sample", tmp_path / "scored", lm, "--prompt", str(prompt))) == 0
    scored = read_output(tmp_path / "scored")
    by_text = dict(zip(sample, good, strict=True))
    labels = [by_text[t] for t in scored.column("text").to_pylist()]
    assert (scored.column("llm_score").to_numpy() >= 3).tolist() == labels  # the taught LM's labels
    model = tmp_path / "quality.bin"
    train = ["train-classifier", "--labelled", str(tmp_path / "scored"), "--label-column", "llm_score"]
    train += ["--threshold", "3", "--valid-fraction", "0.25", "--output", str(model), "--quiet"]
    train += ["--threads", "1", "--bucket", "10000"]
    assert main(train) == 0
    record = json.loads(model.with_name("quality.bin.json").read_text())
    assert record["inputs"]["threshold"] == 3 and record["counts"]["read"] == {
        "hq": sum(labels),
        "cc": len(labels) - sum(labels),
    }
    assert record["valid_metrics"]["auc"] > 0.9, record["valid_metrics"]
    encoder = make_bert(tmp_path / "bert", {"mean_tokens": True})
    embedding = [
        "--kind",
        "embedding",
        "--encoder",
        str(encoder),
        "--output",
        str(tmp_path / "head.safetensors"),
    ]
    assert main([*train[: train.index("--output")], *embedding, "--threads", "1"]) == 0
    corpus, corpus_good = _topic_docs(100, seed=3)
    write_shards(tmp_path / "corpus", corpus, shards=2)
    classify = ["classify", "--input", str(tmp_path / "corpus"), "--output", str(tmp_path / "kept")]
    assert main([*classify, "--model", str(model), "--threshold", "0.5", "--quiet"]) == 0
    kept = read_output(tmp_path / "kept").column("text").to_pylist()
    right = sum(set(t.split()) <= set(WORDS[:30]) for t in kept)
    assert right >= 0.9 * len(kept) and right >= 0.9 * sum(corpus_good), (right, len(kept), sum(corpus_good))
    capsys.readouterr()


def test_threshold_needs_numeric_labels_and_excludes_positive_label(tmp_path, capsys):
    pq.write_table(pa.table({"text": ["a b", "c d"], "label": ["x", "y"]}), tmp_path / "l.parquet")
    train = [
        "train-classifier",
        "--labelled",
        str(tmp_path / "l.parquet"),
        "--output",
        str(tmp_path / "m.bin"),
    ]
    _fails([*train, "--threshold", "3"], capsys, "column 'label' is string; --threshold needs numeric labels")
    assert main([*train, "--threshold", "3", "--positive-label", "x"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
