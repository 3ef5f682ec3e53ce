"""What a pipeline step is: a configurable object that annotates and drops documents of a batch.

A step is a dataclass whose fields are its parameters, declared with `config.param`: a `help` shown
by `andes-data steps` and, for numbers, the interval they must lie in, checked by `build_step`. It
declares the annotation columns it adds, so every output shard has the same schema whichever
documents it held. The executor calls `setup()` once per
worker (load models, compile patterns) and `process(docs)` per batch; a per-document filter only
implements `apply(doc)`, returning a drop reason or None.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pyarrow as pa

from data_pipeline.config import check_value, param
from data_pipeline.document import Doc

STEPS: dict[str, type[Step]] = {}
# Columns the executor owns: a step writing one would overwrite the documents themselves.
RESERVED_COLUMNS = frozenset({"text", "id", "url", "drop_reason"})
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

S = TypeVar("S", bound="type[Step]")


def register(cls: S) -> S:
    """Class decorator: make a step available to recipes and the CLI under `cls.name`."""
    if cls.name in STEPS and STEPS[cls.name] is not cls:
        raise ValueError(f"step name '{cls.name}' registered twice ({STEPS[cls.name]} and {cls})")
    STEPS[cls.name] = cls
    return cls


@dataclasses.dataclass
class Step:
    """Base of every step. Subclasses are dataclasses with a unique `name`."""

    name: ClassVar[str] = ""
    drop: bool = param(
        True,
        "drop documents that fail; False keeps them all and only annotates (text rewriting still applies)",
    )

    def label(self) -> str:
        """Name of this instance in stats; steps that may run twice in a stage make it unique."""
        return self.name

    def columns(self) -> dict[str, pa.DataType]:
        """Annotation columns this step adds, with their Arrow types."""
        return {}

    def setup(self) -> None:
        """Load models or build tables; called once in each worker before the first batch."""

    def begin_shard(self, shard: Path) -> None:
        """Called before a shard's first batch, for per-shard state (a dedup stage's removals)."""

    def batch_docs(self) -> int | None:
        """Documents this step wants to see together in one `process` call (e.g. a dedup bucket)."""
        return None

    def needs_fit(self) -> bool:
        """Whether `fit` must see the corpus before any batch is processed."""
        return False

    def fit(self, texts: Iterable[str]) -> None:
        """Corpus-level preparation (e.g. a reference distribution), run once before workers start."""

    def process(self, docs: list[Doc]) -> None:
        """Annotate the kept documents of a batch and mark the failing ones as dropped."""
        for doc in docs:
            if doc.drop_reason is None:
                reason = self.apply(doc)
                if reason is not None and self.drop:
                    doc.drop_reason = f"{self.name}:{reason}"

    def apply(self, doc: Doc) -> str | None:
        """Annotate one document; return why it fails (short snake_case reason) or None."""
        raise NotImplementedError(f"{type(self).__name__} implements neither apply() nor process()")


def check_number(
    name: str, value: Any, lo: float = 0.0, hi: float | None = None, *, integer: bool = False
) -> None:
    """Reject a threshold that is not a number in [lo, hi] (None is allowed: the check is off)."""
    if value is None:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"{name}={value!r}: expected {'an integer' if integer else 'a number'} or None")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name}={value!r}: must be in [{lo}, {'inf' if hi is None else hi}]")


def check_column_name(name: str, value: Any) -> None:
    """Refuse an annotation column name that is not an identifier or that names a document column."""
    if not isinstance(value, str) or not _COLUMN_NAME.fullmatch(value):
        raise ValueError(f"{name}={value!r}: expected a name of letters, digits and '_'")
    if value in RESERVED_COLUMNS:
        raise ValueError(f"{name}={value!r} would overwrite a document column")


def build_step(name: str, params: Mapping[str, Any] | None = None) -> Step:
    """Instantiate a registered step, rejecting unknown names and parameters with the valid ones."""
    import data_pipeline.filters  # noqa: F401  (registers the built-in steps)

    if name not in STEPS:
        raise ValueError(f"unknown step '{name}' (known: {', '.join(sorted(STEPS))})")
    cls = STEPS[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    params = dict(params or {})
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(f"step '{name}': unknown parameter(s) {unknown} (valid: {sorted(fields)})")
    try:
        for key, value in params.items():
            check_value(key, value, fields[key])  # type and declared range, before the step sees it
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise ValueError(f"step '{name}': {e}") from e


def describe_step(cls: type[Step]) -> list[tuple[str, str, str]]:
    """(parameter, default, help) rows of a step, for the CLI's step listing."""
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        rows.append((f.name, repr(default), f.metadata.get("help", "")))
    return rows


def annotation_table(
    steps: Iterable[Step], docs: list[Doc], keep: Callable[[Doc], bool]
) -> dict[str, pa.Array]:
    """Annotation columns (declared order, nulls where a step never saw the document) for chosen docs."""
    out: dict[str, pa.Array] = {}
    chosen = [d for d in docs if keep(d)]
    for step in steps:
        for column, dtype in step.columns().items():
            out[column] = pa.array([d.annotations.get(column) for d in chosen], type=dtype)
    return out


def run_steps(
    steps: Iterable[Step], texts: Iterable[str], urls: Iterable[str | None] | None = None
) -> list[Doc]:
    """Run steps over plain strings (tests, notebooks, benchmarks); returns every Doc with its outcome."""
    texts = list(texts)
    urls = list(urls) if urls is not None else [None] * len(texts)
    docs = [Doc(t, u, i) for i, (t, u) in enumerate(zip(texts, urls, strict=True))]
    for step in steps:
        if step.needs_fit():
            step.fit(texts)
        step.setup()
        step.process(docs)
    return docs
