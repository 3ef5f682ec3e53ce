"""Model math against simple references: causality, GQA == MHA, RoPE, document masking, sizes."""

import math

import pytest
import torch

from pretrain.configs import PUBLISHED_PARAMS, get_model_config
from pretrain.model import Transformer, apply_rotary_emb, precompute_freqs_cis


def tiny(**kw):
    base = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=97, multiple_of=16, max_seq_len=64)
    return get_model_config("llama3_debug", **{**base, **kw})


def build(args, seed=0):
    m = Transformer(args)
    torch.manual_seed(seed)  # init_weights alone decides the weights, as on the meta-device path
    m.init_weights()
    return m.eval()


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_param_counts_match_published(name):
    args = get_model_config(name)
    with torch.device("meta"):
        model = Transformer(args)
    counted = sum(p.numel() for p in model.parameters())
    assert counted == args.num_params()
    assert abs(counted - PUBLISHED_PARAMS[name]) / PUBLISHED_PARAMS[name] < 0.01
    print(f"{name}: {counted / 1e9:.3f}B parameters")


def test_published_shapes():
    a = get_model_config("llama3_8b")
    assert (a.dim, a.n_layers, a.n_heads, a.kv_heads, a.ffn_hidden_dim) == (4096, 32, 32, 8, 14336)
    assert (a.vocab_size, a.max_seq_len, a.rope_theta) == (128256, 8192, 500000.0)
    assert get_model_config("llama3_70b").ffn_hidden_dim == 28672
    assert get_model_config("llama3_405b").ffn_hidden_dim == 53248


def test_causal():
    model = build(tiny())
    x = torch.randint(0, 97, (2, 16))
    y = x.clone()
    y[:, 10:] = torch.randint(0, 97, (2, 6))
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :10], b[:, :10], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_gqa_equals_mha_with_repeated_kv_heads():
    gqa_args = tiny(n_heads=4, n_kv_heads=2)
    gqa = build(gqa_args)
    mha = build(tiny(n_heads=4, n_kv_heads=4), seed=1)
    state = gqa.state_dict()
    head_dim = gqa_args.head_dim
    for key in list(state):
        if key.endswith(("wk.weight", "wv.weight")):
            w = state[key].view(2, head_dim, -1)  # (kv_heads, head_dim, dim)
            state[key] = w.repeat_interleave(2, dim=0).reshape(4 * head_dim, -1)
    mha.load_state_dict(state)
    x = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(gqa(x), mha(x), rtol=1e-5, atol=1e-5)


def _rope_reference(x, positions, theta):
    """Direct complex-number RoPE: channel pair (2i, 2i+1) is z = a + ib, rotated by pos * theta^(-2i/d)."""
    out = torch.empty_like(x)
    d = x.shape[-1]
    for p_idx, pos in enumerate(positions):
        for i in range(d // 2):
            angle = pos * theta ** (-2 * i / d)
            z = complex(x[0, p_idx, 0, 2 * i], x[0, p_idx, 0, 2 * i + 1]) * complex(
                math.cos(angle), math.sin(angle)
            )
            out[0, p_idx, 0, 2 * i], out[0, p_idx, 0, 2 * i + 1] = z.real, z.imag
    return out


def test_rope_matches_complex_reference():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 1, 8, dtype=torch.float64)
    freqs = precompute_freqs_cis(8, 6, 500000.0)
    got, _ = apply_rotary_emb(x.float(), x.float(), freqs)
    torch.testing.assert_close(got.double(), _rope_reference(x, range(6), 500000.0), atol=1e-5, rtol=1e-5)


def test_rope_scaling_changes_only_low_frequencies():
    from pretrain.configs import RopeScaling

    plain = torch.angle(precompute_freqs_cis(128, 2, 500000.0)[1])
    scaled = torch.angle(precompute_freqs_cis(128, 2, 500000.0, RopeScaling())[1])
    assert torch.equal(plain[:10], scaled[:10])  # short wavelengths untouched
    torch.testing.assert_close(scaled[-1], plain[-1] / 8)  # longest wavelengths slowed by `factor`


def test_document_mask_equals_separate_documents():
    model = build(tiny())
    docs = [torch.randint(0, 97, (n,)) for n in (5, 7, 4)]
    packed = torch.cat(docs).unsqueeze(0)
    doc_ids = torch.cat([torch.full((len(d),), i) for i, d in enumerate(docs)]).unsqueeze(0)
    with torch.no_grad():
        got = model(packed, doc_ids)
        offset = 0
        for d in docs:
            # RoPE is relative, so a document's logits do not depend on where it sits in the row.
            alone = model(d.unsqueeze(0))
            torch.testing.assert_close(got[0, offset : offset + len(d)], alone[0], rtol=1e-5, atol=1e-5)
            offset += len(d)


@pytest.mark.parametrize("attention", ["sdpa", "flex"])
def test_packed_row_with_restarting_positions_equals_documents_alone(attention):
    """Both attention kernels, from one mask definition, with RoPE positions restarting per document.

    FlexAttention runs forward-only on CPU here (no CPU backward in torch 2.13); the GPU test in
    this file covers training with it.
    """

    model = build(tiny(attention=attention))
    docs = [torch.randint(0, 97, (n,)) for n in (5, 7, 4)]
    packed = torch.cat(docs).unsqueeze(0)
    doc_ids = torch.cat([torch.full((len(d),), i) for i, d in enumerate(docs)]).unsqueeze(0)
    positions = torch.cat([torch.arange(len(d)) for d in docs]).unsqueeze(0)
    with torch.no_grad():
        got = model(packed, doc_ids, positions=positions)
        offset = 0
        for d in docs:
            alone = model(d.unsqueeze(0))
            torch.testing.assert_close(got[0, offset : offset + len(d)], alone[0], rtol=1e-5, atol=1e-5)
            offset += len(d)
        with pytest.raises(ValueError, match="positions must be"):
            model(packed, doc_ids, positions=positions[:, :3])


def test_attention_backend_choice():
    from pretrain.model import attention_backend

    assert attention_backend("auto", torch.device("cpu")) == "sdpa"
    assert attention_backend("auto", torch.device("cuda")) == "flex"
    assert attention_backend("sdpa", torch.device("cuda")) == "sdpa"
    with pytest.raises(ValueError, match="attention='xformers'"):
        tiny(attention="xformers")


def test_kv_cache_decoding_equals_full_forward():
    from pretrain.model import KVCache

    args = tiny()
    model = build(args)
    x = torch.randint(0, 97, (1, 10))
    caches = [
        KVCache(1, 16, args.kv_heads, args.head_dim, dtype=torch.float32, device="cpu") for _ in range(2)
    ]
    with torch.no_grad():
        full = model(x)
        pre = model(x[:, :6], caches=caches, start_pos=0)
        chunk = model(x[:, 6:8], caches=caches, start_pos=6)  # chunked prefill
        steps = [model(x[:, i : i + 1], caches=caches, start_pos=i) for i in (8, 9)]
    torch.testing.assert_close(torch.cat([pre, chunk, *steps], dim=1), full, rtol=1e-5, atol=1e-5)


def test_meta_init_is_deterministic():
    args = tiny()
    with torch.device("meta"):
        m = Transformer(args)
    m.to_empty(device="cpu")
    torch.manual_seed(3)
    m.init_weights(buffer_device="cpu")
    ref = build(args, seed=3)
    for (n, a), (_, b) in zip(m.state_dict().items(), ref.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    torch.testing.assert_close(m.freqs_cis, ref.freqs_cis)


def test_tied_embeddings_are_one_parameter_through_meta_init_and_loading():
    """tie_embeddings: the output uses the embedding Parameter itself, counted once, initialised once
    (as the output: std dim**-0.5), and still one after `to_empty` and `load_state_dict(assign=True)`,
    which each give the two modules Parameters of their own."""
    from pretrain.generate import build_model

    args = tiny(tie_embeddings=True)
    model = build(args, seed=3)
    assert model.output.weight is model.tok_embeddings.weight
    assert sum(p.numel() for p in model.parameters()) == args.num_params() == tiny().num_params() - 97 * 64
    assert abs(model.tok_embeddings.weight.std().item() - 64**-0.5) < 0.02
    with torch.device("meta"):
        meta = Transformer(args)
    meta.to_empty(device="cpu")
    torch.manual_seed(3)
    meta.init_weights(buffer_device="cpu")
    assert meta.output.weight is meta.tok_embeddings.weight
    assert torch.equal(meta.output.weight, model.output.weight)
    loaded = build_model({k: v.clone() for k, v in model.state_dict().items()}, args)
    assert loaded.output.weight is loaded.tok_embeddings.weight
    x = torch.randint(0, 97, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    untied = build(tiny())
    assert untied.output.weight is not untied.tok_embeddings.weight


def test_bad_config_errors():
    with pytest.raises(ValueError, match="unknown model 'llama3_9b'"):
        get_model_config("llama3_9b")
    with pytest.raises(ValueError, match="unknown model field"):
        get_model_config("llama3_debug", hidden=3)
    with pytest.raises(ValueError, match="not divisible by n_kv_heads"):
        get_model_config("llama3_debug", n_kv_heads=3)
    model = build(tiny(max_seq_len=8))
    with pytest.raises(ValueError, match="exceeds max_seq_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_trainer_model_fields_are_model_args_fields():
    from pretrain.configs import ModelArgs
    from pretrain.job_config import ModelConfig

    fields = set(ModelConfig.__dataclass_fields__) - {"name"}
    assert fields <= set(ModelArgs.__dataclass_fields__)


@pytest.mark.gpu
def test_cuda_forward_matches_cpu():
    model = build(tiny())
    x = torch.randint(0, 97, (2, 16))
    with torch.no_grad():
        ref = model(x)
        got = model.to("cuda")(x.cuda()).cpu()
    torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
def test_cuda_flex_training_step_matches_sdpa():
    """Forward and backward of document-masked attention: FlexAttention (compiled) vs SDPA on GPU."""
    docs = torch.tensor([[0] * 40 + [1] * 50 + [2] * 38, [0] * 128]).cuda()
    positions = torch.cat([torch.arange(40), torch.arange(50), torch.arange(38)])
    positions = torch.stack([positions, torch.arange(128)]).cuda()
    x = torch.randint(0, 97, (2, 128)).cuda()
    grads = {}
    for attention in ("sdpa", "flex"):
        model = build(tiny(attention=attention, max_seq_len=128)).cuda()
        loss = model(x, docs, positions=positions).float().logsumexp(-1).mean()
        loss.backward()
        grads[attention] = (loss.detach(), [p.grad for p in model.parameters()])
    torch.testing.assert_close(grads["flex"][0], grads["sdpa"][0], rtol=1e-4, atol=1e-4)
    for a, b in zip(grads["flex"][1], grads["sdpa"][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
