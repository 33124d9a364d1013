"""Rules checked at save time and compiled to closures; a rule set that decides a payment.

A rule file is read once: every rule is parsed, every attribute and list it names is looked
up, every comparison is type-checked, and each condition becomes a tree of small Python
closures. Deciding a payment walks those closures, never the text; a rule costs well under a
microsecond per condition.

Missing values follow three-valued logic (Kleene's, as SQL's ``NULL``): a comparison, ``in``
or bare attribute involving a missing value is *unknown*; ``not unknown`` is unknown;
``false and unknown`` is false, ``true or unknown`` true, otherwise unknown propagates; a rule
fires only when its condition is *true*. A value is missing when its key is absent, or it is
``None``, ``NaN`` or ``pandas.NA``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas import NA

from vigil._errors import ConfigError, SchemaError
from vigil.rules._check import attribute_types, check
from vigil.rules._errors import RuleError
from vigil.rules._grammar import ACTIONS, parse_text
from vigil.rules._lists import InMemoryLists, ListLookup, list_name
from vigil.rules._nodes import (
    FLIPPED,
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
    walk,
)
from vigil.rules._vector import Frame, masks

ACTION_ORDER = ("request_3ds", "allow", "block", "request_verification", "review")
"""The order in which actions are tried; within one action, rules keep their file order."""

DEFAULT_ACTION = "allow"
"""What happens when no rule matches."""

Matcher = Callable[[Mapping[str, Any], ListLookup], Any]
"""A compiled condition: ``True`` (or anything truthy), ``False``, or ``None`` for unknown."""

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
        "=": operator.eq, "!=": operator.ne}


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules decided: the action and the rule that matched (``None``: the default).

    >>> Decision("allow")
    Decision(action='allow', rule_id=None)
    """

    action: str
    rule: Rule | None = None

    @property
    def rule_id(self) -> str | None:
        """The deciding rule's id, or ``None`` when no rule matched."""
        return self.rule.id if self.rule is not None else None

    def __repr__(self) -> str:
        return f"Decision(action={self.action!r}, rule_id={self.rule_id!r})"


DEFAULT_DECISION = Decision(DEFAULT_ACTION)


@dataclass(frozen=True)
class Rule:
    """One rule: an id, an action and a condition, compiled for evaluation.

    ``types`` maps each attribute the rule reads to its type (``None`` where the rule was
    parsed without an attribute map); ``line`` is where it was written, if read from a file.

    >>> rule = parse_rule("big: review if :amount: > 1000", attributes={"amount": "number"})
    >>> rule.id, rule.action, str(rule)
    ('big', 'review', 'big: review if :amount: > 1000')
    >>> rule.matches({"amount": 1500}), rule.matches({"amount": None})
    (True, False)
    """

    id: str
    action: str
    condition: Condition
    line: int | None = field(default=None, compare=False)
    types: Mapping[str, str | None] = field(default_factory=dict, compare=False, repr=False)
    _match: Matcher = field(init=False, compare=False, repr=False)
    _decision: Decision = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise RuleError(f"unknown action '{self.action}'; use one of {', '.join(ACTIONS)}")
        object.__setattr__(self, "_match", _compile(self.condition))
        object.__setattr__(self, "_decision", Decision(self.action, self))

    @property
    def attributes(self) -> frozenset[str]:
        """Names of the attributes the rule reads."""
        return frozenset(n.name for n in walk(self.condition) if isinstance(n, Attribute))

    @property
    def lists(self) -> frozenset[str]:
        """Names of the lists the rule looks values up in."""
        return frozenset(n.name for n in walk(self.condition) if isinstance(n, ListRef))

    def matches(self, attrs: Mapping[str, Any], lists: ListLookup | None = None) -> bool:
        """Whether the condition is true for these attributes (unknown is not true)."""
        return bool(self._match(attrs, _NO_LISTS if lists is None else lists))

    def __str__(self) -> str:
        return f"{self.id}: {self.action} if {self.condition}"


class RuleSet:
    """Rules in file order, tried in :data:`ACTION_ORDER`; the first match decides.

    >>> rules = compile_rules('''
    ... block if :risk_score: > 75
    ... trusted: allow if :card_id: in @trusted_cards
    ... ''', attributes={"risk_score": "number", "card_id": "string"},
    ...    lists=["trusted_cards"])
    >>> lists = InMemoryLists({"trusted_cards": ["c1"]})
    >>> rules.decide({"risk_score": 90, "card_id": "c1"}, lists)  # allow is tried first
    Decision(action='allow', rule_id='trusted')
    >>> rules.decide({"risk_score": 90, "card_id": "c2"}, lists)
    Decision(action='block', rule_id='rule_1')
    >>> rules.decide({"risk_score": None, "card_id": "c2"}, lists)
    Decision(action='allow', rule_id=None)
    """

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules = tuple(rules)
        self._by_id: dict[str, Rule] = {}
        for rule in self._rules:
            if rule.id in self._by_id:
                raise RuleError(f"rule id '{rule.id}' is used twice; ids must be unique")
            self._by_id[rule.id] = rule
        rank = {action: i for i, action in enumerate(ACTION_ORDER)}
        self._ordered = tuple(sorted(self._rules, key=lambda r: rank[r.action]))  # stable
        self._plan = tuple((r._match, r._decision) for r in self._ordered)
        types: dict[str, str | None] = {}
        for rule in self._rules:
            for name, kind in rule.types.items():
                if types.get(name) is None:
                    types[name] = kind
        self._types = types

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules in file order."""
        return self._rules

    @property
    def in_order(self) -> tuple[Rule, ...]:
        """The rules in the order they are tried."""
        return self._ordered

    @property
    def attributes(self) -> frozenset[str]:
        """Every attribute some rule reads."""
        return frozenset(self._types)

    @property
    def lists(self) -> frozenset[str]:
        """Every list some rule looks values up in."""
        return frozenset().union(*(r.lists for r in self._rules))

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __getitem__(self, rule_id: str) -> Rule:
        try:
            return self._by_id[rule_id]
        except KeyError:
            raise KeyError(f"no rule '{rule_id}'; ids: {', '.join(self._by_id)}") from None

    def __str__(self) -> str:
        return "\n".join(str(r) for r in self._rules)

    def __repr__(self) -> str:
        return f"RuleSet({len(self._rules)} rules: {', '.join(self._by_id)})"

    def decide(self, attrs: Mapping[str, Any], lists: ListLookup | None = None) -> Decision:
        """Decide one payment: the first matching rule in :data:`ACTION_ORDER`, else allow.

        ``attrs`` maps attribute names (without colons) to values; an absent key, ``None`` or
        ``NaN`` is a missing value (see the module docstring). ``lists`` serves ``@name``.
        """
        lookup = _NO_LISTS if lists is None else lists
        match = None
        try:
            for match, decision in self._plan:
                if match(attrs, lookup):
                    return decision
        except TypeError as exc:  # a value of the wrong type: bad input, named, not a crash
            rule = next(r for r in self._ordered if r._match is match)
            raise SchemaError(f"rule '{rule.id}' ({rule}) cannot use these values: {exc}",
                              source="attributes") from exc
        return DEFAULT_DECISION

    def matches(self, data: pa.Table | pd.DataFrame,
                lists: ListLookup | None = None) -> dict[str, np.ndarray]:
        """For every rule, a boolean mask over the rows: where its condition is true,
        whether or not an earlier rule decides first."""
        frame = Frame(data, _NO_LISTS if lists is None else lists, self._types)
        return {rule.id: masks(rule.condition, frame)[0] for rule in self._rules}

    def decide_batch(self, data: pa.Table | pd.DataFrame,
                     lists: ListLookup | None = None) -> pd.DataFrame:
        """Decide every row of a table at once: columns ``action`` and ``rule_id`` (``None``
        where the default decided). Same order and same missing-value logic as
        :meth:`decide`; made for backtests.

        Every attribute the rules read must be a column (a missing column is an error, not a
        column of missing values).
        """
        n = len(data) if isinstance(data, pd.DataFrame) else data.num_rows
        action, rule_id = self.first_matches(self.matches(data, lists), n)
        index = data.index if isinstance(data, pd.DataFrame) else None
        return pd.DataFrame({"action": pd.Series(action, dtype=object, index=index),
                             "rule_id": pd.Series(rule_id, dtype=object, index=index)})

    def first_matches(self, matched: Mapping[str, np.ndarray],
                      n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(action, rule_id)`` arrays from the masks of :meth:`matches`: per row, the
        first matching rule in evaluation order (``rule_id`` ``None`` for the default)."""
        action = np.full(n, DEFAULT_ACTION, dtype=object)
        rule_id = np.full(n, None, dtype=object)
        undecided = np.ones(n, dtype=bool)
        for rule in self._ordered:
            hit = undecided & matched[rule.id]
            action[hit] = rule.action
            rule_id[hit] = rule.id
            undecided &= ~hit
        return action, rule_id


_NO_LISTS: ListLookup = InMemoryLists()


# --------------------------------------------------------------------------- reading


def parse_rule(text: str, *, attributes: Mapping[str, str] | None = None,
               lists: Collection[str] | None = None, rule_id: str | None = None,
               source: str | None = None, line: int | None = None) -> Rule:
    """Parse and check one rule: ``[NAME:] ACTION if CONDITION``.

    With ``attributes`` (name -> ``"number"``, ``"string"`` or ``"bool"``) every attribute
    must be known and every comparison well typed; with ``lists`` every ``@name`` must be
    known. Left out, only the syntax is checked. The id is ``NAME`` if written, else
    ``rule_id``, else ``rule_1``. Raises :class:`RuleError` with the column of the problem.

    >>> parse_rule("block if :card_country: > 5", attributes={"card_country": "string"})
    Traceback (most recent call last):
    ...
    vigil.rules._errors.RuleError: rule, column 25: '>' compares numbers, but :card_country: ...
    """
    types = attribute_types(attributes) if attributes is not None else None
    known_lists = {list_name(n) for n in lists} if lists is not None else None
    name, action, condition = parse_text(text, source=source or "rule", line=line)
    checked = check(condition, types, known_lists, source or "rule", line)
    return Rule(name or rule_id or "rule_1", action, condition, line, checked)


def compile_rules(text_or_lines: str | Iterable[str], *, attributes: Mapping[str, str],
                  lists: Collection[str] = (), source: str = "rules") -> RuleSet:
    """Read a rules file (its text, or its lines) into a checked, compiled :class:`RuleSet`.

    One rule per line; blank lines and ``#`` comments are skipped. A rule's id is the
    ``NAME:`` written before its action, else ``rule_<n>`` where n counts rules (not lines)
    from 1. ``attributes`` maps every attribute a rule may read to its type (``"number"``,
    ``"string"`` or ``"bool"``); ``lists`` names the lists a rule may use. The first problem
    raises :class:`RuleError`, located by ``source``, line and column.

    >>> compile_rules("review if :amount > 10", attributes={"amount": "number"},
    ...               source="rules.txt")
    Traceback (most recent call last):
    ...
    vigil.rules._errors.RuleError: rules.txt line 1, column 11: unexpected ':'; expected ...
    """
    types = attribute_types(attributes)
    known_lists = {list_name(n) for n in lists}
    lines = text_or_lines.split("\n") if isinstance(text_or_lines, str) else text_or_lines
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not isinstance(raw, str):
            raise ConfigError(f"{source} line {number}: expected text, not {type(raw).__name__}")
        text = raw.rstrip("\r\n")
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        rule = parse_rule(text, attributes=types, lists=known_lists,
                          rule_id=f"rule_{len(rules) + 1}", source=source, line=number)
        if rule.id in seen:
            raise RuleError(f"rule id '{rule.id}' is already used on line {seen[rule.id]}; "
                            "ids must be unique", source=source, line=number,
                            column=len(text) - len(text.lstrip()) + 1)
        seen[rule.id] = number
        rules.append(rule)
    return RuleSet(rules)


# --------------------------------------------------------------------------- compiling


def _compile(node: Condition) -> Matcher:
    """A condition as nested closures returning True/False (or truthy/falsy) or None."""
    if isinstance(node, Comparison):
        return _compile_comparison(node)
    if isinstance(node, Membership):
        return _compile_membership(node)
    if isinstance(node, Truth):
        name = node.attribute.name

        def truth(attrs, lists):
            v = attrs.get(name)
            if v is None or v is NA or v != v:
                return None
            return v

        return truth
    if isinstance(node, Not):
        inner = _compile(node.condition)

        def negation(attrs, lists):
            r = inner(attrs, lists)
            return None if r is None else not r

        return negation
    if isinstance(node, And):
        return _compile_and([_compile(c) for c in node.conditions])
    if isinstance(node, Or):
        return _compile_or([_compile(c) for c in node.conditions])
    raise TypeError(f"not a condition: {node!r}")


def _compile_and(parts: list[Matcher]) -> Matcher:
    def conjunction(attrs, lists):
        unknown = False
        for part in parts:
            r = part(attrs, lists)
            if r is None:
                unknown = True
            elif not r:
                return False
        return None if unknown else True

    return conjunction


def _compile_or(parts: list[Matcher]) -> Matcher:
    def disjunction(attrs, lists):
        unknown = False
        for part in parts:
            r = part(attrs, lists)
            if r is None:
                unknown = True
            elif r:
                return True
        return None if unknown else False

    return disjunction


def _constant(value: Any) -> Any:
    # numbers compare as floats, as in the vectorised evaluator
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def _compile_comparison(node: Comparison) -> Matcher:
    left, right, symbol = node.left, node.right, node.op
    if isinstance(left, Literal):  # 5 < :a: is :a: > 5
        left, right, symbol = right, left, FLIPPED[symbol]
    op = _OPS[symbol]
    name = left.name
    if isinstance(right, Literal):
        const = _constant(right.value)

        def compare_constant(attrs, lists):
            v = attrs.get(name)
            if v is None or v is NA or v != v:
                return None
            return op(v, const)

        return compare_constant
    other = right.name

    def compare_attributes(attrs, lists):
        a = attrs.get(name)
        if a is None or a is NA or a != a:
            return None
        b = attrs.get(other)
        if b is None or b is NA or b != b:
            return None
        return op(a, b)

    return compare_attributes


def _compile_membership(node: Membership) -> Matcher:
    name, negated = node.operand.name, node.negated
    if isinstance(node.collection, ListRef):
        list_id = node.collection.name

        def in_list(attrs, lists):
            v = attrs.get(name)
            if v is None or v is NA or v != v:
                return None
            return not lists.contains(list_id, v) if negated else lists.contains(list_id, v)

        return in_list
    values = frozenset(_constant(v) for v in node.collection.values)

    def in_set(attrs, lists):
        v = attrs.get(name)
        if v is None or v is NA or v != v:
            return None
        return (v not in values) if negated else (v in values)

    return in_set
