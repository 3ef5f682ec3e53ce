"""Llama 3 transformer: GQA attention with RoPE, SwiGLU feed-forward, RMSNorm, output tied or not.

Plain PyTorch with no parallelism inside: `parallel/` shards it from the outside. Blocks live in
an `nn.ModuleDict` keyed by layer index, so a pipeline stage is made by deleting blocks and the
parameter names (and hence checkpoints) stay the same in every layout. A module set to None
(embedding, norm, output on middle pipeline stages) is skipped in `forward`.

With `tie_embeddings` the output Linear holds the embedding's Parameter itself (as nanoGPT), so the
state dict still names both `tok_embeddings.weight` and `output.weight` (one tensor) in every
layout. Moving or sharding a module can give the two modules separate Parameters again (`to_empty`,
DTensor distribution), so whoever does that calls `tie_weights` afterwards.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.configs import ModelArgs, RopeScaling


def _scale_frequencies(freqs: torch.Tensor, s: RopeScaling) -> torch.Tensor:
    """Llama 3.1 scaling: slow down low frequencies, keep high ones, blend in between."""
    wavelen = 2 * math.pi / freqs
    low_freq_wavelen = s.original_max_seq_len / s.low_freq_factor
    high_freq_wavelen = s.original_max_seq_len / s.high_freq_factor
    smooth = (s.original_max_seq_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    blended = (1 - smooth) * freqs / s.factor + smooth * freqs
    out = torch.where(wavelen > low_freq_wavelen, freqs / s.factor, blended)
    return torch.where(wavelen < high_freq_wavelen, freqs, out)


def precompute_freqs_cis(
    head_dim: int, end: int, theta: float, scaling: RopeScaling | None = None
) -> torch.Tensor:
    """Complex rotations e^{i * pos * freq}, shape (end, head_dim // 2)."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    if scaling is not None:
        freqs = _scale_frequencies(freqs, scaling)
    angles = torch.outer(torch.arange(end, dtype=torch.float32), freqs)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rotary_emb(
    xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate consecutive pairs of q/k channels (Meta's interleaved convention) in fp32.

    `freqs_cis` is (seq, head_dim/2) for positions shared by the batch, or (batch, seq, head_dim/2)
    when every row has its own positions (packed documents restarting at 0).
    """
    batch = freqs_cis.shape[0] if freqs_cis.dim() == 3 else 1
    fc = freqs_cis.reshape(batch, xq.shape[1], 1, xq.shape[-1] // 2)
    q = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
    k = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    q_out = torch.view_as_real(q * fc).flatten(3)
    k_out = torch.view_as_real(k * fc).flatten(3)
    return q_out.type_as(xq), k_out.type_as(xk)


KeyLayout = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(query positions, key positions, key doc ids) when a rank holds only some positions of each row:
the position in the whole row of every local query (seq,) and of every key in the order attention
sees them (kv_seq,), and the keys' document ids (batch, kv_seq). Context parallelism passes it."""


def document_mask_mod(
    doc_ids: torch.Tensor, prefix_doc: int | None = None, key_layout: KeyLayout | None = None
):
    """The one definition of document masking: query q sees key kv iff same document and kv <= q.

    With `prefix_doc`, keys of that document are also seen by every later query of their row: one
    prompt followed by several continuations, each scored as if it followed the prompt alone
    (`pretrain.eval` scores all choices of a question in one row this way). With `key_layout` the
    queries are `doc_ids`' positions and the keys another set (see KeyLayout); "kv <= q" compares
    their positions in the row. A FlexAttention `mask_mod`; `document_causal_mask` evaluates it
    densely for SDPA and `create_block_mask` compiles it into a sparse block mask for `flex_attention`.
    """
    kv_doc = doc_ids if key_layout is None else key_layout[2]

    def mask_mod(b, h, q_idx, kv_idx):
        visible = doc_ids[b, q_idx] == kv_doc[b, kv_idx]
        if prefix_doc is not None:
            visible = visible | (kv_doc[b, kv_idx] == prefix_doc)
        if key_layout is None:
            return visible & (q_idx >= kv_idx)
        return visible & (key_layout[0][q_idx] >= key_layout[1][kv_idx])

    return mask_mod


def _mask_shape(doc_ids: torch.Tensor, key_layout: KeyLayout | None) -> tuple[int, int, int]:
    """(batch, queries, keys) of a document mask."""
    kv = doc_ids.shape[1] if key_layout is None else key_layout[2].shape[1]
    return doc_ids.shape[0], doc_ids.shape[1], kv


def document_causal_mask(
    doc_ids: torch.Tensor, prefix_doc: int | None = None, key_layout: KeyLayout | None = None
) -> torch.Tensor:
    """Boolean (batch, 1, queries, keys) mask for SDPA: `document_mask_mod` at every (q, kv)."""
    batch, seq, kv_seq = _mask_shape(doc_ids, key_layout)
    b = torch.arange(batch, device=doc_ids.device).view(batch, 1, 1)
    q = torch.arange(seq, device=doc_ids.device).view(1, seq, 1)
    kv = torch.arange(kv_seq, device=doc_ids.device).view(1, 1, kv_seq)
    return document_mask_mod(doc_ids, prefix_doc, key_layout)(b, None, q, kv).unsqueeze(1)


def document_block_mask(
    doc_ids: torch.Tensor, prefix_doc: int | None = None, key_layout: KeyLayout | None = None
):
    """FlexAttention BlockMask of `document_mask_mod` (GPU path: skips fully masked blocks)."""
    from torch.nn.attention.flex_attention import create_block_mask

    batch, seq, kv_seq = _mask_shape(doc_ids, key_layout)
    mask_mod = document_mask_mod(doc_ids, prefix_doc, key_layout)
    return create_block_mask(mask_mod, batch, None, seq, kv_seq, device=doc_ids.device)


@functools.cache
def _flex_attention(compiled: bool):
    """flex_attention, compiled into a fused kernel on GPU (eager it materialises every score)."""
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False) if compiled else flex_attention


def attention_backend(requested: str, device: torch.device) -> str:
    """`auto` -> flex on CUDA (FlexAttention has no backward on CPU in torch 2.13), else sdpa."""
    if requested == "auto":
        return "flex" if device.type == "cuda" else "sdpa"
    return requested


class KVCache:
    """Keys and values of past positions for incremental decoding."""

    def __init__(self, batch: int, max_len: int, n_kv_heads: int, head_dim: int, *, dtype, device):
        shape = (batch, max_len, n_kv_heads, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    def update(self, start_pos: int, xk: torch.Tensor, xv: torch.Tensor):
        end = start_pos + xk.shape[1]
        self.k[:, start_pos:end] = xk
        self.v[:, start_pos:end] = xv
        return self.k[:, :end], self.v[:, :end]


class InnerAttention(nn.Module):
    """softmax(q k^T / sqrt(d)) v under a mask: the parameter-free core that parallel/ may wrap."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask) -> torch.Tensor:
        if mask is not None and not isinstance(mask, torch.Tensor):  # a FlexAttention BlockMask
            return _flex_attention(q.is_cuda)(q, k, v, block_mask=mask, enable_gqa=True)
        # Without a mask the fused causal kernel applies; a decode step (one query) sees all keys.
        is_causal = mask is None and q.shape[2] > 1
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=True)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.head_dim = args.head_dim
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.kv_heads * args.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.kv_heads * args.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)
        self.inner_attention = InnerAttention()

    def forward(
        self,
        x: torch.Tensor,
        freqs_cis: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None = None,
        start_pos: int = 0,
    ) -> torch.Tensor:
        bs, seqlen, _ = x.shape
        # -1 heads: under tensor parallelism each rank holds only its share of the heads.
        xq = self.wq(x).view(bs, seqlen, -1, self.head_dim)
        xk = self.wk(x).view(bs, seqlen, -1, self.head_dim)
        xv = self.wv(x).view(bs, seqlen, -1, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, freqs_cis)
        if cache is not None:
            xk, xv = cache.update(start_pos, xk, xv)
        q, k, v = (t.transpose(1, 2) for t in (xq, xk, xv))
        out = self.inner_attention(q, k, v, mask)
        return self.wo(out.transpose(1, 2).reshape(bs, seqlen, -1))

    def init_weights(self, std: float, out_std: float) -> None:
        for lin in (self.wq, self.wk, self.wv):
            nn.init.trunc_normal_(lin.weight, mean=0.0, std=std, a=-3 * std, b=3 * std)
        nn.init.trunc_normal_(self.wo.weight, mean=0.0, std=out_std, a=-3 * out_std, b=3 * out_std)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))

    def init_weights(self, std: float, out_std: float) -> None:
        nn.init.trunc_normal_(self.w1.weight, mean=0.0, std=std, a=-3 * std, b=3 * std)
        for lin in (self.w2, self.w3):
            nn.init.trunc_normal_(lin.weight, mean=0.0, std=out_std, a=-3 * out_std, b=3 * out_std)


class TransformerBlock(nn.Module):
    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.ffn_hidden_dim)
        self.attention_norm = nn.RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = nn.RMSNorm(args.dim, eps=args.norm_eps)
        # Depth-scaled init of the projections that write into the residual stream (as torchtitan).
        self._std = args.init_std
        self._out_std = args.init_std / math.sqrt(2 * (layer_id + 1))

    def forward(
        self,
        x: torch.Tensor,
        freqs_cis: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None = None,
        start_pos: int = 0,
    ) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), freqs_cis, mask, cache, start_pos)
        return h + self.feed_forward(self.ffn_norm(h))

    def init_weights(self) -> None:
        self.attention_norm.reset_parameters()
        self.ffn_norm.reset_parameters()
        self.attention.init_weights(self._std, self._out_std)
        self.feed_forward.init_weights(self._std, self._out_std)


class Transformer(nn.Module):
    """Llama 3 decoder. Build on the meta device, then `to_empty(...)` and `init_weights()`."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.tok_embeddings: nn.Embedding | None = nn.Embedding(args.vocab_size, args.dim)
        # Not persistent: derived from the config, so checkpoints don't carry (or reshard) it.
        self.register_buffer("freqs_cis", self._freqs_cis(), persistent=False)
        self.layers = nn.ModuleDict({str(i): TransformerBlock(i, args) for i in range(args.n_layers)})
        self.norm: nn.RMSNorm | None = nn.RMSNorm(args.dim, eps=args.norm_eps)
        self.output: nn.Linear | None = nn.Linear(args.dim, args.vocab_size, bias=False)
        self.tie_weights()

    def tie_weights(self) -> None:
        """Make the output share the embedding's Parameter (with `tie_embeddings`; else nothing)."""
        if self.args.tie_embeddings and self.tok_embeddings is not None and self.output is not None:
            self.output.weight = self.tok_embeddings.weight

    def _freqs_cis(self) -> torch.Tensor:
        a = self.args
        return precompute_freqs_cis(a.head_dim, a.max_seq_len, a.rope_theta, a.rope_scaling)

    @torch.no_grad()
    def init_weights(self, buffer_device: torch.device | str | None = None) -> None:
        """(Re)initialise parameters in place and rebuild the RoPE table on `buffer_device`."""
        device = buffer_device if buffer_device is not None else self.freqs_cis.device
        with torch.device(device):
            self.freqs_cis = self._freqs_cis()
        self.tie_weights()
        # A tied matrix is initialised once, as the output projection (as torchtitan's tied models).
        if self.tok_embeddings is not None and not self.args.tie_embeddings:
            nn.init.normal_(self.tok_embeddings.weight)
        for block in self.layers.values():
            block.init_weights()
        if self.norm is not None:
            self.norm.reset_parameters()
        if self.output is not None:
            std = self.args.dim**-0.5
            nn.init.trunc_normal_(self.output.weight, mean=0.0, std=std, a=-3 * std, b=3 * std)

    def forward(
        self,
        tokens: torch.Tensor,
        doc_ids: torch.Tensor | None = None,
        *,
        positions: torch.Tensor | None = None,
        caches: list[KVCache] | None = None,
        start_pos: int = 0,
        prefix_doc: int | None = None,
        logits_at: tuple[torch.Tensor, torch.Tensor] | None = None,
        key_layout: KeyLayout | None = None,
    ) -> torch.Tensor:
        """Logits (batch, seq, vocab) for token ids (or hidden states on later pipeline stages).

        `doc_ids` (batch, seq) marks which packed document each position belongs to; attention
        then stays within documents. None = one causal sequence per row. `positions` (batch, seq)
        are the RoPE positions (restarting at 0 in each document); None = 0, 1, 2, ... per row.
        `prefix_doc`: a document id whose tokens every later token of the row also sees (a shared
        prompt; see `document_mask_mod`). `logits_at` (row indices, position indices): only those
        positions' logits, shape (n, vocab) — scoring reads few positions, and the output projection
        is the largest matmul of a small model (not under tensor parallelism: rows are sharded).
        `key_layout`: the tokens are some positions of each row and attention sees other keys
        (see KeyLayout; parallel/context_parallel.py sets it).
        """
        h = self.tok_embeddings(tokens) if self.tok_embeddings is not None else tokens
        # Not h: under sequence parallelism h holds 1/tp of the tokens, and a later pipeline stage
        # receives such a shard of hidden states as `tokens`; positions and doc_ids are whole.
        ref = positions if positions is not None else doc_ids if doc_ids is not None else tokens
        seqlen = ref.shape[1]
        if start_pos + seqlen > self.args.max_seq_len:
            raise ValueError(
                f"sequence of {start_pos + seqlen} tokens exceeds max_seq_len={self.args.max_seq_len}"
            )
        if positions is not None:
            ids = tokens if not tokens.is_floating_point() else doc_ids  # hidden states: no ids
            if (
                positions.dim() != 2
                or caches is not None
                or (ids is not None and positions.shape != ids.shape)
            ):
                raise ValueError("positions must be (batch, seq) and are for training, not decoding")
            freqs_cis = self.freqs_cis[positions]
        else:
            freqs_cis = self.freqs_cis[start_pos : start_pos + seqlen]
        mask = self._mask(doc_ids, seqlen, start_pos, caches, h.device, prefix_doc, key_layout)
        for i, block in enumerate(self.layers.values()):
            h = block(h, freqs_cis, mask, caches[i] if caches is not None else None, start_pos)
        if self.norm is not None:
            h = self.norm(h)
        if self.output is None:
            return h
        return self.output(h if logits_at is None else h[logits_at])

    def _mask(self, doc_ids, seqlen, start_pos, caches, device, prefix_doc: int | None, key_layout):
        if doc_ids is not None:
            if caches is not None:
                raise ValueError("document masking is for training; decode one document at a time")
            if attention_backend(self.args.attention, device) == "flex":
                return document_block_mask(doc_ids, prefix_doc, key_layout)
            return document_causal_mask(doc_ids, prefix_doc, key_layout)
        if prefix_doc is not None:
            raise ValueError("prefix_doc needs doc_ids (which tokens belong to the shared prefix)")
        if caches is not None and start_pos > 0 and seqlen > 1:
            # Chunked prefill: new queries see every cached key plus a causal block of their own.
            return torch.ones(seqlen, start_pos + seqlen, dtype=torch.bool, device=device).tril(start_pos)
        return None
