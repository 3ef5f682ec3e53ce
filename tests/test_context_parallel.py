"""Context parallelism pieces against plain references: the head-tail split, the document mask of
local queries against gathered keys (SDPA and FlexAttention), and the trainer under torchrun with
cp2 against one process, resuming across cp layouts. Every layout's losses and gradients against
one process: tests/test_parallel_layouts.py (cp2, cp4, dp2xcp2, tp2xcp2, pp2xcp2, dp2xtp2xcp2, ...)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, compose, tiny_overrides

from parallel.context_parallel import check_cp, chunks_of, gathered_index, local_index, shard_sequence
from pretrain.model import InnerAttention, document_block_mask, document_causal_mask


def test_head_tail_chunks_balance_causal_work():
    """Rank i holds chunks i and 2cp-1-i: every rank's queries see the same number of keys."""
    seq, cp = 64, 4
    assert [chunks_of(r, cp) for r in range(cp)] == [(0, 7), (1, 6), (2, 5), (3, 4)]
    work = [int((local_index(seq, r, cp) + 1).sum()) for r in range(cp)]  # causal keys per query
    assert len(set(work)) == 1
    t = torch.arange(2 * seq).view(2, seq)
    parts = [shard_sequence(t, r, cp) for r in range(cp)]
    assert all(p.shape == (2, seq // cp) for p in parts)
    # Every token exactly once, and gathered_index says where each gathered one came from.
    gathered = torch.cat(parts, dim=1)
    torch.testing.assert_close(gathered, t[:, gathered_index(seq, cp)])
    assert sorted(gathered_index(seq, cp).tolist()) == list(range(seq))


def _packed_doc_ids(seq: int) -> torch.Tensor:
    cuts = [[5, 6, 17, 31], [16, 40], [1], [63]]
    doc_ids = torch.zeros(len(cuts), seq, dtype=torch.int64)
    for row, row_cuts in enumerate(cuts):
        for c in row_cuts:
            doc_ids[row, c:] += 1
    return doc_ids


def _layout(doc_ids: torch.Tensor, rank: int, cp: int):
    seq = doc_ids.shape[1]
    local = shard_sequence(doc_ids, rank, cp)
    kv_doc = torch.cat([shard_sequence(doc_ids, r, cp) for r in range(cp)], dim=1)
    return local, (local_index(seq, rank, cp), gathered_index(seq, cp), kv_doc)


@pytest.mark.parametrize("cp", [2, 4, 8])
def test_local_mask_is_the_full_mask_at_local_rows_and_gathered_columns(cp):
    doc_ids = _packed_doc_ids(64)
    full = document_causal_mask(doc_ids)
    for rank in range(cp):
        local, layout = _layout(doc_ids, rank, cp)
        got = document_causal_mask(local, key_layout=layout)
        want = full[:, :, layout[0]][:, :, :, layout[1]]
        assert torch.equal(got, want), rank
        assert got.any(-1).all()  # every query sees at least itself: no empty softmax rows


@pytest.mark.parametrize("cp", [2, 4])
def test_flex_and_sdpa_attention_with_key_layout_equal_full_attention_rows(cp):
    """Local queries attending to gathered K/V give the full sequence's outputs at their positions,
    with the dense mask (SDPA) and with the block mask (FlexAttention, forward: CPU has no backward)."""
    torch.manual_seed(0)
    doc_ids = _packed_doc_ids(64)
    q, k, v = (torch.randn(4, 2, 64, 16) for _ in range(3))
    attend = InnerAttention()
    full = attend(q, k, v, document_causal_mask(doc_ids))
    for rank in range(cp):
        local, layout = _layout(doc_ids, rank, cp)
        q_local = q[:, :, layout[0]]
        k_all, v_all = k[:, :, layout[1]], v[:, :, layout[1]]
        want = full[:, :, layout[0]]
        dense = attend(q_local, k_all, v_all, document_causal_mask(local, key_layout=layout))
        torch.testing.assert_close(dense, want, rtol=1e-5, atol=1e-5)
        block = attend(q_local, k_all, v_all, document_block_mask(local, key_layout=layout))
        torch.testing.assert_close(block, want, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_cuda_flex_with_key_layout_forward_and_backward_equal_full_attention():
    """The GPU path: compiled FlexAttention under the local-vs-gathered block mask, gradients of q, k
    and v included, against full-row attention (one GPU standing in for every context rank)."""
    torch.manual_seed(0)
    cp, doc_ids = 4, _packed_doc_ids(1024).cuda()
    doc_ids[:, 600:] += 1
    q, k, v = (torch.randn(4, 2, 1024, 64, device="cuda", requires_grad=True) for _ in range(3))
    attend = InnerAttention()
    out = attend(q, k, v, document_block_mask(doc_ids))
    (out * out).sum().backward()
    want = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    for rank in range(cp):
        local, layout = _layout(doc_ids, rank, cp)
        part = attend(
            q[:, :, layout[0]],
            k[:, :, layout[1]],
            v[:, :, layout[1]],
            document_block_mask(local, key_layout=layout),
        )
        torch.testing.assert_close(part, out[:, :, layout[0]].detach(), rtol=2e-3, atol=2e-3)
        (part * part).sum().backward()  # gradients of k and v summed over ranks, as the reduce-scatter does
    for got, ref in zip((q.grad, k.grad, v.grad), want, strict=True):
        torch.testing.assert_close(got, ref, rtol=2e-3, atol=2e-3)


def test_bad_sequence_lengths_are_named():
    with pytest.raises(ValueError, match=r"data.seq_len=30 divisible by 2\*cp=4"):
        check_cp(2, 30)
    with pytest.raises(ValueError, match="each context rank's 10 tokens"):
        check_cp(2, 20, tp=4)
    check_cp(1, 7)  # no context parallelism: nothing to split


def test_decoding_with_context_parallel_layout_is_refused():
    from parallel.context_parallel import _key_layout_hook

    class FakeMesh:
        def size(self):
            return 2

        def get_local_rank(self):
            return 0

    hook = _key_layout_hook(FakeMesh())
    with pytest.raises(ValueError, match="decode on one rank"):
        hook(None, (torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long)), {"caches": []})
    with pytest.raises(ValueError, match="needs doc_ids"):
        hook(None, (torch.zeros(1, 4, dtype=torch.long),), {})


def _torchrun(nproc: int, overrides: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--standalone"]
    cmd += ["-m", "pretrain.train", *overrides]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _losses(run_dir) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines)}


@pytest.mark.distributed
def test_trainer_cp2_equals_one_process_and_resumes_in_another_layout(packed_data, tmp_path):
    """torchrun with parallel.cp=2 (the trainer's own data, loss and validation path) logs the same
    losses and validation loss as one process, and its checkpoint resumes under dp2 (no cp) on the
    same trajectory: parameters sharded over dp_shard x cp reshard like any other layout."""
    from pretrain.train import train

    steps = ("training.steps=6", "metrics.log_interval=1", "checkpoint.interval=3")
    extra = (*steps, f"validation.path={packed_data / 'val'}", "validation.steps=1", "validation.interval=3")
    single = train(compose(tiny_overrides(packed_data, tmp_path / "single", *extra)))
    run = tmp_path / "cp2"
    first = tiny_overrides(packed_data, run, *extra, "parallel.cp=2", "checkpoint.enabled=true")
    proc = _torchrun(2, first, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "cp=2" in proc.stdout
    assert [_losses(run)[s] for s in range(1, 7)] == pytest.approx(single.losses, rel=1e-4)
    again = [*first, "parallel.cp=1", "parallel.dp_shard=2", "checkpoint.load_step=3"]
    resumed = _torchrun(2, again, tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming after step 3" in resumed.stdout
    losses = _losses(run)
    assert [losses[s] for s in range(1, 7)] == pytest.approx(single.losses, rel=1e-4)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val_loss"] for r in records if r.get("val_loss") is not None}
    assert val[3] == pytest.approx(single.val_losses[3], rel=1e-4)
