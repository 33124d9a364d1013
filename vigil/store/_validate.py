"""Checking payments, decisions and labels before they are written: one clear error per problem.

A payment follows :data:`~vigil.events.PAYMENT_COLUMNS`; keys it does not name, and the
optional columns the ``payments`` table has no column for (``account_id``, ``status``) when
they hold a value, are kept, as JSON, in the payment's ``extra`` column and come back as they
went in. A decision and a label
have a fixed set of fields, and an unknown one is an error (a typo would otherwise be lost).
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from vigil._errors import SchemaError
from vigil.events import CHANNELS, LABEL_KINDS, PAYMENT_COLUMNS
from vigil.store._records import DECISIONS
from vigil.store._tables import payments as payments_table

STORED_COLUMNS = tuple(c for c in PAYMENT_COLUMNS if c.name in payments_table.c)
"""The payment columns the ``payments`` table has a column for."""
_PAYMENT_FIELDS = {c.name for c in PAYMENT_COLUMNS}
_STORED_FIELDS = {c.name for c in STORED_COLUMNS}
_RESERVED = {"seq": "the sequence number it assigns", "decision": "the payment's decision",
             "labels": "the payment's labels", "review": "the payment's review case"}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_LIST_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DECISION_FIELDS = ("risk_score", "risk_level", "probability", "decision", "rule_id", "rule",
                    "reasons", "model_version", "timings", "created_at")
_LABEL_FIELDS = ("payment_id", "kind", "is_fraud", "reported_at", "received_at")


def payment_row(payment: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The ``payments`` row for ``payment``; raises :class:`~vigil.SchemaError` on a bad value."""
    source = _source("payment", payment)
    row: dict[str, Any] = {}
    for col in STORED_COLUMNS:
        value = payment.get(col.name)
        if value is None:
            if col.required:
                raise SchemaError("value is missing but the field is required",
                                  source=source, column=col.name)
            row[col.name] = None
        elif col.name == "ts":
            row["ts"] = _datetime(value, source, "ts")
        elif col.name == "amount":
            row["amount"] = _number(value, source, "amount", low=0.0)
        else:
            row[col.name] = _text(value, source, col.name)
    if not _CURRENCY.match(row["currency"]):
        raise SchemaError(f"{row['currency']!r}: currency must be an ISO 4217 code of three "
                          "upper-case letters, e.g. EUR", source=source, column="currency")
    if row["channel"] is not None and row["channel"] not in CHANNELS:
        raise SchemaError(f"{row['channel']!r}: channel must be one of {', '.join(CHANNELS)}",
                          source=source, column="channel")
    received = payment.get("received_at")
    row["received_at"] = now if received is None else _datetime(received, source, "received_at")
    extra = {k: v for k, v in payment.items() if k not in _STORED_FIELDS and k != "received_at"
             and not (v is None and k in _PAYMENT_FIELDS)}
    reserved = sorted(_RESERVED.keys() & extra.keys())
    if reserved:
        raise SchemaError(f"'{reserved[0]}' is a name the store uses itself (for "
                          f"{_RESERVED[reserved[0]]}); leave it out or rename it",
                          source=source, column=reserved[0])
    row["extra"] = _json(extra, source, "extra") if extra else None
    return row


def decision_row(payment_id: str, decision: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The ``decisions`` row for ``payment_id``'s decision."""
    source = f"decision of payment '{payment_id}'"
    if not isinstance(decision, Mapping):
        raise SchemaError(f"a decision must be a mapping of field to value, "
                          f"not {type(decision).__name__}", source=source)
    unknown = sorted(set(decision) - set(_DECISION_FIELDS))
    if unknown:
        raise SchemaError(f"unknown field(s) {', '.join(unknown)}; a decision has "
                          f"{', '.join(_DECISION_FIELDS)}", source=source)
    verdict = decision.get("decision")
    if verdict not in DECISIONS:
        raise SchemaError(f"{verdict!r}: decision must be one of {', '.join(DECISIONS)}",
                          source=source, column="decision")
    score = decision.get("risk_score")
    if isinstance(score, bool) or not isinstance(score, numbers.Integral) \
            or not 0 <= score <= 100:
        raise SchemaError(f"{score!r}: risk_score must be a whole number from 0 to 100",
                          source=source, column="risk_score")
    created = decision.get("created_at")
    return {
        "payment_id": payment_id,
        "risk_score": int(score),
        "risk_level": _text(_required(decision, "risk_level", source), source, "risk_level"),
        "probability": _number(_required(decision, "probability", source), source,
                               "probability", low=0.0, high=1.0),
        "decision": verdict,
        "rule_id": _optional_text(decision.get("rule_id"), source, "rule_id"),
        "rule": _optional_text(decision.get("rule"), source, "rule"),
        "reasons": _json(decision.get("reasons", []), source, "reasons"),
        "model_version": _optional_text(decision.get("model_version"), source, "model_version"),
        "timings": _json(decision.get("timings", {}), source, "timings"),
        "created_at": now if created is None else _datetime(created, source, "created_at"),
    }


def label_row(label: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The ``labels`` row for ``label`` (the store checks separately that the payment exists)."""
    source = _source("label", label)
    unknown = sorted(set(label) - set(_LABEL_FIELDS))
    if unknown:
        raise SchemaError(f"unknown field(s) {', '.join(unknown)}; a label has "
                          f"{', '.join(_LABEL_FIELDS)}", source=source)
    kind = label.get("kind")
    if kind not in LABEL_KINDS:
        raise SchemaError(f"{kind!r}: kind must be one of {', '.join(LABEL_KINDS)}",
                          source=source, column="kind")
    is_fraud = label.get("is_fraud")
    if not isinstance(is_fraud, bool | np.bool_):
        raise SchemaError(f"{is_fraud!r}: is_fraud must be true or false",
                          source=source, column="is_fraud")
    received = label.get("received_at")
    return {
        "payment_id": _text(_required(label, "payment_id", source), source, "payment_id"),
        "kind": kind,
        "is_fraud": bool(is_fraud),
        "reported_at": _datetime(_required(label, "reported_at", source), source, "reported_at"),
        "received_at": now if received is None else _datetime(received, source, "received_at"),
    }


def list_name(name: Any) -> str:
    """``name`` if it can name a list in a rule (``@blocked_cards``), else a SchemaError."""
    if not isinstance(name, str) or not _LIST_NAME.match(name):
        raise SchemaError(f"{name!r} cannot name a list; use letters, digits and _, "
                          "e.g. blocked_cards")
    return name


def choice(value: Any, allowed: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``allowed``, else a SchemaError naming ``what`` it is."""
    if value not in allowed:
        raise SchemaError(f"{value!r}: {what} must be one of {', '.join(allowed)}")
    return value


def text(value: Any, what: str) -> str:
    """``value`` if it is non-empty text, else a SchemaError naming ``what`` it is."""
    if not isinstance(value, str) or not value:
        raise SchemaError(f"{value!r}: {what} must be non-empty text")
    return value


def _source(kind: str, record: Any) -> str:
    if not isinstance(record, Mapping):
        raise SchemaError(f"a {kind} must be a mapping of field to value, "
                          f"not {type(record).__name__}")
    pid = record.get("payment_id")
    return f"{kind} '{pid}'" if isinstance(pid, str) else kind


def _required(record: Mapping[str, Any], name: str, source: str) -> Any:
    value = record.get(name)
    if value is None:
        raise SchemaError("value is missing but the field is required", source=source, column=name)
    return value


def _text(value: Any, source: str, column: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"{value!r}: expected text, found {type(value).__name__}",
                          source=source, column=column)
    if column == "payment_id" and not value:
        raise SchemaError("the payment id is empty", source=source, column=column)
    return value


def _optional_text(value: Any, source: str, column: str) -> str | None:
    return None if value is None else _text(value, source, column)


def _number(value: Any, source: str, column: str, *, low: float,
            high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or not low <= value <= high:
        bounds = f"from {low:g} to {high:g}" if math.isfinite(high) else f">= {low:g}"
        raise SchemaError(f"{value!r}: {column} must be a finite number {bounds}",
                          source=source, column=column)
    return float(value)


def _datetime(value: Any, source: str, column: str) -> datetime:
    if not isinstance(value, datetime):
        raise SchemaError(f"{value!r}: expected a datetime, found {type(value).__name__}",
                          source=source, column=column)
    return value


def _json(value: Any, source: str, column: str) -> Any:
    if _plain(value):
        return value
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"value cannot be stored as JSON ({exc})",
                          source=source, column=column) from exc
    return value


def _plain(value: Any) -> bool:
    """True for what a decision usually holds (a list of text, a dict of text to finite
    numbers): JSON as it stands, checked without encoding it."""
    if isinstance(value, list):
        return all(type(v) is str for v in value)
    if isinstance(value, dict):
        return all(type(k) is str and (type(v) is str or (type(v) in (int, float)
                                                           and math.isfinite(v)))
                   for k, v in value.items())
    return False
