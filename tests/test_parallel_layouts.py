"""Every parallel layout (FSDP, HSDP, TP, PP with each schedule, and their compositions, with and
without activation checkpointing and torch.compile) against one process: 3 steps of losses, every
parameter's gradient and the weights after the steps (fp32), through the trainer's own build
(`pretrain.build`) and step code (`pretrain.step`). The full matrix is `slow`; a representative
subset runs by default."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from distributed import run_distributed

from parallel.dims import ParallelDims
from parallel.pipeline import check_microbatches, split_layers, stage_ids, stages_per_rank
from parallel.utils import clip_grad_norm_
from pretrain.build import build_optimizer, init_model
from pretrain.configs import get_model_config
from pretrain.data import Batch
from pretrain.job_config import TrainConfig
from pretrain.sampling import full_state_dict
from pretrain.step import pipeline_train_step, train_step

SEQ, ROWS, MICRO, STEPS = 16, 8, 2, 3


def tiny(tie: bool = False):
    return get_model_config(
        "llama3_debug",
        dim=64,
        n_layers=4,
        n_heads=4,
        n_kv_heads=2,
        vocab_size=128,
        multiple_of=16,
        max_seq_len=64,
        tie_embeddings=tie,
    )


CUTS = [(9,), (4, 11), (3,), (8, 12), (5, 6), (13,), (1, 15), (7, 9)]
"""Where each row's packed documents start: inside and on the context-parallel chunk boundaries
(multiples of 4 for cp2, of 2 for cp4), one-token documents, and a document spanning chunks."""


def batch(step: int) -> Batch:
    """A global batch of ROWS rows of packed documents (positions restart at every boundary)."""
    g = torch.Generator().manual_seed(step)
    tokens = torch.randint(0, 128, (ROWS, SEQ + 1), generator=g)
    labels = tokens[:, 1:].clone()
    labels[-1, 12:] = -100  # some padding in one row
    doc_ids = torch.zeros(ROWS, SEQ, dtype=torch.int64)
    positions = torch.arange(SEQ).repeat(ROWS, 1)
    for row, cuts in enumerate(CUTS):
        for cut in cuts:
            doc_ids[row, cut:] += 1
            positions[row, cut:] -= positions[row, cut].clone()
    return Batch(tokens=tokens[:, :-1], labels=labels, doc_ids=doc_ids, positions=positions)


def config(**parallel) -> TrainConfig:
    cfg = TrainConfig()
    cfg.training.global_batch_size, cfg.training.micro_batch_size = ROWS, MICRO
    cfg.data.seq_len = SEQ
    for key, value in parallel.items():
        setattr(cfg.parallel, key, value)
    return cfg


def _fqn(name: str) -> str:
    return name.replace("_checkpoint_wrapped_module.", "").replace("_orig_mod.", "")


def run_steps(parts, pipe, dims: ParallelDims, cfg: TrainConfig, rank: int = 0) -> tuple:
    """STEPS optimizer steps on this rank's share of the batches: losses, first-step gradients, and
    the whole model's weights afterwards gathered on rank 0 (None elsewhere)."""
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor.parallel import loss_parallel

    loss_ctx = loss_parallel if dims.tp_enabled and cfg.parallel.loss_parallel else contextlib.nullcontext
    params = [p for part in parts for p in part.parameters()]
    optimizer = build_optimizer(parts, cfg)
    dp_rank = dims.dp_mesh().get_local_rank() if dims.dp_enabled else 0
    per = ROWS // dims.dp_size
    losses, grads = [], {}
    for step in range(STEPS):
        full = batch(step)
        mine = [getattr(full, f)[dp_rank * per : (dp_rank + 1) * per] for f in Batch.__dataclass_fields__]
        micro = [Batch(*(t[i : i + MICRO] for t in mine)) for i in range(0, per, MICRO)]
        if pipe is not None:
            loss = pipeline_train_step(pipe, micro, dims, torch.device("cpu"), loss_ctx)
        else:
            loss = train_step(parts[0], micro, dims, torch.device("cpu"), contextlib.nullcontext, loss_ctx)
        clip_grad_norm_(params, 1.0, pp_group=dims.pp_group())
        if step == 0:
            for part in parts:
                for name, p in part.named_parameters():
                    g = p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad
                    grads[_fqn(name)] = g.detach().clone().numpy()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    state = full_state_dict(parts, dims, rank)
    return losses, grads, None if state is None else {k: v.numpy() for k, v in state.items()}


def _layout_worker(
    rank: int, world: int, parallel: dict, tie: bool = False
) -> tuple[list[float], dict[str, np.ndarray]]:
    cfg = config(**parallel)
    p = cfg.parallel
    dims = ParallelDims(p.dp_replicate, p.dp_shard, p.tp, p.pp, world, cp=p.cp)
    dims.build_mesh("cpu")
    parts, pipe = init_model(tiny(tie), dims, cfg, torch.device("cpu"), full_init=True)
    return run_steps(parts, pipe, dims, cfg, rank)


def reference(tie: bool = False) -> tuple[list[float], dict[str, np.ndarray]]:
    cfg = config()
    dims = ParallelDims(dp_shard=1, world_size=1)
    parts, pipe = init_model(tiny(tie), dims, cfg, torch.device("cpu"), full_init=True)
    assert pipe is None
    return run_steps(parts, pipe, dims, cfg)


@pytest.fixture(scope="module")
def ref():
    return reference()


def check_equal(results, ref) -> None:
    ref_losses, ref_grads, ref_state = ref
    merged: dict[str, np.ndarray] = {}
    state = results[0][2]
    assert state.keys() == ref_state.keys()
    # The weights after STEPS AdamW steps, gathered on rank 0. Adam divides by the gradient's own
    # magnitude, so for an element whose gradient is near zero, rounding differences between
    # kernels (AVX2 vs AVX-512 machines) can move it by a visible fraction of the step size;
    # the absolute tolerance is 1% of the largest possible movement (lr per step). A wrong
    # update would differ by about the whole step size; gradients are compared tightly below.
    weight_atol = 1e-2 * TrainConfig().optim.lr * STEPS
    for name, value in state.items():
        np.testing.assert_allclose(value, ref_state[name], rtol=1e-4, atol=weight_atol, err_msg=name)
    for losses, grads, _ in results:
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
        merged.update(grads)  # pipeline ranks hold different layers; dp/tp ranks the same values
    assert merged.keys() == ref_grads.keys()
    for name, g in merged.items():
        np.testing.assert_allclose(g, ref_grads[name], rtol=1e-4, atol=1e-6, err_msg=name)
        assert np.abs(g).sum() > 0, name  # e.g. a silently zero embedding gradient


LAYOUTS = {
    "dp2": (2, {"dp_shard": 2}),
    "tp2": (2, {"tp": 2}),
    "dp2xtp2": (4, {"tp": 2, "dp_shard": 2}),
    "tp2-ac": (2, {"tp": 2, "activation_checkpoint": "full"}),
    "tp2-selective-op-ac": (2, {"tp": 2, "activation_checkpoint": "selective_op"}),
    # TP + compile could zero the embedding gradient silently (docs/torch_cpu_notes.md).
    "tp2-ac-compile": (2, {"tp": 2, "activation_checkpoint": "full", "compile": True}),
    "dp2xtp2-compile": (4, {"tp": 2, "dp_shard": 2, "compile": True}),
    "pp2-1F1B": (2, {"pp": 2, "pp_schedule": "1F1B"}),
    "pp2-GPipe": (2, {"pp": 2, "pp_schedule": "GPipe"}),
    "pp2-Interleaved1F1B": (2, {"pp": 2, "pp_schedule": "Interleaved1F1B"}),
    "pp2-InterleavedZeroBubble": (2, {"pp": 2, "pp_schedule": "InterleavedZeroBubble"}),
    "pp2-ZBVZeroBubble": (2, {"pp": 2, "pp_schedule": "ZBVZeroBubble"}),
    "dp2xpp2": (4, {"pp": 2, "dp_shard": 2}),
    "tp2xpp2": (4, {"pp": 2, "tp": 2}),
    "dp2xtp2xpp2": (8, {"pp": 2, "tp": 2, "dp_shard": 2}),
    "dp2xtp2xpp2-ac-compile": (
        8,
        {"pp": 2, "tp": 2, "dp_shard": 2, "activation_checkpoint": "full", "compile": True},
    ),
    "dp2-cpu-offload-zero2": (2, {"dp_shard": 2, "fsdp_cpu_offload": True, "reshard_after_forward": False}),
    "replicate2": (2, {"dp_replicate": 2, "dp_shard": 1}),
    "hsdp2x2": (4, {"dp_replicate": 2, "dp_shard": 2}),
    "replicate2xtp2xpp2": (8, {"dp_replicate": 2, "dp_shard": 1, "tp": 2, "pp": 2}),
    # Context parallelism: every sequence split over the cp ranks (parallel/context_parallel.py).
    "cp2": (2, {"cp": 2}),
    "cp4": (4, {"cp": 4}),
    "dp2xcp2": (4, {"dp_shard": 2, "cp": 2}),
    "hsdp2xcp2": (4, {"dp_replicate": 2, "dp_shard": 1, "cp": 2}),
    "tp2xcp2": (4, {"tp": 2, "cp": 2}),
    "pp2xcp2": (4, {"pp": 2, "cp": 2}),
    "dp2xtp2xcp2": (8, {"dp_shard": 2, "tp": 2, "cp": 2}),
    "tp2xcp2xpp2": (8, {"tp": 2, "cp": 2, "pp": 2}),
    "cp2-ac": (2, {"cp": 2, "activation_checkpoint": "full"}),
    "cp2-selective-op-ac": (2, {"cp": 2, "activation_checkpoint": "selective_op"}),
    "cp2-ac-compile": (2, {"cp": 2, "activation_checkpoint": "full", "compile": True}),
    "dp2xtp2xcp2-compile": (8, {"dp_shard": 2, "tp": 2, "cp": 2, "compile": True}),
}
DEFAULT = (
    "dp2xtp2",
    "tp2-ac-compile",
    "pp2-1F1B",
    "pp2-ZBVZeroBubble",
    "dp2xtp2xpp2",
    "cp2",
    "dp2xcp2",
    "tp2xcp2",
    "pp2xcp2",
    "dp2xtp2xcp2",
    "cp2-ac-compile",
)


@pytest.mark.distributed
@pytest.mark.parametrize(
    "layout", [pytest.param(k, marks=() if k in DEFAULT else pytest.mark.slow) for k in LAYOUTS]
)
def test_layout_losses_and_every_gradient_equal_one_process(layout, ref):
    world, parallel = LAYOUTS[layout]
    check_equal(run_distributed(_layout_worker, world, parallel), ref)


@pytest.mark.distributed
@pytest.mark.parametrize(
    "layout",
    ["dp2", pytest.param("tp2", marks=pytest.mark.slow), pytest.param("dp2xtp2", marks=pytest.mark.slow)],
)
def test_tied_embeddings_train_as_one_process(layout):
    """A tied model (one matrix for embedding and output) in FSDP (the root unit owns the matrix) and
    TP (both split it by vocabulary rows): the same losses, gradients and weights as one process, and
    the matrix is still one after the steps."""
    ref = reference(tie=True)
    assert set(ref[1]) == set(reference()[1]) - {"output.weight"}  # one parameter, one gradient
    world, parallel = LAYOUTS[layout]
    results = run_distributed(_layout_worker, world, parallel, True)
    check_equal(results, ref)
    state = results[0][2]
    np.testing.assert_array_equal(state["output.weight"], state["tok_embeddings.weight"])


def test_split_balances_and_explicit_counts():
    assert split_layers(8, 4) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    # Llama 3 405B as Meta ran it: 126 layers, 16 stages, one fewer block on the first and last.
    counts = [len(s) for s in split_layers(126, 16, first_extra=1, last_extra=1)]
    assert counts[0] == counts[-1] == 7 and set(counts[1:-1]) == {8} and sum(counts) == 126
    assert [len(s) for s in split_layers(6, 2, layers_per_stage=[2, 4])] == [2, 4]
    with pytest.raises(ValueError, match="pp_layers_per_stage"):
        split_layers(6, 2, layers_per_stage=[2, 3])
    with pytest.raises(ValueError, match="only 4 layers"):
        split_layers(4, 8)


def test_stage_placement_per_schedule():
    assert stages_per_rank("1f1b", 2) == 1
    assert stage_ids("Interleaved1F1B", 1, 4, 2) == [1, 5]
    assert stage_ids("ZBVZeroBubble", 1, 4, 2) == [1, 6]
    with pytest.raises(ValueError, match="pp_stages_per_rank=2"):
        stages_per_rank("ZBVZeroBubble", 3)
    with pytest.raises(ValueError, match="pp_schedule='Bogus'"):
        stages_per_rank("Bogus", 1)
    with pytest.raises(ValueError, match="at least parallel.pp=4 micro-batches"):
        check_microbatches("1F1B", 4, 2)
    with pytest.raises(ValueError, match="multiple of parallel.pp=4"):
        check_microbatches("Interleaved1F1B", 4, 6)


@pytest.mark.distributed
def test_torchrun_3d_metrics_equal_single_process(packed_data, tmp_path):
    """The issue's acceptance: 8 ranks dp2 x tp2 x pp2 write the losses (and validation loss) of 1 process."""
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO, compose, tiny_overrides

    from pretrain.train import train

    extra = (
        "training.steps=3",
        "training.micro_batch_size=2",
        "metrics.log_interval=1",
        f"validation.path={packed_data / 'val'}",
        "validation.steps=1",
    )
    single = train(compose(tiny_overrides(packed_data, tmp_path / "single", *extra)))
    run = tmp_path / "3d"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=8"]
    cmd += ["-m", "pretrain.train"]
    cmd += tiny_overrides(
        packed_data,
        run,
        *extra,
        "parallel.dp_shard=2",
        "parallel.tp=2",
        "parallel.pp=2",
        "checkpoint.enabled=false",
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records] == pytest.approx(single.losses, rel=1e-4)
    assert records[-1]["val_loss"] == pytest.approx(single.val_losses[3], rel=1e-4)
    assert "pp=2" in proc.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("parallel.pp=3",), "world_size=8"),
        (("parallel.pp=2", "parallel.tp=2", "parallel.pp_schedule=Bogus"), "pp_schedule='Bogus'"),
        (("parallel.pp=8", "parallel.dp_shard=1"), "8 pipeline stages"),
        (("parallel.pp=2", "parallel.pp_layers_per_stage=[1,2]"), "pp_layers_per_stage"),
        (("parallel.pp=2", "parallel.dp_shard=4", "training.micro_batch_size=2"), "at least parallel.pp=2"),
        (("parallel.cp=3", "parallel.dp_shard=1", "parallel.tp=2"), "world_size=8"),
        (("parallel.cp=2", "data.seq_len=30"), "needs data.seq_len=30 divisible by 2"),
        (
            (
                "parallel.cp=2",
                "parallel.tp=4",
                "parallel.dp_shard=1",
                "data.seq_len=20",
                "model.n_kv_heads=4",
            ),
            "each context rank's 10 tokens must split over tp",
        ),
        (("parallel.cp=2", "eval.tasks=[arc_easy]"), "eval.tasks with parallel.cp=2"),
        (("parallel.pp=2", "model.tie_embeddings=true"), "model.tie_embeddings=true"),
    ],
)
def test_bad_layouts_fail_before_any_process_group(packed_data, tmp_path, monkeypatch, overrides, message):
    import torch.distributed as dist
    from conftest import compose, tiny_overrides

    from pretrain.train import train

    monkeypatch.setenv("WORLD_SIZE", "8")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        train(compose(tiny_overrides(packed_data, tmp_path, *overrides)))
    assert not dist.is_initialized()


def _meta_init_worker(rank: int, world: int) -> dict:
    cfg = config(dp_replicate=2, dp_shard=1, tp=2)
    dims = ParallelDims(2, 1, 2, 1, world)
    dims.build_mesh("cpu")
    parts, _ = init_model(tiny(), dims, cfg, torch.device("cpu"), full_init=False)
    model = parts[0]
    local = {n: p.to_local().detach().clone().numpy() for n, p in model.named_parameters()}
    losses, _, _ = run_steps(parts, None, dims, cfg, rank)
    return {
        "tp": dims.local_rank("tp"),
        "replica": dims.local_rank("dp_replicate"),
        "local": local,
        "losses": losses,
    }


@pytest.mark.distributed
def test_meta_init_shards_differ_replicas_agree_and_train(ref):
    """The large-model path (meta device, shard, init in place): no repeated shards across TP ranks,
    identical HSDP replicas, the configured init statistics, and a model that trains."""
    results = run_distributed(_meta_init_worker, 4)
    by = {(r["replica"], r["tp"]): r for r in results}
    wq = "layers.0.attention.wq.weight"
    assert not np.array_equal(by[0, 0]["local"][wq], by[0, 1]["local"][wq])
    for tp in (0, 1):
        for name, value in by[0, tp]["local"].items():
            np.testing.assert_array_equal(value, by[1, tp]["local"][name], err_msg=name)
    assert abs(by[0, 0]["local"][wq].std() - 0.02) < 0.003  # trunc-normal(0.02) inside +-3 std
    assert abs(by[0, 1]["local"]["tok_embeddings.weight"].std() - 1.0) < 0.1
    losses = results[0]["losses"]
    # Same init distributions as the full-init path, so the same starting loss give or take noise.
    assert all(np.isfinite(losses)) and losses[0] == pytest.approx(ref[0][0], abs=0.25)
