"""`python -m pretrain.average`: the mean of checkpoints, which ones, where it goes, what it refuses."""

from __future__ import annotations

import json
import os
import pickle
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from test_export_generate import ARGS, SHAPE, _dcp_save, _state, make_run

from pretrain import average, export, safe_dcp
from pretrain.checkpoint_files import checkpoint_model_args, load_model_state

STEPS = (100, 200, 300)


def _add_step(root: Path, step: int, state: dict) -> None:
    _dcp_save(state, root / "checkpoints" / f"step-{step}", train={"step": step})
    (root / "checkpoints" / "latest").write_text(f"step-{step}")


def _make(root: Path, dtype: torch.dtype = torch.float32) -> dict[int, dict[str, torch.Tensor]]:
    """A run with checkpoints at STEPS, each with its own random weights (stored in `dtype`)."""
    make_run(root, SHAPE, step=STEPS[0])
    states = {}
    for seed, step in enumerate(STEPS):
        states[step] = {k: v.to(dtype) for k, v in _state(ARGS, seed=seed + 1).items()}
        _add_step(root, step, states[step])
    return states


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("avg") / "run"
    return root, _make(root)


def _mean(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """By hand: a float32 sum in input order, divided, cast back to the stored dtype."""
    out = {}
    for k, v in states[0].items():
        total = v.float().clone()
        for s in states[1:]:
            total += s[k].float()
        out[k] = (total / len(states)).to(v.dtype)
    return out


def _loaded(out: Path) -> dict[str, torch.Tensor]:
    return load_model_state(out, checkpoint_model_args(out))  # what initial_load_path and export read


def _avg(argv: list[str], capsys) -> tuple[int, str]:
    code = average.main(argv)
    return code, capsys.readouterr().err


def test_average_of_step_dirs_is_the_mean(run, tmp_path, capsys):
    root, states = run
    dirs = [str(root / "checkpoints" / f"step-{s}") for s in STEPS]
    out = tmp_path / "avg"
    assert _avg([*dirs, "--out", str(out)], capsys) == (0, "")
    got, want = _loaded(out), _mean([states[s] for s in STEPS])
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert not torch.equal(got["output.weight"], states[300]["output.weight"])
    record = json.loads((out / average.RECORD_FILE).read_text())
    assert record["steps"] == list(STEPS) and record["accumulation"] == "float32"
    assert checkpoint_model_args(out) == ARGS
    assert [p.name for p in tmp_path.iterdir()] == ["avg"], "temp dir left behind"


@pytest.mark.parametrize(
    "select,steps",
    [
        (["--last", "2"], [200, 300]),
        (["--steps", "150:300"], [200, 300]),
        (["--steps", "100:200"], [100, 200]),
    ],
)
def test_selection_by_last_and_range(run, tmp_path, capsys, select, steps):
    root, states = run
    out = tmp_path / "avg"
    assert _avg([f"run.dir={root}", *select, "--out", str(out)], capsys) == (0, "")
    assert json.loads((out / average.RECORD_FILE).read_text())["steps"] == steps
    want = _mean([states[s] for s in steps])
    assert torch.equal(
        _loaded(out)["layers.1.feed_forward.w2.weight"], want["layers.1.feed_forward.w2.weight"]
    )


def test_output_exports_to_hf(run, tmp_path, capsys):
    root, states = run
    out, hf = tmp_path / "avg", tmp_path / "hf"
    assert _avg([f"run.dir={root}", "--last", "3", "--out", str(out)], capsys)[0] == 0
    assert export.main(["--checkpoint", str(out), "--out", str(hf)]) == 0
    with safe_open(str(hf / "model.safetensors"), "pt") as f:
        emb = f.get_tensor("model.embed_tokens.weight")
    assert torch.equal(emb, _mean([states[s] for s in STEPS])["tok_embeddings.weight"])


def test_bf16_is_accumulated_in_fp32(tmp_path, capsys):
    root = tmp_path / "run"
    states = _make(root, torch.bfloat16)
    out = tmp_path / "avg"
    assert _avg([f"run.dir={root}", "--steps", "0:1000", "--out", str(out)], capsys)[0] == 0
    got = _loaded(out)
    want = _mean([states[s] for s in STEPS])
    naive_differs = False
    for k, v in want.items():
        assert got[k].dtype == torch.bfloat16 and torch.equal(got[k], v), k
        a, b, c = (states[s][k] for s in STEPS)
        naive_differs |= not torch.equal((a + b + c) / 3, v)  # bf16 sums round at every add
    assert naive_differs


def test_overwrite_only_replaces_an_earlier_average(run, tmp_path, capsys):
    root, _ = run
    out = tmp_path / "avg"
    argv = [f"run.dir={root}", "--last", "1", "--out", str(out)]
    assert _avg(argv, capsys)[0] == 0
    code, err = _avg(argv, capsys)
    assert code == 1 and "--overwrite" in err
    assert _avg([*argv, "--overwrite"], capsys)[0] == 0
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    code, err = _avg([f"run.dir={root}", "--last", "1", "--out", str(other), "--overwrite"], capsys)
    assert code == 1 and "not written by pretrain.average" in err
    assert (other / "notes.txt").read_text() == "keep me"


def _refused(argv: list[str], capsys, match: str, out: Path) -> None:
    code, err = _avg([*argv, "--out", str(out)], capsys)
    assert code == 1 and err.count("\n") == 1 and match in err, err
    assert not out.exists()


def test_refusals(run, tmp_path, capsys):
    root, _ = run
    out = tmp_path / "avg"
    _refused([f"run.dir={root}", "--steps", "400:500"], capsys, "no checkpoint selected", out)
    _refused([f"run.dir={root}", "--last", "0"], capsys, "at least 1", out)
    inside = root / "checkpoints" / "avg"
    _refused([f"run.dir={root}", "--last", "2"], capsys, "inside the run's checkpoints dir", inside)
    step = str(root / "checkpoints" / "step-300")
    first = tmp_path / "first"
    assert _avg([step, "--out", str(first)], capsys)[0] == 0  # an input outside any checkpoints/ dir
    _refused([str(first)], capsys, "inside the input checkpoint", first / "x")
    # A different model: the first key that differs is named.
    other = tmp_path / "other"
    make_run(other, {**SHAPE, "vocab_size": 256}, step=5)
    _refused([str(other / "checkpoints" / "step-5"), step], capsys, "model key 'output.weight'", out)


def test_incomplete_checkpoint_is_refused(run, tmp_path, capsys):
    root = Path(shutil.copytree(run[0], tmp_path / "run"))
    partial = root / "checkpoints" / "step-400"
    partial.mkdir()
    (partial / "__0_0.distcp").write_bytes(b"")
    out = tmp_path / "avg"
    _refused([f"run.dir={root}", "--last", "2"], capsys, "step-400: incomplete checkpoint", out)
    _refused([str(partial)], capsys, "no .metadata", out)


class Payload:
    """Unpickling this runs a shell command that creates `marker` (as in test_checkpoint_security)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_crafted_metadata_is_refused(run, tmp_path, capsys):
    root = Path(shutil.copytree(run[0], tmp_path / "run"))
    step = root / "checkpoints" / "step-200"
    md = safe_dcp.read_metadata(step)
    marker = tmp_path / "pwned"
    md.note = Payload(marker)
    (step / ".metadata").write_bytes(pickle.dumps(md))
    out = tmp_path / "avg"
    _refused(
        [f"run.dir={root}", "--last", "3"],
        capsys,
        "step-200/.metadata: refused to unpickle posix.system",
        out,
    )
    assert not marker.exists()
