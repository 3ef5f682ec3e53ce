"""Training metrics: one JSON line per logged step, the same scalars in TensorBoard, a console line."""

from __future__ import annotations

import json
import math
import resource
import sys
from pathlib import Path

import torch

# Dense bf16 tensor-core peak per device, TFLOP/s (vendor datasheets, without sparsity).
_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "MI300X": 1307.0}

METRIC_KEYS = ("step", "loss", "lr", "grad_norm", "tokens_per_s", "tflops", "mfu", "mem_gib", "data_wait_s")
"""Keys every metrics.jsonl line carries (DESIGN.md, run directory)."""


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
    """Writes metrics on rank 0 only; other ranks hold a logger that does nothing."""

    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool):
        self.enabled = enabled
        self._jsonl = None
        self._tb = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(run_dir / "metrics.jsonl", "a", buffering=1)  # noqa: SIM115 (lives with the run)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(run_dir / "tb"))

    def log(self, step: int, values: dict[str, float | None]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _finite_or_none(v) for k, v in values.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in values.items():
                if value is not None and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)
        print(format_line(record), file=sys.stdout, flush=True)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def _finite_or_none(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def format_line(r: dict) -> str:
    """Compact console line; absent or null values are left out."""
    fmt = {
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
    parts = [f"step {r['step']:>6}"]
    parts += [f.format(r[k]) for k, f in fmt.items() if r.get(k) is not None]
    return "  ".join(parts)
