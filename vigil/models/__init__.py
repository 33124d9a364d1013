"""Models: XGBoost with early stopping, calibration, the 0–100 risk score, model bundles.

The sequence encoder lives in :mod:`vigil.models.sequence` (imported on its own: its
training half needs PyTorch).
"""

from vigil.models._bundle import BUNDLE_FORMAT, ModelBundle, feature_matrix, library_versions
from vigil.models._calibration import IsotonicCalibrator, PlattCalibrator
from vigil.models._gbm import RiskModel
from vigil.models._risk_score import (
    ELEVATED_FROM,
    HIGHEST_FROM,
    probability_at_score,
    risk_level,
    risk_score,
)

__all__ = [
    "BUNDLE_FORMAT",
    "ELEVATED_FROM",
    "HIGHEST_FROM",
    "IsotonicCalibrator",
    "ModelBundle",
    "PlattCalibrator",
    "RiskModel",
    "feature_matrix",
    "library_versions",
    "probability_at_score",
    "risk_level",
    "risk_score",
]
