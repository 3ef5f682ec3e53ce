"""Our logits equal transformers' LlamaForCausalLM with the exported weights (fp32), tied or not."""

import pytest
import torch
import transformers  # a dev extra, the reference: missing, the suite fails instead of skipping

from pretrain.configs import RopeScaling, get_model_config
from pretrain.export import hf_config, save_hf, to_hf_state_dict
from pretrain.model import Transformer


def _hf_model(args):
    cfg = transformers.LlamaConfig(
        **{k: v for k, v in hf_config(args).items() if k not in ("architectures",)}
    )
    cfg._attn_implementation = "eager"
    return transformers.LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize(
    ("scaling", "tie"),
    [(None, False), (RopeScaling(factor=8.0, original_max_seq_len=32), False), (None, True)],
)
def test_logits_match_transformers(scaling, tie):
    args = get_model_config(
        "llama3_debug",
        dim=128,
        n_layers=2,
        n_heads=8,
        n_kv_heads=2,
        vocab_size=300,
        max_seq_len=128,
        rope_scaling=scaling,
        tie_embeddings=tie,
    )
    torch.manual_seed(0)
    ours = Transformer(args)
    ours.init_weights()
    ours.eval()
    hf = _hf_model(args)
    hf_state = to_hf_state_dict(ours.state_dict(), args)
    assert ("lm_head.weight" in hf_state) == (not tie)
    missing, unexpected = hf.load_state_dict(hf_state, strict=False)
    tied_head = ["lm_head.weight"] if tie else []  # transformers points it at the embedding
    assert not unexpected and [k for k in missing if "rotary" not in k] == tied_head, (missing, unexpected)
    assert (hf.lm_head.weight is hf.model.embed_tokens.weight) == tie
    x = torch.randint(0, 300, (2, 96))
    with torch.no_grad():
        a = ours(x)
        b = hf(x).logits
    assert (a - b).abs().max().item() < 1e-4


@pytest.mark.parametrize("tie", [False, True])
def test_saved_export_loads_with_from_pretrained_and_imports_back(tmp_path, tie):
    """A tied model is written as transformers writes one (tie_word_embeddings, no lm_head.weight) and
    read back tied; an untied one keeps its own lm_head.weight and stays untied, both ways."""
    from safetensors.torch import load_file

    from pretrain.export import load_hf

    args = get_model_config(
        "llama3_debug", dim=64, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=100, tie_embeddings=tie
    )
    torch.manual_seed(0)
    ours = Transformer(args)
    ours.init_weights()
    save_hf(ours.state_dict(), args, tmp_path)
    assert ("lm_head.weight" in load_file(str(tmp_path / "model.safetensors"))) == (not tie)
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert hf.config.tie_word_embeddings == tie
    x = torch.randint(0, 100, (1, 20))
    with torch.no_grad():
        assert (ours.eval()(x) - hf(x).logits).abs().max().item() < 1e-4
    state, back = load_hf(tmp_path)
    assert back.tie_embeddings == tie
    assert (state["output.weight"] is state["tok_embeddings.weight"]) == tie
