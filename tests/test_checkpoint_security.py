"""Checkpoints never run code: crafted `.metadata` or byte entries are refused on resume, on
`checkpoint.initial_load_path` and in `pretrain.export`, before anything in them runs; corrupt
metadata and bad HF config.json files are one error naming the file (pretrain/safe_dcp.py)."""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from conftest import REPO, compose, tiny_overrides
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

from pretrain import export, safe_dcp
from pretrain.job_config import ConfigError
from pretrain.safe_dcp import CheckpointReadError
from pretrain.train import train

STEP = 2


class Payload:
    """What an attacker would pickle: unpickling it runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _overrides(data: Path, run: Path, *extra: str) -> list[str]:
    return tiny_overrides(
        data,
        run,
        f"training.steps={STEP + 1}",
        "checkpoint.enabled=true",
        f"checkpoint.interval={STEP}",
        "checkpoint.async_mode=disabled",
        *extra,
    )


@pytest.fixture(scope="module")
def trained(packed_data, tmp_path_factory) -> Path:
    """A real run dir with checkpoints of the tiny model (model, optim, train, rng) at steps 2 and 3."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train(compose(_overrides(packed_data, run)))
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the trained run that resumes from step 2 (the one tampered with)."""
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    shutil.rmtree(run / "checkpoints" / f"step-{STEP + 1}")
    (run / "checkpoints" / "latest").write_text(f"step-{STEP}\n")
    return run


def _step(run: Path) -> Path:
    return run / "checkpoints" / f"step-{STEP}"


def _plant_metadata_payload(step: Path, marker: Path) -> None:
    """The real metadata plus an extra attribute whose unpickling runs the payload: with plain
    `pickle.load` the checkpoint would still load normally, so nothing would look wrong."""
    md = safe_dcp.read_metadata(step)
    md.note = Payload(marker)
    (step / ".metadata").write_bytes(pickle.dumps(md))


def _resume(data: Path, run: Path):
    return train(compose(_overrides(data, run)))


def _export(args: list[str], capsys) -> tuple[int, str]:
    code = export.main(args)
    return code, capsys.readouterr().err


def test_metadata_payload_refused_on_resume(packed_data, run, tmp_path):
    marker = tmp_path / "pwned"
    _plant_metadata_payload(_step(run), marker)
    # Caught before the process group and the model exist: a config error (one line, exit 2).
    with pytest.raises(ConfigError, match=r"step-2/\.metadata: refused to unpickle posix\.system"):
        _resume(packed_data, run)
    assert not marker.exists()


def test_metadata_payload_refused_by_initial_load_path(packed_data, run, tmp_path):
    marker = tmp_path / "pwned"
    _plant_metadata_payload(_step(run), marker)
    fresh = tmp_path / "fresh"
    cfg = compose(
        tiny_overrides(packed_data, fresh, "training.steps=1", f"checkpoint.initial_load_path={_step(run)}")
    )
    with pytest.raises(CheckpointReadError, match=r"initial_load_path=.*step-2/\.metadata: refused"):
        train(cfg)
    assert not marker.exists()


def test_metadata_payload_refused_by_export(run, tmp_path, capsys):
    marker = tmp_path / "pwned"
    _plant_metadata_payload(_step(run), marker)
    code, err = _export([f"run.dir={run}", "--out", str(tmp_path / "hf")], capsys)
    assert code == 1
    assert err.count("\n") == 1 and f"{_step(run)}/.metadata: refused to unpickle posix.system" in err
    assert not marker.exists() and not (tmp_path / "hf").exists()


def test_bytes_entry_payload_refused_on_resume(packed_data, run, tmp_path):
    """A `.distcp` whose `train.loader.step` is a pickled payload (written by plain DCP save)."""
    marker = tmp_path / "pwned"
    step = _step(run)
    dcp_to_torch_save(step, tmp_path / "full.pt")
    state = torch.load(tmp_path / "full.pt", weights_only=True)
    state["train"]["loader"]["step"] = Payload(marker)
    shutil.rmtree(step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=str(step), no_dist=True)
    with pytest.raises(
        CheckpointReadError, match=r"step-2/__0_0\.distcp: entry 'train\.loader\.step'.*posix"
    ):
        _resume(packed_data, run)
    assert not marker.exists()


def _truncated(meta: bytes) -> bytes:
    return meta[: len(meta) // 2]


def _traversal(meta: bytes) -> bytes:
    md = pickle.loads(meta)
    for info in md.storage_data.values():
        info.relative_path = "../../../etc/passwd"
    return pickle.dumps(md)


BAD_METADATA = {
    "empty": (lambda meta: b"", "empty DCP metadata"),
    "truncated": (_truncated, "truncated or corrupt DCP metadata"),
    "garbage": (lambda meta: b"garbage\x00\xff" * 10, "truncated or corrupt DCP metadata"),
    "other-object": (lambda meta: pickle.dumps({"state_dict_metadata": {}}), "holds a dict, not DCP"),
    "path-traversal": (_traversal, "names data file '../../../etc/passwd'"),
}


@pytest.mark.parametrize("kind", list(BAD_METADATA))
def test_bad_metadata_is_one_error_naming_the_file(packed_data, run, tmp_path, capsys, kind):
    corrupt, message = BAD_METADATA[kind]
    meta = _step(run) / ".metadata"
    meta.write_bytes(corrupt(meta.read_bytes()))
    with pytest.raises(ConfigError, match=f"{meta}: {message}.*checkpoint.load_step"):
        _resume(packed_data, run)
    code, err = _export(["--checkpoint", str(_step(run)), "--out", str(tmp_path / "hf")], capsys)
    assert code == 1 and err.count("\n") == 1 and f"{meta}: {message}" in err


@pytest.mark.parametrize(
    "ref",
    [("builtins", "eval"), ("os", "system"), ("torch", "load"), ("torch", "_C"), ("subprocess", "Popen")],
)
def test_allowlist_refuses_every_other_global(tmp_path, ref):
    module, name = ref
    data = b"\x80\x04" + f"c{module}\n{name}\n".encode() + b"(V1\ntR."  # GLOBAL, call with one arg
    (tmp_path / ".metadata").write_bytes(data)
    with pytest.raises(CheckpointReadError, match=f"refused to unpickle {module}.{name}"):
        safe_dcp.read_metadata(tmp_path)


def test_pickle_cannot_change_allowed_classes(tmp_path):
    """BUILD on an allowed class (Metadata.__eq__ = dict) or function (_get_layout.cache) would
    outlive the load: refused, and undone."""
    from torch.distributed.checkpoint.metadata import Metadata

    eq, cache = Metadata.__eq__, torch.serialization._get_layout.cache
    build = b"N}V%s\ncbuiltins\ndict\ns\x86b."  # (None, {attr: dict}) then BUILD
    cases = [
        (b"ctorch.distributed.checkpoint.metadata\nMetadata\n" + build % b"__eq__", "Metadata"),
        (b"ctorch.serialization\n_get_layout\n" + build % b"cache", "_get_layout"),
    ]
    try:
        for body, name in cases:
            (tmp_path / ".metadata").write_bytes(b"\x80\x04" + body)
            with pytest.raises(CheckpointReadError, match=f"tried to change attributes of {name}"):
                safe_dcp.read_metadata(tmp_path)
            assert Metadata.__eq__ is eq and torch.serialization._get_layout.cache is cache
    finally:  # keep the process sane for other tests even if the guard failed
        Metadata.__eq__, torch.serialization._get_layout.cache = eq, cache


def test_persistent_ids_are_refused(tmp_path):
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if obj == "secret" else None

    buf = io.BytesIO()
    P(buf).dump({"a": "secret"})
    (tmp_path / ".metadata").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointReadError, match="refused to unpickle persistent id"):
        safe_dcp.read_metadata(tmp_path)


def test_legit_checkpoints_load_every_entry(trained, packed_data, run, tmp_path):
    """All of a real checkpoint (train state and optimizer hyper-parameters included) loads with
    weights_only, equal to what was saved; other dtypes and plain values too; and a run resumes."""
    dcp_to_torch_save(_step(trained), tmp_path / "full.pt")
    saved = torch.load(tmp_path / "full.pt", weights_only=True)
    template = torch.load(tmp_path / "full.pt", weights_only=True)
    for key, value in template["optim"].items():
        template["optim"][key] = torch.zeros_like(value) if torch.is_tensor(value) else None
    template["train"] = {"step": 0, "world_size": 0, "scheduler": {}, "loader": {}}
    template["train"]["scheduler"] = dict.fromkeys(saved["train"]["scheduler"])
    template["train"]["loader"] = dict.fromkeys(saved["train"]["loader"])
    safe_dcp.load(template, _step(trained), no_dist=True)
    assert template["train"] == saved["train"]
    for key, value in saved["optim"].items():
        assert (
            torch.equal(template["optim"][key], value)
            if torch.is_tensor(value)
            else template["optim"][key] == value
        )

    other = {"w": torch.randn(3, 4).bfloat16(), "i": torch.arange(5), "h": torch.ones(2).half()}
    extra = {"s": "text", "t": (1, 2.5), "l": [1, [2, 3]], "n": None, "b": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"model": other, "extra": extra}, checkpoint_id=str(tmp_path / "other"), no_dist=True)
    back = {"model": {k: torch.empty_like(v) for k, v in other.items()}, "extra": dict.fromkeys(extra)}
    safe_dcp.load(back, tmp_path / "other", no_dist=True)
    assert all(torch.equal(back["model"][k], v) for k, v in other.items())
    assert back["extra"] == extra

    result = _resume(packed_data, run)
    assert len(result.losses) == 1  # resumed after step 2, ran step 3


# -------------------------------------------------------------------------- export --from-hf config.json


def _hf_dir(root: Path, config: str | None) -> Path:
    d = root / "hf"
    d.mkdir()
    if config is not None:
        (d / "config.json").write_text(config)
    return d


GOOD = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 176,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 128,
}

BAD_CONFIGS = {
    "missing-file": (None, "config.json: no HF config.json"),
    "invalid-json": ('{"hidden_size": 64,', "config.json: not valid JSON"),
    "not-an-object": ("[1, 2]", "config.json: expected a JSON object, got list"),
    "missing-key": (
        json.dumps({k: v for k, v in GOOD.items() if k != "hidden_size"}),
        "missing key 'hidden_size'",
    ),
    "wrong-type": (
        json.dumps({**GOOD, "num_hidden_layers": "two"}),
        "num_hidden_layers='two' is not a number",
    ),
    "not-integer": (json.dumps({**GOOD, "vocab_size": 12.5}), "vocab_size=12.5 is not a positive integer"),
    "null-required": (json.dumps({**GOOD, "intermediate_size": None}), "missing key 'intermediate_size'"),
    "rope-not-object": (
        json.dumps({**GOOD, "rope_scaling": "llama3"}),
        "rope_scaling='llama3' is not an object",
    ),
    "rope-missing-key": (
        json.dumps({**GOOD, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}),
        "rope_scaling: missing key 'low_freq_factor'",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_CONFIGS))
def test_from_hf_bad_config_is_one_line_naming_file_and_key(tmp_path, capsys, kind):
    config, message = BAD_CONFIGS[kind]
    hf = _hf_dir(tmp_path, config)
    code, err = _export(["--from-hf", str(hf), "--out", str(tmp_path / "out")], capsys)
    assert code == 1
    assert err.startswith(f"error: {hf / 'config.json'}") and err.count("\n") == 1, err
    assert message in err


def test_from_hf_cli_reports_without_traceback(tmp_path):
    hf = _hf_dir(tmp_path, json.dumps({k: v for k, v in GOOD.items() if k != "vocab_size"}))
    out = subprocess.run(
        [sys.executable, "-m", "pretrain.export", "--from-hf", str(hf), "--out", str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 1
    assert out.stderr == f"error: {hf / 'config.json'}: missing key 'vocab_size'\n"
