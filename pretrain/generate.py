"""Sampling from a trained model: prefill the prompt once into a KV cache, then one token per step.

    python -m pretrain.generate --checkpoint runs/demo --prompt "ROMEO." [--max-new-tokens 64]
        [--temperature 0.8] [--top-p 0.9] [--top-k K] [--seed S] [--no-cache] [--tokenizer FILE]

`--checkpoint` is a run dir, its checkpoints/ dir, a step dir (DCP; the shape comes from the run's
config.yaml or the dir's model_args.json), or an HF directory (`pretrain.export`'s or transformers').
The tokenizer is `--tokenizer`, else the checkpoint's own: an HF dir's `tokenizer.json` (else its
tiktoken `tokenizer.model`), a run's `data.tokenizer`, else Llama 3's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from pretrain.configs import ModelArgs
from pretrain.model import KVCache, Transformer, precompute_freqs_cis


def new_caches(
    args: ModelArgs, max_len: int, *, dtype: torch.dtype, device: torch.device | str, batch: int = 1
) -> list[KVCache]:
    """One KV cache per layer, sized for grouped-query attention (n_kv_heads, not n_heads)."""
    return [
        KVCache(batch, max_len, args.kv_heads, args.head_dim, dtype=dtype, device=device)
        for _ in range(args.n_layers)
    ]


@torch.no_grad()
def generate(
    model: Transformer,
    prompt: list[int],
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop_ids: tuple[int, ...] = (),
    seed: int = 0,
    use_cache: bool = True,
) -> list[int]:
    """New token ids after `prompt` (greedy when temperature == 0), stopping early at `stop_ids`.

    Sampling divides the logits by `temperature`, keeps the `top_k` most likely tokens (None or 0 =
    all), then the smallest set whose probability reaches `top_p` (nucleus; None or 1 = all), and
    draws from a generator seeded with `seed`. `use_cache=False` recomputes the whole prefix for every
    token (slow; the same tokens as the cached path, up to floating-point rounding).
    """
    if not prompt:
        raise ValueError("prompt must hold at least one token")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k={top_k} must be >= 1 (or None/0 for no limit)")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} must be in (0, 1]")
    if max_new_tokens <= 0:
        return []
    args = model.args
    max_len = min(args.max_seq_len, len(prompt) + max_new_tokens)
    if len(prompt) >= max_len:
        raise ValueError(
            f"prompt of {len(prompt)} tokens leaves no room below max_seq_len={args.max_seq_len}"
        )
    param = next(model.parameters())
    generator = torch.Generator(device=param.device).manual_seed(seed)
    out: list[int] = []
    if not use_cache:
        seq = list(prompt)
        while len(seq) <= max_len and len(out) < max_new_tokens:
            tokens = torch.tensor([seq], dtype=torch.long, device=param.device)
            next_id = _sample(model(tokens)[0, -1].float(), temperature, top_k, top_p, generator)
            out.append(next_id)
            seq.append(next_id)
            if next_id in stop_ids:
                break
        return out
    caches = new_caches(args, max_len, dtype=param.dtype, device=param.device)
    tokens = torch.tensor([prompt], dtype=torch.long, device=param.device)
    pos = 0
    while pos + tokens.shape[1] <= max_len and len(out) < max_new_tokens:
        logits = model(tokens, caches=caches, start_pos=pos)[0, -1].float()
        pos += tokens.shape[1]
        next_id = _sample(logits, temperature, top_k, top_p, generator)
        out.append(next_id)
        if next_id in stop_ids:
            break
        tokens = torch.tensor([[next_id]], dtype=torch.long, device=param.device)
    return out


def _sample(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    gen: torch.Generator,
) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1:
        # Keep the most likely tokens until their mass reaches top_p (always at least the first one);
        # a stable sort puts the lowest id first among ties, as argmax does.
        sorted_probs, order = torch.sort(probs, descending=True, stable=True)
        before = sorted_probs.cumsum(0) - sorted_probs
        keep = before < top_p
        keep[0] = True
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs * keep)
    return int(torch.multinomial(probs, 1, generator=gen))


def build_model(
    state: dict[str, torch.Tensor],
    args: ModelArgs,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Transformer:
    """An eval-mode Transformer holding `state` (no random init: built on meta, weights assigned)."""
    with torch.device("meta"):
        model = Transformer(args)
    state = {k: v.to(device=device, dtype=dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()  # assign gave the output a Parameter of its own
    with torch.device(device):
        model.freqs_cis = precompute_freqs_cis(
            args.head_dim, args.max_seq_len, args.rope_theta, args.rope_scaling
        )
    return model.eval()


def load_for_generation(
    path: str | Path, *, step: int | None = None
) -> tuple[dict[str, torch.Tensor], ModelArgs, Path | None]:
    """(state dict, ModelArgs, tokenizer file or None) of a DCP checkpoint/run or an HF export dir."""
    from data_pipeline.tokenizer import find_tokenizer
    from pretrain import export

    p = Path(path)
    if export.is_hf_dir(p):
        if step is not None:
            raise ValueError(f"{p}: an HF directory holds one model; --step is for runs")
        state, args = export.load_hf(p)
        return state, args, find_tokenizer(p)
    step_dir = export.resolve_checkpoint(p, step)
    args = export.checkpoint_model_args(step_dir)
    state = export.load_model_state(step_dir, args)
    return state, args, export.run_token_info(step_dir).tokenizer_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pretrain.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="run dir, checkpoints/ dir, step dir or HF dir")
    parser.add_argument("--step", type=int, help="use checkpoints/step-N instead of the latest")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass (1 = off)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole prefix every token")
    parser.add_argument(
        "--tokenizer", help="tiktoken ranks file or HF tokenizer.json/dir (default: the checkpoint's)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    a = parser.parse_args(argv)

    from data_pipeline.tokenizer import load_tokenizer
    from pretrain.checkpoint_files import check_vocab
    from pretrain.export import DTYPES

    try:
        state, args, tok_file = load_for_generation(a.checkpoint, step=a.step)
        tok = load_tokenizer(a.tokenizer or tok_file)
        check_vocab(tok, args, "pass the tokenizer the model was trained with (--tokenizer)")
        model = build_model(state, args, device=a.device, dtype=DTYPES[a.dtype])
        prompt = tok.encode(a.prompt, bos=True)
        start = time.perf_counter()
        ids = generate(
            model,
            prompt,
            a.max_new_tokens,
            temperature=a.temperature,
            top_k=a.top_k,
            top_p=a.top_p,
            stop_ids=(tok.eos_id,),
            seed=a.seed,
            use_cache=not a.no_cache,
        )
        elapsed = time.perf_counter() - start
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(a.prompt + tok.decode([i for i in ids if i != tok.eos_id and i < tok.n_vocab]))
    print(
        f"[{len(ids)} tokens in {elapsed:.2f}s, {len(ids) / max(elapsed, 1e-9):.1f} tok/s]", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
