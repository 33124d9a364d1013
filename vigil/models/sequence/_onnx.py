"""Exporting the encoder to ONNX, for ONNX Runtime in the scoring path (no torch there)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from vigil.models.sequence._files import ONNX, record_file
from vigil.models.sequence._model import SequenceEncoder
from vigil.models.sequence._tokens import NUMERIC, resolved_fields

OPSET = 17
INPUTS = ("cat", "num", "order")


def export_onnx(encoder: SequenceEncoder, path: str | Path) -> Path:
    """Write ``encoder`` as an ONNX graph: ``cat`` (B, T, F) int64, ``num`` (B, T, 2)
    float32, ``order`` (B, T) int64 → ``embedding`` (B, T, C); B and T are dynamic.

    Uses PyTorch's TorchScript-based exporter (``dynamo=False``), which needs neither
    onnxscript nor a network: the graph is plain tensor code without control flow.
    """
    path = Path(path)
    config = encoder.config
    T, F = config.seq_len, len(resolved_fields(config))
    dummy = (torch.full((1, T, F), 2, dtype=torch.int64),
             torch.zeros((1, T, len(NUMERIC)), dtype=torch.float32),
             torch.arange(T, dtype=torch.int64)[None])
    encoder = encoder.to("cpu").eval()
    axes = {"batch": 0, "positions": 1}
    dynamic = {name: {i: n for n, i in axes.items()} for name in (*INPUTS, "embedding")}
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of torch.export, which needs
        # onnxscript; for this graph both give the same operators
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(encoder, dummy, str(path), dynamo=False, input_names=list(INPUTS),
                          output_names=["embedding"], dynamic_axes=dynamic,
                          opset_version=OPSET)
    return path


def export_checkpoint_onnx(folder: str | Path) -> Path:
    """Export a checkpoint's encoder to ``FOLDER/encoder.onnx`` and record it."""
    from vigil.models.sequence._checkpoint import load_checkpoint

    folder = Path(folder)
    encoder, _, _ = load_checkpoint(folder)
    path = export_onnx(encoder, folder / ONNX)
    record_file(folder, "onnx", ONNX, opset=OPSET)
    return path
