"""LLM annotation as a step: a causal LM's 0-5 score of each document through a prompt.

Llama 3 (Dubey et al. 2024, §3.1.1) labels documents with Llama 2 and trains its quality
classifiers on those labels; FineWeb-Edu labels 450k documents with Llama-3-70B-Instruct's 0-5
educational score. This step writes the score (data_pipeline/annotate/scorer.py) into `column`,
the argmax digit into `<column>_argmax`, and drops nothing: a classifier trained on a scored
sample (`train-classifier --threshold`) is what filters a corpus, at a fraction of the cost.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_pipeline.annotate.prompt import load_template
from data_pipeline.config import EMBED_DTYPES
from data_pipeline.document import Doc
from data_pipeline.filters.base import Step, check_column_name, param, register


@register
@dataclasses.dataclass
class LLMScore(Step):
    """Annotate a causal LM's expected 0-5 score of each document under a prompt template."""

    name = "llm_score"
    drop: bool = param(False, "unused: the step only annotates (filter with a classifier trained on it)")
    model: str | None = param(None, "Hugging Face causal-LM directory with its tokenizer (required)")
    prompt: str | None = param(
        None, "template file with one {document} placeholder (None: the built-in 0-5 educational rubric)"
    )
    column: str = param("llm_score", "annotation column for the score; <column>_argmax gets the digit")
    # Ours: the informative start of a web page, at a bounded cost per document (cost ~ tokens).
    max_doc_tokens: int = param(
        1024, "tokens of each document put in the prompt (the rest is cut)", bounds="[1, inf)"
    )
    batch_tokens: int | None = param(
        None, "padded tokens per forward pass (None: 2048 on CPU, 32768 on CUDA)", bounds="[1, inf)"
    )
    device: str | None = param(None, "torch device (None: cuda when present, else cpu)")
    dtype: str | None = param(
        None, "model precision (None: bfloat16 on CUDA, float32 on CPU)", choices=EMBED_DTYPES
    )
    threads: int | None = param(
        None, "torch CPU threads of each worker (None: torch's default, every core)", bounds="[1, inf)"
    )

    def __post_init__(self) -> None:
        if self.model is not None and (not isinstance(self.model, (str, Path)) or not str(self.model)):
            raise ValueError(f"model={self.model!r}: expected a model directory")
        if self.drop:
            raise ValueError("drop=True: llm_score only annotates; filter with a classifier trained on it")
        check_column_name("column", self.column)
        self._template = load_template(self.prompt)  # a template without {document} fails here
        self._annotator: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Steps are pickled to worker processes; each worker loads its own model.
        state = self.__dict__.copy()
        state["_annotator"] = None
        return state

    def label(self) -> str:
        return self.name if self.column == "llm_score" else f"{self.name}[{self.column}]"

    def columns(self) -> dict[str, pa.DataType]:
        return {self.column: pa.float32(), f"{self.column}_argmax": pa.int8()}

    def setup(self) -> None:
        if self._annotator is not None:
            return
        if self.model is None:
            raise ValueError("llm_score: parameter 'model' is required (a causal-LM directory)")
        from data_pipeline.annotate.scorer import load_annotator

        self._annotator = load_annotator(
            self.model,
            self._template,
            self.max_doc_tokens,
            threads=self.threads,
            device=self.device,
            dtype=self.dtype,
        )

    def process(self, docs: list[Doc]) -> None:
        kept = [doc for doc in docs if doc.drop_reason is None]
        if not kept:
            return
        self.setup()
        from data_pipeline.annotate.scorer import expected_scores, score_probabilities

        probabilities = score_probabilities(
            self._annotator, [doc.text for doc in kept], batch_tokens=self.batch_tokens
        )
        scores, digits = expected_scores(probabilities)
        for doc, score, digit in zip(kept, scores.tolist(), digits.tolist(), strict=True):
            doc.annotations[self.column] = score
            doc.annotations[f"{self.column}_argmax"] = digit
