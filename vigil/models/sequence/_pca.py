"""Principal components of embeddings (numpy), saved as safetensors: a few dense columns for
the gradient-boosted model instead of the whole embedding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vigil._errors import ModelError


class EmbeddingPCA:
    """The first ``n_components`` principal components of embeddings.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 4)) @ np.diag([5.0, 2.0, 0.5, 0.1])
    >>> pca = EmbeddingPCA(2).fit(X)
    >>> pca.transform(X).shape, [round(float(v), 2) for v in pca.explained_variance_ratio_]
    ((500, 2), [0.87, 0.12])
    """

    def __init__(self, n_components: int = 8, *, max_rows: int = 200_000, seed: int = 0) -> None:
        self.n_components = n_components
        self.max_rows = max_rows
        self.seed = seed

    def fit(self, X: np.ndarray) -> EmbeddingPCA:
        X = np.asarray(X, dtype=np.float64)
        X = X[np.isfinite(X).all(axis=1)]
        if X.ndim != 2 or len(X) < 2:
            raise ModelError("PCA needs at least two embeddings without missing values")
        if not 1 <= self.n_components <= X.shape[1]:
            raise ModelError(f"n_components={self.n_components}: between 1 and the embedding "
                             f"width {X.shape[1]}")
        if len(X) > self.max_rows:
            rng = np.random.default_rng(self.seed)
            X = X[rng.choice(len(X), self.max_rows, replace=False)]
        self.mean_ = X.mean(axis=0)
        _, s, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        # a fixed sign per component, so refits give the same columns
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
        vt *= signs[:, None]
        variance = s**2 / (len(X) - 1)
        self.components_ = vt[: self.n_components]
        self.explained_variance_ratio_ = (variance / variance.sum())[: self.n_components]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(N, n_components) float32; rows with a missing embedding stay NaN."""
        if not hasattr(self, "components_"):
            raise ModelError("the PCA is not fitted yet; call fit() or load() it")
        X = np.asarray(X, dtype=np.float64)
        return ((X - self.mean_) @ self.components_.T).astype(np.float32)

    def names(self, prefix: str = "seq_pc") -> list[str]:
        return [f"{prefix}{i + 1}" for i in range(self.n_components)]

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(path)
        save_file({"mean": self.mean_.astype(np.float64),
                   "components": self.components_.astype(np.float64),
                   "explained_variance_ratio": self.explained_variance_ratio_},
                  str(path), metadata={"params": json.dumps(
                      {"n_components": self.n_components, "max_rows": self.max_rows,
                       "seed": self.seed})})
        return path

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingPCA:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: PCA file is missing")
        with safe_open(str(path), framework="numpy") as fh:
            params = json.loads((fh.metadata() or {}).get("params", "{}"))
            pca = cls(**params)
            pca.mean_ = fh.get_tensor("mean")
            pca.components_ = fh.get_tensor("components")
            pca.explained_variance_ratio_ = fh.get_tensor("explained_variance_ratio")
        pca.n_components = len(pca.components_)
        return pca
