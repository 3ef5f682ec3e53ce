"""Training stages: lookup, LR segments, load-time mixing, config and resume checks, and staged runs
that equal the same stages run as separate resumed invocations (also after kill -9, on 2 ranks)."""

from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose, tiny_overrides, write_packed
from test_checkpoint import kill9_tree, losses_by_step, torchrun, wait_for_step

import pretrain.stages as stages_module
from pretrain.checkpoint import latest_step
from pretrain.configs import RopeScaling, get_model_config
from pretrain.data import PackedDataset
from pretrain.job_config import ConfigError, LRConfig, StageConfig, TrainConfig, typed_config
from pretrain.lr import Segment, lr_multiplier
from pretrain.model import Transformer
from pretrain.preflight import check_layout
from pretrain.stage_data import StageLoader, apportion
from pretrain.stages import apply_rope, lr_schedule, plan_stages, rows_before, stage_at, total_steps
from pretrain.train import main, train

# Four stages of Llama 3's recipe in miniature (docs/training_stages.md): a short-context start,
# longer context with RoPE scaling, a batch ramp, and annealing on a mix with the LR going to 0.
STAGE_ENDS = (3, 7, 9, 12)


def stages(data: Path, *, long_steps: int = 4) -> str:
    return (
        "stages=[{name:short,steps:3},"
        f"{{name:long,steps:{long_steps},data_path:{data / 'long'},seq_len:64,global_batch_size:4,"
        "rope_scaling_factor:4},"
        "{name:ramp,steps:2,global_batch_size:16},"
        f"{{name:anneal,steps:3,mix:{{{data / 'train'}:0.75,{data / 'extra'}:0.25}},lr:linear,lr_end:0}}]"
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("staged")
    write_packed(root / "train", n_seq=64, seq_len=32, vocab=128)
    write_packed(root / "extra", n_seq=40, seq_len=32, vocab=128, seed=2)
    write_packed(root / "long", n_seq=32, seq_len=64, vocab=128, seed=3)
    return root


def overrides(data: Path, run: Path, *extra: str, long_steps: int = 4) -> list[str]:
    return tiny_overrides(
        data,
        run,
        stages(data, long_steps=long_steps),
        f"training.steps={STAGE_ENDS[-1]}",
        "training.micro_batch_size=2",
        "model.max_seq_len=64",
        "metrics.log_interval=1",
        "checkpoint.enabled=true",
        "checkpoint.interval=2",
        "checkpoint.async_mode=disabled",
        *extra,
    )


def config(data: Path, run: Path, *extra: str) -> TrainConfig:
    return typed_config(compose(overrides(data, run, *extra)))


# --- the plan ------------------------------------------------------------------------------------


def test_stages_are_numbered_in_the_run_and_resolved_from_the_base_config(data, tmp_path):
    cfg = config(data, tmp_path)
    plan = plan_stages(cfg)
    assert [(s.name, s.first, s.last) for s in plan] == [
        ("short", 1, 3), ("long", 4, 7), ("ramp", 8, 9), ("anneal", 10, 12),
    ]  # fmt: skip
    assert [s.seq_len for s in plan] == [32, 64, 32, 32]
    assert [s.global_batch_size for s in plan] == [8, 4, 16, 8]
    assert plan[0].sources == ((str(data / "train"), 1.0),)
    assert plan[3].sources == ((str(data / "extra"), 0.25), (str(data / "train"), 0.75))
    assert [stage_at(plan, step).name for step in (0, 1, 3, 4, 7, 8, 12, 13)] == [
        "short", "short", "short", "long", "long", "ramp", "anneal", "anneal",
    ]  # fmt: skip
    assert total_steps(cfg) == 12
    # The ramp and the anneal continue through data.path's rows where the earlier stages stopped.
    assert rows_before(plan, plan[2]) == [3 * 8]
    assert rows_before(plan, plan[3]) == [0, 3 * 8 + 2 * 16]


def test_without_stages_nothing_changes():
    cfg = TrainConfig()
    assert plan_stages(cfg) == [] and total_steps(cfg) == cfg.training.steps
    assert lr_schedule(cfg) == (cfg.training.steps, ())


# --- LR segments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["linear", "sqrt", "cosine"])
def test_annealing_segment_starts_from_the_schedule_and_ends_exactly_at_lr_end(data, tmp_path, shape):
    cfg = config(data, tmp_path, "lr.warmup_steps=2", f"stages.3.lr={shape}")
    total, segments = lr_schedule(cfg)
    assert total == 12 and [(s.first, s.last, s.shape, s.end) for s in segments] == [(9, 11, shape, 0.0)]
    staged = [lr_multiplier(i, cfg.lr, total, segments) for i in range(total)]
    plain = [lr_multiplier(i, cfg.lr, total) for i in range(total)]
    assert staged[:9] == plain[:9]  # the run's cosine schedule over all stages until the anneal
    assert staged[11] == 0.0
    assert plain[9] > staged[9] > staged[10] > staged[11]
    if shape == "linear":
        assert staged[9] == pytest.approx(plain[9] * 2 / 3) and staged[10] == pytest.approx(plain[9] / 3)


def test_segment_may_end_above_zero_and_follows_warmup():
    cfg = LRConfig(schedule="constant", warmup_steps=4)
    seg = (Segment(first=6, last=9, shape="linear", end=0.5),)
    values = [lr_multiplier(i, cfg, 10, seg) for i in range(12)]
    assert values[:6] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    assert values[6:10] == pytest.approx([0.875, 0.75, 0.625, 0.5])
    assert values[10:] == [1.0, 1.0]  # past the segment the schedule resumes


# --- mixing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "total", "counts"),
    [
        ([0.75, 0.25], 8, [6, 2]),
        ([1, 1, 1], 8, [3, 3, 2]),
        ([0.5, 0.3, 0.2], 7, [4, 2, 1]),
        ([2, 0, 1], 3, [2, 0, 1]),
        ([1e-9, 1], 4, [0, 4]),
    ],
)
def test_apportion_is_exact_and_deterministic(weights, total, counts):
    assert apportion(weights, total) == counts == apportion(weights, total)


def test_apportion_always_sums_to_the_batch():
    rng = np.random.default_rng(0)
    for _ in range(200):
        w = rng.random(rng.integers(1, 6))
        total = int(rng.integers(1, 500))
        counts = apportion(w, total)
        assert sum(counts) == total
        assert all(abs(c - x) < 1 for c, x in zip(counts, w / w.sum() * total, strict=True))


def _mix_loader(data: Path, **kw) -> StageLoader:
    sources = [PackedDataset(data / "train", 32), PackedDataset(data / "extra", 32)]
    kw = {"global_batch_size": 8, "micro_batch_size": 2, "seed": 3, "prefetch": False, **kw}
    return StageLoader("mix", 10, sources, [0.75, 0.25], [56, 0], **kw)


def test_mix_takes_exact_counts_per_step_in_a_seeded_order(data):
    loader = _mix_loader(data)
    n_train = len(loader.dataset.sources[0])
    seen = []
    for step in range(12):
        rows = loader.global_indices(step)
        from_train = int((rows < n_train).sum())
        assert (from_train, len(rows) - from_train) == (6, 2)
        seen.append(rows)
    # Each source is read in its own order from its start (train: 56 rows already read), without
    # repeats within an epoch (train wraps into its second epoch after one step: 64 rows).
    extra = np.concatenate([r[r >= n_train] for r in seen])
    assert len(set(extra.tolist())) == len(extra) == 24
    assert not np.array_equal(seen[0], np.sort(seen[0]))  # interleaved, not source by source
    again = _mix_loader(data)
    assert all(np.array_equal(again.global_indices(s), seen[s]) for s in range(12))
    assert not np.array_equal(_mix_loader(data, seed=4).global_indices(0), seen[0])


def test_mix_is_the_same_in_every_data_parallel_layout(data):
    whole = _mix_loader(data)
    for dp in (2, 4):
        ranks = [_mix_loader(data, dp_rank=r, dp_size=dp) for r in range(dp)]
        for _ in range(3):
            expected = whole.dataset.get(whole.global_indices(whole.step))
            whole.step += 1
            got = [mb for loader in ranks for mb in loader.next_step()]
            assert np.array_equal(np.concatenate([b.tokens for b in got]), expected.tokens.numpy())
            assert np.array_equal(np.concatenate([b.positions for b in got]), expected.positions.numpy())
        whole.step = 0


def test_loader_state_names_its_stage(data):
    loader = _mix_loader(data)
    loader.next_step()
    state = loader.state_dict()
    assert state == {"stage": "mix", "step": 1, "seed": 3, "global_batch_size": 8}
    other = StageLoader("anneal", 10, loader.dataset.sources, [0.75, 0.25], [56, 0], global_batch_size=8,
                        micro_batch_size=2, seed=3, prefetch=False)  # fmt: skip
    with pytest.raises(ValueError, match="stage 'mix' cannot resume stage 'anneal'"):
        other.load_state_dict(state)


# --- config checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["stages.2.name=short"], r"stages\[2\]\.name='short'"),
        (["stages.3.data_path=/x"], r"stages\[3\]: data_path=/x and mix are both set"),
        (["stages.3.lr_end=null"], r"stages\[3\]: lr='linear' and lr_end=None must be set together"),
        (["training.steps=13"], "training.steps=13 exceeds the 12 steps of all stages"),
        (["model.max_seq_len=48"], r"stages\[1\] 'long': stages\[1\]\.seq_len=64 exceeds max_seq_len=48"),
        (["stages.2.global_batch_size=9"], r"stages\[2\]\.global_batch_size=9 must be a multiple"),
        (["stages.1.seq_len=32"], r"stages\[1\]\.seq_len=32 but .*long was packed with seq_len=64"),
        (["stages.2.global_batch_size=128"], r"stages\[2\]\.global_batch_size=128 exceeds the 64"),
    ],
)
def test_bad_stages_are_one_line_errors_naming_the_stage(data, tmp_path, extra, match):
    with pytest.raises(ConfigError, match=match):
        train(config(data, tmp_path / "run", *extra))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_bad_mix_and_missing_stage_data(data, tmp_path):
    cfg = config(data, tmp_path)
    cfg.stages[3].mix = {str(data / "train"): 0.0, str(data / "extra"): -1.0}
    with pytest.raises(ConfigError, match=r"stages\[3\]\.mix=.*weights must be >= 0"):
        train(cfg)
    cfg.stages[3].mix = {str(data / "train"): 1.0, str(tmp_path / "nowhere"): 1.0}
    with pytest.raises(ConfigError, match=r"stages\[3\]\.mix: .*nowhere"):
        train(cfg)


def test_each_stage_batch_must_split_in_the_layout(data, tmp_path, monkeypatch):
    cfg = config(data, tmp_path)
    cfg.stages.append(StageConfig(name="odd", steps=1, global_batch_size=6))
    cfg.training.steps = 13
    check_layout(cfg, 1)
    with pytest.raises(ConfigError, match=r"stages\[4\] 'odd': stages\[4\]\.global_batch_size=6 must be"):
        check_layout(cfg, 2)  # micro_batch_size 2 x dp 2


# --- staged runs ---------------------------------------------------------------------------------


def test_one_stage_over_the_whole_run_trains_as_no_stages(data, tmp_path):
    plain = train(compose(tiny_overrides(data, tmp_path / "a", "training.steps=5")))
    staged = train(
        compose(tiny_overrides(data, tmp_path / "b", "training.steps=5", "stages=[{name:all,steps:5}]"))
    )
    assert staged.losses == plain.losses


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory) -> tuple[Path, list[float], str]:
    run = tmp_path_factory.mktemp("uninterrupted")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = train(config(data, run))
    return run, result.losses, out.getvalue()


def test_staged_run_logs_stages_and_anneals_to_zero(uninterrupted):
    run, losses, out = uninterrupted
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 13))
    assert [r["stage"] for r in records] == ["short"] * 3 + ["long"] * 4 + ["ramp"] * 2 + ["anneal"] * 3
    assert records[-1]["lr"] == 0.0 and records[-2]["lr"] > 0
    assert "stage 2/4 'long' from step 4 to 7: seq_len 64, global batch 4, data " in out
    assert "rope scaling factor 4" in out
    assert "stage 4/4 'anneal' from step 10 to 12: seq_len 32, global batch 8, mix " in out
    assert "(6 rows)" in out and "(2 rows)" in out and "lr linear to 0 x optim.lr" in out


@pytest.mark.parametrize("stops", [(3, 7, 9), (5,)], ids=["at-every-boundary", "mid-stage-2"])
def test_stages_run_as_separate_invocations_train_identically(data, tmp_path, uninterrupted, stops):
    _, losses, _ = uninterrupted
    run = tmp_path / "run"
    got = []
    for stop in (*stops, STAGE_ENDS[-1]):
        got += train(config(data, run, f"training.steps={stop}")).losses
    assert got == losses
    assert losses_by_step(run) == dict(enumerate(losses, start=1))


def test_changing_a_begun_stage_is_refused_and_a_later_one_noted(data, tmp_path, capsys):
    run = tmp_path / "run"
    train(config(data, run, "training.steps=5"))  # checkpoint at step 4 and 5, in stage 'long'
    capsys.readouterr()
    changed = overrides(data, run, "training.steps=6", long_steps=5)
    assert main(changed) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert (
        "stage stages[1] 'long' (steps 4-7) had begun, so it cannot change: stages[1].steps 4 -> 5" in err[0]
    )
    mix = f"stages.3.mix={{{data / 'train'}:0.5,{data / 'extra'}:0.5}}"
    later = overrides(data, run, "training.steps=6", mix)
    assert main(later) == 0
    out = capsys.readouterr().out
    assert "resume: stage stages[3] 'anneal' had not begun at step 5; changed: stages[3].mix" in out
    assert "stage 2/4 'long' from step 4 to 7 (resuming after step 5)" in out
    longer = overrides(data, run, "stages.3.steps=4", "training.steps=7")
    assert main(longer) == 2
    assert "the stages now total 13 steps, not 12" in capsys.readouterr().err
    assert main(overrides(data, run, "stages=[]", "training.steps=7")) == 2
    assert "the checkpoint was trained with stages; a run cannot add or drop them" in capsys.readouterr().err


@pytest.mark.distributed
def test_kill9_in_stage_2_resumes_into_stage_2_on_two_ranks(data, tmp_path, uninterrupted):
    """2 ranks (FSDP, dp=2), SIGKILL while in stage 2, then the command again (without the hang)."""
    _, losses, _ = uninterrupted
    run = tmp_path / "run"
    args = overrides(data, run, "parallel.dp_shard=2")
    proc = torchrun(2, [*args, "debug.hang_at_step=7"], tmp_path)  # stalls in stage 2 (steps 4-7)
    wait_for_step(run, 6, proc)
    deadline = time.monotonic() + 120  # then for step 6's checkpoint (the hang holds step 7 back)
    while latest_step(run / "checkpoints") != 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    kill9_tree(proc)
    proc = torchrun(2, args, tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "stage 2/4 'long' from step 4 to 7 (resuming after step 6)" in out
    got = losses_by_step(run)
    assert sorted(got) == list(range(1, 13))
    assert [got[s] for s in range(1, 13)] == pytest.approx(losses, rel=1e-5)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records][5:8] == ["long", "long", "ramp"]
    assert json.loads((run / "exit.json").read_text())["code"] == 0


def test_rope_table_is_the_scaled_models(data, tmp_path):
    args = get_model_config("llama3_debug", dim=64, n_heads=4, n_kv_heads=2, max_seq_len=64)
    model = Transformer(args)
    apply_rope([model], RopeScaling(factor=4.0))
    scaled = Transformer(replace(args, rope_scaling=RopeScaling(factor=4.0)))
    assert model.args == scaled.args and torch.equal(model.freqs_cis, scaled.freqs_cis)
    apply_rope([model], None)
    assert torch.equal(model.freqs_cis, Transformer(args).freqs_cis)


def test_rope_scaling_applies_from_the_stage_first_step_and_on_resume(data, tmp_path, monkeypatch):
    applied = []

    def record(parts, scaling):
        apply_rope(parts, scaling)
        applied.append((scaling.factor if scaling else None, parts[0].freqs_cis.clone()))

    monkeypatch.setattr(stages_module, "apply_rope", record)
    train(config(data, tmp_path / "run", "training.steps=5"))  # enters short, long
    train(config(data, tmp_path / "run", "training.steps=8"))  # resumes in long, enters ramp
    assert [factor for factor, _ in applied] == [None, 4.0, 4.0, None]
    tables = [table for _, table in applied]
    assert torch.equal(tables[1], tables[2]) and torch.equal(tables[0], tables[3])
    assert not torch.equal(tables[0], tables[1])


@pytest.mark.distributed
def test_pipeline_rebuilds_its_schedule_for_each_stage(data, tmp_path, uninterrupted):
    """pp=2: a new schedule for stage 2's micro-batch count and seq_len, in-run and on resume."""
    _, losses, _ = uninterrupted
    run = tmp_path / "run"
    for stop in (5, 12):  # resumes mid stage 2, then enters stages 3 and 4 in-run
        args = overrides(data, run, "parallel.pp=2", "parallel.dp_shard=1", f"training.steps={stop}")
        out, _ = torchrun(2, args, tmp_path).communicate(timeout=600)
        assert "checkpoint: saved step 12" in out or stop == 5, out[-3000:]
    got = losses_by_step(run)
    assert [got[s] for s in range(1, 13)] == pytest.approx(losses, rel=1e-5)
