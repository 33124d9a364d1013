"""Calibrators: from a model's raw margin to a probability of fraud.

Both are saved as plain JSON. Platt scaling (a logistic curve on the margin) is strictly
increasing, so it never changes the ranking of payments; isotonic regression can follow any
monotone shape but flattens ranges of margins into ties.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vigil._errors import ModelError


class PlattCalibrator:
    """p = 1 / (1 + exp(-(a·margin + b))), fitted by maximum likelihood."""

    kind = "platt"

    def __init__(self) -> None:
        self.a_: float | None = None
        self.b_: float | None = None

    def fit(self, margin: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y).astype(int)
        if y.min() == y.max():
            raise ModelError("calibration needs both fraud and legitimate payments in its slice")
        lr = LogisticRegression(C=1e6, max_iter=1000)
        lr.fit(np.asarray(margin, dtype=float).reshape(-1, 1), y)
        self.a_, self.b_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        z = self.a_ * np.asarray(margin, dtype=float) + self.b_  # type: ignore[operator]
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a_, "b": self.b_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlattCalibrator:
        c = cls()
        c.a_, c.b_ = float(data["a"]), float(data["b"])
        return c


class IsotonicCalibrator:
    """A monotone step function of the margin, linearly interpolated between its knots."""

    kind = "isotonic"

    def __init__(self) -> None:
        self.x_: np.ndarray | None = None
        self.y_: np.ndarray | None = None

    def fit(self, margin: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        from sklearn.isotonic import IsotonicRegression

        y = np.asarray(y).astype(float)
        if y.min() == y.max():
            raise ModelError("calibration needs both fraud and legitimate payments in its slice")
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(np.asarray(margin, dtype=float), y)
        self.x_ = np.asarray(iso.X_thresholds_, dtype=float)
        self.y_ = np.asarray(iso.y_thresholds_, dtype=float)
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(margin, dtype=float), self.x_, self.y_)  # type: ignore

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "x": self.x_.tolist(), "y": self.y_.tolist()}  # type: ignore

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IsotonicCalibrator:
        c = cls()
        c.x_, c.y_ = np.asarray(data["x"], dtype=float), np.asarray(data["y"], dtype=float)
        return c


CALIBRATORS = {"platt": PlattCalibrator, "isotonic": IsotonicCalibrator}


def calibrator_from_dict(data: dict[str, Any]) -> PlattCalibrator | IsotonicCalibrator:
    kind = data.get("kind")
    if kind not in CALIBRATORS:
        raise ModelError(f"unknown calibrator '{kind}'; known: {', '.join(CALIBRATORS)}")
    return CALIBRATORS[kind].from_dict(data)
