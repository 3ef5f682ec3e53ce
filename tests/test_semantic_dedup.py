"""`andes-data dedup --method semantic` end to end with a tiny random encoder (tests/tiny_encoders.py).

The pipeline's decisions must equal a brute-force reference computed here from its own embeddings
and centroids (all pairs of each cluster, float64); its output must not depend on workers,
partitions or how the stages are split over tasks, nor on a kill -9 and re-run; bad input gets one
clear line. The real MiniLM on a paraphrase corpus: tests/test_semantic_dedup_corpus.py.
"""

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
from conftest import REPO
from tiny_encoders import WORDS, make_bert

from data_pipeline.cli import main
from data_pipeline.dedup.clusters import doc_key

STAGES = ["embed", "fit", "assign", "cluster", "assign-2", "cluster-2", "remove"]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return make_bert(tmp_path_factory.mktemp("enc") / "bert", {"mean_tokens": True})


def write_corpus(path: Path, shards: int = 3, seed: int = 0, n: int = 150) -> list[str]:
    """Random word texts, exact copies, one-word edits, and empty/whitespace texts, dealt over shards."""
    rng = random.Random(seed)
    texts: list[str] = []
    for i in range(n):
        doc = " ".join(rng.choices(WORDS, k=rng.randint(6, 18)))
        texts.append(doc)
        if i % 5 == 0:
            texts.append(doc)
        if i % 5 == 1:
            words = doc.split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            texts.append(" ".join(words))
    texts += ["", "   ", "\n"]
    path.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        rows = list(range(s, len(texts), shards))
        table = pa.table({"id": [f"doc-{r}" for r in rows], "text": [texts[r] for r in rows]})
        pq.write_table(table, path / f"shard-{s}.parquet")
    return texts


def dedup_args(inp: Path, out: Path, encoder: Path, *extra: str) -> list[str]:
    io = ["--input", str(inp), "--output", str(out), "--encoder", str(encoder), "--quiet"]
    return ["dedup", "--method", "semantic", *io, "--clusters", "3", "--eps", "0.05", *extra]


def results(out: Path) -> dict[str, bytes]:
    files = (
        sorted(out.glob("*.parquet")) + sorted(out.glob("dropped/*.parquet")) + [out / "dedup_report.json"]
    )
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def annotated(out: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(out.glob("*.parquet")))


# ---------------------------------------------------------------------------------------------
# The decisions equal a brute-force reference
# ---------------------------------------------------------------------------------------------


def _embeddings(out: Path, shards: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    keys, vectors = [], []
    for i, shard in enumerate(shards):
        column = pq.read_table(out / ".dedup" / "embeddings" / f"{shard.stem}.parquet")["embedding"]
        for row, v in enumerate(column.to_pylist()):
            if v is not None:
                keys.append(int(doc_key(i, row)))
                vectors.append(np.array(v, dtype=np.float64))
    return np.array(keys, dtype=np.uint64), np.stack(vectors)


def reference_removed(
    keys: np.ndarray, x: np.ndarray, rounds: list[np.ndarray], eps: float
) -> dict[int, float]:
    """{key: max cosine to an earlier kept member} of every removed document: all pairs of each
    cluster in float64, round after round on the survivors, each round with its own centroids."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    removed: dict[int, float] = {}
    for centroids in rounds:
        alive = np.array([int(k) not in removed for k in keys])
        c = centroids.astype(np.float64)
        cos = x @ (c / np.linalg.norm(c, axis=1, keepdims=True)).T
        label, dist = cos.argmax(axis=1), 1 - cos.max(axis=1)
        for k in np.unique(label[alive]):
            members = np.flatnonzero((label == k) & alive)
            order = members[np.lexsort((keys[members], -dist[members]))]  # hard: farthest first
            kept: list[int] = []
            for i in order:
                sims = [float(x[i] @ x[j]) for j in kept]
                if sims and max(sims) >= 1 - eps:
                    removed[int(keys[i])] = max(sims)
                else:
                    kept.append(i)
    return removed


def test_decisions_equal_brute_force_reference(tmp_path, encoder):
    write_corpus(tmp_path / "in")
    out = tmp_path / "out"
    assert main(dedup_args(tmp_path / "in", out, encoder, "--annotate")) == 0
    shards = sorted((tmp_path / "in").glob("*.parquet"))
    keys, x = _embeddings(out, shards)
    fit = out / ".dedup" / "fit"
    expected = reference_removed(
        keys, x, [np.load(fit / "centroids.npy"), np.load(fit / "centroids-2.npy")], 0.05
    )
    report = json.loads((out / "dedup_report.json").read_text())
    assert report["removed_per_round"][1] > 0  # the second clustering found pairs the first split
    table = annotated(out)
    got = {}
    for i, shard in enumerate(shards):
        part = pq.read_table(out / f"{shard.stem}-00000.parquet")
        for row, (dup, sim) in enumerate(
            zip(part["semantic_duplicate"].to_pylist(), part["semantic_max_sim"].to_pylist(), strict=True)
        ):
            if dup:
                got[int(doc_key(i, row))] = sim
    assert len(expected) > 20 and set(got) == set(expected)
    assert np.allclose([got[k] for k in expected], list(expected.values()), atol=1e-6)
    # Copies are removed, empty texts are left alone (no embedding, no cluster).
    texts = table["text"].to_pylist()
    blank = [i for i, t in enumerate(texts) if not t.strip()]
    assert blank and all(table["semantic_cluster"][i].as_py() is None for i in blank)
    assert not any(table["semantic_duplicate"][i].as_py() for i in blank)
    assert table.num_rows == len(texts) and sum(table["semantic_duplicate"].to_pylist()) == len(expected)


def test_eps_sweep_equals_separate_runs(tmp_path, encoder):
    write_corpus(tmp_path / "in")
    assert main(dedup_args(tmp_path / "in", tmp_path / "a", encoder, "--eps-sweep", "0.01,0.2")) == 0
    report = json.loads((tmp_path / "a" / "dedup_report.json").read_text())
    assert list(report["eps_sweep"]) == ["0.01", "0.05", "0.2"]
    for eps in ("0.01", "0.2"):
        args = dedup_args(tmp_path / "in", tmp_path / eps, encoder)
        args[args.index("--eps") + 1] = eps
        assert main(args) == 0
        alone = json.loads((tmp_path / eps / "dedup_report.json").read_text())
        assert report["eps_sweep"][eps]["removed"] == alone["duplicates"]
    assert report["eps_sweep"]["0.05"]["removed"] == report["duplicates"]
    kinds = {ex["kind"] for ex in report["examples"]}
    assert kinds == {"closest", "borderline", "kept"}
    assert all(ex["cosine"] >= 0.95 for ex in report["examples"] if ex["other_removed"])


# ---------------------------------------------------------------------------------------------
# Determinism: workers, partitions, ranks, kill -9
# ---------------------------------------------------------------------------------------------


def test_output_independent_of_workers_partitions_and_ranks(tmp_path, encoder, capsys):
    write_corpus(tmp_path / "in", shards=4)
    inp = tmp_path / "in"
    assert main(dedup_args(inp, tmp_path / "one", encoder, "--partitions", "1", "--write-dropped")) == 0
    assert (
        main(
            dedup_args(
                inp, tmp_path / "two", encoder, "--partitions", "3", "--workers", "2", "--write-dropped"
            )
        )
        == 0
    )
    ranks = dedup_args(inp, tmp_path / "ranks", encoder, "--partitions", "2", "--write-dropped")
    assert main([*ranks, "--stage", "fit"]) != 0
    assert "stage fit needs stage embed finished first" in capsys.readouterr().err
    for stage in STAGES:
        for rank in range(3):
            assert main([*ranks, "--stage", stage, "--rank", str(rank), "--world-size", "3"]) == 0
    one = results(tmp_path / "one")
    assert len(one) == 4 * 2 + 1  # kept and dropped part of each shard, and the report
    assert results(tmp_path / "two") == one and results(tmp_path / "ranks") == one


def test_killed_run_reruns_to_identical_output(tmp_path, encoder):
    write_corpus(tmp_path / "in", shards=6)
    assert main(dedup_args(tmp_path / "in", tmp_path / "clean", encoder, "--partitions", "2")) == 0
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "data_pipeline",
           *dedup_args(tmp_path / "in", out, encoder, "--partitions", "2", "--workers", "2")]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((out / ".dedup" / "assign" / ".done").glob("*.json")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # parent and workers, mid-run
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not (out / "dedup_report.json").exists()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=300)
    assert results(out) == results(tmp_path / "clean")
    assert not list(out.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------
# Bad input and usage errors
# ---------------------------------------------------------------------------------------------


def _fails(args: list[str], capsys, *needles: str) -> str:
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error message"
    for needle in needles:
        assert needle in err[-1], err
    return err[-1]


def test_bad_encoders_get_one_line(tmp_path, encoder, capsys):
    write_corpus(tmp_path / "in", n=20)
    missing = tmp_path / "nope"
    _fails(
        dedup_args(tmp_path / "in", tmp_path / "o1", missing),
        capsys,
        str(missing),
        "no such encoder directory",
    )
    not_model = tmp_path / "notmodel"
    not_model.mkdir()
    (not_model / "readme.txt").write_text("hello")
    _fails(dedup_args(tmp_path / "in", tmp_path / "o2", not_model), capsys, str(not_model), "config.json")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "config.json").write_text('{"model_type": "nonsense"}')
    _fails(dedup_args(tmp_path / "in", tmp_path / "o3", garbage), capsys, str(garbage))


def test_huge_and_bad_documents(tmp_path, encoder, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    huge = " ".join(["w1"] * 2_000_000)  # ~6 MB: truncated to the encoder's token limit
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": [huge, huge[:100], "w2 w3"]}), inp / "s0.parquet")
    pq.write_table(pa.table({"id": ["d"], "text": pa.array([None], pa.string())}), inp / "s1.parquet")
    _fails(dedup_args(inp, tmp_path / "o", encoder), capsys, "s1.parquet", "row 0")
    assert main(dedup_args(inp, tmp_path / "skip", encoder, "--on-bad-input", "skip")) == 0
    kept = annotated(tmp_path / "skip")
    # The huge text and its 100-character prefix share their first 24 tokens: the same embedding.
    assert kept["id"].to_pylist() == ["a", "c"]  # d: its null text is skipped, and counted
    stats = json.loads((tmp_path / "skip" / "stats.json").read_text())
    assert stats["dropped"] == {"invalid:null_text": 1, "semantic:duplicate": 1}


def test_changed_settings_on_resume_are_refused(tmp_path, encoder, capsys):
    write_corpus(tmp_path / "in", n=20)
    assert main(dedup_args(tmp_path / "in", tmp_path / "o", encoder)) == 0
    args = dedup_args(tmp_path / "in", tmp_path / "o", encoder)
    args[args.index("--eps") + 1] = "0.2"
    _fails(args, capsys, "eps")
    assert main([*args, "--overwrite"]) == 0


def test_list_stages_and_recipe_stage(tmp_path, encoder, capsys):
    write_corpus(tmp_path / "in", n=30)
    assert main([*dedup_args(tmp_path / "in", tmp_path / "o", encoder), "--list-stages"]) == 0
    assert capsys.readouterr().out.split() == STAGES
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"input: {tmp_path / 'in'}\noutput: {tmp_path / 'r'}\nstages:\n"
        f"  - dedup: {{method: semantic, encoder: {encoder}, clusters: 3, eps: 0.05}}\n"
    )
    assert main(["run", str(recipe), "--quiet"]) == 0
    assert main(dedup_args(tmp_path / "in", tmp_path / "direct", encoder)) == 0
    stage_dir = next(p for p in (tmp_path / "r").iterdir() if p.is_dir())
    assert {p.name: p.read_bytes() for p in stage_dir.glob("*.parquet")} == {
        p.name: p.read_bytes() for p in (tmp_path / "direct").glob("*.parquet")
    }
