"""`andes-data` end to end (in process and as `python -m data_pipeline`) and the bundled sample corpus."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_pipeline.cli import main
from data_pipeline.commands.info import SAMPLE_DIR
from data_pipeline.io import list_parquet
from data_pipeline.packed_format import read_manifest
from data_pipeline.sample.build_shakespeare import heading_number, text_documents
from data_pipeline.tokenizer import Tokenizer

REPO = Path(__file__).resolve().parents[1]


def test_sample_corpus_is_bundled_and_well_formed(capsys):
    assert main(["sample-path"]) == 0
    assert Path(capsys.readouterr().out.strip()) == SAMPLE_DIR
    shards = list_parquet(SAMPLE_DIR)
    assert [p.name for p in shards] == [f"shakespeare-{i:05d}.parquet" for i in range(len(shards))]
    assert 2 <= len(shards) <= 4 and sum(p.stat().st_size for p in shards) < 3_000_000
    table = pa.concat_tables(pq.read_table(p) for p in shards)
    assert table.schema == pa.schema([("id", pa.string()), ("text", pa.string()), ("url", pa.string())])
    ids = table["id"].to_pylist()
    assert len(set(ids)) == len(ids) > 500
    assert len(set(table["url"].to_pylist())) == len(ids)  # unique, so URL dedup keeps every scene
    assert all(text.strip() for text in table["text"].to_pylist())
    hamlet = table["text"][ids.index("hamlet/act3/scene1")].as_py()
    assert hamlet.startswith("HAMLET, PRINCE OF DENMARK\n\nACT III.\n\nScene I.")
    assert "To be, or not to be" in hamlet
    assert "sonnets/part001" in ids


def test_play_splitting():
    play = "\n".join(
        [
            "THE PLAY  ",
            "",
            "PERSONS. A, B.",
            "ACT I.",
            "",
            "PROLOGUE. Spoken here.",
            "Scene I. A room.",
            "A.",
            "Hello.\t",
            "",
            "",
            "",
            "   Indented verse.",
            "SCENE 2.--A street.",
            "B. To act hath three branches.",
            "act I mean to do.",
            "ACT SECOND. SCENE IV. Elsewhere.",
            "Done.",
        ]
    )
    docs = text_documents("play", play, "http://example.org/play")
    assert [d.id for d in docs] == [
        "play/front-matter",
        "play/act1/prologue",
        "play/act1/scene1",
        "play/act1/scene2",
        "play/act2/scene4",
    ]
    assert docs[2].text == "THE PLAY\n\nACT I.\n\nScene I. A room.\nA.\nHello.\n\n   Indented verse."
    assert docs[3].text.endswith("B. To act hath three branches.\nact I mean to do.")
    assert docs[4].text == "THE PLAY\n\nACT SECOND.\n\nSCENE IV. Elsewhere.\nDone."
    assert docs[4].url == "http://example.org/play#act2/scene4"
    assert [heading_number(t) for t in ["IV", "IX", "XIV", "12", "FIFTH"]] == [4, 9, 14, 12, 5]
    poem = text_documents("poem", "A POEM\n\n" + "line of verse\n" * 2000, "u")
    assert [d.id for d in poem] == ["poem/part001"]


@pytest.fixture
def small_input(tmp_path: Path) -> Path:
    """The first sample shard cut to 40 scenes, to keep the end-to-end runs fast."""
    path = tmp_path / "input" / "sample.parquet"
    path.parent.mkdir()
    pq.write_table(pq.read_table(list_parquet(SAMPLE_DIR)[0]).slice(0, 40), path)
    return path


def test_pack_in_process(small_input, tmp_path, capsys):
    out = tmp_path / "packed"
    argv = ["pack", "--input", str(small_input.parent), "--output", str(out), "--seq-len", "256"]
    assert main([*argv, "--val-fraction", "0.1", "--rows-per-shard", "64"]) == 0
    printed = capsys.readouterr().out
    manifest = read_manifest(out)
    val = read_manifest(out / "val")
    assert manifest["seq_len"] == 256 and manifest["inputs"] == ["sample.parquet"]
    assert manifest["num_documents"] + val["num_documents"] == 40
    assert f"train: {manifest['num_sequences']} sequences of 257 tokens" in printed
    assert f"val: {val['num_sequences']} sequences" in printed
    assert len(manifest["files"]) == -(-manifest["num_sequences"] // 64)


def test_train_tokenizer_then_pack_with_it(small_input, tmp_path, capsys):
    model = tmp_path / "tok" / "bpe.model"
    argv = ["train-tokenizer", "--input", str(small_input), "--output", str(model), "--vocab-size", "1024"]
    assert main([*argv, "--max-chars", "300000"]) == 0
    tokenizer = Tokenizer.from_file(model)
    assert tokenizer.n_vocab == 1024
    out = tmp_path / "packed"
    argv = [
        "pack",
        "--input",
        str(small_input),
        "--output",
        str(out),
        "--seq-len",
        "128",
        "--tokenizer",
        str(model),
    ]
    assert main(argv) == 0
    manifest = read_manifest(out)
    assert manifest["tokenizer"]["sha256"] == tokenizer.sha256
    assert manifest["tokenizer"]["bos_id"] == 768


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (
            ["pack", "--input", "{missing}", "--output", "{out}", "--seq-len", "8"],
            1,
            "no such file or directory",
        ),
        (
            ["pack", "--input", "{corrupt}", "--output", "{out}", "--seq-len", "8"],
            1,
            "not a readable Parquet file",
        ),
        (
            ["pack", "--input", "{input}", "--output", "{out}", "--seq-len", "0"],
            2,
            "--seq-len: 0 must be in [1, inf)",
        ),
        (["pack", "--input", "{input}", "--seq-len", "8"], 2, "required: --output"),
        (
            ["pack", "--input", "{input}", "--output", "{out}", "--seq-len", "8", "--val-fraction", "1"],
            2,
            "[0, 1)",
        ),
        (
            ["pack", "--input", "{input}", "--output", "{out}", "--seq-len", "8", "--tokenizer", "{missing}"],
            1,
            "not found",
        ),
        (
            ["train-tokenizer", "--input", "{input}", "--output", "{out}", "--vocab-size", "300"],
            1,
            "must exceed",
        ),
        (["filtre", "--input", "{input}"], 2, "invalid choice"),
        ([], 2, "required"),
    ],
)
def test_error_exit_codes(small_input, tmp_path, capsys, argv, code, message):
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"\x00garbage" * 100)
    names = {
        "missing": tmp_path / "missing.parquet",
        "corrupt": corrupt,
        "input": small_input,
        "out": tmp_path / "out",
    }
    assert main([arg.format(**names) for arg in argv]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if code == 1:
        assert err.startswith("andes-data: error: ")
    assert not (tmp_path / "out").exists()


def test_help_lists_defaults(capsys):
    assert main(["pack", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--rows-per-shard" in help_text and "(default: 4096)" in help_text


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "data_pipeline", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_python_m_data_pipeline(small_input, tmp_path):
    out = tmp_path / "packed"
    result = run_module("pack", "--input", str(small_input), "--output", str(out), "--seq-len", "512")
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out)
    assert f"train: {manifest['num_sequences']} sequences of 513 tokens" in result.stdout
    assert manifest["num_documents"] == 40

    result = run_module("pack", "--input", str(tmp_path / "nope"), "--output", str(out), "--seq-len", "512")
    assert result.returncode == 1
    assert result.stderr.strip() == f"andes-data: error: {tmp_path / 'nope'}: no such file or directory"
    assert read_manifest(out) == manifest  # the earlier output survives a failed run
