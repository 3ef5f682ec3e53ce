"""The shapes a model's weights must have, and the compact wording of mismatch errors."""

from __future__ import annotations

import torch

from pretrain.configs import ModelArgs


def expected_shapes(args: ModelArgs) -> dict[str, tuple[int, ...]]:
    """Shape of every entry of `Transformer(args).state_dict()` (built on the meta device, no memory)."""
    from pretrain.model import Transformer

    with torch.device("meta"):
        model = Transformer(args)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def short_list(items: list[str], n: int = 6) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def describe_shape(args: ModelArgs) -> str:
    return (
        f"(dim={args.dim}, n_layers={args.n_layers}, n_heads={args.n_heads}, n_kv_heads={args.kv_heads}, "
        f"vocab_size={args.vocab_size}, ffn_hidden_dim={args.ffn_hidden_dim})"
    )
