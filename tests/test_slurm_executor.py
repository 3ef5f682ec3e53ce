"""`--executor slurm` (data_pipeline/executors/slurm.py).

Without Slurm: the generated scripts, array ranges, job chains, task command lines, checks before
submitting (with fake sbatch/sinfo/scancel on PATH) and the recipe's `--stage` runs. Against the
single-node test cluster (`tests/slurm_cluster.py`, skipped where it cannot start): filter, dedup
and a recipe give the same bytes as local runs, and a failed task is redone by re-submitting.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from slurm_cluster import slurm_cluster  # noqa: F401

from data_pipeline.cli import build_parser, main
from data_pipeline.commands.info import SAMPLE_DIR
from data_pipeline.dedup.stars import round_limit
from data_pipeline.executors.slurm import TASK_ID, SlurmError, SlurmOptions, compress_indices, missing_ranks
from data_pipeline.recipe import run_recipe

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "data_pipeline"]
FILTER = ["filter", "--steps", "normalize,length", "--set", "length.min_chars=2000"]
# Stats fields that are timings (or depend on them); everything else must match a local run.
TIMINGS = {"wall_seconds", "worker_seconds", "mb_per_s_per_worker", "resumed_shards"}


def _scripts(dry_run_output: str) -> dict[str, str]:
    """The scripts a --dry-run printed, by job name."""
    out = {}
    for block in dry_run_output.split("# ---- job ")[1:]:
        name = re.match(r"\d+/\d+: (\S+)", block).group(1)
        out[name] = block[block.index("#!/bin/bash") :]
    return out


def _exec_line(script: str) -> list[str]:
    line = next(x for x in script.splitlines() if x.startswith("exec "))
    return line.split()


def _dry_run(capsys, *argv: str) -> tuple[dict[str, str], str]:
    assert main([*argv, "--executor", "slurm", "--dry-run"]) == 0
    out = capsys.readouterr().out
    return _scripts(out), out


def _copy_sample(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in sorted(SAMPLE_DIR.glob("*.parquet")):
        shutil.copy(f, dest / f.name)
    return dest


def _parquet_bytes(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*.parquet"))}


def _counts(stats: dict) -> dict:
    out = {k: v for k, v in stats.items() if k not in TIMINGS}
    out["steps"] = {
        name: {k: v for k, v in st.items() if k != "seconds"} for name, st in stats["steps"].items()
    }
    return out


# ---- scripts, arrays and chains (no Slurm needed) ---------------------------------------------------


def test_filter_dry_run_scripts(tmp_path, capsys):
    out_dir = tmp_path / "out"
    scripts, text = _dry_run(
        capsys,
        *FILTER,
        "--input",
        str(SAMPLE_DIR),
        "--output",
        str(out_dir),
        "--tasks",
        "3",
        "--array-parallelism",
        "2",
        "--partition",
        "debug",
        "--account",
        "proj",
        "--time",
        "01:00:00",
        "--mem",
        "4G",
        "--cpus-per-task",
        "2",
        "--sbatch-arg=--qos=high",
        "--quiet",
    )
    assert list(scripts) == ["andes-filter", "andes-filter-stats"]
    array, stats = scripts["andes-filter"], scripts["andes-filter-stats"]
    logs = out_dir.with_name("out.slurm") / "logs"
    for line in [
        "#SBATCH --job-name=andes-filter",
        "#SBATCH --array=0-2%2",
        f"#SBATCH --output={logs}/%x-%A_%a.out",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --partition=debug",
        "#SBATCH --account=proj",
        "#SBATCH --time=01:00:00",
        "#SBATCH --mem=4G",
        "#SBATCH --qos=high",
        "set -euo pipefail",
        f"cd {Path.cwd()}",
        f'export PATH={Path(sys.executable).parent}"${{PATH:+:$PATH}}"',
        "export OMP_NUM_THREADS=1",
    ]:
        assert line in array.splitlines(), line
    assert "--kill-on-invalid-dep" not in array  # the first job depends on nothing
    assert _exec_line(array) == [
        "exec",
        sys.executable,
        "-m",
        "data_pipeline",
        "filter",
        "--input",
        str(SAMPLE_DIR),
        "--output",
        str(out_dir),
        "--quiet",
        "--steps",
        "normalize,length",
        "--set",
        "length.min_chars=2000",
        "--executor",
        "local",
        "--rank",
        '"$SLURM_ARRAY_TASK_ID"',
        "--world-size",
        "3",
        "--workers",
        "2",
    ]
    # The stats job runs the command once more, on one CPU, after the array succeeded.
    assert "#SBATCH --array" not in stats and f"#SBATCH --output={logs}/%x-%j.out" in stats
    assert "#SBATCH --kill-on-invalid-dep=yes" in stats and "#SBATCH --cpus-per-task=1" in stats
    assert "--rank" not in _exec_line(stats) and _exec_line(stats)[-4:] == [
        "--executor",
        "local",
        "--workers",
        "1",
    ]
    assert "# sbatch --parsable --dependency=afterok:<andes-filter> " in text
    assert not out_dir.exists() and not logs.parent.exists()  # a dry run writes nothing


def test_task_command_round_trips_every_option(tmp_path, capsys):
    argv = [
        *FILTER,
        "--input",
        str(SAMPLE_DIR),
        "--output",
        str(tmp_path / "o"),
        "--set",
        "normalize.form=NFKC",
        "--rows-per-file",
        "7",
        "--batch-rows",
        "64",
        "--write-dropped",
        "--on-bad-input",
        "skip",
        "--quiet",
    ]
    scripts, _ = _dry_run(capsys, *argv, "--tasks", "2")
    task_argv = ["1" if a == f'"{TASK_ID}"' else a for a in _exec_line(scripts["andes-filter"])[4:]]
    parser = build_parser()
    original, task = parser.parse_args(argv), parser.parse_args(task_argv)
    assert (task.rank, task.world_size, task.workers) == (1, 2, 1)
    for key in ("steps", "set", "rows_per_file", "batch_rows", "write_dropped", "on_bad_input", "quiet"):
        assert getattr(task, key) == getattr(original, key), key
    assert task.input == original.input and task.output == original.output and task.executor == "local"


def test_shards_per_task_and_alias(tmp_path, capsys):
    for flag in ("--shards-per-task", "--tasks-per-job"):
        scripts, _ = _dry_run(
            capsys, *FILTER, "--input", str(SAMPLE_DIR), "--output", str(tmp_path), flag, "3"
        )
        assert "#SBATCH --array=0-1\n" in scripts["andes-filter"]  # 4 shards, 3 per task
        assert "--world-size 2 " in scripts["andes-filter"]
    # One task per shard by default; --tasks never exceeds the shards.
    for extra, spec in (([], "0-3"), (["--tasks", "10"], "0-3")):
        scripts, _ = _dry_run(capsys, *FILTER, "--input", str(SAMPLE_DIR), "--output", str(tmp_path), *extra)
        assert f"#SBATCH --array={spec}\n" in scripts["andes-filter"]


def test_array_index_helpers():
    assert compress_indices([8, 0, 1, 2, 5, 7]) == "0-2,5,7-8"
    assert compress_indices([3]) == "3"
    done = {"a", "c", "d"}
    units = [Path(x) for x in "abcde"]
    assert missing_ranks(units, 2, lambda u: u.name in done) == [0, 1]  # a,c,e / b,d
    assert missing_ranks(units, 3, lambda u: u.name in done) == [1]  # a,d / b,e / c
    assert SlurmOptions(tasks=5).array_tasks(3) == 3 and SlurmOptions(shards_per_task=2).array_tasks(5) == 3
    with pytest.raises(SlurmError, match="--sbatch-arg"):
        SlurmOptions(sbatch_args=["qos=high"])
    with pytest.raises(SlurmError, match="--partition"):
        SlurmOptions(partition="a b")


def test_dedup_dry_run_chains_one_array_per_stage(tmp_path, capsys):
    out_dir = tmp_path / "dd"
    common = ["dedup", "--input", str(SAMPLE_DIR), "--output", str(out_dir), "--partitions", "5"]
    common += ["--cc-partitions", "2"]
    assert main([*common, "--list-stages"]) == 0
    stages = capsys.readouterr().out.split()
    # The components rounds up to their limit for 814 documents (later ones find nothing to do).
    rounds = [f"cc-{i}" for i in range(2 * round_limit(814) - 1)]
    assert stages == ["hash", "buckets", *rounds, "components", "remove"]
    scripts, text = _dry_run(capsys, *common, "--tasks", "3")
    assert list(scripts) == [f"andes-dedup-{s}" for s in stages] + ["andes-dedup-stats"]
    arrays = {
        n: re.search(r"#SBATCH --array=(\S+)", s).group(1) for n, s in scripts.items() if "--array" in s
    }
    # hash/remove: 4 shards; buckets: 5 partitions; cc-*: 2 partitions; components: 1 task.
    assert arrays == {
        "andes-dedup-hash": "0-2",
        "andes-dedup-buckets": "0-2",
        **{f"andes-dedup-{r}": "0-1" for r in rounds},
        "andes-dedup-components": "0",
        "andes-dedup-remove": "0-2",
    }
    for name, stage in zip(list(scripts)[:-1], stages, strict=True):
        assert _exec_line(scripts[name])[-2:] == ["--stage", stage]
    deps = re.findall(r"--dependency=afterok:<(\S+)>", text)
    assert deps == list(scripts)[:-1]  # a chain: each job waits for the one before
    assert "--stage" not in _exec_line(scripts["andes-dedup-stats"])


def test_only_missing_submits_unfinished_ranks(tmp_path, capsys):
    out_dir = tmp_path / "out"
    base = [*FILTER, "--input", str(SAMPLE_DIR), "--output", str(out_dir), "--quiet"]
    # Task 0 of 3 (shards 0 and 3) finished, as after a partly failed array.
    assert main([*base, "--rank", "0", "--world-size", "3"]) == 0
    scripts, _ = _dry_run(capsys, *base, "--tasks", "3", "--only-missing")
    assert "#SBATCH --array=1-2\n" in scripts["andes-filter"]
    assert "--world-size 3 " in scripts["andes-filter"]  # ranks keep their shards
    assert main([*base, "--rank", "2", "--world-size", "3"]) == 0
    scripts, _ = _dry_run(capsys, *base, "--tasks", "3", "--only-missing")
    assert "#SBATCH --array=1\n" in scripts["andes-filter"]
    assert main([*base, "--rank", "1", "--world-size", "3"]) == 0
    scripts, _ = _dry_run(capsys, *base, "--tasks", "3", "--only-missing")
    assert list(scripts) == ["andes-filter-stats"]  # nothing left but merging the stats

    dedup = ["dedup", "--input", str(SAMPLE_DIR), "--output", str(tmp_path / "dd"), "--quiet"]
    assert main([*dedup, "--stage", "hash"]) == 0
    scripts, text = _dry_run(capsys, *dedup, "--tasks", "2", "--only-missing")
    assert list(scripts) == [
        "andes-dedup-buckets",
        "andes-dedup-components",
        "andes-dedup-remove",
        "andes-dedup-stats",
    ]
    assert "# sbatch --parsable /" in text.split("andes-dedup-buckets")[1]  # depends on nothing
    # MinHash rounds after the one that settled have no markers but nothing to do: not resubmitted.
    rounds = ["dedup", "--input", str(SAMPLE_DIR), "--output", str(tmp_path / "cc"), "--quiet"]
    rounds += ["--cc-partitions", "2"]
    assert main(rounds) == 0
    scripts, _ = _dry_run(capsys, *rounds, "--tasks", "2", "--only-missing")
    assert list(scripts) == ["andes-dedup-stats"]


def test_recipe_dry_run_stages_and_sub_stages(tmp_path, capsys):
    out_root = tmp_path / "demo"
    argv = ["run", "configs/pipeline/demo.yaml", f"input={SAMPLE_DIR}", f"output={out_root}", "--quiet"]
    scripts, text = _dry_run(capsys, *argv, "--tasks", "2", "--cpus-per-task", "1")
    assert list(scripts) == [
        "andes-demo-0_filter",
        "andes-demo-1_dedup-hash",
        "andes-demo-1_dedup-buckets",
        "andes-demo-1_dedup-components",  # minhash on a small input: one task, no rounds
        "andes-demo-1_dedup-remove",
        "andes-demo-2_train_tokenizer",
        "andes-demo-3_pack",
        "andes-demo-stats",
    ]
    hash_cmd = _exec_line(scripts["andes-demo-1_dedup-hash"])
    assert hash_cmd[4:] == [
        *argv[:4],
        "workers=1",  # the recipe's workers: the job's CPUs
        "--quiet",
        "--stage",
        "1:hash",
        "--rank",
        f'"{TASK_ID}"',
        "--world-size",
        "2",
    ]
    assert "#SBATCH --array" not in scripts["andes-demo-3_pack"]
    assert _exec_line(scripts["andes-demo-3_pack"])[-2:] == ["--stage", "3"]
    stats = _exec_line(scripts["andes-demo-stats"])  # the whole recipe, every stage finished
    assert stats[4:] == [*argv[:4], "workers=1", "--quiet"]
    assert text.count("--dependency=afterok:") == 7


def test_recipe_stages_run_piecewise_equal_a_whole_run(tmp_path, capsys):
    """What the Slurm tasks of a recipe run (`run --stage I[:SUB] --rank R --world-size W`)."""
    src = _copy_sample(tmp_path / "in")
    shutil.copy(src / "shakespeare-00000.parquet", src / "dupe-00000.parquet")  # 204 exact duplicates
    recipe = tmp_path / "r.yaml"
    body = {
        "input": str(src),
        "output": str(tmp_path / "whole"),
        "stages": [
            {"filter": {"steps": [{"length": {"min_chars": 500}}]}},
            {"dedup": {"method": "exact", "partitions": 4}},
            {"dedup": {"method": "minhash", "partitions": 3, "cc_partitions": 2}},
        ],
    }
    recipe.write_text(yaml.safe_dump(body))
    whole = run_recipe(recipe, progress=False)
    parts = [f"output={tmp_path / 'parts'}"]
    for rank in range(3):
        run_recipe(recipe, parts, progress=False, stage="0", rank=rank, world_size=3)
    for sub in ("hash", "buckets", "remove"):  # exact: groups never span partitions, no rounds
        for rank in range(2):
            run_recipe(recipe, parts, progress=False, stage=f"1:{sub}", rank=rank, world_size=2)
    # minhash, its rounds sized as a launcher sizes them for a larger input: the rounds this input
    # does not have are no-ops.
    rounds = [f"cc-{i}" for i in range(2 * round_limit(4096) - 1)]
    for sub in ("hash", "buckets", *rounds, "components", "remove"):
        for rank in range(2):
            run_recipe(recipe, parts, progress=False, stage=f"2:{sub}", rank=rank, world_size=2)
    assert f"dedup stage {rounds[-1]}: not in this run" in capsys.readouterr().out
    run_recipe(recipe, parts, progress=False)  # what the stats job runs
    assert _parquet_bytes(tmp_path / "parts") == _parquet_bytes(tmp_path / "whole")
    for dedup in ("1_dedup", "2_dedup"):
        report = json.loads((whole.parent / dedup / "dedup_report.json").read_text())
        assert json.loads((tmp_path / "parts" / dedup / "dedup_report.json").read_text()) == report
    assert json.loads((whole.parent / "1_dedup" / "dedup_report.json").read_text())["duplicates"] > 100
    for spec, message in (("5", "expected I or I:SUB"), ("0:hash", "only dedup stages"), ("x", "expected")):
        with pytest.raises(ValueError, match=message):
            run_recipe(recipe, parts, progress=False, stage=spec)
    with pytest.raises(ValueError, match="--stage"):
        run_recipe(recipe, parts, progress=False, rank=1, world_size=2)


# ---- checks before submitting --------------------------------------------------------------------

FAKE_SBATCH = r"""#!/bin/bash
echo "$*" >> "$FAKE_SLURM/sbatch.log"
for a in "$@"; do
  if [[ $a == --test-only ]]; then
    [[ -n ${FAKE_REJECT:-} ]] && { echo "sbatch: error: $FAKE_REJECT" >&2; exit 1; }
    echo "sbatch: Job 1 to start at now" >&2; exit 0
  fi
done
n=$(( $(cat "$FAKE_SLURM/next" 2>/dev/null || echo 100) + 1 ))
echo $n > "$FAKE_SLURM/next"
if [[ -n ${FAKE_FAIL_AT:-} && $n == "$FAKE_FAIL_AT" ]]; then
  echo "sbatch: error: Batch job submission failed: fake" >&2; exit 1
fi
echo "$n;cluster"
"""
FAKE_SINFO = r"""#!/bin/bash
if [[ $* == *"-p debug"* || $* != *"-p "* ]]; then echo "debug*"; fi
"""
FAKE_SCONTROL = (
    'echo "MaxArraySize            = 4"\necho "AccountingStorageType   = accounting_storage/none"\n'
)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch/sinfo/scontrol/scancel stand-ins on PATH that log their calls under the returned dir."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, body in (
        ("sbatch", FAKE_SBATCH),
        ("sinfo", FAKE_SINFO),
        ("scontrol", "#!/bin/bash\n" + FAKE_SCONTROL),
        ("scancel", '#!/bin/bash\necho "$*" >> "$FAKE_SLURM/scancel.log"\n'),
    ):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_SLURM", str(bin_dir))
    return bin_dir


def test_submission_chains_job_ids_with_fake_sbatch(tmp_path, capsys, fake_slurm):
    out_dir = tmp_path / "out"
    argv = [
        "dedup",
        "--input",
        str(SAMPLE_DIR),
        "--output",
        str(out_dir),
        "--executor",
        "slurm",
        "--tasks",
        "2",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    calls = (fake_slurm / "sbatch.log").read_text().splitlines()
    assert calls[0].startswith("--test-only ")  # slurmctld validated the options first
    scripts = out_dir.with_name("out.slurm") / "scripts"
    assert calls[1:] == [
        f"--parsable {scripts}/andes-dedup-hash.sbatch",
        f"--parsable --dependency=afterok:101 {scripts}/andes-dedup-buckets.sbatch",
        f"--parsable --dependency=afterok:102 {scripts}/andes-dedup-components.sbatch",
        f"--parsable --dependency=afterok:103 {scripts}/andes-dedup-remove.sbatch",
        f"--parsable --dependency=afterok:104 {scripts}/andes-dedup-stats.sbatch",
    ]
    assert "squeue -j 101,102,103,104,105" in out and "andes-dedup-hash" in out
    record = json.loads((out_dir.with_name("out.slurm") / "submissions.jsonl").read_text().splitlines()[-1])
    assert record["jobs"] == {
        "andes-dedup-hash": "101",
        "andes-dedup-buckets": "102",
        "andes-dedup-components": "103",
        "andes-dedup-remove": "104",
        "andes-dedup-stats": "105",
    }
    assert (out_dir.with_name("out.slurm") / "logs").is_dir()  # Slurm does not create it


def test_failed_submission_cancels_the_jobs_before_it(tmp_path, capsys, fake_slurm, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_AT", "102")
    argv = [*FILTER, "--input", str(SAMPLE_DIR), "--output", str(tmp_path / "o"), "--executor", "slurm"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "andes-filter-stats.sbatch failed: sbatch: error: Batch job submission failed: fake" in err
    assert (fake_slurm / "scancel.log").read_text().split() == ["101"]


@pytest.mark.parametrize(
    ("extra", "env", "code", "message"),
    [
        (["--partition", "gpu"], {}, 1, "--partition gpu: no such Slurm partition (sinfo lists: debug)"),
        (
            ["--time", "soon"],
            {"FAKE_REJECT": "Invalid --time specification"},
            1,
            "sbatch --test-only rejects the job (--time soon): Invalid --time specification",
        ),
        (["--tasks", "0"], {}, 2, "argument --tasks: 0 must be in [1, inf)"),
        (["--tasks", "2", "--shards-per-task", "2"], {}, 2, "not allowed with argument"),
        (["--overwrite"], {}, 1, "--overwrite with --executor slurm"),
        (["--cpus-per-task", "0"], {}, 2, "argument --cpus-per-task"),
        (["--sbatch-arg", "qos=high"], {}, 1, "--sbatch-arg 'qos=high': expected an sbatch option"),
        ([], {"PATH": "/nonexistent"}, 1, "sbatch not found on PATH"),
    ],
)
def test_bad_setups_fail_before_submitting(
    tmp_path, capsys, fake_slurm, monkeypatch, extra, env, code, message
):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    argv = [
        *FILTER,
        "--input",
        str(SAMPLE_DIR),
        "--output",
        str(tmp_path / "o"),
        "--executor",
        "slurm",
        *extra,
    ]
    assert main(argv) == code
    assert message in capsys.readouterr().err
    assert not (fake_slurm / "next").exists()  # nothing was submitted


def test_more_checks(tmp_path, capsys, fake_slurm):
    base = [*FILTER, "--input", str(SAMPLE_DIR), "--output", str(tmp_path / "o")]
    # The fake MaxArraySize is 4: five tasks do not fit.
    five = [*base, "--executor", "slurm", "--input", str(tmp_path / "in" / "*.parquet")]
    src = _copy_sample(tmp_path / "in")
    shutil.copy(src / "shakespeare-00000.parquet", src / "x-00000.parquet")
    assert main(five) == 1
    assert "5 array tasks exceed Slurm's MaxArraySize 4" in capsys.readouterr().err
    # Slurm options without --executor slurm would run everything here: refused.
    assert main([*base, "--partition", "debug"]) == 2
    assert "--partition: only with --executor slurm" in capsys.readouterr().err
    assert main([*base, "--dry-run"]) == 2
    # Output under /tmp: only a warning (single-node clusters share it).
    assert main([*base, "--executor", "slurm", "--dry-run"]) == 0
    err = capsys.readouterr().err
    if str(tmp_path).startswith("/tmp/"):
        # (the working directory may be listed first when the checkout itself is under /tmp)
        assert "warning: " in err and "--output" in err and "under /tmp" in err
    assert (
        main(
            [
                "dedup",
                "--input",
                str(SAMPLE_DIR),
                "--output",
                str(tmp_path / "d"),
                "--executor",
                "slurm",
                "--stage",
                "hash",
            ]
        )
        == 1
    )
    assert "--stage with --executor slurm" in capsys.readouterr().err
    assert (
        main(
            [
                "dedup",
                "--input",
                str(tmp_path / "missing"),
                "--output",
                str(tmp_path / "d"),
                "--executor",
                "slurm",
            ]
        )
        == 1
    )
    assert "no such file or directory" in capsys.readouterr().err


def test_single_job_commands(tmp_path, capsys):
    scripts, _ = _dry_run(
        capsys,
        "pack",
        "--input",
        str(SAMPLE_DIR),
        "--output",
        str(tmp_path / "p"),
        "--seq-len",
        "64",
        "--cpus-per-task",
        "4",
    )
    (script,) = scripts.values()
    assert "#SBATCH --array" not in script and "#SBATCH --cpus-per-task=4" in script
    assert "export OMP_NUM_THREADS=4" in script
    assert _exec_line(script)[4:] == [
        "pack",
        "--input",
        str(SAMPLE_DIR),
        "--output",
        str(tmp_path / "p"),
        "--seq-len",
        "64",
        "--executor",
        "local",
    ]


# ---- against the test cluster ----------------------------------------------------------------------


def _andes(cluster, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**cluster.env, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([*CLI, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if check and res.returncode != 0:
        raise AssertionError(
            f"andes-data {' '.join(argv)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
        )
    return res


def _last_submission(out_dir: Path) -> dict[str, str]:
    lines = (out_dir.with_name(out_dir.name + ".slurm") / "submissions.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["jobs"]


def _wait_all(cluster, jobs: dict[str, str], timeout: float = 240) -> dict[str, str]:
    return {name: cluster.wait(job, timeout=timeout) for name, job in jobs.items()}


def _log(out_dir: Path, pattern: str) -> str:
    logs = sorted((out_dir.with_name(out_dir.name + ".slurm") / "logs").glob(pattern))
    return "\n".join(p.read_text() for p in logs)


def test_filter_slurm_matches_local(slurm_cluster, tmp_path):  # noqa: F811
    local, remote = tmp_path / "local", tmp_path / "slurm"
    assert main([*FILTER, "--input", str(SAMPLE_DIR), "--output", str(local), "--quiet"]) == 0
    args = [*FILTER, "--input", str(SAMPLE_DIR), "--output", str(remote), "--quiet"]
    res = _andes(slurm_cluster, *args, "--executor", "slurm", "--tasks", "3", "--cpus-per-task", "1")
    jobs = _last_submission(remote)
    assert list(jobs) == ["andes-filter", "andes-filter-stats"] and "squeue -j" in res.stdout
    assert _wait_all(slurm_cluster, jobs) == dict.fromkeys(jobs, "COMPLETED")
    assert sorted(p.name for p in (remote.with_name("slurm.slurm") / "logs").iterdir()) == sorted(
        [f"andes-filter-{jobs['andes-filter']}_{i}.out" for i in range(3)]
        + [f"andes-filter-stats-{jobs['andes-filter-stats']}.out"]
    )
    assert _parquet_bytes(remote) == _parquet_bytes(local) and len(_parquet_bytes(local)) == 4
    remote_stats = json.loads((remote / "stats.json").read_text())
    assert _counts(remote_stats) == _counts(json.loads((local / "stats.json").read_text()))
    assert remote_stats["pending_shards"] == 0 and remote_stats["docs_out"] < remote_stats["docs_in"]
    assert "4 shards: 814 docs in" in _log(remote, "andes-filter-stats-*.out")  # the merged summary


def test_dedup_stages_slurm_match_local(slurm_cluster, tmp_path):  # noqa: F811
    src = _copy_sample(tmp_path / "in")
    shutil.copy(src / "shakespeare-00001.parquet", src / "dupe-00001.parquet")
    local, remote = tmp_path / "local", tmp_path / "slurm"
    common = ["dedup", "--method", "exact", "--input", str(src), "--partitions", "4", "--quiet"]
    assert main([*common, "--output", str(local)]) == 0
    _andes(
        slurm_cluster,
        *common,
        "--output",
        str(remote),
        "--executor",
        "slurm",
        "--tasks",
        "2",
        "--array-parallelism",
        "2",
    )
    jobs = _last_submission(remote)
    stages = ["hash", "buckets", "remove", "stats"]  # exact: groups never span partitions
    assert list(jobs) == [f"andes-dedup-{s}" for s in stages]
    assert _wait_all(slurm_cluster, jobs) == dict.fromkeys(jobs, "COMPLETED")
    assert _parquet_bytes(remote) == _parquet_bytes(local)
    report = json.loads((remote / "dedup_report.json").read_text())
    assert report == json.loads((local / "dedup_report.json").read_text()) and report["duplicates"] > 100
    assert _counts(json.loads((remote / "stats.json").read_text())) == _counts(
        json.loads((local / "stats.json").read_text())
    )


def test_minhash_components_rounds_slurm_match_local(slurm_cluster, tmp_path):  # noqa: F811
    """MinHash with K = 3: every components round an array, pre-submitted up to the round limit; the
    rounds after the one that settles do nothing. Same bytes as a local run with K = 1."""
    from test_dedup_components import chain_corpus

    src = chain_corpus(tmp_path / "in")
    local, remote = tmp_path / "local", tmp_path / "slurm"
    common = ["dedup", "--input", str(src), "--partitions", "14", "--quiet", "--write-dropped"]
    assert main([*common, "--output", str(local), "--cc-partitions", "1"]) == 0
    slurm = ["--executor", "slurm", "--tasks", "3", "--array-parallelism", "3"]
    _andes(slurm_cluster, *common, "--output", str(remote), "--cc-partitions", "3", *slurm)
    jobs = _last_submission(remote)
    rounds = [name for name in jobs if name.startswith("andes-dedup-cc-")]
    assert len(rounds) == 2 * round_limit(300) - 1 and "andes-dedup-components" in jobs
    assert _wait_all(slurm_cluster, jobs, timeout=600) == dict.fromkeys(jobs, "COMPLETED")
    assert _parquet_bytes(remote) == _parquet_bytes(local)
    report = json.loads((remote / "dedup_report.json").read_text())
    assert report == json.loads((local / "dedup_report.json").read_text()) and report["clusters"] == 6
    assert not (remote / ".dedup" / rounds[-1].removeprefix("andes-dedup-") / ".done").exists()  # no-op


def test_semantic_dedup_slurm_matches_local(slurm_cluster, tmp_path):  # noqa: F811
    """embed -> fit -> assign -> cluster -> remove as chained arrays equal one local run."""
    from tiny_encoders import make_bert

    encoder = make_bert(tmp_path / "bert", {"mean_tokens": True})
    src = _copy_sample(tmp_path / "in")
    shutil.copy(src / "shakespeare-00001.parquet", src / "dupe-00001.parquet")
    local, remote = tmp_path / "local", tmp_path / "slurm"
    common = ["dedup", "--method", "semantic", "--encoder", str(encoder), "--input", str(src)]
    common += ["--clusters", "4", "--partitions", "3", "--eps", "0.01", "--quiet"]
    assert main([*common, "--output", str(local)]) == 0
    _andes(slurm_cluster, *common, "--output", str(remote), "--executor", "slurm", "--tasks", "2")
    jobs = _last_submission(remote)
    stages = ["embed", "fit", "assign", "cluster", "assign-2", "cluster-2", "remove", "stats"]
    assert list(jobs) == [f"andes-dedup-{s}" for s in stages]
    assert _wait_all(slurm_cluster, jobs) == dict.fromkeys(jobs, "COMPLETED")
    visible = {k: v for k, v in _parquet_bytes(remote).items() if not k.startswith(".dedup")}
    assert visible == {k: v for k, v in _parquet_bytes(local).items() if not k.startswith(".dedup")}
    report = json.loads((remote / "dedup_report.json").read_text())
    assert report == json.loads((local / "dedup_report.json").read_text()) and report["duplicates"] >= 200


def test_recipe_slurm_matches_local(slurm_cluster, tmp_path):  # noqa: F811
    local, remote = tmp_path / "local", tmp_path / "slurm"
    recipe = REPO / "configs" / "pipeline" / "demo.yaml"
    run_recipe(recipe, [f"input={SAMPLE_DIR}", f"output={local}"], progress=False)
    _andes(
        slurm_cluster,
        "run",
        str(recipe),
        f"input={SAMPLE_DIR}",
        f"output={remote}",
        "--quiet",
        "--executor",
        "slurm",
        "--tasks",
        "2",
        "--cpus-per-task",
        "1",
    )
    jobs = _last_submission(remote)
    assert len(jobs) == 8  # filter, dedup's hash, buckets, components and remove, tokenizer, pack, stats
    assert _wait_all(slurm_cluster, jobs, timeout=300) == dict.fromkeys(jobs, "COMPLETED")
    assert _parquet_bytes(remote) == _parquet_bytes(local)
    tokenizer = Path("2_train_tokenizer") / "tokenizer.model"
    assert (remote / tokenizer).read_bytes() == (local / tokenizer).read_bytes()
    for stage in ("0_filter", "1_dedup"):
        assert _counts(json.loads((remote / stage / "stats.json").read_text())) == _counts(
            json.loads((local / stage / "stats.json").read_text())
        )
    assert "recipe done:" in _log(remote, "andes-demo-stats-*.out")


def _break(shard: Path) -> bytes:
    good = shard.read_bytes()
    shard.write_bytes(good[:1000])  # not Parquet any more: that task fails
    return good


def _markers(out_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out_dir / ".done").glob("*.json")}


@pytest.mark.parametrize("only_missing", [False, True], ids=["same-command", "only-missing"])
def test_failed_task_resubmitted_slurm(slurm_cluster, tmp_path, only_missing):  # noqa: F811
    src = _copy_sample(tmp_path / "in")
    local, remote = tmp_path / "local", tmp_path / "slurm"
    assert main([*FILTER, "--input", str(src), "--output", str(local), "--quiet"]) == 0
    bad = src / "shakespeare-00001.parquet"  # rank 1 of 3 has only this shard
    good = _break(bad)
    submit = [
        *FILTER,
        "--input",
        str(src),
        "--output",
        str(remote),
        "--quiet",
        "--executor",
        "slurm",
        "--tasks",
        "3",
    ]
    _andes(slurm_cluster, *submit)
    first = _last_submission(remote)
    array = first["andes-filter"]
    assert slurm_cluster.wait(array) == "FAILED"
    states = slurm_cluster.states(array)
    assert states[f"{array}_1"] == "FAILED" and states[f"{array}_0"] == states[f"{array}_2"] == "COMPLETED"
    assert "not a readable Parquet file" in _log(remote, f"andes-filter-{array}_1.out")
    # The stats job never runs after a failed array (cancelled: --kill-on-invalid-dep).
    assert slurm_cluster.wait(first["andes-filter-stats"], timeout=60) == "CANCELLED"
    before = _markers(remote)
    assert sorted(before) == ["shakespeare-00000.json", "shakespeare-00002.json", "shakespeare-00003.json"]

    bad.write_bytes(good)
    res = _andes(slurm_cluster, *submit, *(["--only-missing"] if only_missing else []))
    second = _last_submission(remote)
    assert re.search(
        rf"andes-filter\s+{second['andes-filter']}\s+array {'1' if only_missing else '0-2'}\s", res.stdout
    )
    assert _wait_all(slurm_cluster, second) == dict.fromkeys(second, "COMPLETED")
    after = _markers(remote)
    assert {k: after[k] for k in before} == before  # finished shards were not redone
    assert "shakespeare-00001.json" in after
    assert _parquet_bytes(remote) == _parquet_bytes(local)
    assert _counts(json.loads((remote / "stats.json").read_text())) == _counts(
        json.loads((local / "stats.json").read_text())
    )
