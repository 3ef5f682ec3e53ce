"""Conversion between andes (Meta-layout) checkpoints and Hugging Face `LlamaForCausalLM` format.

Meta's RoPE rotates interleaved channel pairs (0,1), (2,3), ...; HF's `rotate_half` rotates
(i, i + head_dim/2). The two are the same model once the rows of wq and wk are permuted within
each head, which is what `_permute_for_hf` does (and `_permute_from_hf` undoes).

Export a training run's checkpoint (DCP) to a consolidated HF directory, or import an HF directory
as a model-only DCP checkpoint that `checkpoint.initial_load_path=DIR` starts training from:

    python -m pretrain.export run.dir=runs/demo [--step N] --out exports/demo [--dtype bf16]
    python -m pretrain.export --checkpoint runs/demo/checkpoints/step-100 --out exports/demo
    python -m pretrain.export --from-hf Meta-Llama-3-8B --out ckpts/llama3_8b [--model llama3_8b]

Nothing here unpickles: weights are read from safetensors or DCP only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from pretrain.configs import ModelArgs, RopeScaling, get_model_config, model_names

LLAMA3_BOS_ID = 128000
"""<|begin_of_text|> of Meta's Llama 3 tokenizer (used when the run's tokenizer is unknown)."""
LLAMA3_EOS_ID = 128001
"""<|end_of_text|> of Meta's Llama 3 tokenizer."""

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


def _permute_from_hf(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of `_permute_for_hf`: HF rotate-half row order back to Meta's interleaved pairs."""
    out_dim, in_dim = w.shape
    return w.view(n_heads, 2, out_dim // n_heads // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def _hf_names(args: ModelArgs) -> dict[str, str]:
    """Our FQN -> HF name, for every weight of the model."""
    names = {
        "tok_embeddings.weight": "model.embed_tokens.weight",
        "norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    for i in range(args.n_layers):
        for ours, theirs in _BLOCK_NAMES.items():
            names[f"layers.{i}.{ours}"] = f"model.layers.{i}.{theirs}"
    return names


def expected_shapes(args: ModelArgs) -> dict[str, tuple[int, ...]]:
    """Shape of every entry of `Transformer(args).state_dict()` (built on the meta device, no memory)."""
    from pretrain.model import Transformer

    with torch.device("meta"):
        model = Transformer(args)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def from_hf_state_dict(hf_state: dict[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    """HF LlamaForCausalLM state dict -> andes state dict (inverse of `to_hf_state_dict`).

    Tied embeddings (no `lm_head.weight`) are untied into a copy; RoPE `inv_freq` buffers are ignored.
    Missing, unexpected or wrongly shaped tensors are a ValueError naming them all.
    """
    hf_state = {k: v for k, v in hf_state.items() if not k.endswith("rotary_emb.inv_freq")}
    if "lm_head.weight" not in hf_state and "model.embed_tokens.weight" in hf_state:
        hf_state["lm_head.weight"] = hf_state["model.embed_tokens.weight"].clone()
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
            problems.append(f"missing {_short(missing)}")
        if unexpected:
            problems.append(f"unexpected {_short(unexpected)}")
        if wrong:
            problems.append(f"wrong shapes {_short(wrong)}")
        raise ValueError(f"HF weights do not fit the model {_describe(args)}: " + "; ".join(problems))
    out = {}
    for ours, theirs in names.items():
        w = hf_state[theirs]
        if ours.endswith("attention.wq.weight"):
            w = _permute_from_hf(w, args.n_heads)
        elif ours.endswith("attention.wk.weight"):
            w = _permute_from_hf(w, args.kv_heads)
        out[ours] = w.contiguous()
    return out


def _short(items: list[str], n: int = 6) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _describe(args: ModelArgs) -> str:
    return (
        f"(dim={args.dim}, n_layers={args.n_layers}, n_heads={args.n_heads}, n_kv_heads={args.kv_heads}, "
        f"vocab_size={args.vocab_size}, ffn_hidden_dim={args.ffn_hidden_dim})"
    )


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


def args_from_hf_config(cfg: dict[str, Any]) -> ModelArgs:
    """ModelArgs reproducing an HF Llama `config.json` (transformers 4.x or 5.x layout)."""
    if cfg.get("model_type", "llama") != "llama":
        raise ValueError(f"model_type={cfg.get('model_type')!r}: only Llama checkpoints can be imported")
    for key in ("attention_bias", "mlp_bias"):
        if cfg.get(key):
            raise ValueError(f"{key}=true is not supported (andes' Llama has no biases)")
    if cfg.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act={cfg['hidden_act']!r}: only silu (SwiGLU) is supported")
    dim, n_heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    head_dim = cfg.get("head_dim")
    if head_dim is not None and int(head_dim) * n_heads != dim:
        raise ValueError(f"head_dim={head_dim} != hidden_size / num_attention_heads = {dim // n_heads}")
    rope = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or rope
    rope_theta = cfg.get("rope_theta", rope.get("rope_theta", 10000.0))
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type == "llama3":
        rope_scaling = RopeScaling(
            factor=float(scaling["factor"]),
            low_freq_factor=float(scaling["low_freq_factor"]),
            high_freq_factor=float(scaling["high_freq_factor"]),
            original_max_seq_len=int(scaling["original_max_position_embeddings"]),
        )
    elif rope_type in (None, "default"):
        rope_scaling = None
    else:
        raise ValueError(f"rope_type={rope_type!r}: only default and llama3 RoPE are supported")
    multiple_of, mult = _ffn_params(dim, int(cfg["intermediate_size"]))
    return ModelArgs(
        dim=dim,
        n_layers=int(cfg["num_hidden_layers"]),
        n_heads=n_heads,
        n_kv_heads=int(cfg.get("num_key_value_heads") or n_heads),
        vocab_size=int(cfg["vocab_size"]),
        multiple_of=multiple_of,
        ffn_dim_multiplier=mult,
        norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
        rope_theta=float(rope_theta),
        rope_scaling=rope_scaling,
        max_seq_len=int(cfg.get("max_position_embeddings", 2048)),
    )


def model_args_to_dict(args: ModelArgs) -> dict[str, Any]:
    return dataclasses.asdict(args)


def model_args_from_dict(d: dict[str, Any]) -> ModelArgs:
    d = dict(d)
    known = {f.name for f in dataclasses.fields(ModelArgs)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown ModelArgs field(s) {sorted(unknown)}")
    if isinstance(d.get("rope_scaling"), dict):
        d["rope_scaling"] = RopeScaling(**d["rope_scaling"])
    return ModelArgs(**d)


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
    `generation_config.json`. Each file is renamed into place; `export_hf` makes the whole dir atomic.
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
# Locating and reading training checkpoints (DCP)

_STEP_DIR = re.compile(r"step-(\d+)")
MODEL_ARGS_FILE = "model_args.json"


def _is_complete(step_dir: Path) -> bool:
    return (step_dir / ".metadata").is_file()


def _complete_steps(ckpt_dir: Path) -> list[tuple[int, Path]]:
    steps = []
    for d in ckpt_dir.iterdir():
        m = _STEP_DIR.fullmatch(d.name)
        if m and d.is_dir() and _is_complete(d):
            steps.append((int(m[1]), d))
    return sorted(steps)


def resolve_checkpoint(path: str | Path, step: int | None = None) -> Path:
    """The step directory to read for a run dir, its `checkpoints/` dir, or a step dir itself.

    A run or checkpoints dir gives the step named by `checkpoints/latest`, or, if that pointer is
    missing or names an incomplete save, the newest `step-N` that has DCP's `.metadata`. `step`
    picks `step-<step>` instead. Missing paths are a FileNotFoundError, incomplete ones a ValueError.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such run, checkpoints or step directory")
    if not p.is_dir():
        raise ValueError(f"{p}: not a directory (expected a run, checkpoints or step directory)")
    if _is_complete(p):  # a step dir (or a model-only checkpoint written by --from-hf)
        if step is not None and p.name != f"step-{step}":
            raise ValueError(f"{p}: is a single checkpoint, not step {step}; pass the run directory")
        return p
    if _STEP_DIR.fullmatch(p.name):
        raise ValueError(f"{p}: incomplete checkpoint (no .metadata: the save did not finish)")
    ckpt_dir = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    latest = ckpt_dir / "latest"
    has_steps = any(_STEP_DIR.fullmatch(d.name) for d in ckpt_dir.iterdir())
    if not has_steps and not latest.exists():
        raise FileNotFoundError(
            f"{p}: no checkpoint here (no .metadata, no checkpoints/ directory, no step-N directories)"
        )
    if step is not None:
        target = ckpt_dir / f"step-{step}"
        if not target.is_dir():
            have = [s for s, _ in _complete_steps(ckpt_dir)]
            raise FileNotFoundError(f"{target}: no such checkpoint (complete steps in {ckpt_dir}: {have})")
        if not _is_complete(target):
            raise ValueError(f"{target}: incomplete checkpoint (no .metadata: the save did not finish)")
        return target
    if latest.exists():
        try:
            name = latest.resolve().name if latest.is_dir() else latest.read_text().strip()
        except (OSError, UnicodeDecodeError):
            name = ""
        target = ckpt_dir / name
        if _STEP_DIR.fullmatch(name) and _is_complete(target):
            return target
        complete = _complete_steps(ckpt_dir)
        fallback = f"; using {complete[-1][1].name}, the newest complete one" if complete else ""
        warnings.warn(f"{latest} names {name!r}, which is not a complete checkpoint{fallback}", stacklevel=2)
    complete = _complete_steps(ckpt_dir)
    if not complete:
        raise ValueError(f"{ckpt_dir}: no complete checkpoint (a step-N directory with .metadata)")
    return complete[-1][1]


def load_model_state(step_dir: str | Path, args: ModelArgs) -> dict[str, torch.Tensor]:
    """The model's full state dict (on CPU, in the stored dtypes) from a DCP checkpoint, in one process.

    Every tensor of `Transformer(args)` must be in the checkpoint with the same shape, and the checkpoint
    must hold no other model tensors (a ValueError otherwise, naming the step dir).
    """
    import torch.distributed.checkpoint as dcp

    step_dir = Path(step_dir)
    if not step_dir.is_dir():
        raise FileNotFoundError(f"{step_dir}: no such checkpoint directory")
    if not _is_complete(step_dir):
        raise ValueError(f"{step_dir}: incomplete checkpoint (no .metadata: the save did not finish)")
    try:
        metadata = dcp.FileSystemReader(str(step_dir)).read_metadata()
        stored = metadata.state_dict_metadata
    except Exception as e:
        raise ValueError(f"{step_dir}: unreadable DCP metadata ({type(e).__name__}: {e})") from e
    shapes = expected_shapes(args)
    state, missing, wrong = {}, [], []
    for fqn, shape in shapes.items():
        meta = stored.get(f"model.{fqn}")
        if meta is None or not hasattr(meta, "size"):
            missing.append(fqn)
        elif tuple(meta.size) != shape:
            wrong.append(f"{fqn}: {tuple(meta.size)}, model wants {shape}")
        else:
            state[fqn] = torch.empty(shape, dtype=meta.properties.dtype)
    extra = sorted(k.removeprefix("model.") for k in stored if k.startswith("model.") and k[6:] not in shapes)
    if missing or wrong or extra:
        problems = [
            f"{what} {_short(items)}"
            for what, items in (("missing", missing), ("wrong shapes", wrong), ("unexpected", extra))
            if items
        ]
        raise ValueError(
            f"{step_dir}: checkpoint does not match the model {_describe(args)}: " + "; ".join(problems)
        )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load({"model": state}, checkpoint_id=str(step_dir), no_dist=True)
    except Exception as e:
        raise ValueError(f"{step_dir}: could not read the model weights ({type(e).__name__}: {e})") from e
    return state


def load_run_config(run_dir: str | Path):
    """The resolved trainer config a run wrote (an OmegaConf DictConfig)."""
    from omegaconf import OmegaConf

    file = Path(run_dir) / "config.yaml"
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no resolved trainer config; is {run_dir} a run directory?")
    return OmegaConf.load(file)


def model_args_from_run_config(cfg) -> ModelArgs:
    """`get_model_config(model.name, **non-null model fields)`, as the trainer builds it."""
    from omegaconf import OmegaConf

    model = OmegaConf.to_container(cfg.model, resolve=True)
    name = model.pop("name")
    overrides = {k: v for k, v in model.items() if v is not None}
    if isinstance(overrides.get("rope_scaling"), dict):
        overrides["rope_scaling"] = RopeScaling(**overrides["rope_scaling"])
    return get_model_config(name, **overrides)


def _run_dir_of(step_dir: Path) -> Path | None:
    return step_dir.parent.parent if step_dir.parent.name == "checkpoints" else None


def checkpoint_model_args(step_dir: str | Path) -> ModelArgs:
    """Model shape of a checkpoint: its `model_args.json`, else the run's `config.yaml`."""
    step_dir = Path(step_dir)
    if (step_dir / MODEL_ARGS_FILE).is_file():
        return model_args_from_dict(json.loads((step_dir / MODEL_ARGS_FILE).read_text()))
    run_dir = _run_dir_of(step_dir)
    if run_dir is None or not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(
            f"{step_dir}: cannot tell the model shape: no {MODEL_ARGS_FILE} here and no config.yaml in "
            f"the run directory{f' {run_dir}' if run_dir else ''}"
        )
    return model_args_from_run_config(load_run_config(run_dir))


def _find_relative(rel: str, run_dir: Path) -> Path | None:
    """A path from the run's config (relative to where training ran): try cwd, then the run's ancestors."""
    p = Path(rel)
    if p.is_absolute():
        return p if p.exists() else None
    for base in (Path.cwd(), *run_dir.resolve().parents):
        if (base / p).exists():
            return base / p
    return None


@dataclasses.dataclass
class TokenInfo:
    bos_id: int = LLAMA3_BOS_ID
    eos_id: int = LLAMA3_EOS_ID
    tokenizer_file: Path | None = None
    """The tiktoken ranks file of the run (None: Llama 3's or unknown)."""


def run_token_info(step_dir: str | Path) -> TokenInfo:
    """Bos/eos ids of the tokenizer the run's data was packed with (its manifest), else Llama 3's."""
    run_dir = _run_dir_of(Path(step_dir))
    info = TokenInfo()
    if run_dir is None or not (run_dir / "config.yaml").is_file():
        return info
    cfg = load_run_config(run_dir)
    data = cfg.get("data", {}) or {}
    if data.get("tokenizer"):
        info.tokenizer_file = _find_relative(str(data.get("tokenizer")), run_dir)
    packed = [data.get("path"), (cfg.get("validation", {}) or {}).get("path")]
    for rel in packed:
        found = _find_relative(str(rel), run_dir) if rel and rel != "???" else None
        if found is not None and (found / "manifest.json").is_file():
            try:
                tok = json.loads((found / "manifest.json").read_text())["tokenizer"]
                info.bos_id, info.eos_id = int(tok["bos_id"]), int(tok["eos_id"])
                return info
            except (ValueError, KeyError, TypeError):
                continue
    if info.tokenizer_file is not None:
        from pretrain.tokenizer import Tokenizer

        tok = Tokenizer.from_file(info.tokenizer_file)
        info.bos_id, info.eos_id = tok.bos_id, tok.eos_id
    return info


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
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
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
        state.update(load_file(str(hf_dir / f)))
    return state


def read_hf_config(hf_dir: str | Path) -> dict[str, Any]:
    file = Path(hf_dir) / "config.json"
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no HF config.json")
    return json.loads(file.read_text())


def load_hf(hf_dir: str | Path, args: ModelArgs | None = None) -> tuple[dict[str, torch.Tensor], ModelArgs]:
    """(andes state dict, ModelArgs) of an HF Llama directory; args default to those of its config.json."""
    if args is None:
        args = args_from_hf_config(read_hf_config(hf_dir))
    return from_hf_state_dict(read_hf_weights(hf_dir), args), args


# ---------------------------------------------------------------------------------------------------
# Writing whole directories atomically


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite and not (out.is_dir() and not any(out.iterdir())):
        raise FileExistsError(f"{out}: already exists and is not empty; pass --overwrite to replace it")


def _publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished `tmp` dir to `out` (replacing an empty dir, or any with `overwrite`)."""
    _check_out(out, overwrite)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if out.exists() or out.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


class _TempDir:
    """A scratch dir next to `out` (same filesystem, so the final rename is atomic), removed on error."""

    def __init__(self, out: Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def export_hf(
    state_dict: dict[str, torch.Tensor],
    args: ModelArgs,
    out_dir: str | Path,
    *,
    dtype: torch.dtype | None = torch.float32,
    bos_token_id: int = LLAMA3_BOS_ID,
    eos_token_id: int = LLAMA3_EOS_ID,
    tokenizer_file: Path | None = None,
    overwrite: bool = False,
) -> Path:
    """A complete HF directory at `out_dir`, written elsewhere and renamed into place.

    `tokenizer_file` (the run's tiktoken ranks) is copied as `tokenizer.model` for `pretrain.generate`.
    """
    out = Path(out_dir)
    _check_out(out, overwrite)
    with _TempDir(out) as tmp:
        save_hf(
            state_dict,
            args,
            tmp,
            dtype=dtype,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            generation_config=True,
        )
        if tokenizer_file is not None:
            shutil.copyfile(tokenizer_file, tmp / "tokenizer.model")
        _publish(tmp, out, overwrite)
    return out


def save_model_checkpoint(
    state_dict: dict[str, torch.Tensor], args: ModelArgs, out_dir: str | Path, *, overwrite: bool = False
) -> Path:
    """A model-only DCP checkpoint (`{"model": state}`) plus `model_args.json`, atomically at `out_dir`."""
    import torch.distributed.checkpoint as dcp

    out = Path(out_dir)
    _check_out(out, overwrite)
    with _TempDir(out) as tmp:
        ckpt = tmp / "checkpoint"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.save({"model": state_dict}, checkpoint_id=str(ckpt), no_dist=True)
        (ckpt / MODEL_ARGS_FILE).write_text(json.dumps(model_args_to_dict(args), indent=2) + "\n")
        _publish(ckpt, out, overwrite)
    return out


def _check_named(args: ModelArgs, hf_args: ModelArgs, name: str) -> None:
    fields = ("dim", "n_layers", "n_heads", "kv_heads", "vocab_size", "ffn_hidden_dim", "norm_eps")
    fields += ("rope_theta", "rope_scaling")
    diff = [
        f"{f}: HF {getattr(hf_args, f)}, model {getattr(args, f)}"
        for f in fields
        if getattr(args, f) != getattr(hf_args, f)
    ]
    if diff:
        raise ValueError(f"HF config.json does not match model {name!r}: " + "; ".join(diff))


def import_hf(
    hf_dir: str | Path,
    out_dir: str | Path,
    *,
    model: str | None = None,
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> ModelArgs:
    """Convert an HF Llama directory into a model-only DCP checkpoint at `out_dir`; returns its ModelArgs.

    With `model` the named config (plus `overrides`) is the shape, checked against config.json and every
    tensor; without it the shape is inferred from config.json.
    """
    hf_dir = Path(hf_dir)
    if not hf_dir.is_dir():
        raise FileNotFoundError(f"{hf_dir}: no such HF model directory")
    hf_args = args_from_hf_config(read_hf_config(hf_dir))
    if model is not None:
        args = get_model_config(model, **(overrides or {}))
        _check_named(args, hf_args, model)
    else:
        args = dataclasses.replace(hf_args, **(overrides or {})) if overrides else hf_args
    state, _ = load_hf(hf_dir, args)
    save_model_checkpoint(state, args, out_dir, overwrite=overwrite)
    return args


# ---------------------------------------------------------------------------------------------------
# CLI


def _parse_overrides(items: list[str]) -> tuple[str | None, dict[str, Any]]:
    """`run.dir=RUN` and `model.FIELD=VALUE` arguments (Hydra-style) -> (run dir, model overrides)."""
    import yaml

    run_dir, model = None, {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"unexpected argument {item!r}: expected run.dir=RUN or model.FIELD=VALUE")
        if key == "run.dir":
            run_dir = value
        elif key.startswith("model.") and key != "model.name":
            model[key.removeprefix("model.")] = yaml.safe_load(value)
        else:
            raise SystemExit(
                f"unsupported override {key!r}: only run.dir=… and model.FIELD=… (with --from-hf)"
            )
    return run_dir, model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pretrain.export",
        description="Export a training checkpoint to Hugging Face format, or import one (--from-hf).",
    )
    parser.add_argument("overrides", nargs="*", help="run.dir=RUN (the run to export); model.FIELD=VALUE")
    parser.add_argument("--checkpoint", help="run dir, its checkpoints/ dir, or one step-N dir")
    parser.add_argument("--step", type=int, help="export checkpoints/step-N instead of the latest")
    parser.add_argument("--out", required=True, help="output directory (written atomically)")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="exported weight dtype")
    parser.add_argument("--from-hf", metavar="HF_DIR", help="import this HF Llama directory instead")
    parser.add_argument("--model", help="--from-hf: named model config to check the weights against")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    a = parser.parse_args(argv)
    run_dir, model_overrides = _parse_overrides(a.overrides)
    try:
        if a.from_hf:
            if run_dir or a.checkpoint or a.step is not None:
                parser.error("--from-hf takes no run.dir=, --checkpoint or --step")
            args = import_hf(
                a.from_hf, a.out, model=a.model, overrides=model_overrides, overwrite=a.overwrite
            )
            print(f"imported {a.from_hf} -> {a.out} {_describe(args)}")
            return 0
        if model_overrides or a.model:
            parser.error("--model and model.FIELD=… are for --from-hf")
        source = a.checkpoint or run_dir
        if not source or (a.checkpoint and run_dir):
            parser.error("give exactly one of run.dir=RUN or --checkpoint PATH")
        step_dir = resolve_checkpoint(source, a.step)
        args = checkpoint_model_args(step_dir)
        state = load_model_state(step_dir, args)
        tok = run_token_info(step_dir)
        export_hf(
            state,
            args,
            a.out,
            dtype=DTYPES[a.dtype],
            bos_token_id=tok.bos_id,
            eos_token_id=tok.eos_id,
            tokenizer_file=tok.tokenizer_file,
            overwrite=a.overwrite,
        )
        print(f"exported {step_dir} -> {a.out} {_describe(args)}")
        return 0
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
