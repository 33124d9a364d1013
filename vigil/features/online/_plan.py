"""What the online executor must keep per entity key, derived once from a feature set's specs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vigil.features._definitions import HISTORY_OPS, LABEL_OPS, PAYMENT_WINDOW_OPS, Spec
from vigil.features._featureset import FeatureSet, _flat


@dataclass
class KeyPlan:
    """The state one entity key (a payment column such as ``card_id``) needs.

    ``retain_us``: how far back its payments are kept (the longest payment window; 0 when only
    time-since features read it); ``columns``: the payment columns its windows aggregate;
    ``label_retain_us``: the longest label-aware window (None: no label-aware feature);
    ``keep_last``: also keep the entity's newest this many payments, whatever their age (the
    sequence encoder's history).
    """

    key: str
    retain_us: int = 0
    columns: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)  # columns summed, averaged, compared
    keeps_payments: bool = False
    label_retain_us: int | None = None
    keep_last: int = 0


def plan(feature_set: FeatureSet,
         keep_last: Mapping[str, tuple[int, Sequence[str]]] | None = None
         ) -> dict[str, KeyPlan]:
    """One :class:`KeyPlan` per entity key column the feature set reads (and per key of
    ``keep_last``: key → how many of an entity's newest payments to keep, and the columns)."""
    plans: dict[str, KeyPlan] = {}
    for key, (n, columns) in (keep_last or {}).items():
        p = plans.setdefault(key, KeyPlan(key))
        p.keeps_payments = True
        p.keep_last = max(p.keep_last, n)
        p.columns += [c for c in columns if c not in p.columns]
    for spec in _flat(feature_set.specs()):
        if spec.key is None:
            continue
        p = plans.setdefault(spec.key, KeyPlan(spec.key))
        if spec.op in LABEL_OPS:
            p.label_retain_us = max(p.label_retain_us or 0, _window(spec))
            continue
        p.keeps_payments = True
        if spec.op in PAYMENT_WINDOW_OPS or spec.op == "relative":
            p.retain_us = max(p.retain_us, _window(spec))
        elif spec.op not in HISTORY_OPS:  # pragma: no cover - a new op without a plan
            raise AssertionError(spec.op)
        if spec.column and spec.column not in p.columns:
            p.columns.append(spec.column)
        if spec.column and spec.op != "count_distinct" and spec.column not in p.numeric:
            p.numeric.append(spec.column)
    return plans


def _window(spec: Spec) -> int:
    if spec.window_us is None:  # pragma: no cover - every windowed kind requires one
        raise AssertionError(f"{spec.name} has no window")
    return spec.window_us
