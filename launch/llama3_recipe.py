"""Run Llama 3's staged schedule at debug size on this machine: `make recipe`.

    python launch/llama3_recipe.py [--nproc 2] [--run-dir runs/llama3_recipe] [key=value ...]

The trainer settings and the stages are configs/recipe/llama3.yaml (`recipe=llama3`); this script
prepares the data those stages read and runs the stages as separate invocations of one run
directory, each resuming from the previous one's last checkpoint in its own parallel layout, as a
real run changes layout when its context grows (Llama 3: CP1 for 8K, CP16 for 128K):

1. data, from `make demo-data`'s filtered and deduplicated documents and tokenizer: packed at 64
   tokens (short stages, with a validation split); the demo's 256-token rows (long stage); and a
   high-quality source packed at 256, the five poems (every `<work>/partNNN` document), standing in
   for the documents Llama 3's quality classifiers rank highest;
2. stages `ramp` and `short` under FSDP (dp=N), stopping at the end of `short`;
3. stage `long` with context parallelism (cp=N): every 256-token row split over the ranks;
4. stage `anneal` (cp=N), the LR going linearly to 0 on a 50/50 mix of the long data and the poems;
5. `python -m pretrain.average` of the annealing checkpoints into RUN/averaged, and a sample from it.

The stage boundaries come from the recipe itself (pretrain.stages.plan_stages): stages at the
recipe's base length run under FSDP, longer ones under context parallelism. Every step is skipped
when its output is already there, so a rerun continues where it stopped. Extra `key=value`
arguments go to every trainer invocation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain.job_config import compose_config  # noqa: E402
from pretrain.stages import Stage, plan_stages  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
DATA = REPO / "data" / "recipe"
TOKENIZER = DEMO / "2_train_tokenizer" / "tokenizer.model"
HQ_IDS = r"/part\d+$"
"""Document ids of the high-quality source: the poems, cut into parts (data_pipeline/sample/README.md)."""


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def pack(inputs: Path, out: Path, seq_len: int, *extra: str) -> None:
    if not (out / "manifest.json").is_file():
        andes_data = str(Path(sys.executable).with_name("andes-data"))
        run([andes_data, "pack", "--input", str(inputs), "--output", str(out), "--seq-len", str(seq_len)]
            + ["--tokenizer", str(TOKENIZER), *extra])  # fmt: skip


def select_high_quality(docs: Path, out: Path) -> None:
    """The documents whose id matches HQ_IDS, as one Parquet file (written under a temp name)."""
    target = out / "poems.parquet"
    if target.is_file():
        return
    out.mkdir(parents=True, exist_ok=True)
    tables = [pq.read_table(f) for f in sorted(docs.glob("*.parquet"))]
    picked = [t.filter(pc.match_substring_regex(t.column("id"), HQ_IDS)) for t in tables]
    tmp = out / "poems.parquet.tmp"
    pq.write_table(pa.concat_tables(picked), tmp)
    tmp.replace(target)
    print(f"high-quality source: {sum(len(t) for t in picked)} documents -> {target}", flush=True)


def prepare_data() -> None:
    if not (DEMO / "1_dedup").is_dir() or not TOKENIZER.is_file():
        sys.exit(f"{DEMO}: run `make demo-data` first (filtered documents and the tokenizer)")
    pack(DEMO / "1_dedup", DATA / "short_64", 64, "--val-fraction", "0.05")
    select_high_quality(DEMO / "1_dedup", DATA / "hq_docs")
    pack(DATA / "hq_docs", DATA / "hq_256", 256)


def train(nproc: int, run_dir: Path, stop: int, layout: list[str], extra: list[str]) -> None:
    """One invocation: resume the run and train up to step `stop` in `layout`."""
    latest = run_dir / "checkpoints" / f"step-{stop}"
    if latest.is_dir():
        print(f"step {stop} already trained: {latest}", flush=True)
        return
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    run([*torchrun, "-m", "pretrain.train", "recipe=llama3", f"run.dir={run_dir}",
         f"training.steps={stop}", *layout, *extra])  # fmt: skip


def invocations(plan: list[Stage], base_seq_len: int, nproc: int) -> list[tuple[int, list[str]]]:
    """(last step, parallel layout) of each trainer invocation: consecutive stages of one layout."""
    out: list[tuple[int, list[str]]] = []
    for stage in plan:
        long = stage.seq_len > base_seq_len
        layout = [f"parallel.cp={nproc}", "parallel.dp_shard=1"] if long else [f"parallel.dp_shard={nproc}"]
        if out and out[-1][1] == layout:
            out[-1] = (stage.last, layout)
        else:
            out.append((stage.last, layout))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, default=2, help="ranks: the FSDP degree, then the CP degree")
    ap.add_argument("--run-dir", default="runs/llama3_recipe")
    ap.add_argument("overrides", nargs="*", help="key=value for every trainer invocation")
    a = ap.parse_args(argv)
    run_dir = (REPO / a.run_dir).resolve()
    prepare_data()
    cfg = compose_config(["recipe=llama3", *a.overrides], data_path=None)
    plan = plan_stages(cfg)
    for stop, layout in invocations(plan, cfg.data.seq_len, a.nproc):
        train(a.nproc, run_dir, stop, layout, a.overrides)
    anneal = plan[-1]
    averaged = run_dir / "averaged"
    if not averaged.is_dir():
        run([sys.executable, "-m", "pretrain.average", f"run.dir={run_dir}", "--steps",
             f"{anneal.first}:{anneal.last}", "--out", str(averaged)])  # fmt: skip
    sample = ["--max-new-tokens", "40", "--temperature", "0.8", "--top-k", "40"]
    run([sys.executable, "-m", "pretrain.generate", "--checkpoint", str(averaged), "--prompt", "ROMEO.",
         "--tokenizer", str(TOKENIZER), *sample])  # fmt: skip
    print(f"done: {run_dir}/metrics.jsonl, averaged checkpoint {averaged}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
