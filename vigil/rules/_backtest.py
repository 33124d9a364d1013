"""Replay history through a rule set and count what it would have caught and cost.

Each payment gets the decision the rules would have made (vectorised, same semantics as
:meth:`RuleSet.decide`); the labels say which payments were fraud. The report counts, for
the whole set and for each rule (the payments it decided: the first match in evaluation
order), fraud blocked and sent to review, good payments blocked and sent to review, with
their money, the precision of blocking and of review, and the review queue per day; with a
baseline (the rules in force), the same for it and the difference.

.. warning::
   The labels are used as given. A backtest over recent weeks with labels as known today
   counts recent fraud as good (its chargebacks have not arrived yet): leave a label delay
   at the end of the history, or filter the labels by ``reported_at`` to see what was known
   at a date.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vigil._errors import SchemaError
from vigil.events import validate_labels
from vigil.rules._compile import ACTION_ORDER, DEFAULT_ACTION, RuleSet
from vigil.rules._lists import ListLookup

HISTORY_COLUMNS = ("payment_id", "ts", "amount")
"""Columns a history table needs besides the attributes its rules read."""


class _History:
    """The payments of a backtest: amounts, fraud flags and day numbers as arrays."""

    def __init__(self, history: pa.Table | pd.DataFrame, labels: pa.Table | pd.DataFrame):
        names = history.column_names if isinstance(history, pa.Table) else list(history.columns)
        missing = [c for c in HISTORY_COLUMNS if c not in names]
        if missing:
            raise SchemaError(f"missing required column(s) {', '.join(missing)}",
                              source="history")
        if isinstance(history, pa.Table):
            base = history.select(list(HISTORY_COLUMNS)).to_pandas()
        else:
            base = history[list(HISTORY_COLUMNS)].reset_index(drop=True)
        for column in HISTORY_COLUMNS:
            if base[column].isna().any():
                row = int(np.flatnonzero(base[column].isna().to_numpy())[0]) + 1
                raise SchemaError("value is missing", source="history", row=row, column=column)
        duplicated = base["payment_id"].duplicated().to_numpy()
        if duplicated.any():
            row = int(np.flatnonzero(duplicated)[0])
            raise SchemaError(f"{base['payment_id'].iloc[row]!r} appears more than once; ids "
                              "must be unique", source="history", row=row + 1,
                              column="payment_id")
        try:
            self.amount = pd.to_numeric(base["amount"]).to_numpy(dtype=float)
            ts = pd.to_datetime(base["ts"], utc=True)
        except (ValueError, TypeError) as exc:
            raise SchemaError(f"amount must be numbers and ts timestamps ({exc})",
                              source="history") from exc
        if isinstance(labels, pd.DataFrame):
            labels = pa.Table.from_pandas(labels, preserve_index=False)
        labels = validate_labels(labels)
        fraud_ids = pc.filter(labels.column("payment_id"), labels.column("is_fraud"))
        # a payment is fraud if any of its labels says so
        self.fraud = base["payment_id"].isin(set(fraud_ids.to_pylist())).to_numpy()
        self.n = len(base)
        if self.n:
            days = ts.dt.floor("D")
            self.first, self.last = days.min(), days.max()
            self.day = ((days - self.first).dt.days).to_numpy(dtype=np.int64)
            self.n_days = int((self.last - self.first).days) + 1
        else:
            self.first = self.last = None
            self.day = np.zeros(0, dtype=np.int64)
            self.n_days = 0

    def summary(self, group: np.ndarray, action: np.ndarray) -> dict[str, Any]:
        """Counts, money, precision and daily volume of the payments in ``group``."""
        fraud, amount = self.fraud, self.amount
        out: dict[str, Any] = {
            "payments": int(group.sum()),
            "frauds": int((group & fraud).sum()),
            "fraud_amount": float(amount[group & fraud].sum()),
            "good": int((group & ~fraud).sum()),
            "good_amount": float(amount[group & ~fraud].sum()),
        }
        out["precision"] = _ratio(out["frauds"], out["payments"])
        out["per_day_mean"] = _ratio(out["payments"], self.n_days)
        for act, done in (("block", "blocked"), ("review", "reviewed")):
            hit = group & (action == act)
            out[f"fraud_{done}"] = int((hit & fraud).sum())
            out[f"fraud_{done}_amount"] = float(amount[hit & fraud].sum())
            out[f"good_{done}"] = int((hit & ~fraud).sum())
            out[f"good_{done}_amount"] = float(amount[hit & ~fraud].sum())
            out[f"{act}_precision"] = _ratio(out[f"fraud_{done}"], int(hit.sum()))
        reviews = np.bincount(self.day[group & (action == "review")], minlength=self.n_days)
        out["reviews_per_day_mean"] = float(reviews.mean()) if self.n_days else None
        out["reviews_per_day_max"] = int(reviews.max()) if self.n_days else None
        return out


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b else None


def _evaluate(rules: RuleSet, history: pa.Table | pd.DataFrame, h: _History,
              lists: ListLookup | None) -> tuple[dict[str, Any], np.ndarray]:
    matched = rules.matches(history, lists)
    action, decided_by = rules.first_matches(matched, h.n)
    everything = np.ones(h.n, dtype=bool)
    total = h.summary(everything, action)
    total["fraud_blocked_share"] = _ratio(total["fraud_blocked"], total["frauds"])
    total["fraud_blocked_amount_share"] = _ratio(total["fraud_blocked_amount"],
                                                 total["fraud_amount"])
    total["good_blocked_rate"] = _ratio(total["good_blocked"], total["good"])
    by_action = {}
    for act in ACTION_ORDER:
        group = (action == act) & (decided_by != None)  # noqa: E711 - elementwise
        by_action[act] = {"payments": int(group.sum()), "frauds": int((group & h.fraud).sum())}
    default = decided_by == None  # noqa: E711 - elementwise
    by_action["default"] = {"payments": int(default.sum()),
                            "frauds": int((default & h.fraud).sum())}
    by_rule = [{"id": rule.id, "action": rule.action, "line": rule.line, "rule": str(rule),
                "matched": int(matched[rule.id].sum()),
                **h.summary(decided_by == rule.id, action)} for rule in rules.rules]
    default_row = {"id": None, "action": DEFAULT_ACTION, "line": None, "rule": "(no rule)",
                   "matched": int(default.sum()), **h.summary(default, action)}
    return {"rules": len(rules), "total": total, "by_action": by_action, "by_rule": by_rule,
            "default": default_row}, action


def backtest(rules: RuleSet, history: pa.Table | pd.DataFrame, labels: pa.Table | pd.DataFrame,
             *, lists: ListLookup | None = None, baseline: RuleSet | None = None
             ) -> dict[str, Any]:
    """What ``rules`` would have decided on ``history``, scored against ``labels``.

    ``history`` has ``payment_id``, ``ts``, ``amount`` and a column for every attribute the
    rules read (payment fields, features, ``risk_score``...); ``labels`` follow
    :data:`~vigil.events.LABEL_SCHEMA` (a payment is fraud if any label says so; payments
    without a fraud label count as good). Amounts are summed as given: convert to one
    currency first. Returns a JSON-ready dict: ``period``, totals, ``rules`` (``total``,
    ``by_action``, ``by_rule``, ``default``), and with a ``baseline`` the same for it,
    ``vs_baseline`` (rules minus baseline, for every total) and ``changed`` (payments whose
    decision changes, by old and new action). See docs/rules.md for every key.

    >>> from vigil.rules import compile_rules
    >>> history = pa.table({"payment_id": ["p1", "p2", "p3"], "amount": [900.0, 20.0, 5.0],
    ...     "ts": pa.array([0, 3_600_000_000, 90_000_000_000], pa.timestamp("us", "UTC")),
    ...     "risk_score": [90, 80, 10]})
    >>> labels = pa.table({"payment_id": ["p1"], "kind": ["dispute"], "is_fraud": [True],
    ...     "reported_at": pa.array([10**12], pa.timestamp("us", "UTC"))})
    >>> rules = compile_rules("block if :risk_score: > 75", attributes={"risk_score": "number"})
    >>> total = backtest(rules, history, labels)["rules"]["total"]
    >>> total["fraud_blocked_amount"], total["good_blocked"], total["block_precision"]
    (900.0, 1, 0.5)
    """
    h = _History(history, labels)
    columns = set(history.column_names if isinstance(history, pa.Table) else history.columns)
    needed = rules.attributes | (baseline.attributes if baseline is not None else frozenset())
    if needed - columns:
        raise SchemaError("no column for the attribute(s) "
                          + ", ".join(f":{n}:" for n in sorted(needed - columns))
                          + " that the rules read", source="history")
    report: dict[str, Any] = {
        "period": {"start": h.first.date().isoformat() if h.first is not None else None,
                   "end": h.last.date().isoformat() if h.last is not None else None,
                   "days": h.n_days},
        "payments": h.n,
        "frauds": int(h.fraud.sum()),
        "fraud_amount": float(h.amount[h.fraud].sum()),
        "good_amount": float(h.amount[~h.fraud].sum()),
    }
    report["rules"], action = _evaluate(rules, history, h, lists)
    report["baseline"] = report["vs_baseline"] = report["changed"] = None
    if baseline is not None:
        report["baseline"], old = _evaluate(baseline, history, h, lists)
        new_total, old_total = report["rules"]["total"], report["baseline"]["total"]
        report["vs_baseline"] = {
            key: (value - old_total[key] if value is not None and old_total[key] is not None
                  else None)
            for key, value in new_total.items()}
        report["changed"] = _changes(old, action, h)
    return report


def _changes(old: np.ndarray, new: np.ndarray, h: _History) -> list[dict[str, Any]]:
    frame = pd.DataFrame({"from": old, "to": new, "fraud": h.fraud, "amount": h.amount})
    frame = frame[frame["from"] != frame["to"]]
    out = []
    for (before, after), group in frame.groupby(["from", "to"], sort=True):
        fraud = group["fraud"].to_numpy()
        amount = group["amount"].to_numpy()
        out.append({"from": before, "to": after, "payments": len(group),
                    "frauds": int(fraud.sum()), "fraud_amount": float(amount[fraud].sum()),
                    "good_amount": float(amount[~fraud].sum())})
    return out


# --------------------------------------------------------------------------- rendering


def _count(v: Any) -> str:
    return "–" if v is None else f"{int(v):,}"


def _money(v: Any) -> str:
    return "–" if v is None else f"{v:,.2f}"


def _whole_money(v: Any) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _share(v: Any) -> str:
    return "–" if v is None else f"{v:.1%}"


def _precision(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def _per_day(v: Any) -> str:
    return "–" if v is None else f"{v:,.1f}"


def _signed(fmt: Callable[[Any], str]) -> Callable[[Any], str]:
    def show(v: Any) -> str:
        if v is None:
            return "–"
        text = fmt(v)
        return text if text.startswith("-") or v == 0 else f"+{text}"

    return show


SUMMARY_ROWS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("fraud_blocked", "fraud blocked", _count),
    ("fraud_blocked_amount", "fraud blocked, amount", _money),
    ("fraud_blocked_share", "share of fraud blocked", _share),
    ("good_blocked", "good payments blocked", _count),
    ("good_blocked_amount", "good payments blocked, amount", _money),
    ("block_precision", "block precision", _precision),
    ("fraud_reviewed", "fraud sent to review", _count),
    ("fraud_reviewed_amount", "fraud sent to review, amount", _money),
    ("good_reviewed", "good payments sent to review", _count),
    ("good_reviewed_amount", "good sent to review, amount", _money),
    ("review_precision", "review precision", _precision),
    ("reviews_per_day_mean", "reviews per day, mean", _per_day),
    ("reviews_per_day_max", "reviews per day, max", _count),
)
"""The rows of the summary table: report key, label, format."""

RULE_COLUMNS = ("rule", "action", "payments", "fraud", "fraud amount", "good", "good amount",
                "precision")
"""The columns of the per-rule table."""

Table = tuple[str, list[str], list[list[str]]]


def backtest_tables(report: dict[str, Any]) -> list[Table]:
    """The report as ``(title, header, rows)`` tables of text: the summary (rules, baseline
    and difference side by side), then one row per rule for the rules and the baseline."""
    period = report["period"]
    title = (f"backtest {period['start']} to {period['end']} ({period['days']} days): "
             f"{report['payments']:,} payments, {report['frauds']:,} fraud"
             if report["payments"] else "backtest: no payments")
    header = ["", "rules"]
    columns = [(report["rules"]["total"], lambda f: f)]
    if report.get("baseline"):
        header += ["baseline", "difference"]
        columns += [(report["baseline"]["total"], lambda f: f),
                    (report["vs_baseline"], _signed)]
    summary = [[label] + [wrap(fmt)(values.get(key)) for values, wrap in columns]
               for key, label, fmt in SUMMARY_ROWS]
    tables: list[Table] = [(title, header, summary)]
    for name in ("rules", "baseline"):
        if report.get(name):
            rows = [_rule_row(r) for r in report[name]["by_rule"]]
            rows.append(_rule_row(report[name]["default"]))
            tables.append((f"{name}, by deciding rule", list(RULE_COLUMNS), rows))
    return tables


def _rule_row(r: dict[str, Any]) -> list[str]:
    return [r["id"] or "(default)", r["action"], _count(r["payments"]), _count(r["frauds"]),
            _whole_money(r["fraud_amount"]), _count(r["good"]), _whole_money(r["good_amount"]),
            _precision(r["precision"])]


def render_backtest(report: dict[str, Any]) -> str:
    """The report as Markdown tables (plain text that also reads well unrendered)."""
    parts = []
    for title, header, rows in backtest_tables(report):
        widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
        lefts = [i == 0 or name == "action" for i, name in enumerate(header)]
        rule = "|" + "|".join("-" * (w + 2) if left else "-" * (w + 1) + ":"
                              for w, left in zip(widths, lefts, strict=True)) + "|"
        lines = [_markdown_row(r, widths, lefts) for r in [header, *rows]]
        parts.append("\n".join([f"**{title}**", "", lines[0], rule, *lines[1:]]))
    return "\n\n".join(parts) + "\n"


def _markdown_row(cells: list[str], widths: list[int], lefts: list[bool]) -> str:
    padded = [c.ljust(w) if left else c.rjust(w)
              for c, w, left in zip(cells, widths, lefts, strict=True)]
    return "| " + " | ".join(padded) + " |"
