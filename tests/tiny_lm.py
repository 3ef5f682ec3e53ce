"""Random Llama causal LMs with their own byte-level BPE tokenizer, for `andes-data annotate`.

The tokenizer is trained here (offline, milliseconds) and splits text the Llama 3 way
(data_pipeline/tokenizer.py's pattern): digits never merge with a space, so "Score: 3" ends in the
tokens " " and "3", as in Llama 3. BOS is prepended as Llama's tokenizer.json does. Used by
tests/test_annotate.py (2 layers, hidden 32) and bench/bench_annotate.py (a ~135M-parameter shape).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
import transformers

from data_pipeline.annotate.prompt import DEFAULT_PROMPT
from data_pipeline.tokenizer import LLAMA3_SPLIT_PATTERN

BOS, PAD = "<|begin_of_text|>", "<|pad|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> transformers.PreTrainedTokenizerFast:
    """A byte-level BPE of `vocab_size` tokens trained on `texts` (and the default prompt)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([DEFAULT_PROMPT, *texts], trainer)
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, tok.token_to_id(BOS))]),
        ]
    )
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, pad_token=PAD)


def make_causal_lm(
    path: Path,
    texts: Iterable[str] = (),
    *,
    vocab_size: int = 1000,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 64,
    positions: int = 2048,
    seed: int = 0,
) -> Path:
    """A random LlamaForCausalLM directory with its tokenizer (tokenizer.json, BOS first)."""
    tokenizer = train_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=positions,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():  # random logits of std ~1 over the vocabulary: score probabilities far from uniform
        model.lm_head.weight.normal_(0.0, 4.0 / hidden**0.5)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def teach_scores(path: Path, template: str, texts: list[str], digits: list[int], steps: int = 80) -> Path:
    """Fine-tune the LM at `path` so the digit after `template` with each text is `digits[i]`, and save it.

    A random LM's score barely depends on the document; a taught one gives the labels a classifier
    can learn from (tests of `train-classifier --threshold` on annotated output).
    """
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    score_ids = torch.tensor(tokenizer.convert_tokens_to_ids([str(d) for d in range(6)]))
    prompts = [template.replace("{document}", text) for text in texts]
    batch = tokenizer(prompts, padding=True, return_tensors="pt")
    last = batch["attention_mask"].sum(dim=1) - 1  # right padding
    target = torch.tensor(digits)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        logits = model(**batch).logits[torch.arange(len(texts)), last][:, score_ids]
        loss = torch.nn.functional.cross_entropy(logits, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(path)
    return path
