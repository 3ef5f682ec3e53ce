"""Score an andes checkpoint or an HF Llama directory on OLMES multiple-choice tasks.

    python -m pretrain.eval --checkpoint runs/demo --tasks hellaswag,arc_easy:rc_5shot [--limit 100]
        [--out results.json] [--step N] [--tokenizer FILE] [--batch-tokens N] [--dtype fp32|bf16]
    python -m pretrain.eval --hf exports/demo --tasks piqa
    torchrun --nproc-per-node 8 -m pretrain.eval --checkpoint RUN --tasks ... --tp 2 --pp 2
    python -m pretrain.eval --list

`--checkpoint` is a run dir, its checkpoints/ dir, a step dir or an HF export (as for
`pretrain.generate`), `--hf DIR` an HF Llama-family directory. The tokenizer is `--tokenizer`, else
the model's own (an HF dir's tokenizer.json, a run's data.tokenizer), read by `load_tokenizer`.
Under torchrun the ranks not used by --tp x --pp are data-parallel replicas.
Exit codes: 0 done, 1 bad input (one line on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from pretrain.eval.evaluate import evaluate
from pretrain.eval.layout import EvalLayout, shard_for_eval
from pretrain.eval.metrics import METRICS
from pretrain.eval.scorer import ScoreOptions
from pretrain.eval.tasks import list_tasks, resolve_task


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pretrain.eval", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="run dir, checkpoints/ dir, step dir or pretrain.export dir")
    src.add_argument("--hf", help="HF Llama-family directory (config.json, safetensors, tokenizer.json)")
    p.add_argument("--tasks", help="comma-separated task or task:variant (default variant rc_0shot)")
    p.add_argument("--limit", type=int, help="score only the first N documents (by doc_id) of each task")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--step", type=int, help="use checkpoints/step-N instead of the latest")
    p.add_argument("--tokenizer", help="tiktoken ranks file or HF tokenizer.json (default: the model's)")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (under torchrun)")
    p.add_argument("--pp", type=int, default=1, help="pipeline stages (under torchrun)")
    p.add_argument("--batch-tokens", type=int, default=ScoreOptions.batch_tokens)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list the tasks and their variants, then exit")
    return p


def _load(a: argparse.Namespace, device: torch.device):
    """(whole model on `device`, tokenizer) for --checkpoint or --hf."""
    from data_pipeline.tokenizer import load_tokenizer
    from pretrain import export
    from pretrain.checkpoint_files import check_vocab
    from pretrain.generate import build_model, load_for_generation

    if a.hf and not export.is_hf_dir(a.hf):
        raise FileNotFoundError(f"{a.hf}: not an HF model directory (config.json + model.safetensors)")
    state, args, tok_file = load_for_generation(a.hf or a.checkpoint, step=a.step)
    tok = load_tokenizer(a.tokenizer or tok_file)
    check_vocab(tok, args, "pass the tokenizer the model was trained with (--tokenizer)")
    return build_model(state, args, device=device, dtype=export.DTYPES[a.dtype]), tok


def _layout(a: argparse.Namespace, model, device: torch.device) -> EvalLayout:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return EvalLayout([model], device=device)
    from parallel.dims import ParallelDims

    dims = ParallelDims(tp=a.tp, pp=a.pp, world_size=world)
    dims.build_mesh(device.type)
    return shard_for_eval(model, dims, device)


def _check(a: argparse.Namespace) -> list[str]:
    """The task list, with every cheap check done before the model is loaded."""
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    for t in tasks:
        resolve_task(t)
    if a.limit is not None and a.limit < 1:
        raise ValueError(f"--limit {a.limit} must be >= 1")
    if a.tp < 1 or a.pp < 1 or a.batch_tokens < 1:
        raise ValueError("--tp, --pp and --batch-tokens must be >= 1")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 and a.tp * a.pp > 1:
        raise ValueError(f"--tp {a.tp} --pp {a.pp} need that many ranks: run under torchrun")
    if world % (a.tp * a.pp):
        raise ValueError(f"world size {world} is not divisible by --tp {a.tp} x --pp {a.pp}")
    return tasks


def format_table(results: dict[str, dict]) -> str:
    """Aligned rows of every metric per task; * marks the task's OLMES primary metric."""
    width = max([len("task"), *map(len, results)])
    lines = [f"{'task':<{width}} {'n':>6} " + " ".join(f"{m:>14}" for m in METRICS)]
    for task, r in results.items():
        cells = [f"{r[m]:.4f}{'*' if r.get('primary_metric') == m else ' '}" for m in METRICS]
        lines.append(f"{task:<{width}} {r['n']:>6} " + " ".join(f"{c:>14}" for c in cells))
    return "\n".join(lines)


def _write(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    try:
        if a.list:
            for task, variants in list_tasks().items():
                print(f"{task}: {', '.join(variants)}")
            return 0
        if not a.tasks or not (a.checkpoint or a.hf):
            parser.error("--tasks and one of --checkpoint or --hf are required (or --list)")
        tasks = _check(a)
        device = torch.device(a.device)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from pretrain.train import init_distributed

            device = init_distributed()[2]
        model, tok = _load(a, device)
        layout = _layout(a, model, device)
        options = ScoreOptions(batch_tokens=a.batch_tokens, progress=not a.no_progress)
        results = evaluate(layout, tok, tasks, a.limit, options)
    except (FileNotFoundError, ValueError) as e:
        if rank == 0:
            print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if rank == 0:
        print(format_table(results))
        if a.out:
            source = {"checkpoint": a.checkpoint} if a.checkpoint else {"hf": a.hf}
            _write(Path(a.out), {"tasks": results, **source, "limit": a.limit})
    return 0


if __name__ == "__main__":
    sys.exit(main())
