"""A real single-node Slurm for tests: the session fixture `slurm_cluster`.

Use it from a test module with

    from slurm_cluster import slurm_cluster  # noqa: F401

    def test_x_slurm(slurm_cluster, tmp_path):
        job = slurm_cluster.sbatch("-o", str(tmp_path / "out"), script="#!/bin/bash\\necho hi\\n")
        assert slurm_cluster.wait(job) == "COMPLETED"

The fixture runs `tests/slurm/start_cluster.sh` once per session in a pytest temp dir (Debian's
slurm-wlm + munge are apt-installed when missing; needs root), hands out a `SlurmCluster` and
stops the daemons at the end. When Slurm cannot be installed or started the tests that use it
are skipped with the reason and the daemons' log tail -- never an error.
"""

from __future__ import annotations

import atexit
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent / "slurm"

# States a job (or array task) does not leave by itself. SPECIAL_EXIT is a held requeue.
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)
_FIELD = re.compile(r" (?=[A-Za-z][\w:/]*=)")


def _tail(path: Path, n: int = 30) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return f"---- tail {path} ----\n" + "\n".join(lines[-n:])


def _parse_record(line: str) -> dict[str, str]:
    """One `scontrol show job -o` line as a dict (values with spaces, e.g. Command=, survive)."""
    out: dict[str, str] = {}
    for part in _FIELD.split(line.strip()):
        key, sep, value = part.partition("=")
        if sep:
            out[key] = value
    return out


@dataclass
class SlurmCluster:
    """Client side of a running test cluster: every command runs with `env` (SLURM_CONF set)."""

    dir: Path
    conf: Path
    env: dict[str, str] = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    # ---- commands ---------------------------------------------------------------------------
    def run(self, *cmd: str, check: bool = True, input: str | None = None, cwd=None, timeout: float = 60):
        res = subprocess.run(
            list(cmd),
            env=self.env,
            cwd=cwd or self.dir / "jobs",
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and res.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} exited {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
            )
        return res

    def sbatch(self, *args: str, script: str | Path | None = None, cwd=None) -> int:
        """Submit and return the job id. `script` is a path (Path) or the script text (str, fed on
        stdin); None means `args` hold `--wrap=...` or a script path. Output files default to
        `<cluster dir>/jobs` (the default cwd), never the repository."""
        cmd = ["sbatch", "--parsable", *map(str, args)]
        text = None
        if isinstance(script, Path):
            cmd.append(str(script))
        elif script is not None:
            text = script
        out = self.run(*cmd, input=text, cwd=cwd).stdout.strip()
        return int(out.splitlines()[-1].split(";")[0])

    def scontrol(self, *args: str, check: bool = True) -> str:
        return self.run("scontrol", *map(str, args), check=check).stdout

    def scancel(self, *args: str) -> str:
        return self.run("scancel", *map(str, args)).stdout

    def squeue(self) -> str:
        return self.run("squeue", "-a", "-t", "all", check=False).stdout

    # ---- job state ----------------------------------------------------------------------------
    def jobs(self, job_id: int | str) -> list[dict[str, str]]:
        """`scontrol show job -o ID` records: one per job, one per array task (for an array's
        ID every task, pending ones folded into one record with ArrayTaskId like `2-3%2`)."""
        res = self.run("scontrol", "show", "job", "-o", str(job_id), check=False)
        if res.returncode != 0:
            raise RuntimeError(f"scontrol show job {job_id}: {res.stderr.strip() or res.stdout.strip()}")
        return [_parse_record(line) for line in res.stdout.splitlines() if line.strip()]

    def info(self, job_id: int | str) -> dict[str, str]:
        """The record of one (non-array) job or one array task `ID_TASK`."""
        return self.jobs(job_id)[0]

    def states(self, job_id: int | str) -> dict[str, str]:
        """JobState per job, keyed `JOBID`, or `ARRAYJOBID_TASK` for array tasks."""
        out = {}
        for rec in self.jobs(job_id):
            task = rec.get("ArrayTaskId")
            key = f"{rec['ArrayJobId']}_{task}" if task and task != "N/A" else rec["JobId"]
            out[key] = rec["JobState"]
        return out

    def wait(self, job_id: int | str, timeout: float = 300, poll: float = 0.5) -> str:
        """Block until the job (every task of an array) is in a final state and return it:
        COMPLETED when all tasks completed, else the first other final state in task order.
        Raises TimeoutError with `squeue` and the daemons' log tails."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states(job_id)
            if states and all(s in FINAL_STATES for s in states.values()):
                bad = [s for _, s in sorted(states.items()) if s != "COMPLETED"]
                return bad[0] if bad else "COMPLETED"
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id} not finished after {timeout:.0f} s: {states}\n"
                    f"{self.squeue()}\n{self.log_tail()}"
                )
            time.sleep(poll)

    def wait_for(self, job_id: int | str, pred, timeout: float = 60, poll: float = 0.3) -> dict[str, str]:
        """Poll `info(job_id)` until `pred(record)` holds; returns that record."""
        deadline = time.monotonic() + timeout
        while True:
            rec = self.info(job_id)
            if pred(rec):
                return rec
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id}: condition not met after {timeout:.0f} s: {rec}")
            time.sleep(poll)

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(_tail(self.dir / "log" / f"{d}.log", n) for d in ("slurmctld", "slurmd"))

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        subprocess.run(
            ["bash", str(SCRIPTS / "stop_cluster.sh"), str(self.dir)], capture_output=True, timeout=120
        )


def _client_env(conf: Path) -> dict[str, str]:
    # Drop the variables of an enclosing allocation (tests run inside a Slurm job on a real cluster).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    return env


def start_cluster(directory: Path, timeout: float = 900) -> SlurmCluster:
    """Run start_cluster.sh in `directory`; raises RuntimeError (with the script's output) on failure."""
    if os.name != "posix" or os.geteuid() != 0:
        raise RuntimeError("needs root (apt-get install slurm-wlm munge, munged, slurmd)")
    try:
        res = subprocess.run(
            ["bash", str(SCRIPTS / "start_cluster.sh"), str(directory)],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        subprocess.run(["bash", str(SCRIPTS / "stop_cluster.sh"), str(directory)], capture_output=True)
        raise RuntimeError(f"start_cluster.sh did not finish: {e}") from e
    if res.returncode != 0:
        subprocess.run(["bash", str(SCRIPTS / "stop_cluster.sh"), str(directory)], capture_output=True)
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-40:])
        raise RuntimeError(f"start_cluster.sh exited {res.returncode}:\n{tail}")
    m = re.search(r"^export SLURM_CONF=(.+)$", res.stdout, re.M)
    if not m:
        raise RuntimeError(f"start_cluster.sh printed no SLURM_CONF line:\n{res.stdout}{res.stderr}")
    conf = Path(m.group(1).strip())
    (directory / "jobs").mkdir(exist_ok=True)
    return SlurmCluster(dir=conf.parent, conf=conf, env=_client_env(conf))


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> SlurmCluster:
    """A running single-node Slurm for the whole session (skips the test when there is none)."""
    directory = tmp_path_factory.mktemp("slurm")
    t0 = time.monotonic()
    try:
        cluster = start_cluster(directory)
    except RuntimeError as e:
        pytest.skip(f"no Slurm test cluster: {e}")
    print(f"slurm test cluster up in {time.monotonic() - t0:.1f} s: SLURM_CONF={cluster.conf}")
    atexit.register(cluster.stop)  # also stop it if the session dies before teardown
    yield cluster
    cluster.stop()
