"""Memory/throughput estimator: parameter accounting, activations, schedules, published layouts, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from torch import nn

from parallel.activation_checkpoint import apply_ac
from pretrain.configs import get_model_config
from pretrain.estimate import (
    GIB,
    block_activations,
    bubble_fraction,
    estimate,
    in_flight,
    main,
)
from pretrain.job_config import TrainConfig
from pretrain.model import TransformerBlock, precompute_freqs_cis


def _cfg(
    model="llama3_8b", *, seq_len=8192, micro=1, n_micro=None, dtype="bfloat16", **parallel
) -> TrainConfig:
    """A trainer config without Hydra; global batch = n_micro (default 2*pp) micro-batches per DP rank."""
    cfg = TrainConfig()
    cfg.model.name, cfg.data.path, cfg.data.seq_len = model, "unused", seq_len
    cfg.training.dtype, cfg.training.micro_batch_size = dtype, micro
    parallel.setdefault("dp_shard", 1)
    for key, value in parallel.items():
        setattr(cfg.parallel, key, value)
    p = cfg.parallel
    cfg.training.global_batch_size = micro * p.dp_shard * p.dp_replicate * (n_micro or 2 * p.pp)
    return cfg


LAYOUTS = [
    {},
    {"dp_shard": 4},
    {"tp": 8, "dp_shard": 2},
    {"tp": 2, "dp_shard": 2, "dp_replicate": 2, "pp": 4},
    {"tp": 4, "dp_shard": 2, "pp": 2, "pp_schedule": "Interleaved1F1B", "pp_stages_per_rank": 4},
    {"tp": 2, "dp_shard": 4, "pp": 4, "pp_schedule": "ZBVZeroBubble", "pp_first_stage_extra": 1.0},
    {"pp": 4, "dp_shard": 2, "pp_layers_per_stage": [5, 9, 9, 9]},
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_parameter_bytes_over_all_ranks_add_up_to_the_model(layout):
    est = estimate(_cfg(**layout))
    d = est.degrees
    args = get_model_config("llama3_8b")
    norms = (2 * args.n_layers + 1) * args.dim  # replicated on every TP rank
    held = sum(r.params for r in est.ranks) * d["tp"] * d["dp_shard"] * d["dp_replicate"]
    expected = 4 * d["dp_replicate"] * (args.num_params() + (d["tp"] - 1) * norms)
    assert held == pytest.approx(expected, rel=1e-12)
    assert sum(est.blocks_per_stage) == args.n_layers
    assert [r.grads for r in est.ranks] == [r.params for r in est.ranks]
    assert [r.optimizer for r in est.ranks] == [2 * r.params for r in est.ranks]


def test_tp_fsdp_and_pp_each_cut_parameter_memory_by_their_degree():
    args = get_model_config("llama3_70b")
    whole = estimate(_cfg("llama3_70b")).ranks[0].params
    assert whole == 4 * args.num_params()
    assert estimate(_cfg("llama3_70b", dp_shard=8)).ranks[0].params == pytest.approx(whole / 8)
    norms = (2 * args.n_layers + 1) * args.dim
    tp8 = estimate(_cfg("llama3_70b", tp=8)).ranks[0].params
    assert tp8 == pytest.approx(4 * ((args.num_params() - norms) / 8 + norms))
    assert whole / tp8 == pytest.approx(8, rel=1e-3)
    pp = estimate(_cfg("llama3_70b", pp=4, pp_last_stage_extra=0.0, dtype="float32")).ranks
    assert [r.blocks for r in pp] == [20, 20, 20, 20]
    blocks = args.num_params(embeddings=False) - args.dim  # everything but embedding, final norm, output
    assert pp[1].params == pytest.approx(4 * blocks / 4) == pp[2].params
    assert pp[0].params == pytest.approx(pp[1].params + 4 * args.vocab_size * args.dim)
    assert pp[3].params == pytest.approx(pp[1].params + 4 * (args.vocab_size + 1) * args.dim)


@pytest.mark.parametrize("tp", [1, 8])
def test_activation_checkpointing_orders_memory(tp):
    act = {
        mode: estimate(_cfg("llama3_70b", tp=tp, activation_checkpoint=mode)).ranks[0].activations
        for mode in ("none", "selective_layer", "selective_op", "full")
    }
    assert act["none"] > act["selective_op"] > act["full"]
    assert act["none"] > act["selective_layer"] > act["full"]
    # Sequence parallelism splits all but the gathered norm outputs: a TP rank keeps more than 1/tp.
    assert block_activations(get_model_config("llama3_70b"), 8192, 8, 2, "full") * 8 == pytest.approx(
        block_activations(get_model_config("llama3_70b"), 8192, 1, 2, "full")
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_block_activations_equal_the_tensors_autograd_saves(dtype):
    """Reference: bytes autograd saves in one real block (CPU, causal flash attention), with the
    RMSNorms counted as CUDA's fused kernel saves them (its input only, not CPU's fp32 temporaries)."""
    args = get_model_config("llama3_debug", dim=256, n_heads=8, n_kv_heads=2, multiple_of=64)
    block = TransformerBlock(0, args).to(dtype)
    batch, seq = 2, 128
    freqs = precompute_freqs_cis(args.head_dim, seq, args.rope_theta)
    skip = {t.untyped_storage().data_ptr() for t in [freqs, *block.parameters()]}
    saved: dict[int, int] = {}
    in_norm: list[bool] = []

    def keep(t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            saved[storage.data_ptr()] = storage.nbytes()

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not in_norm:
            keep(t)
        return t

    def enter_norm(module: nn.Module, inputs: tuple) -> None:
        keep(inputs[0])
        in_norm.append(True)

    for norm in (block.attention_norm, block.ffn_norm):
        norm.register_forward_pre_hook(enter_norm)
        norm.register_forward_hook(lambda *_: in_norm.pop() and None)
    x = torch.randn(batch, seq, args.dim, dtype=dtype, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x, freqs, None)
    nbytes = 2 if dtype == torch.bfloat16 else 4
    assert sum(saved.values()) == block_activations(args, batch * seq, 1, nbytes, "none")

    # Full checkpointing keeps only the block's input.
    wrapped = nn.Module()
    wrapped.layers = nn.ModuleDict({"0": TransformerBlock(0, args).to(dtype)})
    apply_ac(wrapped, "full")
    saved.clear()
    skip.update(t.untyped_storage().data_ptr() for t in wrapped.parameters())
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        wrapped.layers["0"](x, freqs, None)
    assert sum(saved.values()) == block_activations(args, batch * seq, 1, nbytes, "full")


LLAMA3_405B = {"tp": 8, "pp": 16, "dp_shard": 128}
"""Llama 3 paper Table 4, 16,384 GPUs: TP 8, PP 16, DP 128, 8192-token sequences, 16 per DP rank."""


def test_llama3_405b_layout_fits_80gib_and_a_pure_fsdp8_one_does_not():
    fits = estimate(_cfg("llama3_405b", n_micro=16, activation_checkpoint="full", **LLAMA3_405B))
    assert fits.world_size == 16384 and fits.tokens_per_step == 16 * 1024 * 1024
    assert fits.fits and fits.peak.total < 80 * GIB
    # This trainer saves DTensor's gathered norm outputs and unfused SwiGLU tensors: without
    # checkpointing the 128 micro-batch-stages in flight do not fit (docs/parallelism_estimates.md).
    assert not estimate(_cfg("llama3_405b", n_micro=16, **LLAMA3_405B)).fits
    fsdp8 = estimate(_cfg("llama3_405b", dp_shard=8, activation_checkpoint="full"))
    assert not fsdp8.fits
    assert fsdp8.peak.params + fsdp8.peak.grads + fsdp8.peak.optimizer == pytest.approx(
        16 * get_model_config("llama3_405b").num_params() / 8
    )


def test_the_first_and_last_stages_differ():
    ranks = estimate(_cfg("llama3_405b", **LLAMA3_405B)).ranks
    assert ranks[0].logits == 0 < ranks[-1].logits
    assert ranks[0].in_flight == 16 and ranks[-1].in_flight == 1
    assert ranks[0].activations > ranks[8].activations > ranks[-1].activations


def test_schedules_hold_and_idle_as_published():
    pp, m = 8, 32
    assert [sum(in_flight("1F1B", r, pp, 1, m)) for r in range(pp)] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert sum(in_flight("GPipe", 3, pp, 1, m)) == m
    assert all(sum(in_flight("ZBVZeroBubble", r, pp, 2, m)) == 2 * pp for r in range(pp))
    assert in_flight("ZBVZeroBubble", 0, pp, 2, m) == [2 * pp - 1, 1]
    # torch's Interleaved1F1B warm-up on rank 0: (v-1)*pp + 2*(pp-1) forwards, plus the steady one.
    assert sum(in_flight("Interleaved1F1B", 0, pp, 4, m)) == 3 * pp + 2 * (pp - 1) + 1
    assert bubble_fraction("1F1B", pp, 1, m) == bubble_fraction("GPipe", pp, 1, m) == 7 / 32
    assert bubble_fraction("Interleaved1F1B", pp, 4, m) == 7 / 128
    assert bubble_fraction("ZBVZeroBubble", pp, 2, m) == 0
    assert bubble_fraction("1F1B", 1, 1, 1) == 0


def test_fsdp_options_move_memory_where_expected():
    base = estimate(_cfg("llama3_70b", dp_shard=8)).ranks[0]
    offload = estimate(_cfg("llama3_70b", dp_shard=8, fsdp_cpu_offload=True)).ranks[0]
    assert offload.params == offload.grads == offload.optimizer == 0
    assert offload.host == base.params + base.grads + base.optimizer
    zero2 = estimate(_cfg("llama3_70b", dp_shard=8, reshard_after_forward=False)).ranks[0]
    assert zero2.unsharded > 10 * base.unsharded  # the whole model gathered vs two blocks


def test_step_time_reproduces_torchtitan_8b_fsdp_throughput():
    """torchtitan benchmarks/llama3_h100_202412_torchtitan.md, Table 1: Llama 3.1 8B, FSDP 8,
    local batch 2 x 8192, 5,762 tokens/s/GPU, quoted as ~33% MFU (bf16, no compile)."""
    est = estimate(_cfg(dp_shard=8, micro=2, n_micro=1, activation_checkpoint="selective_op"), mfu=0.337)
    assert est.bubble == 0
    assert est.step_time_s == pytest.approx(est.flops_per_step / (8 * 989e12 * 0.337))
    assert est.tokens_per_s / 8 == pytest.approx(5762, rel=0.01)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pretrain.estimate", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_cli_prints_the_table_and_json():
    layout = ["model=llama3_405b", "parallel.tp=8", "parallel.pp=16", "parallel.dp_shard=128"]
    layout += ["data.seq_len=8192", "training.global_batch_size=2048", "training.micro_batch_size=1"]
    table = _run_cli(*layout, "--dtype", "bf16", "parallel.activation_checkpoint=full")
    assert table.returncode == 0, table.stderr
    assert "pp rank" in table.stdout and "fits in 80 GiB" in table.stdout
    rows = {line.split()[0] for line in table.stdout.splitlines() if line[:7].strip().isdigit()}
    assert rows >= {"0", "8", "15"}  # first (embedding), middle and last (output) pipeline ranks
    out = _run_cli(*layout, "--json", "--gpu-memory-gib", "40", "--mfu", "0.5")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["world_size"] == 16384 and len(data["ranks"]) == 16
    assert data["dtype"] == "float32"  # training.dtype's default: the trainer would run fp32
    assert data["fits"] is False and data["peak_gib"] > 40
    assert data["tokens_per_s"] == pytest.approx(data["tokens_per_step"] / data["step_time_s"])


def test_cli_rejects_bad_layouts_naming_the_option(capsys):
    bad = _run_cli("model=llama3_8b", "parallel.tp=3", "parallel.dp_shard=1")
    assert bad.returncode != 0 and "parallel.tp=3" in bad.stderr
    assert main(["model=llama3_8b", "parallel.tp=4", "parallel.dp_shard=2", "--world-size", "16"]) == 2
    assert "world_size=16" in capsys.readouterr().err
    assert main(["model=llama3_8b", "parallel.tp=4"]) == 2
    assert "--world-size" in capsys.readouterr().err
    assert main(["model=llama3_8b", "parallel.dp_shard=4", "training.global_batch_size=6"]) == 2
    assert "training.global_batch_size=6" in capsys.readouterr().err
    assert (
        main(["model=llama3_8b", "parallel.pp=4", "parallel.dp_shard=1", "training.micro_batch_size=4"]) == 2
    )
    assert "parallel.pp=4" in capsys.readouterr().err
    assert (
        main(["model=llama3_8b", "parallel.pp_schedule=Zigzag", "parallel.pp=2", "parallel.dp_shard=1"]) == 2
    )
    assert "parallel.pp_schedule" in capsys.readouterr().err
    auto = ["model=llama3_8b", "parallel.dp_shard=-1", "--world-size", "64", "parallel.tp=8"]
    assert main([*auto, "training.micro_batch_size=1"]) == 0
    assert "dp_shard 8" in capsys.readouterr().out
