"""Conditions over a whole table at once, for backtests: numpy masks, the row semantics kept.

A condition becomes two boolean masks, ``(true, false)``; rows in neither are *unknown*
(a missing value took part). ``and``, ``or`` and ``not`` combine the pairs as Kleene's
three-valued logic does, exactly as the row evaluator combines ``True``, ``False`` and
``None``; a rule matches where its condition is true.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from vigil._errors import SchemaError
from vigil.rules._lists import ListLookup
from vigil.rules._nodes import (
    BOOL,
    FLIPPED,
    NUMBER,
    STRING,
    And,
    Attribute,
    Comparison,
    Condition,
    ListRef,
    Literal,
    Membership,
    Not,
    Or,
    Truth,
)

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
        "=": operator.eq, "!=": operator.ne}

Masks = tuple[np.ndarray, np.ndarray]


class Frame:
    """The columns a rule set reads, converted once: values and a mask of known values.

    ``types`` gives each attribute's rule type; an attribute without one takes the type its
    column's dtype suggests.
    """

    def __init__(self, data: pa.Table | pd.DataFrame, lists: ListLookup,
                 types: Mapping[str, str | None], source: str = "data") -> None:
        if isinstance(data, pa.Table):
            missing = [n for n in types if n not in data.column_names]
            self._check_missing(missing, source)
            data = data.select(list(types)).to_pandas()
        elif not isinstance(data, pd.DataFrame):
            raise TypeError(f"expected a pyarrow Table or a pandas DataFrame, not "
                            f"{type(data).__name__}")
        self._check_missing([n for n in types if n not in data.columns], source)
        self.lists = lists
        self.columns: dict[str, tuple[np.ndarray, np.ndarray]] = {
            name: _convert(data[name], kind, name, source) for name, kind in types.items()}
        self._members: dict[str, set[Any]] = {}

    @staticmethod
    def _check_missing(missing: list[str], source: str) -> None:
        if missing:
            raise SchemaError("the rules use attribute(s) the data has no column for: "
                              + ", ".join(f":{m}:" for m in missing), source=source)

    def members(self, name: str) -> set[Any]:
        if name not in self._members:
            self._members[name] = self.lists.members(name)
        return self._members[name]


def _convert(series: pd.Series, kind: str | None, name: str,
             source: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, known): numbers as float64, strings as objects, booleans as bool."""
    known = ~np.asarray(series.isna(), dtype=bool)
    if kind is None:
        if pd.api.types.is_bool_dtype(series.dtype):
            kind = BOOL
        elif pd.api.types.is_numeric_dtype(series.dtype):
            kind = NUMBER
        else:
            kind = STRING
    if kind == NUMBER:
        try:
            values = pd.to_numeric(series, errors="raise").to_numpy(dtype=float,
                                                                     na_value=np.nan)
        except (ValueError, TypeError) as exc:
            raise SchemaError(f"the rules treat :{name}: as a number, but the column holds "
                              f"other values ({exc})", source=source, column=name) from exc
        # NaN is a missing number, in a row as in a column
        return values, known & ~np.isnan(values)
    raw = series.to_numpy(dtype=object)
    if kind == BOOL:
        return np.where(known, raw, False).astype(bool), known
    # a neutral filler where values are missing: comparisons there are masked out anyway
    return np.where(known, raw, ""), known


def masks(node: Condition, frame: Frame) -> Masks:
    """``(true, false)`` masks of a condition over every row of the frame."""
    if isinstance(node, Comparison):
        return _comparison(node, frame)
    if isinstance(node, Membership):
        return _membership(node, frame)
    if isinstance(node, Truth):
        values, known = frame.columns[node.attribute.name]
        truthy = values.astype(bool)
        return known & truthy, known & ~truthy
    if isinstance(node, Not):
        true, false = masks(node.condition, frame)
        return false, true
    if isinstance(node, And):
        pairs = [masks(c, frame) for c in node.conditions]
        return (np.logical_and.reduce([t for t, _ in pairs]),
                np.logical_or.reduce([f for _, f in pairs]))
    if isinstance(node, Or):
        pairs = [masks(c, frame) for c in node.conditions]
        return (np.logical_or.reduce([t for t, _ in pairs]),
                np.logical_and.reduce([f for _, f in pairs]))
    raise TypeError(f"not a condition: {node!r}")  # pragma: no cover


def _comparison(node: Comparison, frame: Frame) -> Masks:
    left, right, op = node.left, node.right, node.op
    if isinstance(left, Literal):
        left, right, op = right, left, FLIPPED[op]
    assert isinstance(left, Attribute)
    values, known = frame.columns[left.name]
    if isinstance(right, Attribute):
        other, other_known = frame.columns[right.name]
        known = known & other_known
    else:
        other = _constant(right.value)
    with np.errstate(invalid="ignore"):
        result = np.asarray(_OPS[op](values, other), dtype=bool)
    return known & result, known & ~result


def _membership(node: Membership, frame: Frame) -> Masks:
    assert isinstance(node.operand, Attribute)
    values, known = frame.columns[node.operand.name]
    if isinstance(node.collection, ListRef):
        members = frame.members(node.collection.name)
    else:
        members = {_constant(v) for v in node.collection.values}
    found = np.asarray(pd.Series(values, dtype=object).isin(members), dtype=bool)
    if node.negated:
        found = ~found
    return known & found, known & ~found


def _constant(value: Any) -> Any:
    # every number is compared as a float, in rows as in columns, so both agree to the bit
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value
