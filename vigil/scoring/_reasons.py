"""Reasons a person understands: a feature's value said in words, from its definition.

The model explains itself with XGBoost's own SHAP contributions (log-odds per feature); the
features that pushed the score up most become reasons, each with a sentence written from the
feature's :class:`~vigil.features.Spec`: ``count_by_card_1h = 14`` reads "14 payments on
this card in the last hour".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vigil.features._definitions import Spec

_UNITS = ((7 * 86_400_000_000, "week"), (86_400_000_000, "day"), (3_600_000_000, "hour"),
          (60_000_000, "minute"), (1_000_000, "second"))
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Reason:
    """One feature's part in a score."""

    feature: str
    value: float | None
    contribution: float  # log-odds added by this feature (XGBoost SHAP)
    sentence: str

    def to_dict(self) -> dict[str, object]:
        return {"feature": self.feature, "value": self.value,
                "contribution": round(self.contribution, 4), "sentence": self.sentence}


def window_words(window_us: int) -> str:
    """``3_600_000_000`` → ``"hour"``, 7 days → ``"7 days"`` (as in "the last 7 days")."""
    for size, unit in _UNITS:
        if window_us % size == 0:
            n = window_us // size
            if unit == "week" and n == 1:
                return "week"
            if unit == "week":
                return f"{n * 7} days"
            return unit if n == 1 else f"{n} {unit}s"
    return f"{window_us / 1e6:g} seconds"  # pragma: no cover - windows are whole seconds


def elapsed_words(seconds: float) -> str:
    """A duration in seconds, rounded the way people say it: "3 minutes", "2.5 days"."""
    for size, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds / size
            text = f"{n:.0f}" if n >= 10 or abs(n - round(n)) < 0.05 else f"{n:.1f}"
            return f"{text} {unit}{'' if text == '1' else 's'}"
    return f"{seconds:.0f} second{'' if round(seconds) == 1 else 's'}"


def _count(n: float, one: str, many: str) -> str:
    k = int(n)
    return f"{k:,} {one if k == 1 else many}"


def _money(v: float) -> str:
    return f"{v:,.2f}"


class Describer:
    """Sentences for the features of one feature set (``entity_keys`` names the entities)."""

    def __init__(self, specs: list[Spec], entity_keys: Mapping[str, str]) -> None:
        self._specs = {s.name: s for s in specs}
        self._entity = {column: entity for entity, column in entity_keys.items()}

    def sentence(self, name: str, value: float | None) -> str:
        spec = self._specs.get(name)
        if spec is None:
            return f"{name} = {value}"
        return self._say(spec, value)

    def _phrase(self, s: Spec) -> str:
        """A feature as a noun phrase, for ratios: "this card's average amount in the last
        60 days"."""
        entity = self._entity.get(s.key, s.key) if s.key else ""
        last = f" in the last {window_words(s.window_us)}" if s.window_us else ""
        before = "" if s.include_current else " before this one"
        col = (self._entity.get(s.column, s.column) or "").replace("_", " ")
        phrases = {
            "value": f"the {col}",
            "count": f"the payments on this {entity}{last}",
            "sum": f"the {col} spent on this {entity}{last}",
            "mean": f"this {entity}'s average {col}{last}{before}",
            "min": f"the smallest {col} on this {entity}{last}{before}",
            "max": f"the largest {col} on this {entity}{last}{before}",
            "count_distinct": f"the {col}s used with this {entity}{last}",
            "relative": f"the {col} against this {entity}'s average{last}",
            "since_first": f"the time since this {entity} was first seen",
            "since_last": f"the time since this {entity}'s previous payment",
            "fraud_count": f"the frauds reported on this {entity}{last}",
            "label_count": f"the labels reported on this {entity}{last}",
            "fraud_rate": f"the share of this {entity}'s labelled payments that were fraud"
                          f"{last}",
            "since_first_fraud": f"the time since this {entity}'s first reported fraud",
            "since_last_fraud": f"the time since this {entity}'s latest reported fraud",
            "is_night": "whether it was paid at night",
            "is_weekend": "whether it was paid at the weekend",
            "hour_of_day": "the hour of the day (UTC)",
            "day_of_week": "the day of the week",
        }
        if s.op == "ratio":
            num, den = (self._phrase(o) for o in s.operands)
            return f"{num} against {den}"
        return phrases.get(s.op, s.name)

    def phrase(self, name: str) -> str:
        """What feature ``name`` measures, as a noun phrase (for a model card)."""
        spec = self._specs.get(name)
        return name if spec is None else self._phrase(spec)

    def _say(self, s: Spec, v: float | None) -> str:
        entity = self._entity.get(s.key, s.key) if s.key else ""
        last = f"in the last {window_words(s.window_us)}" if s.window_us else ""
        before = "" if s.include_current else " before this one"
        col = (self._entity.get(s.column, s.column) or "").replace("_", " ")
        if s.op == "ratio":
            num, den = (self._phrase(o) for o in s.operands)
            if v is None:
                return f"{num} against {den}: no value"
            return f"{num} is {v:.2f}× {den}"
        if s.op == "value":
            return f"{col}: {'missing' if v is None else _money(v) if col == 'amount' else v:}"
        if s.op == "is_night":
            return "paid at night" if v else "paid during the day"
        if s.op == "is_weekend":
            return "paid at the weekend" if v else "paid on a weekday"
        if s.op == "hour_of_day":
            return f"paid at {int(v or 0):02d}:00–{int(v or 0):02d}:59 UTC"
        if s.op == "day_of_week":
            return f"paid on a {_DAYS[int(v or 0)]}"
        if v is None:
            return {
                "since_first": f"first payment seen from this {entity}",
                "since_last": f"no earlier payment from this {entity}",
                "since_first_fraud": f"no fraud reported on this {entity} {last}",
                "since_last_fraud": f"no fraud reported on this {entity} {last}",
                "relative": f"no earlier payment from this {entity} {last} to compare with",
            }.get(s.op, f"no payment from this {entity} {last}{before}")
        if s.op == "count":
            return f"{_count(v, 'payment', 'payments')} on this {entity} {last}"
        if s.op == "sum":
            return f"{_money(v)} in {col} on this {entity} {last}"
        if s.op == "mean":
            return f"this {entity}'s average {col} {last}{before}: {_money(v)}"
        if s.op in ("min", "max"):
            word = "smallest" if s.op == "min" else "largest"
            return f"{word} {col} on this {entity} {last}{before}: {_money(v)}"
        if s.op == "count_distinct":
            return f"{_count(v, col, col + 's')} used with this {entity} {last}"
        if s.op == "relative":
            return f"{col} is {v:.1f}× this {entity}'s average {last}"
        if s.op == "since_first":
            return f"this {entity} was first seen {elapsed_words(v)} ago"
        if s.op == "since_last":
            return f"{elapsed_words(v)} since this {entity}'s previous payment"
        if s.op == "fraud_count":
            return f"{_count(v, 'payment', 'payments')} on this {entity} reported as fraud {last}"
        if s.op == "label_count":
            return f"{_count(v, 'payment', 'payments')} on this {entity} labelled {last}"
        if s.op == "fraud_rate":
            return f"{v:.0%} of this {entity}'s payments labelled {last} were fraud"
        if s.op == "since_first_fraud":
            return f"fraud first reported on this {entity} {elapsed_words(v)} ago"
        if s.op == "since_last_fraud":
            return f"fraud last reported on this {entity} {elapsed_words(v)} ago"
        return f"{s.name} = {v}"  # pragma: no cover
