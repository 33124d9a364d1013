"""Features declared once, computed offline (DuckDB) and, later, online with the same result.

See :mod:`vigil.features._definitions` for the exact semantics every executor keeps.
"""

from vigil.features._builtin import (
    BUILTIN_FEATURE_SETS,
    builtin_feature_set,
    handbook_baseline,
    payments_default,
    payments_realistic,
)
from vigil.features._definitions import (
    FEATURE_KINDS,
    OPS,
    Count,
    CountDistinct,
    DayOfWeek,
    Feature,
    FraudCount,
    FraudRate,
    HourOfDay,
    IsNight,
    IsWeekend,
    LabelCount,
    Max,
    Mean,
    Min,
    Ratio,
    Relative,
    Spec,
    Sum,
    TimeSinceFirst,
    TimeSinceFirstFraud,
    TimeSinceLast,
    TimeSinceLastFraud,
    Value,
    feature_from_dict,
)
from vigil.features._duration import parse_duration
from vigil.features._featureset import FeatureSet
from vigil.features._reference import reference_features
from vigil.features.offline import build_features, compile_sql

__all__ = [
    "BUILTIN_FEATURE_SETS",
    "FEATURE_KINDS",
    "OPS",
    "Count",
    "CountDistinct",
    "DayOfWeek",
    "Feature",
    "FeatureSet",
    "FraudCount",
    "FraudRate",
    "HourOfDay",
    "IsNight",
    "IsWeekend",
    "LabelCount",
    "Max",
    "Mean",
    "Min",
    "Ratio",
    "Relative",
    "Spec",
    "Sum",
    "TimeSinceFirst",
    "TimeSinceFirstFraud",
    "TimeSinceLast",
    "TimeSinceLastFraud",
    "Value",
    "build_features",
    "builtin_feature_set",
    "compile_sql",
    "feature_from_dict",
    "handbook_baseline",
    "parse_duration",
    "payments_default",
    "payments_realistic",
    "reference_features",
]
