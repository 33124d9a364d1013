"""The checkpoint record, ``sequence.json``: read and written without torch (the scoring
path reads it beside ``encoder.onnx``)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from vigil._errors import ModelError
from vigil.models._documents import read_record, sha256

CHECKPOINT_FORMAT = 1
DOC = "sequence.json"
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
ONNX = "encoder.onnx"
PCA = "pca.safetensors"


def library_versions() -> dict[str, str]:
    out = {}
    for name in ("vigil", "torch", "numpy", "safetensors", "onnxruntime", "onnx"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def read_doc(folder: str | Path) -> dict[str, Any]:
    """The checkpoint's ``sequence.json``, checked."""
    return read_record(Path(folder) / DOC, what="checkpoint", version=CHECKPOINT_FORMAT,
                       missing=f"not a sequence model checkpoint ({DOC} is missing; "
                               "`vigil pretrain DATA --out DIR` writes one)")


def write_doc(folder: Path, doc: dict[str, Any]) -> None:
    tmp = folder / (DOC + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(folder / DOC)


def checked_file(folder: Path, doc: dict[str, Any], key: str) -> Path:
    """The path of file ``key`` of a checkpoint, after checking its SHA-256."""
    entry = doc.get("files", {}).get(key)
    if not entry:
        raise ModelError(f"{folder}: the checkpoint has no {key} file")
    path = folder / entry["path"]
    if not path.is_file():
        raise ModelError(f"{path}: file is missing")
    if entry.get("sha256") not in (None, sha256(path)):
        raise ModelError(f"{path}: file does not match the checksum in {DOC}")
    return path


def record_file(folder: Path, key: str, name: str, **extra: Any) -> None:
    """Add file ``name`` (already written in ``folder``) to ``sequence.json``."""
    doc = read_doc(folder)
    doc.setdefault("files", {})[key] = {"path": name, "sha256": sha256(folder / name), **extra}
    write_doc(folder, doc)
