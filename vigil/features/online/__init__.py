"""Online features: the same definitions as offline, updated and read per event.

:class:`OnlineFeatures` computes a payment's features from a :class:`FeatureState` (in-process
:class:`MemoryState`, or :class:`RedisState` shared by several processes) and records the
payment; labels update the label-aware features as they are reported. For the same history
the values equal the offline engine's (``tests/test_features_online.py``).
"""

from vigil.features.online._executor import FirstReports, OnlineFeatures, micros, replay
from vigil.features.online._redis import RedisState
from vigil.features.online._state import (
    FeatureState,
    KeyConfig,
    LabelView,
    MemoryState,
    PaymentView,
    Read,
)

__all__ = [
    "FeatureState",
    "FirstReports",
    "KeyConfig",
    "LabelView",
    "MemoryState",
    "OnlineFeatures",
    "PaymentView",
    "Read",
    "RedisState",
    "micros",
    "replay",
]
