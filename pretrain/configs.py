"""Llama 3 model shapes: Meta's published 8B / 70B / 405B and a tiny debug model."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RopeScaling:
    """Llama 3.1 long-context frequency scaling (Meta's `apply_scaling`)."""

    factor: float = 8.0
    """How much longer the extended context is than the original one."""
    low_freq_factor: float = 1.0
    """Wavelengths above original_max_seq_len / low_freq_factor are divided by `factor`."""
    high_freq_factor: float = 4.0
    """Wavelengths below original_max_seq_len / high_freq_factor are left unchanged."""
    original_max_seq_len: int = 8192
    """Context length the base model was trained at."""


@dataclass(frozen=True)
class ModelArgs:
    """Shape of a Llama 3 transformer; field names follow Meta's `ModelArgs`."""

    dim: int = 4096
    """Hidden size."""
    n_layers: int = 32
    """Number of transformer blocks."""
    n_heads: int = 32
    """Number of query heads."""
    n_kv_heads: int | None = 8
    """Number of key/value heads (grouped-query attention); None = n_heads (MHA)."""
    vocab_size: int = 128256
    """Rows of the embedding and output matrices; must cover the tokenizer's n_vocab."""
    multiple_of: int = 1024
    """SwiGLU hidden size is rounded up to a multiple of this."""
    ffn_dim_multiplier: float | None = 1.3
    """Scales the SwiGLU hidden size (2/3 * 4 * dim) before rounding."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    rope_theta: float = 500000.0
    """RoPE base frequency (Llama 3 uses 500k, Llama 2 used 10k)."""
    rope_scaling: RopeScaling | None = None
    """Llama 3.1 frequency scaling; None = plain RoPE as in Llama 3."""
    max_seq_len: int = 8192
    """Longest sequence the RoPE table is built for."""
    init_std: float = 0.02
    """Std of the truncated-normal init of the embedding and of the input projections."""
    tie_embeddings: bool = False
    """The output projection shares the embedding matrix (HF `tie_word_embeddings`); not pipelined."""
    attention: str = "auto"
    """Document-masked attention kernel: sdpa (dense mask), flex (FlexAttention block mask, GPU),
    auto (flex on CUDA, sdpa elsewhere). Same results; flex skips fully masked blocks."""

    def __post_init__(self) -> None:
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} is not divisible by n_heads={self.n_heads}")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not divisible by n_kv_heads={self.kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for RoPE")
        if self.attention not in ("auto", "sdpa", "flex"):
            raise ValueError(f"attention={self.attention!r}: expected auto, sdpa or flex")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ffn_hidden_dim(self) -> int:
        """SwiGLU width, computed exactly as Meta's reference does."""
        hidden = int(2 * 4 * self.dim / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    def num_params(self, *, embeddings: bool = True) -> int:
        """Parameter count from the shapes alone (no model needs to be built)."""
        d, kv = self.dim, self.kv_heads * self.head_dim
        attn = d * d * 2 + d * kv * 2
        ffn = 3 * d * self.ffn_hidden_dim
        per_layer = attn + ffn + 2 * d
        total = self.n_layers * per_layer + d
        if embeddings:
            total += (1 if self.tie_embeddings else 2) * self.vocab_size * d  # embedding (+ output)
        return total

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token: 6 x non-embedding params + attention scores/values.

        The attention term (12 * layers * dim * seq_len) counts the full, unmasked score matrix, as
        the PaLM appendix and torchtitan do, so MFU stays comparable across implementations.
        """
        n = self.num_params(embeddings=False) + self.vocab_size * self.dim  # output matmul is real work
        return 6 * n + 12 * self.n_layers * self.dim * seq_len


_MODELS: dict[str, ModelArgs] = {
    # Meta's llama-models `sku_list` / Llama 3 paper Table 3.
    "llama3_8b": ModelArgs(
        dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, multiple_of=1024, ffn_dim_multiplier=1.3
    ),
    "llama3_70b": ModelArgs(
        dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, multiple_of=4096, ffn_dim_multiplier=1.3
    ),
    "llama3_405b": ModelArgs(
        dim=16384, n_layers=126, n_heads=128, n_kv_heads=8, multiple_of=4096, ffn_dim_multiplier=1.2
    ),
    # Small enough to train on two CPU cores; keeps GQA (2 query heads per kv head).
    "llama3_debug": ModelArgs(
        dim=256,
        n_layers=4,
        n_heads=8,
        n_kv_heads=4,
        multiple_of=64,
        ffn_dim_multiplier=None,
        max_seq_len=2048,
    ),
}
_MODELS["llama3_1_8b"] = replace(_MODELS["llama3_8b"], rope_scaling=RopeScaling(), max_seq_len=131072)

PUBLISHED_PARAMS = {"llama3_8b": 8.03e9, "llama3_70b": 70.6e9, "llama3_405b": 405.9e9}
"""Parameter counts Meta publishes, checked by the tests."""


def model_names() -> list[str]:
    return sorted(_MODELS)


def get_model_config(name: str, **overrides: object) -> ModelArgs:
    """Named config, optionally with some fields replaced (e.g. a small demo vocab)."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    args = _MODELS[name]
    unknown = set(overrides) - set(args.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"unknown model field(s) {sorted(unknown)} for {name!r}; "
            f"fields: {sorted(args.__dataclass_fields__)}"
        )
    return replace(args, **overrides)
