"""The realistic world: determinism, schemas, identities, each fraud's signature, late labels.

One module-wide world (1,500 customers, eight weeks, every fraud at a raised rate) carries the
signature tests, so each scenario leaves enough payments to measure; the whole file runs in
seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from vigil import ConfigError
from vigil.events import (
    EventData,
    check_labels_refer,
    validate_labels,
    validate_payments,
    validate_truth,
)
from vigil.features import build_features, payments_default
from vigil.simulate import RealisticWorld, WorldSimulator
from vigil.simulate.realistic import (
    AccountTakeover,
    AdaptiveFraud,
    CardTesting,
    CompromisedTerminal,
    FriendlyFraud,
    LabelModel,
    StolenCardCNP,
    default_scenarios,
)

START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
DAYS = 56
SHIFT_DAY = 28
DAY = pd.Timedelta(days=1)


def raised_rates() -> list:
    return [StolenCardCNP(rate=1e-3), CardTesting(rate=4.0), AccountTakeover(rate=5e-4),
            CompromisedTerminal(rate=4e-4), FriendlyFraud(rate=5e-3),
            AdaptiveFraud(rate=1e-3, shift_day=SHIFT_DAY)]


@pytest.fixture(scope="module")
def world() -> RealisticWorld:
    return RealisticWorld(n_customers=1500, n_merchants=400, scenarios=raised_rates())


@pytest.fixture(scope="module")
def data(world: RealisticWorld) -> EventData:
    return world.simulate(DAYS, start=START, seed=5)


@pytest.fixture(scope="module")
def frame(data: EventData) -> pd.DataFrame:
    """Payments joined with their truth, one row per payment."""
    df = data.payments.to_pandas()
    truth = data.truth.to_pandas()
    df["is_fraud"] = truth["is_fraud"].to_numpy()
    df["scenario"] = truth["scenario"].to_numpy()
    df["day"] = (df["ts"] - pd.Timestamp(START)) // DAY
    return df


def tiny(**params) -> RealisticWorld:
    return RealisticWorld(**{"n_customers": 300, "n_merchants": 120, **params})


# -- contract -------------------------------------------------------------------------------------


def test_is_a_world_simulator_with_params() -> None:
    world = tiny()
    assert isinstance(world, WorldSimulator)
    assert world.get_params()["n_customers"] == 300
    assert repr(world) == "RealisticWorld(n_customers=300, n_merchants=120)"


def test_same_seed_same_tables_other_seed_differs() -> None:
    a = tiny().simulate(14, start=START, seed=1)
    b = tiny().simulate(14, start=START, seed=1)
    c = tiny().simulate(14, start=START, seed=2)
    assert a.fingerprint() == b.fingerprint()
    assert a.truth.equals(b.truth)
    assert a.fingerprint() != c.fingerprint()


def test_tables_follow_the_schemas(data: EventData) -> None:
    validate_payments(data.payments)
    validate_labels(data.labels)
    validate_truth(data.truth)
    check_labels_refer(data.payments, data.labels)
    assert data.payments.num_rows == data.truth.num_rows == data.info["payments"]
    ts = data.payments.column("ts").to_numpy()
    assert (np.diff(ts.astype("int64")) >= 0).all()  # in time order


def test_optional_columns_filled_by_channel(frame: pd.DataFrame) -> None:
    online = frame["channel"] == "card_not_present"
    assert set(frame["channel"]) == {"card_present", "card_not_present"}
    for col in ("device_id", "ip", "email", "ip_country"):
        assert frame.loc[online, col].notna().all(), col
        assert frame.loc[~online, col].isna().all(), col
    assert frame.loc[~online, "terminal_id"].notna().all()
    assert frame.loc[online, "terminal_id"].isna().all()
    for col in ("card_country", "merchant_country"):
        assert frame[col].notna().all()


def test_seeded_scenario_off_leaves_legit_payments_alone() -> None:
    full = tiny(scenarios=raised_rates()).simulate(21, start=START, seed=4)
    off = tiny(scenarios=[StolenCardCNP(rate=0.0), *raised_rates()[1:]]).simulate(
        21, start=START, seed=4)

    def others(d: EventData) -> pd.DataFrame:
        df = d.payments.to_pandas()
        df = df[d.truth.column("scenario").to_numpy(zero_copy_only=False) != "stolen_card_cnp"]
        return df.drop(columns="payment_id").reset_index(drop=True)

    assert off.info["scenarios"]["stolen_card_cnp"] == 0
    pd.testing.assert_frame_equal(others(full), others(off))


# -- legitimate behaviour -------------------------------------------------------------------------


def test_daily_and_weekly_seasonality(frame: pd.DataFrame) -> None:
    legit = frame[frame["scenario"] == "legit"]
    hours = legit["ts"].dt.hour.value_counts()
    assert hours[18] > 5 * hours[3]
    weekday = legit["ts"].dt.day_of_week.value_counts()
    assert weekday[5] > 1.3 * weekday[6]  # Saturday busier than Sunday


def test_shared_devices_carrier_ips_and_travel(frame: pd.DataFrame, world: RealisticWorld
                                                ) -> None:
    legit = frame[(frame["scenario"] == "legit") & (frame["channel"] == "card_not_present")]
    per_device = legit.groupby("device_id")["customer_id"].nunique()
    assert (per_device >= 2).sum() > 20  # households share devices
    per_ip = legit.groupby("ip")["customer_id"].nunique()
    nat = set(world.ips_.filter(pa.compute.equal(world.ips_["kind"], "carrier_nat"))
              .column("ip").to_pylist())
    assert per_ip[per_ip.index.isin(nat)].max() > 50  # many customers behind one carrier IP
    abroad = (legit["ip_country"] != legit["card_country"]).mean()
    assert 0.01 < abroad < 0.3  # real customers travel
    in_shop = frame[(frame["scenario"] == "legit") & (frame["channel"] == "card_present")]
    assert (in_shop["merchant_country"] != in_shop["card_country"]).mean() > 0.01


def test_new_customers_and_replaced_cards(frame: pd.DataFrame, data: EventData) -> None:
    legit = frame[frame["scenario"] == "legit"]
    first_day = legit.groupby("customer_id")["day"].min()
    assert (first_day > 14).sum() > 20  # accounts keep opening
    assert (legit.groupby("customer_id")["card_id"].nunique() == 2).sum() > 5
    assert data.info["entities"]["replaced_cards"] > 5


# -- fraud signatures -----------------------------------------------------------------------------


def test_every_scenario_has_payments(data: EventData) -> None:
    counts = data.info["scenarios"]
    assert set(counts) == {"legit", *(s.name for s in default_scenarios())}
    assert all(counts[s.name] > 0 for s in default_scenarios())


def test_card_testing_spikes_distinct_cards_per_ip(frame: pd.DataFrame) -> None:
    online = frame[frame["channel"] == "card_not_present"].copy()
    # distinct cards per IP in each 10-minute bucket
    online["bucket"] = online["ts"].dt.floor("10min")
    online["testing"] = online["scenario"] == "card_testing"
    spread = online.groupby(["ip", "bucket"]).agg(cards=("card_id", "nunique"),
                                                  testing=("testing", "max"))
    assert spread.loc[~spread["testing"], "cards"].max() <= 5
    tested = spread.loc[spread["testing"], "cards"]
    assert tested.max() >= 15
    # an attack: one device behind one IP at one merchant, tiny amounts (proxy IPs are reused
    # across attacks, so attacks are told apart by IP and device together)
    ct = frame[frame["scenario"] == "card_testing"]
    assert ct["amount"].max() <= 3.0
    assert (ct.groupby(["ip", "device_id"])["merchant_id"].nunique() == 1).mean() > 0.9


def _new_pair(frame: pd.DataFrame, a: str, b: str) -> pd.Series:
    """Whether each payment is the first of its (a, b) pair."""
    return ~frame.duplicated([a, b])


def test_stolen_card_new_device_and_foreign_or_proxy_ip(frame: pd.DataFrame,
                                                        world: RealisticWorld) -> None:
    online = frame[frame["channel"] == "card_not_present"].copy()
    online["new_device"] = _new_pair(online, "card_id", "device_id")
    kind = dict(zip(world.ips_.column("ip").to_pylist(), world.ips_.column("kind").to_pylist(),
                    strict=True))
    online["risky_ip"] = (online["ip"].map(kind) == "datacenter") | \
        (online["ip_country"] != online["card_country"])
    stolen = online[online["scenario"] == "stolen_card_cnp"]
    legit = online[online["scenario"] == "legit"]
    first = stolen.drop_duplicates("card_id")  # the first payment of each theft
    assert first["new_device"].mean() > 0.9 > 0.3 > legit["new_device"].mean()
    assert stolen["risky_ip"].mean() > 0.8 > 0.2 > legit["risky_ip"].mean()
    assert stolen["amount"].median() > 2 * legit["amount"].median()
    assert stolen["email"].str.contains(".q").all()  # from the fraudsters' pool


def test_account_takeover_new_email_and_device_at_own_shops(frame: pd.DataFrame) -> None:
    online = frame[frame["channel"] == "card_not_present"]
    legit = online[online["scenario"] == "legit"]
    usual_email = legit.groupby("customer_id")["email"].agg(lambda s: s.mode()[0])
    ato = online[online["scenario"] == "account_takeover"]
    assert len(ato) > 10
    assert (ato["email"] != ato["customer_id"].map(usual_email)).all()
    assert (legit["email"] == legit["customer_id"].map(usual_email)).all()
    seen = set(zip(legit["customer_id"], legit["device_id"], strict=True))
    assert not any((c, d) in seen for c, d in zip(ato["customer_id"], ato["device_id"],
                                                   strict=True))
    shops = set(zip(legit["customer_id"], legit["merchant_id"], strict=True))
    at_own = [(c, m) in shops for c, m in zip(ato["customer_id"], ato["merchant_id"],
                                              strict=True)]
    assert np.mean(at_own) > 0.5


def test_compromised_terminal_fraud_concentrated(frame: pd.DataFrame, data: EventData) -> None:
    hit = frame[frame["scenario"] == "compromised_terminal"]
    assert hit["channel"].eq("card_present").all()
    assert hit["terminal_id"].nunique() <= data.info["incidents"]["compromised_terminal"]
    in_shop = frame[frame["channel"] == "card_present"]
    terminal_rate = in_shop.groupby("terminal_id")["scenario"].apply(
        lambda s: (s == "compromised_terminal").mean())
    # a handful of terminals carry all of it, each with a large share of its payments
    assert (terminal_rate > 0).sum() < 0.05 * terminal_rate.size
    assert terminal_rate[terminal_rate > 0].median() > 0.2


def test_friendly_fraud_is_legit_but_labelled_fraud(frame: pd.DataFrame,
                                                    data: EventData) -> None:
    friendly = frame[frame["scenario"] == "friendly_fraud"]
    assert len(friendly) > 10
    assert not friendly["is_fraud"].any()
    labels = data.labels.to_pandas()
    got = labels[labels["payment_id"].isin(friendly["payment_id"])]
    assert set(got["payment_id"]) == set(friendly["payment_id"])
    assert got["is_fraud"].all() and set(got["kind"]) == {"dispute"}


def test_adaptive_fraud_shifts_after_its_week(frame: pd.DataFrame, world: RealisticWorld
                                              ) -> None:
    ad = frame[frame["scenario"] == "adaptive_fraud"]
    early, late = ad[ad["day"] < SHIFT_DAY], ad[ad["day"] >= SHIFT_DAY]
    assert len(early) > 10 and len(late) > 10
    assert late["amount"].median() < early["amount"].median() / 2
    category = dict(zip(world.merchants_["merchant_id"].to_pylist(),
                        world.merchants_["category"].to_pylist(), strict=True))
    early_kind, late_kind = early["merchant_id"].map(category), late["merchant_id"].map(category)
    resale = {"electronics", "jewelry", "gift_cards"}
    # a burst begun the day before the shift may spill over it: hence not exactly 1 and 0
    assert early_kind.isin(resale).mean() > 0.95 and late_kind.isin(resale).mean() < 0.05
    assert (late["ip_country"] == late["card_country"]).mean() > 0.9
    assert (early["ip_country"] == early["card_country"]).mean() < 0.5


# -- labels ---------------------------------------------------------------------------------------


def test_labels_arrive_late_and_partly(frame: pd.DataFrame, data: EventData) -> None:
    labels = data.labels.to_pandas().merge(frame[["payment_id", "ts", "scenario"]],
                                           on="payment_id")
    delay = (labels["reported_at"] - labels["ts"]) / DAY
    assert (delay > 0).all()
    disputes = delay[labels["kind"] == "dispute"]
    warnings = delay[labels["kind"] == "fraud_report"]
    assert 24 < disputes.median() < 37
    assert disputes.max() <= 120.25
    assert disputes.quantile(0.95) > 55  # a long tail
    assert warnings.median() < 8 and len(warnings) > 20
    assert labels["is_fraud"].all()
    fraud = frame[frame["is_fraud"]]
    labelled = fraud["payment_id"].isin(labels["payment_id"])
    assert 0.05 < 1 - labelled.mean() < 0.6  # some fraud is never reported
    stolen = labelled[fraud["scenario"] == "stolen_card_cnp"].mean()
    tested = labelled[fraud["scenario"] == "card_testing"].mean()
    assert tested < stolen  # a tiny test charge is seldom noticed
    assert not frame.loc[frame["scenario"] == "legit", "payment_id"].isin(
        labels["payment_id"]).any()


def test_label_model_settings_apply() -> None:
    never = tiny(scenarios=raised_rates(), labels=LabelModel(report_share=0.0))
    d = never.simulate(21, start=START, seed=3)
    scenario = d.truth.to_pandas().set_index("payment_id")["scenario"]
    assert set(scenario[d.labels.column("payment_id").to_pylist()]) <= {
        "friendly_fraud", "card_testing"}


# -- use with the rest of vigil -------------------------------------------------------------------


def test_offline_features_run_on_it(data: EventData) -> None:
    table = build_features(payments_default(), data.payments, data.labels, threads=1)
    assert table.num_rows == data.payments.num_rows


def test_presets() -> None:
    small = RealisticWorld.preset("small")
    assert small.n_customers == 1_000 and RealisticWorld.preset_days("small") == 60
    assert RealisticWorld.preset("large", n_merchants=5).n_merchants == 5
    with pytest.raises(ConfigError, match="no preset 'huge'; use one of small, medium, large"):
        RealisticWorld.preset("huge")


@pytest.mark.parametrize(("params", "message"), [
    ({"n_customers": 0}, "n_customers must be >= 1"),
    ({"new_customer_share": 2}, "new_customer_share must be a finite number >= 0.0 and <= 1.0"),
    ({"currency": "euro"}, "currency must be an ISO 4217 code"),
    ({"scenarios": [object()]}, "scenarios must hold RealisticScenario objects"),
    ({"scenarios": [CardTesting(), CardTesting()]}, "two scenarios are named 'card_testing'"),
    ({"scenarios": [StolenCardCNP(rate=-1.0)]}, "StolenCardCNP.rate must be a finite number"),
    ({"labels": LabelModel(report_share=1.5)}, "LabelModel.report_share must be"),
])
def test_bad_settings_say_what_to_do(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny(**params).simulate(3, start=START, seed=0)


def test_the_simulate_command_writes_a_preset_world(tmp_path):
    from click.testing import CliRunner

    from vigil.cli import main
    from vigil.events import load_dataset

    runner = CliRunner()
    done = runner.invoke(main, ["simulate", "--preset", "small", "--days", "10", "--seed", "3",
                                "--out", str(tmp_path / "w")])
    assert done.exit_code == 0, done.output
    data = load_dataset(tmp_path / "w")
    assert data.payments.num_rows > 1000
    assert data.payments.column("device_id").null_count < data.payments.num_rows
    clash = runner.invoke(main, ["simulate", "--preset", "small", "--cards", "10",
                                 "--out", str(tmp_path / "x")])
    assert clash.exit_code == 1 and "--preset" in clash.output
