"""Sampling from a trained model with a KV cache: prefill the prompt once, then one token per step."""

from __future__ import annotations

import torch

from pretrain.model import KVCache, Transformer


@torch.no_grad()
def generate(
    model: Transformer,
    prompt: list[int],
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    stop_ids: tuple[int, ...] = (),
    seed: int = 0,
) -> list[int]:
    """New token ids after `prompt` (greedy when temperature == 0), stopping early at `stop_ids`."""
    if not prompt:
        raise ValueError("prompt must hold at least one token")
    args = model.args
    max_len = min(args.max_seq_len, len(prompt) + max_new_tokens)
    if len(prompt) >= max_len:
        raise ValueError(
            f"prompt of {len(prompt)} tokens leaves no room below max_seq_len={args.max_seq_len}"
        )
    param = next(model.parameters())
    caches = [
        KVCache(1, max_len, args.kv_heads, args.head_dim, dtype=param.dtype, device=param.device)
        for _ in range(args.n_layers)
    ]
    generator = torch.Generator(device=param.device).manual_seed(seed)
    tokens = torch.tensor([prompt], dtype=torch.long, device=param.device)
    out: list[int] = []
    pos = 0
    while pos + tokens.shape[1] <= max_len and len(out) < max_new_tokens:
        logits = model(tokens, caches=caches, start_pos=pos)[0, -1].float()
        pos += tokens.shape[1]
        next_id = _sample(logits, temperature, top_k, generator)
        out.append(next_id)
        if next_id in stop_ids:
            break
        tokens = torch.tensor([[next_id]], dtype=torch.long, device=param.device)
    return out


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, gen: torch.Generator) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))
