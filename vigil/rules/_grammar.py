"""The grammar of a rule, in one place, and the parser that turns a line into a syntax tree.

A rule is ``[NAME:] ACTION if CONDITION``. Keywords are case-insensitive (``Block IF``
reads as ``block if``); attributes are ``:name:``, lists ``@name``. ``not`` binds tighter
than ``and``, which binds tighter than ``or``; a comparison binds tighter than all three.

The parser is lark's LALR(1) with a contextual lexer: it reads a line in one pass, never
evaluates anything, and every failure becomes a :class:`RuleError` with the column.
"""

from __future__ import annotations

import math
import re

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from vigil.rules._errors import RuleError
from vigil.rules._nodes import (
    And,
    Attribute,
    Comparison,
    Condition,
    ListRef,
    Literal,
    LiteralSet,
    Membership,
    Not,
    Or,
    Truth,
)

ACTIONS = ("allow", "block", "review", "request_3ds", "request_verification")
"""Every action a rule can take."""

GRAMMAR = r"""
    rule: [RULE_ID] ACTION _IF condition

    ?condition: disjunction
    ?disjunction: conjunction (_OR conjunction)*
    ?conjunction: negation (_AND negation)*
    ?negation: _NOT negation                -> not_
             | test
    ?test: operand COMPARATOR operand       -> comparison
         | operand _IN collection           -> in_
         | operand _NOT_IN collection       -> not_in
         | ATTRIBUTE                        -> truth
         | _LPAR condition _RPAR

    ?operand: ATTRIBUTE | literal
    ?literal: NUMBER | STRING | TRUE | FALSE
    ?collection: LIST
               | _LPAR literal (_COMMA literal)* [_COMMA] _RPAR    -> literal_set

    RULE_ID.3: /[A-Za-z_][A-Za-z0-9_.\-]*[ \t]*:(?![A-Za-z_][A-Za-z0-9_]*:)/
    ACTION: /(allow|block|review|request_3ds|request_verification)\b/i
    _IF: /if\b/i
    _AND: /and\b/i
    _OR: /or\b/i
    _NOT_IN.2: /not[ \t]+in\b/i
    _NOT: /not\b/i
    _IN: /in\b/i
    TRUE: /true\b/i
    FALSE: /false\b/i
    ATTRIBUTE: /:[A-Za-z_][A-Za-z0-9_]*:/
    LIST: /@[A-Za-z_][A-Za-z0-9_]*/
    COMPARATOR: ">=" | "<=" | "==" | "!=" | ">" | "<" | "="
    NUMBER: /-?(\d+(\.\d*)?|\.\d+)([eE][+\-]?\d+)?/
    STRING: /"([^"\\\n]|\\.)*"/ | /'([^'\\\n]|\\.)*'/
    _LPAR: "("
    _RPAR: ")"
    _COMMA: ","

    %ignore /[ \t\f\r]+/
    %ignore /#[^\n]*/
"""

_PARSER = Lark(GRAMMAR, start="rule", parser="lalr", lexer="contextual", maybe_placeholders=True,
               propagate_positions=True)

MAX_DEPTH = 64
"""Deepest nesting of ``not`` and parentheses a rule may have."""

_EXPECTED = {
    "ACTION": "an action",
    "IF": "'if'",
    "AND": "'and'",
    "OR": "'or'",
    "NOT": "'not'",
    "IN": "'in'",
    "NOT_IN": "'not in'",
    "ATTRIBUTE": "an attribute like :amount:",
    "LIST": "a list like @name",
    "NUMBER": "a number",
    "STRING": "a quoted string",
    "TRUE": "true",
    "FALSE": "false",
    "COMPARATOR": "a comparison (> >= < <= = !=)",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "$END": "the end of the rule",
}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}
_KEYWORDS = {"if", "and", "or", "not", "in", "true", "false", *ACTIONS}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_text(text: str, *, source: str | None = None,
               line: int | None = None) -> tuple[str | None, str, Condition]:
    """Parse one rule: ``(name or None, action, condition)``. Checks syntax only.

    >>> name, action, condition = parse_text("big: Review IF :amount: > 1000")
    >>> name, action, str(condition)
    ('big', 'review', ':amount: > 1000')
    """

    def fail(reason: str, column: int) -> RuleError:
        return RuleError(reason, source=source, line=line, column=column)

    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, fail) from None
    except LarkError as exc:  # a lark failure we did not foresee is still the rule's fault
        raise fail(f"cannot read the rule ({exc})", 1) from None
    rule_id, action, condition = tree.children
    name = rule_id.rstrip(" \t:") if rule_id is not None else None
    return name, str(action).lower(), _condition(condition, fail, 0)


def _syntax_error(exc: UnexpectedInput, text: str, fail) -> RuleError:
    column = getattr(exc, "column", None)
    if isinstance(exc, UnexpectedToken):
        expected = {e.lstrip("_") for e in exc.expected}
        token = exc.token
        if token.type == "$END":
            column = len(text.rstrip()) + 1
            found = "the rule ends here"
        else:
            found = f"unexpected {str(token)!r}"
    elif isinstance(exc, UnexpectedCharacters):
        expected = {e.lstrip("_") for e in exc.allowed}
        found = f"unexpected {text[exc.pos_in_stream]!r}"
        column = exc.column
    else:  # pragma: no cover - LALR raises only the two above
        return fail(str(exc).splitlines()[0], column or 1)
    column = column if isinstance(column, int) and column > 0 else 1
    word = _WORD.match(text, column - 1)
    word = word.group() if word else None
    if word and found.startswith("unexpected"):
        found = f"unexpected {word!r}"
    if expected <= {"ACTION", "RULE_ID"}:
        if not text.strip() or text.lstrip().startswith("#"):
            return fail("the rule is empty; write e.g. 'block if :risk_score: > 75'", 1)
        if word and word.lower() == "if":
            return fail(f"the rule has no action; start it with one of {', '.join(ACTIONS)}",
                        column)
        shown = f"'{word}'" if word else found.removeprefix("unexpected ")
        return fail(f"unknown action {shown}; use one of {', '.join(ACTIONS)}", column)
    if "ATTRIBUTE" in expected and word and word.lower() not in _KEYWORDS:
        return fail(f"unexpected word '{word}'; attributes are written between colons, "
                    f"e.g. ':{word}:', and strings in quotes, e.g. '{word}'", column)
    if _open_parentheses(text[:column - 1]) <= 0:  # LALR offers these even outside (...)
        expected -= {"RPAR", "COMMA"}
    wanted = sorted(_EXPECTED[e] for e in expected if e in _EXPECTED)
    if not wanted:
        return fail(found, column)
    if len(wanted) > 1:
        wanted = [", ".join(wanted[:-1]) + " or " + wanted[-1]]
    return fail(f"{found}; expected {wanted[0]}", column)


def _open_parentheses(text: str) -> int:
    bare = re.sub(r"\"([^\"\\]|\\.)*\"|'([^'\\]|\\.)*'", "", text)
    return bare.count("(") - bare.count(")")


def _condition(node: Tree | Token, fail, depth: int) -> Condition:
    if depth > MAX_DEPTH:
        raise fail(f"the rule nests more than {MAX_DEPTH} levels deep", _column(node))
    kind = node.data
    if kind in ("disjunction", "conjunction"):
        cls = Or if kind == "disjunction" else And
        parts: list[Condition] = []
        for child in node.children:
            cond = _condition(child, fail, depth + 1)
            # (a and b) and c is a and b and c: one flat node, so printing reads back the same
            parts.extend(cond.conditions if isinstance(cond, cls) else [cond])
        return cls(tuple(parts))
    if kind == "not_":
        return Not(_condition(node.children[0], fail, depth + 1))
    if kind == "truth":
        return Truth(_operand(node.children[0], fail))
    if kind == "comparison":
        left, op, right = node.children
        symbol = "=" if str(op) == "==" else str(op)
        return Comparison(symbol, _operand(left, fail), _operand(right, fail), op.column)
    if kind in ("in_", "not_in"):
        operand, collection = node.children
        left = _operand(operand, fail)
        return Membership(left, _collection(collection, fail), kind == "not_in", left.column)
    raise fail(f"cannot read {kind}", _column(node))  # pragma: no cover - grammar is closed


def _operand(token: Token | Tree, fail) -> Attribute | Literal:
    if isinstance(token, Tree):  # pragma: no cover - operands are single tokens
        raise fail("expected an attribute or a literal", _column(token))
    if token.type == "ATTRIBUTE":
        return Attribute(str(token)[1:-1], token.column)
    return Literal(_value(token, fail), token.column)


def _collection(node: Token | Tree, fail) -> ListRef | LiteralSet:
    if isinstance(node, Token):
        return ListRef(str(node)[1:], node.column)
    values = [_value(t, fail) for t in node.children if t is not None]
    return LiteralSet(tuple(values), _column(node))


def _value(token: Token, fail) -> int | float | str | bool:
    text = str(token)
    if token.type == "TRUE":
        return True
    if token.type == "FALSE":
        return False
    if token.type == "STRING":
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1])
    if token.type == "NUMBER":
        if re.fullmatch(r"-?\d+", text):
            value: int | float = int(text)
            if abs(value) > 2**53:
                raise fail(f"{text} is too large a whole number (at most 2**53)", token.column)
            return value
        value = float(text)
        if not math.isfinite(value):
            raise fail(f"{text} is too large a number", token.column)
        return value
    raise fail(f"unexpected {text!r}", token.column)  # pragma: no cover


def _column(node: Tree | Token) -> int:
    if isinstance(node, Token):
        return node.column or 1
    return getattr(node.meta, "column", None) or 1
