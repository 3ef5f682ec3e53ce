"""Llama 3 tokenizer: tiktoken BPE ranks plus the 256 Llama 3 special tokens; `load_tokenizer`.

Document text is always encoded as plain text, so a special-token string inside a document can never
inject a control id; control ids are only added through the ``bos``/``eos`` flags. `load_tokenizer`
is the one loader of pack, trainer, export and generate: it picks this class for a tiktoken ranks
file and `HFTokenizer` (data_pipeline/hf_tokenizer.py) for a Hugging Face `tokenizer.json`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.resources
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import pairwise
from pathlib import Path

import tiktoken

from data_pipeline.hf_tokenizer import TOKENIZER_JSON, HFTokenizer

# Meta's Llama 3 pre-tokenization regex (llama_models/llama3/tokenizer.py); training must use the same.
LLAMA3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Named special tokens in id order; the rest of the reserved block is <|reserved_special_token_{2+i}|>.
LLAMA3_NAMED_SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
)

# tiktoken panics (regex StackOverflow) on long whitespace runs and is only known to be safe up to
# 400k chars per call (llama_models, tiktoken issue #195), so longer text is encoded in pieces.
MAX_PIECE_CHARS = 400_000
MAX_RUN_CHARS = 25_000

_SPACE = re.compile(r"\s")
_NON_SPACE = re.compile(r"\S")
_THROUGH_LAST_SPACE = re.compile(r".*\s", re.DOTALL)
# Any run longer than MAX_RUN_CHARS covers a whole aligned block, so normal text costs two short
# searches per block instead of a regex pass over every character.
_BLOCK_CHARS = MAX_RUN_CHARS // 2
# Ends at the last point before a space/tab that follows a non-space, or after a line break that precedes
# a non-space. No match of the Llama 3 regex spans such a point and no lookahead that decides a match
# reaches across it, so cutting there never changes the ids. (Python's \S is a subset of the regex
# crate's \S, so a Python non-space is one for tiktoken too.)
_LAST_SAFE_CUT = re.compile(r".*(?:\S(?=[ \t])|[\r\n](?=\S))", re.DOTALL)


def llama3_special_tokens(num_base_tokens: int, num_reserved: int = 256) -> dict[str, int]:
    """Map the Llama 3 special tokens to ids numbered right after the base ranks."""
    if num_reserved < len(LLAMA3_NAMED_SPECIAL_TOKENS):
        raise ValueError(
            f"num_reserved_special_tokens={num_reserved} < {len(LLAMA3_NAMED_SPECIAL_TOKENS)} named tokens"
        )
    extra = num_reserved - len(LLAMA3_NAMED_SPECIAL_TOKENS)
    names = [*LLAMA3_NAMED_SPECIAL_TOKENS, *(f"<|reserved_special_token_{2 + i}|>" for i in range(extra))]
    return {name: num_base_tokens + i for i, name in enumerate(names)}


def long_runs(text: str) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of each run of more than MAX_RUN_CHARS whitespace or non-whitespace chars."""
    run_end = 0
    for block in range(0, len(text) - _BLOCK_CHARS + 1, _BLOCK_CHARS):
        if block < run_end:
            continue
        head_start = max(0, block - _BLOCK_CHARS)
        if _NON_SPACE.search(text, block, block + _BLOCK_CHARS) is None:
            head = text[head_start:block]
            start = block - (len(head) - len(head.rstrip()))
            after = _NON_SPACE.search(text, block)
        elif _SPACE.search(text, block, block + _BLOCK_CHARS) is None:
            last_space = _THROUGH_LAST_SPACE.match(text, head_start, block)
            start = last_space.end() if last_space else head_start
            after = _SPACE.search(text, block)
        else:
            continue
        run_end = after.start() if after else len(text)
        if run_end - start > MAX_RUN_CHARS:
            yield start, run_end


def split_for_tiktoken(text: str) -> list[str]:
    """Cut text into pieces tiktoken can encode, at points that leave the ids unchanged where possible.

    Only runs of more than MAX_RUN_CHARS (non-)whitespace characters are cut inside, which may change a
    token or two at the cut; pieces longer than MAX_PIECE_CHARS are cut at the last safe point before
    the limit (a hard cut only if it has no such point, e.g. 400k chars of whitespace-free text).
    """
    if len(text) <= MAX_RUN_CHARS:
        return [text]
    cuts = [0]
    for start, end in long_runs(text):
        cuts.extend(range(start + MAX_RUN_CHARS, end, MAX_RUN_CHARS))
    cuts.append(len(text))
    pieces = []
    for start, end in pairwise(cuts):
        while end - start > MAX_PIECE_CHARS:
            safe = _LAST_SAFE_CUT.match(text, start, start + MAX_PIECE_CHARS)
            cut = safe.end() if safe else start + MAX_PIECE_CHARS
            pieces.append(text[start:cut])
            start = cut
        pieces.append(text[start:end])
    return pieces


def shipped_llama3_model() -> Path:
    """Path of the Llama 3 tokenizer.model bundled in the llama-models wheel (no download)."""
    try:
        root = importlib.resources.files("llama_models")
    except ModuleNotFoundError as e:
        raise ImportError(
            "llama-models is not installed, so the Llama 3 tokenizer.model is unavailable; "
            "`pip install llama-models` or pass path= to a tiktoken ranks file"
        ) from e
    path = Path(str(root / "llama3" / "tokenizer.model"))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed llama-models package")
    return path


def _parse_ranks(data: bytes, path: Path) -> dict[bytes, int]:
    """tiktoken's ranks format, one `base64(token) rank` per line.

    Parsed here rather than with tiktoken's `load_tiktoken_bpe`, which copies every file it reads
    into a /tmp cache keyed by path (racy with many ranks, stale after a retrain).
    """
    ranks = {}
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error) as e:
            raise ValueError(f"{path}:{lineno}: not a tiktoken ranks line ({e})") from e
    return ranks


class Tokenizer:
    """Byte-level BPE over tiktoken with Llama 3 special tokens; ids match Meta's Llama 3 tokenizer."""

    kind = "tiktoken"

    def __init__(self, path: str | Path, *, name: str | None = None, num_reserved_special_tokens: int = 256):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: tokenizer ranks file not found")
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.name = name or self.path.stem
        ranks = _parse_ranks(data, self.path)
        values = set(ranks.values())
        if len(values) != len(ranks) or min(values) != 0 or max(values) != len(ranks) - 1:
            raise ValueError(f"{self.path}: ranks must be the distinct integers 0..{len(ranks) - 1}")
        self.special_tokens = llama3_special_tokens(len(ranks), num_reserved_special_tokens)
        self.encoding = tiktoken.Encoding(
            name=self.name,
            pat_str=LLAMA3_SPLIT_PATTERN,
            mergeable_ranks=ranks,
            special_tokens=self.special_tokens,
        )
        self.n_vocab = len(ranks) + len(self.special_tokens)
        self.bos_id = self.special_tokens["<|begin_of_text|>"]
        self.eos_id = self.special_tokens["<|end_of_text|>"]
        self.eot_id = self.special_tokens["<|eot_id|>"]
        self.pad_id = self.special_tokens["<|finetune_right_pad_id|>"]

    @classmethod
    def from_file(cls, path: str | Path | None = None, num_reserved_special_tokens: int = 256) -> Tokenizer:
        """Load a tiktoken ranks file; None loads the Llama 3 model shipped in llama-models."""
        reserved = num_reserved_special_tokens
        if path is None:
            return cls(shipped_llama3_model(), name="llama3", num_reserved_special_tokens=reserved)
        return cls(path, num_reserved_special_tokens=reserved)

    def __repr__(self) -> str:
        return f"Tokenizer(name={self.name!r}, n_vocab={self.n_vocab}, path='{self.path}')"

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Encode text as plain text (special-token strings become ordinary tokens)."""
        if len(text) <= MAX_RUN_CHARS:
            ids = self.encoding.encode_ordinary(text)
        else:
            ids = []
            for piece in split_for_tiktoken(text):
                ids.extend(self.encoding.encode_ordinary(piece))
        if bos:
            ids.insert(0, self.bos_id)
        if eos:
            ids.append(self.eos_id)
        return ids

    def encode_batch(
        self, texts: Sequence[str], *, bos: bool = False, eos: bool = False, num_threads: int = 8
    ) -> list[list[int]]:
        """Encode many texts on threads (tiktoken releases the GIL while encoding)."""
        encode = partial(self.encode, bos=bos, eos=eos)
        if num_threads <= 1 or len(texts) <= 1:
            return [encode(text) for text in texts]
        with ThreadPoolExecutor(num_threads) as pool:
            return list(pool.map(encode, texts))

    def decode(self, ids: Sequence[int]) -> str:
        """Decode ids to text; invalid UTF-8 (e.g. a cut multi-byte char) becomes U+FFFD."""
        if hasattr(ids, "tolist"):  # numpy arrays and torch tensors
            ids = ids.tolist()
        if ids and (min(ids) < 0 or max(ids) >= self.n_vocab):
            bad = next(i for i in ids if not 0 <= i < self.n_vocab)
            raise ValueError(f"token id {bad} is outside the vocabulary [0, {self.n_vocab})")
        return self.encoding.decode(ids)

    def save(self, directory: Path) -> None:
        """Write the ranks file as `tokenizer.model` (what `find_tokenizer` looks for)."""
        (directory / TIKTOKEN_MODEL).write_bytes(self.path.read_bytes())


TIKTOKEN_MODEL = "tokenizer.model"
AnyTokenizer = Tokenizer | HFTokenizer
"""What `load_tokenizer` returns: both have encode, encode_batch, decode, save, n_vocab, bos_id,
eos_id, pad_id, sha256, name, path and kind ("tiktoken" or "hf")."""


def find_tokenizer(directory: str | Path) -> Path | None:
    """The tokenizer file of a model directory: `tokenizer.json` first (an HF model's own, whereas a
    `tokenizer.model` beside it may be SentencePiece), else a tiktoken `tokenizer.model`."""
    for name in (TOKENIZER_JSON, TIKTOKEN_MODEL):
        if (Path(directory) / name).is_file():
            return Path(directory) / name
    return None


def load_tokenizer(path: str | Path | None = None) -> AnyTokenizer:
    """A tokenizer by file: `tokenizer.json` (or a directory holding one) -> HF; a tiktoken ranks file
    (or a directory holding `tokenizer.model`) -> tiktoken; None -> the Llama 3 model in llama-models."""
    if path is None:
        return Tokenizer.from_file()
    p = Path(path)
    if p.is_dir():
        found = find_tokenizer(p)
        if found is None:
            raise FileNotFoundError(f"{p}: no {TOKENIZER_JSON} or {TIKTOKEN_MODEL} in this directory")
        p = found
    if not p.is_file():
        raise FileNotFoundError(f"{p}: tokenizer file not found")
    with open(p, "rb") as f:
        head = f.read(64).lstrip()
    if p.suffix == ".json" or head.startswith(b"{"):  # a ranks file is base64 lines, never JSON
        return HFTokenizer(p)
    return Tokenizer(p)
