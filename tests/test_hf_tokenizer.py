"""Hugging Face tokenizer.json beside our tiktoken files: ids equal to `tokenizers`/`AutoTokenizer` and
to our Llama 3 tokenizer, the BOS/EOS rules, `load_tokenizer`, and pack -> train -> export -> generate
with an HF tokenizer, including continued pretraining of an imported (tied) HF model."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import transformers
from conftest import compose, tiny_overrides
from tokenizers import Tokenizer as RustTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from data_pipeline.cli import main as data_main
from data_pipeline.hf_tokenizer import HFTokenizer
from data_pipeline.packed_format import read_manifest
from data_pipeline.tokenizer import (
    Tokenizer,
    llama3_special_tokens,
    load_tokenizer,
    shipped_llama3_model,
)
from pretrain import export
from pretrain import generate as gen
from pretrain.job_config import ConfigError
from pretrain.train import train

CORPUS = [
    f"To be, or not to be, that is the question {i}: whether 'tis nobler in the mind to suffer."
    for i in range(150)
] + [f"The quick brown fox jumps over the lazy dog {i * 7} times.\n" for i in range(150)]
TEXTS = [
    "Hello world!",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\n\n  indented",
    "numbers 12345 and 3.14159, 1,000,000",
    "naïve café, Straße, Ελληνικά, 日本語のテキスト, العربية",
    "emoji 🙂🚀 and a cut one \U0001f9d1\u200d\U0001f4bb",
    "code: def f(x):\n    return x**2  # comment",
    "",
    "a" * 300,
    "   \n\n\n   ",
    "it's they're we'll I'd WE'VE",
]
SPECIALS = ("<s>", "</s>", "<pad>")
SHAPE = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, multiple_of=16)  # tiny_overrides' model


def bpe_tokenizer(
    directory: Path, *, specials=SPECIALS, template: str | None = "<s> $A", config=None
) -> Path:
    """A byte-level BPE trained offline on CORPUS, saved as `directory/tokenizer.json`."""
    tok = RustTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    if template is not None:
        named = [(t, tok.token_to_id(t)) for t in specials if t in template.split()]
        tok.post_processor = processors.TemplateProcessing(single=template, special_tokens=named)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    if config is not None:
        (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory / "tokenizer.json"


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    """An HF tokenizer directory as transformers writes one (tokenizer.json + tokenizer_config.json)."""
    directory = tmp_path_factory.mktemp("hf_tok") / "small"
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>"}
    bpe_tokenizer(directory, config={**config, "pad_token": "<pad>"})
    return directory


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("docs")
    ids = [str(i) for i in range(len(CORPUS))]
    pq.write_table(pa.table({"id": ids, "text": CORPUS}), directory / "a.parquet")
    return directory


def test_ids_equal_tokenizers_and_autotokenizer(hf_dir):
    ours = load_tokenizer(hf_dir)
    rust = RustTokenizer.from_file(str(hf_dir / "tokenizer.json"))
    auto = transformers.AutoTokenizer.from_pretrained(hf_dir)
    assert isinstance(ours, HFTokenizer) and ours.kind == "hf"
    assert (ours.bos_id, ours.eos_id, ours.pad_id, ours.n_vocab) == (0, 1, 2, 384)
    assert ours.sha256 == hashlib.sha256((hf_dir / "tokenizer.json").read_bytes()).hexdigest()
    assert (ours.name, ours.path) == ("small", hf_dir / "tokenizer.json")
    for text in TEXTS:
        ids = ours.encode(text)
        assert ids == rust.encode(text, add_special_tokens=False).ids, text
        assert ids == auto(text, add_special_tokens=False)["input_ids"], text
        # The post-processor adds <s>; our bos flag adds it once, never on top of the template's.
        assert ours.encode(text, bos=True) == auto(text)["input_ids"] == [0, *ids], text
        assert ours.encode(text, bos=True, eos=True) == [0, *ids, 1]
        assert ours.decode(ids) == auto.decode(ids) == text, text
    batch = ours.encode_batch(TEXTS, bos=True, eos=True)
    assert batch == ours.encode_batch(TEXTS, bos=True, eos=True, num_threads=1)
    assert batch == [ours.encode(t, bos=True, eos=True) for t in TEXTS]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ours.decode([384])


def test_special_token_strings_in_documents_are_plain_text(hf_dir):
    ours = load_tokenizer(hf_dir / "tokenizer.json")
    ids = ours.encode("a <s> b </s> c <pad>")
    assert not {0, 1, 2} & set(ids)
    assert ours.decode(ids) == "a <s> b </s> c <pad>"
    assert ours.decode([0, *ours.encode("x"), 1]) == "<s>x</s>"


@pytest.fixture(scope="module")
def llama3_json(tmp_path_factory) -> Path:
    """Meta's Llama 3 ranks converted to tokenizer.json by transformers' own converter, with the 256
    special tokens and the post-processor Meta's HF release has (`<|begin_of_text|> $A`)."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")  # no copy of the ranks in a /tmp cache
        tok = TikTokenConverter(str(shipped_llama3_model())).converted()
    specials = llama3_special_tokens(128000)
    tok.add_special_tokens(sorted(specials, key=specials.get))
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, 128000)])
    path = tmp_path_factory.mktemp("llama3") / "Meta-Llama-3-8B" / "tokenizer.json"
    path.parent.mkdir()
    tok.save(str(path))
    return path


def test_converted_llama3_tokenizer_json_gives_our_tiktoken_ids(llama3_json):
    """No tokenizer_config.json: BOS from the post-processor, EOS from the known Llama 3 pair."""
    hf, ours = load_tokenizer(llama3_json), Tokenizer.from_file()
    assert isinstance(hf, HFTokenizer) and hf.name == "Meta-Llama-3-8B"
    assert (
        (hf.n_vocab, hf.bos_id, hf.eos_id)
        == (ours.n_vocab, ours.bos_id, ours.eos_id)
        == (128256, 128000, 128001)
    )
    texts = [*TEXTS, "<|begin_of_text|> special strings stay text <|eot_id|>", "x" * 20_000 + " y"]
    for text in texts:
        assert hf.encode(text, bos=True, eos=True) == ours.encode(text, bos=True, eos=True), text[:40]
        assert hf.decode(hf.encode(text)) == text
    assert hf.encode_batch(texts) == ours.encode_batch(texts)


def test_bos_eos_rules_and_refusal(tmp_path):
    # The post-processor's template names both (no config, no known names).
    path = bpe_tokenizer(tmp_path / "t", specials=("[BOS]", "[EOS]"), template="[BOS] $A [EOS]")
    tok = HFTokenizer(path)
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (0, 1, 1)  # no pad_token: padding uses EOS
    # tokenizer_config.json wins over the template; given tokens (strings or ids) win over both.
    (tmp_path / "t" / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": {"content": "[EOS]"}, "eos_token": "[BOS]", "pad_token": "[BOS]"})
    )
    assert (HFTokenizer(path).bos_id, HFTokenizer(path).eos_id, HFTokenizer(path).pad_id) == (1, 0, 0)
    assert (HFTokenizer(path, bos="[BOS]", eos=1).bos_id, HFTokenizer(path, eos=1).eos_id) == (0, 1)
    with pytest.raises(ValueError, match=r"bos='\[NOPE\]' is not a token of this tokenizer"):
        HFTokenizer(path, bos="[NOPE]")
    # Llama 2 / Mistral: <s> $A template, </s> by name.
    llama2 = HFTokenizer(bpe_tokenizer(tmp_path / "l2"))
    assert (llama2.bos_id, llama2.eos_id) == (0, 1)
    # Nothing identifies them: one line naming the file and the fix.
    bare = bpe_tokenizer(tmp_path / "bare", specials=("[A]", "[B]"), template=None)
    with pytest.raises(ValueError, match="cannot tell its BOS token") as e:
        HFTokenizer(bare)
    assert str(bare) in str(e.value) and "bos_token in tokenizer_config.json" in str(e.value)
    assert "\n" not in str(e.value)
    ids = HFTokenizer(bare, bos="[A]", eos="[B]").encode("x", bos=True, eos=True)
    assert (ids[0], ids[-1]) == (0, 1)


def test_load_tokenizer_picks_by_file(tmp_path, hf_dir):
    assert load_tokenizer(None).name == "llama3" and load_tokenizer(None).kind == "tiktoken"
    ranks = tmp_path / "ranks" / "tokenizer.model"
    ranks.parent.mkdir()
    shutil.copy(shipped_llama3_model(), ranks)
    for path in (ranks, ranks.parent):
        tok = load_tokenizer(path)
        assert type(tok) is Tokenizer and tok.sha256 == Tokenizer.from_file().sha256
    assert type(Tokenizer.from_file(ranks)) is Tokenizer
    assert type(load_tokenizer(hf_dir)) is type(load_tokenizer(hf_dir / "tokenizer.json")) is HFTokenizer
    shutil.copy(hf_dir / "tokenizer.json", ranks.parent)  # tokenizer.json wins over tokenizer.model
    assert type(load_tokenizer(ranks.parent)) is HFTokenizer
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no tokenizer.json or tokenizer.model"):
        load_tokenizer(tmp_path / "empty")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a Hugging Face tokenizer.json"):
        load_tokenizer(tmp_path / "bad.json")


def _pack(docs: Path, out: Path, tokenizer: Path | None, *extra: str) -> dict:
    args = ["pack", "--input", str(docs), "--output", str(out), "--seq-len", "32", "--rows-per-shard", "64"]
    assert data_main([*args, *(["--tokenizer", str(tokenizer)] if tokenizer else []), *extra]) == 0
    return read_manifest(out)


def _generate(checkpoint: Path, capsys, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    flags = ["--prompt", "To be, or", "--max-new-tokens", "6", "--temperature", "0", *extra]
    code = gen.main(["--checkpoint", str(checkpoint), *flags])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_pack_train_export_generate_with_hf_tokenizer(hf_dir, docs, tmp_path, capsys):
    tok = load_tokenizer(hf_dir)
    manifest = _pack(docs, tmp_path / "packed" / "train", hf_dir / "tokenizer.json", "--val-fraction", "0.1")
    assert manifest["tokenizer"] == {
        "kind": "hf",
        "name": "small",
        "sha256": tok.sha256,
        "n_vocab": 384,
        "bos_id": 0,
        "eos_id": 1,
        "pad_id": 2,
    }
    assert read_manifest(tmp_path / "packed" / "train" / "val")["tokenizer"] == manifest["tokenizer"]
    row = pq.read_table(next((tmp_path / "packed" / "train").glob("part-*.parquet"))).column("tokens")[0]
    assert row.as_py()[0] == 0 and tok.decode(row.as_py()).startswith("<s>")
    run = tmp_path / "run"
    extra = (
        "model.vocab_size=384",
        f"data.tokenizer={hf_dir}",
        f"validation.path={tmp_path / 'packed' / 'train' / 'val'}",
        "training.steps=3",
        "training.sample_prompt=To be",
        "training.sample_tokens=4",
        "checkpoint.enabled=true",
    )
    result = train(compose(tiny_overrides(tmp_path / "packed", run, *extra)))
    assert result.sample.startswith("To be") and len(result.sample) > len("To be")
    code, from_run, _ = _generate(run, capsys)
    assert code == 0 and from_run.startswith("To be, or"), _
    # The export carries the run's HF tokenizer, which generate on the export then uses.
    assert export.main([f"run.dir={run}", "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "tokenizer.json").read_bytes() == (hf_dir / "tokenizer.json").read_bytes()
    assert not (tmp_path / "hf" / "tokenizer.model").exists()
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"], config["tie_word_embeddings"]) == (0, 1, False)
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert auto("To be, or")["input_ids"] == tok.encode("To be, or", bos=True)
    assert _generate(tmp_path / "hf", capsys)[:2] == (0, from_run)
    # Evaluation with the HF tokenizer: the run's (from its checkpoint) and the export's own agree.
    from pretrain.eval.__main__ import main as eval_main

    flags = ["--tasks", "piqa", "--limit", "3", "--no-progress"]
    assert eval_main(["--checkpoint", str(run), *flags, "--out", str(tmp_path / "run.json")]) == 0
    assert eval_main(["--hf", str(tmp_path / "hf"), *flags, "--out", str(tmp_path / "hf.json")]) == 0
    scores = [json.loads((tmp_path / f).read_text())["tasks"]["piqa"] for f in ("run.json", "hf.json")]
    assert scores[0]["n"] == 3 and scores[0]["bpb"] == pytest.approx(scores[1]["bpb"], rel=1e-4)


def test_hf_tokenizer_mismatches_are_one_line(hf_dir, docs, tmp_path, capsys):
    packed = tmp_path / "packed"
    _pack(docs, packed / "train", hf_dir)
    # The trainer: a model too small for the tokenizer, the wrong sampling tokenizer, val data of another.
    with pytest.raises(ConfigError, match="set model.vocab_size=384"):
        train(compose(tiny_overrides(packed, tmp_path / "r1")))
    other = _pack(docs, packed / "other", None)  # Llama 3 tiktoken
    assert other["tokenizer"]["kind"] == "tiktoken"
    base = ("model.vocab_size=384", "training.steps=1")
    with pytest.raises(ConfigError, match="not the tokenizer the data was packed with"):
        train(compose(tiny_overrides(packed, tmp_path / "r2", *base, "training.sample_prompt=To")))
    with pytest.raises(ConfigError, match="pack both with the same tokenizer"):
        train(compose(tiny_overrides(packed, tmp_path / "r3", *base, f"validation.path={packed / 'other'}")))
    # Generate: a tokenizer with more ids than the model has rows.
    train(compose(tiny_overrides(packed, tmp_path / "run", *base, "checkpoint.enabled=true")))
    code, _, err = _generate(tmp_path / "run", capsys, "--tokenizer", str(shipped_llama3_model()))
    assert code == 1
    assert err.strip().count("\n") == 0 and "has 128256 ids but the model's vocab_size is 384" in err


def _hf_llama(directory: Path, *, tied: bool, vocab: int = 384) -> transformers.LlamaForCausalLM:
    """A random transformers Llama of tiny_overrides' shape, saved with `hf_dir`'s tokenizer."""
    cfg = transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=tied,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    torch.manual_seed(1)
    model = transformers.LlamaForCausalLM(cfg).eval()
    model.save_pretrained(directory)
    return model


def test_continued_pretraining_of_a_tied_hf_model_with_its_tokenizer(hf_dir, docs, tmp_path, capsys):
    """Import keeps the HF model's tokenizer and tying; pack with it, train from it, export, generate."""
    hf_model = _hf_llama(tmp_path / "hf_model", tied=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(hf_dir / name, tmp_path / "hf_model")
    ckpt = tmp_path / "imported"
    assert export.main(["--from-hf", str(tmp_path / "hf_model"), "--out", str(ckpt)]) == 0
    assert export.checkpoint_model_args(ckpt).tie_embeddings
    assert (ckpt / "tokenizer.json").read_bytes() == (hf_dir / "tokenizer.json").read_bytes()
    # Generate on the imported checkpoint uses its tokenizer and follows transformers' greedy choice.
    tok = load_tokenizer(ckpt)
    prompt = tok.encode("To be, or", bos=True)
    code, out, _ = _generate(ckpt, capsys)
    ref = hf_model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False)[0, len(prompt) :]
    assert code == 0 and out == "To be, or" + tok.decode([i for i in ref.tolist() if i != 1]) + "\n"

    assert _pack(docs, tmp_path / "packed" / "train", ckpt)["tokenizer"]["sha256"] == tok.sha256
    run = tmp_path / "run"
    extra = (
        "model.vocab_size=384",
        "model.tie_embeddings=true",
        f"checkpoint.initial_load_path={ckpt}",
        f"data.tokenizer={ckpt}",
        "training.steps=3",
        "optim.lr=1e-12",  # the imported weights, trained through every step, come out unchanged
        "checkpoint.enabled=true",
    )
    train(compose(tiny_overrides(tmp_path / "packed", run, *extra)))
    assert export.main([f"run.dir={run}", "--out", str(tmp_path / "out")]) == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    reloaded = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert reloaded.lm_head.weight is reloaded.model.embed_tokens.weight
    x = torch.tensor([prompt])
    with torch.no_grad():
        assert (reloaded(x).logits - hf_model(x).logits).abs().max().item() < 1e-4
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == (hf_dir / "tokenizer.json").read_bytes()
    assert _generate(tmp_path / "out", capsys)[:2] == _generate(run, capsys)[:2]

    # An untied import cannot start a tied model (both matrices would load into the one).
    _hf_llama(tmp_path / "untied", tied=False)
    assert export.main(["--from-hf", str(tmp_path / "untied"), "--out", str(tmp_path / "untied_ckpt")]) == 0
    bad = (*extra[:2], f"checkpoint.initial_load_path={tmp_path / 'untied_ckpt'}", "training.steps=1")
    with pytest.raises(ConfigError, match="holds an untied model"):
        train(compose(tiny_overrides(tmp_path / "packed", tmp_path / "run2", *bad)))


def test_import_refuses_a_tokenizer_larger_than_the_model(hf_dir, tmp_path):
    _hf_llama(tmp_path / "hf_model", tied=False, vocab=256)
    shutil.copy(hf_dir / "tokenizer.json", tmp_path / "hf_model")
    with pytest.raises(ValueError, match="has 384 ids but the model's vocab_size is 256") as e:
        export.import_hf(tmp_path / "hf_model", tmp_path / "ckpt")
    assert "\n" not in str(e.value) and not (tmp_path / "ckpt").exists()
