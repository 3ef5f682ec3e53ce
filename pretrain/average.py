"""Average the model weights of several checkpoints into one model-only checkpoint (Polyak averaging):

    python -m pretrain.average run.dir=runs/x --last 4 --out ckpts/x_avg
    python -m pretrain.average run.dir=runs/x --steps 9000:10000 --out ckpts/x_avg
    python -m pretrain.average runs/x/checkpoints/step-900 runs/x/checkpoints/step-1000 --out ckpts/x_avg
    python -m pretrain.average --ema run.dir=runs/x --out ckpts/x_ema   # or --ema STEP_DIR

Llama 3 (§3.1.4) anneals the LR to zero on high-quality data and averages the checkpoints of that
phase. The checkpoints are read one at a time through `pretrain.safe_dcp` into a float32 sum (memory:
two model copies, whatever K is); the mean is cast back to each tensor's stored dtype. The output is
what `pretrain.export --from-hf` writes (DCP `model` + `model_args.json` + the run's tokenizer), plus
`average.json` naming the averaged steps, so `checkpoint.initial_load_path`, `pretrain.export` and
`pretrain.generate` read it like any checkpoint. `--ema` writes instead the EMA of the weights that
one checkpoint of a run trained with `ema.enabled=true` holds (pretrain/ema.py), in the same form.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

from data_pipeline.tokenizer import load_tokenizer
from pretrain import safe_dcp
from pretrain.checkpoint_files import (
    checkpoint_model_args,
    load_model_state,
    resolve_checkpoint,
    run_token_info,
)
from pretrain.export import save_model_checkpoint
from pretrain.weight_shapes import describe_shape

RECORD_FILE = "average.json"
_STEP_DIR = re.compile(r"step-(\d+)")


def _step_of(path: Path) -> int | None:
    m = _STEP_DIR.fullmatch(path.name)
    return int(m.group(1)) if m else None


def checkpoints_dir(run_dir: Path) -> Path:
    """`run_dir/checkpoints`, or `run_dir` itself when it is the checkpoints dir."""
    return run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir


def select_steps(run_dir: Path, *, last: int | None = None, steps: str | None = None) -> list[Path]:
    """The step dirs of a run to average, oldest first: the `last` newest, or every one in `A:B`.

    Incomplete dirs are selected like complete ones, so that `require_complete` refuses them rather
    than the selection silently shifting to older steps.
    """
    ckpt_dir = checkpoints_dir(run_dir)
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    found = sorted((s, p) for p in ckpt_dir.iterdir() if p.is_dir() and (s := _step_of(p)) is not None)
    if last is not None:
        if last < 1:
            raise ValueError(f"--last {last}: must be at least 1")
        chosen = found[-last:]
    else:
        lo, sep, hi = (steps or "").partition(":")
        if not (sep and lo.isdigit() and hi.isdigit() and int(lo) <= int(hi)):
            raise ValueError(f"--steps {steps!r}: expected A:B with 0 <= A <= B (inclusive)")
        chosen = [(s, p) for s, p in found if int(lo) <= s <= int(hi)]
    if not chosen:
        have = [s for s, _ in found]
        raise ValueError(f"{ckpt_dir}: no checkpoint selected (step dirs here: {have})")
    return [p for _, p in chosen]


def require_complete(step_dirs: list[Path]) -> None:
    """Every input exists and has `.metadata` (DCP writes it last: without it the save did not finish)."""
    for d in step_dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such checkpoint directory")
        if not (d / safe_dcp.METADATA).is_file():
            raise ValueError(f"{d}: incomplete checkpoint (no .metadata: the save did not finish)")


def model_shapes(step_dir: Path) -> dict[str, tuple[int, ...]]:
    """Shape of every `model.*` tensor of a checkpoint, from its safely read metadata."""
    stored = safe_dcp.read_metadata(step_dir).state_dict_metadata
    return {k: tuple(m.size) for k, m in stored.items() if k.startswith("model.") and hasattr(m, "size")}


def require_same_model(step_dirs: list[Path]) -> None:
    """All inputs hold the same model keys with the same shapes as the newest (the last); the first
    difference is a ValueError naming the key. Reads only metadata, so it fails before any weights load."""
    ref_dir = step_dirs[-1]
    ref = model_shapes(ref_dir)
    for d in step_dirs[:-1]:
        shapes = model_shapes(d)
        for key in sorted(ref.keys() | shapes.keys()):
            if shapes.get(key) != ref.get(key):
                raise ValueError(
                    f"{d}: model key {key.removeprefix('model.')!r} is {shapes.get(key) or 'missing'} "
                    f"but {ref.get(key) or 'missing'} in {ref_dir}: not checkpoints of one model"
                )


def average_states(step_dirs: list[Path]) -> dict[str, torch.Tensor]:
    """The mean of the checkpoints' model tensors, summed in float32 and cast to the newest's dtypes."""
    args = checkpoint_model_args(step_dirs[-1])
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for d in step_dirs:
        state = load_model_state(d, args)  # one checkpoint in memory at a time, beside `total`
        for k, v in state.items():
            dtypes[k] = v.dtype
            if k in total:
                total[k].add_(v.to(torch.float32))
            else:
                total[k] = v.to(torch.float32, copy=True)
        del state
    return {k: v.div_(len(step_dirs)).to(dtypes[k]) for k, v in total.items()}


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def check_output(out: Path, step_dirs: list[Path], run_dir: Path | None, overwrite: bool) -> None:
    """Refuse an output the trainer could take for (or prune as) a checkpoint, one inside an input, or
    an existing one: without `overwrite` any non-empty dir, with it any dir this command did not write."""
    out = out.resolve()
    ckpt_dirs = {checkpoints_dir(run_dir).resolve()} if run_dir is not None else set()
    ckpt_dirs |= {d.resolve().parent for d in step_dirs if d.resolve().parent.name == "checkpoints"}
    for c in ckpt_dirs:
        if _inside(out, c):
            raise ValueError(
                f"{out}: inside the run's checkpoints dir {c}, where the trainer would take it for a "
                "checkpoint or delete it (checkpoint.keep_last); write the average elsewhere"
            )
    for d in step_dirs:
        if _inside(out, d.resolve()):
            raise ValueError(f"{out}: inside the input checkpoint {d}; write the average elsewhere")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not overwrite:
        raise FileExistsError(f"{out}: already exists and is not empty; pass --overwrite to replace it")
    if not (out / RECORD_FILE).is_file():
        raise FileExistsError(
            f"{out}: exists and was not written by pretrain.average (no {RECORD_FILE}); not replacing it"
        )


def average_checkpoints(
    step_dirs: list[Path], out: Path, *, run_dir: Path | None = None, overwrite: bool = False
) -> Path:
    """Write the average of `step_dirs` (oldest first; the last gives shape and tokenizer) to `out`."""
    check_output(out, step_dirs, run_dir, overwrite)
    require_complete(step_dirs)
    require_same_model(step_dirs)
    state = average_states(step_dirs)
    return _save(state, step_dirs, out, overwrite, accumulation="float32")


def _ema_config(step_dir: Path) -> dict | None:
    """The `ema` section of the config the trainer saved with the checkpoint (None if not there)."""
    from omegaconf import OmegaConf

    saved = step_dir / "config.yaml"
    ema = OmegaConf.load(saved).get("ema") if saved.is_file() else None
    return OmegaConf.to_container(ema) if ema is not None else None


def ema_checkpoint(
    step_dir: Path, out: Path, *, run_dir: Path | None = None, overwrite: bool = False
) -> Path:
    """Write the EMA of the weights that checkpoint `step_dir` holds (its `ema` state) to `out`."""
    check_output(out, [step_dir], run_dir, overwrite)
    require_complete([step_dir])
    stored = safe_dcp.read_metadata(step_dir).state_dict_metadata
    if not any(k.startswith("ema.") for k in stored):
        raise ValueError(f"{step_dir}: holds no EMA of the weights (saved by a run with ema.enabled=false)")
    state = load_model_state(step_dir, checkpoint_model_args(step_dir), key="ema")
    return _save(state, [step_dir], out, overwrite, weights="ema", ema=_ema_config(step_dir))


def _save(state: dict, step_dirs: list[Path], out: Path, overwrite: bool, **record) -> Path:
    """`state` as a model-only checkpoint with the newest input's shape and tokenizer, and the record."""
    newest = step_dirs[-1]
    tok = run_token_info(newest)
    tokenizer = load_tokenizer(tok.tokenizer_file) if tok.tokenizer_file else None
    record = {
        "steps": [_step_of(d) for d in step_dirs],
        "checkpoints": [str(d.resolve()) for d in step_dirs],
        **record,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id,
    }
    extra = {RECORD_FILE: json.dumps(record, indent=2) + "\n"}
    args = checkpoint_model_args(newest)
    return save_model_checkpoint(
        state, args, out, tokenizer=tokenizer, overwrite=overwrite, extra_files=extra
    )


def _run_dir(overrides: list[str]) -> tuple[Path | None, list[Path]]:
    """Positional arguments: `run.dir=RUN` or step dirs."""
    run_dir, dirs = None, []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key == "run.dir":
            run_dir = Path(value)
        elif sep:
            raise ValueError(f"unsupported override {key!r}: only run.dir=RUN (or step dirs)")
        else:
            dirs.append(Path(item))
    return run_dir, dirs


def _select(parser: argparse.ArgumentParser, a: argparse.Namespace) -> tuple[Path | None, list[Path]]:
    """(run dir or None, the step dirs to read) from the command line; a usage error otherwise."""
    run_dir, dirs = _run_dir(a.inputs)
    if a.ema:
        if a.last is not None or a.steps is not None or len(dirs) + (run_dir is not None) != 1:
            parser.error("--ema reads one checkpoint: run.dir=RUN (its latest) or one step dir")
        return run_dir, dirs or [resolve_checkpoint(run_dir)]
    if run_dir is not None and not dirs and (a.last is None) != (a.steps is None):
        return run_dir, select_steps(run_dir, last=a.last, steps=a.steps)
    if run_dir is not None or not dirs or a.last is not None or a.steps is not None:
        parser.error("give run.dir=RUN with one of --last K or --steps A:B, or step dirs alone")
    return run_dir, dirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pretrain.average",
        description="Average the model weights of checkpoints into one model-only checkpoint.",
    )
    parser.add_argument("inputs", nargs="*", help="run.dir=RUN (with --last or --steps), or step dirs")
    parser.add_argument("--last", type=int, metavar="K", help="the K newest checkpoints of the run")
    parser.add_argument("--steps", metavar="A:B", help="every checkpoint of the run with A <= step <= B")
    parser.add_argument(
        "--ema", action="store_true", help="instead the EMA of the weights kept in training (ema.enabled) "
        "of one checkpoint: run.dir=RUN (its latest) or a step dir"
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="output checkpoint directory (written atomically)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier average at --out")
    a = parser.parse_args(argv)
    try:
        run_dir, dirs = _select(parser, a)
        if a.ema:
            out = ema_checkpoint(dirs[0], Path(a.out), run_dir=run_dir, overwrite=a.overwrite)
        else:
            out = average_checkpoints(dirs, Path(a.out), run_dir=run_dir, overwrite=a.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    shape = describe_shape(checkpoint_model_args(out))
    steps = [_step_of(d) for d in dirs]
    if a.ema:
        print(f"EMA of the weights at step {steps[0]} -> {out} {shape}")
    else:
        print(f"averaged {len(dirs)} checkpoints (steps {steps}) -> {out} {shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
