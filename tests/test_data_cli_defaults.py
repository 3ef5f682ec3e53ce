"""Each option default and range is declared once, in a config dataclass (data_pipeline/config.py, the
steps' dataclasses); `andes-data` options and the Python API must read them from there.

`CLI` maps every `andes-data` option that sets a configuration value to its field; the tests check
each option's default (and, for a number with an interval, which values its type accepts) against
the field, so a literal default written into a command drifts from the recipes and the API only
until this test runs. An option with a literal default of its own must be listed in `CLI` or in
`NOT_CONFIG`, so a new one cannot slip past.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from data_pipeline.annotate.stage import run_annotate
from data_pipeline.classifier.embedding_training import train_embedding_classifier
from data_pipeline.classifier.examples import labelled_examples
from data_pipeline.classifier.scoring import threshold_for_top_fraction
from data_pipeline.classifier.stage import run_classify
from data_pipeline.classifier.training import train_classifier
from data_pipeline.cli import build_parser
from data_pipeline.config import (
    ClassifyOptions,
    DedupStage,
    EmbeddingClassifierOptions,
    FilterStage,
    PackStage,
    Recipe,
    TrainClassifierOptions,
    TrainTokenizerStage,
    check_value,
    config_field,
    field_default,
    is_number,
)
from data_pipeline.dedup.minhash import MinHashConfig
from data_pipeline.dedup.run import run_dedup
from data_pipeline.dedup.tasks import DedupConfig
from data_pipeline.filters.llm import LLMScore
from data_pipeline.filters.quality import QualityClassifier
from data_pipeline.pack import pack, pack_chunks
from data_pipeline.semantic.config import SemanticConfig
from data_pipeline.stages import run_filter


@dataclasses.dataclass(frozen=True)
class Field:
    """The config field an option sets; `negate` for a `--no-X` flag of a field that defaults to True;
    `unset` for an option that defaults to None because another option picks the field (--kind)."""

    cls: type
    name: str
    negate: bool = False
    unset: bool = False

    def default(self) -> Any:
        value = field_default(self.cls, self.name)
        return None if self.unset else (not value) if self.negate else value


def _shard_stage(cls: type) -> dict[str, Field]:
    """Options of the commands that rewrite shards (filter, dedup, classify)."""
    names = ("on_bad_input", "batch_rows", "rows_per_file", "write_dropped")
    return {"workers": Field(Recipe, "workers"), **{n: Field(cls, n) for n in names}}


def _same_names(cls: type, *names: str) -> dict[str, Field]:
    return {name: Field(cls, name) for name in names}


# command -> option dest -> the field it sets (or a function of fields).
CLI: dict[str, dict[str, Field | Callable[[], Any]]] = {
    "train-tokenizer": _same_names(TrainTokenizerStage, "vocab_size", "max_chars"),
    "pack": {
        **_same_names(
            PackStage, "strategy", "seq_len", "tokenizer", "val_fraction", "rows_per_shard", "seed"
        ),
        "no_shuffle": Field(PackStage, "shuffle", negate=True),
    },
    "filter": _shard_stage(FilterStage),
    "dedup": {
        **_shard_stage(DedupStage),
        **_same_names(DedupStage, "method", "annotate", "bands", "rows", "seed", "verify_threshold"),
        **_same_names(DedupStage, "url_column", "timestamp_column", "partitions", "rows_per_partition"),
        **_same_names(DedupStage, "cc_partitions"),
        **_same_names(DedupStage, "encoder", "max_tokens", "embed_dtype", "eps", "eps_sweep", "clusters"),
        **_same_names(DedupStage, "docs_per_cluster", "keep", "kmeans_sample", "kmeans_iterations"),
        **_same_names(DedupStage, "kmeans_backend", "rounds"),
        "ngram": Field(DedupStage, "ngram_size"),
        "no_normalize": Field(DedupStage, "normalize", negate=True),
        "num_perm": lambda: DedupStage.bands * DedupStage.rows,  # --threshold's budget: the default's
    },
    "train-classifier": {
        **_same_names(TrainClassifierOptions, "kind", "label_column", "positive_label", "threshold", "seed"),
        # fastText's or the embedding head's field, by --kind (same intervals in both).
        "epochs": Field(TrainClassifierOptions, "epochs", unset=True),
        "lr": Field(TrainClassifierOptions, "lr", unset=True),
        **_same_names(EmbeddingClassifierOptions, "head", "hidden", "weight_decay", "batch_size"),
        **_same_names(EmbeddingClassifierOptions, "encoder", "max_tokens"),
        **_same_names(TrainClassifierOptions, "word_ngrams", "dim", "min_count", "bucket", "valid_fraction"),
        **_same_names(TrainClassifierOptions, "max_docs_per_class", "threads"),
        "no_balance": Field(TrainClassifierOptions, "balance", negate=True),
    },
    "classify": {
        **_shard_stage(FilterStage),
        **_same_names(QualityClassifier, "column", "positive_label", "threshold", "embeddings"),
        **_same_names(ClassifyOptions, "top_fraction", "sample", "seed"),
    },
    "annotate": {
        **_shard_stage(FilterStage),
        **_same_names(LLMScore, "prompt", "column", "max_doc_tokens", "batch_tokens", "device", "dtype"),
        **_same_names(LLMScore, "threads"),
    },
    "run": {},
    "stats": {},
    "steps": {},
    "sample-path": {},
}

# Options with a literal default that is no configuration value, and why.
NOT_CONFIG: dict[str, str] = {
    "executor": "where a command runs, not what it computes",
    "rank": "units[0::1]: the whole stage in one task",
    "world_size": "units[0::1]: the whole stage in one task",
    "max_rows": "stats: a reading budget no recipe or API default shares",
}

# Python functions and dataclasses, the config each takes defaults from, and the keywords it takes
# (each named as the field).
API: list[tuple[Callable[..., Any], type, tuple[str, ...]]] = [
    (
        train_classifier,
        TrainClassifierOptions,
        ("label_column", "positive_label", "threshold", "epochs", "lr", "word_ngrams", "dim", "min_count")
        + ("bucket", "valid_fraction", "seed", "balance", "max_docs_per_class", "threads"),
    ),
    (pack, PackStage, ("strategy", "shuffle", "val_fraction", "rows_per_shard", "seed")),
    (pack_chunks, PackStage, ("val_fraction", "rows_per_shard", "seed")),
    (run_filter, FilterStage, ("batch_rows", "rows_per_file", "write_dropped", "on_bad_input")),
    (run_filter, Recipe, ("workers",)),
    (
        run_dedup,
        DedupStage,
        ("batch_rows", "rows_per_file", "write_dropped", "on_bad_input", "partitions", "rows_per_partition")
        + ("cc_partitions",),
    ),
    (run_dedup, Recipe, ("workers",)),
    (MinHashConfig, DedupStage, ("ngram_size", "bands", "rows", "seed")),
    (
        SemanticConfig,
        DedupStage,
        ("max_tokens", "embed_dtype", "eps", "clusters", "docs_per_cluster", "keep", "seed")
        + ("kmeans_sample", "kmeans_iterations", "kmeans_backend", "rounds"),
    ),
    (
        DedupConfig,
        DedupStage,
        ("method", "normalize", "url_column", "timestamp_column", "verify_threshold", "annotate"),
    ),
    (
        train_embedding_classifier,
        EmbeddingClassifierOptions,
        ("head", "hidden", "epochs", "lr", "weight_decay", "batch_size", "encoder", "max_tokens"),
    ),
    (
        train_embedding_classifier,
        TrainClassifierOptions,
        (
            "label_column",
            "positive_label",
            "threshold",
            "valid_fraction",
            "seed",
            "balance",
            "max_docs_per_class",
            "threads",
        ),
    ),
    (
        labelled_examples,
        TrainClassifierOptions,
        ("label_column", "positive_label", "threshold", "valid_fraction", "seed", "balance")
        + ("max_docs_per_class",),
    ),
    (threshold_for_top_fraction, ClassifyOptions, ("sample", "seed")),
    (threshold_for_top_fraction, QualityClassifier, ("positive_label",)),
    (run_classify, ClassifyOptions, ("top_fraction", "sample", "seed")),
    (run_classify, QualityClassifier, ("column", "positive_label", "threshold", "embeddings")),
    (
        run_annotate,
        LLMScore,
        ("prompt", "column", "max_doc_tokens", "batch_tokens", "device", "dtype", "threads"),
    ),
]

# Strings each numeric option's type is fed, to compare what it accepts with the field's interval.
PROBES = ["-1", "0", "0.5", "1", "2", "1e9", "4294967295", "4294967296", "inf", "-inf", "nan", "x"]


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options(command: str) -> dict[str, argparse.Action]:
    actions = _commands()[command]._actions
    return {a.dest: a for a in actions if a.dest != "help"}


def _field_accepts(field: dataclasses.Field, text: str) -> bool:
    """Whether a recipe value written `text` passes the field's declaration (type and interval)."""
    kinds = str(field.type)
    try:
        value = int(text) if "int" in kinds else float(text)
    except ValueError:
        return False
    try:
        check_value(field.name, value, field)
    except ValueError:
        return False
    return True


def _option_accepts(action: argparse.Action, text: str) -> bool:
    try:
        action.type(text)
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return False
    return True


def test_every_command_is_mapped():
    assert set(_commands()) == set(CLI)


CASES = [(command, dest) for command, options in CLI.items() for dest in options]


@pytest.mark.parametrize(("command", "dest"), CASES, ids=[f"{c}--{d}" for c, d in CASES])
def test_option_default_and_range_come_from_the_config_field(command, dest):
    options = _options(command)
    assert dest in options, f"`andes-data {command}` has no option for {dest} (rename CLI here?)"
    action, source = options[dest], CLI[command][dest]
    expected = source.default() if isinstance(source, Field) else source()
    assert action.default == expected, f"{command} --{dest}: default {action.default!r}, config {expected!r}"
    if not isinstance(source, Field):
        return
    field = config_field(source.cls, source.name)
    choices = field.metadata.get("choices")
    if choices is not None:
        assert list(action.choices) == list(choices), f"{command} --{dest}: choices differ from the field's"
    if is_number(field) and field.metadata.get("bounds") is not None:
        verdicts = {t: (_option_accepts(action, t), _field_accepts(field, t)) for t in PROBES}
        differ = {t: v for t, v in verdicts.items() if v[0] != v[1]}
        assert not differ, f"{command} --{dest}: (option, field) accept differently: {differ}"


@pytest.mark.parametrize("command", sorted(CLI))
def test_every_literal_default_is_a_config_field_or_explained(command):
    """A new option with a literal default must name its field in CLI (or say why it has none)."""
    loose = []
    for dest, action in _options(command).items():
        if dest in CLI[command] or dest in NOT_CONFIG or not action.option_strings:
            continue
        if action.default not in (None, False, []):
            loose.append(f"--{dest}={action.default!r}")
    assert not loose, f"`andes-data {command}`: literal defaults not tied to a config field: {loose}"


API_CASES = [(func, cls, name) for func, cls, names in API for name in names]


@pytest.mark.parametrize(
    ("func", "cls", "name"),
    API_CASES,
    ids=[f"{func.__name__}.{name}={cls.__name__}" for func, cls, name in API_CASES],
)
def test_api_default_comes_from_the_config_field(func, cls, name):
    parameters = inspect.signature(func).parameters
    assert name in parameters, f"{func.__name__} has no keyword {name} (rename API here?)"
    default = parameters[name].default
    assert default == field_default(cls, name), f"{func.__name__}({name}={default!r}) vs {cls.__name__}"
