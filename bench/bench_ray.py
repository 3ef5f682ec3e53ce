"""Ray vs local executor: the same commands on the same corpus and cores; wall time and overhead.

`andes-data filter` (FineWeb's default steps) and `andes-data dedup --method minhash` over the
benchmark corpus (bench/make_bench_corpus.py: web-like pages in ~16 MB shards), each run as a fresh
command line with `--workers N`, three ways:

- `local`: `--executor local` (N worker processes);
- `ray`: `--executor ray`, the command starting (and stopping) a local Ray cluster of N CPUs, as a
  user without a cluster runs it: its start-up and shutdown are part of the time;
- `ray (joined)`: `--executor ray --ray-address`, joining an N-CPU cluster this script started
  beforehand, as on a real cluster: what is left is the per-task cost.

Runs are interleaved and repeated (`--repeats`); the table gives the fastest and the median of each
and the overhead of the fastest against local's fastest (goal: at most 10%). Every Ray run's output
files are checked byte-identical to the local run's and its stats equal but for timings.

Ray starts its workers at nice 15 (its `worker_niceness`), local workers run at 0: on a shared
machine any other load then takes the Ray workers' CPU first (here +36% wall time, their per-step
seconds as much slower), which measures the neighbours, not the executor. So the Ray runs here set
RAY_worker_niceness=0, as on a node of its own, where niceness changes nothing.

Run: `python bench/bench_ray.py [--mb 512] [--workers 2] [--repeats 2]`; appends to bench/RESULTS.md.
`--smoke`: a 16 MB corpus, one repeat, nothing appended.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
sys.path.insert(0, str(HERE))
from make_bench_corpus import corpus_dir, ensure_corpus  # noqa: E402

COMMANDS = {
    "filter": ["filter"],  # FineWeb's default steps
    "dedup minhash": ["dedup", "--method", "minhash"],
}
GOAL = 0.10  # the most overhead Ray may add over local
TIMINGS = {"wall_seconds", "worker_seconds", "mb_per_s_per_worker", "resumed_shards"}


def variants(address: str) -> dict[str, list[str]]:
    return {
        "local": ["--executor", "local"],
        "ray": ["--executor", "ray"],
        "ray (joined)": ["--executor", "ray", "--ray-address", address],
    }


def timed_run(argv: list[str]) -> float:
    """Wall seconds of one `andes-data` command line (a fresh process, as a user runs it)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "data_pipeline", *argv], cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return seconds


def fingerprint(out: Path) -> tuple[dict[str, str], dict]:
    """The SHA-256 of every output file (work files included; markers and stats hold timings) and
    stats.json without its timings."""
    files = {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "stats.json" and ".done" not in p.parts
    }
    stats = json.loads((out / "stats.json").read_text())
    kept = {k: v for k, v in stats.items() if k not in TIMINGS}
    kept["steps"] = {n: {k: v for k, v in s.items() if k != "seconds"} for n, s in stats["steps"].items()}
    return files, kept


def measure(corpus: Path, workers: int, repeats: int, address: str, work: Path) -> dict:
    """{(command, variant): [wall seconds, ...]}, each Ray output checked against the local one."""
    times: dict[tuple[str, str], list[float]] = {}
    reference: dict[str, tuple] = {}
    for r in range(repeats):
        for command, argv in COMMANDS.items():
            for variant, extra in variants(address).items():
                out = work / f"{command.replace(' ', '-')}-{variant.split()[0]}-{r}"
                args = [*argv, "--input", str(corpus), "--output", str(out), "--workers", str(workers)]
                seconds = timed_run([*args, "--quiet", *extra])
                times.setdefault((command, variant), []).append(seconds)
                print(f"  {command:14s} {variant:13s} run {r + 1}: {seconds:7.1f} s", flush=True)
                result = fingerprint(out)
                if variant == "local" and command not in reference:
                    reference[command] = result
                elif result != reference[command]:
                    raise SystemExit(f"{command} with {variant}: output differs from the local run")
                shutil.rmtree(out)
    return times


def table(times: dict, corpus_mb: float, shards: int) -> list[str]:
    rows = [
        "| command | executor | runs | fastest s | median s | vs local (fastest) | overhead |",
        "|---|---|---|---|---|---|---|",
    ]
    for (command, variant), runs in times.items():
        local = min(times[(command, "local")])
        ratio = min(runs) / local
        over = "" if variant == "local" else f"{100 * (ratio - 1):+.1f}%"
        rows.append(
            f"| {command} ({corpus_mb:g} MB, {shards} shards) | {variant} | {len(runs)} | {min(runs):.1f} | "
            f"{statistics.median(runs):.1f} | {ratio:.3f} | {over} |"
        )
    return rows


def summary(times: dict) -> list[str]:
    lines = []
    for command in COMMANDS:
        local = min(times[(command, "local")])
        own, joined = (min(times[(command, v)]) for v in ("ray", "ray (joined)"))
        verdict = "meets" if joined / local - 1 <= GOAL else "misses"
        lines.append(
            f"- {command}: joining a running cluster costs {100 * (joined / local - 1):+.1f}% "
            f"({verdict} the {100 * GOAL:.0f}% goal); starting and stopping a local cluster as well "
            f"{100 * (own / local - 1):+.1f}% ({own - local:+.1f} s)."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=512.0, help="corpus text size in MB")
    parser.add_argument("--workers", type=int, default=2, help="worker processes / Ray CPUs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="16 MB, one repeat, nothing appended")
    args = parser.parse_args()
    if args.smoke:
        args.mb, args.repeats = 16.0, 1
    import ray

    ensure_corpus(args.mb, 0)
    corpus = corpus_dir(args.mb, 0)
    shards = len(list(corpus.glob("*.parquet")))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # As local workers (see the docstring); every run inherits it. Ray reads its config names as spelled.
    os.environ["RAY_worker_niceness"] = "0"  # noqa: SIM112
    ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="WARNING")
    address = ray.get_runtime_context().gcs_address
    print(f"{args.mb:g} MB in {shards} shards, --workers {args.workers}, {args.repeats} repeats", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        times = measure(corpus, args.workers, args.repeats, address, Path(tmp))
    ray.shutdown()
    when = datetime.datetime.now().isoformat(timespec="seconds")
    cores = len(os.sched_getaffinity(0))
    lines = [
        f"## Ray vs local executor — {when}",
        "",
        f"`python bench/bench_ray.py --mb {args.mb:g} --workers {args.workers} --repeats {args.repeats}` "
        f"({platform.machine()}, {cores} cores, ray {ray.__version__}): the same command lines with "
        f"`--workers {args.workers}`; wall time of the whole command; every run's output files "
        "byte-identical to local's. Ray workers at nice 0 like local ones (`RAY_worker_niceness=0`: "
        "Ray's default 15 lets other load on this shared machine take their CPU).",
        "",
        *table(times, args.mb, shards),
        "",
        *summary(times),
        "",
    ]
    print("\n".join(lines))
    if not args.smoke:
        with open(RESULTS, "a") as f:
            f.write("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
