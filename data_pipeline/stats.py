"""Run statistics: per-shard stats merged into `stats.json`, a printed table, and shard-dir summaries."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from data_pipeline.io import atomic_write_text, list_parquet, open_parquet
from data_pipeline.shard import ShardStats

STATS_FILE = "stats.json"


def merge_stats(
    shards: Sequence[ShardStats], *, skipped: dict[str, str] | None = None, wall_seconds: float = 0.0
) -> dict:
    """Sum shard stats into the stats.json document (steps in pipeline order)."""
    dropped: Counter[str] = Counter()
    steps: dict[str, dict] = {}
    for s in shards:
        dropped.update(s.dropped)
        for name, st in s.steps.items():
            acc = steps.setdefault(name, {"docs_in": 0, "docs_out": 0, "seconds": 0.0})
            acc["docs_in"] += st.docs_in
            acc["docs_out"] += st.docs_out
            acc["seconds"] += st.seconds
    cpu_seconds = sum(s.seconds for s in shards)
    bytes_in = sum(s.bytes_in for s in shards)
    for acc in steps.values():
        acc["dropped"] = acc["docs_in"] - acc["docs_out"]
        acc["seconds"] = round(acc["seconds"], 3)
    return {
        "shards": len(shards),
        "docs_in": sum(s.docs_in for s in shards),
        "docs_out": sum(s.docs_out for s in shards),
        "bytes_in": bytes_in,
        "bytes_out": sum(s.bytes_out for s in shards),
        "dropped": dict(dropped.most_common()),
        "steps": steps,
        "skipped_shards": dict(skipped or {}),
        "worker_seconds": round(cpu_seconds, 3),
        "wall_seconds": round(wall_seconds, 3),
        # Per worker, so it compares across machines and worker counts.
        "mb_per_s_per_worker": round(bytes_in / 1e6 / cpu_seconds, 3) if cpu_seconds else None,
    }


def write_stats(out_dir: Path, summary: dict) -> Path:
    return atomic_write_text(out_dir / STATS_FILE, json.dumps(summary, indent=1) + "\n")


def format_stats(summary: dict) -> str:
    """Human table: documents per step, drops by reason, throughput."""
    docs_in = summary["docs_in"] or 1
    lines = [
        f"{summary['shards']} shards: {summary['docs_in']:,} docs in, {summary['docs_out']:,} out "
        f"({100 * summary['docs_out'] / docs_in:.1f}% kept), "
        f"{summary['bytes_in'] / 1e6:,.1f} MB in, {summary['bytes_out'] / 1e6:,.1f} MB out",
        "",
        f"{'step':<22}{'docs in':>12}{'docs out':>12}{'dropped':>10}{'% of in':>9}{'s':>9}",
    ]
    for name, st in summary["steps"].items():
        pct = 100 * st["dropped"] / st["docs_in"] if st["docs_in"] else 0.0
        lines.append(
            f"{name:<22}{st['docs_in']:>12,}{st['docs_out']:>12,}{st['dropped']:>10,}{pct:>8.1f}%"
            f"{st['seconds']:>9.1f}"
        )
    if summary["dropped"]:
        lines += ["", f"{'drop reason':<44}{'docs':>10}{'% of in':>9}"]
        for reason, n in summary["dropped"].items():
            lines.append(f"{reason:<44}{n:>10,}{100 * n / docs_in:>8.1f}%")
    for shard, reason in summary.get("skipped_shards", {}).items():
        lines.append(f"skipped shard {shard}: {reason}")
    if summary.get("mb_per_s_per_worker"):
        lines += ["", f"throughput: {summary['mb_per_s_per_worker']:.2f} MB/s per worker"]
    return "\n".join(lines)


def describe_dir(path: Path | str, max_rows: int | None = None) -> dict:
    """Summary of a shard directory: rows, bytes, columns; distributions over the first `max_rows` rows."""
    files = list_parquet(path)
    rows = 0
    size = 0
    numeric: dict[str, list[pa.Array]] = {}
    categorical: dict[str, Counter] = {}
    text_chars: list[int] = []
    schema = None
    read = 0
    for f in files:
        pf = open_parquet(f)
        schema = schema or pf.schema_arrow
        rows += pf.metadata.num_rows
        size += f.stat().st_size
        for batch in pf.iter_batches(batch_size=65_536):
            if max_rows is not None and read >= max_rows:
                break
            if max_rows is not None:
                batch = batch.slice(0, max_rows - read)
            read += batch.num_rows
            for name in batch.schema.names:
                col = batch.column(name)
                if name == "text" and pa.types.is_string(col.type):
                    text_chars.extend(pc.utf8_length(col).to_pylist())
                elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
                    numeric.setdefault(name, []).append(col)
                elif name in ("lang", "drop_reason") or name.endswith("_domain"):
                    categorical.setdefault(name, Counter()).update(
                        v for v in col.to_pylist() if v is not None
                    )
    summary = {
        "path": str(path),
        "files": len(files),
        "rows": rows,
        "bytes_on_disk": size,
        "columns": {f.name: str(f.type) for f in schema} if schema else {},
    }
    if text_chars:
        summary["text_chars"] = _quantiles(pa.array(text_chars, type=pa.int64()))
    summary["numeric"] = {name: _quantiles(pa.chunked_array(cols)) for name, cols in numeric.items()}
    summary["categorical"] = {name: dict(c.most_common(20)) for name, c in categorical.items()}
    stats_file = Path(path) / STATS_FILE
    if Path(path).is_dir() and stats_file.is_file():
        summary["run"] = json.loads(stats_file.read_text())
    return summary


def _quantiles(values: pa.Array | pa.ChunkedArray) -> dict:
    values = pc.drop_null(values)
    if len(values) == 0:
        return {"count": 0}
    q = pc.quantile(values, q=[0.1, 0.5, 0.9]).to_pylist()
    return {
        "count": len(values),
        "mean": round(pc.mean(values).as_py(), 4),
        "p10": round(q[0], 4),
        "p50": round(q[1], 4),
        "p90": round(q[2], 4),
        "min": pc.min(values).as_py(),
        "max": pc.max(values).as_py(),
    }


def format_description(summary: dict) -> str:
    lines = [
        f"{summary['path']}: {summary['files']} files, {summary['rows']:,} rows, "
        f"{summary['bytes_on_disk'] / 1e6:,.1f} MB on disk",
        "columns: " + ", ".join(f"{k} ({v})" for k, v in summary["columns"].items()),
    ]
    if "text_chars" in summary:
        q = summary["text_chars"]
        lines.append(
            f"text chars: mean {q['mean']:,.0f}, p10 {q['p10']:,.0f}, p50 {q['p50']:,.0f}, "
            f"p90 {q['p90']:,.0f}, max {q['max']:,}"
        )
    if summary["numeric"]:
        lines += ["", f"{'column':<32}{'mean':>12}{'p10':>12}{'p50':>12}{'p90':>12}"]
        for name, q in summary["numeric"].items():
            if q.get("count"):
                lines.append(
                    f"{name:<32}{q['mean']:>12.4g}{q['p10']:>12.4g}{q['p50']:>12.4g}{q['p90']:>12.4g}"
                )
    for name, counts in summary["categorical"].items():
        lines += ["", f"{name}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())]
    if "run" in summary:
        lines += ["", "last run (stats.json):", format_stats(summary["run"])]
    return "\n".join(lines)
