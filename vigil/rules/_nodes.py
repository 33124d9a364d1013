"""The syntax tree of a rule's condition: small frozen dataclasses that print as rule text.

Columns (1-based, in the rule's line) say where each node was written, for error messages;
they take no part in equality, so ``parse(str(node)) == node`` holds for any node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

NUMBER, STRING, BOOL = "number", "string", "bool"
TYPES = (NUMBER, STRING, BOOL)
"""The types an attribute can have."""

ORDERING = frozenset({">", ">=", "<", "<="})
"""Comparisons that only numbers support."""

FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "=", "!=": "!="}
"""``a OP b`` is ``b FLIPPED[OP] a``: lets a literal on the left be evaluated on the right."""


def quote(text: str) -> str:
    """A string literal as the grammar reads it back: single quotes, backslash escapes.

    >>> print(quote("it's"))
    'it\\'s'
    """
    escaped = (text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f"'{escaped}'"


def literal_type(value: object) -> str:
    """The rule type of a Python literal value."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return NUMBER
    return STRING


def show(value: object) -> str:
    """A literal value as rule text: ``12``, ``12.5``, ``'US'``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return quote(str(value))


@dataclass(frozen=True)
class Attribute:
    """``:name:`` — a payment field, a feature, ``risk_score`` or ``risk_level``."""

    name: str
    column: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f":{self.name}:"


@dataclass(frozen=True)
class Literal:
    """A number, a quoted string, ``true`` or ``false``."""

    value: int | float | str | bool
    column: int = field(default=0, compare=False, repr=False)

    @property
    def type(self) -> str:
        return literal_type(self.value)

    def __str__(self) -> str:
        return show(self.value)


@dataclass(frozen=True)
class ListRef:
    """``@name`` — a named list of values kept outside the rules (the store, a file)."""

    name: str
    column: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f"@{self.name}"


@dataclass(frozen=True)
class LiteralSet:
    """``('US', 'CA')`` — literal values written in the rule, all of one type."""

    values: tuple[int | float | str | bool, ...]
    column: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return "(" + ", ".join(show(v) for v in self.values) + ")"


Operand: TypeAlias = Attribute | Literal


@dataclass(frozen=True)
class Comparison:
    """``left OP right`` with OP one of ``> >= < <= = !=`` (``==`` is read as ``=``)."""

    op: str
    left: Operand
    right: Operand
    column: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class Membership:
    """``:attr: in @list``, ``:attr: not in ('a', 'b')``."""

    operand: Operand
    collection: ListRef | LiteralSet
    negated: bool = False
    column: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.operand} {'not in' if self.negated else 'in'} {self.collection}"


@dataclass(frozen=True)
class Truth:
    """A bare boolean attribute used as a condition: ``:is_anonymous_ip:``."""

    attribute: Attribute

    def __str__(self) -> str:
        return str(self.attribute)


@dataclass(frozen=True)
class Not:
    """``not CONDITION``."""

    condition: Condition

    def __str__(self) -> str:
        inner = str(self.condition)
        return f"not ({inner})" if isinstance(self.condition, And | Or) else f"not {inner}"


@dataclass(frozen=True)
class And:
    """``A and B and ...`` (two or more)."""

    conditions: tuple[Condition, ...]

    def __str__(self) -> str:
        return " and ".join(f"({c})" if isinstance(c, Or) else str(c) for c in self.conditions)


@dataclass(frozen=True)
class Or:
    """``A or B or ...`` (two or more)."""

    conditions: tuple[Condition, ...]

    def __str__(self) -> str:
        return " or ".join(f"({c})" if isinstance(c, Or) else str(c) for c in self.conditions)


Condition: TypeAlias = Comparison | Membership | Truth | Not | And | Or


def walk(node: Condition):
    """Every node of a condition, parents before children (iterative: no recursion limit)."""
    stack: list[object] = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, And | Or):
            stack.extend(reversed(current.conditions))
        elif isinstance(current, Not):
            stack.append(current.condition)
        elif isinstance(current, Truth):
            stack.append(current.attribute)
        elif isinstance(current, Comparison):
            stack.extend((current.right, current.left))
        elif isinstance(current, Membership):
            stack.extend((current.collection, current.operand))
