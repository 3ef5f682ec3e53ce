"""`--executor ray` (data_pipeline/executors/ray.py): the same bytes and stats as local runs.

Filter (with a skipped bad shard) and the MinHash demo recipe through a 2-CPU Ray cluster equal
local runs; a second run resumes; a worker killed mid-shard is retried; a shard that keeps failing
is named after its retries and the rest is kept; a command joins a running cluster by address; and
without the ray package `--executor ray` says how to install it, before touching any file.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_filter_executor import (
    _big_corpus,
    _wait_for_tmp,
    _write_bad,
    kill_worker_mid_shard,
    make_corpus,
    outputs,
)

from data_pipeline.cli import build_parser, main
from data_pipeline.commands.info import SAMPLE_DIR
from data_pipeline.commands.options import command_executor, memory_size
from data_pipeline.executors.local import LOCAL
from data_pipeline.stages import run_filter

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "data_pipeline"]
# Stats fields that are timings (or depend on them); everything else must match a local run.
TIMINGS = {"wall_seconds", "worker_seconds", "mb_per_s_per_worker", "resumed_shards"}


def _counts(stats_file: Path) -> dict:
    stats = json.loads(stats_file.read_text())
    out = {k: v for k, v in stats.items() if k not in TIMINGS}
    out["steps"] = {
        name: {k: v for k, v in s.items() if k != "seconds"} for name, s in stats["steps"].items()
    }
    return out


@pytest.fixture(scope="module")
def ray_cluster():
    """One local 2-CPU cluster for the in-process tests: commands find it running and leave it so.

    ray comes with the dev extra: without it these tests fail rather than skip (test_ci_contract)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _filter(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["filter", "--input", str(corpus), "--output", str(out), "--steps", "length", "--quiet", *extra]


# ---- without a cluster -------------------------------------------------------------------------------


def test_missing_ray_says_how_to_install_before_touching_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    corpus = make_corpus(tmp_path / "in", shards=1)
    assert main([*_filter(corpus, tmp_path / "out"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert err == "andes-data: error: --executor ray needs the ray package: pip install 'andes[ray]'\n"
    assert not (tmp_path / "out").exists()


def test_ray_options_need_executor_ray_and_build_the_executor(tmp_path, capsys):
    corpus = make_corpus(tmp_path / "in", shards=1)
    assert main([*_filter(corpus, tmp_path / "out"), "--ray-gpus-per-task", "1"]) == 2
    assert "--ray-gpus-per-task: only with --executor ray" in capsys.readouterr().err
    assert main([*_filter(corpus, tmp_path / "out"), "--executor", "ray", "--ray-cpus-per-task", "0"]) == 2
    assert not (tmp_path / "out").exists()
    args = build_parser().parse_args(
        ["pack", "--input", "x", "--output", "y", "--seq-len", "8", "--executor", "ray"]
        + ["--ray-address", "auto", "--ray-memory-per-task", "1.5G", "--ray-max-retries", "0"]
    )
    executor = command_executor(args)
    assert (executor.address, executor.memory_per_task, executor.max_retries) == ("auto", 3 << 29, 0)
    assert (executor.cpus_per_task, executor.gpus_per_task) == (1.0, 0.0)  # the fields' defaults
    assert command_executor(build_parser().parse_args(_filter(corpus, tmp_path / "o"))) is LOCAL


def test_memory_sizes():
    assert [memory_size(t) for t in ("4G", "512m", "2GiB", "1000", "1.5K", "1TB")] == [
        4 << 30,
        512 << 20,
        2 << 30,
        1000,
        1536,
        1 << 40,
    ]
    for bad in ("", "G", "4X", "-1G", "0", "inf"):
        with pytest.raises(Exception, match="not a memory size"):
            memory_size(bad)


# ---- on a local Ray cluster --------------------------------------------------------------------------


def test_filter_matches_local_and_resumes(ray_cluster, tmp_path):
    corpus = make_corpus(tmp_path / "in", shards=4)
    _write_bad(corpus / "bad.parquet", "corrupt")  # skipped, and recorded so, by both executors
    local, remote = tmp_path / "local", tmp_path / "ray"
    skip = ["--on-bad-input", "skip", "--write-dropped", "--rows-per-file", "10"]
    assert main([*_filter(corpus, local), *skip]) == 0
    ray_opts = ["--executor", "ray", "--ray-cpus-per-task", "1", "--ray-memory-per-task", "64M"]
    assert main([*_filter(corpus, remote), *skip, *ray_opts]) == 0
    assert outputs(remote) == outputs(local) and len(outputs(local)) > 8
    assert _counts(remote / "stats.json") == _counts(local / "stats.json")
    assert list(json.loads((remote / "stats.json").read_text())["skipped_shards"]) == ["bad.parquet"]
    markers = {p.name: p.stat().st_mtime_ns for p in (remote / ".done").iterdir()}
    assert main([*_filter(corpus, remote), *skip, *ray_opts]) == 0  # everything resumed
    assert json.loads((remote / "stats.json").read_text())["resumed_shards"] == 4
    assert {p.name: p.stat().st_mtime_ns for p in (remote / ".done").iterdir()} == markers
    assert _counts(remote / "stats.json") == _counts(local / "stats.json")


def test_minhash_recipe_matches_local(ray_cluster, tmp_path, capsys):
    """filter -> MinHash dedup (hash, buckets, merge rounds, remove) -> train_tokenizer -> pack."""
    recipe = REPO / "configs" / "pipeline" / "demo.yaml"
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["run", str(recipe), f"input={SAMPLE_DIR}", f"output={local}", "--quiet"]) == 0
    assert (
        main(["run", str(recipe), f"input={SAMPLE_DIR}", f"output={remote}", "--quiet", "--executor", "ray"])
        == 0
    )
    capsys.readouterr()
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert files == {p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()}
    data = sorted(
        f for f in files if f.endswith((".parquet", ".model", "manifest.json", "dedup_report.json"))
    )
    assert [(remote / f).read_bytes() for f in data] == [(local / f).read_bytes() for f in data]
    assert any("3_pack" in f for f in data) and any(".dedup" in f for f in data)
    for stage in ("0_filter", "1_dedup"):
        assert _counts(remote / stage / "stats.json") == _counts(local / stage / "stats.json")
    report = json.loads((remote / "1_dedup" / "dedup_report.json").read_text())
    assert report["method"] == "minhash" and report["documents"] > 0


def test_failing_shard_is_named_after_its_retries_and_the_rest_kept(ray_cluster, tmp_path, capsys):
    corpus = make_corpus(tmp_path / "in", shards=3)
    out = tmp_path / "out"
    argv = [*_filter(corpus, out), "--executor", "ray", "--ray-max-retries", "1"]
    assert main(argv) == 0
    reference = outputs(out)
    (out / ".done" / "shard-001.json").unlink()
    (out / "shard-001-00000.parquet").unlink()
    blocker = out / "shard-001-00000.parquet.tmp"
    blocker.mkdir()  # cleaning up the shard's leftovers fails on every attempt (IsADirectoryError)
    (out / ".done" / "shard-002.json").unlink()  # shard-002 is redone fine meanwhile
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "shard shard-001.parquet failed (tried 2 times, --ray-max-retries 1): IsADirectoryError" in err
    assert "re-run to resume" in err and "shard-000" not in err
    assert sorted(p.stem for p in (out / ".done").iterdir()) == ["shard-000", "shard-002"]
    blocker.rmdir()
    assert main(argv) == 0
    assert outputs(out) == reference


def test_command_joins_a_running_cluster_by_address(ray_cluster, tmp_path):
    corpus = make_corpus(tmp_path / "in", shards=2)
    run_filter(corpus, tmp_path / "local", [("length", {})], progress=False)
    address = ray_cluster.get_runtime_context().gcs_address
    argv = [*_filter(corpus, tmp_path / "ray"), "--executor", "ray", "--ray-address", address]
    subprocess.run([*CLI, *argv], check=True, cwd=REPO, capture_output=True)
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
    assert ray_cluster.cluster_resources()["CPU"] == 2  # the cluster is still up: only left, not stopped


@pytest.mark.distributed
def test_worker_killed_mid_shard_is_retried(tmp_path):
    """kill -9 of the Ray worker writing a shard: Ray reruns the task, the output is as if nothing happened.

    The command starts (and stops) its own local cluster."""
    corpus = _big_corpus(tmp_path / "in")
    run_filter(corpus, tmp_path / "clean", [("length", {})], batch_rows=500, progress=False)
    out = tmp_path / "out"
    args = ["--input", str(corpus), "--steps", "length", "--batch-rows", "500", "--quiet"]
    proc = subprocess.Popen(
        [*CLI, "filter", *args, "--output", str(out), "--workers", "2", "--executor", "ray"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kill_worker_mid_shard(out, proc)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert outputs(out) == outputs(tmp_path / "clean")
    assert _counts(out / "stats.json") == _counts(tmp_path / "clean" / "stats.json")
    assert not list(out.rglob("*.tmp"))


@pytest.mark.distributed
def test_sigterm_cancels_tasks_cleanly_and_resume_completes(tmp_path):
    corpus = _big_corpus(tmp_path / "in", shards=6)
    run_filter(corpus, tmp_path / "clean", [("length", {})], batch_rows=500, progress=False)
    out = tmp_path / "out"
    argv = [*CLI, *_filter(corpus, out), "--batch-rows", "500", "--workers", "2", "--executor", "ray"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_tmp(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not list(out.rglob("*.tmp"))  # the cancelled tasks deleted their partial output
    finished = {p.stem for p in (out / ".done").glob("*.json")}
    assert {p.name.rsplit("-", 1)[0] for p in out.glob("*.parquet")} == finished
    subprocess.run(argv, check=True, cwd=REPO, capture_output=True)
    assert outputs(out) == outputs(tmp_path / "clean")
