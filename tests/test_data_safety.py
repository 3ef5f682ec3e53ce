"""Safety of `andes-data` writers: outputs never overlap inputs, `--overwrite` deletes only andes files,
unfinished stage outputs are refused as input, and resuming notices input shards that changed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from data_pipeline.cli import main

LENGTH = ["--steps", "length", "--set", "length.min_chars=20", "--quiet"]


def make_corpus(path: Path, shards: int = 3, docs: int = 30) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        texts = [f"document {s}-{i} about things " * (1 + i % 4) for i in range(docs)]
        urls = [f"https://example.org/{s}/{i}" for i in range(docs)]
        pq.write_table(pa.table({"text": texts, "url": urls}), path / f"shard-{s:03d}.parquet")
    return path


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def filtered(tmp_path: Path, name: str = "filtered", shards: int = 3) -> Path:
    """A finished `filter` output (it has stage.json, so today's --overwrite would delete it)."""
    out = tmp_path / name
    corpus = make_corpus(tmp_path / f"{name}-raw", shards=shards)
    assert main(["filter", "--input", str(corpus), "--output", str(out), *LENGTH]) == 0
    return out


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("andes-data: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _writer_argv(command: str, src: str, out: str) -> list[str]:
    return {
        "filter": ["filter", "--input", src, "--output", out, *LENGTH, "--overwrite"],
        "dedup-minhash": ["dedup", "--input", src, "--output", out, "--overwrite", "--quiet"],
        "dedup-exact": ["dedup", "--input", src, "--output", out, "--method", "exact", "--overwrite"],
        "dedup-url": ["dedup", "--input", src, "--output", out, "--method", "url", "--overwrite"],
        "dedup-stage": ["dedup", "--input", src, "--output", out, "--stage", "hash", "--overwrite"],
        "classify": ["classify", "--input", src, "--output", out, "--model", "m.bin", "--overwrite"],
        "pack": ["pack", "--input", src, "--output", out, "--seq-len", "64"],
        "train-tokenizer": ["train-tokenizer", "--input", src, "--output", out, "--vocab-size", "1024"],
        "train-classifier": ["train-classifier", "--positive", src, "--negative", src, "--output", out],
    }[command]


WRITERS = [
    "filter",
    "dedup-minhash",
    "dedup-exact",
    "dedup-url",
    "dedup-stage",
    "classify",
    "pack",
    "train-tokenizer",
    "train-classifier",
]


@pytest.mark.parametrize("command", WRITERS)
@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_output_overlapping_the_input_is_refused_before_anything_is_touched(tmp_path, capsys, command, where):
    """Issue 13.1: `--input A --output A --overwrite` used to delete A, `--input B/raw --output B` B/raw."""
    src = filtered(tmp_path)
    if where == "contains":  # --input B/raw --output B, B a finished andes output
        (src / "raw").mkdir()
        make_corpus(src / "raw", shards=1)
        src = src / "raw"
    out = {"same": src, "inside": src / "sub", "contains": src.parent}[where]
    before = snapshot(src)
    assert main(_writer_argv(command, str(src), str(out))) == 1
    err = error_line(capsys)
    assert f"output {out}" in err and f"input {src}" in err
    assert snapshot(src) == before
    assert not (src / "sub").exists()


def test_slurm_submission_is_refused_too(tmp_path, capsys):
    src = filtered(tmp_path)
    argv = ["filter", "--input", str(src), "--output", str(src / "sub"), *LENGTH, "--executor", "slurm"]
    assert main([*argv, "--dry-run"]) == 1
    assert f"output {src / 'sub'} lies inside input {src}" in error_line(capsys)
    assert not (tmp_path / "filtered").joinpath("sub").exists()


def test_symlinked_output_to_the_input_is_refused(tmp_path, capsys):
    src = filtered(tmp_path)
    (tmp_path / "link").symlink_to(src, target_is_directory=True)
    before = snapshot(src)
    argv = ["filter", "--input", str(src), "--output", str(tmp_path / "link"), *LENGTH, "--overwrite"]
    assert main(argv) == 1
    assert f"input {src}" in error_line(capsys)
    assert snapshot(src) == before


def test_overwrite_refuses_a_file_andes_did_not_write(tmp_path, capsys):
    corpus = make_corpus(tmp_path / "raw")
    out = filtered(tmp_path, "out")
    (out / "notes.txt").write_text("precious")
    (out / "dropped").mkdir()
    argv = ["filter", "--input", str(corpus), "--output", str(out), *LENGTH, "--overwrite"]
    assert main(argv) == 1
    assert str(out / "notes.txt") in error_line(capsys)
    assert (out / "notes.txt").read_text() == "precious" and (out / "stage.json").is_file()
    (out / "notes.txt").unlink()
    # A previous run's own files (parts, markers, stats, temp files of a killed shard) may go.
    (out / "shard-001-00001.parquet.tmp").write_bytes(b"partial")
    assert main(argv) == 0
    assert not (out / "shard-001-00001.parquet.tmp").exists()


def test_recipe_checks_every_stage_before_the_first_runs(tmp_path, capsys):
    corpus = make_corpus(tmp_path / "raw")
    root = tmp_path / "out"
    body = {
        "input": str(corpus),
        "output": str(root),
        "stages": [
            {"filter": {"steps": ["length"]}},
            # The pack stage's extra source is the output root: its output would lie inside it.
            {"pack": {"seq_len": 64, "sources": [{"path": str(root), "weight": 1.0}]}},
        ],
    }
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(OmegaConf.to_yaml(OmegaConf.create(body)))
    assert main(["run", str(recipe), "--quiet"]) == 1
    err = error_line(capsys)
    assert f"output {root / '1_pack'}" in err and f"input {root}" in err
    assert not root.exists()
    # The recipe's input inside its output root.
    make_corpus(root / "raw")
    assert main(["run", str(recipe), f"input={root / 'raw'}", "--quiet", "--overwrite"]) == 1
    assert f"output {root}" in error_line(capsys)


def _killed_filter(tmp_path: Path) -> Path:
    """A filter output that never finished: 2 of 4 shards done (the other task never ran)."""
    corpus = make_corpus(tmp_path / "raw", shards=4)
    out = tmp_path / "half"
    argv = ["filter", "--input", str(corpus), "--output", str(out), *LENGTH]
    assert main([*argv, "--rank", "0", "--world-size", "2"]) == 0
    return out


@pytest.mark.parametrize(
    "argv",
    [
        ["pack", "--input", "{src}", "--output", "{out}", "--seq-len", "64"],
        ["dedup", "--input", "{src}", "--output", "{out}", "--method", "exact", "--quiet"],
        ["classify", "--input", "{src}", "--output", "{out}", "--model", "m.bin", "--threshold", "0.5"],
        ["filter", "--input", "{src}", "--output", "{out}", *LENGTH],
        ["stats", "--input", "{src}"],
        ["train-tokenizer", "--input", "{src}/*.parquet", "--output", "{out}", "--vocab-size", "1024"],
    ],
)
def test_unfinished_stage_output_is_refused_as_input(tmp_path, capsys, argv):
    """Issue 13.2: pack used to exit 0 with the 2 finished shards of 4."""
    src = _killed_filter(tmp_path)
    capsys.readouterr()
    out = tmp_path / "next"
    assert main([a.format(src=src, out=out) for a in argv]) == 1
    err = error_line(capsys)
    assert str(src) in err and "shard-001" in err and "shard-003" in err and "--allow-incomplete" in err
    assert "shard-000" not in err and not out.exists()


def test_allow_incomplete_and_finished_or_raw_inputs_are_accepted(tmp_path, capsys):
    src = _killed_filter(tmp_path)
    assert main(["stats", "--input", str(src), "--allow-incomplete"]) == 0
    pack = ["pack", "--input", str(src), "--output", str(tmp_path / "p"), "--seq-len", "64"]
    assert main([*pack, "--allow-incomplete"]) == 0
    assert main(pack) == 1
    rest = ["filter", "--input", str(tmp_path / "raw"), "--output", str(src), *LENGTH]
    assert main([*rest, "--rank", "1", "--world-size", "2"]) == 0
    assert main(pack) == 0
    # A plain directory of Parquet is not a stage output: accepted as before.
    assert main(["stats", "--input", str(tmp_path / "raw")]) == 0
    # A killed run of a single task (markers of two shards missing, no stats.json yet).
    for name in ("shard-000", "shard-002"):
        (src / ".done" / f"{name}.json").unlink()
    (src / "stats.json").unlink()
    capsys.readouterr()
    assert main(["stats", "--input", str(src)]) == 1
    assert "shard-000" in error_line(capsys)


def _rows(out: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in out.glob("*.parquet"))


def test_changed_input_shard_is_redone_and_stats_agree(tmp_path):
    """Issue 13.3: a shrunk input shard used to keep its stale rows on resume."""
    corpus = make_corpus(tmp_path / "raw")
    out = tmp_path / "out"
    argv = ["filter", "--input", str(corpus), "--output", str(out), *LENGTH]
    assert main(argv) == 0
    shard = corpus / "shard-001.parquet"
    pq.write_table(pq.read_table(shard).slice(0, 5), shard)
    assert main(argv) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["docs_in"] == 65 and stats["docs_out"] == _rows(out)
    assert json.loads((out / ".done" / "shard-001.json").read_text())["docs_in"] == 5
    # Same size, new modification time: redone too.
    before = (out / ".done" / "shard-002.json").stat().st_mtime_ns
    os.utime(corpus / "shard-002.parquet", ns=(1, 10**18))
    assert main(argv) == 0
    assert (out / ".done" / "shard-002.json").stat().st_mtime_ns != before
    assert json.loads((out / "stats.json").read_text())["resumed_shards"] == 2


def test_removed_input_shard_removes_its_output_and_nothing_else(tmp_path):
    corpus = make_corpus(tmp_path / "raw")
    out = tmp_path / "out"
    argv = ["filter", "--input", str(corpus), "--output", str(out), *LENGTH, "--write-dropped"]
    assert main(argv) == 0
    (out / "notes.txt").write_text("mine")
    (corpus / "shard-002.parquet").unlink()
    assert main(argv) == 0
    assert not list(out.rglob("shard-002*"))
    assert (out / "notes.txt").read_text() == "mine"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["shards"] == 2 and stats["docs_in"] == 60 and stats["docs_out"] == _rows(out)


def test_dedup_refuses_to_resume_after_an_input_shard_changed(tmp_path, capsys):
    corpus = make_corpus(tmp_path / "raw")
    argv = ["dedup", "--input", str(corpus), "--output", str(tmp_path / "d"), "--method", "exact", "--quiet"]
    assert main(argv) == 0
    shard = corpus / "shard-001.parquet"
    pq.write_table(pq.read_table(shard).slice(0, 5), shard)
    capsys.readouterr()
    assert main(argv) == 1
    err = error_line(capsys)
    assert "shard-001.parquet" in err and "--overwrite" in err
    assert main([*argv, "--overwrite"]) == 0


@pytest.mark.parametrize("where", ["output", "output/val", "staging", "old"])
def test_pack_replaces_only_what_pack_wrote(tmp_path, capsys, where):
    src = make_corpus(tmp_path / "raw")
    out = tmp_path / "packed"
    argv = ["pack", "--input", str(src), "--output", str(out), "--seq-len", "64", "--val-fraction", "0.2"]
    assert main(argv) == 0
    folder = {"output": out, "output/val": out / "val", "staging": tmp_path / "packed.tmp"}.get(
        where, tmp_path / "packed.old"
    )
    folder.mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    assert main(argv) == 1
    assert "notes.txt was not written by andes-data pack; refusing to overwrite it" in error_line(capsys)
    assert snapshot(tmp_path) == before
    (folder / "notes.txt").unlink()
    assert main(argv) == 0  # pack's own files (an earlier output, a killed run's staging) are replaced
