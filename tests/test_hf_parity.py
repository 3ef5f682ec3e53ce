"""Our logits equal transformers' LlamaForCausalLM with the exported weights (fp32)."""

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


@pytest.mark.parametrize("scaling", [None, RopeScaling(factor=8.0, original_max_seq_len=32)])
def test_logits_match_transformers(scaling):
    args = get_model_config(
        "llama3_debug",
        dim=128,
        n_layers=2,
        n_heads=8,
        n_kv_heads=2,
        vocab_size=300,
        max_seq_len=128,
        rope_scaling=scaling,
    )
    torch.manual_seed(0)
    ours = Transformer(args)
    ours.init_weights()
    ours.eval()
    hf = _hf_model(args)
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(ours.state_dict(), args), strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    x = torch.randint(0, 300, (2, 96))
    with torch.no_grad():
        a = ours(x)
        b = hf(x).logits
    assert (a - b).abs().max().item() < 1e-4


def test_saved_export_loads_with_from_pretrained(tmp_path):
    args = get_model_config("llama3_debug", dim=64, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=100)
    torch.manual_seed(0)
    ours = Transformer(args)
    ours.init_weights()
    save_hf(ours.state_dict(), args, tmp_path)
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    x = torch.randint(0, 100, (1, 20))
    with torch.no_grad():
        assert (ours.eval()(x) - hf(x).logits).abs().max().item() < 1e-4
