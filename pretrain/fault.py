"""What the trainer does when things go wrong: exit codes, preemption signals, hangs, loss spikes.

Exit codes (also written with the reason to `run.dir/exit.json` by rank 0, since torchrun reports
only its own status to the launcher):

- 0  finished the configured steps
- 1  an error during training (a crash); the last complete checkpoint is intact
- 2  `EXIT_CONFIG`: a bad config, layout, data set or resume, found before anything was built
- 3  `EXIT_PREEMPTED`: SIGTERM or SIGUSR1 arrived; with checkpoint.enabled a checkpoint of the current
     step was saved, so requeueing the same command resumes (Slurm: `#SBATCH --signal=USR1@120 --requeue`)
- 4  `EXIT_NONFINITE`: loss or gradient norm was NaN/Inf more often than allowed; nothing of the
     bad steps was saved, the latest checkpoint is the last good state
- 5  `EXIT_HANG`: a step took longer than the watchdog allows; every thread's stack was dumped to
     stderr first (all ranks of a hung collective fire together)
"""

from __future__ import annotations

import faulthandler
import json
import math
import os
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path

import torch
import torch.distributed as dist

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_PREEMPTED, EXIT_NONFINITE, EXIT_HANG = 0, 1, 2, 3, 4, 5


class TrainingStopped(SystemExit):
    """Raised to end training with one of the exit codes above."""

    def __init__(self, code: int, reason: str, step: int):
        super().__init__(code)
        self.reason, self.step = reason, step

    def __str__(self) -> str:
        return f"exit {self.code}: {self.reason}"


def write_exit_record(run_dir: Path, code: int, reason: str, step: int) -> None:
    """`run.dir/exit.json`: why the last run of this directory ended (tmp + rename)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "exit.json.tmp"
    tmp.write_text(json.dumps({"code": code, "reason": reason, "step": step, "time": time.time()}) + "\n")
    tmp.replace(run_dir / "exit.json")


class StopSignals:
    """Records SIGTERM/SIGUSR1 so the loop can stop at a step boundary with a checkpoint.

    The handler only sets a flag; `requested()` agrees on it across ranks (MAX all-reduce), since
    a signal may reach some ranks a moment before the others.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signum

    def requested(self) -> int:
        """The signal any rank received (agreed by all ranks), or 0."""
        flag = torch.tensor(float(self.received or 0))
        if dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Watchdog:
    """Kills the process (exit 5) with every thread's stack when no step finishes in time."""

    def __init__(self, first_timeout_s: float, timeout_s: float, rank: int):
        self.first_timeout_s, self.timeout_s, self.rank = first_timeout_s, timeout_s, rank
        self._deadline = time.monotonic() + first_timeout_s if first_timeout_s > 0 else math.inf
        self._step = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="andes-watchdog", daemon=True)
        if first_timeout_s > 0 or timeout_s > 0:
            self._thread.start()

    def beat(self, step: int) -> None:
        """A step finished: the next one has `timeout_s` (set the process-group timeout to match)."""
        self._step = step
        self._deadline = time.monotonic() + self.timeout_s if self.timeout_s > 0 else math.inf

    def pause(self, seconds: float) -> None:
        """Allow `seconds` more for something slow but expected (a synchronous checkpoint)."""
        self._deadline = max(self._deadline, time.monotonic() + seconds)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            if time.monotonic() > self._deadline:
                print(
                    f"[rank {self.rank}] watchdog: no step finished within the timeout after step "
                    f"{self._step}; stacks of all threads follow, exiting with {EXIT_HANG}",
                    file=sys.stderr,
                    flush=True,
                )
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                sys.stderr.flush()
                os._exit(EXIT_HANG)

    def close(self) -> None:
        self._stop.set()


def shorten_pg_timeout(timeout_s: float) -> None:
    """After the first step (compile, first pipeline shapes), collectives get the step timeout."""
    if timeout_s > 0 and dist.is_initialized():
        from datetime import timedelta

        from torch.distributed.distributed_c10d import _set_pg_timeout

        _set_pg_timeout(timedelta(seconds=timeout_s))


class SpikeDetector:
    """Loss spikes as z-scores against a window of recent losses (as OLMo's trainer does).

    A loss more than `zscore` standard deviations above the window mean is a spike; spikes do not
    enter the window, so one bad step does not hide the next.
    """

    def __init__(self, window: int, zscore: float, min_history: int = 20):
        self.zscore = zscore
        self.min_history = min(min_history, window)
        self.history: deque[float] = deque(maxlen=window)

    def update(self, loss: float) -> bool:
        if self.zscore <= 0:
            return False
        if len(self.history) >= self.min_history:
            mean = sum(self.history) / len(self.history)
            std = math.sqrt(sum((x - mean) ** 2 for x in self.history) / len(self.history))
            if loss > mean + self.zscore * max(std, 1e-6):
                return True
        self.history.append(loss)
        return False


class StepHooks:
    """Points in the step where tests inject faults; the loop calls them and knows nothing more."""

    def before_step(self, step: int) -> None:
        """Called before the step's batch is read."""

    def after_backward(self, step: int, params: list[torch.Tensor]) -> None:
        """Called once gradients exist, before they are clipped and applied."""


class FaultInjector(StepHooks):
    """`debug.*`: a NaN gradient or a hang on one rank at one step, for the failure-handling tests."""

    def __init__(self, debug, rank: int):
        self.debug, self.rank = debug, rank

    def before_step(self, step: int) -> None:
        if self.debug.hang_at_step == step and self.rank == self.debug.hang_rank:
            print(f"[rank {self.rank}] debug.hang_at_step={step}: hanging", flush=True)
            threading.Event().wait()

    def after_backward(self, step: int, params: list[torch.Tensor]) -> None:
        if self.debug.nan_at_step == step and self.rank == self.debug.nan_rank:
            next(q for q in params if q.grad is not None).grad.fill_(float("nan"))


def step_hooks(debug, rank: int) -> StepHooks:
    """The fault injector when a `debug.*` fault is configured, else hooks that do nothing."""
    if debug.nan_at_step is None and debug.hang_at_step is None:
        return StepHooks()
    return FaultInjector(debug, rank)
