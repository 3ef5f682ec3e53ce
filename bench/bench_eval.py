"""Evaluation requests/s: `pretrain.eval`'s scorer vs a plain transformers loop, same model and requests.

    python bench/bench_eval.py [--tasks hellaswag,arc_easy:rc_5shot,...] [--limit 6] [--smoke]

A random ~110M-parameter Llama (Llama 3 tokenizer and vocabulary, built here, never downloaded)
scores the first `--limit` documents of each task twice in fp32 on the CPU: once through
`pretrain.eval.scorer.score` (contexts shared by their choices, length-sorted batches), once as
the straightforward loop most scripts write: one transformers forward per request over
(context + continuation)[:-1]. Both give the same log-likelihoods (the max difference is printed).
Prints a table and appends it to bench/RESULTS.md (not with --smoke). Target: >= 3x overall.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_pipeline.tokenizer import Tokenizer  # noqa: E402
from pretrain.configs import get_model_config  # noqa: E402
from pretrain.eval.batching import build_rows, make_batches  # noqa: E402
from pretrain.eval.layout import EvalLayout  # noqa: E402
from pretrain.eval.scorer import ScoreOptions, score  # noqa: E402
from pretrain.eval.tasks import read_requests  # noqa: E402
from pretrain.eval.tokenize import encode_requests  # noqa: E402
from pretrain.export import hf_config, to_hf_state_dict  # noqa: E402
from pretrain.model import Transformer  # noqa: E402

TASKS = "hellaswag,hellaswag:rc_5shot,arc_easy:rc_5shot,piqa:rc_5shot,arc_challenge:mc_5shot"
SHAPE = dict(dim=384, n_layers=8, n_heads=6, n_kv_heads=2, multiple_of=64, max_seq_len=2048)
SMOKE_SHAPE = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, multiple_of=16, max_seq_len=2048)


def hf_loop(hf, requests, max_len: int) -> list[float]:
    """One forward per request, the continuation's log-probs summed: the baseline."""
    out = []
    with torch.no_grad():
        for ctx, cont in requests:
            query = (ctx + cont)[:-1][-max_len:]
            logits = hf(torch.tensor([query])).logits[0, -len(cont) :].float()
            logp = torch.log_softmax(logits, dim=-1)
            out.append(logp.gather(1, torch.tensor(cont)[:, None]).sum().item())
    return out


def _timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=TASKS)
    ap.add_argument("--limit", type=int, default=4, help="documents per task")
    ap.add_argument("--batch-tokens", type=int, default=ScoreOptions.batch_tokens)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--smoke", action="store_true", help="tiny model, 2 tasks x 2 docs, nothing appended")
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    a = ap.parse_args()

    import transformers

    torch.set_num_threads(a.threads)
    limit = 2 if a.smoke else a.limit
    tasks = "hellaswag,arc_challenge:mc_5shot" if a.smoke else a.tasks
    args = get_model_config("llama3_debug", vocab_size=128256, **(SMOKE_SHAPE if a.smoke else SHAPE))
    torch.manual_seed(0)
    ours = Transformer(args)
    ours.init_weights()
    ours.eval()
    cfg = transformers.LlamaConfig(**{k: v for k, v in hf_config(args).items() if k != "architectures"})
    cfg._attn_implementation = "sdpa"
    hf = transformers.LlamaForCausalLM(cfg).eval()
    hf.load_state_dict(to_hf_state_dict(ours.state_dict(), args), strict=False)
    tok = Tokenizer.from_file(None)
    warm = encode_requests(tok, read_requests("arc_easy", 1))  # first-call costs stay out of the timings
    score(EvalLayout([ours]), warm)
    hf_loop(hf, warm, args.max_seq_len)
    load_before = os.getloadavg()[0]

    rows, totals = [], {"ours": 0.0, "hf": 0.0, "n": 0}
    worst = 0.0
    for task in tasks.split(","):
        encoded = encode_requests(tok, read_requests(task, limit))
        batches = make_batches(build_rows(encoded, args.max_seq_len), a.batch_tokens)
        fed = sum(len(b) * len(b[0].tokens) for b in batches)
        naive = sum(len(c) + len(x) - 1 for c, x in encoded)
        options = ScoreOptions(batch_tokens=a.batch_tokens)
        scores, t_ours = _timed(lambda e=encoded, o=options: score(EvalLayout([ours]), e, o))
        ref, t_hf = _timed(lambda e=encoded: hf_loop(hf, e, args.max_seq_len))
        worst = max([worst, *(abs(s.logprob - r) for s, r in zip(scores, ref, strict=True))])
        n = len(encoded)
        rows.append((task, n, len(batches), fed, naive, n / t_ours, n / t_hf, t_hf / t_ours))
        totals["ours"] += t_ours
        totals["hf"] += t_hf
        totals["n"] += n
    n = totals["n"]
    overall = ("all", n, "", "", "", n / totals["ours"], n / totals["hf"], totals["hf"] / totals["ours"])
    load_after = os.getloadavg()[0]
    shared = " (machine shared: other jobs running)" if max(load_before, load_after) > 1.5 * a.threads else ""
    header = (
        f"## Eval log-likelihood scoring vs a transformers loop, CPU fp32 — "
        f"{datetime.datetime.now().isoformat(timespec='seconds')}\n\n"
        f"- command: `python {' '.join(sys.argv)}`\n"
        f"- machine: {platform.machine()}, nproc={os.cpu_count()}, threads={a.threads}, torch "
        f"{torch.__version__}, transformers {transformers.__version__}; load average before/after: "
        f"{load_before:.2f}/{load_after:.2f}{shared}\n"
        f"- model: random Llama ({args.num_params() / 1e6:.0f}M params: dim {args.dim}, {args.n_layers} "
        f"layers, vocab {args.vocab_size}), Llama 3 tokenizer; first {limit} documents per task; "
        f"batch_tokens {a.batch_tokens}; max |logprob difference| {worst:.2e}\n"
        "- baseline: one `LlamaForCausalLM` forward (sdpa) per request over (context + continuation)[:-1]\n\n"
        "| task | requests | our forwards | our tokens (padded) | loop tokens | ours req/s | loop req/s "
        "| speedup |\n|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {t} | {r} | {b} | {f} | {nv} | {o:.2f} | {h:.2f} | {s:.2f}x |\n"
        for t, r, b, f, nv, o, h, s in [*rows, overall]
    )
    print(header + body)
    if not a.smoke:
        path = Path(a.results)
        if not path.exists():
            path.write_text("# Benchmark results\n")
        with path.open("a") as f:
            f.write("\n" + header + body)


if __name__ == "__main__":
    main()
