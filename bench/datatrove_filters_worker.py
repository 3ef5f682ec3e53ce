"""datatrove's side of bench_filters.py; runs INSIDE bench/.venv-datatrove, never imports andes.

It loads the benchmark shards once, then answers JSON commands, one per stdin line, with one JSON
line on stdout, so the parent can interleave its own timed runs with ours on the same pinned core:

- {"cmd": "time"}: one timed pass of the chain over fresh Documents -> {"seconds", "cpu_seconds", "kept"}
- {"cmd": "decisions", "out": PATH}: each filter alone over all documents, then the chain; writes
  one row per document (columns: the four filter names and "chain", null = kept, else the reason)
  to PATH as Parquet -> {"filter_seconds": {...}, "kept"} (CPU seconds of each filter alone)
- {"cmd": "quit"}

Word tokenizer: datatrove's filters call `split_into_words(text, self.language)`, which resolves
`language` through `load_word_tokenizer`. For "eng" that is spaCy (not even installed by
datatrove[processing]), and datatrove's own `WhitespaceTokenizer` also hands words to spaCy's "xx"
model. A `WordTokenizer` instance passed as `language=` is used as is, so we pass a subclass of
`WhitespaceTokenizer` whose `word_tokenize` is `str.split()` (the Gopher paper's whitespace words);
sentence splitting (used by C4 to count sentences) stays datatrove's terminal-punctuation regex.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from importlib.metadata import version

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.utils.word_tokenizers import WhitespaceTokenizer

FILTERS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")  # the chain's order, as andes runs it


class SplitWordTokenizer(WhitespaceTokenizer):
    """Words are `str.split()` tokens; sentences keep WhitespaceTokenizer's punctuation regex."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()


def make_filters() -> dict[str, BaseFilter]:
    """The four filters with datatrove's default thresholds and the whitespace word tokenizer."""
    tok = SplitWordTokenizer()
    return {
        "gopher_quality": GopherQualityFilter(language=tok),
        "gopher_repetition": GopherRepetitionFilter(language=tok),
        "c4": C4QualityFilter(language=tok),
        "fineweb": FineWebQualityFilter(language=tok),
    }


def fresh_docs(texts: list[str]) -> list[Document]:
    return [Document(text=t, id=str(i)) for i, t in enumerate(texts)]


def run_chain(filters: dict[str, BaseFilter], texts: list[str]) -> dict[str, float]:
    """Time (wall and CPU) one pass of the chain through datatrove's own `BaseFilter.run` generators."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    stream = (Document(text=t, id=str(i)) for i, t in enumerate(texts))  # built lazily, as a reader does
    for name in FILTERS:
        stream = filters[name].run(stream)
    kept = sum(1 for _ in stream)
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu, "kept": kept}


def decisions(filters: dict[str, BaseFilter], texts: list[str], out: str) -> dict[str, object]:
    """Per-document reasons of each filter alone and of the chain (which filter dropped it first)."""
    columns: dict[str, list[str | None]] = {}
    seconds: dict[str, float] = {}
    for name in FILTERS:
        docs = fresh_docs(texts)
        gc.collect()
        start = time.process_time()
        results = [get_filter_result(filters[name].filter(d)) for d in docs]
        seconds[name] = time.process_time() - start
        columns[name] = [None if keep else (reason or "dropped") for keep, reason in results]
    docs = fresh_docs(texts)
    chain: list[str | None] = [None] * len(docs)
    alive = docs
    for name in FILTERS:
        survivors = []
        for d in alive:
            keep, reason = get_filter_result(filters[name].filter(d))
            if keep:
                survivors.append(d)
            else:
                chain[int(d.id)] = f"{name}:{reason or 'dropped'}"
        alive = survivors
    columns["chain"] = chain
    pq.write_table(pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()}), out)
    return {"filter_seconds": seconds, "kept": len(alive)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", nargs="+", help="benchmark Parquet shards (column 'text'), in order")
    args = parser.parse_args()
    texts: list[str] = []
    for path in args.shards:
        texts.extend(pq.read_table(path, columns=["text"]).column("text").to_pylist())
    filters = make_filters()
    reply = {
        "ready": True,
        "docs": len(texts),
        "datatrove": version("datatrove"),
        "python": sys.version.split()[0],
        # datatrove 0.10.1's FineWeb default (TERMINAL_PUNCTUATION), for andes' datatrove-params config
        "fineweb_stop_chars": sorted(filters["fineweb"].stop_chars),
    }
    print(json.dumps(reply), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "time":
            reply = run_chain(filters, texts)
        elif cmd["cmd"] == "decisions":
            reply = decisions(filters, texts, cmd["out"])
        elif cmd["cmd"] == "quit":
            break
        else:
            reply = {"error": f"unknown command {cmd['cmd']!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
