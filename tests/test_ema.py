"""The EMA of the weights (pretrain/ema.py) equals a plain reference loop, ema = d * ema + (1 - d) * w
over the same weights: in one process, under FSDP and TP, through the trainer (with `every`, the
warm-up and a skipped non-finite step), across a resume (also into another layout), and as
`pretrain.average --ema` writes it."""

from __future__ import annotations

import contextlib
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose, tiny_overrides
from distributed import run_distributed
from test_average import Payload
from test_parallel_layouts import MICRO, ROWS, batch, config, tiny

from parallel.dims import ParallelDims
from parallel.utils import clip_grad_norm_
from pretrain import average, safe_dcp
from pretrain.build import build_optimizer, init_model
from pretrain.checkpoint import Checkpointer
from pretrain.checkpoint_files import checkpoint_model_args, load_model_state
from pretrain.data import Batch
from pretrain.ema import WeightEma
from pretrain.job_config import CheckpointConfig, ConfigError, EmaConfig, compose_config
from pretrain.lr import build_lr_scheduler
from pretrain.step import pipeline_train_step, train_step
from pretrain.train import train

DECAY, LR, STEPS, SAVED = 0.7, 1e-2, 4, 2
"""A large LR and a short memory, so the EMA is far from the weights and a wrong update shows."""


def reference_decay(step: int, warmup: bool, decay: float = DECAY) -> float:
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


# --- one process and sharded layouts, on the trainer's build and step code ----------------------


def _full(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Whole tensors of a (possibly sharded) state dict on every rank."""
    return {
        k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().numpy().copy()
        for k, v in state.items()
    }


def _weights(ema: WeightEma) -> dict[str, torch.Tensor]:
    return {name: p for p, names in zip(ema.params, ema.names, strict=True) for name in names}


class _Loader:
    """The data position the Checkpointer saves (these tests feed batches themselves)."""

    def state_dict(self) -> dict:
        return {"position": 0}

    def load_state_dict(self, state: dict) -> None:
        assert state == {"position": 0}


class Trainer:
    """One rank of a tiny model in a layout: AdamW steps on test_parallel_layouts' batches, an EMA."""

    def __init__(self, world: int, parallel: dict, every: int = 1, warmup: bool = False, root=None):
        cfg = config(**parallel)
        cfg.optim.lr, cfg.lr.schedule, cfg.lr.warmup_steps = LR, "constant", 0
        p = cfg.parallel
        self.dims = ParallelDims(
            dp_replicate=p.dp_replicate, dp_shard=p.dp_shard, tp=p.tp, pp=p.pp, world_size=world
        )
        if world > 1:
            self.dims.build_mesh("cpu")
        self.cfg = cfg
        self.parts, self.pipe = init_model(tiny(), self.dims, cfg, torch.device("cpu"), full_init=True)
        self.params = [q for part in self.parts for q in part.parameters()]
        self.ema = WeightEma(self.parts, EmaConfig(enabled=True, decay=DECAY, every=every, warmup=warmup))
        self.optimizer = build_optimizer(self.parts, cfg)
        sched = build_lr_scheduler(self.optimizer, cfg.lr, STEPS)
        ckpt_cfg = CheckpointConfig(enabled=True, async_mode="disabled")
        rank = torch.distributed.get_rank() if world > 1 else 0
        self.ckpt = Checkpointer(
            ckpt_cfg, root or Path("unused"), self.parts, [self.optimizer], [sched], _Loader(),
            rank=rank, world_size=world, ema=self.ema,
        )  # fmt: skip

    def step(self, step: int) -> None:
        """Optimizer step `step` (1-based) on this rank's share of the batch, then the EMA update."""
        from torch.distributed.tensor.parallel import loss_parallel

        dims, cpu = self.dims, torch.device("cpu")
        dp_rank = dims.dp_mesh().get_local_rank() if dims.dp_enabled else 0
        per = ROWS // dims.dp_size
        full = batch(step)
        mine = [getattr(full, f)[dp_rank * per : (dp_rank + 1) * per] for f in Batch.__dataclass_fields__]
        micro = [Batch(*(t[i : i + MICRO] for t in mine)) for i in range(0, per, MICRO)]
        loss_ctx = loss_parallel if dims.tp_enabled else contextlib.nullcontext
        if self.pipe is not None:
            pipeline_train_step(self.pipe, micro, dims, cpu, loss_ctx)
        else:
            train_step(self.parts[0], micro, dims, cpu, contextlib.nullcontext, loss_ctx)
        clip_grad_norm_(self.params, 1.0, pp_group=dims.pp_group())
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(step)


def _reference_loop_worker(rank: int, world: int, parallel: dict, every: int, warmup: bool, root=None):
    """STEPS steps: the gathered EMA, the reference loop over the gathered weights, the last weights,
    the model's state-dict keys, and (with `root`) the EMA saved in a checkpoint after step SAVED."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    t = Trainer(world, parallel, every, warmup, root)
    ref = _full(_weights(t.ema))
    saved = None
    for step in range(1, STEPS + 1):
        t.step(step)
        weights = _full(_weights(t.ema))
        if step % every == 0:
            d = reference_decay(step, warmup)
            ref = {k: d * v + (1 - d) * weights[k] for k, v in ref.items()}
        if root is not None and step == SAVED:
            t.ckpt.save(step, sync=True)
            saved = _full(t.ema.state_dict())
    keys = sorted(k for part in t.parts for k in get_model_state_dict(part))
    return {"ema": _full(t.ema.state_dict()), "ref": ref, "weights": weights, "keys": keys, "saved": saved}


def _resume_worker(rank: int, world: int, parallel: dict, root: Path) -> dict:
    """Restore step SAVED in this layout: the EMA as loaded, and after the remaining steps."""
    t = Trainer(world, parallel, root=root)
    t.ckpt.load(SAVED)
    loaded = _full(t.ema.state_dict())
    for step in range(SAVED + 1, STEPS + 1):
        t.step(step)
    return {"loaded": loaded, "ema": _full(t.ema.state_dict())}


def _merged(results: list[dict]) -> dict:
    """The ranks' results as one: pipeline ranks hold different layers, dp/tp ranks the same."""
    out = {k: {} for k in ("ema", "ref", "weights")}
    for r in results:
        for k in out:
            out[k].update(r[k])
    out["keys"] = sorted({k for r in results for k in r["keys"]})
    out["saved"] = results[0]["saved"]
    return out


def _assert_all(got: dict, want: dict, **tol) -> None:
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], err_msg=k, **tol)


LAYOUT_ATOL = 1e-2 * LR * STEPS  # test_parallel_layouts' weight tolerance: Adam and kernel rounding
LAYOUTS = {"dp2": {"dp_shard": 2}, "tp2": {"tp": 2, "activation_checkpoint": "full"}, "pp2": {"pp": 2}}


@pytest.fixture(scope="module")
def one_process() -> dict:
    return _reference_loop_worker(0, 1, {}, 1, False)


@pytest.fixture(scope="module")
def dp2(tmp_path_factory) -> tuple[dict, Path]:
    """A dp2 (FSDP) run that saved a checkpoint after step SAVED."""
    root = tmp_path_factory.mktemp("dp2")
    return _merged(run_distributed(_reference_loop_worker, 2, LAYOUTS["dp2"], 1, False, root)), root


@pytest.mark.parametrize(("every", "warmup"), [(1, False), (2, True)])
def test_ema_equals_reference_loop_in_one_process(every, warmup):
    r = _reference_loop_worker(0, 1, {}, every, warmup)
    _assert_all(r["ema"], r["ref"], rtol=1e-5, atol=1e-7)
    assert sorted(r["ema"]) == r["keys"]  # keyed like the model state: it reshards like it
    far = max(np.abs(r["ema"][k] - r["weights"][k]).max() for k in r["keys"])
    assert far > 10 * LAYOUT_ATOL  # the average lags the weights by more than layouts differ


def test_tied_embedding_has_one_average_under_both_names():
    parts, _ = init_model(
        tiny(tie=True), ParallelDims(dp_shard=1), config(), torch.device("cpu"), full_init=True
    )
    state = WeightEma(parts, EmaConfig(enabled=True)).state_dict()
    assert sorted(state) == sorted(parts[0].state_dict())
    assert state["output.weight"] is state["tok_embeddings.weight"]


@pytest.mark.distributed
@pytest.mark.parametrize("layout", ["dp2", "tp2", pytest.param("pp2", marks=pytest.mark.slow)])
def test_sharded_ema_equals_reference_loop(layout, dp2, one_process):
    """FSDP shards, TP splits (with activation checkpointing's wrapped names) and pipeline stages: the
    gathered EMA is the reference loop over the gathered weights, and the single-process EMA up to
    layout rounding."""
    if layout == "dp2":
        r = dp2[0]
    else:
        r = _merged(run_distributed(_reference_loop_worker, 2, LAYOUTS[layout], 1, False))
    _assert_all(r["ema"], r["ref"], rtol=1e-5, atol=1e-7)
    assert r["keys"] == one_process["keys"] == sorted(r["ema"])
    _assert_all(r["ema"], one_process["ema"], rtol=1e-4, atol=LAYOUT_ATOL)


@pytest.mark.distributed
def test_ema_resumes_into_another_layout(dp2, one_process):
    """dp2's checkpoint of step SAVED restores the same EMA in one process and under tp2, and the
    run continues to the uninterrupted run's EMA."""
    r, root = dp2
    resumed = [_resume_worker(0, 1, {}, root)]
    resumed += run_distributed(_resume_worker, 2, LAYOUTS["tp2"], root)[:1]
    for got in resumed:
        _assert_all(got["loaded"], r["saved"], rtol=0, atol=0)
        _assert_all(got["ema"], one_process["ema"], rtol=1e-4, atol=LAYOUT_ATOL)


# --- through the trainer: checkpoints, skipped steps, resume, pretrain.average --ema ----------


def _overrides(data: Path, run: Path, *extra: str) -> list[str]:
    return tiny_overrides(
        data, run, "training.steps=6", "checkpoint.enabled=true", "checkpoint.interval=1",
        "checkpoint.keep_last=0", *extra,
    )  # fmt: skip


EMA_ON = ("ema.enabled=true", "ema.decay=0.8", "ema.every=2", "ema.warmup=true")
NAN = ("debug.nan_at_step=4", "training.max_nonfinite_skips=1")  # step 4: an EMA step, skipped


def _ckpt(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step}"


def _state(run: Path, step: int, key: str) -> dict[str, torch.Tensor]:
    path = _ckpt(run, step)
    return load_model_state(path, checkpoint_model_args(path), key=key)


@pytest.fixture(scope="module")
def trained(packed_data, tmp_path_factory) -> Path:
    """6 steps with an EMA every 2 steps (warm-up on) and a checkpoint after each; step 4 skipped."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train(compose(_overrides(packed_data, run, *EMA_ON, *NAN)))
    return run


def test_trainer_ema_equals_reference_loop_and_skips_nonfinite_steps(trained):
    first = _state(trained, 1, "model")
    ema = _state(trained, 1, "ema")  # no update at step 1 (every=2): the initial weights
    for step in range(2, 7):
        weights = _state(trained, step, "model")
        if step == 4:  # skipped: neither the weights nor the average moved
            assert all(torch.equal(weights[k], v) for k, v in _state(trained, 3, "model").items())
        elif step % 2 == 0:
            d = reference_decay(step, warmup=True, decay=0.8)
            ema = {k: d * v + (1 - d) * weights[k] for k, v in ema.items()}
        got = _state(trained, step, "ema")
        for k in ema:
            torch.testing.assert_close(got[k], ema[k], rtol=1e-5, atol=1e-7, msg=k)
    assert not torch.allclose(ema["output.weight"], first["output.weight"])


def _resume_from(run: Path, step: int) -> None:
    """Keep the checkpoints up to `step`, as if the run had died after saving it."""
    for d in (run / "checkpoints").glob("step-*"):
        if int(d.name[5:]) > step:
            shutil.rmtree(d)
    (run / "checkpoints" / "latest").write_text(f"step-{step}\n")


def test_resumed_run_continues_the_ema(trained, packed_data, tmp_path):
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    _resume_from(run, 3)
    train(compose(_overrides(packed_data, run, *EMA_ON, *NAN)))
    want, got = _state(trained, 6, "ema"), _state(run, 6, "ema")
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-7, msg=k)


def test_checkpoint_without_ema_starts_it_from_the_restored_weights(packed_data, tmp_path, capsys):
    run = tmp_path / "run"
    train(compose(_overrides(packed_data, run, "training.steps=3")))
    assert not any(k.startswith("ema.") for k in safe_dcp.read_metadata(_ckpt(run, 3)).state_dict_metadata)
    _resume_from(run, 2)
    capsys.readouterr()
    train(compose(_overrides(packed_data, run, "training.steps=3", "ema.enabled=true", "ema.decay=0.8")))
    assert "holds no EMA of the weights; it starts from them" in capsys.readouterr().out
    w2, w3, got = _state(run, 2, "model"), _state(run, 3, "model"), _state(run, 3, "ema")
    for k, v in got.items():
        torch.testing.assert_close(v, 0.8 * w2[k] + 0.2 * w3[k], rtol=1e-5, atol=1e-7, msg=k)
    code = average.main(["--ema", str(_ckpt(run, 2)), "--out", str(tmp_path / "ema")])
    assert code == 1 and "holds no EMA of the weights" in capsys.readouterr().err


def test_average_ema_writes_the_ema_as_a_model_checkpoint(trained, packed_data, tmp_path, capsys):
    out = tmp_path / "ema"
    assert average.main(["--ema", f"run.dir={trained}", "--out", str(out)]) == 0  # the latest: step 6
    assert "EMA of the weights at step 6" in capsys.readouterr().out
    got, want = load_model_state(out, checkpoint_model_args(out)), _state(trained, 6, "ema")
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    # A new run starts from it, and so does its EMA (every=2: no update yet after step 1).
    run = tmp_path / "from_ema"
    start = f"checkpoint.initial_load_path={out}"
    train(compose(_overrides(packed_data, run, "training.steps=1", *EMA_ON, start)))
    assert all(torch.equal(v, want[k]) for k, v in _state(run, 1, "ema").items())
    with pytest.raises(SystemExit):  # one checkpoint only
        average.main(["--ema", f"run.dir={trained}", "--last", "2", "--out", str(tmp_path / "x")])


def test_average_ema_refuses_crafted_metadata(trained, tmp_path, capsys):
    step = Path(shutil.copytree(_ckpt(trained, 6), tmp_path / "step-6"))
    md = safe_dcp.read_metadata(step)
    marker = tmp_path / "pwned"
    md.note = Payload(marker)
    (step / ".metadata").write_bytes(pickle.dumps(md))
    assert average.main(["--ema", str(step), "--out", str(tmp_path / "ema")]) == 1
    assert "refused to unpickle posix.system" in capsys.readouterr().err and not marker.exists()


@pytest.mark.parametrize("override", ["ema.decay=0", "ema.decay=1.0", "ema.decay=1.5", "ema.every=0"])
def test_bad_ema_config_is_a_config_error(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        compose_config([override])
