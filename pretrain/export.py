"""Export a training run's checkpoint (DCP) to a consolidated Hugging Face directory, or import an HF
directory as a model-only DCP checkpoint that `checkpoint.initial_load_path=DIR` starts training from:

    python -m pretrain.export run.dir=runs/demo [--step N] --out exports/demo [--dtype bf16]
    python -m pretrain.export --checkpoint runs/demo/checkpoints/step-100 --out exports/demo
    python -m pretrain.export --from-hf Meta-Llama-3-8B --out ckpts/llama3_8b [--model llama3_8b]

The conversion itself is `pretrain.hf`; finding and reading checkpoints is `pretrain.checkpoint_files`.
Both directories are written beside `--out` and renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from data_pipeline.tokenizer import AnyTokenizer, find_tokenizer, load_tokenizer
from pretrain.checkpoint_files import (
    LLAMA3_BOS_ID,
    LLAMA3_EOS_ID,
    MODEL_ARGS_FILE,
    check_vocab,
    checkpoint_model_args,
    load_model_state,
    model_args_to_dict,
    resolve_checkpoint,
    run_token_info,
)
from pretrain.configs import ModelArgs, get_model_config
from pretrain.hf import (
    DTYPES,
    _ffn_params,
    args_from_hf_config,
    hf_config,
    is_hf_dir,
    load_hf,
    read_hf_args,
    save_hf,
    to_hf_state_dict,
)
from pretrain.weight_shapes import describe_shape

# Other code (generate, tests, bench) reaches these through `pretrain.export`.
__all__ = [
    "DTYPES",
    "_ffn_params",
    "args_from_hf_config",
    "checkpoint_model_args",
    "export_hf",
    "hf_config",
    "import_hf",
    "is_hf_dir",
    "load_hf",
    "load_model_state",
    "main",
    "resolve_checkpoint",
    "run_token_info",
    "save_hf",
    "save_model_checkpoint",
    "to_hf_state_dict",
]

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
    tokenizer: AnyTokenizer | None = None,
    overwrite: bool = False,
) -> Path:
    """A complete HF directory at `out_dir`, written elsewhere and renamed into place.

    `tokenizer` (the run's) is saved beside the weights for `pretrain.generate`: a tiktoken one as
    `tokenizer.model`, an HF one as `tokenizer.json` + `tokenizer_config.json`.
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
        if tokenizer is not None:
            tokenizer.save(tmp)
        _publish(tmp, out, overwrite)
    return out


def save_model_checkpoint(
    state_dict: dict[str, torch.Tensor],
    args: ModelArgs,
    out_dir: str | Path,
    *,
    tokenizer: AnyTokenizer | None = None,
    overwrite: bool = False,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """A model-only DCP checkpoint (`{"model": state}`) plus `model_args.json` (and the model's
    tokenizer, which export and generate then use), atomically at `out_dir`.

    `extra_files` (name -> text) go beside them in the same rename, e.g. `pretrain.average`'s record.
    """
    import torch.distributed.checkpoint as dcp

    out = Path(out_dir)
    _check_out(out, overwrite)
    with _TempDir(out) as tmp:
        ckpt = tmp / "checkpoint"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.save({"model": state_dict}, checkpoint_id=str(ckpt), no_dist=True)
        (ckpt / MODEL_ARGS_FILE).write_text(json.dumps(model_args_to_dict(args), indent=2) + "\n")
        for name, text in (extra_files or {}).items():
            (ckpt / name).write_text(text)
        if tokenizer is not None:
            tokenizer.save(ckpt)
        _publish(ckpt, out, overwrite)
    return out


def _check_named(args: ModelArgs, hf_args: ModelArgs, name: str) -> None:
    fields = ("dim", "n_layers", "n_heads", "kv_heads", "vocab_size", "ffn_hidden_dim", "norm_eps")
    fields += ("rope_theta", "rope_scaling", "tie_embeddings")
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
    tensor; without it the shape is inferred from config.json. The model's own tokenizer goes with it
    (`hf_dir_tokenizer`).
    """
    hf_dir = Path(hf_dir)
    if not hf_dir.is_dir():
        raise FileNotFoundError(f"{hf_dir}: no such HF model directory")
    hf_args = read_hf_args(hf_dir)
    if model is not None:
        args = get_model_config(model, **(overrides or {}))
        _check_named(args, hf_args, model)
    else:
        args = dataclasses.replace(hf_args, **(overrides or {})) if overrides else hf_args
    tokenizer = hf_dir_tokenizer(hf_dir)
    if tokenizer is not None:
        check_vocab(tokenizer, args, f"{hf_dir} holds a tokenizer that does not fit its own model")
    state, _ = load_hf(hf_dir, args)
    save_model_checkpoint(state, args, out_dir, tokenizer=tokenizer, overwrite=overwrite)
    return args


def hf_dir_tokenizer(hf_dir: Path) -> AnyTokenizer | None:
    """The tokenizer of an HF model directory: its `tokenizer.json`, else a tiktoken `tokenizer.model`
    (as our exports hold). A SentencePiece `tokenizer.model` (Llama 2) is left behind with a warning."""
    found = find_tokenizer(hf_dir)
    if found is None:
        return None
    try:
        return load_tokenizer(found)
    except ValueError as e:
        if found.name == "tokenizer.json":
            raise
        warnings.warn(f"{found}: not imported, not a tiktoken ranks file ({e})", stacklevel=2)
        return None


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
            print(f"imported {a.from_hf} -> {a.out} {describe_shape(args)}")
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
        tokenizer = load_tokenizer(tok.tokenizer_file) if tok.tokenizer_file else None
        if tokenizer is not None:
            check_vocab(tokenizer, args, f"the checkpoint's tokenizer does not fit {step_dir}")
        export_hf(
            state,
            args,
            a.out,
            dtype=DTYPES[a.dtype],
            bos_token_id=tok.bos_id,
            eos_token_id=tok.eos_id,
            tokenizer=tokenizer,
            overwrite=a.overwrite,
        )
        print(f"exported {step_dir} -> {a.out} {describe_shape(args)}")
        return 0
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
