"""An embedding classifier: a small head on an encoder's embeddings, and its file (safetensors, no pickle).

The file is one safetensors file: the head's float32 tensors, and in the header's metadata one
key, `andes.classifier`, holding JSON (keys sorted) of `format`, `kind`, `head` (`type`, `dim`,
`hidden`), `labels` (`positive`, `negative`) and `encoder` (`encoder_metadata` of the encoder
it was trained on). One key, because safetensors writes its metadata map in hash order: several
keys would make two identical trainings differ in their bytes. Loading reads tensors only
(`safetensors.torch.load_file`); nothing in the file is ever unpickled or executed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import torch
from safetensors.torch import load_file, save

from data_pipeline.classifier.scoring import NEGATIVE, POSITIVE, label_name
from data_pipeline.config import CLASSIFIER_HEADS
from data_pipeline.io import atomic_path

FORMAT = "andes-embedding-classifier-v1"
METADATA_KEY = "andes.classifier"


class Head(torch.nn.Module):
    """Logistic regression (`linear`) or one hidden ReLU layer (`mlp`); outputs the logit of `hq`."""

    def __init__(self, kind: str, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        if kind not in CLASSIFIER_HEADS:
            raise ValueError(f"head {kind!r}: expected one of {', '.join(CLASSIFIER_HEADS)}")
        if kind == "linear":
            self.layers = torch.nn.Sequential(torch.nn.Linear(dim, 1))
        else:
            if not hidden:
                raise ValueError("an mlp head needs hidden units")
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
            )
        self.kind, self.dim, self.hidden = kind, dim, hidden if kind == "mlp" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1)

    def describe(self) -> dict[str, Any]:
        return {"type": self.kind, "dim": self.dim, "hidden": self.hidden}


@dataclass(frozen=True)
class EmbeddingClassifier:
    """A loaded classifier: its head (eval mode, CPU) and the metadata of its file."""

    path: Path
    head: Head
    encoder: dict[str, Any]  # encoder_metadata of the encoder it was trained on
    labels: dict[str, str]


def classifier_metadata(head: Head, encoder: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "kind": "embedding",
        "head": head.describe(),
        "labels": {"positive": POSITIVE, "negative": NEGATIVE},
        "encoder": encoder,
    }


def save_classifier(path: Path | str, head: Head, encoder: dict[str, Any]) -> Path:
    """Write the head's tensors and metadata to `path` atomically."""
    tensors = {name: t.detach().to(torch.float32).contiguous() for name, t in head.state_dict().items()}
    metadata = {METADATA_KEY: json.dumps(classifier_metadata(head, encoder), sort_keys=True)}
    with atomic_path(path) as tmp:
        tmp.write_bytes(save(tensors, metadata=metadata))  # plain open(): the umask's permissions
    return Path(path)


def read_metadata(path: Path | str) -> dict[str, Any] | None:
    """The classifier metadata of a safetensors file; None if the file is not safetensors or has none."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (safetensors.SafetensorError, OSError):
        return None
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: unreadable '{METADATA_KEY}' metadata ({e})") from None
    found = meta.get("format") if isinstance(meta, dict) else meta
    if found != FORMAT:
        raise ValueError(f"{path}: classifier format {found!r}, expected {FORMAT!r}")
    return meta


def load_classifier(path: Path | str) -> EmbeddingClassifier:
    """Load an embedding classifier; errors name the file and what is wrong with it."""
    path = Path(path).expanduser()
    meta = read_metadata(path)
    if meta is None:
        raise ValueError(f"{path}: not an embedding classifier (no '{METADATA_KEY}' safetensors metadata)")
    try:
        spec = meta["head"]
        head = Head(spec["type"], int(spec["dim"]), spec.get("hidden"))
        head.load_state_dict(load_file(str(path)), strict=True)
        encoder, labels = dict(meta["encoder"]), dict(meta["labels"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: damaged embedding classifier ({detail})") from None
    return EmbeddingClassifier(path, head.eval(), encoder, labels)


def check_positive_label(classifier: EmbeddingClassifier, label: str) -> bool:
    """Whether `label` is the classifier's positive label (False: its negative); others are refused."""
    name = label_name(label)
    if name not in classifier.labels.values():
        found = sorted(classifier.labels.values())
        raise ValueError(f"label '{name}' is not one of the model's labels {found}")
    return name == classifier.labels["positive"]


def probabilities(head: Head, vectors: np.ndarray) -> np.ndarray:
    """P(positive) of each embedding row (float32), computed on the CPU in float32."""
    with torch.inference_mode():
        logits = head(torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)))
        return torch.sigmoid(logits).numpy().astype(np.float32, copy=False)
