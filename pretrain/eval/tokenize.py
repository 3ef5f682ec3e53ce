"""Requests to token ids: BOS + context, and the continuation encoded on its own (as OLMo does).

Encoding the continuation separately keeps its tokens identical whatever the context, so every
choice of a question is scored on the same context ids (which is what lets them share a row) and
the token counts of `acc_per_token` do not depend on how the context ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pretrain.eval.tasks import Request


class EvalTokenizer(Protocol):
    """What evaluation needs: plain-text encoding (no special tokens added) and the BOS id.

    `data_pipeline.tokenizer.load_tokenizer` gives one for a tiktoken file or a tokenizer.json.
    """

    bos_id: int | None

    def encode(self, text: str) -> list[int]: ...


def encode_requests(
    tokenizer: EvalTokenizer, requests: Sequence[Request]
) -> list[tuple[list[int], list[int]]]:
    """(BOS + context ids, continuation ids) per request; each distinct string is encoded once."""
    cache: dict[str, list[int]] = {}

    def enc(text: str) -> list[int]:
        if text not in cache:
            cache[text] = tokenizer.encode(text)
        return cache[text]

    bos = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
    out = []
    for r in requests:
        cont = enc(r.continuation)
        if not cont:
            raise ValueError(f"document {r.doc_id} choice {r.choice}: empty continuation")
        out.append((bos + enc(r.context), cont))
    return out
