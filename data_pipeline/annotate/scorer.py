"""A causal LM's score of each document: the expected 0-5 digit after its prompt, from one forward pass.

The score is the expected value of the digit under the model's next-token probabilities of the
six score tokens, renormalised over those six (a softmax of their logits), as FineWeb-Edu-style
annotators read a score without sampling; the argmax digit is kept beside it. The model is a
Hugging Face causal-LM directory (`AutoModelForCausalLM`, never remote code) with its own tokenizer;
an andes checkpoint is scored through its export (`python -m pretrain.export`), whose tiktoken
`tokenizer.model` tokens.py reads.

Speed, as for embeddings (semantic/encoder.py): prompts sorted by token count, batched under a
budget of padded tokens, right-padded; the LM head is applied to each row's last real position only
(one row of logits per document, not one per token: 128k floats each for Llama 3). bfloat16 on CUDA,
float32 on CPU; the softmax is float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data_pipeline.annotate.prompt import SCORE_DIGITS, Template
from data_pipeline.annotate.tokens import PromptTokenizer, load_prompt_tokenizer, prompt_ids, score_token_ids
from data_pipeline.semantic.encoder import (
    BATCH_TOKENS,
    DTYPES,
    batches,
    check_model_dir,
    device_and_dtype,
    first_line,
    import_transformers,
    load_model,
)

SCORE_VALUES = np.arange(len(SCORE_DIGITS), dtype=np.float64)
USE = "LLM scores"


@dataclass(frozen=True)
class Annotator:
    """A loaded causal LM, its tokenizer, the prompt, and the ids of the score tokens."""

    path: Path
    model: torch.nn.Module  # a transformers causal LM in eval mode
    tokenizer: PromptTokenizer
    template: Template
    score_ids: tuple[int, ...]
    max_doc_tokens: int
    pad_id: int
    device: torch.device


def _causal_lm_names() -> dict[str, set[str]]:
    """transformers' causal-LM classes by model type (a type may have several)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as names

    return {kind: {value} if isinstance(value, str) else set(value) for kind, value in names.items()}


def _check_causal(path: Path) -> int | None:
    """Refuse a directory whose config names no causal-LM class; its position limit (None: none).

    A config without `architectures` passes on its model type; missing weights (a random LM head)
    are caught once loaded.
    """
    transformers = import_transformers(USE)
    try:
        config = transformers.AutoConfig.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a model transformers can load ({first_line(e)})") from None
    causal = _causal_lm_names()
    found = list(getattr(config, "architectures", None) or [])
    known = bool(set(found) & set().union(*causal.values())) if found else config.model_type in causal
    if not known:
        named = ", ".join(found) or f"none; model_type {config.model_type}"
        raise ValueError(
            f"{path}: not a causal language model (architectures: {named}); "
            "annotate needs one such as LlamaForCausalLM"
        )
    positions = getattr(config, "max_position_embeddings", None)
    return positions if isinstance(positions, int) else None


def check_annotator(
    path: Path | str, template: Template, max_doc_tokens: int
) -> tuple[PromptTokenizer, int, tuple[int, ...]]:
    """Everything about a model directory that can be refused without loading its weights.

    Returns its tokenizer, pad id and score-token ids.
    """
    path = Path(path).expanduser()
    check_model_dir(path)
    positions = _check_causal(path)
    tokenizer, pad_id = load_prompt_tokenizer(path)
    score_ids = score_token_ids(path, tokenizer, template)
    longest = len(tokenizer.encode([template.render("")], specials=True)[0]) + max_doc_tokens + 2
    if positions is not None and longest > positions:
        raise ValueError(
            f"{path}: prompts of up to {longest} tokens (template and --max-doc-tokens {max_doc_tokens}) "
            f"exceed the model's {positions} positions; lower --max-doc-tokens"
        )
    return tokenizer, pad_id, score_ids


def load_annotator(
    path: Path | str,
    template: Template,
    max_doc_tokens: int,
    *,
    threads: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> Annotator:
    """Load a causal-LM directory to score documents through `template` (checks: `check_annotator`).

    `threads` sets torch's CPU threads for the whole process; `dtype` defaults to bfloat16 on CUDA
    and float32 on CPU (encoder.device_and_dtype).
    """
    path = Path(path).expanduser()
    tokenizer, pad_id, score_ids = check_annotator(path, template, max_doc_tokens)
    if threads is not None:
        torch.set_num_threads(threads)
    target, dtype = device_and_dtype(device, dtype)
    model, missing = load_model(path, target, DTYPES[dtype], auto="AutoModelForCausalLM")
    if missing:
        raise ValueError(f"{path}: weights {sorted(missing)[:3]} missing; not a trained causal LM")
    if model.get_output_embeddings() is None:
        raise ValueError(f"{path}: {type(model).__name__} has no LM head")
    return Annotator(path, model, tokenizer, template, score_ids, max_doc_tokens, pad_id, target)


@contextlib.contextmanager
def _last_positions_only(model: torch.nn.Module, last: torch.Tensor) -> Iterator[None]:
    """Feed the LM head only each row's position `last[row]`: logits (rows, 1, vocab), not (rows,
    width, vocab). The model's own forward still runs whatever follows the head (e.g. soft-capping)."""
    rows = torch.arange(len(last))

    def keep(module: torch.nn.Module, args: tuple) -> tuple:
        hidden = args[0]
        return (hidden[rows.to(hidden.device), last.to(hidden.device)].unsqueeze(1), *args[1:])

    handle = model.get_output_embeddings().register_forward_pre_hook(keep)
    try:
        yield
    finally:
        handle.remove()


def _forward(annotator: Annotator, rows: Sequence[list[int]]) -> np.ndarray:
    """Probabilities of the score tokens (rows, 6) after each prompt, one right-padded batch."""
    width = max(map(len, rows))
    ids = np.full((len(rows), width), annotator.pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    last = torch.tensor([len(row) - 1 for row in rows])
    inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    inputs = {name: t.to(annotator.device) for name, t in inputs.items()}
    with _last_positions_only(annotator.model, last):
        logits = annotator.model(**inputs, use_cache=False).logits
    if tuple(logits.shape[:2]) != (len(rows), 1):
        raise ValueError(f"{annotator.path}: unexpected logits of shape {tuple(logits.shape)}")
    chosen = logits[:, 0, list(annotator.score_ids)].float()
    return torch.softmax(chosen, dim=-1).cpu().numpy()


def score_probabilities(
    annotator: Annotator, texts: Sequence[str], *, batch_tokens: int | None = None
) -> np.ndarray:
    """Score-token probabilities (len(texts), 6) in input order; batches sorted by prompt length."""
    prompts = prompt_ids(annotator.tokenizer, annotator.template, texts, annotator.max_doc_tokens)
    out = np.empty((len(prompts), len(SCORE_DIGITS)), dtype=np.float32)
    if not prompts:
        return out
    budget = batch_tokens or BATCH_TOKENS.get(annotator.device.type, BATCH_TOKENS["cuda"])
    lengths = np.fromiter(map(len, prompts), dtype=np.int64, count=len(prompts))
    order = np.argsort(-lengths, kind="stable")
    with torch.inference_mode():
        for part in batches(lengths[order], budget):
            rows = order[part]
            out[rows] = _forward(annotator, [prompts[i] for i in rows])
    return out


def expected_scores(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(expected digit as float32, most probable digit as int8) of score-token probabilities."""
    expected = (probabilities.astype(np.float64) @ SCORE_VALUES).astype(np.float32)
    return expected, probabilities.argmax(axis=1).astype(np.int8)
