"""datatrove's side of bench_dedup.py; runs INSIDE bench/.venv-datatrove, never imports andes.

One mode per invocation (a fresh process each, so the parent can read its peak RSS with wait4):

- `sig --input DIR`: signatures alone, in memory. Reads every Parquet shard's `text` (not timed),
  then times `MinhashDedupSignature.get_shingles` + `get_signature` per document, the work of
  stage 1 without reading, writing and sorting the bucket files.
- `pipeline --input DIR --work DIR --workers W`: the 4 stages, each run by its own
  `LocalPipelineExecutor` and timed (wall, and CPU of this process plus its reaped children):
  1. `ParquetReader` -> `MinhashDedupSignature`, one task per input shard;
  2. `MinhashDedupBuckets`, one task per bucket (14);
  3. `MinhashDedupCluster(save_cluster_id=True)`, one task (datatrove requires world_size 1);
  4. `ParquetReader` -> `MinhashDedupFilter` -> `ParquetWriter`, one task per shard (the ranks of
     stage 1, which the `.remove` files are keyed by).
- `clusters --input DIR --work DIR --out FILE`: not timed. Maps stage 3's `.clusters` files to
  document ids and writes FILE (Parquet: id, cluster). See `cluster_table`.

Configuration: `MinhashConfig()` defaults of datatrove 0.10.1 (n_grams=5, num_buckets=14,
hashes_per_bucket=8, seed=1, xxhash 64-bit shingle hashes, `TextNormConfig` defaults), set
explicitly below. Word tokenizer: stage 1 splits the simplified text (lower-cased, punctuation
turned into spaces, whitespace collapsed) with `load_word_tokenizer(language)`; for English that
is spaCy, which datatrove[processing] does not install. A `WordTokenizer` instance passed as
`language=` is used as is, so we pass a `WhitespaceTokenizer` subclass whose `word_tokenize` is
`str.split()`: on simplified text that is what a whitespace tokenizer yields, and it keeps spaCy
from being the bottleneck (it would only slow datatrove down).

Every reply is one JSON line on stdout; datatrove's own logging goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.hashing import HashConfig
from datatrove.utils.text import TextNormConfig
from datatrove.utils.word_tokenizers import WhitespaceTokenizer


class SplitWordTokenizer(WhitespaceTokenizer):
    """Words are `str.split()` tokens (the simplified text has no punctuation left to split off)."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()


def minhash_config() -> MinhashConfig:
    """FineWeb's setting, which is datatrove's default: word 5-grams, 14 buckets x 8 hashes."""
    return MinhashConfig(
        n_grams=5,
        num_buckets=14,
        hashes_per_bucket=8,
        seed=1,
        norm_config=TextNormConfig(),
        hash_config=HashConfig(precision=64, hash_fc="xxhash"),
    )


def shard_files(input_dir: Path) -> list[Path]:
    files = sorted(input_dir.glob("*.parquet"))
    if not files:
        raise SystemExit(f"no *.parquet under {input_dir}")
    return files


def cpu_now() -> float:
    """CPU seconds of this process and of its reaped children (the pool workers when workers > 1)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def mode_sig(args: argparse.Namespace) -> dict[str, object]:
    texts: list[str] = []
    for path in shard_files(args.input):
        texts.extend(pq.read_table(path, columns=["text"]).column("text").to_pylist())
    step = MinhashDedupSignature(
        output_folder=str(args.work), config=minhash_config(), language=SplitWordTokenizer()
    )
    step.get_signature(step.get_shingles("warm up the parameters and the tokenizer once"))
    best_cpu = best_wall = float("inf")
    for _ in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        n_sigs = 0
        for text in texts:
            shingles = step.get_shingles(text)
            if shingles.size:
                step.get_signature(shingles)
                n_sigs += 1
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return {"docs": len(texts), "signatures": n_sigs, "cpu_seconds": best_cpu, "seconds": best_wall}


def mode_pipeline(args: argparse.Namespace) -> dict[str, object]:
    cfg = minhash_config()
    tok = SplitWordTokenizer()
    n_shards = len(shard_files(args.input))
    work: Path = args.work
    sigs, buckets, clusters, output = (str(work / d) for d in ("signatures", "buckets", "clusters", "output"))
    logs = work / "logs"

    def reader() -> ParquetReader:
        return ParquetReader(str(args.input), glob_pattern="*.parquet", text_key="text", id_key="id")

    stages = {
        "1 signatures": LocalPipelineExecutor(
            [reader(), MinhashDedupSignature(output_folder=sigs, config=cfg, language=tok)],
            tasks=n_shards,
            workers=args.workers,
            logging_dir=str(logs / "1"),
        ),
        "2 buckets": LocalPipelineExecutor(
            [MinhashDedupBuckets(input_folder=sigs, output_folder=buckets, config=cfg)],
            tasks=cfg.num_buckets,
            workers=args.workers,
            logging_dir=str(logs / "2"),
        ),
        "3 cluster": LocalPipelineExecutor(
            [
                MinhashDedupCluster(
                    input_folder=buckets, output_folder=clusters, config=cfg, save_cluster_id=True
                )
            ],
            tasks=1,
            workers=1,
            logging_dir=str(logs / "3"),
        ),
        "4 filter": LocalPipelineExecutor(
            [
                reader(),
                MinhashDedupFilter(input_folder=clusters),
                ParquetWriter(output_folder=output),
            ],
            tasks=n_shards,
            workers=args.workers,
            logging_dir=str(logs / "4"),
        ),
    }
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    for name, executor in stages.items():
        wall, cpu = time.perf_counter(), cpu_now()
        executor.run()
        seconds[name] = time.perf_counter() - wall
        cpu_seconds[name] = cpu_now() - cpu
        print(f"datatrove stage {name}: {seconds[name]:.1f} s", file=sys.stderr, flush=True)
    kept = sum(pq.ParquetFile(p).metadata.num_rows for p in Path(output).glob("*.parquet"))
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "tasks": n_shards, "kept": kept}


def read_u32_pairs(path: Path) -> np.ndarray:
    """A `.clusters` file: little-endian uint32 (doc index, cluster id) records, shape (n, 2)."""
    return np.fromfile(path, dtype="<u4").reshape(-1, 2)


def cluster_table(args: argparse.Namespace) -> dict[str, object]:
    """Document id -> datatrove cluster id, from stage 3's `.clusters` files.

    Stage 3 (`save_cluster_id=True`) writes `{rank:06d}.clusters` per stage-1 rank: (document index,
    cluster id) for every document that appears in a duplicate pair, the cluster's kept document
    included; the document index counts the documents (with text) that rank's reader yielded. The
    same reader with the same task count replays that order, which turns indices into ids. Checks:
    every `.remove` index is clustered, and the ids stage 4 wrote are exactly the unremoved ones.
    """
    n_shards = len(shard_files(args.input))
    work: Path = args.work
    ids: list[str] = []
    clusters: list[int] = []
    removed: set[str] = set()
    for rank in range(n_shards):
        rank_ids = [
            doc.id
            for doc in ParquetReader(
                str(args.input), glob_pattern="*.parquet", read_metadata=False, text_key="text", id_key="id"
            ).run(rank=rank, world_size=n_shards)
        ]
        path = work / "clusters" / f"{rank:06d}.clusters"
        if path.exists():
            pairs = read_u32_pairs(path)
            ids.extend(rank_ids[i] for i in pairs[:, 0].tolist())
            clusters.extend(pairs[:, 1].tolist())
        remove = work / "clusters" / f"{rank:06d}.remove"
        if remove.exists():
            removed.update(rank_ids[i] for i in np.fromfile(remove, dtype="<u4").tolist())
    clustered = set(ids)
    assert removed <= clustered, "a removed document is in no cluster"
    kept_ids: set[str] = set()
    for p in (work / "output").glob("*.parquet"):
        kept_ids.update(pq.read_table(p, columns=["id"]).column("id").to_pylist())
    all_ids: set[str] = set()
    for p in shard_files(args.input):
        all_ids.update(pq.read_table(p, columns=["id"]).column("id").to_pylist())
    assert kept_ids == all_ids - removed, "stage 4 output is not the input less the .remove documents"
    pq.write_table(
        pa.table({"id": pa.array(ids, pa.string()), "cluster": pa.array(clusters, pa.int64())}), args.out
    )
    return {"clustered": len(clustered), "clusters": len(set(clusters)), "removed": len(removed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("sig", "pipeline", "clusters"))
    parser.add_argument("--input", type=Path, required=True, help="folder of Parquet shards (id, text, ...)")
    parser.add_argument("--work", type=Path, required=True, help="folder for datatrove's stage outputs")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="sig mode: timed passes, best kept")
    parser.add_argument("--out", type=Path, help="clusters mode: Parquet file to write")
    args = parser.parse_args()
    if args.mode == "sig":
        reply = mode_sig(args)
    elif args.mode == "pipeline":
        reply = mode_pipeline(args)
    else:
        reply = cluster_table(args)
    reply["datatrove"] = version("datatrove")
    reply["python"] = sys.version.split()[0]
    print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
