"""The data CLI under hostile input: a full disk, bytes that are not UTF-8, huge documents, bad options.

Each test runs the real `andes-data` entry point (in process, or as a subprocess where memory is
measured) and checks the three things a user sees: the exit code, one error line naming what is
wrong, and that nothing was left behind or lost.
"""

from __future__ import annotations

import errno
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

import data_pipeline.pack as pack_module
from data_pipeline.cli import main
from data_pipeline.filters.gopher import (
    ARRAY_MIN_WORDS,
    _ngram_fractions_arrays,
    _ngram_fractions_walk,
    ngram_char_fractions,
)

PROSE = "The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun. "


def _corpus(path: Path, texts: list[str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    texts = texts if texts is not None else [PROSE * (1 + i % 5) for i in range(30)]
    pq.write_table(pa.table({"text": texts}), path / "docs.parquet")
    return path


def _error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# A. A full disk while packing.


class _FullDisk(io.RawIOBase):
    """A file that exists but takes no bytes: every write fails as on a full disk (ENOSPC)."""

    def __init__(self, path: Path) -> None:
        Path(path).touch()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_pack_on_a_full_disk_removes_its_staging_dir_and_names_the_output(tmp_path, monkeypatch, capsys):
    docs = _corpus(tmp_path / "docs", [PROSE * 5] * 300)  # ~25k tokens: more than the file buffer
    out = tmp_path / "packed"
    # The token stream is buffered: the write that fails leaves bytes in the buffer, so closing the
    # file in the cleanup fails with ENOSPC again.
    monkeypatch.setattr(
        pack_module, "open", lambda path, mode: io.BufferedWriter(_FullDisk(path)), raising=False
    )
    rc = main(["pack", "--input", str(docs), "--output", str(out), "--seq-len", "16"])
    lines = _error_lines(capsys)
    assert rc == 1
    assert len(lines) == 1 and str(out) in lines[0] and "No space left on device" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]  # no packed.tmp left behind


# B. Text that is not UTF-8.


def _not_utf8(path: Path, kind: str) -> Path:
    values = [PROSE.encode(), b"caf\xe9 au lait " * 3, PROSE.encode()]
    if kind == "string":  # a string column whose bytes were never validated (how Parquet stores it)
        column = pa.array(values, type=pa.binary()).view(pa.string())
    else:
        column = pa.array(values, type=pa.large_binary())
    path.mkdir(parents=True)
    pq.write_table(pa.table({"text": column}), path / "latin1.parquet")
    return path / "latin1.parquet"


@pytest.mark.parametrize("kind", ["string", "binary"])
def test_pack_names_the_file_and_row_of_text_that_is_not_utf8(tmp_path, capsys, kind):
    good = _corpus(tmp_path / "good")
    bad = _not_utf8(tmp_path / "bad", kind)
    out = tmp_path / "packed"
    assert main(["pack", "--input", str(good), "--output", str(out), "--seq-len", "16"]) == 0
    before = _tree(out)
    capsys.readouterr()
    rc = main(["pack", "--input", str(good), "--input", str(bad), "--output", str(out), "--seq-len", "16"])
    lines = _error_lines(capsys)
    assert rc == 1
    assert len(lines) == 1 and f"{bad}: row 1: column 'text' is not valid UTF-8" in lines[0], lines
    assert _tree(out) == before  # the earlier output is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "good", "packed"]


def test_pack_reads_a_binary_text_column_like_filter_does(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    texts = [(PROSE * (1 + i % 3)).encode() for i in range(10)]
    pq.write_table(pa.table({"text": pa.array(texts, type=pa.binary())}), docs / "b.parquet")
    out = tmp_path / "packed"
    assert main(["pack", "--input", str(docs), "--output", str(out), "--seq-len", "16"]) == 0
    assert json.loads((out / "manifest.json").read_text())["num_documents"] == 10


def test_train_tokenizer_names_the_file_and_row_of_text_that_is_not_utf8(tmp_path, capsys):
    bad = _not_utf8(tmp_path / "bad", "string")
    out = tmp_path / "tok.model"
    assert main(["train-tokenizer", "--input", str(bad), "--output", str(out), "--vocab-size", "1024"]) == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1 and f"{bad}: row 1: column 'text' is not valid UTF-8" in lines[0], lines
    assert not out.exists()


# C. Huge documents: a size limit first in every filter stage, and bounded memory below it.


def test_documents_over_the_size_limit_are_dropped_first_with_their_own_reason(tmp_path, capsys):
    # 60 characters of 2 UTF-8 bytes each: under a 100-character limit, over a 100-byte one.
    docs = _corpus(tmp_path / "docs", ["short enough", "é" * 60, "x" * 101, "x" * 100])
    out = tmp_path / "out"
    argv = ["filter", "--input", str(docs), "--quiet", "--output"]
    assert main([*argv, str(out), "--steps", "length", "--set", "doc_size.max_bytes=100"]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["dropped"] == {"doc_size:too_large": 2}
    assert list(stats["steps"]) == ["doc_size", "length"]
    assert json.loads((out / "stage.json").read_text())["steps"][0] == {"doc_size": {"max_bytes": 100}}
    # Placed anywhere but first it would let the earlier steps see the huge documents.
    capsys.readouterr()
    assert main([*argv, str(tmp_path / "o2"), "--steps", "length,doc_size"]) == 1
    assert "step 'doc_size' must come first" in _error_lines(capsys)[0]
    # Refused values name the parameter and the interval.
    assert main([*argv, str(tmp_path / "o3"), "--steps", "length", "--set", "doc_size.max_bytes=-5"]) == 1
    assert "step 'doc_size': max_bytes=-5: must be in [1, inf)" in _error_lines(capsys)[0]


def test_a_recipe_sets_the_size_limit(tmp_path):
    docs = _corpus(tmp_path / "docs", ["a" * 50, "b" * 500])
    recipe = tmp_path / "r.yaml"
    steps = [{"doc_size": {"max_bytes": 1000}}, "length"]
    body = {"input": str(docs), "output": str(tmp_path / "out"), "stages": [{"filter": {"steps": steps}}]}
    recipe.write_text(OmegaConf.to_yaml(OmegaConf.create(body)))
    assert main(["run", str(recipe), "stages.0.filter.steps.0.doc_size.max_bytes=100", "--quiet"]) == 0
    stats = json.loads((tmp_path / "out" / "0_filter" / "stats.json").read_text())
    assert stats["dropped"] == {"doc_size:too_large": 1} and stats["docs_out"] == 1


# Memory of the default filter steps over one big document, measured as the peak RSS of a child
# process (the wrapper runs the CLI and reports its children's ru_maxrss, so nothing else counts).
_PEAK_RSS = """
import resource, subprocess, sys
subprocess.run([sys.executable, "-m", "data_pipeline", *sys.argv[1:]], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
DOC_MB = 5
# Before bounding the steps' memory this document peaked at ~485 MB above a tiny one (~97x; a 50 MB
# document took 3.6 GB); now ~130 MB (~26x). The bound leaves room for allocator noise.
MAX_RSS_PER_DOC_BYTE = 40


def _peak_rss_mb(tmp_path: Path, name: str, text: str) -> float:
    docs = _corpus(tmp_path / name, [text])
    argv = ["filter", "--input", str(docs), "--output", str(tmp_path / f"{name}-out"), "--quiet"]
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *argv], capture_output=True, text=True, check=True, timeout=600
    )
    return int(done.stdout.split()[-1]) / 1024


def test_default_steps_keep_a_big_document_within_a_small_multiple_of_its_size(tmp_path):
    # Short repeated English lines: it passes langid and costs every n-gram its own count.
    line = "buy cheap pills now and click here\n"
    big = line * (DOC_MB * 1_000_000 // len(line))
    baseline = _peak_rss_mb(tmp_path, "tiny", line * 20)
    peak = _peak_rss_mb(tmp_path, "big", big)
    assert peak - baseline < MAX_RSS_PER_DOC_BYTE * DOC_MB, (baseline, peak)
    stats = json.loads((tmp_path / "big-out" / "stats.json").read_text())
    assert stats["docs_in"] == 1 and "doc_size:too_large" not in stats["dropped"]


def test_ngram_fractions_of_long_documents_match_the_walk():
    # The array path (long documents) and the tuple walk (the rest) must agree exactly.
    rng = random.Random(0)
    for _ in range(300):
        vocab = [
            "".join(rng.choices("abcxyz", k=rng.randint(1, 5))) for _ in range(rng.choice([1, 2, 4, 30]))
        ]
        words = rng.choices(vocab, k=rng.randint(0, 80))
        if len(words) > 10:
            a = rng.randrange(len(words) - 5)
            words[rng.randrange(len(words)) : 0] = words[a : a + rng.randint(2, 12)]
        top_ns, dup_ns = set(rng.sample(range(1, 12), 3)), set(rng.sample(range(1, 12), 5))
        expected = _ngram_fractions_walk(words, top_ns, dup_ns)
        assert _ngram_fractions_arrays(words, top_ns, dup_ns) == expected, words
    words = (PROSE.split() * (ARRAY_MIN_WORDS // 10))[: 2 * ARRAY_MIN_WORDS]
    words[100:110] = [f"w{i}" for i in range(10)]
    top, dup = {2, 3, 4}, {5, 6, 7, 8, 9, 10}
    assert ngram_char_fractions(words, top, dup) == _ngram_fractions_walk(words, top, dup)


# D. Every option of every recipe stage is checked before the first stage runs.


def _stages(**last: dict) -> list[dict]:
    return [{"filter": {"steps": ["length"]}}, {"train_tokenizer": {"vocab_size": 1024}}, last]


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (_stages(filter={"steps": ["lenght"]}), "stages.2.filter: unknown step 'lenght'"),
        (
            _stages(filter={"steps": [{"length": {"min_chars": "ten"}}]}),
            "min_chars='ten': expected an integer",
        ),
        (_stages(filter={"steps": [{"gopher_quality": {"max_hash_ratio": -1}}]}), "max_hash_ratio=-1"),
        (_stages(filter={"steps": ["length"], "batch_rows": 0}), "stages.2.filter.batch_rows=0: must be in"),
        (_stages(filter={"steps": ["length"], "on_bad_input": "ignore"}), "on_bad_input='ignore': expected"),
        (_stages(dedup={"bands": 0}), "stages.2.dedup.bands=0: must be in"),
        (_stages(dedup={"verify_threshold": 1.5}), "stages.2.dedup.verify_threshold=1.5: must be in"),
        (_stages(dedup={"method": "fuzzy"}), "stages.2.dedup.method='fuzzy': expected one of"),
        (_stages(dedup={"seed": -1}), "stages.2.dedup.seed=-1: must be in"),
        (_stages(pack={"seq_len": -1}), "stages.2.pack.seq_len=-1: must be in"),
        (_stages(pack={"seq_len": 16, "val_fraction": 2}), "stages.2.pack.val_fraction=2: must be in [0, 1)"),
        (
            _stages(pack={"seq_len": 16, "shuffle": "yes"}),
            "stages.2.pack.shuffle='yes': expected true or false",
        ),
        (_stages(pack={"seq_len": 16, "weight": -1}), "stages.2.pack.weight=-1: must be in"),
        (_stages(pack={"seq_len": 16, "sources": [{"path": "x", "weight": "a"}]}), "sources.0.weight='a'"),
        (_stages(train_tokenizer={"vocab_size": "big"}), "stages.2.train_tokenizer.vocab_size='big'"),
        (_stages(train_tokenizer={"vocab_size": 1024, "max_chars": 0}), "train_tokenizer.max_chars=0"),
    ],
)
def test_a_recipe_checks_every_stage_before_running_any(tmp_path, capsys, stages, message):
    docs = _corpus(tmp_path / "docs")
    body = {"input": str(docs), "output": str(tmp_path / "out"), "stages": stages}
    recipe = tmp_path / "r.yaml"
    recipe.write_text(OmegaConf.to_yaml(OmegaConf.create(body)))
    assert main(["run", str(recipe), "--quiet"]) == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "out").exists()  # stage 0 never ran


def test_a_recipe_checks_workers(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    body = {"input": str(_corpus(tmp_path / "docs")), "output": str(tmp_path / "o"), "stages": _stages()[:1]}
    recipe.write_text(OmegaConf.to_yaml(OmegaConf.create(body)))
    assert main(["run", str(recipe), "workers=0"]) == 1
    assert "workers=0: must be in" in _error_lines(capsys)[0]


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["filter", "--workers", "0"], "--workers"),
        (["filter", "--batch-rows", "-3"], "--batch-rows"),
        (["filter", "--rank", "-1"], "--rank"),
        (["dedup", "--num-perm", "0"], "--num-perm"),
        (["dedup", "--threshold", "1.5"], "--threshold"),
        (["dedup", "--verify-threshold", "2"], "--verify-threshold"),
        (["dedup", "--seed", "-3"], "--seed"),
        (["classify", "--model", "m.bin", "--threshold", "2"], "--threshold"),
        (["classify", "--model", "m.bin", "--top-fraction", "1.5"], "--top-fraction"),
        (["classify", "--model", "m.bin", "--sample", "-5"], "--sample"),
        (["pack", "--seq-len", "-1"], "--seq-len"),
        (["pack", "--seq-len", "8", "--val-fraction", "2"], "--val-fraction"),
        (["pack", "--seq-len", "8", "--seed", "-1"], "--seed"),
        (["train-tokenizer", "--vocab-size", "0"], "--vocab-size"),
        (["train-classifier", "--positive", "p", "--negative", "n", "--lr", "-1"], "--lr"),
    ],
)
def test_numeric_options_are_range_checked_naming_the_option(tmp_path, capsys, argv, option):
    io_args = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    if argv[0] == "train-classifier":
        io_args = ["--output", str(tmp_path / "m.bin")]
    assert main([*argv, *io_args]) == 2
    error = _error_lines(capsys)[-1]
    assert f"argument {option}" in error and "must be in" in error, error
    assert not (tmp_path / "out").exists()
