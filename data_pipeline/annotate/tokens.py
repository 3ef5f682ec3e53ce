"""Prompts as token ids: the document cut to a token budget, the template around it, the score tokens.

Rules a caller must know:
- a document of more than `max_doc_tokens` tokens (tokenized on its own, no special tokens) is cut
  at the end of the character holding its `max_doc_tokens`-th token; to bound the tokenizer's work
  it is first cut to `max_doc_tokens * CHARS_PER_TOKEN` characters (encoder.py's rule);
- the prompt (template with the cut document) is then tokenized whole, as the model would read it,
  with the tokenizer's own special tokens (Llama's BOS first; an andes export's BOS), so it has the
  template's tokens plus about `max_doc_tokens` (a token may merge across the document's ends);
- the score tokens are the tokens of "0".."5" right after the template's end: each digit appended
  to the template's end must add exactly one token, which decodes to that digit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from data_pipeline.annotate.prompt import SCORE_DIGITS, Template
from data_pipeline.semantic.encoder import CHARS_PER_TOKEN, RanksTokenizer, load_tokenizer


class HFText:
    """A Hugging Face tokenizer.json (Rust `tokenizers`), as `AutoTokenizer` builds it."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def encode(self, texts: Sequence[str], specials: bool) -> list[list[int]]:
        rows = self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=specials)
        return [row.ids for row in rows]

    def heads(self, texts: Sequence[str], n: int) -> list[str]:
        """Each text cut at the end of the character holding its n-th token."""
        rows = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [
            text if len(row.ids) <= n else text[: row.offsets[n - 1][1]]
            for text, row in zip(texts, rows, strict=True)
        ]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


class RanksText:
    """An andes export's tiktoken `tokenizer.model` (encoder.RanksTokenizer): BOS first, as trained."""

    def __init__(self, tokenizer: RanksTokenizer) -> None:
        self.ranks = tokenizer.ranks

    def encode(self, texts: Sequence[str], specials: bool) -> list[list[int]]:
        return self.ranks.encode_batch(texts, bos=specials, num_threads=1)

    def heads(self, texts: Sequence[str], n: int) -> list[str]:
        """Each text cut at the end of the character holding its n-th token (tokens are bytes)."""
        out = []
        for text, ids in zip(texts, self.encode(texts, specials=False), strict=True):
            if len(ids) <= n:
                out.append(text)
                continue
            size = len(self.ranks.encoding.decode_bytes(ids[:n]))
            whole = text.encode("utf-8", "surrogatepass")[:size].decode("utf-8", "ignore")
            cut = len(whole) + (len(whole.encode("utf-8", "surrogatepass")) < size)  # a split character
            out.append(text[:cut])
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return self.ranks.decode(ids)


PromptTokenizer = HFText | RanksText


def load_prompt_tokenizer(path: Path) -> tuple[PromptTokenizer, int]:
    """The model directory's own tokenizer (encoder.load_tokenizer's choice) and its pad id."""
    tokenizer, pad_id = load_tokenizer(path, None)
    if isinstance(tokenizer, RanksTokenizer):
        return RanksText(tokenizer), pad_id
    return HFText(tokenizer), pad_id


def prompt_ids(
    tokenizer: PromptTokenizer, template: Template, texts: Sequence[str], max_doc_tokens: int
) -> list[list[int]]:
    """The token ids of each text's prompt (see the module docstring for the cut)."""
    clipped = [text[: max_doc_tokens * CHARS_PER_TOKEN] for text in texts]
    cut = tokenizer.heads(clipped, max_doc_tokens)
    return tokenizer.encode([template.render(doc) for doc in cut], specials=True)


def score_token_ids(path: Path, tokenizer: PromptTokenizer, template: Template) -> tuple[int, ...]:
    """The ids of "0".."5" as the token that follows the template; a one-line error if a digit is none."""
    end = template.suffix
    base = tokenizer.encode([end], specials=False)[0]
    ids = []
    with_digit = tokenizer.encode([end + d for d in SCORE_DIGITS], specials=False)
    for digit, row in zip(SCORE_DIGITS, with_digit, strict=True):
        same = next(
            (i for i, (a, b) in enumerate(zip(base, row, strict=False)) if a != b), min(len(base), len(row))
        )
        new = row[same:]
        if same < len(base) or len(new) != 1 or tokenizer.decode(new).strip() != digit:
            pieces = [tokenizer.decode([i]) for i in new]
            raise ValueError(
                f"{path}: the tokenizer has no single token for score digit {digit!r} after the prompt's "
                f"end ({end[-12:]!r} + {digit!r} ends in tokens {pieces}); end the --prompt template so "
                "that a digit is a token of its own"
            )
        ids.append(new[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: score digits share token ids {ids}")
    return tuple(ids)
