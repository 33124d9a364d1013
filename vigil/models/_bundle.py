"""The model bundle: everything needed to score a payment, saved without pickle.

A bundle is a folder::

    bundle.json   format version, model version, feature set definition, model parameters,
                  calibrator, training window, data fingerprint, metrics, library versions
    model.ubj     the XGBoost trees (Universal Binary JSON)
    sequence/     optional: the sequence encoder whose principal components are model
                  inputs (sequence.json, encoder.onnx, pca.safetensors; SHA-256 of each in
                  bundle.json, the checkpoint's config too)

Loading reads JSON, XGBoost's own format, ONNX and safetensors only; nothing executes code.
"""

from __future__ import annotations

import json
import platform
import shutil
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vigil._errors import ModelError, SchemaError
from vigil.features import FeatureSet
from vigil.models._documents import read_record, sha256
from vigil.models._gbm import RiskModel
from vigil.models._risk_score import (
    ELEVATED_FROM,
    HIGHEST_FROM,
    OFFSET_DECADES,
    POINTS_PER_DECADE,
    risk_level,
    risk_score,
)

BUNDLE_FORMAT = 1
SEQUENCE_DIR = "sequence"
_LIBRARIES = ("vigil", "xgboost", "duckdb", "pyarrow", "numpy", "pandas", "scikit-learn")


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape a model's numbers."""
    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[name] = "absent"
    return out


def feature_matrix(features: pa.Table, names: list[str], source: str = "features") -> np.ndarray:
    """The float32 matrix of ``names`` from a feature table, in that column order."""
    missing = [n for n in names if n not in features.column_names]
    if missing:
        raise SchemaError(f"feature column(s) {', '.join(missing)} missing; the model needs "
                          f"{', '.join(names)}", source=source)
    if not names:
        return np.zeros((features.num_rows, 0), dtype=np.float32)
    return np.column_stack([
        np.asarray(features.column(n).cast(pa.float64()).to_numpy(zero_copy_only=False),
                   dtype=np.float64)
        for n in names
    ]).astype(np.float32)


class ModelBundle:
    """A trained model with its feature definitions and the record of how it was made."""

    def __init__(self, feature_set: FeatureSet, model: RiskModel, *,
                 training: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                 model_version: str | None = None, created_at: str | None = None,
                 sequence: Any = None, identity_graph: dict[str, Any] | None = None) -> None:
        self.feature_set = feature_set
        self.model = model
        # a vigil.models.sequence.SequenceRuntime whose features follow the feature set's
        self.sequence = sequence
        # the identity graph's features that follow those: {"features": [...], "max_links":
        # n, "kinds": [...]}, computed from the dataset (vigil.identity._graph); offline only
        self.identity_graph = dict(identity_graph) if identity_graph else None
        self.training = dict(training or {})
        self.metrics = dict(metrics or {})
        self.model_version = model_version
        self.created_at = created_at

    @property
    def feature_names(self) -> list[str]:
        return list(self.model.feature_names_)

    @property
    def sequence_names(self) -> list[str]:
        """The model inputs the sequence encoder gives (empty without one)."""
        return list(self.sequence.feature_names) if self.sequence is not None else []

    @property
    def graph_names(self) -> list[str]:
        """The model inputs the identity graph gives, after the sequence encoder's (empty
        without)."""
        return list(self.identity_graph["features"]) if self.identity_graph else []

    def predict_proba(self, features: pa.Table) -> np.ndarray:
        return self.model.predict_proba(feature_matrix(features, self.feature_names))

    def score(self, features: pa.Table) -> pa.Table:
        """``payment_id``, ``probability``, ``risk_score`` and ``risk_level`` per row."""
        p = self.predict_proba(features)
        s = risk_score(p)
        return pa.table({
            "payment_id": features.column("payment_id"),
            "probability": pa.array(p, pa.float64()),
            "risk_score": pa.array(s, pa.int64()),
            "risk_level": pa.array(risk_level(s).tolist(), pa.string()),
        })

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        model_meta = self.model.save(folder)
        digest = sha256(folder / model_meta["trees_file"])
        self.created_at = self.created_at or datetime.now(UTC).isoformat(timespec="seconds")
        if self.model_version is None:
            stamp = datetime.fromisoformat(self.created_at).strftime("%Y%m%d%H%M%S")
            self.model_version = f"{self.feature_set.name}-{stamp}-{digest[:8]}"
        doc = {
            "format": BUNDLE_FORMAT,
            "model_version": self.model_version,
            "created_at": self.created_at,
            "feature_set": self.feature_set.to_dict(),
            "model": {**model_meta, "sha256": digest},
            "risk_score": {"points_per_decade_of_odds": POINTS_PER_DECADE,
                           "offset_decades": OFFSET_DECADES, "elevated_from": ELEVATED_FROM,
                           "highest_from": HIGHEST_FROM},
            "training": self.training,
            "metrics": self.metrics,
            "libraries": library_versions(),
        }
        if self.sequence is not None:
            doc["sequence"] = _save_sequence(self.sequence, folder / SEQUENCE_DIR)
        if self.identity_graph:
            doc["identity_graph"] = self.identity_graph
        (folder / "bundle.json").write_text(json.dumps(doc, indent=2, default=_json_default)
                                            + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ModelBundle:
        folder = Path(folder)
        path = folder / "bundle.json"
        doc = read_record(path, what="bundle", version=BUNDLE_FORMAT,
                          missing="not a model bundle (bundle.json is missing)")
        trees = folder / doc["model"].get("trees_file", "model.ubj")
        if trees.is_file() and doc["model"].get("sha256") not in (None, sha256(trees)):
            raise ModelError(f"{trees}: file does not match the checksum in bundle.json")
        feature_set = FeatureSet.from_dict(doc["feature_set"], source=str(path))
        model = RiskModel.load(folder, doc["model"])
        sequence = _load_sequence(folder, doc["sequence"]) if doc.get("sequence") else None
        bundle = cls(feature_set, model, training=doc.get("training"),
                     metrics=doc.get("metrics"), model_version=doc.get("model_version"),
                     created_at=doc.get("created_at"), sequence=sequence,
                     identity_graph=doc.get("identity_graph"))
        if bundle.feature_names != [*feature_set.names, *bundle.sequence_names,
                                    *bundle.graph_names]:
            raise ModelError(f"{path}: the model's inputs are not the feature set's features "
                             "followed by the sequence encoder's and the identity graph's")
        return bundle


def _save_sequence(runtime: Any, target: Path) -> dict[str, Any]:
    """Copy the encoder's files (config, ONNX graph, PCA) into the bundle; their record."""
    from vigil.models.sequence._files import DOC, read_doc, write_doc

    source = Path(runtime.folder)
    doc = read_doc(source)
    if target.resolve() != source.resolve():
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        files = {k: v for k, v in doc.get("files", {}).items() if k in ("onnx", "pca")}
        for entry in files.values():
            shutil.copyfile(source / entry["path"], target / entry["path"])
        write_doc(target, {**doc, "files": files})
        doc = read_doc(target)
    names = [DOC, *(e["path"] for e in doc["files"].values())]
    return {"folder": SEQUENCE_DIR, "config": runtime.config.to_dict(),
            "features": list(runtime.feature_names),
            "history_rows": runtime.config.history_rows,
            "checkpoint": {"source": str(source), "saved_at": doc.get("saved_at"),
                           "training": doc.get("training", {}).get("state")},
            "files": {name: sha256(target / name) for name in names}}


def _load_sequence(folder: Path, meta: dict[str, Any]) -> Any:
    from vigil.models.sequence import SequenceConfig, SequenceRuntime

    where = folder / meta.get("folder", SEQUENCE_DIR)
    for name, digest in meta.get("files", {}).items():
        path = where / name
        if not path.is_file():
            raise ModelError(f"{path}: the bundle's sequence encoder file is missing")
        if sha256(path) != digest:
            raise ModelError(f"{path}: file does not match the checksum in bundle.json")
    runtime = SequenceRuntime(where)
    if runtime.config != SequenceConfig.from_dict(meta["config"]):
        raise ModelError(f"{where}: the encoder's config differs from bundle.json's")
    if list(runtime.feature_names) != list(meta.get("features", [])):
        raise ModelError(f"{where}: the encoder's features differ from bundle.json's")
    return runtime


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
