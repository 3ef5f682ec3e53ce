"""Export to / import from Hugging Face format, checkpoint resolution, and sampling (KV cache, top-p)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from omegaconf import OmegaConf

from pretrain import export
from pretrain import generate as gen
from pretrain.configs import RopeScaling, get_model_config
from pretrain.export import load_model_state, resolve_checkpoint
from pretrain.generate import build_model, generate, new_caches
from pretrain.job_config import ModelConfig, TrainConfig
from pretrain.model import Transformer

REPO = Path(__file__).resolve().parents[1]
SHAPE = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=128, multiple_of=16, max_seq_len=64)
ARGS = get_model_config("llama3_debug", **SHAPE)


def _state(args, seed=0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = Transformer(args)
    model.init_weights()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _dcp_save(state: dict, path: Path, **extra) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"model": state, **extra}, checkpoint_id=str(path), no_dist=True)


def make_run(root: Path, shape: dict, *, step: int = 3, tokenizer: Path | None = None, manifest=None):
    """A run dir as the trainer leaves it: config.yaml, checkpoints/step-N (DCP) and `latest`."""
    cfg = TrainConfig()
    cfg.run.dir = str(root)
    cfg.model = ModelConfig(name="llama3_debug", **shape)
    cfg.data.path = str(root / "packed")
    cfg.data.tokenizer = str(tokenizer) if tokenizer else None
    if manifest is not None:
        (root / "packed").mkdir(parents=True)
        (root / "packed" / "manifest.json").write_text(json.dumps(manifest))
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    state = _state(get_model_config("llama3_debug", **shape))
    _dcp_save(state, root / "checkpoints" / f"step-{step}", train={"step": step})
    (root / "checkpoints" / "latest").write_text(f"step-{step}")
    return state


MANIFEST = {
    "format": "andes-packed-v1",
    "tokenizer": {
        "name": "toy",
        "sha256": "0" * 64,
        "n_vocab": 128,
        "bos_id": 120,
        "eos_id": 121,
        "pad_id": 3,
    },
    "seq_len": 64,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp") / "run"
    state = make_run(root, SHAPE, manifest=MANIFEST)
    return root, state


@pytest.fixture(scope="module")
def hf_dir(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "export"
    assert export.main([f"run.dir={run[0]}", "--out", str(out)]) == 0
    return out


def _ours(state, args=ARGS):
    return build_model(state, args)


# ------------------------------------------------------------------------------------------- export


def test_export_logits_match_transformers(run, hf_dir):
    import transformers

    _, state = run
    assert sorted(p.name for p in hf_dir.iterdir()) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
    ]
    assert not [p for p in hf_dir.parent.iterdir() if p.name.startswith(".")], "temp dir left behind"
    config = json.loads((hf_dir / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"]) == (120, 121)  # from the packed manifest
    assert json.loads((hf_dir / "generation_config.json").read_text())["eos_token_id"] == 121
    hf = transformers.LlamaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    x = torch.randint(0, ARGS.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (_ours(state)(x) - hf(x).logits).abs().max().item()
    assert diff < 1e-4


def test_greedy_matches_transformers_generate(run, hf_dir):
    import transformers

    hf = transformers.LlamaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    prompt = [5, 17, 42, 9]
    ours = generate(_ours(run[1]), prompt, 12)
    with torch.no_grad():
        theirs = hf.generate(
            torch.tensor([prompt]), max_new_tokens=12, min_new_tokens=12, do_sample=False, pad_token_id=0
        )
    assert ours == theirs[0, len(prompt) :].tolist()


def test_export_cli_subprocess(run, tmp_path, capsys):
    from safetensors import safe_open

    out = tmp_path / "bf16"
    cmd = [sys.executable, "-m", "pretrain.export", f"run.dir={run[0]}", "--step", "3", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([*cmd, "--dtype", "bf16"], cwd=REPO, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "exported" in res.stdout
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        w = f.get_tensor("model.layers.0.self_attn.q_proj.weight")
    assert w.dtype == torch.bfloat16
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    # An existing output is never clobbered without --overwrite; with it, it is replaced whole.
    argv = [f"run.dir={run[0]}", "--out", str(out)]
    assert export.main(argv) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert export.main([*argv, "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "float32"
    assert [p.name for p in tmp_path.iterdir()] == ["bf16"]


def test_export_checkpoint_flag_and_missing_step(run, tmp_path, capsys):
    step_dir = run[0] / "checkpoints" / "step-3"
    assert export.main(["--checkpoint", str(step_dir), "--out", str(tmp_path / "a")]) == 0
    assert export.main(["--checkpoint", str(run[0]), "--step", "7", "--out", str(tmp_path / "b")]) == 1
    assert "step-7" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------------------------------- import


def test_import_round_trip_identical(run, hf_dir, tmp_path):
    _, state = run
    ckpt = tmp_path / "imported"
    assert export.main(["--from-hf", str(hf_dir), "--out", str(ckpt)]) == 0
    assert resolve_checkpoint(ckpt) == ckpt
    args = export.checkpoint_model_args(ckpt)
    assert args == ARGS  # intermediate_size 176 -> multiple_of=16, no multiplier: the original shape
    loaded = load_model_state(ckpt, args)
    assert loaded.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k
    # A named config must agree with the HF shapes (here only with the run's overrides).
    overrides = [f"model.{k}={v}" for k, v in SHAPE.items()]
    out2 = tmp_path / "named"
    assert (
        export.main(["--from-hf", str(hf_dir), "--out", str(out2), "--model", "llama3_debug", *overrides])
        == 0
    )
    with pytest.raises(ValueError, match="does not match model 'llama3_debug'"):
        export.import_hf(hf_dir, tmp_path / "bad", model="llama3_debug")
    assert not (tmp_path / "bad").exists()


def test_import_tied_embeddings_and_unexpected_keys(run, hf_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(hf_dir / "model.safetensors"))
    tied = tmp_path / "tied"
    tied.mkdir()
    config = json.loads((hf_dir / "config.json").read_text())
    (tied / "config.json").write_text(json.dumps(config))
    save_file({k: v for k, v in tensors.items() if k != "lm_head.weight"}, str(tied / "model.safetensors"))
    # Untied (the config says so): the output needs its own lm_head.weight, never a silent copy.
    with pytest.raises(ValueError, match="missing lm_head.weight"):
        export.load_hf(tied)
    (tied / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": True}))
    state, args = export.load_hf(tied)
    assert args.tie_embeddings
    assert state["output.weight"] is state["tok_embeddings.weight"]

    save_file({**tensors, "model.extra.weight": torch.zeros(2)}, str(tied / "model.safetensors"))
    with pytest.raises(ValueError, match="unexpected model.extra.weight"):
        export.load_hf(tied)


@pytest.mark.parametrize("tied", [False, True])
def test_import_transformers_saved_model(tmp_path, tied):
    """A checkpoint written by transformers itself (its own config.json layout) imports exactly."""
    import transformers

    cfg = transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=200,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    args = export.import_hf(tmp_path / "hf", tmp_path / "ckpt")
    assert (args.ffn_hidden_dim, args.kv_heads, args.norm_eps, args.max_seq_len) == (200, 2, 1e-6, 64)
    assert args.tie_embeddings == tied
    state = load_model_state(tmp_path / "ckpt", export.checkpoint_model_args(tmp_path / "ckpt"))
    # The tied matrix is stored under both names (one per module), equal; untied ones differ.
    assert torch.equal(state["output.weight"], state["tok_embeddings.weight"]) == tied
    x = torch.randint(0, 128, (1, 50))
    with torch.no_grad():
        assert (build_model(state, args)(x) - hf(x).logits).abs().max().item() < 1e-4


def test_import_never_unpickles(tmp_path, hf_dir):
    (tmp_path / "config.json").write_text((hf_dir / "config.json").read_text())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(FileNotFoundError, match="pickle"):
        export.import_hf(tmp_path, tmp_path / "out")


def _hf_config(**kw):
    base = {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "max_position_embeddings": 8192,
        "hidden_act": "silu",
    }
    return {**base, **kw}


def test_args_from_hf_config_published_llamas():
    assert export.args_from_hf_config(_hf_config()).ffn_hidden_dim == 14336
    assert export.args_from_hf_config(_hf_config()) == get_model_config("llama3_8b")
    llama31 = _hf_config(
        max_position_embeddings=131072,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )
    assert export.args_from_hf_config(llama31) == get_model_config("llama3_1_8b")
    seventy = _hf_config(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64
    )
    a = export.args_from_hf_config(seventy)
    assert (a.ffn_hidden_dim, a.n_layers, a.kv_heads) == (28672, 80, 8)
    # Our own config.json (transformers 5 `rope_parameters` too) round-trips every shape.
    for args in (ARGS, get_model_config("llama3_1_8b"), get_model_config("llama3_405b")):
        assert export.args_from_hf_config(export.hf_config(args)) == args
    with pytest.raises(ValueError, match="rope_type"):
        export.args_from_hf_config(_hf_config(rope_scaling={"rope_type": "yarn", "factor": 2.0}))


@pytest.mark.parametrize(
    ("dim", "hidden"), [(64, 176), (4096, 11008), (2048, 8192), (768, 3072), (512, 1000)]
)
def test_ffn_params_reproduce_intermediate_size(dim, hidden):
    multiple_of, mult = export._ffn_params(dim, hidden)
    args = get_model_config("llama3_debug", dim=dim, n_heads=8, n_kv_heads=8)
    assert (
        type(args)(**{**vars(args), "multiple_of": multiple_of, "ffn_dim_multiplier": mult}).ffn_hidden_dim
        == hidden
    )


def test_rope_scaled_export_matches_transformers(tmp_path):
    import transformers

    args = get_model_config("llama3_debug", **{**SHAPE, "rope_scaling": RopeScaling(original_max_seq_len=16)})
    state = _state(args)
    export.export_hf(state, args, tmp_path / "hf")
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    x = torch.randint(0, args.vocab_size, (1, 60))
    with torch.no_grad():
        assert (build_model(state, args)(x) - hf(x).logits).abs().max().item() < 1e-4
    export.import_hf(tmp_path / "hf", tmp_path / "ckpt")
    assert export.checkpoint_model_args(tmp_path / "ckpt").rope_scaling == args.rope_scaling


# --------------------------------------------------------------------------------- checkpoint paths


def test_resolve_checkpoint_forms(run):
    root = run[0]
    step = root / "checkpoints" / "step-3"
    assert resolve_checkpoint(root) == step
    assert resolve_checkpoint(root / "checkpoints") == step
    assert resolve_checkpoint(step) == step
    assert resolve_checkpoint(root, step=3) == step


def test_resolve_checkpoint_errors(run, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        resolve_checkpoint(tmp_path / "nope")
    partial = tmp_path / "checkpoints" / "step-9"
    partial.mkdir(parents=True)
    with pytest.raises(ValueError, match="step-9.*incomplete"):
        resolve_checkpoint(partial)
    with pytest.raises(ValueError, match="no complete checkpoint"):
        resolve_checkpoint(tmp_path)
    empty_run = tmp_path / "empty_run"
    empty_run.mkdir()
    with pytest.raises(FileNotFoundError, match="empty_run"):
        resolve_checkpoint(empty_run)
    with pytest.raises(FileNotFoundError, match="step-4"):
        resolve_checkpoint(run[0], step=4)


def test_latest_pointing_at_incomplete_falls_back(run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(run[0], root)
    ckpts = root / "checkpoints"
    shutil.copytree(ckpts / "step-3", ckpts / "step-10")
    (ckpts / "step-10" / ".metadata").unlink()  # a save that died before finishing
    (ckpts / "step-12").mkdir()
    (ckpts / "latest").write_text("step-12\n")
    with pytest.warns(UserWarning, match="step-3"):
        assert resolve_checkpoint(root) == ckpts / "step-3"
    (ckpts / "latest").unlink()
    assert resolve_checkpoint(root) == ckpts / "step-3"
    with pytest.raises(ValueError, match="incomplete"):
        resolve_checkpoint(root, step=10)


def test_load_model_state_errors(run, tmp_path):
    step = tmp_path / "step-3"
    shutil.copytree(run[0] / "checkpoints" / "step-3", step)
    with pytest.raises(ValueError, match=f"{step}.*dim=32"):
        load_model_state(step, get_model_config("llama3_debug", **{**SHAPE, "dim": 32}))
    with pytest.raises(ValueError, match="unexpected layers.1"):
        load_model_state(step, get_model_config("llama3_debug", **{**SHAPE, "n_layers": 1}))
    (step / ".metadata").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=str(step)):
        load_model_state(step, ARGS)


# ------------------------------------------------------------------------------------------ sampling


def test_greedy_cache_equals_no_cache_and_manual_argmax(run):
    model = _ours(run[1])
    prompt = [1, 2, 3, 4, 5]
    cached = generate(model, prompt, 20)
    uncached = generate(model, prompt, 20, use_cache=False)
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(20):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    assert cached == uncached == seq[len(prompt) :]
    # Near max_seq_len both paths stop at the same point.
    long_prompt = list(range(60))
    assert generate(model, long_prompt, 20) == generate(model, long_prompt, 20, use_cache=False)
    assert len(generate(model, long_prompt, 20)) == ARGS.max_seq_len - len(long_prompt) + 1


def test_stop_ids_and_top_k_one(run):
    model = _ours(run[1])
    greedy = generate(model, [7, 8], 10)
    assert generate(model, [7, 8], 10, stop_ids=(greedy[3],))[-1] == greedy[3]
    assert generate(model, [7, 8], 10, temperature=1.5, top_k=1, seed=3) == greedy


def test_tiny_top_p_is_greedy(run):
    model = _ours(run[1])
    greedy = generate(model, [3, 1, 4], 16)
    for use_cache in (True, False):
        assert generate(model, [3, 1, 4], 16, temperature=1.0, top_p=1e-9, use_cache=use_cache) == greedy


def test_sampling_is_seeded(run):
    model = _ours(run[1])
    kw = dict(temperature=1.0, top_p=0.9, top_k=50)
    a = generate(model, [9, 9], 24, seed=5, **kw)
    assert a == generate(model, [9, 9], 24, seed=5, **kw)
    others = [generate(model, [9, 9], 24, seed=s, **kw) for s in range(3)]
    assert any(o != a for o in others)


def test_top_p_keeps_only_the_nucleus():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    g = torch.Generator().manual_seed(0)
    draws = {gen._sample(probs.log(), 1.0, None, 0.75, g) for _ in range(300)}
    assert draws == {1, 3}  # 0.5 + 0.3 reaches 0.75; 0.15 and 0.05 are cut
    draws = {gen._sample(probs.log(), 1.0, None, 1.0, g) for _ in range(300)}
    assert draws == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="top_p"):
        generate(build_model(_state(ARGS), ARGS), [1], 2, temperature=1.0, top_p=0.0)


def test_kv_cache_is_gqa_sized(run, monkeypatch):
    assert ARGS.kv_heads < ARGS.n_heads
    made = []

    def spy(*a, **kw):
        caches = new_caches(*a, **kw)
        made.extend(caches)
        return caches

    monkeypatch.setattr(gen, "new_caches", spy)
    gen.generate(_ours(run[1]), [1, 2, 3], 5)
    assert len(made) == ARGS.n_layers
    for c in made:
        assert c.k.shape == c.v.shape == (1, 3 + 5, ARGS.kv_heads, ARGS.head_dim)


# ------------------------------------------------------------------------------------ generate CLI


def _byte_ranks(path: Path) -> Path:
    """A tiktoken ranks file of the 256 single bytes: 256 + 256 special tokens = 512 ids."""
    path.write_text("".join(f"{base64.b64encode(bytes([i])).decode()} {i}\n" for i in range(256)))
    return path


def test_generate_cli_run_and_hf_dir(tmp_path, capsys):
    tok = _byte_ranks(tmp_path / "bytes.tiktoken")
    shape = {**SHAPE, "vocab_size": 512}
    root = tmp_path / "run"
    make_run(root, shape, step=5, tokenizer=tok)
    flags = ["--prompt", "hello", "--max-new-tokens", "8", "--temperature", "0"]
    assert gen.main(["--checkpoint", str(root), *flags]) == 0
    from_run = capsys.readouterr().out
    assert from_run.startswith("hello")
    # The export carries the run's tokenizer (and its bos/eos ids, with no packed manifest to read).
    assert export.main([f"run.dir={root}", "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "tokenizer.model").read_bytes() == tok.read_bytes()
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["bos_token_id"] == 256
    capsys.readouterr()
    assert gen.main(["--checkpoint", str(tmp_path / "hf"), *flags, "--no-cache"]) == 0
    assert capsys.readouterr().out == from_run
    # Sampling flags parse and are seeded.
    sample = ["--checkpoint", str(root), "--prompt", "hi", "--top-p", "0.9", "--top-k", "40", "--seed", "2"]
    assert gen.main(sample) == 0
    first = capsys.readouterr().out
    assert gen.main(sample) == 0
    assert capsys.readouterr().out == first
    assert gen.main(["--checkpoint", str(tmp_path / "hf"), "--prompt", "x", "--tokenizer", str(tok)]) == 0
    capsys.readouterr()
    # A tokenizer larger than the model's vocabulary is refused.
    small = {**shape, "vocab_size": 300}
    make_run(tmp_path / "small", small, tokenizer=tok)
    assert gen.main(["--checkpoint", str(tmp_path / "small"), "--prompt", "x"]) == 1
    assert "vocab_size is 300" in capsys.readouterr().err
