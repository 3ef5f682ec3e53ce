"""Training metrics: one JSON line per logged step, the same scalars in TensorBoard, a console line."""

from __future__ import annotations

import json
import math
import resource
import sys
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import torch

# Dense bf16 tensor-core peak per device, TFLOP/s (vendor datasheets, without sparsity).
_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "MI300X": 1307.0}


@dataclass
class StepMetrics:
    """One metrics.jsonl line: the keys, their order and their console format are defined here only.

    Every line carries `step` through `data_wait_s`; the keys after it appear only when they apply.
    """

    step: int
    loss: float
    lr: float
    grad_norm: float
    tokens_per_s: float
    """Whole-job training throughput since the previous line (validation time excluded)."""
    tflops: float
    """Model TFLOP/s per device."""
    mfu: float | None
    """tflops / the device's peak (None where the peak is unknown, e.g. CPU)."""
    mem_gib: float
    """Peak accelerator memory, or peak resident memory on CPU."""
    data_wait_s: float
    """Seconds per step spent waiting for the loader."""
    val_loss: float | None = None
    skipped_steps: int | None = None
    """Non-finite steps skipped so far in this run."""
    loss_spike: bool | None = None
    evaluation: dict[str, float] | None = None
    """In-loop evaluation (eval.tasks), written as its own keys: `eval/<task>/<metric>`, `eval/seconds`."""
    stage: str | None = None
    """Name of the training stage the step is in (every line of a run with `stages`)."""

    def record(self) -> dict:
        """The JSON object: non-finite numbers become null; optional keys only when set."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            items = value.items() if isinstance(value, dict) else [(f.name, value)]
            out.update((k, _finite_or_none(v) if isinstance(v, float) else v) for k, v in items)
        return out


METRIC_KEYS = tuple(f.name for f in fields(StepMetrics) if f.default is MISSING)
"""Keys every metrics.jsonl line carries (docs/contract.md, run directory)."""

_CONSOLE = {
    "loss": "loss {:.4f}",
    "val_loss": "val_loss {:.4f}",
    "lr": "lr {:.2e}",
    "grad_norm": "gnorm {:.3f}",
    "tokens_per_s": "tok/s {:,.0f}",
    "tflops": "tflops {:.2f}",
    "mfu": "mfu {:.1%}",
    "mem_gib": "mem {:.2f}GiB",
    "data_wait_s": "data_wait {:.3f}s",
}


def peak_tflops(configured: float | None, device: torch.device) -> float | None:
    """Peak TFLOP/s for MFU: the configured value, else a lookup by GPU name, else None."""
    if configured is not None:
        return configured
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in _PEAK_TFLOPS.items():
            if key in name:
                return value
    return None


def memory_gib(device: torch.device) -> float:
    """Peak accelerator memory of this process, or peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 2**20


class MetricsLogger:
    """Writes metrics on rank 0 only; other ranks hold a logger that does nothing.

    On resume after step N, lines and TensorBoard events past N (written before a kill) are dropped
    first, so the history holds every step once.
    """

    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool, resume_step: int = 0):
        self.enabled = enabled
        self._jsonl = None
        self._tb = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "metrics.jsonl"
        truncate_after(path, resume_step)
        self._jsonl = open(path, "a", buffering=1)  # noqa: SIM115 (lives with the run)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=resume_step + 1)

    def log(self, metrics: StepMetrics) -> None:
        if not self.enabled:
            return
        record = metrics.record()
        self._jsonl.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, metrics.step)
        print(format_line(record), file=sys.stdout, flush=True)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def truncate_after(path: Path, step: int) -> None:
    """Drop the lines of `path` whose step is past `step` (tmp + rename; unparsable lines too)."""
    if not path.is_file():
        return
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            keep = int(json.loads(line)["step"]) <= step
        except (ValueError, KeyError, TypeError):
            keep = False  # a line cut short by a kill
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)


def _finite_or_none(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def format_line(r: dict) -> str:
    """Compact console line; absent or null values are left out."""
    parts = [f"step {r['step']:>6}"]
    parts += [f.format(r[k]) for k, f in _CONSOLE.items() if r.get(k) is not None]
    return "  ".join(parts)
