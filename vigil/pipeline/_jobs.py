"""The offline jobs, end to end: features for a dataset, training a bundle on a time window,
scoring, and evaluating on a later window.

This is the layer above features, models and evaluation; the command-line tool calls it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil._errors import ConfigError
from vigil.evaluation import (
    Fold,
    fraud_metrics,
    in_window,
    known_compromised_mask,
    labels_known_at,
    recall_by_group,
    threshold_at_fpr,
)
from vigil.events import EventData
from vigil.features import FeatureSet, build_features
from vigil.models import ModelBundle, RiskModel, feature_matrix

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """A dataset with its feature table, row for row: both in (ts, payment_id) order."""

    payments: pa.Table
    features: pa.Table
    labels: pa.Table
    truth: pa.Table | None
    feature_set: FeatureSet
    fingerprint: str
    # the dataset itself, for model inputs built from more than payments and labels (the
    # identity graph reads accounts and verification sessions); and what was built from it
    data: EventData | None = field(default=None, repr=False, compare=False)
    built: dict[Any, pa.Table] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ts(self) -> pa.ChunkedArray:
        return self.payments.column("ts")

    def matrix(self, mask: np.ndarray | None = None) -> np.ndarray:
        X = feature_matrix(self.features, self.feature_set.names)
        return X if mask is None else X[mask]

    def day_keys(self) -> np.ndarray:
        return np.asarray(pc.strftime(self.ts, format="%Y-%m-%d").to_numpy(zero_copy_only=False))

    def column(self, name: str) -> np.ndarray:
        return np.asarray(self.payments.column(name).to_numpy(zero_copy_only=False))

    def scenarios(self) -> np.ndarray | None:
        if self.truth is None:
            return None
        idx = pc.index_in(self.payments.column("payment_id"), self.truth.column("payment_id"))
        return np.asarray(pc.fill_null(pc.take(self.truth.column("scenario"), idx), "unknown")
                          .to_numpy(zero_copy_only=False))


def prepare(data: EventData, feature_set: FeatureSet, *, threads: int | None = None) -> Prepared:
    """Build ``feature_set`` for every payment of ``data`` (point in time, one DuckDB pass)."""
    features = build_features(feature_set, data.payments, data.labels, threads=threads)
    payments = data.payments.sort_by([("ts", "ascending"), ("payment_id", "ascending")])
    if not payments.column("payment_id").equals(features.column("payment_id")):
        raise AssertionError("feature rows are not in payment order")  # pragma: no cover
    return Prepared(payments, features, data.labels, data.truth, feature_set, data.fingerprint(),
                    data=data)


def data_span(data: EventData | Prepared) -> tuple[datetime, datetime]:
    """First and last payment time."""
    ts = data.payments.column("ts")
    if len(ts) == 0:
        raise ConfigError("the dataset has no payments")
    lo, hi = pc.min_max(ts).values()
    return lo.as_py(), hi.as_py()


def _floor_day(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class TrainWindow:
    """Train on payments in [start, end) with the labels reported before ``label_cutoff``;
    the last ``valid_days`` of the window are held out for early stopping and calibration."""

    start: datetime
    end: datetime
    label_cutoff: datetime
    valid_days: int = 0

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ConfigError(f"training window is empty: start {self.start:%Y-%m-%d} is not "
                              f"before end {self.end:%Y-%m-%d}")
        if self.label_cutoff < self.end:
            raise ConfigError("the label cutoff must not be before the end of the training "
                              "window")
        if self.valid_days < 0 or timedelta(days=self.valid_days) >= self.end - self.start:
            raise ConfigError(f"valid_days={self.valid_days} leaves no training days in a "
                              f"{(self.end - self.start).days}-day window")

    @property
    def fit_end(self) -> datetime:
        return self.end - timedelta(days=self.valid_days)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "label_cutoff": self.label_cutoff.isoformat(), "valid_days": self.valid_days}


def default_train_window(data: EventData | Prepared, *, delay_days: int = 7,
                         train_days: int = 28, valid_days: int = 7) -> TrainWindow:
    """The most recent window whose labels have matured: it ends ``delay_days`` before the last
    payment (labels of younger payments are mostly not in yet)."""
    first, last = data_span(data)
    cutoff = _floor_day(last) + timedelta(days=1)
    end = cutoff - timedelta(days=delay_days)
    start = max(_floor_day(first), end - timedelta(days=train_days))
    if end <= start:
        raise ConfigError(f"the data spans {(last - first).days + 1} day(s): too short for a "
                          f"{delay_days}-day label delay")
    valid = min(valid_days, max(0, (end - start).days - 1))
    return TrainWindow(start, end, cutoff, valid)


def sequence_matrix(runtime: Any, prepared: Prepared) -> np.ndarray:
    """The sequence encoder's model inputs for every payment of ``prepared``, row for row
    (ONNX Runtime, batch; NaN for a payment without the entity)."""
    return runtime.features_batch(prepared.payments)


def graph_spec(features: Sequence[str] | None = None, *, max_links: int | None = None,
               kinds: Sequence[str] | None = None) -> dict[str, Any]:
    """What a bundle records of its identity-graph inputs: the features (default: all of
    :data:`vigil.identity._graph.FEATURES`), the cap on accounts an attribute links and the
    attributes that join components (the graph's defaults when not given)."""
    from vigil.identity._graph import FEATURES, LINKING, MAX_LINKS

    names = list(FEATURES if features is None else features)
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise ConfigError(f"unknown identity-graph feature {unknown[0] if unknown else '(none)'!r}"
                          f"; choose among {', '.join(FEATURES)}")
    return {"features": names, "max_links": int(max_links or MAX_LINKS),
            "kinds": list(LINKING if kinds is None else kinds)}


def graph_table(prepared: Prepared, spec: Mapping[str, Any]) -> pa.Table:
    """The identity graph's features for every payment of ``prepared``, row for row, point in
    time (:func:`vigil.identity._graph.identity_graph_features` with ``spec``'s settings),
    built once per dataset and settings, then reused."""
    from vigil.identity._graph import identity_graph_features

    if prepared.data is None or getattr(prepared.data, "accounts", None) is None:
        raise ConfigError("the identity graph's features need the dataset's accounts and "
                          "verification sessions (a realistic-world dataset: vigil simulate "
                          "--world realistic); this dataset has no accounts table")
    key = ("identity_graph", int(spec["max_links"]), tuple(spec["kinds"]))
    table = prepared.built.get(key)
    if table is None:
        table = identity_graph_features(prepared.data, max_links=int(spec["max_links"]),
                                        kinds=tuple(spec["kinds"]))
        prepared.built[key] = table
    if not table.column("payment_id").equals(prepared.payments.column("payment_id")):
        raise ConfigError("the identity graph's rows are not the prepared payments in order; "
                          "build both from the same dataset")
    return table


def model_inputs(bundle: ModelBundle, prepared: Prepared) -> pa.Table:
    """``prepared``'s feature table with the bundle's sequence features and identity-graph
    features appended (the table itself for a bundle with neither)."""
    table = prepared.features
    if bundle.sequence is not None:
        S = sequence_matrix(bundle.sequence, prepared)
        for j, name in enumerate(bundle.sequence_names):
            table = table.append_column(name, pa.array(S[:, j].astype(np.float64),
                                                       from_pandas=True))
    if bundle.identity_graph:
        graph = graph_table(prepared, bundle.identity_graph)
        for name in bundle.graph_names:
            table = table.append_column(name, graph.column(name))
    return table


def train_bundle(prepared: Prepared, window: TrainWindow, *,
                 params: Mapping[str, Any] | None = None,
                 progress: Progress | None = None,
                 sequence: Any = None,
                 identity_graph: Mapping[str, Any] | None = None) -> ModelBundle:
    """Fit a :class:`~vigil.models.RiskModel` on ``window`` and wrap it in a bundle.

    ``sequence``: a sequence encoder checkpoint folder (from ``vigil pretrain``) or a
    :class:`~vigil.models.sequence.SequenceRuntime`; its principal components for every
    payment become model inputs after the feature set's, and the bundle carries the encoder.
    ``identity_graph``: a :func:`graph_spec`; the identity graph's point-in-time features
    (accounts linked by address, document and face; the fraud known in their component)
    come after those, and the bundle records the spec to build them again when it scores.
    """
    say = progress or (lambda _msg: None)
    runtime = None
    if sequence is not None:
        from vigil.models.sequence import SequenceRuntime

        runtime = sequence if isinstance(sequence, SequenceRuntime) else SequenceRuntime(sequence)
    ts = prepared.ts
    fit_mask = in_window(ts, window.start, window.fit_end)
    valid_mask = in_window(ts, window.fit_end, window.end)
    y_all = labels_known_at(prepared.payments.column("payment_id"), prepared.labels,
                            window.label_cutoff)
    if not fit_mask.any():
        raise ConfigError(f"no payments between {window.start:%Y-%m-%d} and "
                          f"{window.fit_end:%Y-%m-%d} to train on")
    X = prepared.matrix()
    names = list(prepared.feature_set.names)
    sequence_record: dict[str, Any] | None = None
    if runtime is not None:
        t0 = time.perf_counter()
        S = sequence_matrix(runtime, prepared)
        seconds = time.perf_counter() - t0
        say(f"sequence encoder: {len(runtime.feature_names)} inputs for {len(S):,} payments "
            f"in {seconds:.1f} s")
        X = np.hstack([X, S.astype(np.float32)])
        names += runtime.feature_names
        sequence_record = {"checkpoint": str(runtime.folder), "seconds": round(seconds, 2),
                           "features": runtime.feature_names}
    if identity_graph:
        identity_graph = dict(identity_graph)
        t0 = time.perf_counter()
        graph = graph_table(prepared, identity_graph)
        X = np.hstack([X, feature_matrix(graph, list(identity_graph["features"]))])
        names += list(identity_graph["features"])
        say(f"identity graph: {len(identity_graph['features'])} inputs in "
            f"{time.perf_counter() - t0:.1f} s")
    model = RiskModel(**dict(params or {}))
    say(f"training on {int(fit_mask.sum()):,} payments ({int(y_all[fit_mask].sum()):,} frauds "
        f"known by {window.label_cutoff:%Y-%m-%d}), validating on {int(valid_mask.sum()):,}")
    model.fit(X[fit_mask], y_all[fit_mask], feature_names=names,
              X_valid=X[valid_mask] if valid_mask.any() else None,
              y_valid=y_all[valid_mask] if valid_mask.any() else None)
    metrics: dict[str, Any] = {}
    if valid_mask.any() and 0 < y_all[valid_mask].sum() < valid_mask.sum():
        scores = model.predict_proba(X[valid_mask])
        metrics["validation"] = fraud_metrics(
            y_all[valid_mask], scores, cards=prepared.column("card_id")[valid_mask],
            days=prepared.day_keys()[valid_mask],
            amounts=prepared.column("amount")[valid_mask])
    training = {
        "window": window.to_dict(),
        "payments": int(fit_mask.sum()),
        "frauds": int(y_all[fit_mask].sum()),
        "validation_payments": int(valid_mask.sum()),
        "best_iteration": model.best_iteration_,
        "data_fingerprint": prepared.fingerprint,
    }
    if sequence_record is not None:
        training["sequence"] = sequence_record
    return ModelBundle(prepared.feature_set, model, training=training, metrics=metrics,
                       sequence=runtime, identity_graph=identity_graph or None)


def score_window(bundle: ModelBundle, prepared: Prepared, start: datetime | None = None,
                 end: datetime | None = None) -> pa.Table:
    """Scores for the payments in [start, end) (all when not given)."""
    mask = np.ones(prepared.payments.num_rows, dtype=bool)
    if start is not None or end is not None:
        first, last = data_span(prepared)
        mask = in_window(prepared.ts, start or first, end or last + timedelta(microseconds=1))
    idx = pa.array(np.flatnonzero(mask))
    scored = bundle.score(model_inputs(bundle, prepared).take(idx))
    return scored.add_column(1, "ts", prepared.ts.take(idx))


def test_rows(bundle: ModelBundle, prepared: Prepared, start: datetime, end: datetime, *,
              drop_known_compromised: bool = True,
              known_since: datetime | None = None) -> tuple[np.ndarray, int]:
    """The payments of a test window [start, end) for ``bundle``, as a row mask of
    ``prepared``, and how many were left out as known compromised.

    The window must not start before the bundle's label cutoff (the model saw that period's
    labels). With ``drop_known_compromised`` (the Handbook protocol), payments of cards whose
    fraud was already reported before the day are left out: they would be blocked already.
    ``known_since`` bounds which earlier frauds count (default: the bundle's training start).
    """
    window = bundle.training.get("window", {})
    cutoff = window.get("label_cutoff")
    if cutoff and datetime.fromisoformat(cutoff) > start:
        raise ConfigError(f"the evaluation window starts {start:%Y-%m-%d}, before the model's "
                          f"label cutoff {cutoff[:10]}: it was trained with labels of that "
                          "period; evaluate on a later window")
    test = in_window(prepared.ts, start, end)
    if known_since is None:
        known_since = datetime.fromisoformat(window["start"]) if window.get("start") else start
    dropped = 0
    if drop_known_compromised:
        fold = Fold(known_since, known_since, start, end)
        drop = known_compromised_mask(prepared.payments, prepared.labels, fold) & test
        dropped = int(drop.sum())
        test &= ~drop
    if not test.any():
        raise ConfigError(f"no payments to evaluate between {start:%Y-%m-%d} and {end:%Y-%m-%d}")
    return test, dropped


def evaluate_window(bundle: ModelBundle, prepared: Prepared, start: datetime, end: datetime, *,
                    drop_known_compromised: bool = True,
                    known_since: datetime | None = None) -> dict[str, Any]:
    """Metrics of ``bundle`` on the payments in [start, end), against every label in the data
    (the rows are those of :func:`test_rows`)."""
    test, dropped = test_rows(bundle, prepared, start, end,
                              drop_known_compromised=drop_known_compromised,
                              known_since=known_since)
    y = labels_known_at(prepared.payments.column("payment_id"), prepared.labels, None)[test]
    scores = bundle.predict_proba(model_inputs(bundle, prepared).take(
        pa.array(np.flatnonzero(test))))
    out: dict[str, Any] = {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "dropped_known_compromised": dropped,
        "metrics": fraud_metrics(y, scores, cards=prepared.column("card_id")[test],
                                 days=prepared.day_keys()[test],
                                 amounts=prepared.column("amount")[test]),
    }
    scen = prepared.scenarios()
    if scen is not None and y.any() and not y.all():
        flagged = scores > threshold_at_fpr(y, scores, 0.01)
        out["recall_by_scenario@1%fpr"] = recall_by_group(y, flagged, scen[test])
    return out
