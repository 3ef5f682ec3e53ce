"""Semantic dedup (`andes-data dedup --method semantic`) end to end on one core, against semhash.

Three parts, one pinned CPU (the last, or --cpu), `--workers 1`, OMP/MKL/OpenBLAS threads 1; every
stage runs as its own CLI process (`--stage NAME`) under /usr/bin/time, which gives its wall time,
CPU time (user + sys) and peak RSS. /usr/bin/time, not our own wait4: Linux carries a forked
process's RSS high-water mark across exec, so a child forked from this (large) process would report
at least our peak.

1. End to end on `--docs` short documents: 1-3 random sentences of the bundled Shakespeare sample
   (data_pipeline/sample), at most 24 words (~20 MiniLM tokens: web-length documents embed at ~28
   docs/s per core, bench/RESULTS.md "Embedding"), unique texts, seed `--seed`; plus `--dup-fraction`
   planted copies of random base documents: exact, punctuation stripped and lowercased, adjacent
   words swapped, or one word replaced and one deleted (a quarter each), shuffled into the corpus.
   `--keep first` (corpus order, semhash's rule), eps `--eps`, all other options the CLI defaults.
   Per stage: wall, CPU s, peak RSS, and the units' own seconds (their completion markers).
2. semhash on the same embeddings (read from OUT/.dedup/embeddings, float16 -> float32) and texts:
   `SemHash.from_embeddings` (its index, usearch HNSW) + `self_deduplicate(threshold=1 - eps)`, in
   one process pinned to the same CPU. semhash 0.5's rule (`utils.select_canonicals`) walks the
   records in input order and drops one whose approximate neighbours (score >= threshold) include
   an earlier record it kept (exact text copies grouped first) -- the greedy rule of
   data_pipeline/semantic/cluster.py with `--keep first`, except that semhash searches an
   approximate index of the whole corpus and we compare exactly within one k-means cluster.
   Reported: time of both, and the agreement of the removed sets, with each disagreement's cause.
3. Cluster-stage memory at `--docs` and `--big-docs` documents of SYNTHETIC embeddings (random
   unit float16 vectors around 1,000 random directions, `--dup-fraction` planted copies at cosine
   1 (a quarter) or uniform in [0.86, 0.98]), written as embeddings shards with embed markers, so
   that `fit`, `assign` and `cluster` run for real with the default clusters and partitions.

Run: `python bench/bench_semantic_dedup.py [--docs 100000] [--big-docs 1000000] [--eps 0.1]`;
`--smoke` runs --docs 300 --big-docs 2000 and writes nothing to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
os.environ.update(ONE_THREAD)  # before numpy: this process' BLAS too

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_pipeline.config import DedupStage  # noqa: E402
from data_pipeline.dedup.clusters import split_key  # noqa: E402
from data_pipeline.semantic.embed import embedding_schema, embeddings_table  # noqa: E402
from data_pipeline.semantic.stages import stage_names  # noqa: E402
from data_pipeline.shard import ShardStats, write_marker  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")
SAMPLE = ROOT / "data_pipeline" / "sample"
ENV = {**os.environ, **ONE_THREAD, "TOKENIZERS_PARALLELISM": "false"}
STAGES = tuple(stage_names(DedupStage.rounds))  # embed fit assign cluster [assign-2 cluster-2] remove
DIM = 384  # all-MiniLM-L6-v2
MAX_WORDS = 24  # per document: keeps the 100k-document embed stage near 10 minutes on one core
COPY_KINDS = ("exact", "punct", "swap", "edit")
SYNTHETIC_TOPICS = 1000
NEAR_THRESHOLD = 0.005  # |cos - (1 - eps)| below this: a disagreement of precision (usearch's bf16)


# ---------------------------------------------------------------- corpora


def shakespeare_sentences() -> list[str]:
    """Unique sentences of 4-20 words of the sample corpus' speeches (headings, directions dropped)."""
    out = set()
    for path in sorted(SAMPLE.glob("*.parquet")):
        for text in pq.read_table(path, columns=["text"]).column("text").to_pylist():
            for para in text.split("\n\n"):
                para = para.strip()
                if not para or para.startswith("[") or para.isupper():
                    continue
                for sentence in re.split(r"(?<=[.!?])\s+", " ".join(para.split())):
                    if 4 <= len(sentence.split()) <= 20:
                        out.add(sentence)
    return sorted(out)


def paraphrase(text: str, kind: str, rng: random.Random, vocab: list[str]) -> str:
    """A planted copy of `text`: exact, or one light edit (see the module docstring)."""
    words = text.split()
    if kind == "punct":
        return " ".join(re.sub(r"[^\w\s']", "", text.lower()).split())
    if kind == "swap" and len(words) >= 3:
        for i in rng.sample(range(len(words) - 1), 2 if len(words) >= 5 else 1):
            words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == "edit" and len(words) >= 4:
        words[rng.randrange(len(words))] = rng.choice(vocab)
        del words[rng.randrange(len(words))]
    return " ".join(words)


@dataclasses.dataclass
class Corpus:
    texts: list[str]
    kinds: list[str]  # "base" or a COPY_KINDS entry
    source: np.ndarray  # corpus position of a copy's base; -1 for a base


def make_corpus(n: int, dup_fraction: float, seed: int) -> Corpus:
    """`n` short documents in corpus order, `dup_fraction` of them planted copies of a base."""
    rng = random.Random(seed)
    sentences = shakespeare_sentences()
    vocab = sorted({w for s in sentences for w in s.split() if w.isalpha()})
    n_copies = round(n * dup_fraction)
    bases: list[str] = []
    seen: set[str] = set()
    while len(bases) < n - n_copies:
        k = rng.choices((1, 2, 3), (0.45, 0.4, 0.15))[0]
        text = " ".join(rng.sample(sentences, k))
        if len(text.split()) <= MAX_WORDS and text not in seen:
            seen.add(text)
            bases.append(text)
    texts, kinds, source = list(bases), ["base"] * len(bases), [-1] * len(bases)
    for _ in range(n_copies):
        b = rng.randrange(len(bases))
        kind = rng.choice(COPY_KINDS)
        texts.append(paraphrase(bases[b], kind, rng, vocab))
        kinds.append(kind)
        source.append(b)
    order = list(range(n))
    rng.shuffle(order)
    position = np.empty(n, np.int64)
    position[order] = np.arange(n)
    src = np.array([source[i] for i in order])
    src = np.where(src >= 0, position[np.maximum(src, 0)], -1)
    return Corpus([texts[i] for i in order], [kinds[i] for i in order], src)


def doc_id(i: int) -> str:
    return f"d{i:08d}"


def write_docs(directory: Path, texts: list[str], shard_docs: int) -> list[Path]:
    """Input shards `docs-NNNNN.parquet` (`id`, `text`) of `shard_docs` documents, in corpus order."""
    directory.mkdir(parents=True)
    paths = []
    for s, start in enumerate(range(0, len(texts), shard_docs)):
        part = texts[start : start + shard_docs]
        ids = [doc_id(start + i) for i in range(len(part))]
        path = directory / f"docs-{s:05d}.parquet"
        pq.write_table(pa.table({"id": ids, "text": part}), path)
        paths.append(path)
    return paths


def unit_rows(directions: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit rows around the given directions (noise 1.4x a direction's norm: within-topic cos ~0.34)."""
    x = directions[which] + 1.4 * rng.standard_normal((len(which), directions.shape[1]), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_embeddings(n: int, dup_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float16 unit rows (n, DIM), copy positions, their bases' positions); copies planted in place."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((SYNTHETIC_TOPICS, DIM), dtype=np.float32)
    x = np.empty((n, DIM), np.float16)
    for start in range(0, n, 1 << 16):
        stop = min(n, start + (1 << 16))
        x[start:stop] = unit_rows(directions, rng.integers(0, SYNTHETIC_TOPICS, stop - start), rng)
    perm = rng.permutation(n)
    n_copies = round(n * dup_fraction)
    copies, bases = perm[:n_copies], rng.choice(perm[n_copies:], n_copies)
    target = np.where(rng.random(n_copies) < 0.25, 1.0, rng.uniform(0.86, 0.98, n_copies))
    for start in range(0, n_copies, 1 << 16):
        part = slice(start, start + (1 << 16))
        b = x[bases[part]].astype(np.float32)
        noise = rng.standard_normal(b.shape, dtype=np.float32)
        noise -= (noise * b).sum(1, keepdims=True) * b  # orthogonal to the base
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        delta = np.sqrt(1.0 / target[part] ** 2 - 1.0).astype(np.float32)[:, None]
        c = b + delta * noise
        x[copies[part]] = c / np.linalg.norm(c, axis=1, keepdims=True)
    return x, copies, bases


# ---------------------------------------------------------------- measured processes


@dataclasses.dataclass
class Run:
    wall: float
    cpu: float
    rss: int  # bytes
    units: int = 0
    unit_seconds: float = 0.0  # the units' own time (completion markers)


def timed(cmd: list[str], log: Path) -> Run:
    """Run `cmd` under /usr/bin/time (inheriting this process' CPU pinning); stop on failure."""
    stats = log.with_suffix(".time")
    full = ["/usr/bin/time", "-f", "%U %S %M", "-o", str(stats), *cmd]
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.run(full, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
    user, system, kib = stats.read_text().split()[-3:]
    return Run(wall, float(user) + float(system), int(kib) * 1024)


def dedup_cmd(inp: Path, out: Path, stage: str, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "data_pipeline", "dedup", "--method", "semantic", "--input", str(inp),
        "--output", str(out), "--workers", "1", "--stage", stage, "--quiet", *extra,
    ]  # fmt: skip


def marker_dir(out: Path, stage: str) -> Path:
    return out / ".done" if stage == "remove" else out / ".dedup" / stage / ".done"


def run_stage(inp: Path, out: Path, stage: str, extra: list[str], logs: Path) -> Run:
    run = timed(dedup_cmd(inp, out, stage, extra), logs / f"{out.name}-{stage}.log")
    markers = [json.loads(p.read_text()) for p in marker_dir(out, stage).glob("*.json")]
    run.units, run.unit_seconds = len(markers), sum(m["seconds"] for m in markers)
    print(
        f"  {out.name} {stage}: {run.wall:.1f} s wall, {run.cpu:.1f} CPU s, {run.rss / 2**20:.0f} MB",
        flush=True,
    )
    return run


def decisions(out: Path) -> dict[str, np.ndarray]:
    """The cluster stage's decisions (all partitions), with each key's corpus position."""
    rounds = []
    for directory in sorted((out / ".dedup").glob("decisions*")):  # decisions, decisions-2, ...
        table = pa.concat_tables([pq.read_table(f) for f in sorted(directory.glob("*.parquet"))])
        rounds.append(table.filter(table.column("removed")) if rounds else table)
    first, later = rounds[0].sort_by("key"), rounds[1:]
    # Round 1's row per document (its cluster), with the removals of later rounds folded in.
    removed = first.column("removed").to_numpy(zero_copy_only=False).copy()
    dup = first.column("duplicate_of").fill_null(np.uint64(2**64 - 1)).to_numpy().copy()
    keys = first.column("key").to_numpy()
    for t in later:
        pos = np.searchsorted(keys, t.column("key").to_numpy())
        removed[pos] = True
        dup[pos] = t.column("duplicate_of").to_numpy()
    return {"key": keys, "cluster": first.column("cluster").to_numpy(), "removed": removed, "dup": dup}


def key_positions(keys: np.ndarray, shard_docs: int) -> np.ndarray:
    shard, row = split_key(keys)
    return shard * shard_docs + row


# ---------------------------------------------------------------- semhash (its own process)


def load_run(inp: Path, out: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(ids, texts, float32 embeddings) of a run, in corpus order (every text here is non-empty)."""
    ids, texts, vectors = [], [], []
    for shard in sorted(inp.glob("*.parquet")):
        table = pq.read_table(shard, columns=["id", "text"])
        column = pq.read_table(out / ".dedup" / "embeddings" / shard.name).column("embedding")
        column = column.combine_chunks()
        if column.null_count or len(column) != table.num_rows:
            raise SystemExit(f"{shard}: documents without an embedding")
        flat = column.flatten().to_numpy(zero_copy_only=False)
        vectors.append(flat.astype(np.float32).reshape(len(column), column.type.list_size))
        ids += table.column("id").to_pylist()
        texts += table.column("text").to_pylist()
    return ids, texts, np.concatenate(vectors)


def semhash_worker(inp: Path, out: Path, result: Path, threshold: float) -> None:
    """Deduplicate with semhash; write its time, removed documents and their keepers as JSON."""
    from semhash import SemHash
    from semhash.version import __version__

    class Precomputed:  # from_embeddings needs a model; nothing is encoded
        def encode(self, inputs, **kwargs):  # noqa: ANN001, ANN003, ANN202
            raise AssertionError("semhash asked to encode")

    ids, texts, vectors = load_run(inp, out)
    records = [{"id": i, "text": t} for i, t in zip(ids, texts, strict=True)]
    wall, cpu = time.perf_counter(), time.process_time()
    semhash = SemHash.from_embeddings(vectors, records, Precomputed(), columns=["text"])
    dedup = semhash.self_deduplicate(threshold=threshold)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    reply = {
        "version": __version__,
        "index_dtype": str(semhash.index.backend.index.dtype),
        "wall": wall,
        "cpu": cpu,
        "removed": [int(d.record["id"][1:]) for d in dedup.filtered],
        "keeper": [int(d.duplicate_of["id"][1:]) for d in dedup.filtered],
    }
    result.write_text(json.dumps(reply))


# ---------------------------------------------------------------- parts


def end_to_end(args: argparse.Namespace, work: Path, logs: Path) -> dict:
    """Part 1: the corpus, every stage of the CLI run; the state part 2 needs."""
    t0 = time.perf_counter()
    corpus = make_corpus(args.docs, args.dup_fraction, args.seed)
    inp, out = work / "docs", work / "run"
    write_docs(inp, corpus.texts, args.shard_docs)
    print(f"corpus: {args.docs:,} documents in {time.perf_counter() - t0:.1f} s", flush=True)
    extra = ["--eps", str(args.eps), "--keep", "first"]
    if args.embed_dtype:
        extra += ["--embed-dtype", args.embed_dtype]
    runs = {stage: run_stage(inp, out, stage, extra, logs) for stage in STAGES}
    report = json.loads((out / "dedup_report.json").read_text())
    return {"corpus": corpus, "inp": inp, "out": out, "runs": runs, "report": report}


def compare_semhash(args: argparse.Namespace, e2e: dict, logs: Path) -> dict:
    """Part 2: semhash on our embeddings; agreement of the removed sets and why they differ."""
    inp, out, corpus = e2e["inp"], e2e["out"], e2e["corpus"]
    threshold = 1.0 - args.eps
    result = logs / "semhash.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--semhash-worker", str(inp), str(out), str(result)]
    run = timed([*cmd, "--eps", str(args.eps)], logs / "semhash.log")
    sh = json.loads(result.read_text())
    print(f"  semhash: {sh['wall']:.1f} s wall, {sh['cpu']:.1f} CPU s in its dedup", flush=True)
    n = len(corpus.texts)
    d = decisions(out)
    pos = key_positions(d["key"], args.shard_docs)
    ours = np.zeros(n, bool)
    ours[pos[d["removed"]]] = True
    cluster = np.full(n, -1, np.int64)
    cluster[pos] = d["cluster"]
    our_keeper = np.full(n, -1, np.int64)
    has = d["removed"]
    our_keeper[pos[has]] = key_positions(d["dup"][has], args.shard_docs)
    theirs = np.zeros(n, bool)
    theirs[sh["removed"]] = True
    their_keeper = np.full(n, -1, np.int64)
    their_keeper[sh["removed"]] = sh["keeper"]
    _, _, vectors = load_run(inp, out)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", unit[a].astype(np.float64), unit[b].astype(np.float64))

    only_ours, only_theirs = np.flatnonzero(ours & ~theirs), np.flatnonzero(theirs & ~ours)
    causes = {}
    k = our_keeper[only_ours]
    near = np.abs(cos(only_ours, k) - threshold) < NEAR_THRESHOLD
    causes["only andes"] = {
        "our keeper removed by semhash (greedy cascade)": int(theirs[k].sum()),
        f"cosine to our keeper within {NEAR_THRESHOLD} of the threshold": int((~theirs[k] & near).sum()),
        "not in semhash's candidates (HNSW recall, 100 neighbours per query)": int(
            (~theirs[k] & ~near).sum()
        ),
    }
    k = their_keeper[only_theirs]
    other = cluster[k] != cluster[only_theirs]
    near = np.abs(cos(only_theirs, k) - threshold) < NEAR_THRESHOLD
    causes["only semhash"] = {
        "semhash's keeper in another k-means cluster": int(other.sum()),
        "semhash's keeper removed by us (greedy cascade)": int((~other & ours[k]).sum()),
        f"cosine to semhash's keeper within {NEAR_THRESHOLD} of the threshold": int(
            (~other & ~ours[k] & near).sum()
        ),
        "other": int((~other & ~ours[k] & ~near).sum()),
    }
    planted = {}
    copies = np.flatnonzero(corpus.source >= 0)
    for kind in COPY_KINDS:
        c = copies[np.array([corpus.kinds[i] == kind for i in copies], bool)]
        b = corpus.source[c]
        planted[kind] = {
            "copies": len(c),
            "cos_ge": int((cos(c, b) >= threshold).sum()),
            "ours": int((ours[c] | ours[b]).sum()),
            "semhash": int((theirs[c] | theirs[b]).sum()),
            "same_cluster": int((cluster[c] == cluster[b]).sum()),
        }
    return {"run": run, "semhash": sh, "ours": ours, "theirs": theirs, "causes": causes, "planted": planted}


def synthetic_run(n: int, args: argparse.Namespace, work: Path, logs: Path) -> dict:
    """Part 3 at one size: synthetic embeddings + embed markers, then fit, assign, cluster for real."""
    inp, out = work / f"syn-docs-{n}", work / f"syn-run-{n}"
    t0 = time.perf_counter()
    shards = write_docs(inp, [f"synthetic document {i}" for i in range(n)], args.shard_docs)
    # A task with no units (rank past the last shard) creates the run's plan and records its config,
    # so the embeddings written next live in a directory the CLI resumes instead of refusing.
    extra = ["--eps", str(args.eps)]
    init = ["--rank", str(len(shards)), "--world-size", str(len(shards) + 1)]
    timed(dedup_cmd(inp, out, "embed", [*extra, *init]), logs / f"{out.name}-init.log")
    x, copies, bases = synthetic_embeddings(n, args.dup_fraction, args.seed)
    schema = embedding_schema(DIM, {"synthetic": "bench/bench_semantic_dedup.py", "dim": DIM})
    work_dir = out / ".dedup"
    (work_dir / "embeddings").mkdir(parents=True, exist_ok=True)
    for s, shard in enumerate(shards):
        rows = slice(s * args.shard_docs, min(n, (s + 1) * args.shard_docs))
        ids = [doc_id(i) for i in range(rows.start, rows.stop)]
        pq.write_table(embeddings_table(ids, x[rows], schema), work_dir / "embeddings" / shard.name)
        size = rows.stop - rows.start
        write_marker(work_dir / "embed", shard, ShardStats(shard=shard.name, docs_in=size, docs_out=size))
    print(f"synthetic {n:,}: built in {time.perf_counter() - t0:.1f} s", flush=True)
    runs = {stage: run_stage(inp, out, stage, extra, logs) for stage in STAGES[1:-1]}
    d = decisions(out)
    pos = key_positions(d["key"], args.shard_docs)
    cluster = np.empty(n, np.int64)
    cluster[pos] = d["cluster"]
    a, b = x[copies].astype(np.float64), x[bases].astype(np.float64)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    above = cosine >= 1.0 - args.eps
    sizes = np.bincount(d["cluster"])
    sizes = sizes[sizes > 0]
    plan = json.loads((work_dir / "plan.json").read_text())
    shutil.rmtree(out / ".dedup" / "clusters")  # the largest work files; disk, not the measurement
    return {
        "n": n,
        "shards": len(shards),
        "k": plan["clusters"],
        "partitions": plan["partitions"],
        "sizes": sizes,
        "removed": int(d["removed"].sum()),
        "planted_above": int(above.sum()),
        "planted_split": int((above & (cluster[copies] != cluster[bases])).sum()),
        "runs": runs,
    }


# ---------------------------------------------------------------- report


def mb(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.0f}"


def table_end_to_end(e2e: dict, n: int) -> str:
    runs = e2e["runs"]
    lines = [
        "| stage | units | wall s | CPU s | unit s (markers) | peak RSS MB | docs/s per core (CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage, r in runs.items():
        lines.append(
            f"| {stage} | {r.units} | {r.wall:.1f} | {r.cpu:.1f} | {r.unit_seconds:.1f} | {mb(r.rss)} "
            f"| {n / r.cpu:,.0f} |"
        )
    for label, names in (("fit+assign+cluster+remove", STAGES[1:]), ("all", STAGES)):
        rs = [runs[s] for s in names]
        cpu, wall = sum(r.cpu for r in rs), sum(r.wall for r in rs)
        lines.append(
            f"| **{label}** | | {wall:.1f} | {cpu:.1f} | {sum(r.unit_seconds for r in rs):.1f} "
            f"| {mb(max(r.rss for r in rs))} | {n / cpu:,.0f} |"
        )
    return "\n".join(lines)


def table_semhash(e2e: dict, cmp: dict, n: int) -> tuple[str, dict]:
    runs, sh, proc = e2e["runs"], cmp["semhash"], cmp["run"]
    ours = [runs[s] for s in STAGES[1:]]
    ours_cpu, ours_wall = sum(r.cpu for r in ours), sum(r.wall for r in ours)
    ours_units = sum(r.unit_seconds for r in ours)
    rows = [
        (f"semhash {sh['version']}: from_embeddings + self_deduplicate", sh["wall"], sh["cpu"], None),
        ("semhash process (+ reading embeddings, texts; imports)", proc.wall, proc.cpu, proc.rss),
        ("andes fit+assign+cluster+remove: units' own seconds", ours_units, ours_units, None),
        ("andes fit+assign+cluster+remove: 4 CLI processes", ours_wall, ours_cpu, max(r.rss for r in ours)),
    ]
    lines = [
        "| what | wall s | CPU s | peak RSS MB | docs/s per core | CPU ratio semhash / andes |",
        "|---|---|---|---|---|---|",
    ]
    for i, (what, wall, cpu, rss) in enumerate(rows):
        ratio = f"{rows[i - 2][2] / cpu:.2f}" if i >= 2 else "—"
        lines.append(
            f"| {what} | {wall:.1f} | {cpu:.1f} | {mb(rss) if rss else '—'} | {n / cpu:,.0f} | {ratio} |"
        )
    ratios = {"compute": sh["cpu"] / ours_units, "process": proc.cpu / ours_cpu}
    return "\n".join(lines), ratios


def table_agreement(cmp: dict) -> tuple[str, float]:
    a, b = cmp["ours"], cmp["theirs"]
    both, union = int((a & b).sum()), int((a | b).sum())
    jaccard = both / union if union else 1.0
    lines = [
        "| removed by andes | removed by semhash | both | only andes | only semhash | Jaccard |",
        "|---|---|---|---|---|---|",
        f"| {int(a.sum()):,} | {int(b.sum()):,} | {both:,} | {int((a & ~b).sum()):,} "
        f"| {int((b & ~a).sum()):,} | {jaccard:.4f} |",
        "",
        "| disagreement | cause | documents |",
        "|---|---|---|",
    ]
    for side, causes in cmp["causes"].items():
        for cause, count in causes.items():
            lines.append(f"| {side} | {cause} | {count:,} |")
    lines += [
        "",
        "| planted copy | copies | cos >= 1 - eps to its base | pair deduplicated by andes | by semhash "
        "| in its base's k-means cluster |",
        "|---|---|---|---|---|---|",
    ]
    for kind, p in cmp["planted"].items():
        c = max(p["copies"], 1)
        lines.append(
            f"| {kind} | {p['copies']:,} | {100 * p['cos_ge'] / c:.1f}% | {100 * p['ours'] / c:.1f}% "
            f"| {100 * p['semhash'] / c:.1f}% | {100 * p['same_cluster'] / c:.1f}% |"
        )
    return "\n".join(lines), jaccard


def table_synthetic(syn: list[dict]) -> str:
    lines = [
        "| docs | shards | k | partitions | cluster sizes min / median / max | fit RSS MB | assign RSS MB "
        "| cluster RSS MB | cluster wall s | cluster CPU s | removed | planted >= 1 - eps "
        "| of those split by k-means |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in syn:
        r, z = s["runs"], s["sizes"]
        lines.append(
            f"| {s['n']:,} | {s['shards']} | {s['k']} | {s['partitions']} "
            f"| {z.min():,} / {int(np.median(z)):,} / {z.max():,} | {mb(r['fit'].rss)} "
            f"| {mb(r['assign'].rss)} | {mb(r['cluster'].rss)} | {r['cluster'].wall:.1f} "
            f"| {r['cluster'].cpu:.1f} | {s['removed']:,} "
            f"| {s['planted_above']:,} | {s['planted_split']:,} |"
        )
    lines += ["", "| docs | stage | units | wall s | CPU s | peak RSS MB |", "|---|---|---|---|---|---|"]
    for s in syn:
        for stage, r in s["runs"].items():
            lines.append(f"| {s['n']:,} | {stage} | {r.units} | {r.wall:.1f} | {r.cpu:.1f} | {mb(r.rss)} |")
    return "\n".join(lines)


def interpretation(e2e: dict, cmp: dict, syn: list[dict], ratios: dict, jaccard: float, n: int) -> str:
    runs = e2e["runs"]
    total = sum(r.cpu for r in runs.values())
    rest = sum(runs[s].cpu for s in STAGES[1:])
    faster = "faster" if ratios["compute"] > 1 else "slower"
    small, big = syn[0], syn[-1]
    c_small, c_big = small["runs"]["cluster"], big["runs"]["cluster"]
    causes = {c: v for side in cmp["causes"].values() for c, v in side.items() if v}
    top = max(causes, key=causes.get) if causes else "none"
    kinds = [k for k in COPY_KINDS if k != "exact"]

    def share(field: str, invert: bool = False) -> str:
        shares = [cmp["planted"][k][field] / max(cmp["planted"][k]["copies"], 1) for k in kinds]
        return " / ".join(f"{100 * (1 - v if invert else v):.1f}%" for v in shares)

    split = " and ".join(
        f"{100 * s['planted_split'] / max(s['planted_above'], 1):.1f}% ({s['n']:,} docs)" for s in syn
    )
    return "\n".join(
        [
            f"- Embedding is {100 * runs['embed'].cpu / total:.0f}% of the CPU time: "
            f"{n / runs['embed'].cpu:,.0f} docs/s per core for these ~20-token documents, against "
            f"{n / rest:,.0f} docs/s per core for fit+assign+cluster+remove together.",
            f"- Per core, andes' dedup after embedding is {faster} than semhash's: semhash / andes CPU = "
            f"{ratios['compute']:.2f} comparing the work alone (semhash's index + self_deduplicate against "
            f"the units' own seconds), {ratios['process']:.2f} comparing whole processes (ours: 4 CLI "
            "processes that also read and write Parquet; semhash's: reading the embeddings and texts).",
            f"- Removed sets agree at Jaccard {jaccard:.4f}; the largest cause of disagreement: {top} "
            f"({causes.get(top, 0):,} documents).",
            f"- k-means boundaries cost recall: of the {' / '.join(kinds)} copies, "
            f"{share('same_cluster', True)} sit in another of the {e2e['report']['clusters']} k-means "
            f"clusters than their base; andes deduplicates {share('ours')} of these (copy, base) pairs, "
            f"semhash {share('semhash')}. With synthetic embeddings, {split} of the planted pairs at "
            "cosine >= 1 - eps straddle two clusters.",
            f"- Cluster stage peak RSS: {mb(c_small.rss)} MB at {small['n']:,} documents, {mb(c_big.rss)} MB "
            f"at {big['n']:,} ({c_big.rss / c_small.rss:.2f}x for {big['n'] / small['n']:.0f}x the corpus; "
            f"{small['partitions']} vs {big['partitions']} partitions); its wall time {c_small.wall:.1f} s "
            f"vs {c_big.wall:.1f} s.",
        ]
    )


def source_digest() -> str:
    digest = hashlib.sha1()
    for path in sorted((ROOT / "data_pipeline" / "semantic").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def machine(cpu: int) -> str:
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{platform.machine()} {model}, nproc={os.cpu_count()}, pinned to CPU {cpu} (every process), "
        f"OMP/MKL/OpenBLAS threads 1, --workers 1, python {platform.python_version()}"
    )


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--docs", type=int, default=100_000, help="documents of parts 1 and 2, and the small size of part 3"
    )
    ap.add_argument(
        "--big-docs", type=int, default=1_000_000, help="synthetic documents of part 3's large run"
    )
    ap.add_argument("--shard-docs", type=int, default=10_000, help="documents per input shard")
    ap.add_argument("--dup-fraction", type=float, default=0.2, help="planted copies among the documents")
    ap.add_argument("--eps", type=float, default=0.1, help="dedup eps; semhash threshold 1 - eps")
    ap.add_argument(
        "--embed-dtype", choices=("float32", "bfloat16"), help="(default: the CLI's, float32 on CPU)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last)")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="keep the runs here (default: a temp dir, removed)"
    )
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--no-results", action="store_true", help="print the tables, do not append them")
    ap.add_argument("--smoke", action="store_true", help="--docs 300 --big-docs 2000, nothing written")
    ap.add_argument("--semhash-worker", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.semhash_worker:
        semhash_worker(*args.semhash_worker, threshold=1.0 - args.eps)
        return
    if args.smoke:
        args.docs, args.big_docs, args.no_results = 300, 2000, True
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # inherited by every measured process
    load_before = os.getloadavg()[0]
    digest = source_digest()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_semantic_dedup_"))
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        print("part 1: end to end", flush=True)
        e2e = end_to_end(args, work, logs)
        print("part 2: semhash", flush=True)
        cmp = compare_semhash(args, e2e, logs)
        print("part 3: synthetic embeddings", flush=True)
        syn = [synthetic_run(n, args, work, logs) for n in (args.docs, args.big_docs)]
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    n = args.docs
    t1 = table_end_to_end(e2e, n)
    t2, ratios = table_semhash(e2e, cmp, n)
    t3, jaccard = table_agreement(cmp)
    t4 = table_synthetic(syn)
    notes = interpretation(e2e, cmp, syn, ratios, jaccard, n)
    rep = e2e["report"]
    argv = [a for a in sys.argv[1:] if a != "--no-results"]
    now = source_digest()
    changed = "" if now == digest else f" at the start (CHANGED during the run, now {now})"
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    import semhash.version
    import usearch

    corpus = e2e["corpus"]
    counts = {k: corpus.kinds.count(k) for k in ("base", *COPY_KINDS)}
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    load_after = os.getloadavg()[0]
    section = "\n".join(
        [
            f"## Semantic dedup end to end vs semhash — {stamp}",
            "",
            f"- command: `{' '.join(['python bench/bench_semantic_dedup.py', *argv])}`",
            f"- machine: {machine(cpu)}; load average before: {load_before:.2f}, after: {load_after:.2f} "
            "(a shared machine: CPU s are steadier than wall s)",
            f"- andes: git HEAD {head.stdout.strip() or '?'} + working tree, "
            f"data_pipeline/semantic/*.py sha1 {digest}{changed}; semhash {semhash.version.__version__} "
            f"(usearch {usearch.__version__}, index "
            f"dtype {cmp['semhash']['index_dtype']})",
            f"- parts 1-2: {n:,} documents of 1-3 Shakespeare sentences (<= {MAX_WORDS} words), "
            f"{args.shard_docs:,} per shard; "
            + ", ".join(f"{k} {v:,}" for k, v in counts.items())
            + f" (seed {args.seed}); `--eps {args.eps} --keep first`, other options the CLI defaults: "
            f"{rep['clusters']} k-means clusters (largest {rep['largest_cluster']:,}), all-MiniLM-L6-v2"
            + (f" in {args.embed_dtype}" if args.embed_dtype else " float32"),
            "- part 3: synthetic float16 unit vectors (1,000 random directions, within-direction cosine "
            f"~0.34, {args.dup_fraction:.0%} planted copies at cosine 1 or U[0.86, 0.98]), "
            f"{args.shard_docs:,} per shard, embed stage replaced by writing its outputs and markers; "
            "CLI defaults (`--keep hard`)",
            "",
            "### 1. Stages, one core",
            "",
            t1,
            "",
            "### 2. semhash on the same embeddings, one core",
            "",
            t2,
            "",
            t3,
            "",
            "### 3. Memory as the corpus grows (synthetic embeddings)",
            "",
            t4,
            "",
            notes,
            "",
        ]
    )
    print("\n" + section)
    if not args.no_results:
        with args.results.open("a") as f:
            f.write("\n" + section)


if __name__ == "__main__":
    main()
