"""The repository stands alone: no file cites a document or path outside it, and doc links resolve.

The interface contract lives in docs/contract.md and the torch/CPU traps in docs/torch_cpu_notes.md;
a user who clones the repository has nothing else, so every reference must point inside it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Written in pieces so that this file does not match its own patterns.
OUTSIDE = re.compile(
    "|".join(
        [
            r"\b" + "DESIGN" + r"\.md\b",  # case-sensitive: docs/design.md is ours
            r"\b" + "STYLE" + r"\.md\b",
            "TORCH_CPU" + "_NOTES",
            r"(?:\.\./)+" + r"shared\b",  # the team's shared directory beside the checkout
            "/work" + r"/(?:shared|main)\b",
        ]
    )
)
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def repo_files() -> list[Path]:
    """Tracked files plus new ones not yet committed (untracked, not ignored) that exist on disk."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    names = sorted({n for n in out.decode().split("\0") if n})
    return [REPO / n for n in names if (REPO / n).is_file()]


def read_text(path: Path) -> str | None:
    """The file as UTF-8 text, or None for binary files (Parquet shards, models)."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def outside_references(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line naming a document or path outside the repository."""
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]


def broken_links(md: Path, text: str, root: Path) -> list[str]:
    """Relative link targets of a Markdown file that do not exist inside `root`."""
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    targets = [m.group(1) for pattern in (LINK, REFERENCE_LINK) for m in pattern.finditer(prose)]
    broken = []
    for target in targets:
        if SCHEME.match(target) or target.startswith("#"):
            continue  # web links, mailto:, anchors within the page
        path = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (md.parent / path).resolve()
        if not resolved.is_relative_to(root.resolve()) or not resolved.exists():
            broken.append(target)
    return broken


def test_no_file_cites_documents_outside_the_repository():
    found = []
    for path in repo_files():
        text = read_text(path)
        if text is None:
            continue
        found += [f"{path.relative_to(REPO)}:{n}: {line}" for n, line in outside_references(text)]
    assert not found, "references to files outside the repository (cite docs/contract.md or " + (
        "docs/torch_cpu_notes.md instead):\n" + "\n".join(found)
    )


def test_markdown_links_resolve_inside_the_repository():
    found = []
    for path in repo_files():
        if path.suffix.lower() != ".md":
            continue
        text = read_text(path) or ""
        found += [f"{path.relative_to(REPO)}: ({target})" for target in broken_links(path, text, REPO)]
    assert not found, "Markdown links to missing files:\n" + "\n".join(found)


def test_checks_catch_what_they_are_for(tmp_path):
    """The detectors themselves: a shared-doc citation and a dangling or escaping link are found."""
    assert outside_references("see " + "DESIGN" + ".md, run directory")
    assert outside_references("`" + "../" + "shared/" + "TORCH_CPU" + "_NOTES.md`")
    assert not outside_references("see docs/design.md and docs/contract.md; data on /shared/raw")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "here.md").write_text("x")
    (tmp_path / "README.md").write_text("y")
    text = (
        "[ok](here.md) [up](../README.md) [web](https://example.com) [anchor](#x) [a](here.md#sec)\n"
        "[gone](missing.md) [escape](../../etc/passwd)\n"
        "`[not a link](nowhere.md)`\n```\n[in code](nowhere.md)\n```\n[ref]: gone-too.md\n"
    )
    assert broken_links(docs / "here.md", text, tmp_path) == ["missing.md", "../../etc/passwd", "gone-too.md"]
