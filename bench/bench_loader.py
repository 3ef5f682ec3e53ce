"""Loader benchmark: tokens/s the training loader yields vs tokens/s the trainer consumes, same machine.

Packs the bundled sample corpus (Llama 3 tokenizer, best-fit, seq_len 1024 by default), then times
(1) `StepLoader.next_step()` alone over many steps (row-group reads, zstd decode, masks and positions
built per row) with prefetching on, and (2) forward + backward + AdamW steps of `llama3_debug` on the
same batches, in fp32 on CPU. The loader should outrun the trainer by >= 10x so that `data_wait_s`
stays ~0. On a GPU the trainer is faster; the loader figure is what to compare against MFU targets.

Run: `python bench/bench_loader.py [--seq-len 1024] [--batch 2] [--steps 30]`; appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from data_pipeline.pack import pack
from data_pipeline.tokenizer import Tokenizer
from pretrain.configs import get_model_config
from pretrain.data import IGNORE_INDEX, PackedDataset, StepLoader
from pretrain.model import Transformer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    tok = Tokenizer.from_file()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "packed"
        pack([ROOT / "data_pipeline" / "sample"], out, tok, args.seq_len, progress=False)
        dataset = PackedDataset(out, args.seq_len)
        tokens_per_step = args.batch * args.seq_len

        loader = StepLoader(dataset, global_batch_size=args.batch, micro_batch_size=args.batch)
        loader.next_step()  # warm the first blocks
        t0 = time.perf_counter()
        for _ in range(args.steps * 10):
            loader.next_step()
        load_rate = args.steps * 10 * tokens_per_step / (time.perf_counter() - t0)

        model_args = get_model_config("llama3_debug", vocab_size=tok.n_vocab, max_seq_len=args.seq_len)
        model = Transformer(model_args)
        model.init_weights()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loader = StepLoader(
            dataset, global_batch_size=args.batch, micro_batch_size=args.batch, prefetch=False
        )
        batches = [loader.next_step()[0] for _ in range(args.steps + 2)]
        for i, b in enumerate(batches):
            if i == 2:
                t0 = time.perf_counter()
            logits = model(b.tokens, b.doc_ids, positions=b.positions)
            loss = F.cross_entropy(logits.flatten(0, 1), b.labels.flatten(), ignore_index=IGNORE_INDEX)
            loss.backward()
            opt.step()
            opt.zero_grad()
        train_rate = args.steps * tokens_per_step / (time.perf_counter() - t0)

    lines = [
        f"\n## Loader vs trainer token rate ({datetime.date.today()})\n",
        f"`python bench/bench_loader.py --seq-len {args.seq_len} --batch {args.batch} --steps {args.steps}`: "
        "sample corpus packed with the Llama 3 tokenizer; trainer = llama3_debug "
        f"({model_args.num_params() / 1e6:.0f}M params, fp32, 1 process on this 2-core CPU, "
        "forward + backward + AdamW).\n",
        "| loader tokens/s | trainer tokens/s | loader / trainer |",
        "|---|---|---|",
        f"| {load_rate:,.0f} | {train_rate:,.0f} | {load_rate / train_rate:.0f}x |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(ROOT / "bench" / "RESULTS.md", "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
