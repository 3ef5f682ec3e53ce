"""Training an embedding classifier: embed the shared labelled examples once, fit a head, record.

The examples, balancing and held-out split are the fastText trainer's (examples.py), so both kinds
of a classifier are measured on the same held-out documents. The encoder stays frozen; only the head
is trained, with AdamW on the CPU from a seeded initialisation and a seeded shuffle, so a seed gives
the same file byte for byte (given the same embeddings: the encoder on another device or with
another thread count may round its last bits differently).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_pipeline.classifier.examples import labelled_examples
from data_pipeline.classifier.head import Head, probabilities, save_classifier
from data_pipeline.classifier.metrics import binary_metrics
from data_pipeline.classifier.training import sidecar_path
from data_pipeline.config import EmbeddingClassifierOptions, TrainClassifierOptions, check_fields
from data_pipeline.io import atomic_write_text

_HEAD = EmbeddingClassifierOptions
_DATA = TrainClassifierOptions


def fit_head(
    x: np.ndarray,
    y: np.ndarray,
    *,
    head: str = _HEAD.head,
    hidden: int = _HEAD.hidden,
    epochs: int = _HEAD.epochs,
    lr: float = _HEAD.lr,
    weight_decay: float = _HEAD.weight_decay,
    batch_size: int = _HEAD.batch_size,
    seed: int = _DATA.seed,
) -> Head:
    """A head fitted to embeddings `x` and labels `y` (True: positive) by minibatch AdamW on BCE loss."""
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(seed)
        model = Head(head, x.shape[1], hidden)
    order_rng = torch.Generator().manual_seed(seed)
    features = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    targets = torch.from_numpy(np.asarray(y, dtype=np.float32))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=order_rng)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(features[rows]), targets[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def _embed(encoder: Any, examples: list[tuple[str, bool]]) -> tuple[np.ndarray, np.ndarray]:
    from data_pipeline.semantic.encoder import encode

    texts = [text for text, _ in examples]
    vectors = encode(encoder, texts) if texts else np.zeros((0, encoder.dim), dtype=np.float32)
    return vectors, np.array([y for _, y in examples], dtype=bool)


def train_embedding_classifier(
    positive: Sequence[Path | str] | None = None,
    negative: Sequence[Path | str] | None = None,
    *,
    labelled: Sequence[Path | str] | None = None,
    label_column: str = _DATA.label_column,
    positive_label: Any = _DATA.positive_label,
    threshold: float | None = _DATA.threshold,
    output: Path | str,
    head: str = _HEAD.head,
    hidden: int = _HEAD.hidden,
    epochs: int = _HEAD.epochs,
    lr: float = _HEAD.lr,
    weight_decay: float = _HEAD.weight_decay,
    batch_size: int = _HEAD.batch_size,
    encoder: Path | str | None = _HEAD.encoder,
    max_tokens: int | None = _HEAD.max_tokens,
    valid_fraction: float = _DATA.valid_fraction,
    seed: int = _DATA.seed,
    balance: bool = _DATA.balance,
    max_docs_per_class: int | None = _DATA.max_docs_per_class,
    threads: int | None = _DATA.threads,
) -> dict[str, Any]:
    """Train a binary `hq`-vs-`cc` head on an encoder's embeddings; save it with a `<model>.json` record.

    Inputs as for `train_classifier`. `encoder` is a directory (None: the shipped all-MiniLM-L6-v2)
    and is recorded by its absolute path and weights' sha256, which scoring checks. `threads` sets
    torch's CPU threads for the process.
    """
    from data_pipeline.semantic.encoder import encoder_metadata, load_encoder

    options = {"head": head, "hidden": hidden, "epochs": epochs, "lr": lr, "weight_decay": weight_decay}
    options |= {"batch_size": batch_size}
    check_fields(_HEAD, {**options, "max_tokens": max_tokens}, "")
    limits = {"valid_fraction": valid_fraction, "max_docs_per_class": max_docs_per_class, "threads": threads}
    limits["threshold"] = threshold
    check_fields(_DATA, limits, "")
    path = Path(encoder).expanduser().resolve() if encoder is not None else None
    model_encoder = load_encoder(path, max_tokens=max_tokens, threads=threads)
    data = labelled_examples(
        positive,
        negative,
        labelled=labelled,
        label_column=label_column,
        positive_label=positive_label,
        threshold=threshold,
        valid_fraction=valid_fraction,
        seed=seed,
        balance=balance,
        max_docs_per_class=max_docs_per_class,
    )
    start = time.perf_counter()
    x_train, y_train = _embed(model_encoder, data.train)
    x_valid, y_valid = _embed(model_encoder, data.valid)
    embedded = time.perf_counter()
    fitted = fit_head(x_train, y_train, **options, seed=seed)
    seconds = time.perf_counter() - embedded
    metrics = binary_metrics(probabilities(fitted, x_valid), y_valid) if len(y_valid) else None
    described = encoder_metadata(model_encoder)
    output = save_classifier(output, fitted, described)
    record = {
        "model": output.name,
        "kind": "embedding",
        **data.record(),
        "hyperparameters": {**options, "hidden": fitted.hidden, "seed": seed, "optimizer": "AdamW"},
        "encoder": described,
        "valid_fraction": valid_fraction,
        "balance": balance,
        "max_docs_per_class": max_docs_per_class,
        "valid_metrics": metrics,
        "embed_seconds": round(embedded - start, 3),
        "train_seconds": round(seconds, 3),
    }
    atomic_write_text(sidecar_path(output), json.dumps(record, indent=1, default=str) + "\n")
    return record
