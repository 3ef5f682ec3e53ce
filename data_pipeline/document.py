"""One document as the filters see it: text plus lazily computed, shared views (lines, words…).

Several filters need the same split of a document (Gopher, C4 and FineWeb all look at lines and
words). Computing each view once per document, and only when some filter asks for it, is what
makes a chain of filters cheaper than running them one after another over the corpus.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

# Paragraphs are separated by one or more blank lines (Gopher's "paragraph" is a "\n\n" split).
_PARAGRAPH_SPLIT = re.compile(r"\n\s*\n")
_SPACE = re.compile(r"\s")  # the characters str.split() splits on (both use str.isspace)
# Text longer than this is split into words a piece at a time (see Doc.words).
_WORD_PIECE_CHARS = 1 << 18

_VIEWS = ("lines", "nonempty_lines", "words", "paragraphs")


class Doc:
    """A document in flight: its text, url, annotations and, once dropped, the reason."""

    def __init__(self, text: str, url: str | None = None, index: int = 0, row: int = 0) -> None:
        self._text = text
        self.url = url
        self.index = index  # row within the batch, to map results back to the Arrow table
        self.row = row  # row within the input shard, to match corpus-level results (dedup)
        self.annotations: dict[str, Any] = {}
        self.drop_reason: str | None = None
        self.text_changed = False  # lets the writer reuse the input's Arrow text column when False

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        """Replace the text (normalisation, line removal) and forget views of the old text."""
        if value != self._text:
            self.text_changed = True
        self._text = value
        for name in _VIEWS:
            self.__dict__.pop(name, None)

    @property
    def kept(self) -> bool:
        return self.drop_reason is None

    @cached_property
    def lines(self) -> list[str]:
        """Lines as split on "\\n", stripped of surrounding whitespace, empty ones included."""
        return [line.strip() for line in self._text.split("\n")]

    @cached_property
    def nonempty_lines(self) -> list[str]:
        return [line for line in self.lines if line]

    @cached_property
    def words(self) -> list[str]:
        """Whitespace-separated tokens (Gopher's definition of a word).

        A long text is split a piece at a time, equal words of a piece sharing one str object: a
        word costs a 8-byte pointer instead of a ~55-byte object, which is most of a long document's
        footprint in the filters (a repetitive 5 MB page: 8 MB of words instead of 60 MB).
        """
        text = self._text
        if len(text) <= _WORD_PIECE_CHARS:
            return text.split()
        words: list[str] = []
        start = 0
        while start < len(text):
            space = _SPACE.search(text, start + _WORD_PIECE_CHARS)
            end = space.start() if space else len(text)
            piece = text[start:end].split()
            same: dict[str, str] = {}
            words.extend(map(same.setdefault, piece, piece))
            start = end
        return words

    @cached_property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in _PARAGRAPH_SPLIT.split(self._text) if p.strip()]
