"""The rule language: grammar, checks at save time, decisions, missing values, the vectorised
evaluator, backtests and the ``vigil rules`` commands."""

import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil._errors import DefinitionError, SchemaError, VigilError
from vigil.cli import main
from vigil.events import LABEL_SCHEMA, OUTCOME_COLUMNS, PAYMENT_COLUMNS
from vigil.features import handbook_baseline, payments_default
from vigil.rules import (
    ACTION_ORDER,
    ACTIONS,
    Decision,
    InMemoryLists,
    ListLookup,
    Rule,
    RuleError,
    RuleSet,
    backtest,
    backtest_tables,
    compile_rules,
    parse_rule,
    payment_attributes,
    render_backtest,
)

ROOT = Path(__file__).resolve().parents[1]

ATTRS = {
    "amount": "number",
    "risk_score": "number",
    "count_by_card_1h": "number",
    "risk_level": "string",
    "card_country": "string",
    "ip_country": "string",
    "email": "string",
    "card_id": "string",
    "channel": "string",
    "is_anonymous_ip": "bool",
}
LIST_NAMES = ("suspicious_emails", "trusted_cards")


def ruleset(text: str, **kwargs) -> RuleSet:
    return compile_rules(text, attributes=ATTRS, lists=LIST_NAMES, **kwargs)


def rule(text: str) -> Rule:
    return parse_rule(text, attributes=ATTRS, lists=LIST_NAMES)


@pytest.fixture
def lists() -> InMemoryLists:
    return InMemoryLists({"suspicious_emails": ["bad@example.com"], "trusted_cards": ["c_ok"]})


# --------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(("text", "action", "attributes", "lists_used"), [
    ("block if :risk_score: > 75", "block", {"risk_score"}, set()),
    ("review if :amount: > 1000 and :card_country: != :ip_country:", "review",
     {"amount", "card_country", "ip_country"}, set()),
    ("request_verification if :email: in @suspicious_emails", "request_verification",
     {"email"}, {"suspicious_emails"}),
    ("allow if :card_id: in @trusted_cards", "allow", {"card_id"}, {"trusted_cards"}),
    ("request_3ds if :card_country: not in ('US', 'CA') or :is_anonymous_ip:", "request_3ds",
     {"card_country", "is_anonymous_ip"}, set()),
])
def test_radar_shaped_rules_parse(text, action, attributes, lists_used):
    r = rule(text)
    assert r.action == action
    assert r.attributes == attributes
    assert r.lists == lists_used
    assert str(r) == f"rule_1: {text}"  # canonical printing of already-canonical text


def test_keywords_are_case_insensitive_and_spellings_agree():
    loud = rule("BLOCK IF :amount: >= 10 AND NOT :card_country: IN ('US') OR :email: NOT IN "
                "@suspicious_emails")
    quiet = rule("block if :amount: >= 10 and not :card_country: in ('US') or :email: not in "
                 "@suspicious_emails")
    assert loud.condition == quiet.condition and loud.action == "block"
    assert rule("block if :amount: == 5").condition == rule("block if :amount: = 5").condition
    assert rule('review if :card_country: = "US"').condition == rule(
        "review if :card_country: = 'US'").condition


def test_precedence_not_then_and_then_or():
    assert str(rule("block if :amount: > 1 or :amount: < 0 and not :is_anonymous_ip:")
               .condition) == ":amount: > 1 or :amount: < 0 and not :is_anonymous_ip:"
    r = rule("block if (:amount: > 1 or :amount: < 0) and :is_anonymous_ip:")
    assert str(r.condition) == "(:amount: > 1 or :amount: < 0) and :is_anonymous_ip:"
    # the parentheses change the meaning
    assert rule("block if :amount: > 1 or :amount: < 0 and :is_anonymous_ip:").matches(
        {"amount": 5, "is_anonymous_ip": False})
    assert not r.matches({"amount": 5, "is_anonymous_ip": False})


@pytest.mark.parametrize(("literal", "value"), [
    ("75", 75), ("-3", -3), ("12.5", 12.5), (".5", 0.5), ("1e3", 1000.0), ("-2.5E-1", -0.25),
])
def test_number_literals(literal, value):
    r = rule(f"block if :amount: = {literal}")
    assert r.condition.right.value == value
    assert r.matches({"amount": value})


@pytest.mark.parametrize(("literal", "value"), [
    ("'it\\'s'", "it's"), ('"say \\"hi\\""', 'say "hi"'), ("'a#b'", "a#b"),
    ("'back\\\\slash'", "back\\slash"), ("'tab\\t'", "tab\t"), ("'Zürich'", "Zürich"),
])
def test_string_literals(literal, value):
    r = rule(f"review if :card_country: = {literal}  # a comment")
    assert r.condition.right.value == value
    assert r.matches({"card_country": value})
    assert rule(f"review if {r.condition}").condition == r.condition  # prints back


def test_attribute_against_attribute_and_literal_on_the_left():
    r = rule("review if 1000 < :amount: and :card_country: != :ip_country:")
    assert r.matches({"amount": 1500, "card_country": "FR", "ip_country": "US"})
    assert not r.matches({"amount": 1500, "card_country": "FR", "ip_country": "FR"})
    assert not r.matches({"amount": 999, "card_country": "FR", "ip_country": "US"})


# --------------------------------------------------------------------------- the file format


def test_ids_come_from_names_or_the_position_among_rules():
    rs = ruleset("""
        # comments and blank lines do not count

        block if :risk_score: > 75
        big_foreign: review if :amount: > 1000   # trailing comment
        review if :risk_level: = 'elevated'
        """)
    assert [r.id for r in rs] == ["rule_1", "big_foreign", "rule_3"]
    assert [r.line for r in rs] == [4, 5, 6]
    assert rs["big_foreign"].action == "review"
    assert ruleset(["block if :risk_score: > 75\n", "allow if :amount: < 1\n"]).rules[1].id == (
        "rule_2")  # lines of a file, newlines kept, work too


def test_duplicate_ids_are_an_error_with_both_lines():
    with pytest.raises(RuleError, match=r"rules line 3, column 1: rule id 'x' is already "
                                        r"used on line 1"):
        ruleset("x: block if :amount: > 1\nreview if :amount: > 2\nx: review if :amount: > 3")
    with pytest.raises(RuleError, match="rule id 'rule_2' is already used on line 1"):
        ruleset("rule_2: block if :amount: > 1\nreview if :amount: > 2")


def test_the_message_names_file_line_column_and_a_suggestion():
    text = "block if :risk_score: > 75\n\nreview   if  :ammount: > 1000\n"
    with pytest.raises(RuleError) as info:
        compile_rules(text, attributes=ATTRS, source="rules.txt")
    assert str(info.value) == ("rules.txt line 3, column 14: unknown attribute ':ammount:' "
                               "(did you mean ':amount:'?)")
    assert (info.value.line, info.value.column) == (3, 14)
    assert isinstance(info.value, DefinitionError) and isinstance(info.value, VigilError)


@pytest.mark.parametrize(("text", "column", "message"), [
    ("deny if :amount: > 1", 1, "unknown action 'deny'; use one of allow, block, review"),
    ("if :amount: > 1", 1, "the rule has no action"),
    ("block :amount: > 1", 7, "unexpected ':amount:'; expected 'if'"),
    ("block if amount > 1", 10, "unexpected word 'amount'; attributes are written between "
                                "colons, e.g. ':amount:'"),
    ("block if :amount: >", 20, "the rule ends here; expected"),
    ("block if :amount: > 1 1", 23, "unexpected '1'"),
    ("block if :amount: < 5 < 6", 23, "unexpected '<'"),
    ("block if :card_country: = 'US", 27, "unexpected \"'\""),
    ("block if :amount: in ()", 23, "unexpected ')'"),
    ("block if :amount: > 1e999", 21, "1e999 is too large a number"),
    ("block if :nope: > 1", 10, "unknown attribute ':nope:'"),
    ("block if :email: in @suspicious_email", 21,
     "unknown list '@suspicious_email' (did you mean '@suspicious_emails'?)"),
    ("block if :email: in @zzz", 21, "unknown list '@zzz' (known lists: @suspicious_emails, "
                                     "@trusted_cards)"),
    ("block if :card_country: > 5", 25, "'>' compares numbers, but :card_country: is a string; "
                                        "use =, != or in"),
    ("block if :amount: > 'US'", 19, "'>' compares numbers, but 'US' is a string"),
    ("block if :is_anonymous_ip: >= true", 28, "'>=' compares numbers, but :is_anonymous_ip: "
                                               "is a bool; use = or !="),
    ("block if :card_country: = 5", 10, "cannot compare :card_country: (string) with 5 "
                                        "(number)"),
    ("block if :amount: = :card_country:", 10, "cannot compare :amount: (number) with "
                                               ":card_country: (string)"),
    ("block if :is_anonymous_ip: = 'yes'", 10, "cannot compare :is_anonymous_ip: (bool)"),
    ("block if 1 < 2", 10, "1 < 2 compares two literals"),
    ("block if 'x' in @suspicious_emails", 10, "the left of 'in' must be an attribute"),
    ("block if :amount: in @suspicious_emails", 10, "lists hold strings, but :amount: is a "
                                                    "number"),
    ("block if :amount: in ('a', 'b')", 22, "cannot look for :amount: (number) in a set of "
                                            "string values"),
    ("block if :card_country: in ('US', 1)", 28, "the set ('US', 1) mixes number and string"),
    ("block if :amount:", 10, ":amount: is a number, not true or false; compare it, e.g. "
                              ":amount: > 0"),
    ("block if " + "not " * 70 + ":is_anonymous_ip:", None, "nests more than 64 levels"),
])
def test_mistakes_are_located_and_explained(text, column, message):
    source = "# header\n\n" + text  # the rule sits on line 3
    with pytest.raises(RuleError) as info:
        compile_rules(source, attributes=ATTRS, lists=LIST_NAMES, source="rules.txt")
    assert message in str(info.value)
    assert str(info.value).startswith("rules.txt line 3, column ")
    if column is not None:
        assert info.value.column == column, str(info.value)


def test_attribute_types_must_be_known():
    with pytest.raises(VigilError, match="type 'integer' is not one of number, string, bool"):
        compile_rules("block if :x: > 1", attributes={"x": "integer"})


def test_parse_rule_without_an_attribute_map_checks_syntax_only():
    r = parse_rule("flag: review if :anything: > 3 and :other: = 'x'")
    assert (r.id, r.types) == ("flag", {"anything": "number", "other": "string"})
    assert r.matches({"anything": 4, "other": "x"})
    with pytest.raises(RuleError, match="compares two literals"):
        parse_rule("block if 1 = 1")


# --------------------------------------------------------------------------- deciding


def test_actions_are_tried_in_radar_order_then_file_order(lists):
    text = """
        r_review: review if :amount: > 0
        r_verify: request_verification if :amount: > 0
        r_block_2: block if :amount: > 10
        r_block_1: block if :amount: > 0
        r_allow: allow if :card_id: in @trusted_cards
        r_3ds: request_3ds if :card_country: = 'FR'
    """
    rs = ruleset(text)
    assert ACTION_ORDER == ("request_3ds", "allow", "block", "request_verification", "review")
    assert [r.id for r in rs.in_order] == ["r_3ds", "r_allow", "r_block_2", "r_block_1",
                                           "r_verify", "r_review"]
    pay = {"amount": 50, "card_id": "c_ok", "card_country": "FR"}
    assert rs.decide(pay, lists).rule_id == "r_3ds"
    assert rs.decide({**pay, "card_country": "DE"}, lists) == Decision("allow", rs["r_allow"])
    assert rs.decide({**pay, "card_country": "DE", "card_id": "c2"}, lists).rule_id == "r_block_2"
    assert rs.decide({"amount": 5}, lists).rule_id == "r_block_1"
    assert rs.decide({"amount": 0}, lists) == Decision("allow", None)
    without_blocks = RuleSet(r for r in rs if r.action != "block")
    assert without_blocks.decide({"amount": 5}, lists).rule_id == "r_verify"


def test_an_empty_rule_set_allows_everything():
    rs = ruleset("# nothing yet\n")
    assert len(rs) == 0
    assert rs.decide({"amount": 10**9}) == Decision("allow")


NAN = float("nan")


@pytest.mark.parametrize(("condition", "attrs", "fires"), [
    (":amount: > 5", {}, False),  # absent
    (":amount: > 5", {"amount": None}, False),
    (":amount: > 5", {"amount": NAN}, False),
    (":amount: > 5", {"amount": pd.NA}, False),
    (":amount: <= 5", {"amount": None}, False),
    ("not :amount: > 5", {"amount": None}, False),  # not unknown is unknown
    ("not not :amount: > 5", {"amount": None}, False),
    ("not :amount: > 5", {"amount": 1}, True),
    (":card_country: != 'US'", {"card_country": None}, False),
    ("not :card_country: = 'US'", {}, False),
    (":card_country: != :ip_country:", {"card_country": "FR", "ip_country": None}, False),
    (":card_country: != :ip_country:", {"card_country": "FR", "ip_country": "US"}, True),
    (":email: in @suspicious_emails", {"email": None}, False),
    (":email: not in @suspicious_emails", {"email": None}, False),
    (":email: not in @suspicious_emails", {"email": "ok@example.com"}, True),
    (":card_country: not in ('US', 'CA')", {}, False),
    (":is_anonymous_ip:", {"is_anonymous_ip": None}, False),
    ("not :is_anonymous_ip:", {"is_anonymous_ip": None}, False),
    ("not :is_anonymous_ip:", {"is_anonymous_ip": False}, True),
    # Kleene: true or unknown is true; false and unknown is false
    (":amount: > 5 or :risk_score: > 5", {"amount": None, "risk_score": 9}, True),
    ("not (:amount: > 5 and :risk_score: > 5)", {"amount": None, "risk_score": 1}, True),
    ("not (:amount: > 5 and :risk_score: > 5)", {"amount": None, "risk_score": 9}, False),
    ("not (:amount: > 5 or :risk_score: > 5)", {"amount": None, "risk_score": 1}, False),
])
def test_missing_values_follow_three_valued_logic(condition, attrs, fires, lists):
    rs = ruleset(f"block if {condition}")
    assert (rs.decide(attrs, lists).action == "block") is fires
    batch = rs.decide_batch(pd.DataFrame([{name: attrs.get(name) for name in rs.attributes}]),
                            lists)
    assert (batch["action"].iloc[0] == "block") is fires


def test_a_value_of_the_wrong_type_is_a_schema_error_naming_the_rule():
    rs = ruleset("limit: block if :amount: > 5")
    with pytest.raises(SchemaError, match=r"rule 'limit' \(limit: block if :amount: > 5\) "
                                          "cannot use these values"):
        rs.decide({"amount": "ten"})


def test_numpy_values_decide_like_python_values():
    rs = ruleset("block if :amount: > 5 and :is_anonymous_ip:")
    assert rs.decide({"amount": np.float64(6), "is_anonymous_ip": np.bool_(True)}).action == (
        "block")
    assert rs.decide({"amount": np.int64(5), "is_anonymous_ip": np.bool_(True)}).action == (
        "allow")


def test_lists_are_looked_up_at_decision_time(lists):
    rs = ruleset("request_verification if :email: in @suspicious_emails")
    assert rs.decide({"email": "new@example.com"}, lists).action == "allow"
    lists.add("suspicious_emails", "new@example.com")  # no recompiling
    assert rs.decide({"email": "new@example.com"}, lists).action == "request_verification"
    lists.discard("suspicious_emails", "new@example.com")
    assert rs.decide({"email": "new@example.com"}, lists).action == "allow"
    with pytest.raises(RuleError, match=r"unknown list '@suspicious_emails' \(known lists: "
                                        "none\\)"):
        rs.decide({"email": "x"})  # no lists given


def test_any_object_with_contains_and_members_serves_lists():
    class Store:
        def contains(self, list_name, value):
            return value.endswith("@fraud.test")

        def members(self, list_name):
            return {"a@fraud.test"}

    assert isinstance(Store(), ListLookup) and isinstance(InMemoryLists(), ListLookup)
    rs = ruleset("block if :email: in @suspicious_emails")
    assert rs.decide({"email": "a@fraud.test"}, Store()).action == "block"
    batch = rs.decide_batch(pd.DataFrame({"email": ["a@fraud.test", "b@x.test"]}), Store())
    assert batch["action"].tolist() == ["block", "allow"]


def test_list_files(tmp_path):
    path = tmp_path / "emails.txt"
    path.write_text("# suspicious\nbad@example.com\n\n  worse@example.com  \n")
    lists = InMemoryLists.from_files({"@suspicious_emails": path})
    assert lists.members("suspicious_emails") == {"bad@example.com", "worse@example.com"}
    with pytest.raises(VigilError, match=r"nope\.txt: no such file"):
        InMemoryLists.from_files({"x": tmp_path / "nope.txt"})


def test_decide_is_fast():
    rs = compile_rules(DOC_RULES_EXAMPLE, attributes=payment_attributes(payments_default()),
                       lists=["suspicious_emails", "trusted_cards", "blocked_ips"])
    lists = InMemoryLists({"suspicious_emails": [], "trusted_cards": [], "blocked_ips": []})
    pay = {"risk_score": 40, "amount": 120.0, "card_country": "FR", "ip_country": "FR",
           "email": "a@b", "card_id": "c1", "risk_level": "normal", "ip": "1.2.3.4",
           "channel": "card_present", "count_by_card_1h": 1}
    assert rs.decide(pay, lists).action == "allow"  # every rule is tried
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        rs.decide(pay, lists)
    per_rule = (time.perf_counter() - start) / n / len(rs)
    assert per_rule < 10e-6, f"{per_rule * 1e6:.1f} µs per rule"  # a few µs; slack for CI


# --------------------------------------------------------------------------- vectorised


def test_decide_batch_takes_arrow_and_pandas(lists):
    rs = ruleset("block if :risk_score: > 75\nallow if :card_id: in @trusted_cards")
    table = pa.table({"risk_score": pa.array([90, 90, None, 10], pa.int64()),
                      "card_id": ["c_ok", "c2", "c3", None], "other": [1, 2, 3, 4]})
    want = [("allow", "rule_2"), ("block", "rule_1"), ("allow", None), ("allow", None)]
    for data in (table, table.to_pandas()):
        out = rs.decide_batch(data, lists)
        assert list(zip(out["action"], out["rule_id"], strict=True)) == want
    masks = rs.matches(table, lists)
    assert masks["rule_1"].tolist() == [True, True, False, False]


def test_decide_batch_needs_every_column():
    rs = ruleset("block if :risk_score: > 75")
    with pytest.raises(SchemaError, match="no column for: :risk_score:"):
        rs.decide_batch(pa.table({"amount": [1.0]}))
    with pytest.raises(SchemaError, match=":risk_score: as a number"):
        rs.decide_batch(pd.DataFrame({"risk_score": ["high"]}))


NUM_ATTRS, STR_ATTRS, BOOL_ATTRS = ("n1", "n2"), ("s1", "s2"), ("b1",)
GEN_TYPES = {**dict.fromkeys(NUM_ATTRS, "number"), **dict.fromkeys(STR_ATTRS, "string"),
             **dict.fromkeys(BOOL_ATTRS, "bool")}
NUMBERS = [-2, -1, 0, 1, 2, 0.5, 2.5]
STRINGS = ["a", "b", "c", "it's"]


def _num_lit():
    return st.sampled_from(NUMBERS).map(repr)


def _str_lit():
    return st.sampled_from(STRINGS).map(lambda s: "'" + s.replace("'", "\\'") + "'")


def _leaf():
    num = st.sampled_from(NUM_ATTRS).map(lambda a: f":{a}:")
    text = st.sampled_from(STR_ATTRS).map(lambda a: f":{a}:")
    op = st.sampled_from([">", ">=", "<", "<=", "=", "==", "!="])
    eq = st.sampled_from(["=", "!=", "=="])
    return st.one_of(
        st.builds(lambda a, o, b: f"{a} {o} {b}", num, op, st.one_of(num, _num_lit())),
        st.builds(lambda b, o, a: f"{b} {o} {a}", _num_lit(), op, num),
        st.builds(lambda a, o, b: f"{a} {o} {b}", text, eq, st.one_of(text, _str_lit())),
        st.builds(lambda o, b: f":b1: {o} {b}", eq, st.sampled_from(["true", "false"])),
        st.just(":b1:"),
        st.builds(lambda a, neg, name: f"{a} {neg} @{name}", text,
                  st.sampled_from(["in", "not in"]), st.sampled_from(["l1", "l2"])),
        st.builds(lambda a, neg, vs: f"{a} {neg} ({', '.join(vs)})", text,
                  st.sampled_from(["in", "not in"]), st.lists(_str_lit(), min_size=1,
                                                              max_size=3)),
        st.builds(lambda a, neg, vs: f"{a} {neg} ({', '.join(vs)})", num,
                  st.sampled_from(["in", "not in"]), st.lists(_num_lit(), min_size=1,
                                                              max_size=3)),
    )


CONDITIONS = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        inner.map(lambda c: f"not ({c})"),
        st.lists(inner, min_size=2, max_size=3).map(lambda cs: " and ".join(f"({c})" for c in cs)),
        st.lists(inner, min_size=2, max_size=3).map(lambda cs: " or ".join(f"({c})" for c in cs)),
    ),
    max_leaves=8,
)
RULE_TEXTS = st.lists(st.builds(lambda a, c: f"{a} if {c}", st.sampled_from(ACTIONS),
                                CONDITIONS), min_size=1, max_size=5)
ROWS = st.lists(st.fixed_dictionaries({
    "n1": st.sampled_from([*NUMBERS, 3, None, NAN]),
    "n2": st.sampled_from([*NUMBERS, None, NAN]),
    "s1": st.sampled_from([*STRINGS, "d", None]),
    "s2": st.sampled_from([*STRINGS, None]),
    "b1": st.sampled_from([True, False, None]),
}), min_size=1, max_size=25)
GEN_LISTS = InMemoryLists({"l1": ["a", "b"], "l2": ["it's"]})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=RULE_TEXTS, rows=ROWS)
def test_row_and_vectorised_evaluators_agree(texts, rows):
    rs = compile_rules(texts, attributes=GEN_TYPES, lists=["l1", "l2"])
    one_by_one = [rs.decide(row, GEN_LISTS) for row in rows]
    want = [(d.action, d.rule_id) for d in one_by_one]
    frame = pd.DataFrame(rows, columns=list(GEN_TYPES))
    batch = rs.decide_batch(frame, GEN_LISTS)
    assert list(zip(batch["action"], batch["rule_id"], strict=True)) == want
    table = pa.Table.from_pylist(rows)  # NaN stays a float value here, null is null
    batch = rs.decide_batch(table, GEN_LISTS)
    assert list(zip(batch["action"], batch["rule_id"], strict=True)) == want
    masks = rs.matches(frame, GEN_LISTS)
    for r in rs:
        assert masks[r.id].tolist() == [r.matches(row, GEN_LISTS) for row in rows]


@settings(max_examples=200, deadline=None)
@given(condition=CONDITIONS)
def test_printing_a_rule_reads_back_the_same(condition):
    first = parse_rule(f"block if {condition}", attributes=GEN_TYPES, lists=["l1", "l2"])
    again = parse_rule(str(first), attributes=GEN_TYPES, lists=["l1", "l2"])
    assert again.condition == first.condition
    assert str(again) == str(first)


TOKENS = ["block", "review", "if", "IF", "and", "or", "not", "in", "not in", ":amount:",
          ":card_country:", "@suspicious_emails", "@x", "(", ")", ",", ">", ">=", "=", "==",
          "!=", "<", "'US'", '"x', "'", "5", "-1.5", "1e999", "true", "false", "#", ":", "@",
          "name:", "\\", "\n", " "]


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(max_size=80),
                      st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join)))
def test_the_parser_fails_only_with_rule_errors(text):
    for attributes in (ATTRS, None):
        try:
            parse_rule(text, attributes=attributes, lists=LIST_NAMES)
        except RuleError as exc:
            assert exc.column is not None and exc.column >= 1
    try:
        compile_rules(text, attributes=ATTRS, lists=LIST_NAMES)
    except RuleError as exc:
        assert exc.line is not None


# --------------------------------------------------------------------------- backtest


def _ts(*days_hours):
    return pa.array([pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(days=d, hours=h)
                     for d, h in days_hours], pa.timestamp("us", tz="UTC"))


@pytest.fixture
def history() -> pa.Table:
    return pa.table({
        "payment_id": [f"p{i}" for i in range(1, 9)],
        "ts": _ts((0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (2, 1), (2, 2), (2, 3)),
        "amount": [100.0, 2000.0, 50.0, 10.0, 1500.0, 30.0, 5000.0, 70.0],
        "risk_score": [90, 20, 80, 10, None, 95, 30, 5],
        "card_country": ["US", "FR", "US", "US", "FR", "US", "DE", "US"],
        "ip_country": ["US", "US", "US", "US", "FR", "US", "US", "US"],
        "email": ["a@x", "b@x", "bad@example.com", "c@x", "d@x", "e@x", "f@x", "g@x"],
    })


@pytest.fixture
def labels() -> pa.Table:
    return pa.table({
        "payment_id": ["p1", "p2", "p2", "p5", "p7", "p8"],
        "kind": ["dispute", "review_outcome", "fraud_report", "dispute", "dispute",
                 "review_outcome"],
        "is_fraud": [True, False, True, True, True, False],  # p2: one label says fraud
        "reported_at": _ts((30, 0), (5, 0), (31, 0), (20, 0), (30, 0), (9, 0)),
    }, schema=LABEL_SCHEMA)


BACKTEST_RULES = """
high_risk: block if :risk_score: > 75
foreign: review if :amount: > 1000 and :card_country: != :ip_country:
emails: request_verification if :email: in @suspicious_emails
"""


def test_backtest_counts_by_hand(history, labels, lists):
    rs = compile_rules(BACKTEST_RULES, attributes=ATTRS, lists=LIST_NAMES)
    report = backtest(rs, history, labels, lists=lists)
    assert report["period"] == {"start": "2024-03-01", "end": "2024-03-03", "days": 3}
    # fraud: p1, p2, p5, p7 (money 100 + 2000 + 1500 + 5000)
    assert (report["payments"], report["frauds"], report["fraud_amount"]) == (8, 4, 8600.0)
    total = report["rules"]["total"]
    # blocked: p1 (fraud), p3 (good; blocked before its email is checked), p6 (good)
    assert (total["fraud_blocked"], total["fraud_blocked_amount"]) == (1, 100.0)
    assert (total["good_blocked"], total["good_blocked_amount"]) == (2, 80.0)
    assert total["block_precision"] == pytest.approx(1 / 3)
    # review: p2 (FR card, US ip, fraud), p7 (DE/US, fraud); p5 is FR/FR
    assert (total["fraud_reviewed"], total["fraud_reviewed_amount"]) == (2, 7000.0)
    assert (total["good_reviewed"], total["review_precision"]) == (0, 1.0)
    assert total["reviews_per_day_mean"] == pytest.approx(2 / 3)
    assert total["reviews_per_day_max"] == 1
    assert total["fraud_blocked_share"] == 0.25
    assert total["fraud_blocked_amount_share"] == pytest.approx(100 / 8600)
    assert total["good_blocked_rate"] == 0.5
    by_rule = {r["id"]: r for r in report["rules"]["by_rule"]}
    assert by_rule["high_risk"]["payments"] == 3 and by_rule["high_risk"]["frauds"] == 1
    assert by_rule["emails"]["matched"] == 1 and by_rule["emails"]["payments"] == 0
    assert by_rule["foreign"]["reviews_per_day_max"] == 1
    assert report["rules"]["default"]["payments"] == 3  # p4, p5 (score missing), p8
    assert report["rules"]["by_action"]["block"] == {"payments": 3, "frauds": 1}
    assert report["baseline"] is None and report["vs_baseline"] is None
    json.dumps(report)  # JSON-ready as it is


def test_backtest_against_a_baseline(history, labels, lists):
    rs = compile_rules(BACKTEST_RULES, attributes=ATTRS, lists=LIST_NAMES)
    in_force = compile_rules("block if :risk_score: > 85\nreview if :amount: > 1000",
                             attributes=ATTRS)
    report = backtest(rs, history, labels, lists=lists, baseline=in_force)
    base = report["baseline"]["total"]
    # in force: blocks p1 (fraud) and p6 (good); reviews p2, p5, p7 (all fraud)
    assert (base["fraud_blocked"], base["good_blocked"], base["fraud_reviewed"]) == (1, 1, 3)
    diff = report["vs_baseline"]
    assert (diff["good_blocked"], diff["good_blocked_amount"]) == (1, 50.0)
    assert (diff["fraud_reviewed"], diff["fraud_reviewed_amount"]) == (-1, -1500.0)
    assert diff["block_precision"] == pytest.approx(1 / 3 - 1 / 2)
    changed = {(c["from"], c["to"]): c for c in report["changed"]}
    assert set(changed) == {("allow", "block"), ("review", "allow")}
    assert changed[("allow", "block")]["payments"] == 1  # p3
    assert changed[("review", "allow")]["fraud_amount"] == 1500.0  # p5
    text = render_backtest(report)
    assert "| fraud blocked " in text and "| high_risk " in text and "baseline" in text
    assert re.search(r"\| good payments blocked\s+\|\s+2 \|\s+1 \|\s+\+1 \|", text)
    titles = [t for t, _, _ in backtest_tables(report)]
    assert titles[1:] == ["rules, by deciding rule", "baseline, by deciding rule"]


def test_backtest_input_errors(history, labels, lists):
    rs = compile_rules(BACKTEST_RULES, attributes=ATTRS, lists=LIST_NAMES)
    with pytest.raises(SchemaError, match="history: missing required column"):
        backtest(rs, history.drop_columns(["amount"]), labels, lists=lists)
    with pytest.raises(SchemaError, match=r"history: no column for the attribute\(s\) "
                                          ":risk_score: that the rules read"):
        backtest(rs, history.drop_columns(["risk_score"]), labels, lists=lists)
    doubled = pa.concat_tables([history, history.slice(0, 1)])
    with pytest.raises(SchemaError, match="row 9, column 'payment_id': 'p1' appears more "):
        backtest(rs, doubled, labels, lists=lists)
    with pytest.raises(SchemaError, match="labels"):
        backtest(rs, history, labels.drop_columns(["is_fraud"]), lists=lists)


# --------------------------------------------------------------------------- attributes


def test_payment_attributes():
    attrs = payment_attributes(handbook_baseline())
    for column in PAYMENT_COLUMNS:
        if column.name != "ts" and column.name not in OUTCOME_COLUMNS:
            assert attrs[column.name] == ("number" if column.name == "amount" else "string")
    assert "ts" not in attrs
    assert "status" not in attrs  # the issuer answers after the rules have decided
    assert all(attrs[name] == "number" for name in handbook_baseline().names)
    assert (attrs["risk_score"], attrs["risk_level"]) == ("number", "string")
    assert set(payment_attributes()) == set(attrs) - set(handbook_baseline().names) | {
        "amount"}


# --------------------------------------------------------------------------- docs


DOC_RULES_EXAMPLE = """
block if :risk_score: > 75
big_foreign: review if :amount: > 1000 and :card_country: != :ip_country:
request_verification if :email: in @suspicious_emails
allow if :card_id: in @trusted_cards
"""


def test_docs_rules_examples_compile():
    text = (ROOT / "docs" / "rules.md").read_text()
    blocks = re.findall(r"```rules\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 3
    attributes = payment_attributes(payments_default())
    for block in blocks:
        names = set(re.findall(r"@([A-Za-z_]\w*)", block))
        rs = compile_rules(block, attributes=attributes, lists=names, source="docs/rules.md")
        assert len(rs) >= 1


# --------------------------------------------------------------------------- CLI


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def rules_file(tmp_path) -> Path:
    path = tmp_path / "rules.txt"
    path.write_text("# rules in review\n" + BACKTEST_RULES)
    return path


def test_cli_check_prints_the_evaluation_order(rules_file, tmp_path):
    emails = tmp_path / "emails.txt"
    emails.write_text("bad@example.com\n")
    result = run("rules", "check", str(rules_file), "--list", f"suspicious_emails={emails}")
    assert result.exit_code == 0, result.stderr
    assert result.output.splitlines() == [
        f"{rules_file}: 3 rules, valid; in evaluation order:",
        "    1. high_risk (line 3): block if :risk_score: > 75",
        "    2. emails (line 5): request_verification if :email: in @suspicious_emails",
        "    3. foreign (line 4): review if :amount: > 1000 and :card_country: != :ip_country:",
    ]
    declared = run("rules", "check", str(rules_file), "--list", "suspicious_emails",
                   "--features", "handbook")
    assert declared.exit_code == 0, declared.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--list", "trusted_cards"],
     "rules.txt line 5, column 44: unknown list '@suspicious_emails' (known lists: "
     "@trusted_cards)"),
    (["--list", "suspicious_emails={dir}/nope.txt"], "nope.txt: no such file"),
    (["--list", "=x"], "--list '=x': write NAME=FILE or NAME"),
    (["--list", "bad-name"], "'bad-name' is not a list name"),
])
def test_cli_check_mistakes_are_one_line(rules_file, args, message):
    args = [a.replace("{dir}", str(rules_file.parent)) for a in args]
    result = run("rules", "check", str(rules_file), *args)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_cli_check_reports_the_position_of_a_typo(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("block if :risk_score: > 75\nreview if :emial: = 'x'\n")
    result = run("rules", "check", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: {path} line 2, column 11: unknown attribute "
                                     "':emial:' (did you mean ':email:'?)")
    missing = run("rules", "check", str(tmp_path / "none.txt"))
    assert missing.exit_code == 1 and "none.txt: no such file" in missing.stderr


def test_cli_backtest(rules_file, tmp_path, history, labels):
    pq.write_table(history, tmp_path / "history.parquet")
    pq.write_table(labels, tmp_path / "labels.parquet")
    (tmp_path / "emails.txt").write_text("bad@example.com\n")
    (tmp_path / "in_force.txt").write_text("block if :risk_score: > 85\n")
    out = tmp_path / "report.json"
    result = run("rules", "backtest", str(rules_file), "--history",
                 str(tmp_path / "history.parquet"), "--labels", str(tmp_path / "labels.parquet"),
                 "--baseline", str(tmp_path / "in_force.txt"), "--list",
                 f"suspicious_emails={tmp_path / 'emails.txt'}", "--json", str(out))
    assert result.exit_code == 0, result.stderr
    assert "good payments blocked" in result.output and "high_risk" in result.output
    assert "difference" in result.output
    report = json.loads(out.read_text())
    assert report["rules"]["total"]["fraud_reviewed"] == 2
    assert report["baseline"]["total"]["fraud_blocked"] == 1
    no_members = run("rules", "backtest", str(rules_file), "--history",
                     str(tmp_path / "history.parquet"), "--labels",
                     str(tmp_path / "labels.parquet"), "--list", "suspicious_emails")
    assert no_members.exit_code == 1
    assert "a backtest needs the list's members" in no_members.stderr
    pq.write_table(history.drop_columns(["email"]), tmp_path / "no_email.parquet")
    no_email = run("rules", "backtest", str(rules_file), "--history",
                   str(tmp_path / "no_email.parquet"), "--labels",
                   str(tmp_path / "labels.parquet"), "--list",
                   f"suspicious_emails={tmp_path / 'emails.txt'}")
    assert no_email.exit_code == 1
    assert "history: no column for the attribute(s) :email: that the rules" in no_email.stderr
    (tmp_path / "junk.parquet").write_text("not parquet")
    junk = run("rules", "backtest", str(rules_file), "--history", str(tmp_path / "junk.parquet"),
               "--labels", str(tmp_path / "labels.parquet"))
    assert junk.exit_code == 1 and "not a readable Parquet file" in junk.stderr


@pytest.mark.parametrize("command", [["rules"], ["rules", "check"], ["rules", "backtest"]])
def test_cli_rules_help_has_an_example(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and "vigil rules" in result.output


def test_every_number_column_is_allowed_a_nan(history, labels, lists):
    """NaN in a float column (not a null) is a missing value in a backtest too."""
    table = history.set_column(history.column_names.index("risk_score"), "risk_score",
                               pa.array([90.0, math.nan, 80, 10, None, 95, 30, 5]))
    rs = compile_rules("block if not :risk_score: < 50", attributes=ATTRS)
    decided = rs.decide_batch(table, lists)["action"].tolist()
    assert decided == ["block", "allow", "block", "allow", "allow", "block", "allow", "allow"]
