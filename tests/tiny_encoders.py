"""Tiny random text encoders in Hugging Face layouts, for tests of semantic dedup and embedding classifiers.

`make_bert` builds a 2-layer BERT (hidden 32) with a whitespace word tokenizer over WORDS, with
sentence-transformers files when `pooling` is given; `make_llama` a 2-layer Llama causal LM.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
import transformers

WORDS = [f"w{i}" for i in range(60)]
TINY_MAX_TOKENS = 24


def _word_tokenizer(bos_only: bool = False, specials: bool = True) -> transformers.PreTrainedTokenizerFast:
    """A whitespace WordLevel tokenizer over WORDS; BERT-style [CLS] x [SEP], or Llama-style <s> x."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    names = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(names)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos_only:
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 2)])
    elif specials:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )


def _st_files(path: Path, pooling: dict[str, bool], normalize: bool = True) -> None:
    """sentence-transformers layout: modules.json, 1_Pooling/config.json, sentence_bert_config.json."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    keys = {f"pooling_mode_{k}": v for k, v in pooling.items()}
    (path / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **keys}))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": TINY_MAX_TOKENS}))


def make_bert(
    path: Path, pooling: dict[str, bool] | None, normalize: bool = True, specials: bool = True
) -> Path:
    """A random 2-layer BERT (hidden 32) with a word tokenizer; sentence-transformers files if `pooling`."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=4 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(path)
    _word_tokenizer(specials=specials).save_pretrained(path)
    if pooling is not None:
        _st_files(path, pooling, normalize)
    return path


def make_llama(path: Path) -> Path:
    """A random 2-layer Llama causal LM checkpoint (no sentence-transformers files), BOS-only template."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=4 + len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=40,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    _word_tokenizer(bos_only=True).save_pretrained(path)
    return path


def word_texts(n: int, seed: int = 0) -> list[str]:
    """The empty text and texts of 1 to 30 words (some truncated at TINY_MAX_TOKENS), no two alike."""
    rng = random.Random(seed)
    texts = dict.fromkeys(" ".join(rng.choices(WORDS, k=rng.randint(1, 30))) for _ in range(n * 2))
    return [*list(texts)[: n - 1], ""]
