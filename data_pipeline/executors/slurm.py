"""Slurm executor: a CLI command becomes job arrays chained with `afterok`, then a stats job.

`andes-data filter|dedup|classify ... --executor slurm` submits one array whose task i runs the same
command with `--executor local --rank i --world-size N` (shards[i::N], `executors/local.py`), then
a job that depends on it (`--dependency=afterok`) and runs the command once more on one CPU: every
shard then has its completion marker, so that run only merges the markers into `OUT/stats.json`
and prints the summary to its log, exactly as a local run ends. Multi-stage commands (dedup's
hash -> buckets -> cc-* -> components -> remove, the stages of `andes-data run RECIPE`) get one array per
stage, each depending on the one before; whole-directory stages (train_tokenizer, pack) are single
jobs. The submitting command checks the setup, submits, prints the job ids and returns.

Nothing is tracked by Slurm job ids: a task skips shards that have a marker, so re-submitting the
same command after a failure redoes only the unfinished work (`--only-missing` also leaves out the
array indices whose shards are all finished). Plain `sbatch` is used (no submitit): the scripts
are readable and re-submittable by hand, and `--dry-run` prints them.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Stands for the array task id in a task's argv; rendered as "$SLURM_ARRAY_TASK_ID".
TASK_ID = "$SLURM_ARRAY_TASK_ID"
SLURM_DIR_SUFFIX = ".slurm"  # default --slurm-logs: OUT.slurm/ beside the output directory
CHECK_TIMEOUT_S = 20  # sinfo, sacctmgr, scontrol and `sbatch --test-only` before submitting
SHARED_FS_HINT = "compute nodes see their own /tmp; use a directory on a shared filesystem"


class SlurmError(ValueError):
    """A setup or usage problem found before anything was submitted (or a failed submission)."""


@dataclass
class SlurmOptions:
    """The `--executor slurm` options of a command."""

    tasks: int | None = None  # array tasks per stage (at most one per unit)
    shards_per_task: int | None = None  # or: units (shards, partitions) per array task
    array_parallelism: int | None = None  # `%P`: array tasks running at once
    partition: str | None = None
    account: str | None = None
    time: str | None = None
    cpus_per_task: int = 1  # also each task's --workers
    mem: str | None = None
    logs: Path | None = None  # scripts/, logs/ and submissions.jsonl (default OUT.slurm)
    sbatch_args: list[str] = field(default_factory=list)
    job_name: str | None = None
    dry_run: bool = False
    only_missing: bool = False

    def __post_init__(self) -> None:
        for name in ("tasks", "shards_per_task", "array_parallelism", "cpus_per_task"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SlurmError(f"--{name.replace('_', '-')} {value}: must be at least 1")
        if self.tasks is not None and self.shards_per_task is not None:
            raise SlurmError("give --tasks or --shards-per-task, not both")
        for arg in self.sbatch_args:
            if not arg.startswith("-"):
                raise SlurmError(
                    f"--sbatch-arg {arg!r}: expected an sbatch option, e.g. --sbatch-arg=--qos=high"
                )
        for name in ("partition", "account", "time", "mem", "job_name"):
            value = getattr(self, name)
            if value is not None and (not value or any(c.isspace() for c in value)):
                raise SlurmError(f"--{name.replace('_', '-')} {value!r}: must be one word")

    def array_tasks(self, units: int) -> int:
        """How many array tasks share `units` units (shards, partitions, merge tasks)."""
        units = max(1, units)
        if self.tasks is not None:
            return min(self.tasks, units)
        return math.ceil(units / (self.shards_per_task or 1))


@dataclass
class TaskCommand:
    """`python -m data_pipeline COMMAND POSITIONALS OPTIONS`, as every job of a submission runs it."""

    command: str
    positionals: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def argv(self, positionals: Sequence[str] = (), options: Sequence[str] = ()) -> list[str]:
        # Positionals first: `run RECIPE key=value ...` takes no positionals after an option.
        return [self.command, *self.positionals, *positionals, *self.options, *options]


@dataclass
class Job:
    """One sbatch submission: an array (`tasks` > 0) or a single job; each waits for the one before."""

    key: str  # job name suffix ('' for none): hash, 0_filter, stats
    argv: list[str]  # data_pipeline CLI arguments; TASK_ID stands for the array task id
    tasks: int = 0  # array size (the tasks' --world-size); 0: not an array
    indices: list[int] | None = None  # array indices to submit (None: all)
    cpus: int = 1
    threads: int = 1  # OMP_NUM_THREADS of the job
    about: str = ""  # one line for the listing

    @property
    def is_array(self) -> bool:
        return self.tasks > 0

    def array_indices(self) -> list[int]:
        return list(range(self.tasks)) if self.indices is None else list(self.indices)


def compress_indices(indices: Sequence[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8' (sbatch --array syntax)."""
    values = sorted(set(indices))
    if not values:
        raise ValueError("no array indices")
    parts = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ",".join(parts)


def array_spec(job: Job, parallelism: int | None) -> str:
    spec = compress_indices(job.array_indices())
    return f"{spec}%{parallelism}" if parallelism else spec


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def missing_ranks(units: Sequence[Path], world_size: int, finished: Callable[[Path], bool]) -> list[int]:
    """Ranks r whose units[r::world_size] include an unfinished one."""
    return [r for r in range(world_size) if not all(finished(u) for u in units[r::world_size])]


# ---- planning: the jobs of each command ------------------------------------------------------


def _task_options(rank_world: tuple[str, int] | None, workers: int | None) -> list[str]:
    opts = ["--executor", "local"]
    if rank_world is not None:
        opts += ["--rank", rank_world[0], "--world-size", str(rank_world[1])]
    if workers is not None:
        opts += ["--workers", str(workers)]
    return opts


def _stats_job(argv: list[str], about: str) -> Job:
    return Job("stats", argv, cpus=1, about=about)


def sharded_jobs(base: TaskCommand, shards: Sequence[Path], out_dir: Path, opts: SlurmOptions) -> list[Job]:
    """filter / annotate / classify: one array over the shards, then the stats job."""
    from data_pipeline.shard import read_marker

    n = opts.array_tasks(len(shards))
    job = Job(
        "",
        base.argv(options=_task_options((TASK_ID, n), opts.cpus_per_task)),
        tasks=n,
        cpus=opts.cpus_per_task,
        about=f"{_n(len(shards), 'shard')} over {_n(n, 'task')}, task i: shards[i::{n}]",
    )
    if opts.only_missing:
        job.indices = missing_ranks(shards, n, lambda s: read_marker(out_dir, s) is not None)
    stats = _stats_job(
        base.argv(options=_task_options(None, 1)), f"merges the markers into {out_dir / 'stats.json'}"
    )
    return [job, stats]


def _dedup_units(plan, cfg, out_dir: Path, **build) -> list[tuple[str, list[Path], Path | None, bool]]:
    """(stage, units, marker dir, needed) of a dedup run with this plan (`dedup.run.sized_plan`);
    components stages after the round that settled are not needed."""
    from data_pipeline.dedup.run import build_stages, stage_needed

    stages = build_stages(plan, cfg, out_dir, **build)
    return [(s.name, s.units, s.task.out_dir, stage_needed(s)) for s in stages]


def dedup_jobs(
    base: TaskCommand,
    shards: Sequence[Path],
    out_dir: Path,
    cfg,
    opts: SlurmOptions,
    *,
    partitions: int | None,
    rows_per_partition: int,
    batch_rows: int,
    rows_per_file: int | None,
    write_dropped: bool,
    skip_bad: bool,
    cc_partitions: int | None,
) -> list[Job]:
    """dedup: one array per stage (hash, buckets, cc-* and components or semantic's, remove), then
    the stats job. MinHash's components rounds are submitted up to their planned limit; the rounds
    after the one that settles find nothing to do (`dedup.cc_tasks`)."""
    from data_pipeline.dedup.run import sized_plan, stage_units
    from data_pipeline.guard import DEDUP_WORK_DIR
    from data_pipeline.shard import read_marker

    sizes = (partitions, rows_per_partition, cc_partitions)
    plan = sized_plan(list(shards), cfg, *sizes, out_dir / DEDUP_WORK_DIR)  # a started run's sizes win
    stages = _dedup_units(
        plan,
        cfg,
        out_dir,
        batch_rows=batch_rows,
        rows_per_file=rows_per_file,
        write_dropped=write_dropped,
        skip_bad=skip_bad,
    )
    kinds = {name: kind for name, _, kind in stage_units(cfg, plan)}
    jobs = []
    for name, units, marker_dir, needed in stages:
        if opts.only_missing and not needed:
            continue
        n = opts.array_tasks(len(units))
        kind = kinds.get(name, "unit")
        job = Job(
            name,
            base.argv(options=[*_task_options((TASK_ID, n), opts.cpus_per_task), "--stage", name]),
            tasks=n,
            cpus=opts.cpus_per_task,
            about=f"stage {name}: {_n(len(units), kind)} over {_n(n, 'task')}",
        )
        if opts.only_missing:
            job.indices = missing_ranks(units, n, lambda u, d=marker_dir: read_marker(d, u) is not None)
        jobs.append(job)
    jobs.append(
        _stats_job(
            base.argv(options=_task_options(None, 1)),
            f"writes {out_dir / 'stats.json'} and {out_dir / 'dedup_report.json'}",
        )
    )
    return jobs


def recipe_jobs(base: TaskCommand, recipe: Path, overrides: Sequence[str], opts: SlurmOptions) -> list[Job]:
    """run RECIPE: per stage one array (filter), one per sub-stage (dedup) or one job; then stats.

    Only the first stage's input exists at submission, so later stages are sized for the largest
    input they can get (no stage adds documents): as many shards as the recipe's input and, for a
    dedup stage without `partitions`, the partitions that input would need. Extra components
    rounds are no-ops, and a task whose rank exceeds the actual units has nothing to do.
    """
    from data_pipeline.dedup.run import sized_plan, stage_units
    from data_pipeline.dedup.tasks import DedupConfig
    from data_pipeline.guard import DEDUP_WORK_DIR
    from data_pipeline.io import list_parquet
    from data_pipeline.recipe import load_recipe, parse_stages, plan_recipe

    cfg = load_recipe(recipe, overrides)
    stages = parse_stages(cfg, str(recipe))
    planned = plan_recipe(cfg, stages)
    first = list_parquet(Path(str(cfg.input)))
    task_opts = ["--rank", TASK_ID]
    workers = [f"workers={opts.cpus_per_task}"]
    jobs: list[Job] = []
    for i, p in enumerate(planned):
        st = p.stage
        if st.kind == "filter":
            units = len(first)  # exact for the first stage, an estimate later
            n = opts.array_tasks(units)
            argv = base.argv(workers, ["--stage", str(st.index), *task_opts, "--world-size", str(n)])
            exact = "" if i == 0 else "up to "
            about = f"stage {st.index} filter: {exact}{_n(units, 'shard')} over {_n(n, 'task')}"
            jobs.append(Job(st.dirname, argv, tasks=n, cpus=opts.cpus_per_task, about=about))
        elif st.kind == "dedup":
            params = st.params
            dcfg = DedupConfig.from_options(params)
            # Sized for the recipe's input (an upper bound after the first stage) unless started.
            sizes = (params["partitions"], params["rows_per_partition"], params["cc_partitions"])
            plan = sized_plan(first, dcfg, *sizes, p.output / DEDUP_WORK_DIR)
            for sub, units, kind in stage_units(dcfg, plan):
                n = opts.array_tasks(units)
                spec = f"{st.index}:{sub}"
                argv = base.argv(workers, ["--stage", spec, *task_opts, "--world-size", str(n)])
                about = f"stage {spec}: {'up to ' if i else ''}{_n(units, kind)} over {_n(n, 'task')}"
                jobs.append(Job(f"{st.dirname}-{sub}", argv, tasks=n, cpus=opts.cpus_per_task, about=about))
        else:
            argv = base.argv([f"workers={opts.cpus_per_task}"], ["--stage", str(st.index)])
            about = f"stage {st.index} {st.kind}: one task"
            jobs.append(
                Job(st.dirname, argv, cpus=opts.cpus_per_task, threads=opts.cpus_per_task, about=about)
            )
    jobs.append(_stats_job(base.argv(["workers=1"]), f"re-runs the recipe: merges stats under {cfg.output}"))
    return jobs


def single_jobs(base: TaskCommand, opts: SlurmOptions) -> list[Job]:
    """pack / train-tokenizer: one job on --cpus-per-task CPUs (they read the whole corpus at once)."""
    argv = base.argv(options=["--executor", "local"])
    return [Job("", argv, cpus=opts.cpus_per_task, threads=opts.cpus_per_task, about="one task")]


# ---- scripts -----------------------------------------------------------------------------------


@dataclass
class Submission:
    """Everything needed to render and submit a command's jobs."""

    command: str  # the command line as typed, for the scripts' header
    jobs: list[Job]
    opts: SlurmOptions
    slurm_dir: Path
    prefix: str  # job names are PREFIX-KEY
    workdir: Path = field(default_factory=Path.cwd)
    python: Path = field(default_factory=lambda: Path(sys.executable))

    def name(self, job: Job) -> str:
        return f"{self.prefix}-{job.key}" if job.key else self.prefix

    def script_path(self, job: Job) -> Path:
        return self.slurm_dir / "scripts" / f"{self.name(job)}.sbatch"

    def log_pattern(self, job: Job) -> Path:
        return self.slurm_dir / "logs" / ("%x-%A_%a.out" if job.is_array else "%x-%j.out")

    def render(self, job: Job, *, dependent: bool) -> str:
        o = self.opts
        lines = ["#!/bin/bash", f"#SBATCH --job-name={self.name(job)}"]
        if job.is_array:
            lines.append(f"#SBATCH --array={array_spec(job, o.array_parallelism)}")
        lines += [
            f"#SBATCH --output={self.log_pattern(job)}",
            "#SBATCH --ntasks=1",
            f"#SBATCH --cpus-per-task={job.cpus}",
        ]
        for flag, value in (("partition", o.partition), ("account", o.account), ("time", o.time)):
            if value:
                lines.append(f"#SBATCH --{flag}={value}")
        if o.mem:
            lines.append(f"#SBATCH --mem={o.mem}")
        if dependent:
            lines.append("#SBATCH --kill-on-invalid-dep=yes")  # a failed stage cancels the rest
        lines += [f"#SBATCH {arg}" for arg in o.sbatch_args]
        cmd = " ".join(f'"{TASK_ID}"' if a == TASK_ID else shlex.quote(a) for a in job.argv)
        which = " task ${SLURM_ARRAY_TASK_ID}" if job.is_array else ""
        lines += [
            f"# Written by: {self.command}",
            f"# {job.about}",
            "set -euo pipefail",
            f"cd {shlex.quote(str(self.workdir))}",
            f'export PATH={shlex.quote(str(self.python.parent))}"${{PATH:+:$PATH}}"',
            f"export OMP_NUM_THREADS={job.threads}",
            "export PYTHONUNBUFFERED=1",
            f'echo "[andes-data] $(date "+%F %T") ${{SLURM_JOB_NAME}} job ${{SLURM_JOB_ID}}{which} '
            'on $(hostname)"',
            f"exec {shlex.quote(str(self.python))} -m data_pipeline {cmd}",
        ]
        return "\n".join(lines) + "\n"

    def to_submit(self) -> list[Job]:
        return [j for j in self.jobs if not j.is_array or j.array_indices()]


# ---- checks and submission ---------------------------------------------------------------------


def _run(cmd: Sequence[str], timeout: float = CHECK_TIMEOUT_S) -> subprocess.CompletedProcess | None:
    """Run a Slurm client command; None when it is missing or hangs (nothing can be checked)."""
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _slurm_config() -> dict[str, str]:
    res = _run(["scontrol", "show", "config"]) if shutil.which("scontrol") else None
    if res is None or res.returncode != 0:
        return {}
    config = {}
    for line in res.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return config


def shared_path_warnings(paths: dict[str, Path]) -> list[str]:
    """A warning naming the paths under /tmp, which compute nodes do not share with this machine."""
    tmp = Path("/tmp")
    under = [
        f"{label} {path}"
        for label, path in paths.items()
        if (resolved := Path(os.path.abspath(path))) == tmp or tmp in resolved.parents
    ]
    return [f"warning: {', '.join(under)}: under /tmp; {SHARED_FS_HINT}"] if under else []


def preflight(sub: Submission) -> None:
    """Refuse to submit what Slurm would reject or what could not run, naming the option."""
    o = sub.opts
    if shutil.which("sbatch") is None:
        raise SlurmError(
            "--executor slurm: sbatch not found on PATH (run on a Slurm login node, load the Slurm "
            "module, or use --dry-run to only print the scripts)"
        )
    if o.partition and shutil.which("sinfo"):
        res = _run(["sinfo", "-h", "-p", o.partition, "-o", "%P"])
        if res is not None and res.returncode == 0 and not res.stdout.strip():
            known = _run(["sinfo", "-h", "-o", "%P"])
            names = (
                known.stdout.replace("*", "").split() if known is not None and known.returncode == 0 else []
            )
            raise SlurmError(
                f"--partition {o.partition}: no such Slurm partition "
                f"(sinfo lists: {', '.join(names) or 'none'})"
            )
    config = _slurm_config()
    accounting = config.get("AccountingStorageType", "") not in ("", "accounting_storage/none")
    if o.account and accounting and shutil.which("sacctmgr"):  # never block on accounting being absent
        res = _run(["sacctmgr", "-n", "-P", "show", "account", o.account, "format=Account"])
        if res is not None and res.returncode == 0 and not res.stdout.strip():
            raise SlurmError(f"--account {o.account}: no such Slurm account (sacctmgr show account)")
    max_array = config.get("MaxArraySize", "")
    if max_array.isdigit():
        for job in sub.to_submit():
            if job.is_array and max(job.array_indices()) >= int(max_array):
                raise SlurmError(
                    f"{sub.name(job)}: {job.tasks} array tasks exceed Slurm's MaxArraySize {max_array}; "
                    "use fewer --tasks or a larger --shards-per-task"
                )
    # Let slurmctld validate everything else (time, mem, account, sbatch args) without submitting.
    with tempfile.TemporaryDirectory(prefix="andes-slurm-") as tmp:
        path = Path(tmp) / "check.sbatch"
        path.write_text(sub.render(sub.to_submit()[0], dependent=False))
        res = _run(["sbatch", "--test-only", str(path)])
    if res is not None and res.returncode != 0:
        message = (res.stderr or res.stdout).strip().replace("sbatch: error: ", "")
        raise SlurmError(f"sbatch --test-only rejects the job ({_options_line(o)}): {message}")


def _options_line(o: SlurmOptions) -> str:
    given = [
        f"--{k.replace('_', '-')} {v}"
        for k, v in (("partition", o.partition), ("account", o.account), ("time", o.time), ("mem", o.mem))
        if v
    ]
    given += [f"--sbatch-arg={a}" for a in o.sbatch_args]
    return ", ".join(given) or "default options"


def _sbatch(script: Path, dependency: str | None) -> str:
    cmd = [
        "sbatch",
        "--parsable",
        *([f"--dependency=afterok:{dependency}"] if dependency else []),
        str(script),
    ]
    res = _run(cmd, timeout=120)
    if res is None:
        raise SlurmError(f"sbatch {script}: did not answer in 120 s")
    if res.returncode != 0:
        raise SlurmError(f"sbatch {script} failed: {(res.stderr or res.stdout).strip()}")
    return res.stdout.strip().splitlines()[-1].split(";")[0]


def submit(sub: Submission, *, out=None, err=None) -> dict[str, str]:
    """Check, write the scripts, submit in order (each job afterok the one before); job ids by name.

    With --dry-run, print the scripts and submit nothing. A failed sbatch cancels the jobs this
    call submitted before it.
    """
    out, err = out or sys.stdout, err or sys.stderr
    jobs = sub.to_submit()
    if sub.opts.dry_run:
        print(f"# {sub.command}\n# dry run: {len(jobs)} jobs, nothing submitted\n", file=out)
        prev = None
        for i, job in enumerate(jobs):
            dep = f"--dependency=afterok:<{prev}> " if prev else ""
            print(f"# ---- job {i + 1}/{len(jobs)}: {sub.name(job)} ({job.about})", file=out)
            print(f"# sbatch --parsable {dep}{sub.script_path(job)}", file=out)
            print(sub.render(job, dependent=prev is not None), file=out)
            prev = sub.name(job)
        return {}
    preflight(sub)
    (sub.slurm_dir / "scripts").mkdir(parents=True, exist_ok=True)
    (sub.slurm_dir / "logs").mkdir(parents=True, exist_ok=True)  # Slurm does not create it
    ids: dict[str, str] = {}
    prev = None
    try:
        for job in jobs:
            path = sub.script_path(job)
            path.write_text(sub.render(job, dependent=prev is not None))
            prev = ids[sub.name(job)] = _sbatch(path, prev)
    except SlurmError:
        if ids and shutil.which("scancel"):
            _run(["scancel", *ids.values()])
            print(f"cancelled the jobs submitted before the failure: {' '.join(ids.values())}", file=err)
        raise
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": sub.command, "jobs": ids}
    with open(sub.slurm_dir / "submissions.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    _print_submitted(sub, jobs, ids, out)
    return ids


def _print_submitted(sub: Submission, jobs: list[Job], ids: dict[str, str], out) -> None:
    width = max(len(sub.name(j)) for j in jobs)
    print(f"submitted {len(jobs)} jobs (each starts when the one before succeeded):", file=out)
    for job in jobs:
        name = sub.name(job)
        what = f"array {array_spec(job, sub.opts.array_parallelism)}" if job.is_array else "job"
        print(f"  {name:<{width}}  {ids[name]:>8}  {what:<16} {job.about}", file=out)
    all_ids = ",".join(ids.values())
    logs = sub.slurm_dir / "logs"
    print(
        f"\nwatch:   squeue -j {all_ids}\n"
        f"logs:    {logs}/<job name>-<job id>_<task>.out (arrays), <job name>-<job id>.out\n"
        f"scripts: {sub.slurm_dir / 'scripts'}\n"
        f"cancel:  scancel {all_ids.replace(',', ' ')}\n"
        "failed tasks: submit the same command again (finished shards are skipped; --only-missing "
        "submits only the unfinished array indices)",
        file=out,
    )
