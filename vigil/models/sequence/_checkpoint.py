"""Sequence model checkpoints on disk, without pickle.

A checkpoint is a folder::

    sequence.json          format, the resolved config, training state and record, metrics,
                           library versions, and a SHA-256 per file
    model.safetensors      encoder (``encoder.*``) and pre-training heads (``heads.*``); its
                           metadata carries the config too
    optimizer.safetensors  AdamW moments, to resume (``--resume``)
    encoder.onnx           the encoder for ONNX Runtime (written by ``export_onnx``)
    pca.safetensors        principal components of the embeddings (optional)

Loading reads JSON and safetensors only; nothing executes code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vigil._errors import ModelError
from vigil.models.sequence._config import SequenceConfig
from vigil.models.sequence._files import (
    CHECKPOINT_FORMAT,
    DOC,
    ONNX,
    OPTIMIZER,
    PCA,
    WEIGHTS,
    checked_file,
    library_versions,
    read_doc,
    sha256,
    write_doc,
)
from vigil.models.sequence._model import PretrainHeads, SequenceEncoder


def save_checkpoint(folder: str | Path, encoder: SequenceEncoder, heads: PretrainHeads | None,
                    optimizer: torch.optim.Optimizer | None, doc: dict[str, Any]) -> Path:
    """Write weights (and optimizer moments) as safetensors, then ``sequence.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_json = json.dumps(encoder.config.to_dict())
    tensors = {f"encoder.{k}": v.detach().cpu().contiguous()
               for k, v in encoder.state_dict().items()}
    if heads is not None:
        tensors.update({f"heads.{k}": v.detach().cpu().contiguous()
                        for k, v in heads.state_dict().items()})
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": "vigil-sequence",
                                                        "config": config_json})
    files = dict(doc.get("files") or {})
    for stale in (ONNX, PCA):  # made from the previous weights
        (folder / stale).unlink(missing_ok=True)
        files = {k: v for k, v in files.items() if v.get("path") != stale}
    files["weights"] = {"path": WEIGHTS, "sha256": sha256(folder / WEIGHTS)}
    if optimizer is not None:
        state, groups = _flatten_optimizer(optimizer)
        save_file(state, str(folder / OPTIMIZER))
        files["optimizer"] = {"path": OPTIMIZER, "sha256": sha256(folder / OPTIMIZER),
                              "param_groups": groups}
    doc = {**doc, "format": CHECKPOINT_FORMAT, "kind": "vigil-sequence-encoder",
           "config": encoder.config.to_dict(), "files": files,
           "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
           "libraries": library_versions()}
    write_doc(folder, doc)
    return folder


def load_checkpoint(folder: str | Path, *, heads: bool = False
                    ) -> tuple[SequenceEncoder, PretrainHeads | None, dict[str, Any]]:
    """The encoder (and pre-training heads) of a checkpoint, and its ``sequence.json``."""
    folder = Path(folder)
    doc = read_doc(folder)
    config = SequenceConfig.from_dict(doc["config"])
    tensors = load_file(str(checked_file(folder, doc, "weights")))
    encoder = SequenceEncoder(config)
    _load_part(encoder, tensors, "encoder.", folder)
    head_module = None
    if heads:
        head_module = PretrainHeads(config)
        _load_part(head_module, tensors, "heads.", folder)
    return encoder, head_module, doc


def _load_part(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str,
               folder: Path) -> None:
    part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(part)
    except RuntimeError as exc:
        raise ModelError(f"{folder}: weights do not fit the config in {DOC} ({exc})") from exc


def load_optimizer(folder: Path, doc: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """Restore AdamW's moments and step counts (saved by :func:`save_checkpoint`)."""
    path = checked_file(folder, doc, "optimizer")
    flat = load_file(str(path))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    groups = doc["files"]["optimizer"]["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _flatten_optimizer(optimizer: torch.optim.Optimizer
                       ) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    sd = optimizer.state_dict()
    flat = {f"state.{i}.{name}": torch.as_tensor(v).detach().cpu().contiguous()
            for i, s in sd["state"].items() for name, v in s.items()}
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in sd["param_groups"]]
    return flat, groups
