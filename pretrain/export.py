"""Conversion of andes (Meta-layout) weights to Hugging Face `LlamaForCausalLM` format.

Meta's RoPE rotates interleaved channel pairs (0,1), (2,3), ...; HF's `rotate_half` rotates
(i, i + head_dim/2). The two are the same model once the rows of wq and wk are permuted within
each head, which is what `_permute_for_hf` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pretrain.configs import ModelArgs

_BLOCK_NAMES = {
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "attention_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}


def _permute_for_hf(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    out_dim, in_dim = w.shape
    return w.view(n_heads, out_dim // n_heads // 2, 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def to_hf_state_dict(state_dict: dict[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    """Full (unsharded) andes state dict -> HF LlamaForCausalLM state dict."""
    out = {
        "model.embed_tokens.weight": state_dict["tok_embeddings.weight"],
        "model.norm.weight": state_dict["norm.weight"],
        "lm_head.weight": state_dict["output.weight"],
    }
    for i in range(args.n_layers):
        for ours, theirs in _BLOCK_NAMES.items():
            w = state_dict[f"layers.{i}.{ours}"]
            if ours == "attention.wq.weight":
                w = _permute_for_hf(w, args.n_heads)
            elif ours == "attention.wk.weight":
                w = _permute_for_hf(w, args.kv_heads)
            out[f"model.layers.{i}.{theirs}"] = w
    return {k: v.contiguous() for k, v in out.items()}


def hf_config(args: ModelArgs, *, bos_token_id: int | None = None, eos_token_id: int | None = None) -> dict:
    """`config.json` contents for transformers' LlamaConfig (token ids from the tokenizer, if known)."""
    rope: dict = {"rope_type": "default", "rope_theta": args.rope_theta}
    if args.rope_scaling is not None:
        s = args.rope_scaling
        rope = {
            "rope_type": "llama3",
            "rope_theta": args.rope_theta,
            "factor": s.factor,
            "low_freq_factor": s.low_freq_factor,
            "high_freq_factor": s.high_freq_factor,
            "original_max_position_embeddings": s.original_max_seq_len,
        }
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": args.vocab_size,
        "hidden_size": args.dim,
        "intermediate_size": args.ffn_hidden_dim,
        "num_hidden_layers": args.n_layers,
        "num_attention_heads": args.n_heads,
        "num_key_value_heads": args.kv_heads,
        "head_dim": args.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": args.max_seq_len,
        "rms_norm_eps": args.norm_eps,
        "rope_theta": args.rope_theta,
        "rope_scaling": rope if args.rope_scaling is not None else None,
        "rope_parameters": rope,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "torch_dtype": "float32",
    }


def save_hf(state_dict: dict[str, torch.Tensor], args: ModelArgs, out_dir: str | Path) -> Path:
    """Write `config.json` + `model.safetensors` that `LlamaForCausalLM.from_pretrained` loads."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu() for k, v in to_hf_state_dict(state_dict, args).items()}
    tmp = out / "model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(out / "model.safetensors")
    (out / "config.json.tmp").write_text(json.dumps(hf_config(args), indent=2))
    (out / "config.json.tmp").replace(out / "config.json")
    return out
