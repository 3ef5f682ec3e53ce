"""Submit a training run to Slurm: `python launch/submit.py [--dry-run] key=value ...`.

The overrides are the trainer's own (Hydra, `configs/train.yaml`) plus `slurm.*` for the
allocation (`pretrain/job_config.py`, SlurmConfig). Everything is checked before anything is
submitted: the parallel layout against nodes x processes per node and the model, the run
directory (one per job, kept across requeues, on a path every node sees), the partition and
account, and that `sbatch` exists. The job script is `launch/train.sbatch` with its fields filled;
`--dry-run` prints it instead of submitting.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pretrain import preflight  # noqa: E402
from pretrain.job_config import TrainConfig, compose_config  # noqa: E402

TEMPLATE = REPO / "launch" / "train.sbatch"
NODE_LOCAL = ("/tmp", "/dev/shm", "/var/tmp", "/run")
"""Path prefixes that exist separately on every node: no place for a multi-node run directory."""


class SubmitError(ValueError):
    """A problem found before submitting (the message names the option)."""


def processes_per_node(cfg: TrainConfig) -> int:
    s = cfg.slurm
    if s.nproc_per_node is not None:
        return s.nproc_per_node
    return s.gpus_per_node if s.gpus_per_node > 0 else 1


def check_layout(cfg: TrainConfig, overrides: list[str]) -> int:
    """World size from the allocation, checked against the parallel degrees and the model."""
    s = cfg.slurm
    nproc = processes_per_node(cfg)  # slurm.* ranges are checked with the config
    if s.gpus_per_node > 0 and nproc > s.gpus_per_node:
        raise SubmitError(
            f"slurm.nproc_per_node={nproc} exceeds slurm.gpus_per_node={s.gpus_per_node} "
            "(one process per GPU)"
        )
    world = s.nodes * nproc
    try:
        preflight.check_layout(cfg, world)
    except ValueError as e:
        raise SubmitError(f"{e} (world size {world} = slurm.nodes x processes per node)") from e
    return world


def run_dir(cfg: TrainConfig, overrides: list[str]) -> Path:
    """The run directory, absolute: as given, or a new `runs/<job>-<time>` for this submission."""
    given = any(o.startswith("run.dir=") for o in overrides)
    path = (
        Path(cfg.run.dir)
        if given
        else Path("runs") / (f"{cfg.slurm.job_name}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    )
    path = path if path.is_absolute() else Path.cwd() / path
    if cfg.slurm.nodes > 1 and str(path).startswith(NODE_LOCAL):
        raise SubmitError(
            f"run.dir={path} is node-local ({', '.join(NODE_LOCAL)}) but the job spans "
            f"{cfg.slurm.nodes} nodes: use a shared filesystem"
        )
    return path


def _slurm_query(cmd: list[str], *, required: bool = False) -> str | None:
    """Output of a Slurm query command; None where it does not exist (or fails and is optional)."""
    if shutil.which(cmd[0]) is None:
        return None
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        if required:
            raise SubmitError(
                f"`{' '.join(cmd)}` failed, is the Slurm controller reachable? {proc.stderr.strip()}"
            )
        return None
    return proc.stdout


def check_cluster(cfg: TrainConfig, *, dry_run: bool) -> None:
    """sbatch exists; the partition exists (or there is a default one); the account is known.

    Skipped for a dry run, which must work away from the cluster.
    """
    s = cfg.slurm
    if dry_run:
        return
    if shutil.which("sbatch") is None:
        raise SubmitError("sbatch not found on PATH: run this on a Slurm login node (or use --dry-run)")
    partitions = _slurm_query(["sinfo", "-h", "-o", "%P"], required=True)
    if partitions is not None:
        names = [p.strip() for p in partitions.split()]
        if s.partition is not None and s.partition not in {n.rstrip("*") for n in names}:
            raise SubmitError(f"slurm.partition={s.partition!r} is not a partition here (sinfo: {names})")
        if s.partition is None and names and not any(n.endswith("*") for n in names):
            raise SubmitError(f"this cluster has no default partition: set slurm.partition (one of {names})")
    if s.account is not None:
        accounts = _slurm_query(["sacctmgr", "-n", "-P", "show", "account", "format=account"])
        if accounts and s.account not in accounts.split():  # empty: no accounting database to ask
            raise SubmitError(f"slurm.account={s.account!r} is not a Slurm account here")


PATH_KEYS = ("data.path", "validation.path", "data.tokenizer", "checkpoint.initial_load_path")


def _absolute(override: str) -> str:
    """Path-valued overrides made absolute: the job runs from the repository, not from here."""
    key, _, value = override.partition("=")
    if key.lstrip("+") in PATH_KEYS and value not in ("", "null") and not Path(value).is_absolute():
        return f"{key}={Path.cwd() / value}"
    return override


def render(cfg: TrainConfig, overrides: list[str], rundir: Path) -> str:
    """launch/train.sbatch with its fields filled in."""
    s = cfg.slurm
    extra = []
    if s.gpus_per_node > 0:
        extra.append(f"#SBATCH --gpus-per-node={s.gpus_per_node}")
    if s.cpus_per_task:
        extra.append(f"#SBATCH --cpus-per-task={s.cpus_per_task}")
    if s.mem is not None:
        extra.append(f"#SBATCH --mem={s.mem}")
    for key, value in (("partition", s.partition), ("account", s.account), ("qos", s.qos)):
        if value is not None:
            extra.append(f"#SBATCH --{key}={value}")
    if s.requeue:
        extra.append("#SBATCH --requeue")
    extra += [f"#SBATCH {a}" for a in s.extra_sbatch]
    # The trainer gets the user's overrides plus the fixed run dir and checkpointing (a requeued job
    # must resume, not start over).
    train_args = [_absolute(o) for o in overrides if not o.startswith(("run.dir=", "checkpoint.enabled="))]
    train_args += [f"run.dir={rundir}", "checkpoint.enabled=true"]
    if any(o == "checkpoint.enabled=false" for o in overrides):
        train_args[-1] = "checkpoint.enabled=false"
    fields = {
        "JOB_NAME": s.job_name,
        "NODES": str(s.nodes),
        "TIME": s.time,
        "SIGNAL_BEFORE_S": str(s.signal_before_s),
        "RUN_DIR": shlex.quote(str(rundir)),
        "SBATCH_EXTRA": "\n".join(extra),
        "WORKDIR": shlex.quote(str(REPO)),
        "BIN_DIR": shlex.quote(str(Path(sys.executable).parent)),
        "ENV": "\n".join(f"export {k}={shlex.quote(str(v))}" for k, v in s.env.items()),
        "RDZV_PORT": str(s.rdzv_port),
        "NPROC_PER_NODE": str(processes_per_node(cfg)),
        "OVERRIDES": " ".join(shlex.quote(a) for a in train_args),
        "REQUEUE": "1" if s.requeue else "0",
    }
    text = TEMPLATE.read_text()
    for key, value in fields.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def submit(overrides: list[str], *, dry_run: bool = False) -> tuple[str, int | None]:
    """(script, job id); the job id is None for a dry run."""
    try:
        cfg = compose_config(overrides)
    except ValueError as e:
        raise SubmitError(str(e)) from e
    if not any(o.startswith("data.path=") for o in overrides):
        raise SubmitError("data.path=DIR is required (the packed training shards)")
    check_layout(cfg, overrides)
    rundir = run_dir(cfg, overrides)
    check_cluster(cfg, dry_run=dry_run)
    script = render(cfg, overrides, rundir)
    if dry_run:
        return script, None
    rundir.mkdir(parents=True, exist_ok=True)
    (rundir / "job.sbatch").write_text(script)
    proc = subprocess.run(
        ["sbatch", "--parsable", str(rundir / "job.sbatch")], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise SubmitError(f"sbatch refused the job: {proc.stderr.strip()}")
    job = int(proc.stdout.strip().split(";")[0])
    return script, job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launch/submit.py", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="trainer and slurm.* config overrides, key=value")
    parser.add_argument("--dry-run", action="store_true", help="print the job script, submit nothing")
    ns = parser.parse_intermixed_args(argv)
    try:
        script, job = submit(ns.overrides, dry_run=ns.dry_run)
    except SubmitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if job is None:
        print(script)
    else:
        rundir = next(line.split("=", 1)[1] for line in script.splitlines() if line.startswith("run_dir="))
        print(f"submitted job {job}; log: {rundir}/slurm-{job}.out; metrics: {rundir}/metrics.jsonl")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
