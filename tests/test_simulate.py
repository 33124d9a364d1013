"""The Handbook world: schemas, determinism, the rules of each fraud scenario, parameter errors.

Worlds here are small (hundreds of cards and terminals, a few weeks) so the whole file runs in
seconds; with 500 terminals some cards have none within reach, which exercises that case too.
"""

from __future__ import annotations

import doctest
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil import ConfigError
from vigil.events import (
    LABEL_SCHEMA,
    PAYMENT_SCHEMA,
    TRUTH_SCHEMA,
    EventData,
    check_labels_refer,
    load_dataset,
    validate_labels,
    validate_payments,
    validate_truth,
    write_dataset,
)
from vigil.simulate import (
    CompromisedCards,
    CompromisedTerminals,
    HandbookWorld,
    Incident,
    LargeAmount,
    Scenario,
    SimulatedPayments,
    WorldSimulator,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 30
SMALL = {"n_cards": 300, "n_terminals": 500}
SCENARIOS = ("legit", "large_amount", "compromised_terminal", "compromised_card")


def small_world(**params) -> HandbookWorld:
    return HandbookWorld(**{**SMALL, **params})


@pytest.fixture(scope="module")
def world_and_data() -> tuple[HandbookWorld, EventData]:
    world = small_world()
    return world, world.simulate(DAYS, start=START, seed=11)


@pytest.fixture(scope="module")
def data(world_and_data) -> EventData:
    return world_and_data[1]


@pytest.fixture(scope="module")
def no_card_theft() -> EventData:
    """The same world and seed with scenario 3 switched off: the amounts before theft."""
    return small_world(cards_compromised_per_day=0).simulate(DAYS, start=START, seed=11)


def frame(data: EventData):
    """Payments joined with truth and labels, as one pandas frame (same row order)."""
    df = data.payments.select(["payment_id", "ts", "amount", "card_id", "terminal_id"]).to_pandas()
    df["is_fraud"] = data.truth.column("is_fraud").to_numpy()
    df["scenario"] = data.truth.column("scenario").to_pandas()
    return df


# -- schemas and shape --------------------------------------------------------------------


def test_tables_conform_to_the_event_schemas(data):
    assert data.payments.schema.equals(PAYMENT_SCHEMA)
    assert data.labels.schema.equals(LABEL_SCHEMA)
    assert data.truth.schema.equals(TRUTH_SCHEMA)
    assert validate_payments(data.payments).equals(data.payments)
    assert validate_labels(data.labels).equals(data.labels)
    assert validate_truth(data.truth).equals(data.truth)
    check_labels_refer(data.payments, data.labels)


def test_payment_columns_hold_the_handbook_world(world_and_data):
    world, data = world_and_data
    p = data.payments
    n = p.num_rows
    assert n == data.info["payments"] > 5_000
    assert pc.count_distinct(p.column("payment_id")).as_py() == n
    assert pc.all(pc.equal(p.column("currency"), "EUR")).as_py()
    assert p.column("merchant_id").equals(p.column("terminal_id"))
    cards = p.column("card_id").to_pylist()
    customers = p.column("customer_id").to_pylist()
    assert all(c.startswith("c0") and cu == "cu" + c[1:] for c, cu in zip(cards, customers,
                                                                          strict=True))
    assert all(t.startswith("t") for t in p.column("terminal_id").to_pylist()[:100])
    for column in ("device_id", "ip", "email", "channel"):
        assert p.column(column).null_count == n
    # rows sorted by (ts, payment_id)
    order = pc.sort_indices(p, [("ts", "ascending"), ("payment_id", "ascending")])
    assert order.equals(pa.array(np.arange(n), pa.uint64()))
    ts = p.column("ts")
    assert pc.min(ts).as_py() >= START
    assert pc.max(ts).as_py() < START + timedelta(days=DAYS)
    # cards with no terminal in reach never pay; every card pays only at nearby terminals
    profiles = world.cards_.to_pandas().set_index("card_id")
    terminals = world.terminals_.to_pandas().set_index("terminal_id")
    assert (profiles["n_terminals"] == 0).sum() == data.info["cards_without_terminals"] > 0
    assert not set(profiles.index[profiles["n_terminals"] == 0]) & set(cards)
    df = frame(data)
    dx = profiles.loc[df["card_id"], "x"].to_numpy() - terminals.loc[df["terminal_id"], "x"]
    dy = profiles.loc[df["card_id"], "y"].to_numpy() - terminals.loc[df["terminal_id"], "y"]
    assert (np.hypot(dx, dy) < world.radius).all()


def test_day_counts_follow_the_customer_profiles(world_and_data):
    world, data = world_and_data
    profiles = world.cards_.to_pandas()
    reachable = profiles["n_terminals"] > 0
    # Poisson(mean) per day, minus the ~3 % of times that fall outside the day
    expected = profiles.loc[reachable, "mean_nb_tx_per_day"].sum() * DAYS * 0.969
    assert abs(data.payments.num_rows / expected - 1) < 0.03
    amount = data.payments.column("amount").to_numpy()
    assert amount.min() >= 0
    assert (np.round(amount, 2) == amount).all()  # whole cents, after theft too


def test_info_is_json_ready_and_counts_add_up(data):
    import json

    info = json.loads(json.dumps(data.info))
    assert info["generator"] == "vigil.simulate.HandbookWorld"
    assert info["seed"] == 11 and info["days"] == DAYS
    assert info["start"] == "2024-01-01T00:00:00+00:00"
    assert info["params"]["n_cards"] == 300 and info["params"]["radius"] == 5.0
    counts = info["scenarios"]
    assert tuple(counts) == SCENARIOS
    truth = data.truth.column("scenario").to_pandas().value_counts().to_dict()
    assert counts == {name: truth.get(name, 0) for name in SCENARIOS}
    assert info["frauds"] == sum(counts.values()) - counts["legit"]
    assert info["incidents"] == {"large_amount": 0, "compromised_terminal": 2 * DAYS,
                                 "compromised_card": 3 * DAYS}


def test_a_written_dataset_loads_back_equal(data, tmp_path):
    back = load_dataset(write_dataset(data, tmp_path / "world"))
    assert back.payments.equals(data.payments)
    assert back.labels.equals(data.labels)
    assert back.truth.equals(data.truth)
    assert back.info["seed"] == 11 and back.info["scenarios"] == data.info["scenarios"]


def test_every_scenario_is_present_at_a_sensible_size(data):
    counts = data.info["scenarios"]
    n = data.info["payments"]
    assert counts["large_amount"] >= 3
    assert counts["compromised_terminal"] >= 50
    assert counts["compromised_card"] >= 50
    assert 0.01 < data.info["fraud_rate"] < 0.2
    assert data.info["frauds"] == int(pc.sum(data.truth.column("is_fraud")).as_py()) < n


# -- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables(data):
    again = small_world().simulate(DAYS, start=START, seed=11)
    assert again.fingerprint() == data.fingerprint()
    assert again.truth.equals(data.truth)
    assert again.info == data.info


def test_different_seeds_differ(world_and_data):
    world, data = world_and_data
    other_world = small_world()
    other = other_world.simulate(DAYS, start=START, seed=12)
    assert other.fingerprint() != data.fingerprint()
    assert other.payments.column("amount") != data.payments.column("amount")
    # every random stream follows the seed: profiles, and each scenario's draws
    assert not other_world.cards_.column("x").equals(world.cards_.column("x"))
    for scenario in ("compromised_terminal", "compromised_card"):
        mine, theirs = (
            w.incidents_.filter(pc.equal(w.incidents_.column("scenario"), scenario))
            .column("entity_id") for w in (world, other_world))
        assert not mine.equals(theirs)


def test_seed_none_records_the_entropy_that_repeats_the_run():
    world = small_world(n_cards=20, n_terminals=40)
    first = world.simulate(3, start=START, seed=None)
    assert isinstance(first.info["seed"], int)
    again = world.simulate(3, start=START, seed=first.info["seed"])
    assert again.fingerprint() == first.fingerprint()


def test_a_scenario_switched_off_leaves_every_other_draw_alone(data, no_card_theft):
    base, full = frame(no_card_theft), frame(data)
    assert no_card_theft.info["scenarios"]["compromised_card"] == 0
    for column in ("payment_id", "ts", "card_id", "terminal_id"):
        assert (base[column] == full[column]).all()
    changed = base["scenario"] != full["scenario"]
    # only card theft relabels payments, and it wins over the other scenarios
    assert (full.loc[changed, "scenario"] == "compromised_card").all()


# -- the fraud scenarios ---------------------------------------------------------------------


def test_large_amount_is_every_payment_over_220_before_theft(data, no_card_theft):
    df = frame(data)
    base_amount = frame(no_card_theft)["amount"]
    over = base_amount > 220
    assert over.sum() >= 3
    assert df.loc[over, "is_fraud"].all()
    assert (base_amount[df["scenario"] == "large_amount"] > 220).all()
    not_theft = df["scenario"] != "compromised_card"
    assert ((df["amount"] > 220) <= df["is_fraud"])[not_theft].all()
    plain = not_theft & (df["scenario"] != "compromised_terminal")
    assert ((df["scenario"] == "large_amount") == (df["amount"] > 220))[plain].all()


def test_a_compromised_terminal_takes_only_fraud_in_its_window(world_and_data):
    world, data = world_and_data
    df = frame(data)
    incidents = world.incidents_.to_pandas()
    terminals = incidents[incidents["scenario"] == "compromised_terminal"]
    assert len(terminals) == 2 * DAYS
    assert (terminals["end"] - terminals["start"] == pd_days(28)).all()
    assert (terminals.groupby("start")["entity_id"].nunique() == 2).all()
    in_window = np.zeros(len(df), dtype=bool)
    for row in terminals.itertuples():
        rows = (df["terminal_id"] == row.entity_id) & (df["ts"] >= row.start) & \
            (df["ts"] < row.end)
        in_window |= rows.to_numpy()
    assert in_window.sum() >= 50
    assert df.loc[in_window, "is_fraud"].all()
    assert df.loc[in_window, "scenario"].isin(["compromised_terminal", "compromised_card"]).all()
    # and conversely: scenario 2 only inside a window of its terminal
    assert in_window[(df["scenario"] == "compromised_terminal").to_numpy()].all()


def test_a_compromised_card_pays_a_third_at_five_times_the_amount(world_and_data, no_card_theft):
    world, data = world_and_data
    df, base = frame(data), frame(no_card_theft)
    theft = (df["scenario"] == "compromised_card").to_numpy()
    assert theft.sum() >= 50
    assert (df.loc[theft, "amount"] == np.round(base.loc[theft, "amount"] * 5, 2)).all()
    assert (df.loc[~theft, "amount"] == base.loc[~theft, "amount"]).all()
    # a third (rounded down) of the pooled payments of each day's compromised cards
    incidents = world.incidents_.to_pandas()
    cards = incidents[incidents["scenario"] == "compromised_card"]
    assert len(cards) == 3 * DAYS
    assert (cards["end"] - cards["start"] == pd_days(14)).all()
    covered = np.zeros(len(df), dtype=bool)
    total_quota = 0
    for start, group in cards.groupby("start"):
        pool = (df["card_id"].isin(group["entity_id"]) & (df["ts"] >= start)
                & (df["ts"] < group["end"].iloc[0])).to_numpy()
        quota = pool.sum() // 3
        assert theft[pool].sum() >= quota
        total_quota += quota
        covered |= pool
    assert theft.sum() <= total_quota
    assert covered[theft].all()


def test_labels_arrive_exactly_the_delay_after_each_payment(data):
    labels, payments = data.labels, data.payments
    assert labels.column("payment_id").equals(payments.column("payment_id"))
    delay = pc.subtract(labels.column("reported_at"), payments.column("ts"))
    assert pc.all(pc.equal(delay, pa.scalar(timedelta(days=7), pa.duration("us")))).as_py()
    assert labels.column("is_fraud").equals(data.truth.column("is_fraud"))
    kinds = pc.if_else(labels.column("is_fraud"), "fraud_report", "review_outcome")
    assert labels.column("kind").equals(kinds)
    legit = pc.equal(data.truth.column("scenario"), "legit")
    assert legit.equals(pc.invert(data.truth.column("is_fraud")))


def test_label_delay_is_a_parameter():
    data = small_world(n_cards=30, label_delay_days=2.5).simulate(4, start=START, seed=1)
    delay = pc.subtract(data.labels.column("reported_at"), data.payments.column("ts"))
    assert pc.all(pc.equal(delay, pa.scalar(timedelta(days=2.5), pa.duration("us")))).as_py()


def pd_days(n: int):
    import pandas as pd

    return pd.Timedelta(days=n)


# -- the interface --------------------------------------------------------------------------


def test_progress_is_called_once_per_day():
    calls = []
    small_world(n_cards=10).simulate(5, start=START, seed=0,
                                     progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


@pytest.mark.parametrize("start", [
    "2024-01-01", "2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00", date(2024, 1, 1),
    datetime(2024, 1, 1),
])
def test_start_forms_mean_the_same_instant(start):
    data = small_world(n_cards=10, n_terminals=50).simulate(2, start=start, seed=3)
    reference = small_world(n_cards=10, n_terminals=50).simulate(2, start=START, seed=3)
    assert data.fingerprint() == reference.fingerprint()
    assert data.info["start"] == "2024-01-01T00:00:00+00:00"


def test_params_follow_the_estimator_conventions():
    world = HandbookWorld(n_cards=10, radius=2.0)
    assert isinstance(world, WorldSimulator)
    params = world.get_params()
    assert params["n_cards"] == 10 and params["n_terminals"] == 10000
    assert repr(world) == "HandbookWorld(n_cards=10, radius=2.0)"
    assert world.set_params(n_cards=20) is world and world.n_cards == 20
    with pytest.raises(ConfigError, match="no parameter 'cards'"):
        world.set_params(cards=3)
    # __init__ stores values unchecked; simulate checks them
    bad = HandbookWorld(n_cards=-1)
    assert bad.n_cards == -1
    with pytest.raises(ConfigError):
        bad.simulate(1, start=START, seed=0)


def test_docstring_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    tests = finder.find(HandbookWorld, "HandbookWorld", globs={"HandbookWorld": HandbookWorld})
    assert tests and any(t.examples for t in tests)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


@dataclass(frozen=True)
class MidnightTerminal:
    """A test scenario: every payment at one terminal is fraud."""

    terminal: int = 0
    name: str = "midnight_terminal"

    def apply(self, payments: SimulatedPayments, rng: np.random.Generator) -> list[Incident]:
        payments.mark_fraud(payments.terminal == self.terminal, self.name)
        return [Incident(self.name, "terminal", self.terminal, 0, payments.days)]


def test_extra_scenarios_plug_in_last_and_win(data):
    busiest = int(np.bincount(frame(data)["terminal_id"].str[1:].astype(int)).argmax())
    extra = MidnightTerminal(terminal=busiest)
    assert isinstance(extra, Scenario)
    plugged = small_world(extra_scenarios=(extra,)).simulate(DAYS, start=START, seed=11)
    df, before = frame(plugged), frame(data)
    at = df["terminal_id"] == f"t{busiest:06d}"
    assert at.sum() > 0
    assert (df.loc[at, "scenario"] == "midnight_terminal").all()
    assert (df.loc[~at, "scenario"] == before.loc[~at, "scenario"]).all()
    assert (df["amount"] == before["amount"]).all()
    assert plugged.info["scenarios"]["midnight_terminal"] == at.sum()
    assert plugged.info["params"]["extra_scenarios"] == [
        {"type": "MidnightTerminal", "name": "midnight_terminal", "terminal": busiest}]


def test_scenario_objects_work_on_their_own():
    payments = SimulatedPayments(
        day=np.array([0, 0, 1, 2]), second=np.array([10, 20, 86_410, 172_810]),
        card=np.array([0, 1, 0, 1]), terminal=np.array([0, 1, 1, 0]),
        amount=np.array([10.0, 230.0, 50.0, 221.0]), n_cards=2, n_terminals=2, days=3)
    rng = np.random.default_rng(0)
    assert LargeAmount().apply(payments, rng) == []
    assert payments.is_fraud.tolist() == [False, True, False, True]
    incidents = CompromisedTerminals(per_day=2, window_days=1).apply(payments, rng)
    assert len(incidents) == 6  # both terminals each day: everything is fraud
    assert payments.scenario_counts() == {"legit": 0, "large_amount": 0,
                                          "compromised_terminal": 4}
    CompromisedCards(per_day=2, window_days=3, share=1.0, multiplier=2.0).apply(payments, rng)
    assert payments.amount.tolist() == [20.0, 460.0, 100.0, 442.0]  # multiplied once each


# -- parameter errors -------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "call", "message"), [
    ({}, {"days": 0}, r"days must be >= 1"),
    ({}, {"days": -3}, r"days must be >= 1"),
    ({}, {"days": 1.5}, r"days must be a whole number"),
    ({}, {"days": True}, r"days must be a whole number"),
    ({"n_cards": 0}, {}, r"n_cards must be >= 1"),
    ({"n_terminals": 0}, {}, r"n_terminals must be >= 1"),
    ({"radius": 0}, {}, r"radius must be a finite number > 0"),
    ({"radius": -1.0}, {}, r"radius must be a finite number > 0"),
    ({"radius": float("nan")}, {}, r"radius must be a finite number > 0"),
    ({"radius": "5"}, {}, r"radius must be a number"),
    ({"label_delay_days": -1}, {}, r"label_delay_days must be a finite number >= 0"),
    ({"n_terminals": 1}, {}, r"terminals_compromised_per_day \(2\) is more than n_terminals"),
    ({"n_cards": 2}, {}, r"cards_compromised_per_day \(3\) is more than n_cards"),
    ({"cards_compromised_per_day": -1}, {}, r"cards_compromised_per_day must be >= 0"),
    ({"terminal_compromise_days": 0}, {}, r"terminal_compromise_days must be >= 1"),
    ({"card_fraud_share": 1.5}, {}, r"card_fraud_share must be .* <= 1.0"),
    ({"card_amount_multiplier": 0}, {}, r"card_amount_multiplier must be .* > 0"),
    ({"currency": "eur"}, {}, r"currency must be an ISO 4217 code"),
    ({}, {"start": "yesterday"}, r"start 'yesterday' is not a date or time; use ISO 8601"),
    ({}, {"start": 20240101}, r"start must be a date"),
    ({}, {"seed": -1}, r"seed must be a whole number >= 0"),
    ({}, {"seed": "42"}, r"seed must be a whole number >= 0"),
    ({}, {"progress": "bar"}, r"progress must be a callable"),
    ({"extra_scenarios": ("oops",)}, {}, r"extra_scenarios must hold Scenario objects"),
    ({"extra_scenarios": (MidnightTerminal(name="legit"),)}, {}, r"other than 'legit'"),
    ({"extra_scenarios": (MidnightTerminal(name="large_amount"),)}, {},
     r"two scenarios are named 'large_amount'"),
])
def test_bad_parameters_raise_config_error(params, call, message):
    world = small_world(n_cards=20, n_terminals=40)
    world.set_params(**params)
    kwargs = {"days": 2, "start": START, "seed": 0, **call}
    days = kwargs.pop("days")
    with pytest.raises(ConfigError, match=message):
        world.simulate(days, **kwargs)


def test_scenarios_check_their_own_sizes():
    payments = SimulatedPayments(
        day=np.zeros(1, np.int64), second=np.ones(1, np.int64), card=np.zeros(1, np.int64),
        terminal=np.zeros(1, np.int64), amount=np.ones(1), n_cards=1, n_terminals=1, days=1)
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="cannot compromise 2 terminals a day"):
        CompromisedTerminals(per_day=2).apply(payments, rng)
    with pytest.raises(ConfigError, match="cannot compromise 3 cards a day"):
        CompromisedCards(per_day=3).apply(payments, rng)


# -- any small world validates ----------------------------------------------------------------


@st.composite
def small_worlds(draw):
    n_cards = draw(st.integers(1, 40))
    n_terminals = draw(st.integers(1, 60))
    params = {
        "n_cards": n_cards,
        "n_terminals": n_terminals,
        "radius": draw(st.floats(0.5, 150.0)),
        "label_delay_days": draw(st.sampled_from([0, 0.5, 7, 30])),
        "terminals_compromised_per_day": draw(st.integers(0, min(n_terminals, 3))),
        "terminal_compromise_days": draw(st.integers(1, 30)),
        "cards_compromised_per_day": draw(st.integers(0, min(n_cards, 4))),
        "card_compromise_days": draw(st.integers(1, 20)),
        "card_fraud_share": draw(st.sampled_from([0.0, 1 / 3, 0.5, 1.0])),
    }
    return params, draw(st.integers(1, 8)), draw(st.integers(0, 2**32))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_worlds())
def test_any_small_world_gives_valid_events(case):
    params, days, seed = case
    data = HandbookWorld(**params).simulate(days, start="2020-02-28", seed=seed)
    payments = validate_payments(data.payments)
    labels = validate_labels(data.labels)
    truth = validate_truth(data.truth)
    check_labels_refer(payments, labels)
    n = payments.num_rows
    assert labels.num_rows == truth.num_rows == n == data.info["payments"]
    assert sum(data.info["scenarios"].values()) == n
    assert data.info["frauds"] == pc.sum(truth.column("is_fraud")).as_py() or n == 0
    order = pc.sort_indices(payments, [("ts", "ascending"), ("payment_id", "ascending")])
    assert order.equals(pa.array(np.arange(n), pa.uint64()))
    assert set(truth.column("scenario").to_pylist()) <= set(SCENARIOS)
