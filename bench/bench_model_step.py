"""Forward+backward step time of our Llama 3 vs transformers' LlamaForCausalLM, same config and weights.

    python bench/bench_model_step.py [--model llama3_debug] [--batch 4] [--seq 256] [--steps 10]

Both run in fp32 on the CPU with the same thread count, on identical weights (exported through
pretrain.export) and inputs, with transformers' default SDPA attention. Prints a table and appends
it to bench/RESULTS.md. Target: ratio (ours / HF) <= 1.0.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain.configs import get_model_config  # noqa: E402
from pretrain.export import hf_config, to_hf_state_dict  # noqa: E402
from pretrain.model import Transformer  # noqa: E402


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama3_debug")
    ap.add_argument("--vocab-size", type=int, default=None, help="override the named config's vocab")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    a = ap.parse_args()

    import transformers

    torch.set_num_threads(a.threads)
    overrides = {"vocab_size": a.vocab_size} if a.vocab_size else {}
    args = get_model_config(a.model, **overrides)
    torch.manual_seed(0)
    ours = Transformer(args)
    ours.init_weights()
    cfg = transformers.LlamaConfig(**{k: v for k, v in hf_config(args).items() if k != "architectures"})
    cfg._attn_implementation = "sdpa"
    hf = transformers.LlamaForCausalLM(cfg)
    hf.load_state_dict(to_hf_state_dict(ours.state_dict(), args), strict=False)
    ours.train()
    hf.train()
    x = torch.randint(0, args.vocab_size, (a.batch, a.seq + 1))
    inputs, labels = x[:, :-1], x[:, 1:]

    def step_ours():
        logits = ours(inputs)
        F.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
        ours.zero_grad(set_to_none=True)

    def step_hf():
        logits = hf(input_ids=inputs).logits
        F.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
        hf.zero_grad(set_to_none=True)

    # Alternate single steps so drifting machine load (2 shared cores) hits both sides alike.
    for fn in (step_ours, step_hf, step_ours, step_hf):
        fn()  # warm-up
    ours_t, hf_t = [], []
    for _ in range(a.steps):
        ours_t.append(_timed(step_ours))
        hf_t.append(_timed(step_hf))
    med_ours, med_hf = statistics.median(ours_t), statistics.median(hf_t)
    tokens = a.batch * a.seq
    rows = [
        ("andes Transformer", med_ours, tokens / med_ours, med_ours / med_hf),
        (f"transformers {transformers.__version__} LlamaForCausalLM (sdpa)", med_hf, tokens / med_hf, 1.0),
    ]
    header = (
        f"## Model fwd+bwd step, CPU fp32 — {datetime.datetime.now().isoformat(timespec='seconds')}\n\n"
        f"- command: `python {' '.join(sys.argv)}`\n"
        f"- machine: {platform.machine()}, nproc={os.cpu_count()}, threads={a.threads}, "
        f"torch {torch.__version__}\n"
        f"- model: {a.model} ({args.num_params() / 1e6:.1f}M params, vocab {args.vocab_size}), "
        f"batch {a.batch} x seq {a.seq}, median of {len(ours_t)} alternating steps each\n\n"
        "| impl | step s (median) | tokens/s | ratio vs HF |\n|---|---|---|---|\n"
    )
    table = header + "".join(f"| {n} | {t:.4f} | {tps:,.0f} | {r:.3f} |\n" for n, t, tps, r in rows)
    print(table)
    path = Path(a.results)
    if not path.exists():
        path.write_text("# Benchmark results\n")
    with path.open("a") as f:
        f.write("\n" + table)


if __name__ == "__main__":
    main()
