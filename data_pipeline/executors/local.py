"""Local executor: worker processes pull unfinished shards until none are left, with progress bars.

Finished shards (those with a completion marker) are skipped, so re-running a command resumes it.
Ctrl-C or SIGTERM sets a shared stop flag: workers abandon their current shard (deleting its partial
output) and exit; finished shards stay finished. A worker that dies (kill -9, OOM) leaves at worst
`*.tmp` files, which are never read as output and are removed when that shard is processed again.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from data_pipeline.io import open_parquet
from data_pipeline.shard import Interrupted, ShardError, ShardStats, read_marker


class ShardTask(Protocol):
    """What executors run: a picklable callable processing one shard into its output dir."""

    out_dir: Path

    def setup(self) -> None: ...

    def __call__(
        self, shard: Path, should_stop: Callable[[], bool], progress: Callable[[int], None]
    ) -> ShardStats: ...


class ExecutorError(RuntimeError):
    """One or more shards failed; finished shards are kept and a re-run resumes."""


@dataclass
class RunResult:
    """Stats of every finished shard (this run's and earlier runs'), plus what was skipped."""

    finished: list[ShardStats] = field(default_factory=list)
    resumed: int = 0  # shards already finished before this run
    skipped: dict[str, str] = field(default_factory=dict)  # shard -> reason (--on-bad-input skip)
    wall_seconds: float = 0.0


class Executor(Protocol):
    """How a command's work runs: `LOCAL` (processes here) or `executors.ray.RayExecutor`."""

    def run(
        self, task: ShardTask, shards: Sequence[Path], *, workers: int, skip_bad: bool, progress: bool
    ) -> RunResult:
        """Process every unfinished shard (unit) of one stage; see `run_local`."""
        ...

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run one whole-directory job (pack, train-tokenizer) and return its result."""
        ...


def _count_rows(shards: Sequence[Path]) -> int | None:
    try:
        return sum(open_parquet(s).metadata.num_rows for s in shards)
    except (ValueError, OSError):
        return None  # not Parquet (dedup partitions) or bad: reported when processed


def progress_bars(shards: int, pending: Sequence[Path], resumed: int, show: bool) -> tuple[tqdm, tqdm]:
    """The shards and documents bars every executor shows."""
    # Outside a terminal (Slurm logs, CI) print a line every 30 s instead of redrawing.
    interval = 0.2 if sys.stderr.isatty() else 30.0
    common = {"mininterval": interval, "disable": not show, "dynamic_ncols": True}
    docs = _count_rows(pending) if show else None
    shard_bar = tqdm(total=shards, initial=resumed, desc="shards", unit="shard", **common)
    doc_bar = tqdm(total=docs, desc="documents", unit="doc", unit_scale=True, **common)
    return shard_bar, doc_bar


def resume(task: ShardTask, shards: Sequence[Path]) -> tuple[RunResult, list[Path]]:
    """The stats of the shards finished earlier (they have a marker) and the shards still to do."""
    result = RunResult()
    pending: list[Path] = []
    for shard in shards:
        done = read_marker(task.out_dir, shard)
        if done is not None:
            result.finished.append(done)
            result.resumed += 1
        else:
            pending.append(shard)
    return result, pending


def finish(result: RunResult, shards: Sequence[Path], start: float) -> RunResult:
    """Put the finished stats in input order (as every executor reports them) and time the run."""
    order = {s.name: i for i, s in enumerate(shards)}
    result.finished.sort(key=lambda s: order.get(s.shard, len(order)))
    result.wall_seconds = time.perf_counter() - start
    return result


def run_local(
    task: ShardTask,
    shards: Sequence[Path],
    *,
    workers: int = 1,
    skip_bad: bool = False,
    progress: bool = True,
) -> RunResult:
    """Process every unfinished shard with `workers` processes (1 = in this process)."""
    start = time.perf_counter()
    result, pending = resume(task, shards)
    shard_bar, doc_bar = progress_bars(len(shards), pending, result.resumed, progress)
    try:
        if pending:
            runner = _run_inline if workers == 1 or len(pending) == 1 else _run_processes
            runner(task, pending, min(workers, len(pending)), skip_bad, result, shard_bar, doc_bar)
    finally:
        shard_bar.close()
        doc_bar.close()
    return finish(result, shards, start)


@dataclass(frozen=True)
class LocalExecutor:
    """`--executor local`: shards run in worker processes of this command, whole jobs in it."""

    def run(
        self, task: ShardTask, shards: Sequence[Path], *, workers: int, skip_bad: bool, progress: bool
    ) -> RunResult:
        return run_local(task, shards, workers=workers, skip_bad=skip_bad, progress=progress)

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


LOCAL = LocalExecutor()


def _run_inline(task, pending, _workers, skip_bad, result, shard_bar, doc_bar) -> None:
    stop = {"flag": False}

    def on_term(signum, frame):
        stop["flag"] = True

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        task.setup()
        for shard in pending:
            try:
                stats = task(shard, should_stop=lambda: stop["flag"], progress=doc_bar.update)
            except ShardError as e:
                if not skip_bad:
                    raise
                result.skipped[shard.name] = str(e)
                tqdm.write(f"skipped {shard}: {e}", file=sys.stderr)
            else:
                result.finished.append(stats)
            shard_bar.update(1)
    finally:
        signal.signal(signal.SIGTERM, previous)


_TERMINATED = False  # set by a worker's SIGTERM handler
STOP_GRACE_SECONDS = 60.0  # after a stop, how long workers get to abandon their shard before being killed


def _on_worker_term(signum, frame) -> None:
    # Only a plain flag: anything taking a lock could deadlock with the code it interrupted.
    global _TERMINATED
    _TERMINATED = True


def _worker(rank: int, task: ShardTask, conn, stop, skip_bad: bool) -> None:
    """Process the shards the parent sends over `conn` until it sends None or a stop is raised.

    Each worker talks to the parent over its own pipe and the stop flag is lock-free shared memory,
    so a worker killed at any instant cannot leave a lock held that another process waits on.
    """
    # Ctrl-C reaches the whole process group; only the parent reacts, then raises the stop flag.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_worker_term)

    def should_stop() -> bool:
        return _TERMINATED or bool(stop.value)

    try:
        task.setup()
    except Exception:
        conn.send(("error", None, traceback.format_exc()))
        return
    conn.send(("ready", None, None))
    while True:
        try:
            shard = conn.recv()
        except EOFError:
            return
        if shard is None or should_stop():
            return
        try:
            stats = task(shard, should_stop=should_stop, progress=lambda n: conn.send(("docs", None, n)))
        except Interrupted:
            return
        except ShardError as e:
            conn.send(("bad", shard.name, str(e)))
            continue  # the parent answers with the next shard, or None unless skipping bad shards
        except Exception:
            conn.send(("error", shard.name, traceback.format_exc()))
            return
        conn.send(("done", shard.name, stats.to_json()))


class _Monitor:
    """Parent-side bookkeeping of worker messages: bars, finished stats, errors, who works on what."""

    def __init__(self, result: RunResult, skip_bad: bool, shard_bar: tqdm, doc_bar: tqdm) -> None:
        self.result, self.skip_bad = result, skip_bad
        self.shard_bar, self.doc_bar = shard_bar, doc_bar
        self.current: dict[int, str | None] = {}
        self.errors: list[str] = []

    def handle(self, kind: str, rank: int, shard: str | None, payload: Any) -> bool:
        """Record one message; True when the worker now waits for its next shard."""
        if kind == "docs":
            self.doc_bar.update(payload)
            return False
        self.current[rank] = None
        if kind == "done":
            self.result.finished.append(ShardStats.from_json(payload))
            self.shard_bar.update(1)
        elif kind == "bad":
            if self.skip_bad:
                self.result.skipped[shard] = payload
                tqdm.write(f"skipped {shard}: {payload}", file=sys.stderr)
                self.shard_bar.update(1)
            else:
                self.errors.append(payload)
        elif kind == "error":
            self.errors.append(f"worker {rank}{f' on {shard}' if shard else ''} failed:\n{payload}")
            return False
        return True


def _run_processes(task, pending, workers, skip_bad, result, shard_bar, doc_bar) -> None:
    ctx = mp.get_context("spawn")  # fork would copy Arrow's thread pools and loaded models mid-use
    stop = ctx.RawValue("b", 0)
    todo = deque(pending)
    monitor = _Monitor(result, skip_bad, shard_bar, doc_bar)
    procs: list[mp.Process] = []
    conns: dict[int, Any] = {}  # rank -> parent end of its pipe, until the worker closes it
    dead: set[int] = set()
    signalled = {"flag": False}
    stopped_at: float | None = None

    def on_signal(signum, frame):
        # A flag the loop polls: raising from a handler could cut a pipe read off mid-message.
        signalled["flag"] = True

    def assign(rank: int) -> None:
        halted = stop.value or (monitor.errors and not skip_bad)
        shard = todo.popleft() if todo and not halted else None
        monitor.current[rank] = shard.name if shard is not None else None
        with contextlib.suppress(OSError):  # a gone worker's exit code is reported below
            conns[rank].send(shard)

    def receive(rank: int) -> None:
        try:
            message = conns[rank].recv()
        except (EOFError, OSError):  # closed, or cut off mid-message by a kill
            del conns[rank]
            return
        if monitor.handle(message[0], rank, message[1], message[2]):
            assign(rank)

    # Children inherit an ignored signal (not a handler), so they start immune until their own
    # handlers are in place; a Ctrl-C during their imports would otherwise print tracebacks.
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for rank in range(workers):
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(rank, task, child_end, stop, skip_bad))
            p.start()
            child_end.close()  # so the parent sees EOF once the worker exits
            procs.append(p)
            conns[rank] = parent_end
        for sig in previous:
            signal.signal(sig, on_signal)
        while conns or any(p.is_alive() for p in procs):
            ready = mp.connection.wait(list(conns.values()), timeout=0.2) if conns else time.sleep(0.2)
            for rank in [r for r, c in list(conns.items()) if c in (ready or [])]:
                receive(rank)
            for rank, p in enumerate(procs):
                if p.exitcode not in (0, None) and rank not in dead:
                    dead.add(rank)
                    monitor.errors.append(
                        f"worker {rank} died (exit code {p.exitcode}) while processing "
                        f"{monitor.current.get(rank) or 'no shard'}; re-run the command to resume"
                    )
            if signalled["flag"] or (monitor.errors and not skip_bad):
                stop.value = 1
            if stop.value and stopped_at is None:
                stopped_at = time.monotonic()
            if stopped_at is not None and time.monotonic() - stopped_at > STOP_GRACE_SECONDS:
                break  # a worker ignores the stop (stuck in native code): kill it below
    finally:
        for p in procs:
            p.join(timeout=0 if stopped_at is None else 5)
            if p.is_alive():
                p.kill()
                p.join()
        for conn in conns.values():
            conn.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signalled["flag"]:
        raise KeyboardInterrupt
    if monitor.errors:
        raise ExecutorError("\n".join(monitor.errors))
