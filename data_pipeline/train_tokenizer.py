"""Train a byte-level BPE with HF `tokenizers` and export it as a tiktoken ranks file.

The ranks file loads with `data_pipeline.tokenizer.Tokenizer.from_file`, which adds the 256 Llama 3 special
tokens after the base ranks, so the requested `vocab_size` counts those too.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
from tokenizers import Regex, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from data_pipeline.io import text_values
from data_pipeline.tokenizer import LLAMA3_SPLIT_PATTERN

NUM_SPECIAL_TOKENS = 256
# Below this many merges a "BPE" is barely more than bytes; most likely a typo in vocab_size.
MIN_MERGES = 256


def byte_level_to_bytes() -> dict[str, int]:
    """Invert the GPT-2 byte-level alphabet HF uses: printable bytes map to themselves, the rest to 256+n."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {chr(b): b for b in printable}
    unprintable = [b for b in range(256) if b not in mapping.values()]
    mapping.update({chr(256 + n): b for n, b in enumerate(unprintable)})
    return mapping


def base_vocab_size(vocab_size: int) -> int:
    """The vocab without the special tokens; refuses a vocab_size that leaves too few merges."""
    if vocab_size <= 256 + MIN_MERGES + NUM_SPECIAL_TOKENS:
        raise ValueError(
            f"vocab_size={vocab_size} must exceed {256 + MIN_MERGES + NUM_SPECIAL_TOKENS} "
            f"(256 bytes + at least {MIN_MERGES} merges + {NUM_SPECIAL_TOKENS} special tokens)"
        )
    return vocab_size - NUM_SPECIAL_TOKENS


def train_hf_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> HFTokenizer:
    """Train the HF byte-level BPE whose base vocab is `vocab_size` minus the special tokens."""
    base = base_vocab_size(vocab_size)
    tokenizer = HFTokenizer(models.BPE())
    # Same pre-tokenization as tiktoken at encode time: Llama 3 regex first, then bytes -> symbols.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=base,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def tiktoken_ranks(tokenizer: HFTokenizer) -> list[bytes]:
    """Token bytes in rank order: the 256 single bytes by value, then merged tokens in learned order."""
    to_byte = byte_level_to_bytes()
    # HF ids are the 256-symbol alphabet (in symbol order) followed by each new token as it was learned.
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    merged = [bytes(to_byte[ch] for ch in token) for token, _ in by_id[256:]]
    return [bytes([b]) for b in range(256)] + merged


def write_tiktoken_ranks(ranks: list[bytes], output: Path) -> Path:
    """Write `base64token rank` lines atomically (tmp file then rename)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_bytes(b"".join(base64.b64encode(token) + b" %d\n" % rank for rank, token in enumerate(ranks)))
    os.replace(tmp, output)
    return output


def train_tokenizer(texts: Iterable[str], vocab_size: int, output: Path, min_frequency: int = 2) -> Path:
    """Train a byte-level BPE on texts and write it as a tiktoken ranks file; same input, same bytes."""
    base = base_vocab_size(vocab_size)
    ranks = tiktoken_ranks(train_hf_bpe(texts, vocab_size, min_frequency))
    if len(ranks) != base:
        raise ValueError(
            f"learned only {len(ranks)} of {base} base tokens (vocab_size={vocab_size}); "
            f"use more text, a smaller vocab_size or a lower min_frequency={min_frequency}"
        )
    if len(set(ranks)) != len(ranks):
        raise ValueError("exported ranks contain duplicate tokens")
    return write_tiktoken_ranks(ranks, Path(output))


def iter_parquet_texts(
    paths: list[Path], column: str = "text", max_chars: int | None = None
) -> Iterator[str]:
    """Yield the column's non-empty strings in file order, stopping after max_chars characters."""
    remaining = max_chars
    for path in paths:
        file = pq.ParquetFile(path)
        names = file.schema_arrow.names
        if column not in names:
            raise ValueError(f"{path}: column '{column}' missing (found: {names})")
        row = 0
        for batch in file.iter_batches(columns=[column]):
            for text in text_values(path, batch.column(0), column, row):
                if not text:
                    continue
                if remaining is not None:
                    if len(text) >= remaining:
                        yield text[:remaining]
                        return
                    remaining -= len(text)
                yield text
            row += batch.num_rows


def train_tokenizer_from_parquet(
    paths: list[Path], vocab_size: int, output: Path, column: str = "text", max_chars: int | None = None
) -> Path:
    """Train on the `column` strings of Parquet files (at most max_chars characters in total)."""
    return train_tokenizer(iter_parquet_texts(paths, column, max_chars), vocab_size, output)
