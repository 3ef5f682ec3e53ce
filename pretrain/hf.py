"""Hugging Face `LlamaForCausalLM` format: weight and config conversion both ways, HF dirs read and written.

Meta's RoPE rotates interleaved channel pairs (0,1), (2,3), ...; HF's `rotate_half` rotates
(i, i + head_dim/2). The two are the same model once the rows of wq and wk are permuted within
each head, which is what `_permute_for_hf` does (and `_permute_from_hf` undoes).

Tied embeddings map to `tie_word_embeddings` both ways: a tied model is written without
`lm_head.weight` (as transformers saves one) and read back with the output sharing the embedding;
an untied one keeps its own `lm_head.weight`, which must then be present.

Nothing here unpickles: weights are read from safetensors only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from pretrain.configs import ModelArgs, RopeScaling, get_model_config, model_names
from pretrain.weight_shapes import describe_shape, expected_shapes, short_list

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
    }
    if not args.tie_embeddings:
        out["lm_head.weight"] = state_dict["output.weight"]
    for i in range(args.n_layers):
        for ours, theirs in _BLOCK_NAMES.items():
            w = state_dict[f"layers.{i}.{ours}"]
            if ours == "attention.wq.weight":
                w = _permute_for_hf(w, args.n_heads)
            elif ours == "attention.wk.weight":
                w = _permute_for_hf(w, args.kv_heads)
            out[f"model.layers.{i}.{theirs}"] = w
    return {k: v.contiguous() for k, v in out.items()}


def _permute_from_hf(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of `_permute_for_hf`: HF rotate-half row order back to Meta's interleaved pairs."""
    out_dim, in_dim = w.shape
    return w.view(n_heads, 2, out_dim // n_heads // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def _hf_names(args: ModelArgs) -> dict[str, str]:
    """Our FQN -> HF name, for every weight of the model (a tied output reads the embedding)."""
    names = {
        "tok_embeddings.weight": "model.embed_tokens.weight",
        "norm.weight": "model.norm.weight",
        "output.weight": "model.embed_tokens.weight" if args.tie_embeddings else "lm_head.weight",
    }
    for i in range(args.n_layers):
        for ours, theirs in _BLOCK_NAMES.items():
            names[f"layers.{i}.{ours}"] = f"model.layers.{i}.{theirs}"
    return names


def from_hf_state_dict(hf_state: dict[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    """HF LlamaForCausalLM state dict -> andes state dict (inverse of `to_hf_state_dict`).

    A tied model's output is its embedding tensor (an `lm_head.weight` beside it is ignored, as
    transformers does); RoPE `inv_freq` buffers are ignored. Missing, unexpected or wrongly shaped
    tensors are a ValueError naming them all.
    """
    ignored = ("rotary_emb.inv_freq", "lm_head.weight") if args.tie_embeddings else ("rotary_emb.inv_freq",)
    hf_state = {k: v for k, v in hf_state.items() if not k.endswith(ignored)}
    names = _hf_names(args)
    shapes = expected_shapes(args)
    missing = sorted(theirs for theirs in names.values() if theirs not in hf_state)
    unexpected = sorted(set(hf_state) - set(names.values()))
    wrong = [
        f"{theirs}: {tuple(hf_state[theirs].shape)}, expected {shapes[ours]}"
        for ours, theirs in names.items()
        if theirs in hf_state and tuple(hf_state[theirs].shape) != shapes[ours]
    ]
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"missing {short_list(missing)}")
        if unexpected:
            problems.append(f"unexpected {short_list(unexpected)}")
        if wrong:
            problems.append(f"wrong shapes {short_list(wrong)}")
        raise ValueError(f"HF weights do not fit the model {describe_shape(args)}: " + "; ".join(problems))
    out = {}
    for ours, theirs in names.items():
        w = hf_state[theirs]
        if ours.endswith("attention.wq.weight"):
            w = _permute_from_hf(w, args.n_heads)
        elif ours.endswith("attention.wk.weight"):
            w = _permute_from_hf(w, args.kv_heads)
        out[ours] = w.contiguous()
    return out


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
        "tie_word_embeddings": args.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "torch_dtype": "float32",
    }


def _ffn_params(dim: int, hidden: int) -> tuple[int, float | None]:
    """(multiple_of, ffn_dim_multiplier) for which `ModelArgs.ffn_hidden_dim` is exactly `hidden`.

    Published Llama pairs are tried first (those of the same hidden size before others), then plain
    rounding multiples, then an explicit multiplier with multiple_of=1.
    """

    def width(multiple_of: int, mult: float | None) -> int:
        return ModelArgs(
            dim=dim, n_heads=1, n_kv_heads=None, multiple_of=multiple_of, ffn_dim_multiplier=mult
        ).ffn_hidden_dim

    named = [get_model_config(n) for n in model_names()]
    named.sort(key=lambda a: a.dim != dim)
    candidates: list[tuple[int, float | None]] = [(a.multiple_of, a.ffn_dim_multiplier) for a in named]
    candidates += [(2**k, None) for k in range(12, -1, -1)]
    candidates.append((hidden, None))
    for multiple_of, mult in candidates:
        if width(multiple_of, mult) == hidden:
            return multiple_of, mult
    base = int(2 * 4 * dim / 3)
    mult = hidden / base
    for _ in range(64):  # nudge past float rounding until int(mult * base) == hidden
        if width(1, mult) == hidden:
            return 1, mult
        mult = math.nextafter(mult, math.inf) if int(mult * base) < hidden else math.nextafter(mult, 0)
    raise ValueError(f"no multiple_of/ffn_dim_multiplier gives intermediate_size={hidden} for dim={dim}")


_REQUIRED = object()


def _hf_number(cfg: dict[str, Any], key: str, kind: type, where: str, default: Any = _REQUIRED) -> Any:
    """`cfg[key]` as a positive int or a float; missing (without default) or mistyped: a ValueError."""
    value = cfg.get(key)
    if value is None:
        if default is _REQUIRED:
            raise ValueError(f"{where}: missing key {key!r}")
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: {key}={value!r} is not a number")
    if kind is int and (not (isinstance(value, int) or value.is_integer()) or value <= 0):
        raise ValueError(f"{where}: {key}={value!r} is not a positive integer")
    return kind(value)


def _hf_bool(cfg: dict[str, Any], key: str, where: str) -> bool:
    """`cfg[key]` as a bool; missing is False (LlamaConfig's default), anything but a bool a ValueError."""
    value = cfg.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {key}={value!r} is not true or false")
    return value


def _hf_object(cfg: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = cfg.get(key) or {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {key}={value!r} is not an object")
    return value


def _hf_rope_scaling(cfg: dict[str, Any], where: str) -> RopeScaling | None:
    """The llama3 RoPE scaling of `rope_scaling` (transformers 4.x) or `rope_parameters` (5.x)."""
    scaling = _hf_object(cfg, "rope_scaling", where) or _hf_object(cfg, "rope_parameters", where)
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type in (None, "default"):
        return None
    if rope_type != "llama3":
        raise ValueError(f"{where}: rope_type={rope_type!r}: only default and llama3 RoPE are supported")
    w = f"{where}: rope_scaling"
    return RopeScaling(
        factor=_hf_number(scaling, "factor", float, w),
        low_freq_factor=_hf_number(scaling, "low_freq_factor", float, w),
        high_freq_factor=_hf_number(scaling, "high_freq_factor", float, w),
        original_max_seq_len=_hf_number(scaling, "original_max_position_embeddings", int, w),
    )


def args_from_hf_config(cfg: dict[str, Any], *, source: str = "config.json") -> ModelArgs:
    """ModelArgs reproducing an HF Llama `config.json` (transformers 4.x or 5.x layout).

    Every problem is a ValueError starting with `source` and naming the key.
    """
    where = source
    if cfg.get("model_type", "llama") != "llama":
        raise ValueError(
            f"{where}: model_type={cfg.get('model_type')!r}: only Llama checkpoints can be imported"
        )
    for key in ("attention_bias", "mlp_bias"):
        if cfg.get(key):
            raise ValueError(f"{where}: {key}=true is not supported (andes' Llama has no biases)")
    if cfg.get("hidden_act", "silu") != "silu":
        raise ValueError(f"{where}: hidden_act={cfg['hidden_act']!r}: only silu (SwiGLU) is supported")
    dim, n_heads = (
        _hf_number(cfg, "hidden_size", int, where),
        _hf_number(cfg, "num_attention_heads", int, where),
    )
    head_dim = _hf_number(cfg, "head_dim", int, where, default=None)
    if head_dim is not None and head_dim * n_heads != dim:
        raise ValueError(
            f"{where}: head_dim={head_dim} != hidden_size / num_attention_heads = {dim // n_heads}"
        )
    rope = _hf_object(cfg, "rope_parameters", where)
    rope_theta = _hf_number(rope, "rope_theta", float, f"{where}: rope_parameters", default=10000.0)
    rope_theta = _hf_number(cfg, "rope_theta", float, where, default=rope_theta)
    hidden = _hf_number(cfg, "intermediate_size", int, where)
    try:
        multiple_of, mult = _ffn_params(dim, hidden)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return ModelArgs(
        dim=dim,
        n_layers=_hf_number(cfg, "num_hidden_layers", int, where),
        n_heads=n_heads,
        n_kv_heads=_hf_number(cfg, "num_key_value_heads", int, where, default=n_heads),
        vocab_size=_hf_number(cfg, "vocab_size", int, where),
        multiple_of=multiple_of,
        ffn_dim_multiplier=mult,
        norm_eps=_hf_number(cfg, "rms_norm_eps", float, where, default=1e-6),
        rope_theta=rope_theta,
        rope_scaling=_hf_rope_scaling(cfg, where),
        max_seq_len=_hf_number(cfg, "max_position_embeddings", int, where, default=2048),
        tie_embeddings=_hf_bool(cfg, "tie_word_embeddings", where),
    )


DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16"}


def save_hf(
    state_dict: dict[str, torch.Tensor],
    args: ModelArgs,
    out_dir: str | Path,
    *,
    dtype: torch.dtype | None = None,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    generation_config: bool = False,
) -> Path:
    """Write `config.json` + `model.safetensors` that `LlamaForCausalLM.from_pretrained` loads.

    `dtype` casts the weights (None keeps them); with `generation_config` the token ids also go to
    `generation_config.json`. Each file is renamed into place; `pretrain.export.export_hf` makes the
    whole dir atomic.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach().to(device="cpu", dtype=dtype or v.dtype).contiguous()
        for k, v in to_hf_state_dict(state_dict, args).items()
    }
    tmp = out / "model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(out / "model.safetensors")
    config = hf_config(args, bos_token_id=bos_token_id, eos_token_id=eos_token_id)
    stored = {v.dtype for v in tensors.values()}
    if len(stored) == 1 and (name := _DTYPE_NAMES.get(stored.pop())):
        config["torch_dtype"] = name
    files = {"config.json": config}
    if generation_config:
        files["generation_config.json"] = {"bos_token_id": bos_token_id, "eos_token_id": eos_token_id}
    for name, content in files.items():
        (out / f"{name}.tmp").write_text(json.dumps(content, indent=2) + "\n")
        (out / f"{name}.tmp").replace(out / name)
    return out


# ---------------------------------------------------------------------------------------------------
# HF directories (safetensors only)


def is_hf_dir(path: str | Path) -> bool:
    p = Path(path)
    return (p / "config.json").is_file() and (
        (p / "model.safetensors").is_file() or (p / "model.safetensors.index.json").is_file()
    )


def read_hf_weights(hf_dir: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of an HF checkpoint: `model.safetensors` or the shards its index names. Never pickle."""
    from safetensors.torch import load_file

    hf_dir = Path(hf_dir)
    index = hf_dir / "model.safetensors.index.json"
    if (hf_dir / "model.safetensors").is_file():
        files = ["model.safetensors"]
    elif index.is_file():
        weight_map = _read_json_object(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index}: missing key 'weight_map' (an object of tensor name -> shard file)")
        files = sorted({str(f) for f in weight_map.values()})
        bad = [f for f in files if Path(f).name != f]
        if bad:
            raise ValueError(f"{index}: shard names must be plain file names, got {bad}")
    else:
        pickled = sorted(f.name for f in hf_dir.glob("*") if f.suffix in (".bin", ".pt", ".pth"))
        note = (
            f"; {pickled} are pickle files, which are never loaded: convert them to safetensors"
            if pickled
            else ""
        )
        raise FileNotFoundError(f"{hf_dir}: no model.safetensors or model.safetensors.index.json{note}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            state.update(load_file(str(hf_dir / f)))
        except Exception as e:  # safetensors raises its own SafetensorError; OSError for a missing shard
            raise ValueError(f"{hf_dir / f}: unreadable safetensors file ({e})") from None
    return state


def _read_json_object(file: Path) -> dict[str, Any]:
    """A JSON file holding an object; unreadable, invalid or not an object: a ValueError naming it."""
    try:
        value = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{file}: expected a JSON object, got {type(value).__name__}")
    return value


def read_hf_config(hf_dir: str | Path) -> dict[str, Any]:
    file = Path(hf_dir) / "config.json"
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no HF config.json")
    return _read_json_object(file)


def read_hf_args(hf_dir: str | Path) -> ModelArgs:
    """ModelArgs of an HF directory's config.json; every problem names the file and the key."""
    return args_from_hf_config(read_hf_config(hf_dir), source=str(Path(hf_dir) / "config.json"))


def load_hf(hf_dir: str | Path, args: ModelArgs | None = None) -> tuple[dict[str, torch.Tensor], ModelArgs]:
    """(andes state dict, ModelArgs) of an HF Llama directory; args default to those of its config.json."""
    if args is None:
        args = read_hf_args(hf_dir)
    return from_hf_state_dict(read_hf_weights(hf_dir), args), args
