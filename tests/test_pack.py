"""pack_chunks and the shared Parquet I/O: row format, token stream, manifest, val split, bad inputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_pipeline.io import (
    atomic_write_parquet,
    atomic_write_text,
    list_parquet,
    read_text_column,
)
from data_pipeline.pack import is_val_document, pack_chunks
from data_pipeline.packed_format import PACKED_FORMAT, read_manifest
from data_pipeline.tokenizer import Tokenizer

SEQ_LEN = 16
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file()  # the Llama 3 model shipped in llama-models: no download


def make_docs(n: int, seed: int) -> list[str]:
    """Documents of 0 to ~60 words, one long enough to span many rows, one empty, one blank."""
    rng = random.Random(seed)
    docs = [" ".join(rng.choices(WORDS, k=rng.randint(1, 60))) for _ in range(n)]
    docs[1] = ""
    docs[2] = " \n\t "
    docs[3] = " ".join(rng.choices(WORDS, k=400))
    return docs


@pytest.fixture
def corpus(tmp_path: Path) -> list[Path]:
    """Two shards with ids and one without (ids then come from file name and row)."""
    paths = []
    for i, n in enumerate([40, 25, 12]):
        docs = make_docs(n, seed=i)
        columns = {"text": docs} if i == 2 else {"id": [f"doc-{i}-{j}" for j in range(n)], "text": docs}
        path = tmp_path / "in" / f"shard-{i}.parquet"
        atomic_write_parquet(pa.table(columns), path, row_group_size=16)  # several batches per file
        paths.append(path)
    return paths


def corpus_docs(paths: list[Path]) -> list[tuple[str, str]]:
    out = []
    for path in paths:
        table = pq.read_table(path)
        ids = table["id"].to_pylist() if "id" in table.column_names else None
        for row, text in enumerate(table["text"].to_pylist()):
            out.append((ids[row] if ids else f"{path.name}#{row}", text))
    return out


def read_rows(directory: Path) -> tuple[list[list[int]], list[list[int]]]:
    tokens, cu = [], []
    for path in sorted(directory.glob("*.parquet")):
        table = pq.read_table(path)
        assert table.schema.field("tokens").type == pa.list_(pa.int32())
        assert table.schema.field("cu_seqlens").type == pa.list_(pa.int32())
        tokens += table["tokens"].to_pylist()
        cu += table["cu_seqlens"].to_pylist()
    return tokens, cu


def check_rows(directory: Path, expected_docs: list[list[int]], tok: Tokenizer, seq_len: int) -> None:
    """Rows hold exactly the concatenated encodings; cu_seqlens mark every document start."""
    tokens, cu = read_rows(directory)
    assert tokens and all(len(row) == seq_len + 1 for row in tokens)
    stream = [t for row, c in zip(tokens, cu, strict=True) for t in row[: c[-1]]]
    assert stream == [t for doc in expected_docs for t in doc]
    continues = False  # does the previous row end inside a document?
    for i, (row, c) in enumerate(zip(tokens, cu, strict=True)):
        n_real = c[-1]
        assert c[0] == 0 and c == sorted(set(c)), c
        assert all(t == tok.pad_id for t in row[n_real:])
        assert n_real == seq_len + 1 or i == len(tokens) - 1, "only the last row may be padded"
        bos_positions = [p for p, t in enumerate(row[:n_real]) if t == tok.bos_id]
        assert sorted({*bos_positions, *([0] if continues else [])}) == c[:-1]
        continues = row[n_real - 1] != tok.eos_id


def test_rows_are_the_concatenated_documents(corpus, tmp_path, tokenizer):
    out = tmp_path / "packed"
    manifest = pack_chunks(corpus, out, tokenizer, SEQ_LEN, rows_per_shard=10)

    docs = [text for _, text in corpus_docs(corpus) if text.strip()]
    encoded = [tokenizer.encode(text, bos=True, eos=True) for text in docs]
    check_rows(out, encoded, tokenizer, SEQ_LEN)

    total = sum(map(len, encoded))
    num_sequences = -(-total // (SEQ_LEN + 1))
    assert manifest == read_manifest(out)
    assert manifest["format"] == PACKED_FORMAT
    assert manifest["tokenizer"] == {
        "kind": "tiktoken",
        "name": "llama3",
        "sha256": tokenizer.sha256,
        "n_vocab": 128256,
        "bos_id": 128000,
        "eos_id": 128001,
        "pad_id": tokenizer.pad_id,
    }
    assert manifest["seq_len"] == SEQ_LEN
    assert manifest["num_sequences"] == num_sequences
    assert manifest["total_tokens"] == total
    assert manifest["padding_tokens"] == num_sequences * (SEQ_LEN + 1) - total
    assert manifest["num_documents"] == len(docs) == 77 - 6
    assert manifest["empty_documents"] == 6
    assert manifest["truncations"] == 0
    assert manifest["inputs"] == ["shard-0.parquet", "shard-1.parquet", "shard-2.parquet"]
    assert manifest["val"] is None and not (out / "val").exists()
    assert manifest["files"] == [f"part-{i:05d}.parquet" for i in range(-(-num_sequences // 10))]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", *manifest["files"]]


def test_document_longer_than_many_rows_and_exact_fit(tmp_path, tokenizer):
    text = "x" * 10 + " hello world" * 50
    ids = tokenizer.encode(text, bos=True, eos=True)
    path = tmp_path / "one.parquet"
    pq.write_table(pa.table({"text": [text]}), path)
    # seq_len + 1 == len(ids): one row, no padding, no continuation.
    manifest = pack_chunks([path], tmp_path / "exact", tokenizer, len(ids) - 1)
    assert (manifest["num_sequences"], manifest["padding_tokens"]) == (1, 0)
    assert read_rows(tmp_path / "exact")[1] == [[0, len(ids)]]
    manifest = pack_chunks([path], tmp_path / "long", tokenizer, 7)
    _, cu = read_rows(tmp_path / "long")
    assert all(c == [0, 8] for c in cu[:-1]) and cu[-1] == [0, len(ids) % 8 or 8]
    check_rows(tmp_path / "long", [ids], tokenizer, 7)


def test_val_split_is_deterministic_and_disjoint(corpus, tmp_path, tokenizer):
    manifest = pack_chunks(corpus, tmp_path / "a", tokenizer, SEQ_LEN, val_fraction=0.3, seed=5)
    docs = [(i, t) for i, t in corpus_docs(corpus) if t.strip()]
    val_ids = {i for i, _ in docs if is_val_document(i, 0.3, seed=5)}
    assert 0 < len(val_ids) < len(docs)
    for directory, in_val in [(tmp_path / "a", False), (tmp_path / "a" / "val", True)]:
        expected = [tokenizer.encode(t, bos=True, eos=True) for i, t in docs if (i in val_ids) == in_val]
        check_rows(directory, expected, tokenizer, SEQ_LEN)
    val_manifest = read_manifest(tmp_path / "a" / "val")
    assert val_manifest["split"] == "val" and manifest["split"] == "train"
    assert val_manifest["num_documents"] == len(val_ids) == manifest["val"]["num_documents"]
    assert manifest["num_documents"] + val_manifest["num_documents"] == len(docs)
    # The split follows the ids, not the order: reversed inputs put the same documents in val.
    reordered = pack_chunks(corpus[::-1], tmp_path / "b", tokenizer, SEQ_LEN, val_fraction=0.3, seed=5)
    assert reordered["val"]["num_documents"] == len(val_ids)
    assert reordered["val"]["total_tokens"] == manifest["val"]["total_tokens"]
    assert {i for i, _ in docs if is_val_document(i, 0.3, seed=6)} != val_ids


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def test_rerun_is_byte_identical(corpus, tmp_path, tokenizer):
    out = tmp_path / "packed"
    pack_chunks(corpus, out, tokenizer, SEQ_LEN, val_fraction=0.2, rows_per_shard=7)
    first = snapshot(out)
    pack_chunks(corpus, out, tokenizer, SEQ_LEN, val_fraction=0.2, rows_per_shard=7)
    assert snapshot(out) == first
    pack_chunks(corpus, tmp_path / "other", tokenizer, SEQ_LEN, val_fraction=0.2, rows_per_shard=7)
    assert snapshot(tmp_path / "other") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "other", "packed"]  # no .tmp/.old left


def test_output_loads_in_the_trainer_dataset(corpus, tmp_path, tokenizer):
    from pretrain.data import PackedDataset

    manifest = pack_chunks(corpus, tmp_path / "packed", tokenizer, SEQ_LEN, rows_per_shard=5)
    dataset = PackedDataset(tmp_path / "packed", SEQ_LEN)
    assert len(dataset) == manifest["num_sequences"]
    batch = dataset.get(np.arange(len(dataset)))
    assert batch.tokens.shape == (len(dataset), SEQ_LEN)


def write_bad(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "bad" / "shard.parquet"
    path.parent.mkdir(exist_ok=True)
    if kind == "column":
        pq.write_table(pa.table({"id": ["a"], "content": ["text"]}), path)
    elif kind == "null":
        pq.write_table(pa.table({"text": ["a", "b", "c", None, "e"]}), path, row_group_size=2)
    elif kind == "type":
        pq.write_table(pa.table({"text": [1, 2]}), path)
    elif kind == "corrupt":
        path.write_bytes(random.Random(0).randbytes(4096))
    return path


@pytest.mark.parametrize(
    ("kind", "error", "match"),
    [
        ("missing", FileNotFoundError, r"shard\.parquet: no such file"),
        ("column", ValueError, r"shard\.parquet: column 'text' missing \(found: \['id', 'content'\]\)"),
        ("null", ValueError, r"shard\.parquet: row 3: column 'text' is null"),
        ("type", ValueError, r"shard\.parquet: column 'text' has type int64, expected string"),
        ("corrupt", ValueError, r"shard\.parquet: not a readable Parquet file"),
    ],
)
def test_bad_input_fails_without_partial_output(corpus, tmp_path, tokenizer, kind, error, match):
    bad = write_bad(tmp_path, kind)
    out = tmp_path / "packed"
    with pytest.raises(error, match=match):
        pack_chunks([*corpus, bad], out, tokenizer, SEQ_LEN, rows_per_shard=2)
    assert not out.exists()
    # A failed rerun keeps the previous complete output untouched.
    pack_chunks(corpus, out, tokenizer, SEQ_LEN, rows_per_shard=2)
    before = snapshot(out)
    with pytest.raises(error, match=match):
        pack_chunks([*corpus, bad], out, tokenizer, SEQ_LEN, rows_per_shard=2)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "in", "packed"]


def test_bad_arguments(corpus, tmp_path, tokenizer):
    with pytest.raises(ValueError, match="seq_len=0"):
        pack_chunks(corpus, tmp_path / "o", tokenizer, 0)
    with pytest.raises(ValueError, match="val_fraction=1.0"):
        pack_chunks(corpus, tmp_path / "o", tokenizer, 8, val_fraction=1.0)
    with pytest.raises(ValueError, match="rows_per_shard=0"):
        pack_chunks(corpus, tmp_path / "o", tokenizer, 8, rows_per_shard=0)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="notes.txt was not written by andes-data pack"):
        pack_chunks(corpus, tmp_path / "precious", tokenizer, 8)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"text": ["", "  "]}), empty)
    with pytest.raises(ValueError, match="no non-empty documents"):
        pack_chunks([empty], tmp_path / "o", tokenizer, 8)
    assert not (tmp_path / "o").exists()


def test_read_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json: no manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="format 'something-else', expected 'andes-packed-v1'"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_manifest(tmp_path / "manifest.json")


def test_manifest_without_tokenizer_kind_reads_as_tiktoken(tmp_path):
    """Manifests written before HF tokenizers could be packed name no `kind`: they were tiktoken."""
    tokenizer = {
        "name": "llama3",
        "sha256": "0" * 64,
        "n_vocab": 128256,
        "bos_id": 0,
        "eos_id": 1,
        "pad_id": 2,
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"format": PACKED_FORMAT, "tokenizer": tokenizer}))
    assert read_manifest(tmp_path)["tokenizer"] == {**tokenizer, "kind": "tiktoken"}
    (tmp_path / "manifest.json").write_text(
        json.dumps({"format": PACKED_FORMAT, "tokenizer": {**tokenizer, "kind": "hf"}})
    )
    assert read_manifest(tmp_path)["tokenizer"]["kind"] == "hf"


def test_list_parquet(tmp_path):
    for name in ["b.parquet", "a.parquet", "c.txt", "d.parquet.tmp", "sub/e.parquet"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_parquet(tmp_path)] == ["a.parquet", "b.parquet"]
    assert list_parquet(str(tmp_path / "b.parquet")) == [tmp_path / "b.parquet"]
    assert [p.name for p in list_parquet(tmp_path / "*" / "*.parquet")] == ["e.parquet"]
    with pytest.raises(FileNotFoundError, match="nope: no such file or directory"):
        list_parquet(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"x\*.parquet: no files match"):
        list_parquet(tmp_path / "x*.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: directory contains no \*\.parquet files"):
        list_parquet(tmp_path / "empty")


def test_atomic_writes_and_read_text_column(tmp_path, monkeypatch):
    path = atomic_write_parquet(
        pa.table({"text": [f"doc {i}" for i in range(2500)]}), tmp_path / "d" / "x.parquet"
    )
    assert list(read_text_column(path)) == [f"doc {i}" for i in range(2500)]
    assert atomic_write_text(tmp_path / "t.json", "{}\n").read_text() == "{}\n"

    def write_then_fail(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_parquet(pa.table({"a": [1]}), tmp_path / "y.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "t.json"]  # no y.parquet(.tmp)
    with pytest.raises(ValueError, match=r"x\.parquet: column 'body' missing \(found: \['text'\]\)"):
        next(read_text_column(path, column="body"))
