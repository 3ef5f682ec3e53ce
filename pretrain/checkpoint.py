"""Distributed checkpoints (DCP): save (sync or async), find the latest complete one, resume, purge.

Layout: `run.dir/checkpoints/step-<N>/` is one DCP checkpoint; `checkpoints/latest` names the newest
complete one. A step directory is complete once DCP has written its `.metadata`, which the
coordinator does (tmp file + rename) only after every rank's data is written; `latest` is moved
(tmp + rename) only after that, so a crash mid-save leaves `latest` on the previous checkpoint. If
`latest` is missing or names an incomplete directory, the newest complete directory is used.

State: `model` and `optim` come from `get_model_state_dict` / `get_optimizer_state_dict` of every
model part, keyed by the parameter names of the plain model (flattened optimizer state), so a
checkpoint written by one dp/tp/pp layout loads into any other. `train` holds the step, the LR
schedule and the data loader position (identical on every rank). `rng` holds every rank's RNG
states under its own key and is restored only into the same world size. `ema` (with ema.enabled)
holds the EMA of the weights keyed like `model` (pretrain/ema.py), so it reshards the same way.

Async saves stage the state into host buffers kept across saves (one extra host copy of the
state; the only time the loop waits) and write it from a background thread over a separate gloo
group, so checkpoint collectives never interleave with training collectives.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from pretrain import safe_dcp
from pretrain.job_config import CheckpointConfig

if TYPE_CHECKING:
    from pretrain.ema import WeightEma

METADATA = safe_dcp.METADATA


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step}"


def _step_of(path: Path) -> int | None:
    name = path.name
    if not name.startswith("step-") or not name[5:].isdigit():
        return None
    return int(name[5:])


def complete_steps(root: Path) -> list[int]:
    """Steps whose checkpoint directory is complete, ascending."""
    if not root.is_dir():
        return []
    steps = [_step_of(p) for p in root.iterdir() if p.is_dir() and (p / METADATA).is_file()]
    return sorted(s for s in steps if s is not None)


def latest_step(root: Path) -> int | None:
    """The step `latest` names if that checkpoint is complete, else the newest complete one."""
    pointer = root / "latest"
    steps = complete_steps(root)
    if pointer.is_file():
        try:
            name = pointer.read_text().strip()
        except (OSError, UnicodeDecodeError):
            name = ""
        step = _step_of(root / name)
        if step is not None and (step_dir(root, step) / METADATA).is_file():
            return step
        fallback = f"; using step-{steps[-1]}, the newest complete one" if steps else ""
        warnings.warn(f"{pointer} names {name!r}, which is not a complete checkpoint{fallback}", stacklevel=2)
    return steps[-1] if steps else None


def require_complete(root: Path, step: int, *, explicit: bool = True) -> None:
    """Raise naming the step (and the complete ones) unless checkpoint `step` is complete."""
    if not (step_dir(root, step) / METADATA).is_file():
        what = "checkpoint.load_step" if explicit else "checkpoint step"
        raise FileNotFoundError(
            f"{what}={step}: {step_dir(root, step)} is not a complete checkpoint "
            f"(complete: {complete_steps(root) or 'none'})"
        )


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _holds(metadata, key: str) -> bool:
    """Whether a checkpoint's metadata has state key `key` (DCP flattens it to `key.<...>`)."""
    return any(k == key or k.startswith(key + ".") for k in metadata.state_dict_metadata)


def rng_state() -> dict[str, torch.Tensor]:
    """Torch RNG states of this rank (data order and init are seeded explicitly, not drawn from these)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class Checkpointer:
    """Saves and restores one run's training state in any parallel layout."""

    def __init__(
        self,
        cfg: CheckpointConfig,
        run_dir: Path,
        parts: list[nn.Module],
        optimizers: list[torch.optim.Optimizer],
        schedulers: list,
        loader,
        *,
        rank: int,
        world_size: int,
        config_yaml: str | None = None,
        ema: WeightEma | None = None,
    ):
        self.cfg = cfg
        self.ema = ema  # saved as `ema` when set (ema.enabled)
        self.root = Path(run_dir) / "checkpoints"
        self.parts, self.optimizers, self.schedulers, self.loader = parts, optimizers, schedulers, loader
        self.rank, self.world_size = rank, world_size
        self.config_yaml = config_yaml  # saved in each step dir: a resume names what changed since
        self._pending: tuple[int, object] | None = None
        self._last_save_time = time.monotonic()
        self._group = None
        self._stager = None
        if cfg.async_mode not in ("disabled", "async", "async_pinned"):
            raise ValueError(
                f"checkpoint.async_mode={cfg.async_mode!r}: expected disabled, async or async_pinned"
            )
        if cfg.async_mode != "disabled" and dist.is_initialized():
            self._group = dist.new_group(backend="gloo")  # async writes get their own channel

    # --- state ---------------------------------------------------------------------------------
    def _model_state(self) -> dict:
        return {k: v for part in self.parts for k, v in get_model_state_dict(part).items()}

    def _optim_state(self) -> dict:
        opts = StateDictOptions(flatten_optimizer_state_dict=True)
        out: dict = {}
        for part, opt in zip(self.parts, self.optimizers, strict=True):
            out.update(get_optimizer_state_dict(part, opt, options=opts))
        return out

    def _train_state(self, step: int) -> dict:
        return {
            "step": step,
            "world_size": self.world_size,
            "scheduler": self.schedulers[0].state_dict(),
            "loader": self.loader.state_dict(),
        }

    def state_dict(self, step: int) -> dict:
        state = {"model": self._model_state(), "optim": self._optim_state(), "train": self._train_state(step)}
        state[f"rng_rank{self.rank}"] = rng_state()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    # --- save ----------------------------------------------------------------------------------
    def should_save(self, step: int, last: bool) -> bool:
        """Every `interval` steps, every `interval_s` seconds (agreed by all ranks), and at the end."""
        if not self.cfg.enabled:
            return False
        due = step % self.cfg.interval == 0 or last
        if self.cfg.interval_s > 0:
            late = torch.tensor(float(time.monotonic() - self._last_save_time >= self.cfg.interval_s))
            if dist.is_initialized():
                dist.all_reduce(late, op=dist.ReduceOp.MAX)  # rank 0's clock decides for everyone
            due = due or bool(late.item())
        return due

    def save(self, step: int, *, sync: bool = False) -> None:
        """Write step `step`; async unless disabled or `sync` (at exit: the process must wait)."""
        self.wait()
        path = step_dir(self.root, step)
        if self.rank == 0:
            if path.exists():  # a partial directory left by a killed run
                shutil.rmtree(path)
            path.mkdir(parents=True)
            if self.config_yaml is not None:  # before .metadata: a complete checkpoint has it
                (path / "config.yaml").write_text(self.config_yaml)
        if dist.is_initialized():
            dist.barrier()
        state = self.state_dict(step)
        self._last_save_time = time.monotonic()
        if self.cfg.async_mode == "disabled" or sync:
            dcp.save(state, checkpoint_id=str(path), no_dist=not dist.is_initialized())
            self._finish(step)
            return
        if self._stager is None:
            from torch.distributed.checkpoint.staging import DefaultStager, StagingOptions

            # Staging buffers are kept from one save to the next: allocating the host copy anew
            # each time made the loop wait ~3.6x longer (bench/bench_checkpoint.py). Pinned
            # buffers (async_pinned, CUDA) also make the device-to-host copies full speed.
            pinned = self.cfg.async_mode == "async_pinned" and torch.cuda.is_available()
            self._stager = DefaultStager(StagingOptions(pinned, False, False, False))
        response = dcp.async_save(
            state,
            checkpoint_id=str(path),
            process_group=self._group,
            async_stager=self._stager,
            no_dist=not dist.is_initialized(),
        )
        # With synchronous staging DCP returns a plain Future; AsyncSaveResponse otherwise.
        future = getattr(response, "upload_completion", response)
        self._pending = (step, future)

    def poll(self) -> None:
        """Publish a finished async save (cheap; call every step)."""
        if self._pending is not None and self._pending[1].done():
            self.wait()

    def wait(self) -> None:
        """Block until the in-flight async save (if any) is written, then publish it."""
        if self._pending is None:
            return
        step, future = self._pending
        self._pending = None
        future.result()
        self._finish(step)

    def _finish(self, step: int) -> None:
        """Point `latest` at `step` once its metadata is down, then drop old checkpoints (rank 0)."""
        if self.rank != 0:
            return
        if not (step_dir(self.root, step) / METADATA).is_file():
            raise RuntimeError(f"checkpoint {step_dir(self.root, step)} has no {METADATA} after saving")
        _atomic_write(self.root / "latest", f"step-{step}\n")
        print(f"checkpoint: saved step {step} to {step_dir(self.root, step)}", flush=True)
        self.purge(step)

    def purge(self, latest: int) -> None:
        """Keep the newest `keep_last` complete checkpoints; drop incomplete ones older than `latest`."""
        if self.cfg.keep_last <= 0:
            return
        keep = set(complete_steps(self.root)[-self.cfg.keep_last :]) | {latest}
        for p in self.root.iterdir():
            s = _step_of(p)
            if s is not None and s < latest and s not in keep:
                shutil.rmtree(p, ignore_errors=True)

    # --- load ----------------------------------------------------------------------------------
    def load(self, step: int) -> None:
        """Restore model, optimizer, schedule, loader position, the EMA if kept (else it starts from
        the restored weights), and RNG in the same world size."""
        require_complete(self.root, step, explicit=self.cfg.load_step == step)
        path = step_dir(self.root, step)
        state = self.state_dict(step)
        rng_key = f"rng_rank{self.rank}"
        try:
            metadata = safe_dcp.read_metadata(path)  # never plain pickle: see pretrain/safe_dcp.py
            if not _holds(metadata, rng_key):
                del state[rng_key]
            restore_ema = self.ema is not None and _holds(metadata, "ema")
            if self.ema is not None and not restore_ema:
                del state["ema"]
            safe_dcp.load(state, path, no_dist=not dist.is_initialized(), metadata=metadata)
        except (Exception, CheckpointException) as e:  # the latter is a BaseException
            others = [s for s in complete_steps(self.root) if s != step]
            hint = (
                "remove it to resume from an earlier one, or set checkpoint.load_step "
                f"(other complete steps: {others or 'none'})"
            )
            if isinstance(e, safe_dcp.CheckpointReadError):
                raise safe_dcp.CheckpointReadError(f"{e}; {hint}") from e
            cause = safe_dcp.first_failure(e)  # DCP wraps per-rank errors
            raise RuntimeError(
                f"checkpoint {path} could not be loaded ({type(cause).__name__}: {cause}); {hint}"
            ) from e
        for part in self.parts:
            set_model_state_dict(part, state["model"], options=StateDictOptions(strict=False))
        opts = StateDictOptions(flatten_optimizer_state_dict=True, strict=False)
        for part, opt in zip(self.parts, self.optimizers, strict=True):
            set_optimizer_state_dict(part, opt, state["optim"], options=opts)
        train = state["train"]
        for sched in self.schedulers:
            sched.load_state_dict(train["scheduler"])
        self.loader.load_state_dict(train["loader"])
        saved_world = train.get("world_size")
        if rng_key in state and saved_world == self.world_size:
            set_rng_state(state[rng_key])
        if self.rank == 0:
            print(f"checkpoint: resumed from {path} (step {train['step']})", flush=True)
        if self.ema is not None and not restore_ema:  # restored in place by DCP otherwise
            self.ema.reset()
            if self.rank == 0:
                print(f"checkpoint: {path} holds no EMA of the weights; it starts from them", flush=True)

    def load_model_only(self, path: str) -> None:
        """Initial weights from another run's checkpoint (or an imported HF model): model only."""
        if not (Path(path) / METADATA).is_file():
            raise FileNotFoundError(f"checkpoint.initial_load_path={path} is not a complete DCP checkpoint")
        state = {"model": self._model_state()}
        try:
            safe_dcp.load(state, path, no_dist=not dist.is_initialized())
        except safe_dcp.CheckpointReadError as e:
            raise safe_dcp.CheckpointReadError(f"checkpoint.initial_load_path={path}: {e}") from e
        for part in self.parts:
            set_model_state_dict(part, state["model"], options=StateDictOptions(strict=False))
        if self.ema is not None:
            self.ema.reset()
        if self.rank == 0:
            print(f"checkpoint: initial weights from {path}", flush=True)

    def close(self) -> None:
        self.wait()
        if self._stager is not None:
            self._stager.close()
            self._stager = None
        if self._group is not None:
            dist.destroy_process_group(self._group)
            self._group = None
