"""The gradient-boosted risk model: XGBoost, early stopping, and a calibrator on top.

Follows scikit-learn's estimator contract: ``__init__`` only stores parameters, ``fit``
validates, learns and returns ``self``, learned state ends in ``_``, and the seed is passed
unmodified to XGBoost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from vigil._errors import ModelError
from vigil.models._calibration import CALIBRATORS, calibrator_from_dict
from vigil.models._risk_score import risk_score
from vigil.models._xgb_direct import DirectBooster

_PARAMS = ("n_estimators", "max_depth", "learning_rate", "min_child_weight", "subsample",
           "colsample_bytree", "reg_lambda", "gamma", "scale_pos_weight", "max_bin",
           "tree_method", "base_score", "early_stopping_rounds", "eval_metric", "calibration",
           "n_jobs", "seed")


class RiskModel:
    """XGBoost with early stopping on a later validation slice, then calibration.

    ``fit(X, y, X_valid=..., y_valid=...)`` stops adding trees when the validation metric has
    not improved for ``early_stopping_rounds`` rounds, keeps the best number of trees, and
    fits the calibrator on the validation margins (on the training margins when no
    validation slice is given, which overstates confidence: give one).

    ``max_bin`` defaults to 4096, far above XGBoost's 256: fraud often turns on exact
    amounts (a limit of 220, a threshold a fraudster probes), and coarse histogram bins put
    legitimate payments just under such a limit in the same bin as the frauds above it. On
    the Handbook's validation folds this alone raised average precision from 0.72 to 0.74.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 2)); y = X[:, 0] + rng.normal(size=400) > 1.5
    >>> m = RiskModel(n_estimators=20, max_depth=2).fit(X[:300], y[:300], X_valid=X[300:],
    ...                                                 y_valid=y[300:])
    >>> bool(m.predict_proba(X).max() <= 1.0)
    True
    """

    def __init__(self, *, n_estimators: int = 500, max_depth: int = 4,
                 learning_rate: float = 0.05, min_child_weight: float = 1.0,
                 subsample: float = 1.0, colsample_bytree: float = 1.0,
                 reg_lambda: float = 1.0, gamma: float = 0.0, scale_pos_weight: float = 1.0,
                 max_bin: int = 4096, tree_method: str = "hist", base_score: float | None = None,
                 early_stopping_rounds: int | None = 50, eval_metric: str = "aucpr",
                 calibration: str | None = "platt", n_jobs: int | None = None,
                 seed: int = 0) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.gamma = gamma
        self.scale_pos_weight = scale_pos_weight
        self.max_bin = max_bin
        self.tree_method = tree_method
        self.base_score = base_score
        self.early_stopping_rounds = early_stopping_rounds
        self.eval_metric = eval_metric
        self.calibration = calibration
        self.n_jobs = n_jobs
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _PARAMS}

    def set_params(self, **params: Any) -> RiskModel:
        for name, value in params.items():
            if name not in _PARAMS:
                raise ModelError(f"unknown model parameter '{name}'; known: {', '.join(_PARAMS)}")
            setattr(self, name, value)
        return self

    def _xgb_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "objective": "binary:logistic",
            "eval_metric": self.eval_metric,
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda,
            "gamma": self.gamma,
            "scale_pos_weight": self.scale_pos_weight,
            "tree_method": self.tree_method,
            "seed": self.seed,
            "verbosity": 0,
        }
        if self.tree_method != "exact":
            params["max_bin"] = self.max_bin
        if self.base_score is not None:
            params["base_score"] = self.base_score
        if self.n_jobs is not None:
            params["nthread"] = self.n_jobs
        return params

    def fit(self, X: np.ndarray, y: np.ndarray, *, feature_names: list[str] | None = None,
            X_valid: np.ndarray | None = None, y_valid: np.ndarray | None = None) -> RiskModel:
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y).astype(np.float32)
        if X.ndim != 2 or len(X) != len(y):
            raise ModelError(f"X must be 2-D with one row per label; got {X.shape} and {y.shape}")
        if len(y) == 0 or y.min() == y.max():
            raise ModelError("training data needs both fraud and legitimate payments; "
                             f"it has {int(y.sum())} frauds among {len(y)} payments")
        if self.calibration is not None and self.calibration not in CALIBRATORS:
            raise ModelError(f"unknown calibration '{self.calibration}'; use "
                             f"{', '.join(CALIBRATORS)} or None")
        names = list(feature_names) if feature_names else [f"f{i}" for i in range(X.shape[1])]
        if len(names) != X.shape[1]:
            raise ModelError(f"{len(names)} feature names for {X.shape[1]} columns")
        dtrain = xgb.DMatrix(X, label=y, feature_names=names, missing=np.nan)
        evals = []
        has_valid = X_valid is not None and y_valid is not None and len(y_valid) > 0
        if has_valid:
            X_valid = np.asarray(X_valid, dtype=np.float32)
            y_valid = np.asarray(y_valid).astype(np.float32)
            dvalid = xgb.DMatrix(X_valid, label=y_valid, feature_names=names, missing=np.nan)
            evals = [(dvalid, "valid")]
        stop = self.early_stopping_rounds if has_valid and y_valid.max() > 0 else None
        booster = xgb.train(self._xgb_params(), dtrain, num_boost_round=self.n_estimators,
                            evals=evals, early_stopping_rounds=stop, verbose_eval=False)
        if stop is not None:
            self.best_iteration_ = int(booster.best_iteration)
            booster = booster[: self.best_iteration_ + 1]
        else:
            self.best_iteration_ = self.n_estimators - 1
        self.booster_ = booster
        self.feature_names_ = names
        self.calibrator_ = None
        if self.calibration is not None:
            if has_valid and 0 < y_valid.sum() < len(y_valid):
                Xc, yc = X_valid, y_valid
            else:
                Xc, yc = X, y
            self.calibrator_ = CALIBRATORS[self.calibration]().fit(self.predict_margin(Xc), yc)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise ModelError("the model is not fitted yet; call fit() or load a bundle")

    def _dmatrix(self, X: np.ndarray) -> xgb.DMatrix:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names_):
            raise ModelError(f"expected {len(self.feature_names_)} feature columns, got "
                             f"{X.shape[1] if X.ndim == 2 else X.shape}")
        return xgb.DMatrix(X, feature_names=self.feature_names_, missing=np.nan)

    def predict_margin(self, X: np.ndarray) -> np.ndarray:
        """Raw log-odds from the trees, before calibration."""
        self._check_fitted()
        return self.booster_.predict(self._dmatrix(X), output_margin=True).astype(np.float64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability of fraud per row."""
        margin = self.predict_margin(X)
        if self.calibrator_ is None:
            return 1.0 / (1.0 + np.exp(-margin))
        return self.calibrator_.predict(margin)

    def risk_score(self, X: np.ndarray) -> np.ndarray:
        """Integer risk score 0–100 per row (see :mod:`vigil.models._risk_score`)."""
        return risk_score(self.predict_proba(X))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """XGBoost's own SHAP values per row and feature (last column: the bias)."""
        self._check_fitted()
        return self.booster_.predict(self._dmatrix(X), pred_contribs=True)

    def for_serving(self) -> RiskModel:
        """Tune for a few rows at a time: one thread per prediction (the service runs many),
        and a copy of the trees without feature names, which XGBoost would otherwise check
        on every call (the columns are in the bundle's order by construction), called
        through its C API directly (:class:`~vigil.models._xgb_direct.DirectBooster`)."""
        self._check_fitted()
        self.booster_.set_param({"nthread": 1})
        fast = self.booster_.copy()
        fast.feature_names = None
        fast.feature_types = None
        fast.set_param({"nthread": 1})
        self._direct = DirectBooster(fast)
        return self

    def explain_one(self, x: np.ndarray) -> tuple[float, float, np.ndarray]:
        """One row's margin, calibrated probability and SHAP contributions (bias last), from
        a single tree walk: the contributions add up to the margin."""
        margins, probas, contribs = self.explain(np.asarray(x).reshape(1, -1))
        return float(margins[0]), float(probas[0]), contribs[0]

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Margins, calibrated probabilities and SHAP contributions (bias last) of rows."""
        self._check_fitted()
        rows = np.asarray(X, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != len(self.feature_names_):
            raise ModelError(f"expected {len(self.feature_names_)} feature columns, got "
                             f"{rows.shape[1] if rows.ndim == 2 else rows.shape}")
        direct = getattr(self, "_direct", None)
        if direct is not None:
            contribs = direct.contributions(rows)
        else:
            dm = xgb.DMatrix(rows, feature_names=self.feature_names_, missing=np.nan, nthread=1)
            contribs = self.booster_.predict(dm, pred_contribs=True).astype(np.float64)
        margins = contribs.sum(axis=1)
        if self.calibrator_ is None:
            probas = 1.0 / (1.0 + np.exp(-margins))
        else:
            probas = np.asarray(self.calibrator_.predict(margins), dtype=np.float64)
        return margins, probas, contribs

    def predict_one(self, x: np.ndarray) -> tuple[float, float]:
        """One row's margin and calibrated probability, without contributions."""
        direct = getattr(self, "_direct", None)
        margin = (float(direct.margins(x)[0]) if direct is not None
                  else self.predict_one_margin(x))
        if self.calibrator_ is None:
            return margin, float(1.0 / (1.0 + np.exp(-margin)))
        return margin, float(self.calibrator_.predict(np.array([margin]))[0])

    def predict_one_margin(self, x: np.ndarray) -> float:
        """The margin of one row by XGBoost's own in-place predictor, through its Python API
        (the benchmark's bare baseline; scoring goes through :class:`DirectBooster`)."""
        row = np.asarray(x, dtype=np.float32).reshape(1, -1)
        direct = getattr(self, "_direct", None)
        booster = direct.booster if direct is not None else self.booster_
        return float(booster.inplace_predict(row, predict_type="margin", missing=np.nan)[0])

    def feature_importance(self, kind: str = "total_gain") -> dict[str, float]:
        self._check_fitted()
        scores = self.booster_.get_score(importance_type=kind)
        return {name: float(scores.get(name, 0.0)) for name in self.feature_names_}

    # ----------------------------------------------------------------- persistence

    def save(self, folder: str | Path) -> dict[str, Any]:
        """Write the trees as ``model.ubj`` in ``folder``; return the JSON-ready rest."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(folder / "model.ubj"))
        return {
            "params": self.get_params(),
            "feature_names": self.feature_names_,
            "best_iteration": self.best_iteration_,
            "calibrator": self.calibrator_.to_dict() if self.calibrator_ is not None else None,
            "trees_file": "model.ubj",
        }

    @classmethod
    def load(cls, folder: str | Path, meta: dict[str, Any]) -> RiskModel:
        folder = Path(folder)
        path = folder / meta.get("trees_file", "model.ubj")
        if not path.is_file():
            raise ModelError(f"{path}: model file is missing")
        model = cls(**{k: v for k, v in meta["params"].items() if k in _PARAMS})
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
        except xgb.core.XGBoostError as exc:
            raise ModelError(f"{path}: not a readable XGBoost model") from exc
        model.booster_ = booster
        model.feature_names_ = list(meta["feature_names"])
        model.best_iteration_ = int(meta["best_iteration"])
        cal = meta.get("calibrator")
        model.calibrator_ = calibrator_from_dict(cal) if cal else None
        return model
