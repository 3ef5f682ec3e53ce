"""Sharded connected components (large-star / small-star rounds over K partitions, `dedup.stars`,
`dedup.cc_tasks`): every graph kind against a union-find for K = 1..8 through the real stage tasks
and files, the round bound, the report's cluster summary, and whole dedup runs whose output is the
same bytes for any K, any number of ranks and after kill -9 between rounds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_dedup import edit, kept, random_doc
from test_dedup_clusters import brute_components

from data_pipeline.dedup import stars
from data_pipeline.dedup.cc_tasks import (
    COMPONENTS,
    ComponentsTask,
    StarTask,
    cc_results,
    find_results,
    read_labels,
    send_edges,
    step_dir,
    summarize_clusters,
)
from data_pipeline.dedup.clusters import doc_key
from data_pipeline.dedup.run import run_dedup
from data_pipeline.dedup.tasks import DedupConfig

REPO = Path(__file__).resolve().parents[1]
SENDERS = 3  # units of the stage before the rounds (bucket partitions)


# ---------------------------------------------------------------------------------------------
# Graphs
# ---------------------------------------------------------------------------------------------


def _keys(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct document keys spread over shards, in random order (high bits used)."""
    keys = np.unique(doc_key(rng.integers(0, 2**32, 3 * n), rng.integers(0, 2**32, 3 * n)))
    return rng.permutation(keys)[:n]


def graph(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "chain_in_key_order":  # the slowest graph for the rounds
        k = np.sort(_keys(rng, 600))
        return k[1:], k[:-1]
    if kind == "chain_random_order":
        k = _keys(rng, 600)
        return k[1:], k[:-1]
    if kind == "star":  # the centre is not the smallest key
        k = np.sort(_keys(rng, 400))
        return np.full(399, k[200]), np.delete(k, 200)
    if kind == "cliques":
        k = _keys(rng, 300)
        pairs = [(k[a + i], k[a + j]) for a in range(0, 300, 30) for i in range(30) for j in range(i + 1, 30)]
        a, b = np.array(pairs, dtype=np.uint64).T
        return a, b
    if kind == "many_small":  # pairs and triples
        k = _keys(rng, 900)
        a = np.concatenate((k[0:900:3], k[1:900:3]))
        b = np.concatenate((k[1:900:3], k[2:900:3] if seed % 2 else k[0:900:3]))
        return a, b
    if kind == "giant":  # one random connected component: a random tree plus random edges
        k = _keys(rng, 800)
        parent = k[rng.integers(0, np.arange(1, 800))]
        extra = k[rng.integers(0, 800, (2, 400))]
        return np.concatenate((k[1:], extra[0])), np.concatenate((parent, extra[1]))
    raise ValueError(kind)


KINDS = ["chain_in_key_order", "chain_random_order", "star", "cliques", "many_small", "giant"]


def run_rounds(work: Path, a: np.ndarray, b: np.ndarray, parts: int) -> dict:
    """The stages `cc-<i>` and `components` of a run, every unit in turn, as the executors run them."""
    hi, lo = stars.edge_set(a, b)
    for s in range(SENDERS):  # as the buckets stage sends its forests' edges
        send_edges(work, 0, s, hi[s::SENDERS], lo[s::SENDERS], parts, both_ends=True)
    steps = 0 if parts == 1 else 2 * stars.round_limit(len(hi) + 1) - 1
    largest_input, ran = 0, 0
    for i in range(steps):
        task = StarTask(work, i, parts, SENDERS if i == 0 else parts, step_dir(work, i))
        if not task.needed():
            break
        ran += 1
        for p in range(parts):
            largest_input = max(largest_input, task(Path(f"{p:05d}")).docs_in)
    components = ComponentsTask(work, parts, steps, SENDERS if steps == 0 else parts, work / COMPONENTS)
    if components.needed():
        components(Path("00000"))
    folder, files = find_results(cc_results(work, parts, steps))
    nodes, roots = read_labels(folder, files, 0, 2**64 - 1)
    labels = dict(zip(nodes.tolist(), roots.tolist(), strict=True))
    return {"labels": labels, "folder": folder, "files": files, "ran": ran, "largest_input": largest_input}


# ---------------------------------------------------------------------------------------------
# Rounds against a union-find
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_rounds_equal_union_find_for_any_k(tmp_path, kind):
    a, b = graph(kind, seed=1)
    expected = brute_components(list(zip(a.tolist(), b.tolist(), strict=True)))
    for parts in range(1, 9):
        result = run_rounds(tmp_path / f"k{parts}", a, b, parts)
        assert result["labels"] == expected, (kind, parts)
        # K = 1: one task, no rounds; K > 1: the rounds settle (the one-task fallback never runs).
        assert (result["folder"].name == COMPONENTS) == (parts == 1), (kind, parts)


def test_rounds_terminate_within_the_limit_on_key_ordered_paths(tmp_path):
    """Paths in key order need about log2(n) + 1 large-star rounds, within `round_limit`."""
    for n in (2, 3, 17, 100, 1000):
        k = np.arange(1, n + 1, dtype=np.uint64)
        result = run_rounds(tmp_path / f"n{n}", k[1:], k[:-1], 4)
        assert set(result["labels"].values()) == {1} and len(result["labels"]) == n
        large_rounds = result["ran"] // 2 + 1
        assert large_rounds <= stars.round_limit(n), (n, large_rounds)


def test_tasks_hold_only_their_partition(tmp_path):
    """Many small components: the largest task input shrinks about as 2E/K."""
    a, b = graph("many_small", seed=2)
    edges = len(stars.edge_set(a, b)[0])
    assert run_rounds(tmp_path / "k1", a, b, 1)["ran"] == 0  # K = 1: `components` holds all edges
    eight = run_rounds(tmp_path / "k8", a, b, 8)["largest_input"]
    assert 0 < eight < 2 * edges / 8 * 1.5, (eight, edges)


def test_large_and_small_star_on_a_small_graph():
    # 5 - 2 - 7 - 3: large-star keeps the edges (each node's larger neighbours already hang on its
    # neighbourhood's minimum) and finds 7 unsettled (two smaller neighbours).
    hi = np.array([5, 7, 7], dtype=np.uint64)
    lo = np.array([2, 2, 3], dtype=np.uint64)
    star = stars.large_star(hi, lo, 0, 1)
    assert sorted(zip(star.hi.tolist(), star.lo.tolist(), strict=True)) == [(5, 2), (7, 2), (7, 3)]
    assert star.unsettled == 1
    assert star.nodes.tolist() == [2, 3, 5, 7] and star.roots.tolist() == [2, 3, 2, 2]
    # small-star of 7 (smaller neighbours 2, 3): 7 and 3 link to 2.
    out = stars.small_star(*stars.edge_set(np.array([7, 7, 5]), np.array([2, 3, 2])))
    assert sorted(zip(*(x.tolist() for x in out), strict=True)) == [(3, 2), (5, 2), (7, 2)]
    settled = stars.large_star(np.array([3, 5, 7], np.uint64), np.array([2, 2, 2], np.uint64), 0, 1)
    assert settled.unsettled == 0 and settled.keepers.tolist() == [2]
    assert settled.members.tolist() == [3] and settled.sizes.tolist() == [4]


def test_route_sends_each_edge_to_its_ends_partitions():
    hi, lo = stars.edge_set(*np.random.default_rng(0).integers(1, 10**6, (2, 500)))
    inbox = stars.route(hi, lo, 5, both_ends=True)
    for p, rows in enumerate(inbox):
        ends = np.stack((stars.node_partition(rows[0], 5), stars.node_partition(rows[1], 5)))
        assert ((ends == p).any(axis=0)).all()
    got = np.unique(np.concatenate(inbox, axis=1), axis=1)
    assert got.shape[1] == len(hi)
    by_hi = stars.route(hi, lo, 5, both_ends=False)
    assert sum(r.shape[1] for r in by_hi) == len(hi)
    assert all((stars.node_partition(r[0], 5) == p).all() for p, r in enumerate(by_hi))


# ---------------------------------------------------------------------------------------------
# The report's cluster summary
# ---------------------------------------------------------------------------------------------


def reference_summary(nodes: np.ndarray, roots: np.ndarray, n_examples: int) -> tuple:
    """What the report computed from the whole (node, root) map before the rounds existed."""
    duplicate = nodes != roots
    members, keepers = nodes[duplicate], roots[duplicate]
    first = np.unique(keepers, return_index=True)[1]
    cluster_keepers, cluster_members = keepers[first], members[first]
    size_of = dict(zip(*(x.tolist() for x in np.unique(roots, return_counts=True)), strict=True))
    largest = max(range(len(cluster_keepers)), key=lambda i: (size_of[int(cluster_keepers[i])], -i))
    step = max(1, len(cluster_keepers) // max(1, n_examples - 1))
    picks = list(dict.fromkeys([largest, *range(0, len(cluster_keepers), step)]))[:n_examples]
    examples = [
        (int(cluster_keepers[i]), int(cluster_members[i]), size_of[int(cluster_keepers[i])]) for i in picks
    ]
    sizes, counts = np.unique(np.array(list(size_of.values())), return_counts=True)
    return dict(zip(sizes.tolist(), counts.tolist(), strict=True)), examples


@pytest.mark.parametrize("parts", [1, 2, 5])
def test_cluster_summary_equals_the_whole_map(tmp_path, parts):
    pairs = np.concatenate([np.stack(graph(kind, seed=3)) for kind in ("many_small", "cliques", "star")], 1)
    result = run_rounds(tmp_path, pairs[0], pairs[1], parts)
    nodes = np.array(sorted(result["labels"]), dtype=np.uint64)
    roots = np.array([result["labels"][n] for n in nodes.tolist()], dtype=np.uint64)
    for n_examples in (1, 5, 50):
        summary = summarize_clusters(result["folder"], result["files"], n_examples)
        sizes, examples = reference_summary(nodes, roots, n_examples)
        assert summary.sizes == sizes and summary.examples == examples
        assert summary.clusters == len(set(roots.tolist())) and summary.documents == len(nodes)


# ---------------------------------------------------------------------------------------------
# Whole dedup runs
# ---------------------------------------------------------------------------------------------


def chain_corpus(path: Path, shards: int = 4, chains: int = 6, length: int = 40, seed: int = 0) -> Path:
    """Chains of near copies, each one word further from the first: long paths, several rounds."""
    rng = random.Random(seed)
    texts = []
    for _ in range(chains):
        doc = random_doc(rng, 150)
        for _ in range(length):
            texts.append(doc)
            doc = edit(rng, doc, 1)
    texts += [random_doc(rng) for _ in range(60)]
    path.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        rows = list(range(s, len(texts), shards))
        table = pa.table({"id": [f"doc-{r}" for r in rows], "text": [texts[r] for r in rows]})
        pq.write_table(table, path / f"shard-{s}.parquet")
    return path


# Many bucket partitions, so each one's forests hold pieces of the chains: several rounds (5 with K = 4).
RUN = {"progress": False, "partitions": 14, "write_dropped": True}


@pytest.fixture(scope="module")
def chains(tmp_path_factory) -> tuple[Path, Path]:
    """The chain corpus and its dedup with K = 1 (one task, as before the rounds existed)."""
    root = tmp_path_factory.mktemp("chains")
    path = chain_corpus(root / "in")
    run_dedup(path, root / "k1", DedupConfig(), **RUN, cc_partitions=1)
    return path, root / "k1"


def test_any_k_and_any_ranks_give_the_same_bytes(chains, tmp_path):
    path, one = chains
    report = json.loads((one / "dedup_report.json").read_text())
    assert report["clusters"] == 6 and report["duplicates"] > 150
    for parts, workers in ((2, 1), (5, 2)):
        out = tmp_path / f"k{parts}"
        run_dedup(path, out, DedupConfig(), **RUN, cc_partitions=parts, workers=workers)
        assert kept(out) == kept(one), parts
        assert (out / ".dedup" / "cc-4" / ".done").is_dir()  # a third large-star round ran
        assert not (out / ".dedup" / COMPONENTS / "labels").exists()  # and the rounds settled
    # As a Slurm chain: every stage as 3 tasks of a job array, in order.
    out, options = tmp_path / "array", {**RUN, "cc_partitions": 3}
    run_dedup(path, out, DedupConfig(), **options, stage="hash")
    plan = json.loads((out / ".dedup" / "plan.json").read_text())
    rounds = [f"cc-{i}" for i in range(2 * plan["cc_rounds"] - 1)]
    for name in ["buckets", *rounds, COMPONENTS, "remove"]:
        for rank in range(3):
            summary = run_dedup(path, out, DedupConfig(), **options, stage=name, rank=rank, world_size=3)
    assert summary["pending_shards"] == 0 and kept(out) == kept(one)
    with pytest.raises(ValueError, match="differs in: cc_partitions"):
        run_dedup(path, out, DedupConfig(), **{**options, "cc_partitions": 4})


def test_kill_between_rounds_and_rerun_gives_the_same_bytes(chains, tmp_path):
    path, one = chains
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "data_pipeline", "dedup", "--input", str(path), "--output", str(out)]
    cmd += ["--partitions", "14", "--cc-partitions", "4", "--workers", "2", "--write-dropped", "--quiet"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    third_round = out / ".dedup" / "cc-4" / ".done"  # the third large-star
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(third_round.glob("*.json")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not (out / "dedup_report.json").exists()
    assert list(third_round.glob("*.json"))  # killed between (or in) rounds, not before them
    # What a writer killed mid-file leaves; its unit, unfinished, cleans it when it runs again.
    done = {(int(m.parent.parent.name[3:]), int(m.stem)) for m in out.glob(".dedup/cc-*/.done/*.json")}
    step, unit = next((i, p) for i in range(4, 99, 2) for p in range(4) if (i, p) not in done)
    stale = out / ".dedup" / f"cc-{step + 1}" / "edges" / "00000" / f"{unit:05d}.npy.123-deadbeef.tmp"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"left by a killed writer")
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=300)
    assert kept(out) == kept(one)
    assert not list(out.rglob("*.tmp"))


def test_planted_corpus_same_output_for_any_k(tmp_path):
    """tests/dup_corpus.py's planted near duplicates: K = 1 (one task, the clustering as before the
    rounds) and K = 6 give the same bytes."""
    from dup_corpus import make_corpus, write_shards

    path = tmp_path / "in"
    write_shards(make_corpus(1500, seed=0), path, n_shards=4, shuffle_seed=1)
    for parts in (1, 6):
        run_dedup(path, tmp_path / f"k{parts}", DedupConfig(), **RUN, cc_partitions=parts)
    assert kept(tmp_path / "k6") == kept(tmp_path / "k1")
    assert json.loads((tmp_path / "k1" / "dedup_report.json").read_text())["duplicates"] > 200
