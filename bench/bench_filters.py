"""Heuristic filter throughput and keep/drop agreement: andes against datatrove, one core each.

Same corpus (bench/make_bench_corpus.py: real prose mixed with web spam, ~64 MB), same filter set in
the same order (Gopher quality -> Gopher repetition -> C4 -> FineWeb), both sides single process,
pinned to one CPU, OMP_NUM_THREADS=1, documents already in memory. datatrove 0.10.1 runs in its own
venv (bench/.venv-datatrove, created here on first use) through bench/datatrove_filters_worker.py,
a long-lived subprocess, so timed passes of the two alternate on the same core. datatrove gets a
whitespace word tokenizer (`str.split`) so that spaCy is not the bottleneck; see the worker's
docstring for how it is injected.

What is timed: building the per-document objects from the in-memory strings and running the chain
(andes: `Step.process` over batches of DEFAULT_BATCH_ROWS `Doc`s; datatrove: its `BaseFilter.run`
generators). Parquet reading is not timed. Throughput is per CPU-second of the process
(`time.process_time`, best of --repeats), so other load on this shared machine inflates it less
than wall time would; wall time is shown too.

Agreement: each filter alone over every document (both sides), and the chain (a document kept by
both or dropped by both), once with andes' paper-faithful defaults and once with andes set to
datatrove's default thresholds (DATATROVE_PARAMS), which separates threshold choices from counting
differences. Disagreements are grouped by (andes reason, datatrove reason); CAUSES explains the
systematic ones (found with --show, which prints sample documents of each group); chain groups are
traced to the dropping filter's own disagreement. Every decision is also written next to the corpus
(decisions.parquet: id, then "<impl>/<filter>" reason columns, null = kept) for offline analysis.

Run: `python bench/bench_filters.py [--mb 64] [--repeats 3] [--cpu N] [--show 0] [--profile]`.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_bench_corpus import ensure_corpus  # noqa: E402

from data_pipeline.document import Doc  # noqa: E402
from data_pipeline.filters.base import Step, build_step  # noqa: E402
from data_pipeline.io import DEFAULT_BATCH_ROWS  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
WORKER = HERE / "datatrove_filters_worker.py"
DT_VENV = HERE / ".venv-datatrove"
DT_REQUIREMENTS = ["datatrove[processing]==0.10.1", "pyarrow"]
FILTERS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")
TOP_PAIRS = 8  # chain disagreement groups listed
UNCLASSIFIED = "(not classified)"

# andes parameters that reproduce datatrove 0.10.1's defaults where the two differ by a parameter.
# FineWeb's `stop_chars` is added from the worker: datatrove's TERMINAL_PUNCTUATION (159 marks of many
# scripts, no quotes), where FineWeb's run and andes use . ' " ! ?.
DATATROVE_PARAMS: dict[str, dict[str, Any]] = {
    "gopher_quality": {"bullets": ["•", "-"]},
    "gopher_repetition": {},
    "c4": {"min_words_per_line": 3, "min_num_sentences": 5, "end_marks": [".", "?", "!", '"', "'"]},
    "fineweb": {"char_duplicates_ratio": 0.01, "new_line_ratio": 0.3},
}
CONFIGS: dict[str, dict[str, dict[str, Any]]] = {
    "andes": {},
    "andes (datatrove params)": DATATROVE_PARAMS,
}

# Why the two sides disagree, per (filter, andes reason, datatrove reason); "kept" = not dropped.
# A key with a config name first applies to that config only. Found by reading --show samples.
_DUP_COPIES = (
    "andes counts every copy of a repeated {unit}, the first included, and strips lines; datatrove counts "
    "only the copies after the first, so its fraction is about half on a {unit} repeated once"
)
_DUP_CHARS = _DUP_COPIES + "; andes divides by the {unit}s' characters, datatrove by len(text)"
_DUP_NGRAMS = (
    "andes counts the characters of every occurrence of a repeated n-gram (the first too, overlaps once) "
    "over word characters; datatrove skips the first occurrence, jumps n words after each repeat and "
    "divides by len(text) with spaces: about half andes' value where a passage recurs once"
)
_TOP_NGRAM = (
    "datatrove scores the most frequent n-gram even when it occurs once, so texts of under ~15 words "
    "fail; andes scores 0 when no n-gram repeats (these texts fail gopher_quality's 50-word minimum)"
)
_C4_SENTENCES = (
    "sentence counting (C4 used NLTK Punkt): andes' rule splitter skips abbreviations, initials and dotted "
    "names; the WhitespaceTokenizer regex splits at every '.' not after a capital ('io.BytesIO', 'e.g.'), "
    "so datatrove finds more sentences on code-like pages near the minimum"
)
_FW_STRIP = (
    "andes compares stripped lines and divides by their characters; datatrove compares raw lines "
    "(indentation and trailing spaces kept) over len(text) less newlines: indented code and docs differ"
)
CAUSES: dict[tuple[str, ...], str] = {
    ("gopher_quality", "bullet_lines", "kept"): (
        "andes' bullets include '*' (Markdown), '–' and Unicode bullets, datatrove's only '•' and '-'; "
        "the '*' lists of the spam are bullet lists only for andes"
    ),
    ("gopher_quality", "too_few_words", "kept"): (
        "symbols such as '©' are words for datatrove (not in its PUNCTUATION_SET) but not for andes (no "
        "letter or digit): 49 words here, 50 there"
    ),
    ("gopher_quality", "kept", "gopher_enough_stop_words"): (
        "andes also matches stop words capitalised or upper-case and with trailing , . ; : ! ? ('That', "
        "'of,'); datatrove only the exact lowercase token"
    ),
    ("gopher_repetition", "dup_lines", "kept"): _DUP_COPIES.format(unit="line"),
    ("gopher_repetition", "dup_paragraphs", "kept"): _DUP_COPIES.format(unit="paragraph"),
    ("gopher_repetition", "dup_line_chars", "kept"): _DUP_CHARS.format(unit="line"),
    ("gopher_repetition", "dup_paragraph_chars", "kept"): _DUP_CHARS.format(unit="paragraph"),
    **{("gopher_repetition", f"dup_{n}grams", "kept"): _DUP_NGRAMS for n in range(5, 11)},
    **{("gopher_repetition", "kept", f"top_{n}_gram"): _TOP_NGRAM for n in (2, 3, 4)},
    **{
        ("gopher_repetition", f"top_{n}gram", "kept"): (
            "andes divides by the tokens' characters, datatrove by len(text): on ASCII tables and "
            "indented docs (25-30% whitespace) andes' share of a repeated row is ~1.3x datatrove's"
        )
        for n in (2, 3, 4)
    },
    ("andes", "c4", "kept", "too_few_sentences"): (
        "threshold: C4 (paper §2.2, c4_utils) drops pages under 3 sentences, datatrove under 5"
    ),
    ("andes", "c4", "too_few_sentences", "kept"): (
        "threshold: C4 removes lines under 5 words, datatrove under 3, so andes keeps fewer lines and "
        "counts fewer sentences"
    ),
    ("andes", "c4", "kept", "curly_bracket"): (
        "the '{' sits on a line of 3-4 words or ending in \"'\": datatrove keeps that line (its 3-word "
        "minimum and \"'\" end mark) and drops the page for '{'; C4 removes the line first"
    ),
    ("andes", "c4", "kept", "lorem_ipsum"): (
        "as for '{': the 'lorem ipsum' line survives only datatrove's 3-word / \"'\" line rules"
    ),
    ("andes (datatrove params)", "c4", "too_few_sentences", "kept"): _C4_SENTENCES,
    ("andes (datatrove params)", "c4", "kept", "too_few_sentences"): _C4_SENTENCES,
    ("andes", "fineweb", "kept", "char_dup_ratio"): (
        "threshold: FineWeb §3.6 drops at a duplicated-line character share of 0.1, datatrove's default "
        "is 0.01"
    ),
    ("andes", "fineweb", "kept", "line_punct_ratio"): (
        "andes counts lines ending in ' or \" as punctuated (FineWeb's stop set); datatrove 0.10.1's "
        "default is TERMINAL_PUNCTUATION, which has no quotes (dialogue, quoted titles)"
    ),
    ("andes", "fineweb", "kept", "list_ratio"): (
        "datatrove's newlines-per-word rule (> 0.3) is not in the FineWeb paper; andes leaves it off"
    ),
    ("fineweb", "line_punct_ratio", "kept"): (
        "share exactly 0.12: andes drops at <= 0.12 (FineWeb §3.6), datatrove below 0.12"
    ),
    ("andes (datatrove params)", "fineweb", "kept", "line_punct_ratio"): (
        "datatrove does not strip lines: a line ending in '. ' (trailing space) is not punctuated there"
    ),
    ("andes (datatrove params)", "fineweb", "duplicate_line_chars", "kept"): _FW_STRIP,
    ("andes (datatrove params)", "fineweb", "kept", "char_dup_ratio"): _FW_STRIP,
}


# ---------------------------------------------------------------- datatrove side


def datatrove_python() -> Path:
    """The bench-only venv's python, created with datatrove[processing] (and no CUDA torch) if missing."""
    python = DT_VENV / "bin" / "python"
    check = [str(python), "-c", "import datatrove.pipeline.filters, pyarrow"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating {DT_VENV} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(DT_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    dry = subprocess.run(pip + ["--dry-run", *DT_REQUIREMENTS], capture_output=True, text=True, check=True)
    if "torch-" in dry.stdout:  # a torch dependency must be the local CPU wheel, not a CUDA download
        subprocess.run(pip + ["torch==2.13.0"], check=True)
    subprocess.run(pip + DT_REQUIREMENTS, check=True)
    subprocess.run(check, check=True)
    return python


class DatatroveWorker:
    """The datatrove worker subprocess: one JSON command per line in, one JSON reply per line out."""

    def __init__(self, python: Path, shards: list[Path], env: dict[str, str]) -> None:
        cmd = [str(python), str(WORKER), *map(str, shards)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._reply()

    def _reply(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"datatrove worker exited with {self.proc.wait()}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"datatrove worker: {reply['error']}")
        return reply

    def request(self, **cmd: Any) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.proc.stdin.write('{"cmd": "quit"}\n')
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ---------------------------------------------------------------- andes side


def build_steps(config: dict[str, dict[str, Any]]) -> list[Step]:
    """The four steps in chain order, with the config's parameters (an unknown one is an error)."""
    steps = [build_step(name, config.get(name, {})) for name in FILTERS]
    for step in steps:
        step.setup()
    return steps


def batches(texts: list[str], urls: list[str]) -> Any:
    for start in range(0, len(texts), DEFAULT_BATCH_ROWS):
        end = start + DEFAULT_BATCH_ROWS
        yield [
            Doc(t, u, i)
            for i, (t, u) in enumerate(zip(texts[start:end], urls[start:end], strict=True), start)
        ]


def andes_chain(steps: list[Step], texts: list[str], urls: list[str]) -> dict[str, Any]:
    """Time (wall and CPU) one pass of the chain, batch by batch as the executor runs it."""
    step_cpu = dict.fromkeys(FILTERS, 0.0)
    kept = 0
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for docs in batches(texts, urls):
        for name, step in zip(FILTERS, steps, strict=True):
            t = time.process_time()
            step.process(docs)
            step_cpu[name] += time.process_time() - t
        kept += sum(1 for d in docs if d.drop_reason is None)
    cpu = time.process_time() - cpu
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": cpu, "kept": kept, "step_cpu": step_cpu}


def andes_decisions(steps: list[Step], texts: list[str], urls: list[str]) -> tuple[dict[str, list], dict]:
    """Reasons of each step alone over all documents (prefix stripped) and of the chain; CPU s per step."""
    columns: dict[str, list[str | None]] = {}
    seconds: dict[str, float] = {}
    for name, step in zip(FILTERS, steps, strict=True):
        reasons: list[str | None] = []
        gc.collect()
        start = time.process_time()
        for docs in batches(texts, urls):
            step.process(docs)
            reasons.extend(d.drop_reason for d in docs)
        seconds[name] = time.process_time() - start
        columns[name] = [r.split(":", 1)[1] if r else None for r in reasons]
    chain: list[str | None] = []
    for docs in batches(texts, urls):
        for step in steps:
            step.process(docs)
        chain.extend(d.drop_reason for d in docs)
    columns["chain"] = chain
    return columns, seconds


def profile_andes(
    steps: list[Step], texts: list[str], urls: list[str], top: int = 12
) -> tuple[str, list[str]]:
    """cProfile of one chain pass: the pstats listing (stdout) and markdown rows of the `top` by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for docs in batches(texts, urls):
        for step in steps:
            step.process(docs)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(2 * top)
    total = sum(row[2] for row in stats.stats.values())
    rows = []
    ranked = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    for (path, line, func), (_, calls, own, cumulative, _) in ranked:
        where = f"{Path(path).name}:{line} {func}" if line else func
        rows.append(f"| `{where}` | {calls:,} | {own:.2f} | {own / total:.0%} | {cumulative:.2f} |")
    return out.getvalue(), rows


# ---------------------------------------------------------------- comparison


def agreement(ours: list[str | None], theirs: list[str | None]) -> dict[str, int]:
    both_keep = sum(a is None and b is None for a, b in zip(ours, theirs, strict=True))
    both_drop = sum(a is not None and b is not None for a, b in zip(ours, theirs, strict=True))
    only_ours = sum(a is not None and b is None for a, b in zip(ours, theirs, strict=True))
    return {
        "docs": len(ours),
        "both_keep": both_keep,
        "both_drop": both_drop,
        "only_andes_drops": only_ours,
        "only_datatrove_drops": len(ours) - both_keep - both_drop - only_ours,
    }


def disagreements(ours: list[str | None], theirs: list[str | None], chain: bool = False) -> Counter:
    """(andes reason, datatrove reason) counts where exactly one side drops; the chain by filter."""
    pairs: Counter = Counter()
    for a, b in zip(ours, theirs, strict=True):
        if (a is None) != (b is None):
            if chain:
                a, b = a and a.split(":")[0], b and b.split(":")[0]
            pairs[(a or "kept", b or "kept")] += 1
    return pairs


def cause(config: str, name: str, pair: tuple[str, str]) -> str:
    return CAUSES.get((config, name, *pair)) or CAUSES.get((name, *pair)) or UNCLASSIFIED


def disagreement_lines(cfg: str, name: str, ours: list, theirs: list) -> list[str]:
    """One markdown bullet per cause of a filter's disagreements, its (reason pair ×docs) listed."""
    by_cause: dict[str, list[str]] = {}
    for pair, count in disagreements(ours, theirs).most_common():
        why = cause(cfg, name, pair)
        key = why if why != UNCLASSIFIED else f"{UNCLASSIFIED} {pair}"
        by_cause.setdefault(key, []).append(f"{pair[0]} / {pair[1]} ×{count:,}")
    return [f"- {name}: {', '.join(pairs)} — {why}" for why, pairs in by_cause.items()]


def chain_cause(decisions: dict[str, dict[str, list]], cfg: str, pair: tuple[str, str]) -> str:
    """A chain disagreement traced to the dropping filter's own disagreement on the same documents."""
    ours, theirs = decisions[cfg]["chain"], decisions["datatrove"]["chain"]
    rows = [
        i
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
        if (a.split(":")[0] if a else "kept", b.split(":")[0] if b else "kept") == pair
    ]
    name = pair[0] if pair[0] != "kept" else pair[1]
    alone: Counter = Counter()
    for i in rows:
        a, b = decisions[cfg][name][i], decisions["datatrove"][name][i]
        alone[f"{a or 'kept'} / {b or 'kept'}" if (a is None) != (b is None) else "agree alone"] += 1
    parts = [f"{k} ×{n:,}" for k, n in alone.most_common(3)]
    return f"{name} alone: " + ", ".join(parts)


def show_samples(name, pair, ids, texts, ours, theirs, annotations, n: int) -> None:
    """Print n sample documents of one disagreement group, with andes' annotations (for --show)."""
    shown = 0
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if (a or "kept", b or "kept") == pair and shown < n:
            shown += 1
            print(f"--- {name} {pair} {ids[i]} ({len(texts[i])} chars)")
            print(
                "    andes:",
                {k: round(v, 4) if isinstance(v, float) else v for k, v in annotations[i].items()},
            )
            print("    " + texts[i][:600].replace("\n", "\n    "))


def show_params(params: dict[str, Any]) -> str:
    """Parameters as JSON, a long list (datatrove's 159 stop marks) summarised by its length."""
    return ", ".join(
        f"{k}=<{len(v)} marks: datatrove TERMINAL_PUNCTUATION>"
        if isinstance(v, list) and len(v) > 20
        else f"{k}={json.dumps(v, ensure_ascii=False)}"
        for k, v in params.items()
    )


def machine() -> str:
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()} {cpu_model}, nproc={os.cpu_count()}, python {platform.python_version()}"


def fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=64.0, help="corpus size in MB of text (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--repeats", type=int, default=3, help="timed chain passes per impl; best kept")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin both sides to (default: the last)")
    parser.add_argument("--show", type=int, default=0, help="print N sample docs per disagreement group")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile andes' chain and report top functions"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to append to")
    args = parser.parse_args()

    shards = ensure_corpus(args.mb, args.seed)
    manifest = json.loads((shards[0].parent / "manifest.json").read_text())
    dt_python = datatrove_python()
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # inherited by the worker
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    os.environ.update(OMP_NUM_THREADS="1")
    load_before = os.getloadavg()[0]

    ids: list[str] = []
    texts: list[str] = []
    urls: list[str] = []
    for path in shards:
        table = pq.read_table(path)
        ids += table.column("id").to_pylist()
        texts += table.column("text").to_pylist()
        urls += table.column("url").to_pylist()
    n_docs, n_bytes = len(texts), sum(len(t.encode("utf-8")) for t in texts)
    print(f"corpus: {n_docs:,} docs, {n_bytes / 1e6:.1f} MB, {len(shards)} shards; pinned to CPU {cpu}")

    worker = DatatroveWorker(dt_python, shards, env)
    assert worker.info["docs"] == n_docs, worker.info
    DATATROVE_PARAMS["fineweb"]["stop_chars"] = worker.info["fineweb_stop_chars"]
    steps = {cfg: build_steps(params) for cfg, params in CONFIGS.items()}

    # Decisions (and each filter alone, timed once): andes configs, then datatrove.
    decisions: dict[str, dict[str, list]] = {}
    alone_cpu: dict[str, dict[str, float]] = {}
    for cfg in CONFIGS:
        decisions[cfg], alone_cpu[cfg] = andes_decisions(steps[cfg], texts, urls)
        print(f"{cfg}: decisions done", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        reply = worker.request(cmd="decisions", out=f"{tmp}/dt.parquet")
        dt_table = pq.read_table(f"{tmp}/dt.parquet")
    decisions["datatrove"] = {c: dt_table.column(c).to_pylist() for c in dt_table.column_names}
    alone_cpu["datatrove"] = reply["filter_seconds"]
    print("datatrove: decisions done", flush=True)

    table = {"id": ids} | {
        f"{impl}/{name}": col for impl, cols in decisions.items() for name, col in cols.items()
    }
    pq.write_table(pa.table(table), shards[0].parent / "decisions.parquet")  # for offline analysis

    # Timed chain passes, alternating so that load changes hit every implementation alike.
    timings: dict[str, list[dict[str, Any]]] = {name: [] for name in [*CONFIGS, "datatrove"]}
    for r in range(args.repeats):
        for cfg in CONFIGS:
            timings[cfg].append(andes_chain(steps[cfg], texts, urls))
        timings["datatrove"].append(worker.request(cmd="time"))
        print(
            f"repeat {r + 1}/{args.repeats}: "
            + ", ".join(f"{k} {v[-1]['cpu_seconds']:.2f}s" for k, v in timings.items()),
            flush=True,
        )
    worker.close()

    profile_rows: list[str] = []
    if args.profile:
        listing, profile_rows = profile_andes(steps["andes"], texts, urls)
        print(listing)

    if args.show:
        for cfg in CONFIGS:
            for name, step in zip(FILTERS, steps[cfg], strict=True):
                annotations = []
                for docs in batches(texts, urls):
                    step.process(docs)
                    annotations.extend(d.annotations for d in docs)
                ours, theirs = decisions[cfg][name], decisions["datatrove"][name]
                for pair, _ in disagreements(ours, theirs).most_common(8):
                    print(f"=== {cfg}")
                    show_samples(name, pair, ids, texts, ours, theirs, annotations, args.show)

    report = render(
        args, manifest, cpu, load_before, worker.info, timings, alone_cpu, decisions, ids, n_docs, n_bytes
    )
    if profile_rows:
        report += "\n".join(
            [
                "cProfile of andes' chain (defaults), top functions by own time (with profiler overhead):",
                "",
                "| function | calls | own s | own share | cumulative s |",
                "|---|---|---|---|---|",
                *profile_rows,
                "",
            ]
        )
    print(report)
    with args.results.open("a", encoding="utf-8") as f:
        f.write("\n" + report)


def render(
    args, manifest, cpu, load_before, dt_info, timings, alone_cpu, decisions, ids, n_docs, n_bytes
) -> str:
    """The RESULTS.md section: header, throughput, per-filter speed, agreement, causes, kinds."""
    now = datetime.datetime.now().isoformat(timespec="seconds")
    cmd = "python bench/bench_filters.py " + " ".join(sys.argv[1:])
    out = [f"## Heuristic filters (Gopher quality + repetition, C4, FineWeb) vs datatrove — {now}", ""]
    out.append(f"- command: `{cmd.strip()}`")
    out.append(
        f"- machine: {machine()}; both sides pinned to CPU {cpu}, OMP_NUM_THREADS=1; "
        f"load average before: {load_before:.2f}"
    )
    out.append(
        f"- datatrove {dt_info['datatrove']} (bench/.venv-datatrove), word tokenizer `str.split` "
        "(a WhitespaceTokenizer subclass passed as `language=`; sentence splitting: its regex)"
    )
    out.append(
        f"- corpus: bench/make_bench_corpus.py seed {manifest['seed']}: {n_docs:,} docs, "
        f"{n_bytes / 1e6:.1f} MB (prose: Shakespeare, gensim Lee news + enwiki sample, Python docs; "
        "web-page wrappers; 11 kinds of generated spam)"
    )
    out.append(
        f"- timed: Doc objects + the 4-filter chain over in-memory text, best of {args.repeats} "
        "alternating passes, CPU time of the process (wall time alongside)"
    )
    out.append("")
    dt_best = min(t["cpu_seconds"] for t in timings["datatrove"])
    out.append(
        "| impl | CPU s | wall s | docs/s per core | MB/s per core | GB/core-hour | ratio vs datatrove "
        "| kept |"
    )
    out.append("|---|---|---|---|---|---|---|---|")
    for impl, runs in timings.items():
        best = min(runs, key=lambda t: t["cpu_seconds"])
        s = best["cpu_seconds"]
        wall = min(t["seconds"] for t in runs)
        out.append(
            f"| {impl} | {s:.2f} | {wall:.2f} | {fmt(n_docs / s)} | {n_bytes / s / 1e6:.2f} "
            f"| {n_bytes / s * 3600 / 1e9:.2f} | {dt_best / s:.2f} | {best['kept']:,} |"
        )
    out.append("")
    out.append(
        "Each filter alone over all documents (CPU s, one pass; andes `Step.process`, datatrove "
        "`filter()`), and andes' share of its chain time:"
    )
    out.append("")
    out.append("| filter | andes s | datatrove s | ratio | andes docs/s | andes MB/s | andes chain share |")
    out.append("|---|---|---|---|---|---|---|")
    best_andes = min(timings["andes"], key=lambda t: t["cpu_seconds"])
    for name in FILTERS:
        a, d = alone_cpu["andes"][name], alone_cpu["datatrove"][name]
        share = best_andes["step_cpu"][name] / best_andes["cpu_seconds"]
        out.append(
            f"| {name} | {a:.2f} | {d:.2f} | {d / a:.2f} | {fmt(n_docs / a)} | {n_bytes / a / 1e6:.2f} "
            f"| {share:.0%} |"
        )
    for cfg in CONFIGS:
        out.append("")
        params = (
            "defaults (paper-faithful)"
            if not CONFIGS[cfg]
            else "set to datatrove's defaults: "
            + "; ".join(f"{k} {show_params(v)}" for k, v in CONFIGS[cfg].items() if v)
        )
        out.append(f"Agreement of keep/drop, {cfg} — andes {params}:")
        out.append("")
        out.append(
            "| filter | andes drops | datatrove drops | both keep | both drop | only andes drops "
            "| only datatrove drops | agreement |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for name in [*FILTERS, "chain"]:
            ours, theirs = decisions[cfg][name], decisions["datatrove"][name]
            a = agreement(ours, theirs)
            agree = (a["both_keep"] + a["both_drop"]) / a["docs"]
            out.append(
                f"| {name} | {a['both_drop'] + a['only_andes_drops']:,} "
                f"| {a['both_drop'] + a['only_datatrove_drops']:,} | {a['both_keep']:,} "
                f"| {a['both_drop']:,} | {a['only_andes_drops']:,} | {a['only_datatrove_drops']:,} "
                f"| {agree:.2%} |"
            )
        out.append("")
        out.append(f"Disagreements, {cfg} (andes reason / datatrove reason ×docs — cause):")
        out.append("")
        for name in FILTERS:
            out.extend(disagreement_lines(cfg, name, decisions[cfg][name], decisions["datatrove"][name]))
        pairs = disagreements(decisions[cfg]["chain"], decisions["datatrove"]["chain"], chain=True)
        for pair, count in pairs.most_common(TOP_PAIRS):
            out.append(f"- chain: {pair[0]} / {pair[1]} ×{count:,} — {chain_cause(decisions, cfg, pair)}")
    out.append("")
    out.append("Chain keep rate by document kind (andes defaults / andes with datatrove params / datatrove):")
    out.append("")
    out.append("| kind | docs | andes | andes (dt params) | datatrove |")
    out.append("|---|---|---|---|---|")
    kinds = sorted({i.split("/")[0] for i in ids})
    for kind in kinds:
        rows = [j for j, i in enumerate(ids) if i.startswith(kind + "/")]
        rates = [
            sum(decisions[k]["chain"][j] is None for j in rows) / len(rows) for k in [*CONFIGS, "datatrove"]
        ]
        out.append(f"| {kind} | {len(rows):,} | " + " | ".join(f"{r:.0%}" for r in rates) + " |")
    out.append("")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
