"""MinHash connected components sharded over K partitions: memory of the largest task, wall time,
rounds, and the same output for every K.

Two parts, each K in --ks (default 1, 4, 16):

1. End to end on the 1M-document corpus of bench/bench_dedup.py (tests/dup_corpus.py's planted
   near duplicates, cached under bench/.cache/dedup/): `andes-data dedup --stage S --workers W` for
   each stage in turn, each a fresh process measured by /usr/bin/time (its max RSS is that of the
   largest process of its tree: the stage runner or one of its workers). The hash stage does not
   depend on K, so it runs once and its files are copied for the other K (with K patched into the
   plan and the stage record). Components stages left after a round settled are skipped, as the
   local driver skips them. Reported: the largest components task's peak RSS and input edges,
   rounds, wall times, and whether kept/dropped shards and the report are byte-identical.
2. The components stages alone on a synthetic graph large enough for edges to dominate memory
   (--graph-edges, default 8M: random trees over power-law clusters of random document keys, sent
   as 8 bucket partitions would send them), every stage a fresh process running its units one after
   another (its peak RSS is that of its largest unit), to show memory ~ 2E/K.

Run: `python bench/bench_dedup_cc.py [--docs 1000000] [--graph-edges 8000000]`; `--smoke` runs a
tiny version and appends nothing to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.bench_dedup import CACHE, RESULTS, andes_source, machine, mb, run_child  # noqa: E402
from data_pipeline.dedup.cc_tasks import (  # noqa: E402
    COMPONENTS,
    ComponentsTask,
    StarTask,
    cc_results,
    converged_step,
    find_results,
    read_labels,
    send_edges,
    step_dir,
)
from data_pipeline.dedup.clusters import doc_key  # noqa: E402
from data_pipeline.dedup.stars import edge_set, round_limit  # noqa: E402

GRAPH_SENDERS = 8  # bucket partitions the synthetic graph's edges come from


def self_cmd(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


# ---------------------------------------------------------------- part 1: end to end


def ensure_corpus(docs: int, seed: int, shards: int) -> Path:
    """bench_dedup's cached corpus, generated in a child so this process stays small."""
    code = f"from bench.bench_dedup import ensure_corpus; ensure_corpus({docs}, {seed}, {shards}, False)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return CACHE / f"n{docs}-seed{seed}-shards{shards}" / "shards"


def dedup_stage(corpus: Path, out: Path, k: int, stage: str, workers: int, logs: Path) -> dict:
    cmd = [sys.executable, "-m", "data_pipeline", "dedup", "--input", str(corpus), "--output", str(out)]
    cmd += ["--cc-partitions", str(k), "--workers", str(workers), "--write-dropped", "--quiet"]
    run = run_child([*cmd, "--stage", stage], logs / f"k{k}-{stage}.log", None)
    return {"stage": stage, "seconds": run.seconds, "rss": run.rss}


def copy_hashed(template: Path, out: Path, k: int) -> None:
    """A run directory after its hash stage, for another K: the hash stage's files do not depend on K."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(template, out)
    for record in (out / "stage.json", out / ".dedup" / "plan.json"):
        data = json.loads(record.read_text())
        data["cc_partitions"] = k
        record.write_text(json.dumps(data, indent=1, sort_keys=record.name == "stage.json") + "\n")


def components_stages(work: Path) -> tuple[list[str], int, int]:
    plan = json.loads((work / "plan.json").read_text())
    parts = plan["cc_partitions"]
    steps = 0 if parts == 1 else 2 * plan["cc_rounds"] - 1
    return [f"cc-{i}" for i in range(steps)] + [COMPONENTS], parts, steps


def max_task_edges(work: Path) -> int:
    """The largest input of a components task, in edges (its marker's docs_in)."""
    markers = [*work.glob("cc-*/.done/*.json"), *(work / COMPONENTS).glob(".done/*.json")]
    return max((json.loads(m.read_text())["docs_in"] for m in markers), default=0)


def visible_output(out: Path) -> dict[str, bytes]:
    """Kept and dropped shards and the report: what must not depend on K."""
    files = (
        sorted(out.glob("*.parquet")) + sorted(out.glob("dropped/*.parquet")) + [out / "dedup_report.json"]
    )
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha1()
    for name, data in sorted(files.items()):
        h.update(name.encode() + data)
    return h.hexdigest()[:12]


def run_end_to_end(corpus: Path, ks: list[int], workers: int, root: Path) -> list[dict]:
    logs, template, results = root / "logs", root / "hashed", []
    shutil.rmtree(template, ignore_errors=True)
    hashed = dedup_stage(corpus, template, ks[0], "hash", workers, logs)
    for k in ks:
        out = root / f"k{k}"
        copy_hashed(template, out, k)
        stages = [dedup_stage(corpus, out, k, "buckets", workers, logs)]
        names, parts, steps = components_stages(out / ".dedup")
        cc = []
        for i, name in enumerate(names):
            if converged_step(out / ".dedup", parts, i if name != COMPONENTS else steps) is not None:
                continue  # what the local driver skips; as Slurm tasks they only write markers
            cc.append(dedup_stage(corpus, out, k, name, workers, logs))
        stages += [*cc, dedup_stage(corpus, out, k, "remove", workers, logs)]
        output = visible_output(out)
        large_rounds = sum(1 for s in cc if s["stage"].startswith("cc-") and int(s["stage"][3:]) % 2 == 0)
        results.append(
            {
                "k": k,
                "hash_seconds": hashed["seconds"],
                "seconds": hashed["seconds"] + sum(s["seconds"] for s in stages),
                "cc_seconds": sum(s["seconds"] for s in cc),
                "cc_stages": len(cc),
                "large_rounds": large_rounds,
                "cc_rss": max(s["rss"] for s in cc),
                "max_rss": max(hashed["rss"], *(s["rss"] for s in stages)),
                "max_task_edges": max_task_edges(out / ".dedup"),
                "report": json.loads((out / "dedup_report.json").read_text()),
                "digest": digest(output),
            }
        )
        print(f"end to end K={k}: { {n: v for n, v in results[-1].items() if n != 'report'} }", flush=True)
    return results


# ---------------------------------------------------------------- part 2: components of a large graph


def synthetic_edges(edges: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Power-law clusters (2 + Zipf(2) members, at most 100,000) of random document keys, each a
    random recursive tree: about `edges` edges, as the bucket forests of a heavily duplicated corpus."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(1 + rng.zipf(2.0, edges), 100_000)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes - 1), edges) + 1]
    n = int(sizes.sum())
    rows_per_shard = 1 << 20
    index = rng.permutation(n)
    keys = doc_key(index // rows_per_shard, index % rows_per_shard)
    start = np.repeat(np.cumsum(sizes) - sizes, sizes)
    rank = np.arange(n) - start  # position in its cluster
    child = rank > 0
    parent = start[child] + (rng.random(int(child.sum())) * rank[child]).astype(np.int64)
    return keys[child], keys[parent]


def write_graph(work: Path, k: int, hi: np.ndarray, lo: np.ndarray, seed: int) -> None:
    shutil.rmtree(work, ignore_errors=True)
    sender = np.random.default_rng(seed).integers(0, GRAPH_SENDERS, len(hi))
    for s in range(GRAPH_SENDERS):
        send_edges(work, 0, s, hi[sender == s], lo[sender == s], k, both_ends=True)


def unit_task(work: Path, k: int, step: int) -> StarTask | ComponentsTask:
    """The task of stage `cc-<step>`, or of `components` for step -1 (as dedup.run builds them)."""
    steps = 0 if k == 1 else 2 * round_limit_for(work) - 1
    if step < 0:
        return ComponentsTask(work, k, steps, GRAPH_SENDERS if steps == 0 else k, work / COMPONENTS)
    return StarTask(work, step, k, GRAPH_SENDERS if step == 0 else k, step_dir(work, step))


def round_limit_for(work: Path) -> int:
    return json.loads((work / "graph.json").read_text())["rounds"]


def run_stage_mode(work: Path, k: int, step: int, units: int) -> None:
    """Child: the units of one stage one after another, so its peak RSS is the largest unit's (0 units:
    the interpreter and imports alone)."""
    for unit in range(units):
        unit_task(work, k, step)(Path(f"{unit:05d}"))


def run_graph(edges: int, ks: list[int], seed: int, root: Path) -> tuple[dict, list[dict]]:
    hi, lo = edge_set(*synthetic_edges(edges, seed))
    nodes = len(np.unique(np.concatenate((hi, lo))))
    info = {"edges": len(hi), "nodes": nodes, "rounds": round_limit(nodes)}
    print(f"graph: {info}", flush=True)
    baseline = run_child(self_cmd("--run-stage", str(root), "1", "0", "0"), root / "logs" / "base.log", None)
    info["baseline_rss"] = baseline.rss
    results = []
    for k in ks:
        work = root / f"graph-k{k}"
        write_graph(work, k, hi, lo, seed)
        (work / "graph.json").write_text(json.dumps(info))
        steps = 0 if k == 1 else 2 * info["rounds"] - 1
        stages: list[dict] = []
        for step in [*range(steps), -1]:
            if converged_step(work, k, step if step >= 0 else steps) is not None:
                continue
            units = str(k if step >= 0 else 1)
            log = root / "logs" / f"graph-k{k}-{step}.log"
            run = run_child(self_cmd("--run-stage", str(work), str(k), str(step), units), log, None)
            stages.append({"step": step, "seconds": run.seconds, "rss": run.rss})
        folder, files = find_results(cc_results(work, k, steps))
        labels = read_labels(folder, files, 0, 2**64 - 1)
        results.append(
            {
                "k": k,
                "seconds": sum(s["seconds"] for s in stages),
                "stages": len(stages),
                "large_rounds": sum(1 for s in stages if s["step"] >= 0 and s["step"] % 2 == 0),
                "max_rss": max(s["rss"] for s in stages),
                "max_task_edges": max_task_edges(work),
                "digest": hashlib.sha1(labels[0].tobytes() + labels[1].tobytes()).hexdigest()[:12],
            }
        )
        print(f"graph K={k}: {results[-1]}", flush=True)
        shutil.rmtree(work)
    return info, results


# ---------------------------------------------------------------- report


def render(args, e2e: list[dict], info: dict | None, graph: list[dict]) -> str:
    when = datetime.datetime.now().isoformat(timespec="seconds")
    lines = [
        f"## MinHash connected components over K partitions — {when}",
        "",
        f"- command: `python bench/bench_dedup_cc.py --docs {args.docs} --ks {args.ks} "
        f"--graph-edges {args.graph_edges} --workers {args.workers}`",
        f"- machine: {machine()}; OMP_NUM_THREADS=1; load average before: {args.load:.2f}; andes "
        f"{andes_source()}",
        "- peak RSS: /usr/bin/time's max RSS of a fresh process (a stage command with its workers, or one "
        "unit), i.e. of the largest process; it includes the interpreter and imports",
    ]
    if e2e:
        same = len({r["digest"] for r in e2e}) == 1
        r0 = e2e[0]["report"]
        lines += [
            f"- end to end: {args.docs:,} documents (tests/dup_corpus.py, seed {args.seed}, {args.shards} "
            f"shards), `--workers {args.workers}`, each stage a command; hash stage "
            f"({e2e[0]['hash_seconds']:.1f} s) run once, copied for every K; {r0['documents_in_clusters']:,} "
            "documents in "
            f"{r0['clusters']:,} clusters, {r0['duplicates']:,} removed",
            "",
            "| K | components stages run | large-star rounds | largest task: input edges | largest "
            "components process: peak RSS MB | components wall s | dedup wall s (all stages) | peak RSS MB "
            "(any stage) | output sha1 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in e2e:
            lines.append(
                f"| {r['k']} | {r['cc_stages']} | {r['large_rounds']} | {r['max_task_edges']:,} | "
                f"{mb(r['cc_rss'])} | {r['cc_seconds']:.1f} | {r['seconds']:.1f} | {mb(r['max_rss'])} | "
                f"{r['digest']} |"
            )
        lines += ["", f"Kept and dropped shards and dedup_report.json byte-identical for every K: {same}."]
    if graph:
        same = len({r["digest"] for r in graph}) == 1
        lines += [
            "",
            f"Components stages alone, synthetic graph: {info['edges']:,} edges over {info['nodes']:,} "
            f"documents (random trees over power-law clusters, from {GRAPH_SENDERS} bucket partitions), "
            "each stage a fresh process running its units in turn; interpreter and imports alone: "
            f"{mb(info['baseline_rss'])} MB.",
            "",
            "| K | stages run | large-star rounds | largest task: input edges | largest task: peak RSS MB | "
            "wall s (units one after another) | labels sha1 |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in graph:
            lines.append(
                f"| {r['k']} | {r['stages']} | {r['large_rounds']} | {r['max_task_edges']:,} | "
                f"{mb(r['max_rss'])} | {r['seconds']:.1f} | {r['digest']} |"
            )
        lines += ["", f"Labels identical for every K: {same}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000, help="end-to-end corpus size (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--ks", default="1,4,16", help="comma-separated K values")
    parser.add_argument("--workers", type=int, default=2, help="--workers of each stage command")
    parser.add_argument("--graph-edges", type=int, default=8_000_000, help="synthetic graph size (0: skip)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-results", action="store_true", help="print the report, do not append it")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, nothing appended")
    parser.add_argument(
        "--run-stage", nargs=4, metavar=("WORK", "K", "STEP", "UNITS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.run_stage:
        work, k, step, units = args.run_stage
        run_stage_mode(Path(work), int(k), int(step), int(units))
        return
    if args.smoke:
        args.docs, args.graph_edges, args.ks, args.no_results = 2000, 20_000, "1,3", True
    ks = [int(k) for k in args.ks.split(",")]
    args.load = os.getloadavg()[0]  # the machine may be shared: wall times depend on it
    root = CACHE / ("cc-smoke" if args.smoke else "cc")
    shutil.rmtree(root, ignore_errors=True)
    e2e = (
        run_end_to_end(ensure_corpus(args.docs, args.seed, args.shards), ks, args.workers, root)
        if args.docs
        else []
    )
    info, graph = run_graph(args.graph_edges, ks, args.seed, root) if args.graph_edges else (None, [])
    report = render(args, e2e, info, graph)
    print(report)
    if not args.no_results:
        with args.results.open("a", encoding="utf-8") as f:
            f.write("\n" + report)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
