"""Ray executor (`--executor ray`): each unfinished shard (unit) of a stage becomes one Ray task.

The contract is the local executor's (executors/local.py): a shard with a completion marker is
skipped, so a re-run resumes; every other shard runs the same picklable `ShardTask` in a Ray worker,
which writes the same bytes and marker a local worker would, and the driver merges the returned
stats as `run_local` does. Ray retries a task whose worker died (kill -9, out of memory, a lost node)
or that raised, up to `max_retries` times; a shard that still fails is reported by name once the
tasks already running have finished, so every finished shard is kept. Bad input (`ShardError`) is
not retried: it fails the run or, with skip_bad, is skipped, as locally.

A worker sets up (loads the models of) a stage's task once and keeps it for that stage's next
shards. Workers must see the driver's paths: the working directory is the driver's where it exists
on the worker, and input and output must be on a filesystem every node mounts.
`ray` is an optional dependency (`pip install 'andes[ray]'`), imported only when used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_pipeline.config import param
from data_pipeline.executors.local import ExecutorError, RunResult, ShardTask, finish, progress_bars, resume
from data_pipeline.shard import ShardError, ShardStats

INSTALL_HINT = "pip install 'andes[ray]'"
# Tasks submitted per slot the cluster has free: every slot stays busy (and an autoscaler sees the
# demand) while a failed shard still stops the run before the whole stage was sent.
TASKS_PER_SLOT = 2
CANCEL_GRACE_SECONDS = 60.0  # after Ctrl-C, how long running tasks get to delete their partial output

_started_here = {"any": False, "local": False}  # this process called ray.init (a local cluster?)


def import_ray() -> Any:
    """The `ray` module, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"--executor ray needs the ray package: {INSTALL_HINT}") from e
    return ray


@dataclasses.dataclass(frozen=True)
class RayExecutor:
    """`--executor ray`: which cluster, and what Ray reserves for each task."""

    address: str | None = param(
        None,
        "Ray cluster to join, e.g. auto or ray://head:10001 "
        "(default: $RAY_ADDRESS, else a local cluster with --workers CPUs)",
    )
    cpus_per_task: float = param(1.0, "CPUs Ray reserves for each task", bounds="(0, inf)")
    memory_per_task: int | None = param(None, "memory Ray reserves for each task, e.g. 4G (default: none)")
    gpus_per_task: float = param(
        0.0, "GPUs for each task (encoders: semantic dedup, embedding classify, annotate)", bounds="[0, inf)"
    )
    max_retries: int = param(3, "retries of a task that raised or whose worker died", bounds="[0, inf)")

    def run(
        self, task: ShardTask, shards: Sequence[Path], *, workers: int, skip_bad: bool, progress: bool
    ) -> RunResult:
        return run_ray(task, shards, self, workers=workers, skip_bad=skip_bad, progress=progress)

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run `fn` as one Ray task (a whole-directory job: pack, train-tokenizer); its result."""
        ray = connect(self, max(1, math.ceil(self.cpus_per_task)))
        remote = ray.remote(_call).options(**self.task_options())
        ref = remote.remote(os.getcwd(), fn, args, kwargs)
        try:
            _wait(ray, ref)
            return ray.get(ref)
        except ray.exceptions.RayError as e:
            name = getattr(fn, "__name__", str(fn))
            raise ExecutorError(failure_message(name, e, self.max_retries)) from None

    def task_options(self) -> dict[str, Any]:
        """`ray.remote(...).options()` of every task: resources and retries."""
        options = {
            "num_cpus": self.cpus_per_task,
            "num_gpus": self.gpus_per_task,
            "max_retries": self.max_retries,
            "retry_exceptions": True,
        }
        if self.memory_per_task is not None:
            options["memory"] = self.memory_per_task
        return options


def connect(executor: RayExecutor, local_cpus: int) -> Any:
    """Join the cluster (`address`, else $RAY_ADDRESS) or start a local one with `local_cpus` CPUs."""
    ray = import_ray()
    if not ray.is_initialized():
        address = executor.address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=local_cpus, include_dashboard=False, logging_level=logging.WARNING)
        _started_here.update(any=True, local=not address)
    if _started_here["local"]:
        _check_fits(ray, executor)
    return ray


def _check_fits(ray: Any, executor: RayExecutor) -> None:
    """On a local cluster (no autoscaler), a task that needs more than it has would wait forever."""
    total = ray.cluster_resources()
    needs = {"CPU": executor.cpus_per_task, "GPU": executor.gpus_per_task}
    needs["memory"] = executor.memory_per_task or 0
    for name, need in needs.items():
        if need > total.get(name, 0):
            raise ValueError(
                f"each Ray task needs {need:g} {name} but the local Ray cluster has {total.get(name, 0):g} "
                "(its CPUs are --workers); lower --ray-*-per-task or join a cluster with --ray-address"
            )


def shutdown() -> None:
    """Leave the cluster this process joined (stopping it if this process started it locally)."""
    if _started_here["any"]:
        import ray

        ray.shutdown()
        _started_here.update(any=False, local=False)


# ---- in a Ray worker -------------------------------------------------------------------------------

_ready: dict[str, ShardTask] = {}  # the set-up task of the stage this worker process last ran


def _enter(cwd: str) -> None:
    """Run in the driver's working directory (relative paths), where this node has it."""
    if os.path.isdir(cwd):
        os.chdir(cwd)


def _process_shard(key: str, boxed: list, cwd: str, shard: Path) -> tuple[str, Any]:
    """One shard: ("done", stats) or ("bad", reason); any other error raises, and Ray retries it."""
    _enter(cwd)
    if key not in _ready:
        import ray

        _ready.clear()  # the previous stage's models
        task = ray.get(boxed[0])  # boxed: an ObjectRef in a list is passed as is, fetched once here
        task.setup()
        _ready[key] = task
    try:
        stats = _ready[key](shard, should_stop=lambda: False, progress=lambda n: None)
    except ShardError as e:
        return "bad", str(e)
    return "done", stats.to_json()


def _call(cwd: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    _enter(cwd)
    return fn(*args, **kwargs)


# ---- in the driver ---------------------------------------------------------------------------------


def failure_message(what: str, error: Exception, retries: int) -> str:
    """One line naming what failed and why (then the task's traceback, where it raised)."""
    ray = import_ray()
    head = f"{what} failed (tried {retries + 1} times, --ray-max-retries {retries})"
    if isinstance(error, ray.exceptions.RayTaskError):
        cause = error.cause
        return f"{head}: {type(cause).__name__}: {cause}\n{error}"
    if isinstance(error, ray.exceptions.WorkerCrashedError):
        return f"{head}: its worker died (killed, out of memory or crashed)"
    return f"{head}: {str(error).strip().splitlines()[0]}"


@contextlib.contextmanager
def _sigterm_flag() -> Iterator[dict[str, bool]]:
    """A flag that SIGTERM sets, for a loop to poll: raising in the handler could cut a Ray call off."""
    stop = {"flag": False}
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.update(flag=True))
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait(ray: Any, ref: Any) -> None:
    """Wait for one task; on Ctrl-C or SIGTERM cancel it, let it clean up, then raise KeyboardInterrupt."""
    with _sigterm_flag() as stop:
        try:
            while not stop["flag"] and not ray.wait([ref], timeout=0.5)[0]:
                pass
        except KeyboardInterrupt:
            stop["flag"] = True
    if stop["flag"]:
        cancel(ray, [ref])
        raise KeyboardInterrupt


def cancel(ray: Any, refs: list) -> None:
    """Stop tasks: interrupted ones delete their partial output; any that ignore it are killed."""
    for ref in refs:
        ray.cancel(ref)
    _, stuck = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_SECONDS)
    for ref in stuck:
        ray.cancel(ref, force=True)


class _Stage:
    """Driver side of one stage: submits shards a window at a time and records what comes back."""

    def __init__(self, ray: Any, executor: RayExecutor, task: ShardTask, skip_bad: bool, result: RunResult):
        self.ray, self.executor, self.skip_bad, self.result = ray, executor, skip_bad, result
        self.remote = ray.remote(_process_shard).options(**executor.task_options())
        self.args = (uuid.uuid4().hex, [ray.put(task)], os.getcwd())
        self.running: dict[Any, Path] = {}
        self.errors: list[str] = []

    def window(self) -> int:
        """Tasks to keep submitted: TASKS_PER_SLOT per task the cluster can run at once (it may grow)."""
        total = self.ray.cluster_resources()
        slots = total.get("CPU", 0) / self.executor.cpus_per_task
        if self.executor.gpus_per_task:
            slots = min(slots, total.get("GPU", 0) / self.executor.gpus_per_task)
        return TASKS_PER_SLOT * max(1, int(slots))

    def run(self, pending: Sequence[Path], shard_bar: tqdm, doc_bar: tqdm) -> None:
        todo = deque(pending)
        try:
            with _sigterm_flag() as stop:
                while self.running or (todo and not self.halted()):
                    if todo and not self.halted():
                        for _ in range(min(len(todo), self.window() - len(self.running))):
                            shard = todo.popleft()
                            self.running[self.remote.remote(*self.args, shard)] = shard
                    ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=0.5)
                    if ready:  # and whatever else is done by now
                        ready, _ = self.ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
                    for ref in ready:
                        self.collect(ref, self.running.pop(ref), shard_bar, doc_bar)
                    if stop["flag"]:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            cancel(self.ray, list(self.running))
            raise
        if self.errors:
            raise ExecutorError("\n".join([*self.errors, "finished shards are kept; re-run to resume"]))

    def halted(self) -> bool:
        return bool(self.errors) and not self.skip_bad

    def collect(self, ref: Any, shard: Path, shard_bar: tqdm, doc_bar: tqdm) -> None:
        try:
            kind, payload = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:
            self.errors.append(failure_message(f"shard {shard.name}", e, self.executor.max_retries))
            return
        if kind == "done":
            stats = ShardStats.from_json(payload)
            self.result.finished.append(stats)
            doc_bar.update(stats.docs_in)
        elif self.skip_bad:
            self.result.skipped[shard.name] = payload
            tqdm.write(f"skipped {shard}: {payload}", file=sys.stderr)
        else:
            self.errors.append(payload)
            return
        shard_bar.update(1)


def run_ray(
    task: ShardTask,
    shards: Sequence[Path],
    executor: RayExecutor,
    *,
    workers: int,
    skip_bad: bool,
    progress: bool,
) -> RunResult:
    """Process every unfinished shard as a Ray task (a local cluster gets `workers` CPUs); as `run_local`."""
    start = time.perf_counter()
    result, pending = resume(task, shards)
    ray = connect(executor, workers) if pending else None  # first: Ray's start-up lines, then the bars
    shard_bar, doc_bar = progress_bars(len(shards), pending, result.resumed, progress)
    try:
        if pending:
            _Stage(ray, executor, task, skip_bad, result).run(pending, shard_bar, doc_bar)
    finally:
        shard_bar.close()
        doc_bar.close()
    return finish(result, shards, start)
