"""The sequence model: a small causal transformer over each entity's payments.

Token arrays, the config, principal components and the ONNX Runtime encoder need numpy (and
onnxruntime) only: the scoring path imports them without torch. Pre-training, fine-tuning,
embedding in batch and the ONNX export need PyTorch (``pip install 'vigil[deep]'``); their
names load it on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from vigil._errors import ModelError
from vigil.models.sequence._config import SequenceConfig
from vigil.models.sequence._files import read_doc
from vigil.models.sequence._pca import EmbeddingPCA
from vigil.models.sequence._runtime import SequenceRuntime
from vigil.models.sequence._tokens import (
    FIELD_COLUMNS,
    Tokens,
    chunk_index,
    gather,
    resolve_fields,
    stable_bucket,
    tokenize,
    window_inputs,
    window_rows,
)

_NEEDS_TORCH = {
    "PretrainHeads": "_model",
    "SequenceClassifier": "_model",
    "SequenceEncoder": "_model",
    "load_checkpoint": "_checkpoint",
    "save_checkpoint": "_checkpoint",
    "embed_payments": "_train",
    "embed_tokens": "_train",
    "finetune": "_train",
    "fit_checkpoint_pca": "_train",
    "load_encoder": "_train",
    "predict_logits": "_train",
    "pretrain": "_train",
    "torch_device": "_train",
    "export_checkpoint_onnx": "_onnx",
    "export_onnx": "_onnx",
}

__all__ = [
    "FIELD_COLUMNS",
    "EmbeddingPCA",
    "PretrainHeads",
    "SequenceClassifier",
    "SequenceConfig",
    "SequenceEncoder",
    "SequenceRuntime",
    "Tokens",
    "chunk_index",
    "embed_payments",
    "embed_tokens",
    "export_checkpoint_onnx",
    "export_onnx",
    "finetune",
    "fit_checkpoint_pca",
    "gather",
    "load_checkpoint",
    "load_encoder",
    "predict_logits",
    "pretrain",
    "read_doc",
    "resolve_fields",
    "save_checkpoint",
    "stable_bucket",
    "tokenize",
    "torch_device",
    "window_inputs",
    "window_rows",
]


def __getattr__(name: str) -> Any:
    module = _NEEDS_TORCH.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ModelError("the sequence model needs PyTorch: pip install 'vigil[deep]'") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
