"""Tokenizer ids, plain-text safety, long inputs and the BPE trainer's tiktoken export."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import data_pipeline.tokenizer as tokenizer_module
from data_pipeline.tokenizer import MAX_RUN_CHARS, Tokenizer, long_runs, split_for_tiktoken
from data_pipeline.train_tokenizer import (
    byte_level_to_bytes,
    train_hf_bpe,
    train_tokenizer,
    train_tokenizer_from_parquet,
)

FRAGMENTS = [
    "The quick brown fox jumps over the lazy dog. ",
    "naïve café, Œuvre, façade, Ångström, ñandú ",
    "東京は日本の首都です。北京欢迎你！ ",
    "🙂👍🏽 family: 👨‍👩‍👧 flags 🇫🇷🇯🇵 ",
    "def f(x: int) -> int:\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { a[i] += b[i]; }\r\n",
    "it's they're we've I'm you'll he'd DON'T ",
    "1234567890 3.14159 1e-9 0xDEADBEEF ",
    "\t\tindented\n\n\n",
    "Привет, мир! Γειά σου κόσμε. مرحبا بالعالم ",
    "e\u0301 combining, zero\u200bwidth, nbsp\xa0here, ideographic\u3000space, sep\u2028line ",
    "<|begin_of_text|><|end_of_text|><|eot_id|> ",
    "!!!??? ... --- *** ",
]

SYLLABLES = ["ka", "to", "ri", "men", "sha", "lo", "pu", "vin", "an", "der", "ing", "é", "ü", "東", "🙂"]


def varied_text(seed: int, n_chars: int) -> str:
    """Deterministic mix of scripts, emoji, code and whitespace runs of up to a few thousand chars."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < n_chars:
        if rng.random() < 0.02:
            part = rng.choice(" \t\n") * rng.randint(2, 3000)
        elif rng.random() < 0.3:
            part = "".join(rng.choices(rng.choice(FRAGMENTS), k=rng.randint(1, 40)))
        else:
            part = rng.choice(FRAGMENTS)
        parts.append(part)
        size += len(part)
    return "".join(parts)


@pytest.fixture(scope="module")
def llama3() -> Tokenizer:
    return Tokenizer.from_file()


@pytest.fixture(scope="module")
def varied_1mb() -> str:
    return varied_text(seed=0, n_chars=1_000_000)


def test_llama3_metadata(llama3: Tokenizer) -> None:
    assert llama3.name == "llama3"
    assert llama3.n_vocab == 128256
    assert (llama3.bos_id, llama3.eos_id, llama3.pad_id, llama3.eot_id) == (128000, 128001, 128004, 128009)
    assert llama3.special_tokens["<|start_header_id|>"] == 128006
    assert llama3.special_tokens["<|reserved_special_token_2|>"] == 128012
    assert llama3.special_tokens["<|reserved_special_token_245|>"] == 128255
    assert len(llama3.special_tokens) == 256
    assert llama3.sha256 == "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55"


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        # Verified against tiktoken on the tokenizer.model shipped in llama-models 0.3.0.
        ("hello world", [15339, 1917]),
        ("Hello, world!", [9906, 11, 1917, 0]),
        (" The quick brown fox", [578, 4062, 14198, 39935]),
        ("naïve café 東京 🙂", [3458, 38672, 588, 53050, 119109, 28584]),
        ("def f(x):\n    return x**2\n", [755, 282, 2120, 997, 262, 471, 865, 334, 17, 198]),
    ],
)
def test_llama3_known_ids(llama3: Tokenizer, text: str, ids: list[int]) -> None:
    assert llama3.encode(text) == ids
    assert llama3.encode(text, bos=True, eos=True) == [128000, *ids, 128001]
    assert llama3.decode(ids) == text


def test_special_token_strings_are_plain_text(llama3: Tokenizer) -> None:
    text = "a <|begin_of_text|> b <|end_of_text|><|eot_id|><|reserved_special_token_5|> c"
    ids = llama3.encode(text)
    assert max(ids) < 128000
    assert llama3.encode("<|end_of_text|>") == [27, 91, 408, 3659, 4424, 91, 29]
    assert llama3.decode(ids) == text
    assert llama3.decode([llama3.eos_id]) == "<|end_of_text|>"


def test_decode_rejects_ids_outside_vocab(llama3: Tokenizer) -> None:
    with pytest.raises(ValueError, match=r"128256 .*128256"):
        llama3.decode([1, 128256])
    with pytest.raises(ValueError, match="-1"):
        llama3.decode([-1])


def test_round_trip_varied_1mb(llama3: Tokenizer, varied_1mb: str) -> None:
    ids = llama3.encode(varied_1mb)
    assert llama3.decode(ids) == varied_1mb
    # Over 400k chars, so encode() cut it into pieces; normal text must give the same ids as one call.
    assert len(split_for_tiktoken(varied_1mb)) > 1
    assert ids == llama3.encoding.encode_ordinary(varied_1mb)


def test_safe_cuts_do_not_change_ids(
    llama3: Tokenizer, varied_1mb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = varied_1mb[:300_000]
    monkeypatch.setattr(tokenizer_module, "MAX_PIECE_CHARS", 4_000)
    pieces = split_for_tiktoken(text)
    assert len(pieces) > 70 and "".join(pieces) == text
    assert llama3.encode(text) == llama3.encoding.encode_ordinary(text)


def test_long_runs_match_brute_force() -> None:
    rng = random.Random(3)
    parts = []
    for length in [24_999, 25_000, 25_001, 60_000, 12_499, 37_500, 100_000, 5, 25_001]:
        parts.append("".join(rng.choices(" \t\n\u3000", k=length)))
        parts.append("".join(rng.choices("ab東🙂!1", k=length)))
    for text in ["".join(parts), "".join(parts[1:]), "x" * 25_001, " " * 25_001]:
        expected = [m.span() for m in re.finditer(r"\s+|\S+", text) if len(m.group()) > MAX_RUN_CHARS]
        assert list(long_runs(text)) == expected


def test_10mb_document_without_newlines(llama3: Tokenizer) -> None:
    rng = random.Random(1)
    words = [w for w in " ".join(FRAGMENTS).replace("\n", " ").replace("\r", " ").split(" ") if w]
    body = " ".join(rng.choice(words) for _ in range(1_500_000))
    # Runs far above tiktoken's limits: a 1M-space run alone makes raw tiktoken panic.
    text = body[:4_000_000] + " " * 1_000_000 + "x" * 1_000_000 + body[4_000_000:]
    text = text[:10_000_000]
    assert len(text) == 10_000_000 and "\n" not in text
    assert llama3.decode(llama3.encode(text)) == text


def test_encode_batch_matches_encode(llama3: Tokenizer, varied_1mb: str) -> None:
    texts = [varied_1mb[i : i + 7_919] for i in range(0, 200_000, 7_919)] + ["", varied_1mb[:60_000]]
    expected = [llama3.encode(t, bos=True) for t in texts]
    assert llama3.encode_batch(texts, bos=True, num_threads=2) == expected
    assert llama3.encode_batch(texts, bos=True, num_threads=1) == expected


def test_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.tiktoken"):
        Tokenizer.from_file(tmp_path / "nope.tiktoken")
    gappy = tmp_path / "gappy.tiktoken"
    gappy.write_text("YQ== 0\nYg== 2\n")
    with pytest.raises(ValueError, match="distinct integers"):
        Tokenizer.from_file(gappy)


def synthetic_corpus(seed: int, n_docs: int) -> list[str]:
    """Zipf-distributed made-up words over mixed scripts, so BPE has plenty of pairs to merge."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _ in range(3_000)]
    separators = [", ", ".\n", "  ", "\t", " 123 ", " (x) ", "\n\n", "'s "]
    docs = []
    for _ in range(n_docs):
        parts = []
        for _ in range(rng.randint(20, 200)):
            word = words[min(int(rng.paretovariate(1.1)) - 1, len(words) - 1)]
            parts.append(word.capitalize() if rng.random() < 0.1 else word)
            parts.append(" " if rng.random() < 0.8 else rng.choice(separators))
        docs.append("".join(parts))
    return docs


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return synthetic_corpus(seed=0, n_docs=2_000)


def test_train_tokenizer_round_trip_and_hf_agreement(tmp_path: Path, corpus: list[str]) -> None:
    path = train_tokenizer(corpus, vocab_size=1024, output=tmp_path / "small.tiktoken")
    tok = Tokenizer.from_file(path)
    assert (tok.name, tok.n_vocab, tok.bos_id) == ("small", 1024, 768)
    assert not (tmp_path / "small.tiktoken.tmp").exists()

    held_out = synthetic_corpus(seed=1, n_docs=50) + [varied_text(seed=2, n_chars=50_000)]
    hf = train_hf_bpe(corpus, vocab_size=1024)
    to_byte = byte_level_to_bytes()
    rank_of = {tok.encoding.decode_single_token_bytes(i): i for i in range(tok.n_vocab - 256)}
    for text in held_out:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        # HF ranks merges by pair and tiktoken by the merged bytes; they could in principle diverge, but
        # with merges exported in learned order the token sequences are identical (checked here, and on
        # 16 MB of Python stdlib source at 4k and 16k vocab while developing).
        hf_tokens = [bytes(to_byte[ch] for ch in token) for token in hf.encode(text).tokens]
        assert [rank_of[token] for token in hf_tokens] == ids


def test_train_tokenizer_is_deterministic(tmp_path: Path, corpus: list[str]) -> None:
    first = train_tokenizer(corpus, 1024, tmp_path / "a.tiktoken").read_bytes()
    second = train_tokenizer(list(corpus), 1024, tmp_path / "b.tiktoken").read_bytes()
    assert first == second


def test_train_tokenizer_rejects_bad_vocab_size(tmp_path: Path, corpus: list[str]) -> None:
    with pytest.raises(ValueError, match="vocab_size=768"):
        train_tokenizer(corpus, 768, tmp_path / "t.tiktoken")
    with pytest.raises(ValueError, match="learned only"):
        train_tokenizer(corpus[:5], 4096, tmp_path / "t.tiktoken")
    assert not (tmp_path / "t.tiktoken").exists()


def test_train_tokenizer_from_parquet(tmp_path: Path, corpus: list[str]) -> None:
    shards = [tmp_path / "0.parquet", tmp_path / "1.parquet"]
    pq.write_table(pa.table({"id": [str(i) for i in range(500)], "text": corpus[:500]}), shards[0])
    pq.write_table(pa.table({"text": corpus[500:]}), shards[1])
    from_parquet = train_tokenizer_from_parquet(shards, 1024, tmp_path / "p.tiktoken")
    from_list = train_tokenizer(corpus, 1024, tmp_path / "l.tiktoken")
    assert from_parquet.read_bytes() == from_list.read_bytes()

    capped = train_tokenizer_from_parquet(shards, 1024, tmp_path / "c.tiktoken", max_chars=1_400_000)
    assert capped.read_bytes() != from_list.read_bytes()

    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"content": ["x"]}), bad)
    with pytest.raises(ValueError, match=r"bad.parquet: column 'text' missing \(found: \['content'\]\)"):
        train_tokenizer_from_parquet([bad], 1024, tmp_path / "x.tiktoken")


def test_malformed_ranks_file_names_the_line(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"IQ== 0\nnot-base64!! 1\n")
    with pytest.raises(ValueError, match=r"bad.model:2: not a tiktoken ranks line"):
        Tokenizer.from_file(bad)
