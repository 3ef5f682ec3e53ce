"""The demo path end to end on the bundled corpus: filter, tokenizer, pack, 2-rank training, sampling."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from data_pipeline.cli import main as andes_data


@pytest.mark.slow
@pytest.mark.distributed
def test_demo_pipeline_trains_on_the_sample_corpus(tmp_path):
    sample = REPO / "data_pipeline" / "sample"
    data, run = tmp_path / "data", tmp_path / "run"
    recipe = str(REPO / "configs" / "pipeline" / "demo.yaml")
    assert andes_data(["run", recipe, f"input={sample}", f"output={data}", "--quiet"]) == 0
    stats = json.loads((data / "0_filter" / "stats.json").read_text())
    assert 0.8 * stats["docs_in"] < stats["docs_out"] < stats["docs_in"]  # filtered, mostly kept
    tok, packed = data / "2_train_tokenizer" / "tokenizer.model", data / "3_pack"
    report = json.loads((data / "1_dedup" / "dedup_report.json").read_text())
    assert report["documents"] == stats["docs_out"] and report["duplicates"] < 0.1 * report["documents"]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "pretrain.train",
        "model=llama3_debug",
        "model.vocab_size=4096",
        "data=demo",
        f"data.path={packed}",
        f"data.tokenizer={tok}",
        f"validation.path={packed / 'val'}",
        "validation.interval=40",
        "training.steps=40",
        "training.global_batch_size=16",
        "training.micro_batch_size=8",
        "optim.lr=2e-3",
        "metrics.log_interval=10",
        "training.sample_prompt=ROMEO.",
        f"run.dir={run}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["loss"] < records[0]["loss"] - 1.5
    assert "val_loss" in records[-1]
    assert "sample: ROMEO." in proc.stdout
