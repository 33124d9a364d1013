"""Rules: a small language for decisions, checked when saved, fast when deciding.

::

    block if :risk_score: > 75
    big_foreign: review if :amount: > 1000 and :card_country: != :ip_country:
    request_verification if :email: in @suspicious_emails
    allow if :card_id: in @trusted_cards

:func:`compile_rules` reads a rules file, checks every attribute, list and comparison, and
compiles each condition to closures; :meth:`RuleSet.decide` decides one payment in
microseconds, :meth:`RuleSet.decide_batch` a whole table, :func:`backtest` replays history
against labels (and the rules in force). See docs/rules.md.
"""

from vigil.rules._attributes import payment_attributes, schema_attributes
from vigil.rules._backtest import backtest, backtest_tables, render_backtest
from vigil.rules._compile import (
    ACTION_ORDER,
    DEFAULT_ACTION,
    Decision,
    Rule,
    RuleSet,
    compile_rules,
    parse_rule,
)
from vigil.rules._errors import RuleError
from vigil.rules._grammar import ACTIONS, GRAMMAR
from vigil.rules._lists import InMemoryLists, ListLookup, read_list

__all__ = [
    "ACTIONS",
    "ACTION_ORDER",
    "DEFAULT_ACTION",
    "GRAMMAR",
    "Decision",
    "InMemoryLists",
    "ListLookup",
    "Rule",
    "RuleError",
    "RuleSet",
    "backtest",
    "backtest_tables",
    "compile_rules",
    "parse_rule",
    "payment_attributes",
    "read_list",
    "render_backtest",
    "schema_attributes",
]
