"""Global explanations from XGBoost's own numbers: split gain per feature, and SHAP values
(``pred_contribs``) summarised over a sample of the test window; plus a few payments explained
one by one, with the same reasons the scoring API gives."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vigil.reports._window import ScoredWindow
from vigil.scoring import Describer

SHAP_SAMPLE = 4000


def importance(w: ScoredWindow) -> list[dict[str, float]]:
    """Share of the total split gain per feature, largest first."""
    gain = w.bundle.model.feature_importance("total_gain")
    total = sum(gain.values()) or 1.0
    rows = [{"feature": k, "gain_share": v / total} for k, v in gain.items()]
    return sorted(rows, key=lambda r: -r["gain_share"])


def shap_sample(w: ScoredWindow, size: int = SHAP_SAMPLE, seed: int = 0) -> dict[str, Any]:
    """SHAP values of a sample of the window: every fraud up to half the sample, the rest
    good payments, so both classes show in the summary."""
    rng = np.random.default_rng(seed)
    frauds, goods = np.flatnonzero(w.y), np.flatnonzero(~w.y)
    n_fraud = min(len(frauds), size // 2)
    n_good = min(len(goods), size - n_fraud)
    rows = np.sort(np.concatenate([rng.choice(frauds, n_fraud, replace=False),
                                   rng.choice(goods, n_good, replace=False)]))
    _, _, contribs = w.bundle.model.explain(w.X[rows])
    return {"rows": rows, "values": contribs[:, :-1], "X": w.X[rows],
            "names": w.bundle.feature_names}


def shap_summary(sample: dict[str, Any]) -> list[dict[str, float]]:
    """Mean |SHAP| (log-odds) per feature over the sample, largest first."""
    mean_abs = np.abs(sample["values"]).mean(axis=0) if len(sample["values"]) else \
        np.zeros(len(sample["names"]))
    rows = [{"feature": n, "mean_abs_shap": float(v)}
            for n, v in zip(sample["names"], mean_abs, strict=True)]
    return sorted(rows, key=lambda r: -r["mean_abs_shap"])


def examples(w: ScoredWindow, threshold: float, per_kind: int = 2,
             top_reasons: int = 3) -> list[dict[str, Any]]:
    """A few payments with their reasons: frauds caught (highest scores), frauds missed
    (the highest-scored frauds under the threshold: the near misses), and good payments
    flagged (the highest-scored good ones)."""
    kinds = (
        ("fraud caught", w.y & (w.probability > threshold), -1),
        ("fraud missed", w.y & ~(w.probability > threshold), -1),
        ("good payment flagged", ~w.y & (w.probability > threshold), -1),
    )
    describer = Describer(w.bundle.feature_set.specs(), w.bundle.feature_set.entity_keys)
    names = w.bundle.feature_names
    out = []
    for kind, mask, sign in kinds:
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            continue
        pick = idx[np.argsort(sign * w.probability[idx], kind="stable")[:per_kind]]
        _, _, contribs = w.bundle.model.explain(w.X[pick])
        for row, c in zip(pick, contribs, strict=True):
            order = np.argsort(-c[:-1], kind="stable")[:top_reasons]
            reasons = []
            for i in order:
                if c[i] <= 0:
                    break
                v = float(w.X[row, i])
                value = None if math.isnan(v) else v
                reasons.append({"feature": names[i], "contribution": float(c[i]),
                                "sentence": describer.sentence(names[i], value)})
            out.append({"kind": kind, "payment_id": str(w.payment_id[row]),
                        "ts": str(w.ts[row])[:19].replace("T", " "),
                        "amount": float(w.amount[row]), "risk_score": int(w.risk_score[row]),
                        "probability": float(w.probability[row]),
                        "scenario": None if w.scenario is None else str(w.scenario[row]),
                        "reasons": reasons})
    return out
