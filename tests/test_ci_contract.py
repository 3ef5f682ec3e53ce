"""CI fails loudly: `.ci/run` lints before testing, and no test skips when a reference library of
the dev extras is missing (the comparison against it is the test)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_linter_and_the_suite():
    steps = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert steps.index("make lint") < steps.index("make test")


def test_reference_libraries_are_imported_not_skipped():
    block = re.search(r"^dev = \[(.*?)\]$", (REPO / "pyproject.toml").read_text(), re.S | re.M)
    dev = {re.split(r"[<>=\[ ]", req)[0].replace("-", "_") for req in re.findall(r'"([^"]+)"', block[1])}
    assert {"transformers", "datasketch"} <= dev
    skipped = {
        f"{path.name}: {module}"
        for path in (REPO / "tests").glob("*.py")
        for module in re.findall(r"importorskip\(\s*['\"]([\w.]+)['\"]", path.read_text())
        if module.split(".")[0] in dev
    }
    assert not skipped, f"dev-extra references must be imported, not skipped: {sorted(skipped)}"
