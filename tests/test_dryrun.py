"""`python -m pretrain.dryrun`: real shard shapes of a TP x CP x PP x FSDP layout, on a fake process group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from parallel.pipeline import split_layers
from pretrain.configs import PUBLISHED_PARAMS, get_model_config
from pretrain.dryrun import main

REPO = Path(__file__).resolve().parents[1]
LAYOUT_8B = [
    "model=llama3_8b", "parallel.tp=8", "parallel.pp=4", "parallel.dp_shard=4", "data.seq_len=8192",
    "training.global_batch_size=16", "training.micro_batch_size=1",
]  # fmt: skip
TP, PP, DP = 8, 4, 4
LLAMA3_405B = ["model=llama3_405b", "parallel.tp=8", "parallel.pp=16", "training.micro_batch_size=1"]
COLWISE = ("attention.wq", "attention.wk", "attention.wv", "feed_forward.w1", "feed_forward.w3", "output")
ROWWISE = ("attention.wo", "feed_forward.w2")


def dryrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pretrain.dryrun", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def dryrun_json(*args: str):
    proc = dryrun(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def stage_reports() -> list[dict]:
    """One report per pipeline rank (ranks 0, 32, 64, 96: dp = tp = 0) of llama3_8b on 128 ranks."""
    return dryrun_json(*LAYOUT_8B, "--all-pp-ranks")


@pytest.fixture(scope="module")
def last_rank() -> dict:
    """Rank 127: last pipeline stage, last FSDP shard, last TP rank."""
    return dryrun_json(*LAYOUT_8B, "--rank", "127")


def expected_local(name: str, shape: list[int], tp: int = TP, fsdp: int = DP) -> list[int]:
    """TP plan (parallel.tensor_parallel), then FSDP2 shards dim 0 of the TP-local tensor."""
    module = name.removesuffix(".weight")
    local = list(shape)
    if module.endswith(COLWISE) or module == "tok_embeddings":  # split by output rows / vocab rows
        local[0] //= tp
    elif module.endswith(ROWWISE):  # split by input features
        local[1] //= tp
    local[0] //= fsdp  # norms: TP-replicated, FSDP-sharded only
    return local


def test_stage_layers_follow_the_pipeline_split(stage_reports, last_rank):
    split = split_layers(32, PP, last_extra=1.0)  # configs/parallel/default.yaml's pp_last_stage_extra
    assert [r["rank"] for r in stage_reports] == [0, 32, 64, 96]
    for pp, r in enumerate(stage_reports):
        assert r["coords"] == {"pp": pp, "dp_replicate": 0, "dp_shard": 0, "cp": 0, "tp": 0}
        assert [s["stage"] for s in r["stages"]] == [pp]
        assert r["stages"][0]["layers"] == split[pp]
        blocks = {
            int(p["name"].split(".")[1]) for p in r["stages"][0]["params"] if p["name"].startswith("layers.")
        }
        assert blocks == set(split[pp])
    assert last_rank["coords"] == {"pp": 3, "dp_replicate": 0, "dp_shard": 3, "cp": 0, "tp": 7}
    assert last_rank["stages"][0]["layers"] == split[-1]


def test_local_shapes_are_tp_then_fsdp_shards(stage_reports, last_rank):
    for r in [*stage_reports, last_rank]:
        for p in r["stages"][0]["params"]:
            assert p["local_shape"] == expected_local(p["name"], p["global_shape"]), p
            assert p["bytes"] == 4 * p["numel"]
    wq = next(p for p in last_rank["stages"][0]["params"] if p["name"].endswith("attention.wq.weight"))
    assert wq["global_shape"] == [4096, 4096]
    assert wq["local_shape"] == [4096 // TP // DP, 4096]
    # FSDP2 on a TP-sharded param: a 2-D (dp_shard, tp) DTensor, dim 0 sharded by both (strided).
    assert wq["placements"] == ["_S(0, 8)", "S(0)"]
    wo = next(p for p in last_rank["stages"][0]["params"] if p["name"].endswith("attention.wo.weight"))
    assert (wo["local_shape"], wo["placements"]) == ([4096 // DP, 4096 // TP], ["S(0)", "S(1)"])


def test_embedding_first_stage_output_last(stage_reports):
    names = [{p["name"] for p in r["stages"][0]["params"]} for r in stage_reports]
    assert [("tok_embeddings.weight" in n) for n in names] == [True, False, False, False]
    assert [("output.weight" in n) for n in names] == [False, False, False, True]
    assert [("norm.weight" in n) for n in names] == [False, False, False, True]


def test_bytes_over_all_ranks_equal_the_model(stage_reports, last_rank):
    # Shards are even for this layout (rank 127 holds what rank 96 does), so every (tp, dp) rank of
    # a stage holds the bytes of its representative. The RMSNorm weights are the only parameters
    # replicated over TP (SequenceParallel), so their bytes count once per TP rank.
    assert last_rank["param_bytes"] == stage_reports[-1]["param_bytes"]
    total = 0
    for r in stage_reports:
        params = r["stages"][0]["params"]
        replicated = [p for p in params if p["placements"][-1] == "R"]  # tp is the innermost mesh dim
        assert {p["name"].split(".")[-2] for p in replicated} <= {"attention_norm", "ffn_norm", "norm"}
        total += r["param_bytes"] * TP * DP - sum(p["bytes"] for p in replicated) * (TP - 1) * DP
    assert total == get_model_config("llama3_8b").num_params() * 4
    r = stage_reports[0]
    assert r["grad_bytes"] == r["param_bytes"] and r["optim_bytes"] == 2 * r["param_bytes"]
    assert r["total_bytes"] == 4 * r["param_bytes"]


def test_table_output_names_every_parameter():
    proc = dryrun(*LAYOUT_8B, "--rank", "40")
    assert proc.returncode == 0, proc.stderr
    assert "layers.8.attention.wq.weight" in proc.stdout
    assert "(4096, 4096)" in proc.stdout and "(128, 4096)" in proc.stdout
    assert "of an 80 GiB GPU" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model=llama3_8b", "parallel.tp=3", "parallel.dp_shard=1"], "parallel.tp=3"),
        (["model=llama3_8b", "parallel.pp=4"], "parallel.dp_shard=-1"),
        ([*LAYOUT_8B, "--rank", "128"], "--rank 128"),
        (["parallel.nope=1"], "parallel.nope"),
    ],
)
def test_bad_layouts_exit_2_with_a_message(args, message, capsys):
    # In-process: these fail before any process group exists, and skip a 5 s interpreter start.
    assert main(args) == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def rank_9000_8k() -> dict:
    """Llama 3 405B on 16384 ranks (TP8 x PP16 x DP128, Table 4's 8K row): rank 9000."""
    args = ["parallel.dp_shard=128", "data.seq_len=8192", "training.global_batch_size=2048"]
    return dryrun_json(*LLAMA3_405B, *args, "--rank", "9000")


def test_405b_middle_stage_fits_its_share(rank_9000_8k):
    r = rank_9000_8k
    assert r["world_size"] == 16384
    assert r["coords"] == {"pp": 8, "dp_replicate": 0, "dp_shard": 101, "cp": 0, "tp": 0}
    assert len(r["stages"][0]["layers"]) == 8
    share = PUBLISHED_PARAMS["llama3_405b"] * 4 / 16384
    assert r["param_bytes"] == pytest.approx(share, rel=0.1)
    assert r["total_bytes"] < 80 * 2**30 / 100  # model state is < 1% of an H100: activations dominate


def test_405b_long_context_layout_shards_over_dp_shard_times_cp(rank_9000_8k):
    """Table 4's 131K row, TP8 x CP16 x PP16 x DP8 on 16384 ranks: rank 9000 is pp 8, dp 6, cp 5.

    FSDP shards over dp_shard x cp = 128 ranks, so every shard is 1/128 of the TP-local tensor,
    exactly what dp_shard=128 gives the 8K layout; every block's attention gathers K/V over cp.
    """
    args = ["parallel.cp=16", "parallel.dp_shard=8", "model.max_seq_len=131072", "data.seq_len=131072"]
    r = dryrun_json(*LLAMA3_405B, *args, "training.global_batch_size=128", "--rank", "9000")
    assert r["world_size"] == 16384
    assert r["degrees"] == {"pp": 16, "dp_replicate": 1, "dp_shard": 8, "cp": 16, "tp": 8}
    assert r["coords"] == {"pp": 8, "dp_replicate": 0, "dp_shard": 6, "cp": 5, "tp": 0}
    assert r["fsdp_shards"] == 8 * 16
    stage = r["stages"][0]
    assert stage["layers"] == rank_9000_8k["stages"][0]["layers"]
    assert stage["kv_gather_blocks"] == len(stage["layers"]) == 8
    assert rank_9000_8k["stages"][0]["kv_gather_blocks"] == 0
    for p in stage["params"]:
        assert p["local_shape"] == expected_local(p["name"], p["global_shape"], tp=8, fsdp=128), p
    wq = next(p for p in stage["params"] if p["name"].endswith("attention.wq.weight"))
    assert wq["local_shape"] == [16384 // 8 // (8 * 16), 16384]
    assert r["param_bytes"] == rank_9000_8k["param_bytes"]
    assert r["total_bytes"] == 4 * r["param_bytes"]
