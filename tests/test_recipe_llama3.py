"""The Llama 3 recipe (configs/recipe/llama3.yaml, launch/llama3_recipe.py): its config composes and
passes the trainer's checks, the stages split into invocations by layout, and (slow) the whole
recipe runs: staged training with FSDP then context parallelism, annealing to LR 0, averaging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "launch"))

from llama3_recipe import invocations  # noqa: E402

from pretrain.job_config import compose_config  # noqa: E402
from pretrain.stages import lr_schedule, plan_stages  # noqa: E402


def test_recipe_stages_follow_llama3s_shape():
    cfg = compose_config(["recipe=llama3"], data_path=None)
    plan = plan_stages(cfg)
    assert [s.name for s in plan] == ["ramp", "short", "long", "anneal"]
    assert plan[-1].last == cfg.training.steps  # the stages fill the run
    tokens = [s.global_batch_size * s.seq_len for s in plan]
    assert tokens[0] < tokens[1] == tokens[2] == tokens[3]  # the ramp, then constant tokens per step
    assert plan[2].seq_len == plan[3].seq_len == 4 * plan[1].seq_len
    assert (plan[-1].lr, plan[-1].lr_end) == ("linear", 0.0)
    assert len(dict(plan[-1].sources)) == 2  # the annealing mix
    total, segments = lr_schedule(cfg)
    assert total == 160 and len(segments) == 1


def test_long_stages_run_as_a_context_parallel_invocation():
    cfg = compose_config(["recipe=llama3"], data_path=None)
    assert invocations(plan_stages(cfg), cfg.data.seq_len, 2) == [
        (90, ["parallel.dp_shard=2"]),
        (160, ["parallel.cp=2", "parallel.dp_shard=1"]),
    ]


@pytest.mark.slow
@pytest.mark.distributed
def test_recipe_runs_end_to_end(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    andes_data = str(Path(sys.executable).with_name("andes-data"))
    demo = [andes_data, "run", "configs/pipeline/demo.yaml", "output=data/demo"]
    sample = subprocess.run([andes_data, "sample-path"], capture_output=True, text=True)
    subprocess.run([*demo, f"input={sample.stdout.strip()}", "--quiet"], cwd=REPO, env=env, check=True)
    run = tmp_path / "recipe"
    cmd = [sys.executable, "launch/llama3_recipe.py", "--run-dir", str(run)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} == {"ramp", "short", "long", "anneal"}
    assert records[-1]["step"] == 160 and records[-1]["lr"] == 0.0
    assert "dp=1 cp=2" in proc.stdout and "stage 4/4 'anneal'" in proc.stdout
    assert (run / "averaged" / "average.json").is_file()
