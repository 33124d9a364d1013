"""Scoring one payment: online features → model → risk score and reasons → rules → decision.

The :class:`Scorer` is the in-process core of the scoring service (which adds HTTP, keys and
the store around it) and of replays. It reads the payment's features from the online state
without recording the payment; the caller records it (``scorer.record(payment)``) once the
payment is durably stored, so a failed write leaves no trace in the features.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vigil._errors import ConfigError
from vigil.features.online import FeatureState, OnlineFeatures
from vigil.models import ModelBundle
from vigil.models._risk_score import risk_level_one, risk_score_one
from vigil.scoring._reasons import Describer, Reason


@dataclass
class ScoreResult:
    """A scored payment: the response of ``POST /v1/payments`` without the HTTP parts."""

    payment_id: str
    probability: float
    risk_score: int
    risk_level: str
    decision: str
    rule: dict[str, str] | None
    reasons: list[Reason]
    features: dict[str, float | None]
    model_version: str
    timing_us: dict[str, float] = field(default_factory=dict)

    def to_dict(self, *, with_features: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.payment_id,
            "risk_score": self.risk_score,
            "risk_level": self.risk_level,
            "probability": round(self.probability, 6),
            "decision": self.decision,
            "rule": self.rule,
            "reasons": [r.to_dict() for r in self.reasons],
            "model_version": self.model_version,
            "timing_us": {k: round(v, 1) for k, v in self.timing_us.items()},
        }
        if with_features:
            out["features"] = self.features
        return out


def online_features(bundle: ModelBundle, state: FeatureState | None = None) -> OnlineFeatures:
    """The online features a bundle's scorer reads: its feature set's, and, when it carries
    a sequence encoder, each entity's last ``history_rows`` payments (the columns the token
    fields read) kept whatever their age."""
    keep = None
    if bundle.sequence is not None:
        config = bundle.sequence.config
        keep = {config.entity: (config.history_rows, bundle.sequence.columns)}
    return OnlineFeatures(bundle.feature_set, state, keep_last=keep)


def check_servable(bundle: ModelBundle) -> None:
    """Raise :class:`~vigil.ConfigError` for a bundle whose inputs cannot be built per
    payment online (the identity graph's, built offline from a whole dataset)."""
    if bundle.identity_graph:
        raise ConfigError(
            f"{bundle.model_version or 'this bundle'}: its model reads the identity graph's "
            "features, which are built offline from a whole dataset; online scoring cannot "
            "build them per payment yet. Serve a bundle trained without --identity-graph")


class Scorer:
    """Scores payments with a model bundle, online features, and optionally rules and lists.

    ``rules`` is anything with ``decide(attributes, lists)`` returning an object with
    ``action`` and ``rule`` (a :class:`vigil.rules.RuleSet`); without rules every payment is
    allowed. ``top_reasons``: how many reasons to give (the features that raised the score
    most).

    A bundle with a sequence encoder (``bundle.sequence``) also embeds the payment from its
    card's last ``history_rows`` payments in the online state (ONNX Runtime, no torch); its
    principal components follow the feature set's features, and ``timing_us`` has a
    ``sequence`` entry.
    """

    def __init__(self, bundle: ModelBundle, online: OnlineFeatures | None = None, *,
                 rules: Any = None, lists: Any = None, top_reasons: int = 3) -> None:
        check_servable(bundle)
        self.bundle = bundle
        self.model = bundle.model.for_serving()
        self.online = online if online is not None else online_features(bundle)
        self.sequence = bundle.sequence
        self.sequence_names = bundle.sequence_names
        if [*self.online.feature_set.names, *self.sequence_names] != bundle.feature_names:
            raise ValueError("the online features are not the model's feature set")
        self._entity = None
        if self.sequence is not None:
            self._entity = self.sequence.config.entity
            if self.online.keep_last.get(self._entity, (0,))[0] < \
                    self.sequence.config.history_rows:
                raise ValueError(f"the online state does not keep the last "
                                 f"{self.sequence.config.history_rows} payments per "
                                 f"{self._entity} that the sequence encoder reads; build it "
                                 "with vigil.scoring.online_features(bundle, state)")
            who = {"card_id": "card"}.get(self._entity, self._entity.replace("_", " "))
            self._sequence_reason = f"the {who}'s recent payment pattern"
        self.rules = rules
        self.lists = lists
        self.top_reasons = top_reasons
        self.names = bundle.feature_names
        self._describer = Describer(bundle.feature_set.specs(), bundle.feature_set.entity_keys)

    @property
    def model_version(self) -> str:
        return self.bundle.model_version or "unversioned"

    def score(self, payment: Mapping[str, Any], *, explain: bool = True) -> ScoreResult:
        """Score one payment (a dict with the payment schema's fields; ``ts`` a datetime).

        ``explain=False`` skips the SHAP contributions (no reasons): a plain prediction.
        """
        features, x, timing = self.features_timed(payment)
        t1 = time.perf_counter()
        if explain:
            _, probability, contribs = self.model.explain_one(x)
        else:
            _, probability = self.model.predict_one(x)
            contribs = np.zeros(len(self.names) + 1)
        t2 = time.perf_counter()
        return self.finish(payment, features, x, probability, contribs,
                           {**timing, "model": (t2 - t1) * 1e6})

    def features(self, payment: Mapping[str, Any]) -> tuple[dict[str, float | None],
                                                            np.ndarray]:
        """The payment's features, by name and as the model's input row."""
        features, x, _ = self.features_timed(payment)
        return features, x

    def features_timed(self, payment: Mapping[str, Any]
                       ) -> tuple[dict[str, float | None], np.ndarray, dict[str, float]]:
        """:meth:`features`, and the microseconds spent (``features``, and ``sequence`` for
        the encoder)."""
        t0 = time.perf_counter()
        if self.sequence is None:
            features = self.online.features(payment)
            timing = {"features": (time.perf_counter() - t0) * 1e6}
        else:
            features, history = self.online.features_and_last(payment, self._entity)
            t1 = time.perf_counter()
            if payment.get(self._entity) is None:
                seq: list[float | None] = [None] * len(self.sequence_names)
            else:
                seq = [None if math.isnan(v) else v
                       for v in self.sequence.features_one(history, payment).tolist()]
            features.update(zip(self.sequence_names, seq, strict=True))
            t2 = time.perf_counter()
            timing = {"features": (t1 - t0) * 1e6, "sequence": (t2 - t1) * 1e6}
        x = np.array([np.nan if features[n] is None else features[n] for n in self.names],
                     dtype=np.float64)
        return features, x, timing

    def finish(self, payment: Mapping[str, Any], features: dict[str, float | None],
               x: np.ndarray, probability: float, contribs: np.ndarray,
               timing_us: dict[str, float]) -> ScoreResult:
        """Risk score, reasons and the rules' decision, from the model's output for ``x``
        (the service computes that output for several concurrent payments at once)."""
        t2 = time.perf_counter()
        score = risk_score_one(probability)
        level = risk_level_one(score)
        reasons = self._reasons(x, contribs)
        decision, rule = "allow", None
        if self.rules is not None:
            attributes = {**payment, **features, "risk_score": score, "risk_level": level}
            decided = self.rules.decide(attributes, self.lists)
            decision = decided.action
            if decided.rule is not None:
                rule = {"id": decided.rule.id, "text": str(decided.rule)}
        t3 = time.perf_counter()
        timing = {**timing_us, "rules": (t3 - t2) * 1e6}
        timing["total"] = sum(timing.values())
        return ScoreResult(
            payment_id=str(payment["payment_id"]), probability=probability, risk_score=score,
            risk_level=level, decision=decision, rule=rule, reasons=reasons, features=features,
            model_version=self.model_version, timing_us=timing)

    def record(self, payment: Mapping[str, Any]) -> None:
        """Add a (stored) payment to the online state, for the payments after it."""
        self.online.record_payment(payment)

    def _reasons(self, x: np.ndarray, contribs: np.ndarray) -> list[Reason]:
        # plain Python on ~40 numbers: cheaper than a numpy call per payment
        c = contribs[:-1].tolist()
        order = heapq.nlargest(self.top_reasons, range(len(c)), key=c.__getitem__)
        out = []
        for i in order:
            if c[i] <= 0:
                break  # only what raised the risk is a reason
            v = float(x[i])
            value = None if math.isnan(v) else v
            name = self.names[i]
            sentence = (self._sequence_reason if name in self.sequence_names
                        else self._describer.sentence(name, value))
            out.append(Reason(name, value, c[i], sentence))
        return out
