"""A small web-like corpus for filter tests: real English prose plus the spam that filters must catch.

The prose is the Python language reference shipped with CPython (`pydoc_data.topics`), with hard-
wrapped paragraphs joined into one line each (as text extraction leaves web pages) and code blocks
left out. The spam kinds are the usual crawl junk: repeated lines, navigation menus, hashtag soup,
word salad without stop words, one-liners and cookie/legal boilerplate.
"""

from __future__ import annotations

import pydoc_data.topics
import random
import re

SPAM_KINDS = ("repeated_lines", "menu", "hashtags", "word_salad", "one_liner", "boilerplate")


def prose_paragraphs() -> list[str]:
    """Prose paragraphs of the reference topics (code, grammar and headings left out), in topic order."""
    paragraphs = []
    for _, text in sorted(pydoc_data.topics.topics.items()):
        for block in re.split(r"\n\s*\n", text):
            lines = block.split("\n")
            if any(line.startswith(" ") for line in lines) or re.search(r"[*=\-]{3,}|[{}]|::=|>>>", block):
                continue
            para = " ".join(line.strip() for line in lines)
            if para.endswith(".") and len(para.split()) >= 12:
                paragraphs.append(para)
    return paragraphs


def prose_documents(n_docs: int = 40) -> list[str]:
    """Articles of whole paragraphs, each paragraph one line ending in a full stop.

    Paragraph i goes to document i % n_docs, so an article mixes topics the way a blog or news page
    does, instead of one manual section restating its own phrases (which Gopher's repetition rules
    rightly flag).
    """
    paragraphs = prose_paragraphs()
    return ["\n".join(paragraphs[i::n_docs]) for i in range(n_docs)]


def _vocabulary(rng: random.Random) -> list[str]:
    words = sorted({w.strip('.,;:()"').lower() for d in prose_documents() for w in d.split()})
    stop = {"the", "be", "to", "of", "and", "that", "have", "with", "a", "an", "is", "in", "it", "for"}
    return [w for w in words if w.isalpha() and w not in stop and len(w) > 3]


def spam_document(kind: str, rng: random.Random) -> str:
    """One junk page of the given kind."""
    vocab = _vocabulary(rng)
    if kind == "repeated_lines":
        lines = [
            f"ERROR {rng.randint(1, 9)} connection reset by peer while reading response header",
            "Retrying request to upstream server now.",
        ]
        return "\n".join(lines[i % 2] for i in range(60))
    if kind == "menu":
        items = ["Home", "About us", "Products", "Shop", "Blog", "Contact", "Login", "Cart", "FAQ", "Careers"]
        return "\n".join(rng.choice(items) for _ in range(80))
    if kind == "hashtags":
        return " ".join(f"#{rng.choice(vocab)}" for _ in range(150))
    if kind == "word_salad":
        sentences = [" ".join(rng.choice(vocab) for _ in range(12)).capitalize() + "." for _ in range(20)]
        return "\n".join(" ".join(sentences[i : i + 4]) for i in range(0, 20, 4))
    if kind == "one_liner":
        return "Click here to win a free phone!"
    if kind == "boilerplate":
        lines = [
            "This website uses cookies to improve your experience.",
            "Read our privacy policy.",
            "Accept all cookies",
            "Terms of use",
            "Copyright 2024 All rights reserved",
        ]
        return "\n".join(lines * 8)
    raise ValueError(f"unknown spam kind {kind!r}")


def web_corpus(seed: int = 0, spam_per_kind: int = 4) -> list[tuple[str, str]]:
    """(kind, text) pairs, kind 'prose' or a spam kind, shuffled with `seed`."""
    rng = random.Random(seed)
    docs = [("prose", d) for d in prose_documents()]
    docs += [(kind, spam_document(kind, rng)) for kind in SPAM_KINDS for _ in range(spam_per_kind)]
    rng.shuffle(docs)
    return docs
