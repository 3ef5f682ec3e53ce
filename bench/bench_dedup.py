"""MinHash near-dedup, end to end: andes against datatrove's 4 stages and plain datasketch.

Corpus: tests/dup_corpus.py `make_corpus(--docs, --seed)`, documents with planted near-duplicates,
written as --shards Parquet shards (id, text, url, timestamp) in shuffled order and cached under
bench/.cache/dedup/ with the exact ground truth: every pair of documents whose word 5-gram Jaccard
similarity is >= 0.8 (`similar_pairs`). Every system uses word 5-grams and 14 bands x 8 rows (112
hashes), and runs as a fresh subprocess, one at a time, so that its peak RSS is its own:

- andes: `python -m data_pipeline dedup --input SHARDS --output OUT --workers N [--annotate]`. The
  removing run is the end-to-end time; the `--annotate` run (every row kept, `minhash_cluster`
  column) is timed too and gives the clusters scored.
- datatrove (its own venv, bench/.venv-datatrove, through bench/datatrove_minhash_worker.py): its
  4 stages, each a `LocalPipelineExecutor` (signatures, buckets, cluster with `save_cluster_id`,
  filter writing the kept documents as Parquet); the clusters scored are the stage-3 cluster ids
  mapped back to document ids (see the worker's `cluster_table`).
- datasketch: read the shards, `MinHash.update_batch` per document (andes' normalisation and
  shingles, hashed with xxh32), `MinHashLSH(params=(14, 8))` insert of all and query of each, a
  union-find in Python, then the kept rows (first document of each cluster) written as Parquet.

Measured:
- signatures per core: documents already in memory, signatures only (andes `signatures()` on the
  whole list; datatrove `get_shingles` + `get_signature` per document; datasketch `update_batch`),
  CPU time of a process pinned to one CPU, best of --repeats;
- end-to-end wall time from input shards to deduplicated output (1 worker: pinned to one CPU;
  `--workers 2` adds unpinned runs of andes and datatrove with 2 workers);
- peak RSS: max RSS of the child by /usr/bin/time (the largest process of its tree; datatrove's
  pool workers are forkserver children and may escape it), and /proc sampled every 0.2 s for the
  largest process and the sum over the process tree;
- precision / recall / F1 of pairs in the same predicted cluster against the exact pairs
  (`pair_scores`).

Run: `python bench/bench_dedup.py [--docs 100000] [--workers 2] [--only andes,datatrove,datasketch]`;
the 1M-document memory check: `python bench/bench_dedup.py --docs 1000000 --only andes` (no ground
truth above --quality-max-docs, so no F1 there).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CACHE = HERE / ".cache" / "dedup"
RESULTS = HERE / "RESULTS.md"
WORKER = HERE / "datatrove_minhash_worker.py"
DT_PYTHON = HERE / ".venv-datatrove" / "bin" / "python"
SYSTEMS = ("andes", "datatrove", "datasketch")
THRESHOLD = 0.8  # Jaccard of word 5-grams above which a pair is a true duplicate
GOALS = {"signatures": 5.0, "end_to_end": 3.0, "f1": 0.95, "rss_gb_per_worker_1m": 2.0}
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """A cached corpus: shards in their own folder, document ids in generation order, exact pairs."""

    root: Path
    ids: list[str]
    kinds: list[str]  # "unrelated", "base", "exact" (byte or normalise-equal copy) or "near" copy
    groups: list[int]  # planted group, -1 for unrelated documents
    targets: list[float | None]  # planted Jaccard of a copy to its base
    n_bytes: int
    truth: dict[tuple[int, int], float] | None = None
    truth_seconds: float = 0.0

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def index(self) -> dict[str, int]:
        return {doc_id: i for i, doc_id in enumerate(self.ids)}


def ensure_corpus(n_docs: int, seed: int, n_shards: int, quality: bool) -> Corpus:
    """Generate (or load) the corpus, its shards, and, with `quality`, its exact duplicate pairs."""
    from tests.dup_corpus import make_corpus, similar_pairs, write_shards

    root = CACHE / f"n{n_docs}-seed{seed}-shards{n_shards}"
    meta_path, truth_path = root / "docs.parquet", root / f"pairs-{THRESHOLD}.parquet"
    docs = None
    if not meta_path.exists():
        print(f"generating {n_docs:,} documents (seed {seed}) ...", flush=True)
        docs = make_corpus(n_docs, seed)
        shutil.rmtree(root, ignore_errors=True)
        (root / "shards").mkdir(parents=True)
        write_shards(docs, root / "shards", n_shards, seed)
        columns = {
            "id": [str(d.id) for d in docs],
            "kind": [str(d.kind) for d in docs],
            "group": pa.array([d.group for d in docs], pa.int64()),
            "target": pa.array([d.target for d in docs], pa.float64()),
            "bytes": [len(d.text.encode("utf-8")) for d in docs],
        }
        pq.write_table(pa.table(columns), meta_path)
    meta = pq.read_table(meta_path)
    corpus = Corpus(
        root,
        meta.column("id").to_pylist(),
        meta.column("kind").to_pylist(),
        meta.column("group").to_pylist(),
        meta.column("target").to_pylist(),
        int(pc.sum(meta.column("bytes")).as_py()),
    )
    if quality:
        if not truth_path.exists():
            if docs is None:
                docs = make_corpus(n_docs, seed)
            print(f"exact pairs at Jaccard >= {THRESHOLD} ...", flush=True)
            start = time.perf_counter()
            pairs = similar_pairs([d.text for d in docs], THRESHOLD)
            elapsed = time.perf_counter() - start
            keys = sorted(pairs)
            table = pa.table(
                {
                    "i": pa.array([k[0] for k in keys], pa.int64()),
                    "j": pa.array([k[1] for k in keys], pa.int64()),
                    "jaccard": pa.array([pairs[k] for k in keys], pa.float64()),
                }
            )
            pq.write_table(table.replace_schema_metadata({"seconds": f"{elapsed:.1f}"}), truth_path)
        table = pq.read_table(truth_path)
        i, j, jac = (table.column(c).to_pylist() for c in ("i", "j", "jaccard"))
        corpus.truth = {(a, b): s for a, b, s in zip(i, j, jac, strict=True)}
        corpus.truth_seconds = float(table.schema.metadata[b"seconds"])
    return corpus


def read_shards(shards: Path, columns: list[str]) -> pa.Table:
    return pa.concat_tables(pq.read_table(p, columns=columns) for p in sorted(shards.glob("*.parquet")))


# ---------------------------------------------------------------- child processes


@dataclass
class Run:
    """One child process: wall and CPU time, memory, and its JSON reply (last stdout line)."""

    seconds: float
    max_rss: int  # bytes; max RSS of the child and its reaped descendants (/usr/bin/time %M)
    cpu_seconds: float  # user + system time of the child and its reaped descendants
    peak_proc_rss: int  # bytes; largest single process seen by /proc sampling
    peak_tree_rss: int  # bytes; largest sum over the process tree seen by sampling
    reply: dict[str, Any] = field(default_factory=dict)

    @property
    def rss(self) -> int:
        return max(self.max_rss, self.peak_proc_rss)


def process_tree(root: int) -> list[int]:
    """`root` and its live descendants, from /proc/*/stat parent ids."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def rss_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def run_child(cmd: list[str], log: Path, cpus: set[int] | None) -> Run:
    """Run `cmd` (pinned to `cpus` if given), sampling its tree's RSS; stdout's last line is JSON.

    The max RSS comes from `/usr/bin/time`, not from our own wait4: Linux carries the RSS high-water
    mark of the process that execs into the new program's max RSS, so a child forked straight from
    this (large: the corpus, the pairs) process would report at least our peak. /usr/bin/time is
    small, and `taskset` execs in place, so the measured process is the command itself.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    out_path, rss_path = log.with_suffix(".out"), log.with_suffix(".time")
    peaks = [0, 0]
    done = threading.Event()

    def sample(pid: int) -> None:
        while not done.is_set():
            sizes = [rss_of(p) for p in process_tree(pid)[1:]]  # [0] is /usr/bin/time
            peaks[0] = max(peaks[0], max(sizes, default=0))
            peaks[1] = max(peaks[1], sum(sizes))
            done.wait(0.2)

    pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
    full = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(rss_path), *pin, *cmd]
    with out_path.open("w") as out, log.open("w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=ENV, cwd=ROOT)
        sampler = threading.Thread(target=sample, args=(proc.pid,), daemon=True)
        sampler.start()
        proc.wait()
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}; stderr tail:\n{tail}")
    kib, user, system = rss_path.read_text().split()[-3:]
    run = Run(seconds, int(kib) * 1024, float(user) + float(system), peaks[0], peaks[1])
    lines = out_path.read_text().strip().splitlines()
    if lines and lines[-1].startswith("{"):
        run.reply = json.loads(lines[-1])
    return run


def self_cmd(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


# ---------------------------------------------------------------- children run in this venv


def datasketch_minhashes(texts: list[str]) -> list[Any]:
    """One datasketch MinHash per document (None without shingles), same shingles as andes."""
    import datasketch
    import xxhash

    from data_pipeline.dedup.minhash import MinHashConfig, shingles

    cfg = MinHashConfig()
    out: list[Any] = []
    for text in texts:
        grams = shingles(text, cfg)
        if not grams:
            out.append(None)
            continue
        m = datasketch.MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=xxhash.xxh32_intdigest)
        m.update_batch([g.encode("utf-8") for g in grams])
        out.append(m)
    return out


def child_sig(system: str, shards: Path, repeats: int) -> dict[str, Any]:
    """CPU time of signatures alone over the in-memory texts (best of `repeats`, after a warm-up)."""
    from data_pipeline.dedup.minhash import MinHashConfig, signatures

    texts = read_shards(shards, ["text"]).column("text").to_pylist()
    cfg = MinHashConfig()
    compute = (lambda t: signatures(t, cfg)) if system == "andes" else datasketch_minhashes
    compute(texts[:100])  # permutation tables, hash powers, imports
    best_cpu = best_wall = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        compute(texts)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return {"docs": len(texts), "cpu_seconds": best_cpu, "seconds": best_wall}


def child_datasketch_e2e(shards: Path, output: Path) -> dict[str, Any]:
    """Shards -> MinHash -> MinHashLSH insert + query -> union-find -> kept rows as Parquet."""
    from datasketch import MinHashLSH

    from data_pipeline.dedup.minhash import MinHashConfig

    cfg = MinHashConfig()
    phases: dict[str, float] = {}
    t = time.perf_counter()
    files = sorted(shards.glob("*.parquet"))
    table = pa.concat_tables(pq.read_table(p) for p in files)
    texts = table.column("text").to_pylist()
    phases["read"] = time.perf_counter() - t

    t = time.perf_counter()
    minhashes = datasketch_minhashes(texts)
    phases["signatures"] = time.perf_counter() - t

    t = time.perf_counter()
    lsh = MinHashLSH(num_perm=cfg.num_perm, params=(cfg.bands, cfg.rows))
    for i, m in enumerate(minhashes):
        if m is not None:
            lsh.insert(i, m, check_duplication=False)
    edges: list[tuple[int, int]] = []
    for i, m in enumerate(minhashes):
        if m is not None:
            edges.extend((i, j) for j in lsh.query(m) if j > i)
    phases["lsh"] = time.perf_counter() - t

    t = time.perf_counter()
    parent = list(range(len(texts)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the root is the cluster's first document
    roots = [find(i) for i in range(len(texts))]
    phases["union_find"] = time.perf_counter() - t

    t = time.perf_counter()
    keep = np.fromiter((r == i for i, r in enumerate(roots)), dtype=bool, count=len(roots))
    output.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.filter(pa.array(keep)), output / "00000.parquet")
    phases["write"] = time.perf_counter() - t
    total = sum(phases.values())

    # Not timed: cluster ids of clustered documents, for scoring.
    sizes = np.bincount(np.asarray(roots))
    clustered = [i for i, r in enumerate(roots) if sizes[r] > 1]
    ids = table.column("id").to_pylist()
    pq.write_table(
        pa.table(
            {
                "id": [ids[i] for i in clustered],
                "cluster": pa.array([roots[i] for i in clustered], pa.int64()),
            }
        ),
        output.parent / (output.name + "-clusters.parquet"),
    )
    return {"phases": phases, "seconds": total, "edges": len(edges), "kept": int(keep.sum())}


# ---------------------------------------------------------------- systems


def andes_cli_available() -> bool:
    cmd = [sys.executable, "-m", "data_pipeline", "dedup", "--help"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, env=ENV).returncode == 0


def andes_clusters(out_dir: Path) -> dict[str, int]:
    """id -> minhash_cluster from an `--annotate` output (null = in no cluster)."""
    files = sorted(out_dir.glob("*.parquet"))
    table = pa.concat_tables(pq.read_table(p, columns=["id", "minhash_cluster"]) for p in files)
    ids, cl = table.column("id").to_pylist(), table.column("minhash_cluster").to_pylist()
    return {i: c for i, c in zip(ids, cl, strict=True) if c is not None}


def count_rows(out_dir: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in out_dir.glob("*.parquet"))


def clusters_file(path: Path) -> dict[str, int]:
    table = pq.read_table(path)
    return dict(zip(table.column("id").to_pylist(), table.column("cluster").to_pylist(), strict=True))


def bench_andes(corpus: Corpus, work: Path, workers: int, cpus: set[int] | None, sig: bool, args) -> dict:
    res: dict[str, Any] = {"system": "andes", "workers": workers}
    if sig:
        res["sig"] = run_child(
            self_cmd("--child", "andes-sig", "--input", str(corpus.shards), "--repeats", str(args.repeats)),
            work / "logs" / "andes-sig.log",
            cpus,
        )
    base = [sys.executable, "-m", "data_pipeline", "dedup", "--input", str(corpus.shards)]
    base += ["--workers", str(workers), "--method", "minhash", "--quiet"]
    out = work / f"andes-w{workers}"
    shutil.rmtree(out, ignore_errors=True)
    res["e2e"] = run_child([*base, "--output", str(out)], work / "logs" / f"andes-w{workers}.log", cpus)
    res["kept"] = count_rows(out)
    shutil.rmtree(out, ignore_errors=True)
    if not args.no_annotate:
        res["annotate"] = run_child(
            [*base, "--annotate", "--output", str(out)],
            work / "logs" / f"andes-w{workers}-annotate.log",
            cpus,
        )
        res["clusters"] = andes_clusters(out)
        shutil.rmtree(out, ignore_errors=True)
    return res


def bench_datatrove(corpus: Corpus, work: Path, workers: int, cpus: set[int] | None, sig: bool, args) -> dict:
    res: dict[str, Any] = {"system": "datatrove", "workers": workers}
    dt = [str(DT_PYTHON), str(WORKER)]
    io = ["--input", str(corpus.shards)]
    if sig:
        cmd = [*dt, "sig", *io, "--work", str(work / "dt-sig"), "--repeats", str(args.repeats)]
        res["sig"] = run_child(cmd, work / "logs" / "datatrove-sig.log", cpus)
    dt_work = work / f"datatrove-w{workers}"
    shutil.rmtree(dt_work, ignore_errors=True)
    cmd = [*dt, "pipeline", *io, "--work", str(dt_work), "--workers", str(workers)]
    res["e2e"] = run_child(cmd, work / "logs" / f"datatrove-w{workers}.log", cpus)
    res["kept"] = res["e2e"].reply["kept"]
    table = dt_work / "clusters.parquet"
    cmd = [*dt, "clusters", *io, "--work", str(dt_work), "--out", str(table)]
    res["mapping"] = run_child(cmd, work / "logs" / f"datatrove-w{workers}-clusters.log", None).reply
    res["clusters"] = clusters_file(table)
    shutil.rmtree(dt_work, ignore_errors=True)
    return res


def bench_datasketch(
    corpus: Corpus, work: Path, workers: int, cpus: set[int] | None, sig: bool, args
) -> dict:
    res: dict[str, Any] = {"system": "datasketch", "workers": 1}
    if sig:
        cmd = self_cmd(
            "--child", "datasketch-sig", "--input", str(corpus.shards), "--repeats", str(args.repeats)
        )
        res["sig"] = run_child(cmd, work / "logs" / "datasketch-sig.log", cpus)
    out = work / "datasketch-out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = self_cmd("--child", "datasketch-e2e", "--input", str(corpus.shards), "--output", str(out))
    res["e2e"] = run_child(cmd, work / "logs" / "datasketch.log", cpus)
    res["kept"] = res["e2e"].reply["kept"]
    res["clusters"] = clusters_file(out.parent / (out.name + "-clusters.parquet"))
    shutil.rmtree(out, ignore_errors=True)
    return res


BENCHES = {"andes": bench_andes, "datatrove": bench_datatrove, "datasketch": bench_datasketch}


# ---------------------------------------------------------------- scoring and report


def score(corpus: Corpus, clusters: dict[str, int]) -> dict[str, float]:
    from tests.dup_corpus import pair_scores

    index = corpus.index
    pred = {index[doc_id]: c for doc_id, c in clusters.items()}
    return dict(pair_scores(pred, corpus.truth))


def copies_found(corpus: Corpus, clusters: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Per planted copy kind: (copies, copies in the same predicted cluster as their base)."""
    base = {g: i for i, (k, g) in enumerate(zip(corpus.kinds, corpus.groups, strict=True)) if k == "base"}
    found: dict[str, list[int]] = {}
    for i, (kind, g, target) in enumerate(zip(corpus.kinds, corpus.groups, corpus.targets, strict=True)):
        if kind in ("exact", "near"):
            label = f"{kind} {target:.2f}"
            mine, theirs = clusters.get(corpus.ids[i]), clusters.get(corpus.ids[base[g]])
            counts = found.setdefault(label, [0, 0])
            counts[0] += 1
            counts[1] += mine is not None and mine == theirs
    return {k: (v[0], v[1]) for k, v in sorted(found.items(), key=lambda kv: kv[0], reverse=True)}


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f}"


def ratio(num: float | None, den: float | None) -> str:
    return f"{num / den:.2f}" if num and den else "—"


def sig_rate(res: dict[str, Any]) -> float | None:
    """Signature documents per CPU-second, from the pinned in-memory run."""
    sig = res.get("sig")
    return sig.reply["docs"] / sig.reply["cpu_seconds"] if sig else None


def andes_source() -> str:
    """A digest of data_pipeline/dedup/*.py, so that a run names the dedup code it measured."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted((ROOT / "data_pipeline" / "dedup").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return f"data_pipeline/dedup/*.py sha1 {digest.hexdigest()[:12]}"


def machine() -> str:
    cpu_model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    return f"{platform.machine()} {cpu_model}, nproc={os.cpu_count()}, python {platform.python_version()}"


def versions() -> str:
    import datasketch
    import xxhash

    dt = subprocess.run(
        [str(DT_PYTHON), "-c", "from importlib.metadata import version; print(version('datatrove'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (
        f"datatrove {dt or '?'} (bench/.venv-datatrove), datasketch {datasketch.__version__}, "
        f"xxhash {xxhash.VERSION}"
    )


def render(args, corpus: Corpus, results: list[dict], cpu: int, load: float) -> str:
    """The RESULTS.md section: setup, main table, per-stage times, goals."""
    now = datetime.datetime.now().isoformat(timespec="seconds")
    n = len(corpus.ids)
    argv = [a for a in sys.argv[1:] if a != "--no-results"]
    if "--results" in argv:  # where the report goes is not part of the measurement
        del argv[argv.index("--results") : argv.index("--results") + 2]
    cmd = "python bench/bench_dedup.py " + " ".join(argv)
    kinds: dict[str, int] = {}
    for k in corpus.kinds:
        kinds[k] = kinds.get(k, 0) + 1
    out = [f"## MinHash near-dedup end to end vs datatrove and datasketch — {now}", ""]
    out.append(f"- command: `{cmd.strip()}`")
    out.append(
        f"- machine: {machine()} (2 cores); 1-worker runs pinned to CPU {cpu}, OMP_NUM_THREADS=1, "
        f"one system at a time; load average before: {load:.2f}"
    )
    out.append(f"- {versions()}")
    now_source = andes_source()
    changed = f" (CHANGED during the run, was {args.andes_source})" if now_source != args.andes_source else ""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    out.append(f"- andes: git HEAD {head.stdout.strip() or '?'}, {now_source}{changed}")
    out.append(
        f"- corpus: tests/dup_corpus.py make_corpus({n:,}, seed={args.seed}), {corpus.n_bytes / 1e6:.1f} MB, "
        f"{args.shards} shuffled Parquet shards; kinds: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items()))
    )
    if corpus.truth is not None:
        out.append(
            f"- ground truth: {len(corpus.truth):,} pairs with word 5-gram Jaccard >= {THRESHOLD} "
            f"(`similar_pairs`, exact, {corpus.truth_seconds:.0f} s); scores are over pairs of documents "
            "in the same predicted cluster (`pair_scores`)"
        )
    out.append(
        "- all: word 5-grams, 14 bands x 8 rows (112 hashes); datatrove and datasketch link every LSH "
        "candidate pair, andes runs its CLI defaults (which may check candidates); datatrove: MinhashConfig "
        "defaults (xxhash64 shingles, its own normalisation, `str.split` words on the simplified text); "
        "datasketch: andes' normalised shingles hashed with xxh32"
    )
    out.append(
        "- sig docs/s: in-memory signatures only, CPU time pinned to one core, best of "
        f"{args.repeats}; e2e: wall time from input shards to the deduplicated Parquet output, and CPU "
        "time (user + sys of the process tree, /usr/bin/time; the machine is shared, so the CPU ratio is "
        "the steadier one; datatrove's forkserver pool workers escape it at 2 workers); RSS: "
        "the largest process (/usr/bin/time max RSS, 0.2 s /proc samples) and the sampled peak summed over "
        "the tree"
    )
    out.append("")
    out.append(
        "| system | workers | sig docs/s per core | sig ratio vs datatrove | e2e wall s | e2e docs/s | e2e "
        "wall ratio vs datatrove | e2e CPU s | e2e CPU ratio vs datatrove | peak RSS MB | tree RSS MB | kept "
        "| clustered docs | precision | recall | F1 |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    dt_sig = next((sig_rate(r) for r in results if r["system"] == "datatrove" and "sig" in r), None)
    dt_wall = {r["workers"]: r["e2e"].seconds for r in results if r["system"] == "datatrove"}
    # datatrove's forkserver pool workers are not children of its process: CPU time only at 1 worker
    dt_cpu = {r["workers"]: r["e2e"].cpu_seconds for r in results if r["system"] == "datatrove"}
    dt_cpu = {1: dt_cpu[1]} if 1 in dt_cpu else {}
    for r in results:
        e2e, rate = r["e2e"], sig_rate(r)
        q = r.get("scores") or {}
        cells = [
            r["system"],
            str(r["workers"]),
            f"{rate:,.0f}" if rate else "—",
            ratio(rate, dt_sig),
            f"{e2e.seconds:.1f}",
            f"{n / e2e.seconds:,.0f}",
            ratio(dt_wall.get(r["workers"]), e2e.seconds),
            f"{e2e.cpu_seconds:.1f}" if r["system"] != "datatrove" or r["workers"] == 1 else "—",
            ratio(dt_cpu.get(r["workers"]), e2e.cpu_seconds),
            mb(e2e.rss),
            mb(e2e.peak_tree_rss),
            f"{r['kept']:,}",
            f"{len(r['clusters']):,}" if "clusters" in r else "—",
            *(f"{q[k]:.4f}" if k in q else "—" for k in ("precision", "recall", "f1")),
        ]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("Where the end-to-end time goes (wall s):")
    out.append("")
    for r in results:
        reply = r["e2e"].reply
        if r["system"] == "datatrove":
            parts = ", ".join(f"{k} {v:.1f}" for k, v in reply["seconds"].items())
        elif r["system"] == "datasketch":
            parts = ", ".join(f"{k} {v:.1f}" for k, v in reply["phases"].items())
        else:
            ann = r.get("annotate")
            parts = f"dedup CLI {r['e2e'].seconds:.1f}" + (
                f"; the `--annotate` run {ann.seconds:.1f} (peak RSS {mb(ann.rss)} MB)" if ann else ""
            )
        out.append(f"- {r['system']}, workers={r['workers']}: {parts}")
    scored = [r for r in results if "copies" in r]
    if scored:
        out.append("")
        from data_pipeline.dedup.minhash import lsh_probability

        curve = ", ".join(f"{lsh_probability(j, 14, 8):.3f} at {j}" for j in (0.95, 0.85, 0.8, 0.7, 0.5))
        out.append(
            "Planted copies put in the same cluster as their base, by kind and planted Jaccard (14 x 8 "
            f"bands make a pair a candidate with probability {curve}; copies below 0.8 are not true "
            "pairs, so clustering them costs precision):"
        )
        out.append("")
        names = " | ".join(f"{r['system']} x{r['workers']}" for r in scored)
        out.append(f"| copy kind | copies | {names} |")
        out.append("|---|---|" + "---|" * len(scored))
        for label, (total, _) in scored[0]["copies"].items():
            cells = [f"{r['copies'][label][1] / total:.2%}" for r in scored]
            out.append(f"| {label} | {total:,} | " + " | ".join(cells) + " |")
    out.append("")
    out.extend(goal_lines(results, n))
    out.append("")
    return "\n".join(out)


def goal_lines(results: list[dict], n_docs: int) -> list[str]:
    """Each goal of the andes dedup with the measured value and whether it is met."""

    def pick(system: str, workers: int = 1) -> dict | None:
        return next((r for r in results if r["system"] == system and r["workers"] == workers), None)

    andes, dt = pick("andes"), pick("datatrove")
    lines = ["Goals (andes, 1 worker):", ""]

    def verdict(value: float | None, goal: float, higher: bool = True) -> str:
        if value is None:
            return "not measured in this run"
        ok = value >= goal if higher else value <= goal
        return f"{value:.2f} — {'met' if ok else 'NOT met'}"

    sig = sig_rate(andes) / sig_rate(dt) if andes and dt and "sig" in andes and "sig" in dt else None
    lines.append(
        f"- signatures >= {GOALS['signatures']:.0f}x datatrove per core: {verdict(sig, GOALS['signatures'])}"
    )
    wall = dt["e2e"].seconds / andes["e2e"].seconds if andes and dt else None
    cpu = dt["e2e"].cpu_seconds / andes["e2e"].cpu_seconds if andes and dt else None
    goal = GOALS["end_to_end"]
    lines.append(
        f"- end-to-end >= {goal:.0f}x datatrove: wall {verdict(wall, goal)}; CPU time {verdict(cpu, goal)}"
    )
    f1 = andes.get("scores", {}).get("f1") if andes else None
    lines.append(f"- F1 >= {GOALS['f1']} at Jaccard {THRESHOLD}: {verdict(f1, GOALS['f1'])}")
    gb = andes["e2e"].rss / 2**30 if andes else None
    goal = GOALS["rss_gb_per_worker_1m"]
    if n_docs >= 1_000_000:
        lines.append(
            f"- peak RSS <= {goal:.0f} GB per worker on 1M docs (GB): {verdict(gb, goal, higher=False)}"
        )
    else:
        shown = f"{gb:.2f} GB on {n_docs:,} docs" if gb is not None else "no andes run"
        lines.append(
            f"- peak RSS <= {goal:.0f} GB per worker on 1M docs: not measured here ({shown}); run "
            "`python bench/bench_dedup.py --docs 1000000 --only andes`"
        )
    return lines


# ---------------------------------------------------------------- main


def run_child_mode(args: argparse.Namespace) -> None:
    if args.child.endswith("-sig"):
        reply = child_sig(args.child.removesuffix("-sig"), args.input, args.repeats)
    else:
        reply = child_datasketch_e2e(args.input, args.output)
    print(json.dumps(reply), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000, help="corpus size in documents (default 100k)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--shards", type=int, default=8, help="Parquet shards of the corpus (default 8)")
    parser.add_argument("--workers", type=int, default=1, help="also run andes and datatrove with N workers")
    parser.add_argument("--only", default=",".join(SYSTEMS), help="comma-separated systems to run")
    parser.add_argument("--repeats", type=int, default=1, help="timed in-memory signature passes; best kept")
    parser.add_argument("--cpu", type=int, default=None, help="CPU for 1-worker runs (default: the last)")
    parser.add_argument("--no-sig", action="store_true", help="skip the in-memory signature runs")
    parser.add_argument("--no-annotate", action="store_true", help="skip andes' --annotate run (no F1)")
    parser.add_argument(
        "--quality-max-docs", type=int, default=300_000, help="compute exact pairs and F1 up to this size"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to append to")
    parser.add_argument("--no-results", action="store_true", help="print the report, do not append it")
    parser.add_argument(
        "--child", choices=("andes-sig", "datasketch-sig", "datasketch-e2e"), help=argparse.SUPPRESS
    )
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child_mode(args)
        return

    systems = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"--only: unknown systems {sorted(unknown)}; choose from {SYSTEMS}")
    if "andes" in systems and not andes_cli_available():
        print("andes: `python -m data_pipeline dedup` is not available yet; skipping andes", file=sys.stderr)
        systems.remove("andes")
    if "datatrove" in systems and not DT_PYTHON.exists():
        parser.error(f"{DT_PYTHON} missing: run bench/bench_filters.py once to create the datatrove venv")

    args.andes_source = andes_source()
    quality = args.docs <= args.quality_max_docs
    corpus = ensure_corpus(args.docs, args.seed, args.shards, quality)
    print(
        f"corpus: {len(corpus.ids):,} docs, {corpus.n_bytes / 1e6:.1f} MB, {args.shards} shards", flush=True
    )
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    work = CACHE / "work"
    results: list[dict] = []
    for workers in sorted({1, args.workers}):
        for system in systems:
            if system == "datasketch" and workers > 1:
                continue  # one process only
            pinned = {cpu} if workers == 1 else None
            res = BENCHES[system](corpus, work, workers, pinned, workers == 1 and not args.no_sig, args)
            if "clusters" in res:
                res["copies"] = copies_found(corpus, res["clusters"])
                if quality:
                    res["scores"] = score(corpus, res["clusters"])
            results.append(res)
            print(
                f"{system} x{workers}: e2e {res['e2e'].seconds:.1f} s, peak RSS {mb(res['e2e'].rss)} MB, "
                f"kept {res['kept']:,}, scores {res.get('scores')}",
                flush=True,
            )
    report = render(args, corpus, results, cpu, load)
    print(report)
    if not args.no_results:
        with args.results.open("a", encoding="utf-8") as f:
            f.write("\n" + report)


if __name__ == "__main__":
    main()
