"""A Hugging Face `tokenizer.json` behind the interface of our tiktoken `Tokenizer`.

Continued pretraining and evaluation of an HF model need that model's own tokenizer. As with the
tiktoken one, document text is encoded as plain text: special-token strings inside a document are
ordinary text (`encode_special_tokens`), and the post-processor's template is never applied
(`add_special_tokens=False`), so BOS/EOS come only from the `bos`/`eos` flags, exactly once.

BOS and EOS are found, for each role, by the first rule that names a token of the vocabulary:
1. the `bos`/`eos` argument (a token string or an id);
2. `bos_token`/`eos_token` of `tokenizer_config.json` beside the file (how HF declares them);
3. the post-processor: the special token a `TemplateProcessing` puts before `$A` (BOS) or after it
   (EOS), or the `cls`/`sep` of a BERT/RoBERTa processor;
4. the well-known pairs <|begin_of_text|>/<|end_of_text|> (Llama 3), <s>/</s> (Llama 2, Mistral),
   <bos>/<eos> (Gemma).
A tokenizer where neither names one is refused. The pad id is `pad_token` of tokenizer_config.json
if it has one, else the EOS id (padding is masked out of the loss, so only its range matters).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as RustTokenizer

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
KNOWN_PAIRS = (("<|begin_of_text|>", "<|end_of_text|>"), ("<s>", "</s>"), ("<bos>", "<eos>"))
"""(BOS, EOS) spellings of Llama 3, Llama 2/Mistral and Gemma, tried last."""


def _token_name(value: Any) -> str | None:
    """A tokenizer_config.json special token: a string or an AddedToken dict ({"content": ...})."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _template_tokens(processor: dict | None) -> tuple[str | None, str | None]:
    """(BOS, EOS) a post-processor adds around a single sequence; None where it adds none."""
    if not processor:
        return None, None
    kind = processor.get("type")
    if kind == "Sequence":
        found = [_template_tokens(p) for p in processor.get("processors", [])]
        return next((b for b, _ in found if b), None), next((e for _, e in found if e), None)
    if kind in ("BertProcessing", "RobertaProcessing"):
        return processor["cls"][0], processor["sep"][0]
    if kind != "TemplateProcessing":
        return None, None
    pieces = processor.get("single", [])
    first = next((i for i, p in enumerate(pieces) if "Sequence" in p), len(pieces))
    before = [p["SpecialToken"]["id"] for p in pieces[:first] if "SpecialToken" in p]
    after = [p["SpecialToken"]["id"] for p in pieces[first:] if "SpecialToken" in p]
    return (before[0] if before else None), (after[-1] if after else None)


class HFTokenizer:
    """An HF fast tokenizer (`tokenizer.json`) with the encode/decode interface of `Tokenizer`."""

    kind = "hf"

    def __init__(
        self, path: str | Path, *, bos: str | int | None = None, eos: str | int | None = None
    ) -> None:
        path = Path(path)
        self.path = path / TOKENIZER_JSON if path.is_dir() else path
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: tokenizer.json not found")
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.name = self.path.parent.name if self.path.name == TOKENIZER_JSON else self.path.stem
        try:
            self._tok = RustTokenizer.from_str(data.decode())
            spec = json.loads(data)
        except Exception as e:  # tokenizers raises a bare Exception on a malformed file
            raise ValueError(f"{self.path}: not a Hugging Face tokenizer.json ({e})") from None
        self._tok.encode_special_tokens = True  # special strings in documents are plain text
        self.config_path = self.path.with_name(TOKENIZER_CONFIG)
        self.config = self._read_config()
        self.n_vocab = max(self._tok.get_vocab(with_added_tokens=True).values()) + 1
        template = _template_tokens(spec.get("post_processor"))
        self.bos_id = self._find("bos", bos, template[0], [b for b, _ in KNOWN_PAIRS])
        self.eos_id = self._find("eos", eos, template[1], [e for _, e in KNOWN_PAIRS])
        pad = _token_name(self.config.get("pad_token"))
        pad_id = self._tok.token_to_id(pad) if pad else None
        self.pad_id = self.eos_id if pad_id is None else pad_id

    def _read_config(self) -> dict:
        if not self.config_path.is_file():
            return {}
        try:
            config = json.loads(self.config_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{self.config_path}: not valid JSON ({e})") from None
        return config if isinstance(config, dict) else {}

    def _find(self, role: str, given: str | int | None, template: str | None, known: list[str]) -> int:
        """The id of the BOS or EOS token by the rules of the module docstring."""
        if given is not None:
            token_id = given if isinstance(given, int) else self._tok.token_to_id(given)
            if token_id is None or not 0 <= token_id < self.n_vocab:
                raise ValueError(f"{self.path}: {role}={given!r} is not a token of this tokenizer")
            return token_id
        for token in (_token_name(self.config.get(f"{role}_token")), template, *known):
            if token is not None and (token_id := self._tok.token_to_id(token)) is not None:
                return token_id
        raise ValueError(
            f"{self.path}: cannot tell its {role.upper()} token (no {role}_token in {TOKENIZER_CONFIG}, "
            f"none in the post-processor, none of {', '.join(known)}); set {role}_token in "
            f"{self.config_path.name} beside it"
        )

    def __repr__(self) -> str:
        return f"HFTokenizer(name={self.name!r}, n_vocab={self.n_vocab}, path='{self.path}')"

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Encode text as plain text, adding BOS/EOS only as asked."""
        ids = self._tok.encode(text, add_special_tokens=False).ids
        return [self.bos_id] * bos + ids + [self.eos_id] * eos

    def encode_batch(
        self, texts: Sequence[str], *, bos: bool = False, eos: bool = False, num_threads: int = 8
    ) -> list[list[int]]:
        """Encode many texts; `num_threads` > 1 uses the library's own (Rust) thread pool."""
        if num_threads <= 1 or len(texts) <= 1:
            return [self.encode(text, bos=bos, eos=eos) for text in texts]
        encoded = self._tok.encode_batch_fast(list(texts), add_special_tokens=False)
        return [[self.bos_id] * bos + e.ids + [self.eos_id] * eos for e in encoded]

    def decode(self, ids: Sequence[int]) -> str:
        """Decode ids to text, special tokens included; invalid UTF-8 becomes U+FFFD."""
        if hasattr(ids, "tolist"):  # numpy arrays and torch tensors
            ids = ids.tolist()
        bad = next((i for i in ids if not 0 <= i < self.n_vocab), None)
        if bad is not None:
            raise ValueError(f"token id {bad} is outside the vocabulary [0, {self.n_vocab})")
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def save(self, directory: Path) -> None:
        """Write `tokenizer.json` and a `tokenizer_config.json` naming the BOS/EOS found here."""
        (directory / TOKENIZER_JSON).write_bytes(self.path.read_bytes())
        config = {"tokenizer_class": "PreTrainedTokenizerFast", **self.config}
        config["bos_token"] = self._tok.id_to_token(self.bos_id)
        config["eos_token"] = self._tok.id_to_token(self.eos_id)
        (directory / TOKENIZER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
