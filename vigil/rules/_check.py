"""Save-time checks of a parsed rule: every attribute and list known, every comparison typed.

Problems raise :class:`RuleError` at the column of the offending attribute, operator or
literal, with a suggestion for a near-miss name.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping

from vigil._errors import ConfigError
from vigil.rules._errors import RuleError
from vigil.rules._nodes import (
    BOOL,
    NUMBER,
    ORDERING,
    STRING,
    TYPES,
    Attribute,
    Comparison,
    Condition,
    ListRef,
    Literal,
    LiteralSet,
    Membership,
    Truth,
    walk,
)


def attribute_types(attributes: Mapping[str, str]) -> dict[str, str]:
    """A copy of an attribute map, every type checked."""
    types = dict(attributes)
    for name, kind in types.items():
        if kind not in TYPES:
            raise ConfigError(f"attribute '{name}': type {kind!r} is not one of "
                              f"{', '.join(TYPES)}")
    return types


def check(condition: Condition, types: Mapping[str, str] | None,
           lists: Collection[str] | None, source: str,
           line: int | None) -> dict[str, str | None]:
    """Check names and types; return the type of every attribute the condition reads."""
    used: dict[str, str | None] = {}

    def fail(reason: str, column: int) -> RuleError:
        return RuleError(reason, source=source, line=line, column=column)

    def type_of(operand: Attribute | Literal) -> str | None:
        if isinstance(operand, Literal):
            return operand.type
        if types is None:
            used.setdefault(operand.name, None)
            return None
        if operand.name not in types:
            raise fail(f"unknown attribute ':{operand.name}:'"
                       + _suggest(operand.name, types, ":{}:"), operand.column)
        used[operand.name] = types[operand.name]
        return types[operand.name]

    for node in walk(condition):
        if isinstance(node, Comparison):
            _check_comparison(node, type_of, fail, used)
        elif isinstance(node, Membership):
            operand, collection = node.operand, node.collection
            if isinstance(operand, Literal):
                raise fail(f"the left of '{'not in' if node.negated else 'in'}' must be an "
                           f"attribute, not {operand}", operand.column)
            kind = type_of(operand)
            if isinstance(collection, ListRef):
                if lists is not None and collection.name not in lists:
                    known = ", ".join(f"@{n}" for n in sorted(lists)) or "none"
                    raise fail(f"unknown list '@{collection.name}'"
                               + (_suggest(collection.name, lists, "@{}")
                                  or f" (known lists: {known})"), collection.column)
                if kind not in (None, STRING):
                    raise fail(f"lists hold strings, but {operand} is a {kind}; compare it "
                               f"with a literal set instead, e.g. {operand} in (1, 2)",
                               operand.column)
            else:
                _check_set(collection, operand, kind, fail)
                if kind is None and collection.values:
                    used[operand.name] = _set_type(collection)
        elif isinstance(node, Truth):
            kind = type_of(node.attribute)
            if kind not in (None, BOOL):
                raise fail(f"{node.attribute} is a {kind}, not true or false; compare it, e.g. "
                           + (f"{node.attribute} > 0" if kind == NUMBER
                              else f"{node.attribute} = 'value'"), node.attribute.column)
            if kind is None:
                used[node.attribute.name] = BOOL
    return used


def _check_comparison(node: Comparison, type_of, fail, used: dict[str, str | None]) -> None:
    left, right = node.left, node.right
    if isinstance(left, Literal) and isinstance(right, Literal):
        raise fail(f"{node} compares two literals; one side must be an attribute", left.column)
    lt, rt = type_of(left), type_of(right)
    if node.op in ORDERING:
        for side, kind in ((left, lt), (right, rt)):
            if kind not in (None, NUMBER):
                advice = "use =, != or in" if kind == STRING else "use = or !="
                raise fail(f"'{node.op}' compares numbers, but {side} is a {kind}; {advice}",
                           node.column)
    if lt is not None and rt is not None and lt != rt:
        raise fail(f"cannot compare {left} ({lt}) with {right} ({rt})", left.column)
    # without an attribute map, an attribute takes the type of what it is compared with
    for side, kind in ((left, rt), (right, lt)):
        if isinstance(side, Attribute) and used.get(side.name) is None and kind is not None:
            used[side.name] = NUMBER if node.op in ORDERING else kind
    if node.op in ORDERING:
        for side in (left, right):
            if isinstance(side, Attribute) and used.get(side.name) is None:
                used[side.name] = NUMBER


def _set_type(collection: LiteralSet) -> str:
    return Literal(collection.values[0]).type if collection.values else STRING


def _check_set(collection: LiteralSet, operand: Attribute, kind: str | None, fail) -> None:
    kinds = {Literal(v).type for v in collection.values}
    if len(kinds) > 1:
        raise fail(f"the set {collection} mixes {' and '.join(sorted(kinds))} values",
                   collection.column)
    if kind is not None and kinds and kinds != {kind}:
        raise fail(f"cannot look for {operand} ({kind}) in a set of {kinds.pop()} values",
                   collection.column)


def _suggest(name: str, known: Iterable[str], form: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean '{form.format(close[0])}'?)" if close else ""
