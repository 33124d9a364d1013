"""The realistic world: determinism, schemas, identities, accounts, each fraud's signature,
late labels.

One module-wide world (1,500 customers, eight weeks, every fraud at a raised rate) carries the
signature tests, so each scenario leaves enough payments to measure; the whole file runs in
seconds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from vigil import ConfigError
from vigil.events import (
    EventData,
    check_accounts_refer,
    check_labels_refer,
    load_dataset,
    validate_account_events,
    validate_accounts,
    validate_identity_truth,
    validate_labels,
    validate_payments,
    validate_truth,
    validate_verification_sessions,
    write_dataset,
)
from vigil.features import build_features, payments_default
from vigil.simulate import RealisticWorld, WorldSimulator
from vigil.simulate.realistic import (
    AccountModel,
    AccountTakeover,
    AdaptiveFraud,
    CardTesting,
    CompromisedTerminal,
    FraudBatch,
    FriendlyFraud,
    LabelModel,
    StolenCardCNP,
    SyntheticIdentityRing,
    default_scenarios,
)

START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
DAYS = 56
SHIFT_DAY = 28
DAY = pd.Timedelta(days=1)


def raised_rates(ring_rate: float = 0.5) -> list:
    return [StolenCardCNP(rate=1e-3), CardTesting(rate=4.0), AccountTakeover(rate=5e-4),
            CompromisedTerminal(rate=4e-4), FriendlyFraud(rate=5e-3),
            AdaptiveFraud(rate=1e-3, shift_day=SHIFT_DAY),
            SyntheticIdentityRing(rate=ring_rate)]


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


def _with_truth(data: EventData, table: str, key: str) -> pd.DataFrame:
    df = getattr(data, table).to_pandas()
    truth = data.identity_truth.to_pandas()
    truth = truth[truth["table_name"] == table].set_index("record_id")
    for column in ("scenario", "is_fraud", "incident"):
        df[column] = df[key].map(truth[column])
    return df


@pytest.fixture(scope="module")
def accounts(data: EventData) -> pd.DataFrame:
    """Accounts with their truth (scenario, is_fraud, incident)."""
    return _with_truth(data, "accounts", "account_id")


@pytest.fixture(scope="module")
def events(data: EventData) -> pd.DataFrame:
    """Account events with their truth."""
    return _with_truth(data, "account_events", "event_id")


@pytest.fixture(scope="module")
def sessions(data: EventData) -> pd.DataFrame:
    """Verification sessions with their truth."""
    return _with_truth(data, "verification_sessions", "session_id")


def tiny(**params) -> RealisticWorld:
    return RealisticWorld(**{"n_customers": 300, "n_merchants": 120, **params})


# -- contract -------------------------------------------------------------------------------------


def test_is_a_world_simulator_with_params() -> None:
    world = tiny()
    assert isinstance(world, WorldSimulator)
    assert world.get_params()["n_customers"] == 300
    assert repr(world) == "RealisticWorld(n_customers=300, n_merchants=120)"


IDENTITY_TABLES = ("accounts", "account_events", "verification_sessions", "identity_truth")


def test_same_seed_same_tables_and_files_other_seed_differs(tmp_path) -> None:
    world = tiny(scenarios=raised_rates(ring_rate=3.0))  # rings even in a tiny world
    a = world.simulate(21, start=START, seed=1)
    b = world.simulate(21, start=START, seed=1)
    c = world.simulate(21, start=START, seed=2)
    assert a.fingerprint() == b.fingerprint()
    assert a.truth.equals(b.truth)
    for name in IDENTITY_TABLES:
        assert getattr(a, name).equals(getattr(b, name)), name
    assert a.info["identity"]["accounts_by_scenario"]["synthetic_identity_ring"] > 0
    assert a.fingerprint() != c.fingerprint()
    assert not a.accounts.equals(c.accounts)
    write_dataset(a, tmp_path / "a")
    write_dataset(b, tmp_path / "b")
    files = sorted(f.relative_to(tmp_path / "a") for f in (tmp_path / "a").rglob("*")
                   if f.is_file())
    assert {"accounts.parquet", "account_events.parquet", "verification_sessions.parquet",
            "identity_truth.parquet", "truth.parquet"} <= {str(f) for f in files}
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    # written as it is made: the same seed, the same bytes; another seed, other payments
    for name, seed in (("s1", 1), ("s2", 1), ("s3", 2)):
        world.simulate_to(tmp_path / name, 21, start=START, seed=seed, chunk_days=5)
    streamed = sorted(f.relative_to(tmp_path / "s1") for f in (tmp_path / "s1").rglob("*")
                      if f.is_file())
    assert streamed == files  # the layout of write_dataset, no leftovers
    for f in streamed:
        assert (tmp_path / "s1" / f).read_bytes() == (tmp_path / "s2" / f).read_bytes(), f
    assert (tmp_path / "s1" / "truth.parquet").read_bytes() != (
        tmp_path / "s3" / "truth.parquet").read_bytes()


TABLES = ("payments", "labels", "truth", *IDENTITY_TABLES)


@pytest.mark.parametrize("chunk_days", [1, 4, 30])
def test_the_written_folder_holds_what_simulate_returns(tmp_path, chunk_days: int) -> None:
    # a start at 06:30: run days straddle calendar days, and a day's file is written once
    start = START + pd.Timedelta(hours=6, minutes=30)
    world = tiny(scenarios=raised_rates(ring_rate=3.0))
    data = world.simulate(24, start=start, seed=6)
    days_seen = []
    info = world.simulate_to(tmp_path, 24, start=start, seed=6, chunk_days=chunk_days,
                             progress=lambda done, total, payments: days_seen.append(
                                 (done, total, payments)))
    written = load_dataset(tmp_path)
    for name in TABLES:
        assert getattr(written, name).equals(getattr(data, name)), name
    assert info == written.info == json.loads(json.dumps(data.info, default=str))
    assert info["identity_truth"] == data.identity_truth.num_rows
    assert len(list((tmp_path / "payments").iterdir())) == 25  # 24 days from 06:30
    assert [d[:2] for d in days_seen] == [(d, 24) for d in range(1, 25)]
    assert days_seen[-1][2] == data.payments.num_rows
    assert [p for *_, p in days_seen] == sorted(p for *_, p in days_seen)


class _LateScenario:
    """A scenario that buys one gift card a day, and (``reach`` days later) records it."""

    name, rate, is_fraud, report_share = "late", 1.0, True, None

    def __init__(self, reach: int) -> None:
        self.reach = reach

    def plan(self, world, rng):
        return self

    def step(self, day):
        at = (day.day - self.reach) * 86_400 + 3_600
        if at < 0:
            return FraudBatch()
        row = {"t": at, "card": 0, "merchant": 0, "terminal": -1, "device": 0, "ip": 0,
               "email": 0, "amount": 25.0, "cnp": True, "incident": day.day, "account": -1,
               "declined": False}
        payment = type(day.legit)(**{k: np.array([v]) for k, v in row.items()})
        return FraudBatch(new=payment, incidents=1)


def test_a_scenario_may_reach_back_two_days_not_more(tmp_path) -> None:
    data = tiny(scenarios=[_LateScenario(reach=2)]).simulate(10, start=START, seed=0)
    assert data.info["scenarios"]["late"] == data.info["incidents"]["late"] == 8
    with pytest.raises(ConfigError, match=r"scenario 'late' made a row at .* at most 2 days"):
        tiny(scenarios=[_LateScenario(reach=3)]).simulate_to(tmp_path, 10, start=START,
                                                              seed=0, chunk_days=2)


def test_tables_follow_the_schemas(data: EventData) -> None:
    validate_payments(data.payments)
    validate_labels(data.labels)
    validate_truth(data.truth)
    check_labels_refer(data.payments, data.labels)
    assert data.payments.num_rows == data.truth.num_rows == data.info["payments"]
    ts = data.payments.column("ts").to_numpy()
    assert (np.diff(ts.astype("int64")) >= 0).all()  # in time order
    validate_accounts(data.accounts)
    validate_account_events(data.account_events)
    validate_verification_sessions(data.verification_sessions)
    validate_identity_truth(data.identity_truth)
    check_accounts_refer(data.accounts, data.payments, "payments", "ts")
    check_accounts_refer(data.accounts, data.account_events, "account_events", "ts")
    check_accounts_refer(data.accounts, data.verification_sessions, "sessions", "created_at")
    for table, time_column in (("account_events", "ts"),
                               ("verification_sessions", "created_at")):
        ts = getattr(data, table).column(time_column).to_numpy().astype("int64")
        assert (np.diff(ts) >= 0).all(), table  # in time order, ids in that order
    assert (data.info["accounts"], data.info["account_events"],
            data.info["verification_sessions"]) == (
        data.accounts.num_rows, data.account_events.num_rows,
        data.verification_sessions.num_rows)


def test_identity_truth_covers_every_row_once(data: EventData) -> None:
    truth = data.identity_truth.to_pandas()
    for table, key in (("accounts", "account_id"), ("account_events", "event_id"),
                       ("verification_sessions", "session_id")):
        ids = truth.loc[truth["table_name"] == table, "record_id"]
        assert ids.tolist() == getattr(data, table).column(key).to_pylist(), table
    legit = truth["scenario"] == "legit"
    assert not truth.loc[legit, "is_fraud"].any()
    assert truth.loc[legit, "incident"].isna().all()
    assert truth.loc[~legit, "incident"].notna().all()


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


@pytest.mark.parametrize("index", [0, 2, 6], ids=["stolen_card_cnp", "account_takeover",
                                                   "synthetic_identity_ring"])
def test_seeded_scenario_off_leaves_everything_else_alone(index: int) -> None:
    scenarios = raised_rates(ring_rate=3.0)
    name = scenarios[index].name
    scenarios[index] = type(scenarios[index])(rate=0.0)
    full = tiny(scenarios=raised_rates(ring_rate=3.0)).simulate(35, start=START, seed=4)
    off = tiny(scenarios=scenarios).simulate(35, start=START, seed=4)

    def others(d: EventData, table: str, key: str) -> pd.DataFrame:
        df = getattr(d, table).to_pandas()
        if table == "payments":
            scenario = d.truth.column("scenario").to_numpy(zero_copy_only=False)
        else:
            truth = d.identity_truth.to_pandas()
            scenario = truth.loc[truth["table_name"] == table, "scenario"].to_numpy()
        df = df[scenario != name]
        return df.drop(columns=key).reset_index(drop=True)

    assert full.info["scenarios"][name] > 0 and off.info["scenarios"][name] == 0
    for table, key in (("payments", "payment_id"), ("accounts", "account_id"),
                       ("account_events", "event_id"), ("verification_sessions", "session_id")):
        pd.testing.assert_frame_equal(others(full, table, key), others(off, table, key),
                                      obj=table)


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


def test_every_customer_has_an_account_used_online(frame: pd.DataFrame, data: EventData,
                                                   accounts: pd.DataFrame) -> None:
    real = accounts[accounts["scenario"] == "legit"]
    assert len(real) == data.info["entities"]["customers"]
    assert (real["account_id"].str[2:] == real["customer_id"].str[2:]).all()
    assert (real["created_at"] < pd.Timestamp(START)).mean() > 0.7  # most opened long ago
    legit = frame[frame["scenario"] == "legit"]
    online = legit["channel"] == "card_not_present"
    assert legit.loc[~online, "account_id"].isna().all()  # in person: a card, no account
    through = legit.loc[online, "account_id"].notna().mean()
    assert 0.6 < through < 0.9  # the rest are guest checkouts
    owner = dict(zip(real["account_id"], real["customer_id"], strict=True))
    paid = legit[legit["account_id"].notna()]
    assert (paid["account_id"].map(owner) == paid["customer_id"]).all()


def test_legit_account_payments_follow_a_login_from_the_same_device(
        frame: pd.DataFrame, events: pd.DataFrame) -> None:
    paid = frame[(frame["scenario"] == "legit") & frame["account_id"].notna()]
    logins = events[(events["scenario"] == "legit") & (events["kind"] == "login")
                    & events["success"]]
    joined = pd.merge_asof(
        paid.sort_values("ts")[["ts", "account_id", "device_id"]],
        logins.sort_values("ts")[["ts", "account_id", "device_id"]].rename(
            columns={"ts": "login_ts"}),
        left_on="ts", right_on="login_ts", by=["account_id", "device_id"])
    gap = joined["ts"] - joined["login_ts"]
    assert (gap < pd.Timedelta(days=3)).mean() > 0.99
    # not one login per payment: a session of payments follows one login
    sessions = joined.drop_duplicates(["account_id", "device_id", "login_ts"])
    assert len(sessions) < 0.97 * len(paid)


def test_legit_logins_from_own_devices_and_lines(events: pd.DataFrame,
                                                 world: RealisticWorld) -> None:
    legit = events[events["scenario"] == "legit"]
    fraud_devices = set(world.devices_.filter(world.devices_["fraud_pool"])
                        .column("device_id").to_pylist())
    assert not legit["device_id"].isin(fraud_devices).any()
    kind = dict(zip(world.ips_.column("ip").to_pylist(), world.ips_.column("kind").to_pylist(),
                    strict=True))
    assert set(legit["ip"].map(kind)) <= {"broadband", "carrier_nat", "residential"}
    logins = legit[legit["kind"] == "login"]
    assert 0.01 < 1 - logins["success"].mean() < 0.06  # a mistyped password now and then
    assert (legit["kind"] == "password_change").sum() > 10
    assert legit["ts"].min() >= pd.Timestamp(START)


def test_a_new_email_shows_on_later_payments(frame: pd.DataFrame, events: pd.DataFrame
                                             ) -> None:
    changes = events[(events["scenario"] == "legit") & (events["kind"] == "email_change")]
    assert len(changes) > 3
    legit = frame[frame["scenario"] == "legit"]
    for account, ts, email in changes[["account_id", "ts", "email"]].itertuples(index=False):
        customer = "cu" + account[2:]
        paid = legit[(legit["customer_id"] == customer) & legit["email"].notna()]
        assert (paid.loc[paid["ts"] > ts, "email"] == email).all()
        assert not (paid.loc[paid["ts"] < ts, "email"] == email).any()


def test_genuine_verification_sessions(sessions: pd.DataFrame, accounts: pd.DataFrame) -> None:
    real = sessions[sessions["scenario"] == "legit"]
    assert set(real["reason"]) == {"signup", "step_up"}
    assert set(real["document_type"]) == {"passport", "id_card", "driving_license"}
    same_name = (real["claimed_name"] == real["document_name"]).mean()
    assert 0.9 < same_name < 1.0  # OCR misreads a letter now and then
    assert (real["claimed_date_of_birth"] == real["document_date_of_birth"]).all()
    assert real["face_match_score"].median() > 0.9
    assert 0.95 < real["liveness_passed"].mean() < 1.0  # rare genuine failures
    assert (real["face_match_score"] < 0.6).any()
    name = dict(zip(accounts["account_id"], accounts["name"], strict=True))
    assert (real["claimed_name"] == real["account_id"].map(name)).all()
    faces = np.stack(real["face_embedding"].to_numpy())
    assert np.allclose(np.linalg.norm(faces, axis=1), 1.0, atol=1e-4)
    # the same person's selfies agree, different people's do not
    cosine = faces @ faces.T
    same = real["account_id"].to_numpy()[:, None] == real["account_id"].to_numpy()[None, :]
    off_diagonal = ~np.eye(len(real), dtype=bool)
    assert cosine[same & off_diagonal].min() > 0.9
    assert cosine[~same].max() < 0.8


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


def test_account_takeover_new_device_login_then_change_then_spending(
        frame: pd.DataFrame, events: pd.DataFrame) -> None:
    ato = frame[frame["scenario"] == "account_takeover"]
    assert ato["account_id"].nunique() > 20
    assert ato["account_id"].notna().all()  # spent through the account
    legit_events = events[events["scenario"] == "legit"]
    legit = frame[frame["scenario"] == "legit"]
    checked = 0
    for account, spent in ato.groupby("account_id"):
        first, device = spent["ts"].min(), spent["device_id"].iloc[0]
        assert (spent["device_id"] == device).all()
        # a device the account never used before (to log in, sign up or pay)
        before = set(legit_events.loc[(legit_events["account_id"] == account)
                                      & (legit_events["ts"] < first), "device_id"])
        before |= set(legit.loc[(legit["account_id"] == account) & (legit["ts"] < first),
                                "device_id"])
        assert device not in before
        mine = events[(events["account_id"] == account) & (events["device_id"] == device)]
        login = mine[(mine["kind"] == "login") & mine["success"] & (mine["ts"] < first)]
        assert len(login), account
        logged_in = login["ts"].max()
        change = mine[mine["kind"].isin(["email_change", "password_change"])]
        assert ((change["ts"] > logged_in) & (change["ts"] < first)).any(), account
        assert first - logged_in < pd.Timedelta(hours=1)
        assert spent["ts"].max() - logged_in < pd.Timedelta(hours=36)
        new_email = change.loc[change["kind"] == "email_change", "email"]
        if len(new_email):  # the fraudster's address, on their payments too
            assert set(spent["email"]) == set(new_email)
        checked += 1
    assert checked > 20
    # the customer gets back in: a failed login, a new password, their e-mail back
    recovery = events[(events["scenario"] == "account_takeover") & ~events["is_fraud"]]
    assert len(recovery) > 10
    assert set(recovery["kind"]) == {"login", "password_change", "email_change"}
    assert not recovery.loc[recovery["kind"] == "login", "success"].any()
    # and the takeover happens at the customer's own online shops
    shops = set(zip(legit["account_id"], legit["merchant_id"], strict=True))
    at_own = [(a, m) in shops for a, m in zip(ato["account_id"], ato["merchant_id"],
                                              strict=True)]
    assert np.mean(at_own) > 0.5


def test_synthetic_identity_ring_reused_faces_shared_devices_then_bust_out(
        frame: pd.DataFrame, data: EventData, accounts: pd.DataFrame, events: pd.DataFrame,
        sessions: pd.DataFrame) -> None:
    ring_accounts = accounts[accounts["scenario"] == "synthetic_identity_ring"]
    assert ring_accounts["is_fraud"].all() and ring_accounts["incident"].nunique() >= 3
    # one face under three or more names; a real person's face under one
    faces = np.stack(sessions["face_embedding"].to_numpy())
    same_face = (faces @ faces.T) > 0.9
    names = sessions["claimed_name"].to_numpy()
    per_face = np.array([len(set(names[row])) for row in same_face])
    ring = (sessions["scenario"] == "synthetic_identity_ring").to_numpy()
    assert ring.sum() > 10
    assert per_face[ring].max() >= 3 and np.median(per_face[ring]) >= 3
    assert per_face[~ring].max() == 1
    # forged documents: names or dates of birth that do not match, numbers used twice
    forged = sessions[ring]
    assert (forged["claimed_name"] != forged["document_name"]).mean() > 0.3
    assert (forged["claimed_date_of_birth"] != forged["document_date_of_birth"]).mean() > 0.3
    assert forged["document_number_hash"].duplicated().any()
    assert forged.groupby(sessions.loc[ring, "incident"])["document_expiry"].nunique().max() == 1
    # devices and addresses shared by many of the ring's accounts
    used = pd.concat([accounts[["account_id", "device_id"]],
                      events[["account_id", "device_id"]]]).drop_duplicates()
    is_ring = used["account_id"].isin(ring_accounts["account_id"])
    per_device = used.groupby("device_id")["account_id"].nunique()
    ring_devices = per_device[per_device.index.isin(used.loc[is_ring, "device_id"])]
    legit_devices = per_device[~per_device.index.isin(used.loc[is_ring, "device_id"])]
    assert (ring_devices >= 5).mean() > 0.5 > 0.05 > (legit_devices >= 5).mean()
    per_address = ring_accounts.groupby("address_hash")["account_id"].nunique()
    assert per_address.max() >= 5
    # weeks of small payments nobody reports, then the bust-out within hours, reported
    paid = frame[frame["scenario"] == "synthetic_identity_ring"]
    assert paid["is_fraud"].all() and paid["account_id"].isin(ring_accounts["account_id"]).all()
    labelled = paid["payment_id"].isin(data.labels.column("payment_id").to_pylist())
    small, large = paid[paid["amount"] < 100], paid[paid["amount"] >= 200]
    assert len(small) > 50 and len(large) > 50
    assert not labelled[paid["amount"] < 100].any() and labelled[paid["amount"] >= 200].any()
    spans = large.groupby("account_id")["ts"].agg(lambda t: t.max() - t.min())
    assert (spans <= pd.Timedelta(hours=36)).all()
    weeks = small.groupby("account_id")["ts"].agg(lambda t: t.max() - t.min())
    assert weeks.median() > pd.Timedelta(days=14)


def test_card_testing_is_mostly_declined(frame: pd.DataFrame) -> None:
    declined = frame["status"] == "declined"
    assert set(frame["status"]) == {"authorized", "declined"}
    tested = declined[frame["scenario"] == "card_testing"].mean()
    legit = declined[frame["scenario"] == "legit"].mean()
    assert tested > 0.7 > 0.05 > legit > 0.005


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
    ({"decline_share": 1.5}, "decline_share must be a finite number >= 0.0 and <= 1.0"),
    ({"accounts": AccountModel(guest_share=2.0)}, "AccountModel.guest_share must be"),
    ({"accounts": "many"}, "accounts must be an AccountModel or None"),
    ({"scenarios": [SyntheticIdentityRing(verified_share=-0.1)]},
     "SyntheticIdentityRing.verified_share must be a finite number"),
    ({"scenarios": [AccountTakeover(email_change_share=3)]},
     "AccountTakeover.email_change_share must be"),
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
                                "--chunk-days", "3", "--out", str(tmp_path / "w")])
    assert done.exit_code == 0, done.output
    data = load_dataset(tmp_path / "w")
    assert data.payments.num_rows > 1000
    assert data.payments.column("device_id").null_count < data.payments.num_rows
    clash = runner.invoke(main, ["simulate", "--preset", "small", "--cards", "10",
                                 "--out", str(tmp_path / "x")])
    assert clash.exit_code == 1 and "--preset" in clash.output
