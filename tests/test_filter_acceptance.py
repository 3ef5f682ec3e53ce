"""Issue acceptance: `andes-data filter --workers 2` with the default (FineWeb-order) steps keeps the
prose, drops every spam page with a named reason in stats.json, and a run killed mid-shard then
re-run gives the same bytes as an uninterrupted one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_filter_executor import kill_worker_mid_shard, outputs
from web_corpus import web_corpus

REPO = Path(__file__).resolve().parents[1]
# Which step must catch each kind of page (FineWeb order: url, langid, repetition, quality, c4, fineweb).
EXPECTED_STEP = {
    "repeated_lines": "gopher_repetition",
    "menu": "gopher_repetition",
    "boilerplate": "gopher_repetition",
    "hashtags": ("langid", "gopher_quality"),  # no language fastText is sure of, or too many '#'
    "word_salad": "gopher_quality",
    "one_liner": "gopher_quality",
    "adult_url": "url_filter",
}


def write_corpus(path: Path, copies: int = 1) -> dict[str, str]:
    """4 shards of web-like pages; returns id -> kind. Prose on a blocked domain is kind adult_url."""
    path.mkdir(parents=True)
    docs = web_corpus(seed=0)
    rows = []
    for c in range(copies):
        for i, (kind, text) in enumerate(docs):
            url = f"https://docs.example.org/c{c}/{i}"
            if kind == "prose" and i % 10 == 0:
                kind, url = "adult_url", f"https://www.pornhub.com/view/{c}-{i}"
            rows.append((f"c{c}-{i}", kind, text, url))
    for s in range(4):
        part = rows[s::4]
        table = pa.table(
            {"id": [r[0] for r in part], "text": [r[2] for r in part], "url": [r[3] for r in part]}
        )
        pq.write_table(table, path / f"web-{s}.parquet")
    return {r[0]: r[1] for r in rows}


def _filter(inp: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "data_pipeline",
        "filter",
        "--input",
        str(inp),
        "--output",
        str(out),
        "--workers",
        "2",
        "--quiet",
        *extra,
    ]


@pytest.mark.distributed
def test_default_filters_keep_prose_drop_spam_with_reasons(tmp_path):
    kinds = write_corpus(tmp_path / "in")
    out = tmp_path / "out"
    proc = subprocess.run(
        _filter(tmp_path / "in", out, "--write-dropped"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    kept = pa.concat_tables(pq.read_table(p) for p in sorted(out.glob("*.parquet")))
    assert sorted(kept["id"].to_pylist()) == sorted(i for i, k in kinds.items() if k == "prose")
    assert set(kept["lang"].to_pylist()) == {"en"} and min(kept["lang_score"].to_pylist()) >= 0.65
    dropped = pa.concat_tables(pq.read_table(p) for p in sorted((out / "dropped").glob("*.parquet")))
    for doc_id, reason in zip(dropped["id"].to_pylist(), dropped["drop_reason"].to_pylist(), strict=True):
        step = reason.split(":")[0]
        want = EXPECTED_STEP[kinds[doc_id]]
        assert step in (want if isinstance(want, tuple) else (want,)), (doc_id, kinds[doc_id], reason)
    assert dropped.num_rows == sum(k != "prose" for k in kinds.values())
    stats = json.loads((out / "stats.json").read_text())
    assert stats["docs_in"] == len(kinds) and stats["docs_out"] == kept.num_rows
    assert sum(stats["dropped"].values()) == dropped.num_rows
    assert "url_filter:blocked_domain" in stats["dropped"]
    assert "gopher_repetition:dup_lines" in stats["dropped"]
    assert "gopher_quality:too_few_stop_words" in stats["dropped"]
    assert "drop reason" in proc.stdout  # the printed table


@pytest.mark.distributed
def test_default_filters_killed_and_rerun_give_identical_output(tmp_path):
    write_corpus(tmp_path / "in", copies=4)
    extra = ("--batch-rows", "16")
    subprocess.run(_filter(tmp_path / "in", tmp_path / "clean", *extra), cwd=REPO, check=True, timeout=600)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _filter(tmp_path / "in", out, *extra),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kill_worker_mid_shard(out, proc)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1 and "died" in err
    subprocess.run(_filter(tmp_path / "in", out, *extra), cwd=REPO, check=True, timeout=600)
    assert outputs(out) == outputs(tmp_path / "clean")
