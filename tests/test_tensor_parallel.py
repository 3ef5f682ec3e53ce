"""Tensor parallelism: degree checks, torchrun dp2 x tp2 against one process, activation checkpointing.

Loss and every gradient against one process for TP layouts: tests/test_parallel_layouts.py."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from conftest import REPO, compose, tiny_overrides

from parallel.activation_checkpoint import apply_ac
from parallel.tensor_parallel import check_tp
from pretrain.configs import get_model_config
from pretrain.data import Batch
from pretrain.model import Transformer
from pretrain.train import train

SEQ = 16


def tiny():
    return get_model_config(
        "llama3_debug",
        dim=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        vocab_size=128,
        multiple_of=16,
        max_seq_len=64,
    )


def batch(seed: int, n: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 128, (n, SEQ + 1), generator=g)
    doc_ids = torch.zeros(n, SEQ, dtype=torch.int64)
    doc_ids[:, 9:] = 1  # two packed documents per row
    positions = torch.cat([torch.arange(9), torch.arange(SEQ - 9)]).expand(n, SEQ).contiguous()
    return Batch(tokens=tokens[:, :-1], labels=tokens[:, 1:], doc_ids=doc_ids, positions=positions)


def _fqn(name: str) -> str:
    return name.replace("_checkpoint_wrapped_module.", "").replace("_orig_mod.", "")


def test_tp_degree_checks_name_the_shape():
    args = tiny()
    check_tp(args, 2, 32)
    with pytest.raises(ValueError, match="n_kv_heads=2"):
        check_tp(args, 4, 32)
    with pytest.raises(ValueError, match="data.seq_len=31"):
        check_tp(args, 2, 31)


@pytest.mark.distributed
def test_torchrun_dp2_tp2_losses_equal_single_process(packed_data, tmp_path):
    import json
    import subprocess

    steps = ("training.steps=4", "metrics.log_interval=1")
    single = train(compose(tiny_overrides(packed_data, tmp_path / "single", *steps)))
    run = tmp_path / "tp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=4",
        "--standalone",
        "-m",
        "pretrain.train",
    ]
    cmd += tiny_overrides(packed_data, run, *steps, "parallel.dp_shard=2", "parallel.tp=2")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses == pytest.approx(single.losses, rel=1e-4)


def _saved_bytes(model: Transformer) -> tuple[int, dict[str, torch.Tensor]]:
    """Bytes autograd keeps for backward during one forward, and the gradients after backward."""
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    b = batch(1, 4)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(b.tokens, b.doc_ids, positions=b.positions)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), b.labels.flatten()).backward()
    return sum(saved), {_fqn(n): p.grad for n, p in model.named_parameters()}


def test_activation_checkpointing_saves_memory_and_keeps_gradients():
    results = {}
    for mode in ("none", "full", "selective_layer", "selective_op"):
        torch.manual_seed(0)
        model = Transformer(tiny())
        model.init_weights()
        results[mode] = _saved_bytes(apply_ac(model, mode, every=2))
    base_bytes, base_grads = results["none"]
    for mode, (nbytes, grads) in results.items():
        for name, g in grads.items():
            torch.testing.assert_close(g, base_grads[name], rtol=1e-5, atol=1e-7)
        if mode != "none":
            assert nbytes < base_bytes, mode
    # selective_op keeps its saved matmul outputs in the checkpoint's own cache, which these hooks do
    # not see; what they show is that block-level checkpointing drops the most.
    assert results["full"][0] < results["selective_layer"][0] < base_bytes
    with pytest.raises(ValueError, match="activation_checkpoint='most'"):
        apply_ac(Transformer(tiny()), "most")
