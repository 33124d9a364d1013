"""The model card: what a model is for, what it was trained on, what it uses, how well it does
and where it is weak, written from the bundle and the report's own tables."""

from __future__ import annotations

from typing import Any

from vigil.reports._window import ScoredWindow
from vigil.scoring import Describer


def model_card(w: ScoredWindow, doc: dict[str, Any]) -> dict[str, Any]:
    """The card as data (the report renders it; ``model_card.md`` is its Markdown form)."""
    b = w.bundle
    training = b.training
    window = training.get("window") or {}
    describer = Describer(b.feature_set.specs(), b.feature_set.entity_keys)
    metrics = doc["metrics"]
    return {
        "model_version": b.model_version,
        "created_at": b.created_at,
        "intended_use": (
            "Scores card payments for fraud at authorisation time: a calibrated probability "
            "and a 0–100 risk score with reasons, for rules to block, review or allow. "
            f"Trained on payments of {window.get('start', '?')[:10]} to "
            f"{window.get('end', '?')[:10]}; it should be retrained as fraud patterns move "
            "and checked again before use on a market, channel or merchant base not in its "
            "training data. Not for decisions about people beyond the payment (credit, "
            "identity) and not a substitute for review of the payments it flags."),
        "data": {
            "training_window": (f"{window['start'][:10]} to {window['end'][:10]}, labels "
                                f"reported before {window['label_cutoff'][:16]}"
                                .replace("T", " ") if window else "not recorded"),
            "training_payments": f"{training.get('payments', 0):,}",
            "training_frauds_known_at_cutoff": f"{training.get('frauds', 0):,}",
            "data_fingerprint": training.get("data_fingerprint"),
            "test_window": f"{w.start:%Y-%m-%d} to {w.end:%Y-%m-%d}",
            "test_payments": f"{len(w):,}",
            "test_frauds": f"{int(w.y.sum()):,}",
        },
        "features": [{"name": n, "measures": describer.phrase(n)} for n in b.feature_names],
        "feature_set": b.feature_set.name,
        "parameters": {**b.model.get_params(),
                       "best_iteration": training.get("best_iteration")},
        "metrics": {k: v for k, v in metrics.items()},
        "weaknesses": doc["weaknesses"] or ["no slice with 10 or more frauds falls 10 points "
                                            "or more below the overall recall"],
    }


def card_markdown(card: dict[str, Any]) -> str:
    m = card["metrics"]
    lines = [f"# Model card: {card['model_version']}", "",
             f"Created {card['created_at']}; feature set `{card['feature_set']}`.", "",
             "## Intended use", "", card["intended_use"], "", "## Data", ""]
    for k, v in card["data"].items():
        lines.append(f"- **{k.replace('_', ' ')}**: {v}")
    lines += ["", "## Features", "", "| feature | what it measures |", "|---|---|"]
    lines += [f"| `{f['name']}` | {f['measures']} |" for f in card["features"]]
    lines += ["", "## Parameters", ""]
    lines += [f"- `{k}` = {v}" for k, v in card["parameters"].items()]
    lines += ["", "## Metrics on the test window (95 % card-bootstrap intervals)", "",
              "| metric | value | interval |", "|---|---|---|"]
    for name, v in m.items():
        if isinstance(v, dict) and "value" in v:
            lines.append(f"| {name} | {v['value']:.4f} | {v['lo']:.4f} – {v['hi']:.4f} |")
        elif isinstance(v, int | float):
            lines.append(f"| {name} | {v:.4g} | |")
    lines += ["", "## Known weaknesses", ""]
    lines += [f"- {w}" for w in card["weaknesses"]]
    return "\n".join(lines) + "\n"
