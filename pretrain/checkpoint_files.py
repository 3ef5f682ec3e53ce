"""Training checkpoints (DCP) read offline, in one process: which step dir, model shape, tokenizer.

A model-only checkpoint (`pretrain.export --from-hf` output) is a step dir with `model_args.json`.
DCP is read through `pretrain.safe_dcp`: `.metadata` with an allowlisting unpickler, tensors and
byte entries with `torch.load(weights_only=True)`, so a crafted checkpoint runs no code here.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.distributed.checkpoint.api import CheckpointException

from pretrain import safe_dcp
from pretrain.checkpoint import METADATA, complete_steps, latest_step, step_dir
from pretrain.configs import ModelArgs, RopeScaling, get_model_config
from pretrain.weight_shapes import describe_shape, expected_shapes, short_list

if TYPE_CHECKING:
    from data_pipeline.tokenizer import AnyTokenizer

LLAMA3_BOS_ID = 128000
"""<|begin_of_text|> of Meta's Llama 3 tokenizer (used when the run's tokenizer is unknown)."""
LLAMA3_EOS_ID = 128001
"""<|end_of_text|> of Meta's Llama 3 tokenizer."""

_STEP_DIR = re.compile(r"step-(\d+)")
MODEL_ARGS_FILE = "model_args.json"


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


def _is_complete(step_dir: Path) -> bool:
    return (step_dir / METADATA).is_file()


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
        target = step_dir(ckpt_dir, step)
        if not target.is_dir():
            have = complete_steps(ckpt_dir)
            raise FileNotFoundError(f"{target}: no such checkpoint (complete steps in {ckpt_dir}: {have})")
        if not _is_complete(target):
            raise ValueError(f"{target}: incomplete checkpoint (no .metadata: the save did not finish)")
        return target
    found = latest_step(ckpt_dir)  # the trainer's own rule: `latest`, else the newest complete
    if found is None:
        raise ValueError(f"{ckpt_dir}: no complete checkpoint (a step-N directory with .metadata)")
    return step_dir(ckpt_dir, found)


def load_model_state(step_dir: str | Path, args: ModelArgs, key: str = "model") -> dict[str, torch.Tensor]:
    """The model's full state dict (on CPU, in the stored dtypes) from a DCP checkpoint, in one process.

    Every tensor of `Transformer(args)` must be in the checkpoint with the same shape, and the checkpoint
    must hold no other model tensors (a ValueError otherwise, naming the step dir). `key` is the state
    key read: `model`, or `ema` for the EMA of the weights (pretrain/ema.py), which is keyed alike.
    """
    step_dir = Path(step_dir)
    if not step_dir.is_dir():
        raise FileNotFoundError(f"{step_dir}: no such checkpoint directory")
    if not _is_complete(step_dir):
        raise ValueError(f"{step_dir}: incomplete checkpoint (no .metadata: the save did not finish)")
    metadata = safe_dcp.read_metadata(step_dir)  # a CheckpointReadError (ValueError) naming the file
    stored = metadata.state_dict_metadata
    shapes = expected_shapes(args)
    state, missing, wrong = {}, [], []
    for fqn, shape in shapes.items():
        meta = stored.get(f"{key}.{fqn}")
        if meta is None or not hasattr(meta, "size"):
            missing.append(fqn)
        elif tuple(meta.size) != shape:
            wrong.append(f"{fqn}: {tuple(meta.size)}, model wants {shape}")
        else:
            state[fqn] = torch.empty(shape, dtype=meta.properties.dtype)
    names = [k.removeprefix(f"{key}.") for k in stored if k.startswith(f"{key}.")]
    extra = sorted(n for n in names if n not in shapes)
    if missing or wrong or extra:
        problems = [
            f"{what} {short_list(items)}"
            for what, items in (("missing", missing), ("wrong shapes", wrong), ("unexpected", extra))
            if items
        ]
        raise ValueError(
            f"{step_dir}: checkpoint does not match the model {describe_shape(args)}: " + "; ".join(problems)
        )
    try:
        safe_dcp.load({key: state}, step_dir, no_dist=True, metadata=metadata)
    except safe_dcp.CheckpointReadError:
        raise
    except (Exception, CheckpointException) as e:  # the latter is a BaseException
        cause = safe_dcp.first_failure(e)
        raise ValueError(
            f"{step_dir}: could not read the model weights ({type(cause).__name__}: {cause})"
        ) from e
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
    """The tokenizer of the checkpoint (tiktoken ranks or HF tokenizer.json; None: Llama 3's or unknown)."""


def run_token_info(step_dir: str | Path) -> TokenInfo:
    """The tokenizer of a checkpoint and its bos/eos ids.

    The tokenizer is the one saved in the step dir (`pretrain.export --from-hf` keeps the HF model's),
    else the run's `data.tokenizer`; the ids come from the run's packed manifest, else from that
    tokenizer, else they are Llama 3's.
    """
    from data_pipeline.tokenizer import find_tokenizer, load_tokenizer

    step_dir = Path(step_dir)
    info = TokenInfo(tokenizer_file=find_tokenizer(step_dir))
    run_dir = _run_dir_of(step_dir)
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        cfg = load_run_config(run_dir)
        data = cfg.get("data", {}) or {}
        if info.tokenizer_file is None and data.get("tokenizer"):
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
        tok = load_tokenizer(info.tokenizer_file)
        info.bos_id, info.eos_id = tok.bos_id, tok.eos_id
    return info


def check_vocab(tokenizer: AnyTokenizer, args: ModelArgs, hint: str) -> None:
    """A tokenizer with more ids than the model's embedding rows is refused (ValueError, one line)."""
    if tokenizer.n_vocab > args.vocab_size:
        raise ValueError(
            f"tokenizer {tokenizer.path} has {tokenizer.n_vocab} ids but the model's vocab_size is "
            f"{args.vocab_size}; {hint}"
        )
