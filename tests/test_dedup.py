"""`andes-data dedup`: exact/URL/MinHash stages, determinism, job-array stages, resume, bad input."""

from __future__ import annotations

import json
import os
import random
import signal
import string
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_pipeline.cli import main
from data_pipeline.dedup.clusters import doc_key
from data_pipeline.dedup.exact import NO_ORDER, canonical_url, keeper_order, text_hashes
from data_pipeline.dedup.minhash import MinHashConfig
from data_pipeline.dedup.run import run_dedup
from data_pipeline.dedup.stars import round_limit
from data_pipeline.dedup.tasks import DedupConfig, _group_keepers

REPO = Path(__file__).resolve().parents[1]


def random_doc(rng: random.Random, words: int = 120) -> str:
    return " ".join(
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9))) for _ in range(words)
    )


def edit(rng: random.Random, text: str, n: int) -> str:
    words = text.split()
    for _ in range(n):
        words[rng.randrange(len(words))] = "edited"
    return " ".join(words)


def corpus(path: Path, shards: int = 3, seed: int = 0) -> tuple[Path, list[str]]:
    """Unrelated documents, exact copies, format-only copies, one-word edits and empty documents.

    Rows are dealt round-robin over shards, so copies land in other shards than their originals.
    """
    rng = random.Random(seed)
    texts: list[str] = []
    for i in range(90):
        doc = random_doc(rng)
        texts.append(doc)
        if i % 9 == 0:
            texts.append(doc)  # exact copy
        if i % 9 == 1:
            texts.append(doc.upper().replace(" ", " ,  "))  # same after normalisation
        if i % 9 == 2:
            texts.append(edit(rng, doc, 1))  # near copy, 5-gram Jaccard ~0.92
    texts += ["", "!!!", "???"]  # no words: never duplicates of each other
    path.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        rows = list(range(s, len(texts), shards))
        table = pa.table(
            {
                "id": [f"doc-{r}" for r in rows],
                "text": [texts[r] for r in rows],
                "url": [f"https://Example.org/page/{r % 40}#frag" for r in rows],
                "timestamp": pa.array([r for r in rows], type=pa.int64()),
            }
        )
        pq.write_table(table, path / f"shard-{s}.parquet")
    return path, texts


def kept(out: Path) -> dict[str, bytes]:
    """The visible results (kept parts, dropped parts, report) and their bytes."""
    files = (
        sorted(out.glob("*.parquet")) + sorted(out.glob("dropped/*.parquet")) + [out / "dedup_report.json"]
    )
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def kept_ids(out: Path) -> set[str]:
    return {i for p in out.glob("*.parquet") for i in pq.read_table(p, columns=["id"])["id"].to_pylist()}


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def test_text_hashes_normalise_and_skip_wordless_documents():
    cfg = MinHashConfig()
    hi, lo, ok = text_hashes(["Hello, World!", "hello world", "hello  world.", "!!!", "", None], cfg)
    assert ok.tolist() == [True, True, True, False, False, False]
    assert hi[0] == hi[1] == hi[2] and lo[0] == lo[1] == lo[2]
    raw_hi, _, raw_ok = text_hashes(["Hello, World!", "hello world", "  "], None)
    assert raw_hi[0] != raw_hi[1] and raw_ok.tolist() == [True, True, False]


def test_canonical_url_folds_only_what_never_changes_the_page():
    assert canonical_url(" HTTPS://Example.ORG:443/a?b=1#top ") == "https://example.org/a?b=1"
    assert canonical_url("http://example.org") == "http://example.org/"
    assert canonical_url("http://example.org:8080/A") == "http://example.org:8080/A"
    assert canonical_url("http://example.org/a?B=1") != canonical_url("http://example.org/a?b=1")


def test_keeper_order_prefers_newest_and_accepts_common_types():
    ints = keeper_order(pa.array([5, None, 7]), "f")
    assert ints.tolist() == [-5, NO_ORDER, -7]
    iso = keeper_order(pa.array(["2024-01-02T00:00:00", "2023-12-31T00:00:00", None]), "f")
    assert iso[0] < iso[1] < iso[2] == NO_ORDER
    seconds = keeper_order(pa.array([1, 2], type=pa.timestamp("s")), "f")
    millis = keeper_order(pa.array([1500], type=pa.timestamp("ms")), "f")
    assert seconds[1] < millis[0] < seconds[0]  # compared in one unit
    dates = keeper_order(pa.array([0, 1], type=pa.date32()), "f")
    assert dates[1] < dates[0]
    with pytest.raises(ValueError, match="shard.parquet: timestamp column"):
        keeper_order(pa.array(["yesterday"]), "shard.parquet")
    with pytest.raises(ValueError, match="not a timestamp"):
        keeper_order(pa.array([[1]]), "f")


def test_group_keepers_picks_smallest_order_then_key():
    table = pa.table(
        {
            "hash": pa.array([1, 1, 1, 2, 3, 3], type=pa.uint64()),
            "hash2": pa.array([9, 9, 9, 9, 4, 5], type=pa.uint64()),  # 3/4 and 3/5 differ in 128 bits
            "order": pa.array([0, -5, -5, 0, 0, 0], type=pa.int64()),
            "key": pa.array([10, 30, 20, 40, 50, 60], type=pa.uint64()),
        }
    )
    nodes, roots = _group_keepers(table)
    assert dict(zip(nodes.tolist(), roots.tolist(), strict=True)) == {10: 20, 20: 20, 30: 20}


# ---------------------------------------------------------------------------------------------
# Whole runs
# ---------------------------------------------------------------------------------------------


def test_minhash_run_keeps_one_per_cluster_and_reports(tmp_path):
    path, texts = corpus(tmp_path / "in")
    summary = run_dedup(path, tmp_path / "out", DedupConfig(), progress=False, partitions=4)
    ids = kept_ids(tmp_path / "out")
    # 90 originals + 3 wordless documents survive; every copy (exact, reformatted, edited) goes.
    assert len(ids) == 93 and summary["docs_out"] == 93
    assert {"doc-" + str(i) for i in range(len(texts)) if texts[i] in ("", "!!!", "???")} <= ids
    report = json.loads((tmp_path / "out" / "dedup_report.json").read_text())
    assert report["clusters"] == 30 and report["duplicates"] == 30 and report["cluster_sizes"] == {"2": 30}
    assert report["documents"] == len(texts)
    assert report["examples"] and all(0.8 <= ex["jaccard"] <= 1.0 for ex in report["examples"])
    assert summary["dropped"] == {"minhash:duplicate": 30}
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["dedup"]["duplicates"] == 30


def test_exact_run_removes_only_normalised_copies(tmp_path):
    path, _ = corpus(tmp_path / "in")
    run_dedup(path, tmp_path / "out", DedupConfig(method="exact"), progress=False)
    report = json.loads((tmp_path / "out" / "dedup_report.json").read_text())
    assert report["duplicates"] == 20  # exact and reformatted copies, not the edited ones
    run_dedup(path, tmp_path / "raw", DedupConfig(method="exact", normalize=False), progress=False)
    assert json.loads((tmp_path / "raw" / "dedup_report.json").read_text())["duplicates"] == 10


def test_url_run_keeps_newest_version_per_canonical_url(tmp_path):
    path, texts = corpus(tmp_path / "in")
    run_dedup(path, tmp_path / "out", DedupConfig(method="url"), progress=False)
    ids = kept_ids(tmp_path / "out")
    newest = {}
    for r in range(len(texts)):
        newest[r % 40] = r  # timestamps equal row numbers: the last row of each URL is newest
    assert ids == {f"doc-{r}" for r in newest.values()}
    run_dedup(path, tmp_path / "first", DedupConfig(method="url", timestamp_column=None), progress=False)
    first = {}  # "first" is corpus order: (shard, row in shard), rows being dealt round-robin
    for r in sorted(range(len(texts)), key=lambda r: (r % 3, r // 3)):
        first.setdefault(r % 40, r)
    assert kept_ids(tmp_path / "first") == {f"doc-{r}" for r in first.values()}


def test_annotate_keeps_everything_with_cluster_columns(tmp_path):
    path, texts = corpus(tmp_path / "in")
    run_dedup(path, tmp_path / "out", DedupConfig(annotate=True), progress=False)
    table = pa.concat_tables(pq.read_table(p) for p in sorted((tmp_path / "out").glob("*.parquet")))
    assert table.num_rows == len(texts)
    rows = table.to_pylist()
    dups = [r for r in rows if r["minhash_duplicate"]]
    assert len(dups) == 30 and all(r["minhash_cluster"] is not None for r in dups)
    keepers = {r["minhash_cluster"] for r in dups}
    by_cluster = [r for r in rows if r["minhash_cluster"] in keepers and not r["minhash_duplicate"]]
    assert len(by_cluster) == 30  # exactly one keeper per cluster
    shard_of = {f"shard-{s}.parquet": s for s in range(3)}
    for r in by_cluster:  # the keeper's key is (shard index << 32) | row
        s = int(r["id"].split("-")[1]) % 3
        assert r["minhash_cluster"] == int(doc_key(shard_of[f"shard-{s}.parquet"], int(r["id"][4:]) // 3))
    assert all(r["minhash_cluster"] is None for r in rows if r["text"] in ("", "!!!", "???"))


@pytest.mark.parametrize("method", ["minhash", "exact", "url"])
def test_output_independent_of_workers_and_partitions(tmp_path, method):
    path, _ = corpus(tmp_path / "in")
    cfg = DedupConfig(method=method)
    run_dedup(path, tmp_path / "a", cfg, progress=False, partitions=1, write_dropped=True)
    run_dedup(path, tmp_path / "b", cfg, progress=False, partitions=7, workers=2, write_dropped=True)
    assert kept(tmp_path / "a") == kept(tmp_path / "b")


def test_stages_as_job_array_tasks_equal_one_run(tmp_path):
    path, _ = corpus(tmp_path / "in", shards=5)
    run_dedup(path, tmp_path / "one", DedupConfig(), progress=False, partitions=5)
    out = tmp_path / "array"
    args = ["dedup", "--input", str(path), "--output", str(out), "--partitions", "5", "--quiet"]
    assert main([*args, "--list-stages"]) == 0
    names = ["hash", "buckets", "components", "remove"]  # K = 1: no rounds (tests/test_dedup_components.py)
    with pytest.raises(ValueError, match="needs stage hash finished first"):
        run_dedup(path, out, DedupConfig(), progress=False, partitions=5, stage="buckets")
    for stage in names:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "data_pipeline",
                    *args,
                    "--stage",
                    stage,
                    "--rank",
                    str(r),
                    "--world-size",
                    "3",
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for r in range(3)
        ]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()
    assert kept(out) == kept(tmp_path / "one")


def test_list_stages_prints_the_stage_sequence(tmp_path, capsys):
    path, texts = corpus(tmp_path / "in")
    args = ["dedup", "--input", str(path), "--output", str(tmp_path / "o"), "--partitions", "4"]
    args.append("--list-stages")
    assert main(args) == 0
    assert capsys.readouterr().out.split() == ["hash", "buckets", "components", "remove"]
    # K = 2: large-star and small-star steps, up to round_limit(documents) large-stars.
    assert main([*args, "--cc-partitions", "2"]) == 0
    steps = 2 * round_limit(len(texts)) - 1
    assert capsys.readouterr().out.split() == [
        "hash",
        "buckets",
        *(f"cc-{i}" for i in range(steps)),
        "components",
        "remove",
    ]
    assert main([*args, "--method", "exact"]) == 0
    assert capsys.readouterr().out.split() == ["hash", "buckets", "remove"]  # groups never span partitions


def test_rerun_resumes_and_killed_run_gives_identical_output(tmp_path):
    path, _ = corpus(tmp_path / "in", shards=6)
    run_dedup(path, tmp_path / "clean", DedupConfig(), progress=False, partitions=3)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "data_pipeline",
        "dedup",
        "--input",
        str(path),
        "--output",
        str(out),
        "--partitions",
        "3",
        "--workers",
        "2",
        "--quiet",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / ".dedup" / "hash" / ".done").glob("*.json"))) < 2:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # parent and workers, mid-run
    proc.communicate(timeout=60)
    # Really unfinished: killed before its last stage wrote the report (on 2 cores all 6 hash
    # shards may be done by the time the kill lands, so the hash markers alone do not tell).
    assert proc.returncode == -signal.SIGKILL and not (out / "dedup_report.json").exists()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=300)
    assert kept(out) == kept(tmp_path / "clean")
    assert not list(out.rglob("*.tmp"))
    summary = run_dedup(path, out, DedupConfig(), progress=False, partitions=3)  # all finished: no-op
    assert summary["pending_shards"] == 0 and kept(out) == kept(tmp_path / "clean")


# ---------------------------------------------------------------------------------------------
# Bad input and usage errors
# ---------------------------------------------------------------------------------------------


def test_corrupt_shard_fails_naming_it_or_is_skipped(tmp_path, capsys):
    path, _ = corpus(tmp_path / "in")
    (path / "shard-1.parquet").write_bytes(b"PAR1 not really parquet")
    args = ["dedup", "--input", str(path), "--quiet"]
    assert main([*args, "--output", str(tmp_path / "fail")]) == 1
    assert "shard-1.parquet" in capsys.readouterr().err
    assert not list((tmp_path / "fail").glob("*.parquet"))  # nothing removed on a partial view
    assert main([*args, "--output", str(tmp_path / "skip"), "--on-bad-input", "skip"]) == 0
    stats = json.loads((tmp_path / "skip" / "stats.json").read_text())
    assert "shard-1.parquet" in stats["skipped_shards"]
    assert sorted(p.name for p in (tmp_path / "skip").glob("*.parquet")) == [
        "shard-0-00000.parquet",
        "shard-2-00000.parquet",
    ]


def test_null_text_and_missing_columns_are_named(tmp_path, capsys):
    path = tmp_path / "in"
    path.mkdir()
    pq.write_table(pa.table({"text": ["a b c d e f", None]}), path / "nulls.parquet")
    assert main(["dedup", "--input", str(path), "--output", str(tmp_path / "a"), "--quiet"]) == 1
    assert "nulls.parquet: row 1: column 'text' is null" in capsys.readouterr().err
    assert (
        main(
            [
                "dedup",
                "--input",
                str(path),
                "--output",
                str(tmp_path / "b"),
                "--quiet",
                "--on-bad-input",
                "skip",
                "--write-dropped",
            ]
        )
        == 0
    )
    dropped = pq.read_table(tmp_path / "b" / "dropped" / "nulls-00000.parquet")
    assert dropped["drop_reason"].to_pylist() == ["invalid:null_text"]
    assert (
        main(["dedup", "--input", str(path), "--output", str(tmp_path / "c"), "--quiet", "--method", "url"])
        == 1
    )
    assert "column 'url' missing" in capsys.readouterr().err
    pq.write_table(pa.table({"text": ["a"], "url": ["http://a"]}), path / "nulls.parquet")
    assert (
        main(["dedup", "--input", str(path), "--output", str(tmp_path / "d"), "--quiet", "--method", "url"])
        == 1
    )
    assert "column 'timestamp' missing" in capsys.readouterr().err


def test_changed_input_and_bad_options_are_refused(tmp_path, capsys):
    path, _ = corpus(tmp_path / "in")
    out = tmp_path / "out"
    run_dedup(path, out, DedupConfig(), progress=False, stage="hash")
    (path / "shard-9.parquet").write_bytes((path / "shard-0.parquet").read_bytes())
    with pytest.raises(ValueError, match="input changed since this dedup run started"):
        run_dedup(path, out, DedupConfig(), progress=False)
    with pytest.raises(ValueError, match="different configuration"):
        run_dedup(path, out, DedupConfig(method="exact"), progress=False)
    with pytest.raises(ValueError, match="needs --stage"):
        run_dedup(path, tmp_path / "x", DedupConfig(), progress=False, world_size=2)
    with pytest.raises(ValueError, match="this run's stages are"):
        run_dedup(path, tmp_path / "y", DedupConfig(), progress=False, stage="nope")
    with pytest.raises(ValueError, match="dedup method"):
        DedupConfig(method="fuzzy")
    assert main(["dedup", "--input", str(path), "--output", str(tmp_path / "z"), "--threshold", "1.5"]) == 2
    assert "argument --threshold: 1.5 must be in (0, 1)" in capsys.readouterr().err


def test_s_curve_and_threshold_options(capsys):
    assert main(["dedup", "--input", "x", "--output", "y", "--s-curve"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("14 bands x 8 rows (112 permutations):") and "0.80" in out
    assert main(["dedup", "--input", "x", "--output", "y", "--threshold", "0.7", "--s-curve"]) == 0
    assert "bands x" in capsys.readouterr().out


def test_empty_shard_flows_through_every_stage(tmp_path):
    """A shard with zero rows flows through every stage and gives an empty part with the full schema."""
    path, _ = corpus(tmp_path / "in", shards=2)
    pq.write_table(pq.read_table(path / "shard-0.parquet").slice(0, 0), path / "shard-5.parquet")
    run_dedup(path, tmp_path / "out", DedupConfig(), progress=False)
    empty = pq.read_table(tmp_path / "out" / "shard-5-00000.parquet")
    assert empty.num_rows == 0 and {"id", "text", "url", "timestamp", "minhash_cluster"} <= set(
        empty.column_names
    )
