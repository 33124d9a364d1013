"""The encoder under ONNX Runtime: what the scoring path runs (numpy and onnxruntime only)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vigil._errors import ModelError
from vigil.models.sequence._config import SequenceConfig
from vigil.models.sequence._files import checked_file, read_doc
from vigil.models.sequence._pca import EmbeddingPCA
from vigil.models.sequence._token_cache import DEFAULT_SIZE, TokenCache
from vigil.models.sequence._tokens import (
    _string_columns,
    chunk_index,
    gather,
    tokenize,
    trim,
)


class SequenceRuntime:
    """A checkpoint's ``encoder.onnx`` in an ONNX Runtime session.

    ``embed_one(history, payment)`` embeds a payment from its entity's recent payments
    (dicts, see :func:`~vigil.models.sequence.window_inputs`); ``features_one`` gives the
    principal components the gradient-boosted model reads, when the checkpoint has them.
    ``threads=1`` suits a service that scores many payments in parallel.
    """

    def __init__(self, folder: str | Path, *, threads: int = 1,
                 token_cache: int = DEFAULT_SIZE) -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - depends on the install
            raise ModelError("running the sequence encoder needs ONNX Runtime: "
                             "pip install 'vigil[deep]'") from None
        folder = Path(folder)
        doc = read_doc(folder)
        self.folder = folder
        self.config = SequenceConfig.from_dict(doc["config"])
        path = checked_file(folder, doc, "onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.pca = (EmbeddingPCA.load(checked_file(folder, doc, "pca"))
                    if "pca" in doc.get("files", {}) else None)
        # the tokens of recent payments, reused by the next payment of the same entity
        self.tokens = TokenCache(self.config, token_cache)

    def embed(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Embeddings (B, T, C) of windows of token arrays (``cat``, ``num``, ``order``)."""
        return self.session.run(["embedding"], {k: inputs[k] for k in ("cat", "num", "order")}
                                )[0]

    def embed_one(self, history: Iterable[Mapping[str, Any]],
                  payment: Mapping[str, Any]) -> np.ndarray:
        """The embedding (C,) of ``payment`` given its entity's earlier payments."""
        return self.embed(self.tokens.inputs(history, payment))[0, -1]

    def features_one(self, history: Iterable[Mapping[str, Any]],
                     payment: Mapping[str, Any]) -> np.ndarray:
        """The model inputs from the sequence: the principal components (or the embedding)."""
        e = self.embed_one(history, payment)
        return e if self.pca is None else self.pca.transform(e[None])[0]

    @property
    def feature_names(self) -> list[str]:
        """Names of :meth:`features_one`'s values as model inputs (``seq_pc1``, ...)."""
        if self.pca is not None:
            return self.pca.names()
        return [f"seq_emb{i + 1}" for i in range(self.config.dim)]

    @property
    def columns(self) -> tuple[str, ...]:
        """The payment columns the token fields read, besides ``ts`` and ``payment_id``:
        what the online state keeps of each of the entity's last ``history_rows`` payments."""
        return ("amount", *_string_columns(self.config))

    def embed_payments(self, payments: pa.Table, *, batch_size: int = 256) -> np.ndarray:
        """Embeddings (n_rows, C) of every payment of a table, in its row order (NaN where
        the entity is missing): the batch path of ``vigil.models.sequence.embed_payments``,
        through ONNX Runtime instead of torch (the windows are cut the same way)."""
        tokens = tokenize(payments, self.config)
        index, own = chunk_index(tokens)
        per_token = np.full((len(tokens), self.config.dim), np.nan, dtype=np.float32)
        for b in range(0, len(index), batch_size):
            idx, o = trim(index[b:b + batch_size], own[b:b + batch_size])
            per_token[idx[o]] = self.embed(gather(tokens, idx))[o]
        out = np.full((payments.num_rows, self.config.dim), np.nan, dtype=np.float32)
        out[tokens.rows] = per_token
        return out

    def features_batch(self, payments: pa.Table, *, batch_size: int = 256) -> np.ndarray:
        """:meth:`features_one` for every payment of a table at once (n_rows, k), NaN where
        the entity is missing."""
        e = self.embed_payments(payments, batch_size=batch_size)
        return e if self.pca is None else self.pca.transform(e)
