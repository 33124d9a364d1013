"""Declarative feature definitions: what a feature is, never how it is computed.

Every definition compiles to a :class:`Spec`, the small normal form that each executor
implements: the offline DuckDB engine (:mod:`vigil.features.offline`), the brute-force
reference (:mod:`vigil.features.reference`), and later the online state and Spark. The
semantics below are the contract all of them keep.

Time and order
    Payments are ordered by ``(ts, payment_id)``. Times are integers in microseconds.

Windows over an entity's payments (Count, Sum, Mean, Min, Max, CountDistinct)
    For a payment at time ``t`` with entity key ``k``, the window holds the entity's
    payments with ``t - w < ts < t``, plus the payment itself when ``include_current`` is
    true (the default). Other payments at exactly ``t`` are never in it: an executor that
    sees payments one by one cannot know which of several simultaneous ones came first.

History features (Relative, TimeSinceFirst, TimeSinceLast)
    Use only the entity's payments strictly before ``t``.

Label-aware aggregates (FraudCount, LabelCount, FraudRate, TimeSinceFirstFraud,
TimeSinceLastFraud)
    Labels arrive late. A payment counts as *labelled* from the first time any label for it
    was reported, and as *fraud* from the first time a fraud label for it was reported. For
    a payment at ``t``, the window holds the entity's payments whose label (or fraud label)
    was reported at ``t - w < reported_at < t``: a label only counts once it is known.
    The time-since-fraud features measure from the first (or last) such fraud report.

    .. warning::
       A label-aware feature that counted labels by payment time instead of report time
       would leak the future into training data. Do not add one.

Ratio
    One feature divided by another, both computed as above; null when either is null or the
    denominator is 0. Operands are payment features (row-level, windowed or history), not
    label-aware ones and not ratios.

Missing entity
    Where the entity key of a payment is null, every feature by that entity is null (NaN).

Empty windows
    Count, Sum, CountDistinct, FraudCount and LabelCount are 0; FraudRate is 0 when no label
    was reported in the window; Mean, Min, Max, Relative and every time-since feature are null.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

from vigil._errors import DefinitionError
from vigil.features._duration import canonical_duration, parse_duration

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Spec:
    """The normal form of a feature, which every executor implements.

    ``op`` is one of :data:`OPS`. ``key`` is the payment column of the entity (None for
    row-level features), ``column`` the payment column aggregated or read, ``window_us``
    the window in microseconds (None: unbounded or not windowed), ``include_current``
    whether the payment itself is in its own window.
    """

    name: str
    op: str
    key: str | None = None
    column: str | None = None
    window_us: int | None = None
    include_current: bool = True
    param: int | None = None
    operands: tuple[Spec, ...] = ()


OPS = (
    "value", "is_weekend", "is_night", "hour_of_day", "day_of_week",
    "count", "sum", "mean", "min", "max", "count_distinct",
    "relative", "since_first", "since_last",
    "fraud_count", "label_count", "fraud_rate", "since_first_fraud", "since_last_fraud",
    "ratio",
)
PAYMENT_WINDOW_OPS = ("count", "sum", "mean", "min", "max", "count_distinct")
HISTORY_OPS = ("relative", "since_first", "since_last")
LABEL_OPS = ("fraud_count", "label_count", "fraud_rate", "since_first_fraud", "since_last_fraud")


class Feature:
    """Base of every feature definition. Subclasses are frozen dataclasses."""

    kind: ClassVar[str]

    @property
    def name(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:  # pragma: no cover
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description; :func:`feature_from_dict` reads it back."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = value
        return out

    def validate(self) -> None:
        """Raise :class:`~vigil.DefinitionError` when a field is malformed."""


def _entity_column(entity_keys: Mapping[str, str], by: str, feature: str) -> str:
    if by not in entity_keys:
        known = ", ".join(sorted(entity_keys)) or "(none)"
        raise DefinitionError(
            f"feature {feature}: entity '{by}' is not among the feature set's entity_keys "
            f"({known})"
        )
    return entity_keys[by]


def _value_column(entity_keys: Mapping[str, str], column: str) -> str:
    """A value may name an entity (``CountDistinct("card", by="ip")``) or a payment column."""
    return entity_keys.get(column, column)


def _check_identifier(value: Any, what: str, feature: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value) or keyword.iskeyword(value):
        raise DefinitionError(f"feature {feature}: {what} {value!r} is not a valid name "
                              "(letters, digits and _; not starting with a digit)")


# --------------------------------------------------------------------------- row level


@dataclass(frozen=True)
class Value(Feature):
    """A numeric (or boolean) payment column as it is, e.g. ``Value("amount")``."""

    column: str
    kind: ClassVar[str] = "value"

    @property
    def name(self) -> str:
        return self.column

    def validate(self) -> None:
        _check_identifier(self.column, "column", self.kind)

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, "value", column=self.column)


@dataclass(frozen=True)
class IsWeekend(Feature):
    """1.0 when the payment falls on a Saturday or Sunday (UTC), else 0.0."""

    kind: ClassVar[str] = "is_weekend"

    @property
    def name(self) -> str:
        return "is_weekend"

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, "is_weekend")


@dataclass(frozen=True)
class IsNight(Feature):
    """1.0 when the payment's UTC hour is at most ``until_hour`` (default 6: 00:00–06:59)."""

    until_hour: int = 6
    kind: ClassVar[str] = "is_night"

    @property
    def name(self) -> str:
        return "is_night" if self.until_hour == 6 else f"is_night_until_{self.until_hour}"

    def validate(self) -> None:
        if not isinstance(self.until_hour, int) or not 0 <= self.until_hour <= 23:
            raise DefinitionError(f"feature is_night: until_hour must be a whole hour 0-23, "
                                  f"not {self.until_hour!r}")

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, "is_night", param=self.until_hour)


@dataclass(frozen=True)
class HourOfDay(Feature):
    """The payment's UTC hour, 0–23."""

    kind: ClassVar[str] = "hour_of_day"

    @property
    def name(self) -> str:
        return "hour_of_day"

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, "hour_of_day")


@dataclass(frozen=True)
class DayOfWeek(Feature):
    """The payment's UTC weekday, Monday 0 to Sunday 6."""

    kind: ClassVar[str] = "day_of_week"

    @property
    def name(self) -> str:
        return "day_of_week"

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, "day_of_week")


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class _Windowed(Feature):
    by: str
    window: str

    def validate(self) -> None:
        _check_identifier(self.by, "entity", self.kind)
        parse_duration(self.window)

    @property
    def _suffix(self) -> str:
        return f"by_{self.by}_{canonical_duration(self.window)}"


@dataclass(frozen=True)
class _PaymentWindow(_Windowed):
    include_current: bool = True

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.include_current, bool):
            raise DefinitionError(f"feature {self.kind}: include_current must be true or false")

    def _named(self, stem: str) -> str:
        return f"{stem}_{self._suffix}" + ("" if self.include_current else "_prior")


@dataclass(frozen=True)
class Count(_PaymentWindow):
    """Number of the entity's payments in the window: ``Count(by="card", window="1h")``."""

    kind: ClassVar[str] = "count"

    @property
    def name(self) -> str:
        return self._named("count")

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, "count", key=_entity_column(entity_keys, self.by, self.name),
                    window_us=parse_duration(self.window), include_current=self.include_current)


@dataclass(frozen=True)
class _ColumnWindow(Feature):
    column: str
    by: str
    window: str
    include_current: bool = True
    stem: ClassVar[str] = ""

    def validate(self) -> None:
        _check_identifier(self.column, "column", self.kind)
        _check_identifier(self.by, "entity", self.kind)
        parse_duration(self.window)
        if not isinstance(self.include_current, bool):
            raise DefinitionError(f"feature {self.kind}: include_current must be true or false")

    @property
    def name(self) -> str:
        return (f"{self.column}_{self.stem}_by_{self.by}_{canonical_duration(self.window)}"
                + ("" if self.include_current else "_prior"))

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, self.kind, key=_entity_column(entity_keys, self.by, self.name),
                    column=_value_column(entity_keys, self.column),
                    window_us=parse_duration(self.window), include_current=self.include_current)


@dataclass(frozen=True)
class Sum(_ColumnWindow):
    """Sum of a column over the entity's payments in the window: ``Sum("amount", by="card",
    window="24h")`` is ``amount_sum_by_card_24h``."""

    kind: ClassVar[str] = "sum"
    stem: ClassVar[str] = "sum"


@dataclass(frozen=True)
class Mean(_ColumnWindow):
    """Mean of a column over the entity's payments in the window (nulls ignored)."""

    kind: ClassVar[str] = "mean"
    stem: ClassVar[str] = "mean"


@dataclass(frozen=True)
class Min(_ColumnWindow):
    """Smallest value of a column over the entity's payments in the window."""

    kind: ClassVar[str] = "min"
    stem: ClassVar[str] = "min"


@dataclass(frozen=True)
class Max(_ColumnWindow):
    """Largest value of a column over the entity's payments in the window."""

    kind: ClassVar[str] = "max"
    stem: ClassVar[str] = "max"


@dataclass(frozen=True)
class CountDistinct(_ColumnWindow):
    """Number of distinct values (nulls ignored): ``CountDistinct("card", by="ip",
    window="1h")`` counts the cards seen from an IP in the last hour."""

    kind: ClassVar[str] = "count_distinct"
    stem: ClassVar[str] = "distinct"


@dataclass(frozen=True)
class Relative(Feature):
    """A column divided by its mean over the entity's earlier payments in the window.

    ``Relative("amount", by="card", window="30d")`` is 5.0 for a payment five times the
    card's usual amount; null when the card has no earlier payment in the window (or their
    mean is 0).
    """

    column: str
    by: str
    window: str
    kind: ClassVar[str] = "relative"

    def validate(self) -> None:
        _check_identifier(self.column, "column", self.kind)
        _check_identifier(self.by, "entity", self.kind)
        parse_duration(self.window)

    @property
    def name(self) -> str:
        return f"{self.column}_vs_mean_by_{self.by}_{canonical_duration(self.window)}"

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, "relative", key=_entity_column(entity_keys, self.by, self.name),
                    column=_value_column(entity_keys, self.column),
                    window_us=parse_duration(self.window), include_current=False)


@dataclass(frozen=True)
class TimeSinceFirst(Feature):
    """Seconds since the entity's first earlier payment (null for its first payment)."""

    by: str
    kind: ClassVar[str] = "time_since_first"

    def validate(self) -> None:
        _check_identifier(self.by, "entity", self.kind)

    @property
    def name(self) -> str:
        return f"seconds_since_first_by_{self.by}"

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, "since_first", key=_entity_column(entity_keys, self.by, self.name),
                    include_current=False)


@dataclass(frozen=True)
class TimeSinceLast(Feature):
    """Seconds since the entity's previous payment (null for its first payment)."""

    by: str
    kind: ClassVar[str] = "time_since_last"

    def validate(self) -> None:
        _check_identifier(self.by, "entity", self.kind)

    @property
    def name(self) -> str:
        return f"seconds_since_last_by_{self.by}"

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, "since_last", key=_entity_column(entity_keys, self.by, self.name),
                    include_current=False)


# --------------------------------------------------------------------------- label-aware


@dataclass(frozen=True)
class _LabelWindow(_Windowed):
    stem: ClassVar[str] = ""
    op: ClassVar[str] = ""

    @property
    def name(self) -> str:
        return f"{self.stem}_{self._suffix}"

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, self.op or self.kind,
                    key=_entity_column(entity_keys, self.by, self.name),
                    window_us=parse_duration(self.window), include_current=False)


@dataclass(frozen=True)
class FraudCount(_LabelWindow):
    """Payments of the entity first reported as fraud within the window before this payment.

    Counts by *report* time, so only fraud already known at the payment counts.
    """

    kind: ClassVar[str] = "fraud_count"
    stem: ClassVar[str] = "fraud_count"


@dataclass(frozen=True)
class LabelCount(_LabelWindow):
    """Payments of the entity whose first label (fraud or not) was reported within the window."""

    kind: ClassVar[str] = "label_count"
    stem: ClassVar[str] = "label_count"


@dataclass(frozen=True)
class FraudRate(_LabelWindow):
    """Fraud share among the entity's labels reported within the window (0 when none).

    ``FraudRate(by="terminal", window="28d")`` is the share of a terminal's payments, labelled
    in the last 28 days, that were fraud. Pair it with :class:`LabelCount` to tell a clean
    terminal from an unknown one.

    A payment relabelled from legitimate to fraud counts in the denominator at its first
    label and in the numerator at its fraud report; when only the second falls in the window
    the rate can exceed 1. Such relabelling is rare; the online executor keeps the same rule.
    """

    kind: ClassVar[str] = "fraud_rate"
    stem: ClassVar[str] = "fraud_rate"


@dataclass(frozen=True)
class TimeSinceFirstFraud(_LabelWindow):
    """Seconds since the earliest fraud report, within the window, for the entity's payments.

    A terminal compromised for a few weeks shows its first fraud reports a label delay after
    the compromise began; how long ago that was tells whether it is likely still going on.
    Null when no fraud was reported in the window.
    """

    kind: ClassVar[str] = "time_since_first_fraud"
    stem: ClassVar[str] = "seconds_since_first_fraud"
    op: ClassVar[str] = "since_first_fraud"


@dataclass(frozen=True)
class TimeSinceLastFraud(_LabelWindow):
    """Seconds since the latest fraud report, within the window, for the entity's payments
    (null when none)."""

    kind: ClassVar[str] = "time_since_last_fraud"
    stem: ClassVar[str] = "seconds_since_last_fraud"
    op: ClassVar[str] = "since_last_fraud"


@dataclass(frozen=True)
class Ratio(Feature):
    """One feature over another: ``Ratio(Max("amount", by="card", window="7d",
    include_current=False), Mean("amount", by="card", window="60d"))`` is the card's largest
    recent amount against its usual amount — high for a card that was just used for an
    unusual spend, even when the current payment looks ordinary.
    """

    numerator: Feature
    denominator: Feature
    kind: ClassVar[str] = "ratio"

    @property
    def name(self) -> str:
        return f"{self.numerator.name}_over_{self.denominator.name}"

    def validate(self) -> None:
        for part in (self.numerator, self.denominator):
            if not isinstance(part, Feature) or isinstance(part, Ratio | _LabelWindow):
                raise DefinitionError("feature ratio: numerator and denominator must be payment "
                                      "features (not label-aware features or ratios)")
            part.validate()

    def spec(self, entity_keys: Mapping[str, str]) -> Spec:
        return Spec(self.name, "ratio", operands=(self.numerator.spec(entity_keys),
                                                  self.denominator.spec(entity_keys)))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "numerator": self.numerator.to_dict(),
                "denominator": self.denominator.to_dict()}


FEATURE_KINDS: dict[str, type[Feature]] = {
    cls.kind: cls
    for cls in (Value, IsWeekend, IsNight, HourOfDay, DayOfWeek, Count, Sum, Mean, Min, Max,
                CountDistinct, Relative, TimeSinceFirst, TimeSinceLast, FraudCount, LabelCount,
                FraudRate, TimeSinceFirstFraud, TimeSinceLastFraud, Ratio)
}


def feature_from_dict(data: Mapping[str, Any], where: str = "feature") -> Feature:
    """Build a feature from its dict form (``{"kind": "count", "by": "card", "window": "1h"}``)."""
    if not isinstance(data, Mapping):
        raise DefinitionError(f"{where}: expected a table of fields, found {data!r}")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in FEATURE_KINDS:  # a list is not hashable
        raise DefinitionError(
            f"{where}: unknown feature kind {kind!r}; known kinds: {', '.join(FEATURE_KINDS)}"
        )
    cls = FEATURE_KINDS[kind]
    allowed = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    params = {k: v for k, v in data.items() if k != "kind"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise DefinitionError(f"{where} ({kind}): unknown field(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(allowed)) or '(none)'}")
    required = [f.name for f in fields(cls)  # type: ignore[arg-type]
                if f.default is MISSING and f.name not in params]
    if required:
        raise DefinitionError(f"{where} ({kind}): missing field(s) {', '.join(required)}")
    if cls is Ratio:
        params = {k: feature_from_dict(v, where=f"{where} ({k})") for k, v in params.items()}
    feature = cls(**params)
    try:
        feature.validate()
    except DefinitionError as exc:
        raise DefinitionError(f"{where}: {exc}") from exc
    return feature

