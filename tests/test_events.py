"""Events: reading payments and labels from Parquet and CSV, and saying exactly what is wrong."""

from __future__ import annotations

import csv
import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vigil
from vigil.events import (
    ACCOUNT_EVENT_SCHEMA,
    ACCOUNT_SCHEMA,
    FACE_EMBEDDING_DIM,
    HANDBOOK_SCENARIOS,
    LABEL_SCHEMA,
    PAYMENT_SCHEMA,
    VERIFICATION_SCHEMA,
    EventData,
    load_dataset,
    read_accounts,
    read_handbook,
    read_labels,
    read_payments,
    validate_account_events,
    validate_accounts,
    validate_labels,
    validate_payments,
    validate_verification_sessions,
    write_dataset,
)

T0 = datetime(2024, 5, 1, 13, 45, tzinfo=UTC)


def payment_rows(n: int = 4) -> list[dict]:
    """``n`` valid payments, one hour apart (two cards, one without a device)."""
    return [{
        "payment_id": f"p{i}",
        "ts": T0 + timedelta(hours=i),
        "amount": 10.0 + i,
        "currency": "EUR",
        "card_id": f"c{i % 2}",
        "customer_id": f"u{i % 2}",
        "merchant_id": "m1",
        "terminal_id": "t1",
        "device_id": None if i == 1 else "d1",
        "channel": "card_present",
    } for i in range(n)]


def label_rows(n: int = 4) -> list[dict]:
    return [{"payment_id": f"p{i}", "kind": "fraud_report", "is_fraud": i == 2,
             "reported_at": T0 + timedelta(days=7, hours=i)} for i in range(n)]


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def write_rows(rows: list[dict], path: Path, types: dict[str, pa.DataType] | None = None) -> Path:
    """Write rows as Parquet (types inferred unless given) or as CSV, by ``path``'s suffix."""
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(list(rows[0]))
            writer.writerows([[_csv_cell(v) for v in r.values()] for r in rows])
    else:
        types = types or {}
        arrays = {}
        for c in rows[0]:
            values = [r[c] for r in rows]
            if types.get(c) == pa.string():
                values = [None if v is None else _csv_cell(v) for v in values]
            arrays[c] = pa.array(values, types.get(c))
        pq.write_table(pa.table(arrays), path)
    return path


@pytest.fixture(params=[".parquet", ".csv"])
def suffix(request) -> str:
    return request.param


@pytest.fixture
def dataset(tmp_path) -> EventData:
    """A small valid dataset: 4 payments, one label each, ground truth."""
    payments = validate_payments(pa.Table.from_pylist(payment_rows()))
    labels = validate_labels(pa.Table.from_pylist(label_rows()))
    truth = pa.table({"payment_id": payments.column("payment_id"),
                      "is_fraud": [False, False, True, False],
                      "scenario": ["legit", "legit", "compromised_card", "legit"]})
    return EventData(payments=payments, labels=labels, truth=truth, info={"seed": 7})


# --------------------------------------------------------------------------- valid input


def test_valid_payments_read_from_either_format(tmp_path, suffix):
    path = write_rows(payment_rows(), tmp_path / f"payments{suffix}")
    table = read_payments(path)
    assert table.schema.equals(PAYMENT_SCHEMA)
    assert table.column("payment_id").to_pylist() == ["p0", "p1", "p2", "p3"]
    assert table.column("ts").to_pylist()[1] == T0 + timedelta(hours=1)
    assert table.column("device_id").to_pylist()[1] is None


def test_valid_labels_read_from_either_format(tmp_path, suffix):
    path = write_rows(label_rows(), tmp_path / f"labels{suffix}")
    table = read_labels(path)
    assert table.schema.equals(LABEL_SCHEMA)
    assert table.column("is_fraud").to_pylist() == [False, False, True, False]


def test_naive_timestamps_are_utc(tmp_path):
    rows = payment_rows(2)
    naive = [r["ts"].replace(tzinfo=None) for r in rows]
    for r, ts in zip(rows, naive, strict=True):
        r["ts"] = ts
    parquet = write_rows(rows, tmp_path / "naive.parquet", {"ts": pa.timestamp("ms")})
    assert read_payments(parquet).column("ts").to_pylist() == [T0, T0 + timedelta(hours=1)]
    assert write_rows(rows, tmp_path / "naive.csv").read_text().count("+00:00") == 0
    assert read_payments(tmp_path / "naive.csv").column("ts").to_pylist() == [
        T0, T0 + timedelta(hours=1)]


def test_timestamps_with_an_offset_become_utc(tmp_path):
    rows = payment_rows(1)
    rows[0]["ts"] = "2024-05-01T15:45:00+02:00"
    path = write_rows(rows, tmp_path / "offset.csv")
    assert read_payments(path).column("ts").to_pylist() == [T0]


def test_a_folder_of_partitions_reads_as_one_table(tmp_path):
    rows = payment_rows(4)
    (tmp_path / "p" / "date=1").mkdir(parents=True)
    (tmp_path / "p" / "date=2").mkdir(parents=True)
    write_rows(rows[:2], tmp_path / "p" / "date=1" / "part-0.parquet")
    write_rows(rows[2:], tmp_path / "p" / "date=2" / "part-0.csv")
    assert read_payments(tmp_path / "p").column("payment_id").to_pylist() == [
        "p0", "p1", "p2", "p3"]


def test_dataset_round_trip(tmp_path, dataset):
    folder = write_dataset(dataset, tmp_path / "world")
    assert sorted(p.parent.name for p in (folder / "payments").rglob("*.parquet")) == [
        "date=2024-05-01"]
    loaded = load_dataset(folder)
    assert loaded.payments.equals(dataset.payments)
    assert loaded.labels.equals(dataset.labels)
    assert loaded.truth is not None
    assert loaded.truth.column("scenario").to_pylist() == dataset.truth.column(
        "scenario").to_pylist()
    assert loaded.info == {"seed": 7, "payments": 4, "labels": 4}
    assert loaded.fingerprint() == dataset.fingerprint()


def test_a_folder_without_identity_tables_loads_without_them(tmp_path, dataset):
    loaded = load_dataset(write_dataset(dataset, tmp_path / "world"))
    assert loaded.accounts is None and loaded.account_events is None
    assert loaded.verification_sessions is None and loaded.identity_truth is None
    assert not any((tmp_path / "world").glob("account*"))
    # payments without the newer columns get them as nulls
    assert loaded.payments.column("account_id").null_count == 4
    assert loaded.payments.column("status").null_count == 4


SHA = "ab" * 32
UNIT = [1.0] + [0.0] * (FACE_EMBEDDING_DIM - 1)


def account_rows() -> list[dict]:
    return [{"account_id": f"a{i}", "customer_id": f"u{i}", "created_at": T0 - timedelta(days=9),
             "email": f"u{i}@example.com", "name": f"Anna Test{i}",
             "date_of_birth": date(1980 + i, 2, 3), "country": "DE", "address_hash": SHA,
             "device_id": "d1", "ip": "10.0.0.1", "ip_country": "DE"} for i in range(2)]


def event_rows() -> list[dict]:
    return [
        {"event_id": "e0", "account_id": "a0", "ts": T0 - timedelta(minutes=5), "kind": "login",
         "success": True, "device_id": "d1", "ip": "10.0.0.1", "ip_country": "DE",
         "email": None},
        {"event_id": "e1", "account_id": "a0", "ts": T0 - timedelta(minutes=4),
         "kind": "email_change", "success": True, "device_id": "d1", "ip": "10.0.0.1",
         "ip_country": "DE", "email": "new@example.com"},
        {"event_id": "e2", "account_id": "a1", "ts": T0, "kind": "login", "success": False,
         "device_id": "d2", "ip": "10.0.0.2", "ip_country": "FR", "email": None},
    ]


def session_rows() -> list[dict]:
    return [{"session_id": "s0", "account_id": "a1", "created_at": T0 - timedelta(days=9),
             "reason": "signup", "document_type": "id_card", "issuing_country": "DE",
             "document_number_hash": SHA, "claimed_name": "Anna Test1",
             "claimed_date_of_birth": date(1981, 2, 3), "document_name": "Anna Test1",
             "document_date_of_birth": date(1981, 2, 3), "document_expiry": date(2030, 1, 1),
             "face_match_score": 0.93, "liveness_score": 0.97, "liveness_passed": True,
             "face_embedding": UNIT, "device_id": "d1", "ip": "10.0.0.1",
             "ip_country": "DE"}]


@pytest.fixture
def identity_dataset(dataset) -> EventData:
    """The small dataset, its payments made through two accounts, with their events."""
    payments = dataset.payments.set_column(
        dataset.payments.column_names.index("account_id"), "account_id",
        pa.array(["a0", None, "a1", "a0"]))
    truth = pa.table({"table_name": ["accounts", "accounts"], "record_id": ["a0", "a1"],
                      "is_fraud": [False, True], "scenario": ["legit", "ring"],
                      "incident": [None, 0]})
    return EventData(
        payments=payments, labels=dataset.labels, truth=dataset.truth, info={"seed": 7},
        accounts=validate_accounts(pa.Table.from_pylist(account_rows())),
        account_events=validate_account_events(pa.Table.from_pylist(event_rows())),
        verification_sessions=validate_verification_sessions(
            pa.Table.from_pylist(session_rows())),
        identity_truth=truth)


def test_identity_tables_round_trip(tmp_path, identity_dataset):
    folder = write_dataset(identity_dataset, tmp_path / "world")
    loaded = load_dataset(folder)
    for name, schema in (("accounts", ACCOUNT_SCHEMA), ("account_events", ACCOUNT_EVENT_SCHEMA),
                         ("verification_sessions", VERIFICATION_SCHEMA)):
        table = getattr(loaded, name)
        assert table.schema.equals(schema), name
        assert table.equals(getattr(identity_dataset, name)), name
    assert loaded.identity_truth.column("incident").to_pylist() == [None, 0]
    assert loaded.info == {"seed": 7, "payments": 4, "labels": 4, "accounts": 2,
                           "account_events": 3, "verification_sessions": 1,
                           "identity_truth": 2}
    embedding = loaded.verification_sessions.column("face_embedding")
    assert embedding.type == pa.list_(pa.float32(), FACE_EMBEDDING_DIM)


def test_accounts_read_from_csv(tmp_path):
    path = write_rows(account_rows(), tmp_path / "accounts.csv")
    table = read_accounts(path)
    assert table.schema.equals(ACCOUNT_SCHEMA)
    assert table.column("date_of_birth").to_pylist() == [date(1980, 2, 3), date(1981, 2, 3)]


def _identity_rows(table: str, index: int, **values) -> list[dict]:
    rows = {"accounts": account_rows, "account_events": event_rows,
            "verification_sessions": session_rows}[table]()
    rows[index].update(values)
    return rows


# (name, table, rows, 1-based row, column, message fragment)
IDENTITY_CASES = [
    ("bad event kind", "account_events", _identity_rows("account_events", 2, kind="logout"), 3,
     "kind", "kind must be one of login, email_change, password_change"),
    ("e-mail change without the address", "account_events",
     _identity_rows("account_events", 1, email=None), 2, "email",
     "an email_change that succeeded must give the new address"),
    ("duplicate event id", "account_events", _identity_rows("account_events", 2, event_id="e0"),
     3, "event_id", "'e0' appears more than once"),
    ("bad country", "accounts", _identity_rows("accounts", 1, country="Germany"), 2, "country",
     "must be an ISO 3166-1 alpha-2 country code"),
    ("address not hashed", "accounts", _identity_rows("accounts", 0, address_hash="Main St 1"),
     1, "address_hash", "must be a SHA-256 hash"),
    ("not a date", "accounts", _identity_rows("accounts", 1, date_of_birth="03/02/1981"), 2,
     "date_of_birth", "'03/02/1981' is not a date; use YYYY-MM-DD"),
    ("score above 1", "verification_sessions",
     _identity_rows("verification_sessions", 0, face_match_score=1.7), 1, "face_match_score",
     "a score must be a number from 0 to 1"),
    ("bad reason", "verification_sessions",
     _identity_rows("verification_sessions", 0, reason="random"), 1, "reason",
     "reason must be one of signup, step_up"),
    ("short embedding", "verification_sessions",
     _identity_rows("verification_sessions", 0, face_embedding=[1.0, 0.0]), 1,
     "face_embedding", f"expected a list of {FACE_EMBEDDING_DIM} numbers, found 2"),
    ("embedding not unit", "verification_sessions",
     _identity_rows("verification_sessions", 0, face_embedding=[2.0] * FACE_EMBEDDING_DIM), 1,
     "face_embedding", "a face embedding must have unit length"),
]


@pytest.mark.parametrize(("table", "rows", "row", "column", "fragment"),
                         [c[1:] for c in IDENTITY_CASES], ids=[c[0] for c in IDENTITY_CASES])
def test_bad_identity_tables(tmp_path, identity_dataset, table, rows, row, column, fragment):
    folder = write_dataset(identity_dataset, tmp_path / "world")
    types = {"date_of_birth": pa.string()} if "not a date" in fragment else None
    path = write_rows(rows, folder / f"{table}.parquet", types)
    with pytest.raises(vigil.SchemaError) as info:
        load_dataset(folder)
    assert str(info.value).startswith(f"{path}, row {row}, column '{column}': "), info.value
    assert fragment in str(info.value)


@pytest.mark.parametrize(("table", "change", "row", "column", "fragment"), [
    ("account_events", {"account_id": "a9"}, 3, "account_id",
     "'a9' is not the id of any account"),
    ("account_events", {"ts": T0 - timedelta(days=30)}, 3, "ts",
     "is earlier than the account's creation"),
    ("verification_sessions", {"account_id": "zz"}, 1, "account_id",
     "'zz' is not the id of any account"),
])
def test_identity_tables_must_refer_to_accounts(tmp_path, identity_dataset, table, change,
                                                row, column, fragment):
    folder = write_dataset(identity_dataset, tmp_path / "world")
    rows = _identity_rows(table, row - 1, **change)
    path = write_rows(rows, folder / f"{table}.parquet")
    with pytest.raises(vigil.SchemaError) as info:
        load_dataset(folder)
    assert str(info.value).startswith(f"{path}, row {row}, column '{column}': ")
    assert fragment in str(info.value)


def test_payments_must_refer_to_accounts(tmp_path, identity_dataset):
    folder = write_dataset(identity_dataset, tmp_path / "world")
    pq.write_table(validate_accounts(pa.Table.from_pylist(account_rows()[:1])),
                   folder / "accounts.parquet")
    pq.write_table(validate_verification_sessions(pa.Table.from_pylist(session_rows())).slice(
        0, 0), folder / "verification_sessions.parquet")
    (folder / "account_events.parquet").unlink()
    with pytest.raises(vigil.SchemaError, match=r"payments, row 3, column 'account_id': 'a1' "
                       r"is not the id of any account"):
        load_dataset(folder)


def test_account_events_need_the_accounts(tmp_path, identity_dataset):
    folder = write_dataset(identity_dataset, tmp_path / "world")
    (folder / "accounts.parquet").unlink()
    with pytest.raises(vigil.DataFileError, match=r"account_events\.parquet refers to "
                       r"accounts, but .*accounts\.parquet is missing"):
        load_dataset(folder)


def test_dataset_partitions_by_day_in_time_order(tmp_path):
    rows = payment_rows(3)
    rows[0]["ts"] = T0 + timedelta(days=2)  # out of order on purpose
    payments = validate_payments(pa.Table.from_pylist(rows))
    labels = validate_labels(pa.Table.from_pylist([
        {"payment_id": "p1", "kind": "dispute", "is_fraud": True,
         "reported_at": T0 + timedelta(days=30)}]))
    folder = write_dataset(EventData(payments, labels), tmp_path / "world")
    assert sorted(p.parent.name for p in (folder / "payments").rglob("*.parquet")) == [
        "date=2024-05-01", "date=2024-05-03"]
    loaded = load_dataset(folder)
    assert loaded.payments.column("payment_id").to_pylist() == ["p1", "p2", "p0"]
    assert loaded.truth is None


# --------------------------------------------------------------------------- files


def test_missing_file(tmp_path):
    with pytest.raises(vigil.DataFileError, match="no such file or folder") as info:
        read_payments(tmp_path / "nope.parquet")
    assert str(tmp_path / "nope.parquet") in str(info.value)


def test_a_file_that_is_not_parquet(tmp_path):
    path = tmp_path / "payments.parquet"
    path.write_bytes(b"\x00\x01 this is not parquet \xff" * 10)
    with pytest.raises(vigil.DataFileError, match="not a readable Parquet file") as info:
        read_payments(path)
    assert str(path) in str(info.value)


def test_a_csv_that_is_not_text(tmp_path):
    path = tmp_path / "payments.csv"
    path.write_bytes(b"\xff\xfe\x00payment_id")
    with pytest.raises(vigil.DataFileError, match="not a UTF-8 text CSV file") as info:
        read_payments(path)
    assert str(info.value).startswith(f"{path}: ")


def test_an_empty_csv(tmp_path):
    path = tmp_path / "payments.csv"
    path.write_text("")
    with pytest.raises(vigil.DataFileError, match="empty CSV file") as info:
        read_payments(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("name", ["payments.xlsx", "payments.json", "payments"])
def test_unknown_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text("payment_id\n")
    with pytest.raises(vigil.DataFileError, match="unknown file type") as info:
        read_payments(path)
    assert str(path) in str(info.value)
    assert "vigil reads .parquet and .csv" in str(info.value)


def test_a_folder_without_data_files(tmp_path):
    with pytest.raises(vigil.DataFileError, match=r"holds no \.parquet or \.csv file"):
        read_payments(tmp_path)


# --------------------------------------------------------------------------- bad values


def _set(rows: list[dict], index: int, **values) -> list[dict]:
    rows[index].update(values)
    return rows


def _every(rows: list[dict], **values) -> list[dict]:
    for r in rows:
        r.update(values)
    return rows


def _drop(rows: list[dict], column: str) -> list[dict]:
    for r in rows:
        del r[column]
    return rows


# (name, rows, Parquet types, 1-based row or None, column or None, message fragment)
PAYMENT_CASES = [
    ("missing column", _drop(payment_rows(), "currency"), None, None, None,
     "missing required column(s) currency"),
    ("missing columns", _drop(_drop(payment_rows(), "ts"), "card_id"), None, None, None,
     "missing required column(s) ts, card_id"),
    ("null timestamp", _set(payment_rows(), 2, ts=None), {"ts": pa.timestamp("us", "UTC")},
     3, "ts", "value is missing (null) but the column is required"),
    ("unparseable timestamp", _set(payment_rows(), 2, ts="yesterday"), None, 3, "ts",
     "'yesterday' is not a timestamp; use ISO 8601"),
    ("impossible timestamp", _set(payment_rows(), 1, ts="2024-02-30T10:00:00Z"), None, 2, "ts",
     "is not a timestamp"),
    ("negative amount", _set(payment_rows(), 3, amount=-5.0), None, 4, "amount",
     "amount must be a finite number >= 0"),
    ("NaN amount", _set(payment_rows(), 1, amount=float("nan")), None, 2, "amount", "nan"),
    ("infinite amount", _set(payment_rows(), 1, amount=float("inf")), None, 2, "amount",
     "amount must be a finite number >= 0"),
    ("text amount", _set(payment_rows(), 2, amount="12,50"), None, 3, "amount",
     "'12,50' is not a number"),
    ("null amount", _set(payment_rows(), 0, amount=None), {"amount": pa.float64()}, 1, "amount",
     "value is missing (null)"),
    ("lower-case currency", _set(payment_rows(), 2, currency="eur"), None, 3, "currency",
     "currency must be an ISO 4217 code of three upper-case letters, e.g. EUR"),
    ("currency symbol", _set(payment_rows(), 0, currency="€"), None, 1, "currency",
     "ISO 4217"),
    ("bad channel", _set(payment_rows(), 1, channel="online"), None, 2, "channel",
     "channel must be one of card_present, card_not_present"),
    ("duplicate id", _set(payment_rows(), 3, payment_id="p1"), None, 4, "payment_id",
     "'p1' appears more than once; ids must be unique"),
    ("null card", _set(payment_rows(), 1, card_id=None), {"card_id": pa.string()}, 2, "card_id",
     "value is missing (null)"),
    ("bad status", _set(_every(payment_rows(), status="authorized"), 2, status="refused"),
     None, 3, "status",
     "status must be one of authorized, declined"),
]


@pytest.mark.parametrize(("rows", "types", "row", "column", "fragment"),
                         [c[1:] for c in PAYMENT_CASES], ids=[c[0] for c in PAYMENT_CASES])
def test_bad_payments(tmp_path, suffix, rows, types, row, column, fragment):
    if suffix == ".parquet" and any(isinstance(r.get("amount"), str) for r in rows):
        types = {**(types or {}), "amount": pa.string()}
    if suffix == ".parquet" and any(isinstance(r.get("ts"), str) for r in rows):
        types = {**(types or {}), "ts": pa.string()}
    path = write_rows([dict(r) for r in rows], tmp_path / f"payments{suffix}", types)
    with pytest.raises(vigil.SchemaError) as info:
        read_payments(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert info.value.source == str(path)
    assert info.value.row == row
    assert info.value.column == column
    if row is not None:
        assert f"row {row}" in message
    if column is not None:
        assert f"column '{column}'" in message
    assert fragment in message


@pytest.mark.parametrize(("column", "values", "type_", "fragment"), [
    ("card_id", [1.5, 2.5, 3.5, 4.5], pa.float64(), "expected text, found double"),
    ("amount", [True, False, True, True], pa.bool_(), "expected a number, found bool"),
    ("ts", [1, 2, 3, 4], pa.int64(), "expected a timestamp, found int64"),
    ("ts", [1, 2, 3, 4], pa.float64(), "expected a timestamp, found double"),
])
def test_mistyped_parquet_column(tmp_path, column, values, type_, fragment):
    rows = [{**r, column: v} for r, v in zip(payment_rows(), values, strict=True)]
    path = write_rows(rows, tmp_path / "payments.parquet", {column: type_})
    with pytest.raises(vigil.SchemaError) as info:
        read_payments(path)
    assert str(info.value).startswith(f"{path}, column '{column}': ")
    assert fragment in str(info.value)


def test_integer_ids_are_read_as_text(tmp_path):
    rows = [{**r, "card_id": i} for i, r in enumerate(payment_rows())]
    path = write_rows(rows, tmp_path / "payments.parquet", {"card_id": pa.int64()})
    assert read_payments(path).column("card_id").to_pylist() == ["0", "1", "2", "3"]


def test_nanosecond_timestamps_that_do_not_fit_microseconds(tmp_path):
    rows = payment_rows(3)
    ts = [int(r["ts"].timestamp()) * 10**9 for r in rows]
    ts[1] += 1
    path = tmp_path / "payments.parquet"
    table = pa.Table.from_pylist(rows).set_column(1, "ts", pa.array(ts, pa.timestamp("ns")))
    pq.write_table(table, path)
    with pytest.raises(vigil.SchemaError, match="round the column to microseconds") as info:
        read_payments(path)
    assert (info.value.row, info.value.column) == (2, "ts")
    # whole microseconds in a nanosecond column are fine
    table = table.set_column(1, "ts", pa.array([t - t % 1000 for t in ts], pa.timestamp("ns")))
    pq.write_table(table, path)
    assert read_payments(path).column("ts").to_pylist() == [r["ts"] for r in rows]


LABEL_CASES = [
    ("bad kind", _set(label_rows(), 1, kind="chargeback"), 2, "kind",
     "kind must be one of dispute, fraud_report, review_outcome"),
    ("bad flag", _set(label_rows(), 2, is_fraud="maybe"), 3, "is_fraud",
     "'maybe' is not a boolean (use true/false)"),
    ("null report time", _set(label_rows(), 3, reported_at=None), 4, "reported_at",
     "value is missing (null)"),
]


@pytest.mark.parametrize(("rows", "row", "column", "fragment"),
                         [c[1:] for c in LABEL_CASES], ids=[c[0] for c in LABEL_CASES])
def test_bad_labels(tmp_path, rows, row, column, fragment):
    path = write_rows(rows, tmp_path / "labels.csv")
    with pytest.raises(vigil.SchemaError) as info:
        read_labels(path)
    assert str(info.value).startswith(f"{path}, row {row}, column '{column}': ")
    assert fragment in str(info.value)


def test_integer_fraud_flags_must_be_0_or_1(tmp_path):
    rows = [{**r, "is_fraud": v} for r, v in zip(label_rows(), [0, 1, 2, 0], strict=True)]
    path = write_rows(rows, tmp_path / "labels.parquet", {"is_fraud": pa.int64()})
    with pytest.raises(vigil.SchemaError, match=r"row 3, column 'is_fraud': 2 is not a boolean"):
        read_labels(path)


def test_only_an_empty_csv_cell_is_missing(tmp_path):
    rows = payment_rows(2)
    rows[0].update(card_id="NA", customer_id="null", card_country="NA", email="N/A")
    rows[1].update(card_country="", email="")
    table = read_payments(write_rows(rows, tmp_path / "payments.csv"))
    assert table.column("card_id").to_pylist() == ["NA", "c1"]
    assert table.column("customer_id").to_pylist() == ["null", "u1"]
    assert table.column("card_country").to_pylist() == ["NA", None]  # NA is Namibia
    assert table.column("email").to_pylist() == ["N/A", None]


def test_a_header_only_csv_is_an_empty_table(tmp_path):
    (tmp_path / "labels.csv").write_text("payment_id,kind,is_fraud,reported_at\n")
    assert read_labels(tmp_path / "labels.csv").num_rows == 0
    (tmp_path / "payments.csv").write_text(",".join(payment_rows()[0]) + "\n")
    assert read_payments(tmp_path / "payments.csv").num_rows == 0


@pytest.mark.parametrize(("change", "row", "fragment"), [
    ({"payment_id": "p9"}, 2, "'p9' is not the id of any payment"),
    ({"reported_at": T0 + timedelta(minutes=59)}, 2,
     "label reported at 2024-05-01 14:44:00+00:00 is earlier than its payment "
     "(2024-05-01 14:45:00+00:00)"),
])
def test_labels_must_refer_to_earlier_payments(tmp_path, dataset, change, row, fragment):
    folder = write_dataset(dataset, tmp_path / "world")
    labels = label_rows()
    labels[row - 1].update(change)
    pq.write_table(validate_labels(pa.Table.from_pylist(labels)), folder / "labels.parquet")
    with pytest.raises(vigil.SchemaError) as info:
        load_dataset(folder)
    column = "payment_id" if "payment_id" in change else "reported_at"
    assert str(info.value) == f"{folder / 'labels.parquet'}, row {row}, column '{column}': " \
        + fragment


def test_a_label_at_the_payment_instant_is_allowed(tmp_path, dataset):
    folder = write_dataset(dataset, tmp_path / "world")
    labels = label_rows()
    labels[0]["reported_at"] = T0
    pq.write_table(validate_labels(pa.Table.from_pylist(labels)), folder / "labels.parquet")
    assert load_dataset(folder).labels.num_rows == 4


def test_an_empty_label_file_is_fine(tmp_path, dataset):
    folder = write_dataset(dataset, tmp_path / "world")
    pq.write_table(LABEL_SCHEMA.empty_table(), folder / "labels.parquet")
    assert load_dataset(folder).labels.num_rows == 0


@pytest.mark.parametrize(("remove", "fragment"), [
    ("payments", "payments/ is missing"),
    ("labels.parquet", "labels.parquet is missing"),
])
def test_incomplete_dataset_folder(tmp_path, dataset, remove, fragment):
    folder = write_dataset(dataset, tmp_path / "world")
    target = folder / remove
    if target.is_dir():
        for f in sorted(target.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(vigil.DataFileError, match=fragment):
        load_dataset(folder)


def test_no_dataset_folder(tmp_path):
    with pytest.raises(vigil.DataFileError, match="no such dataset folder"):
        load_dataset(tmp_path / "nope")


# --------------------------------------------------------------------------- random bytes


@st.composite
def garbage(draw) -> tuple[bytes, str]:
    """Random bytes, sometimes dressed as Parquet (magic at both ends, a footer length) or as a
    CSV with vigil's header, so the parsers get past their first check."""
    suffix = draw(st.sampled_from([".parquet", ".csv"]))
    body = draw(st.binary(max_size=400))
    dress = draw(st.booleans())
    if dress and suffix == ".parquet":
        body = b"PAR1" + body + struct.pack("<i", draw(st.integers(-8, 500))) + b"PAR1"
    elif dress:
        body = b"payment_id,ts,amount,currency,card_id,customer_id,merchant_id\n" + body
    return body, suffix


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage())
def test_random_bytes_raise_only_vigil_errors(tmp_path, data):
    body, suffix = data
    path = tmp_path / f"random{suffix}"
    path.write_bytes(body)
    try:
        read_payments(path)
    except vigil.VigilError as exc:
        assert str(path) in str(exc)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", "1", "-1", "nan", "inf", "true", "2024-01-01", "2024-13-01",
                     "2024-01-01T00:00:00Z", "EUR", "card_present", '"'])),
    max_size=6), max_size=4))
def test_random_csv_cells_raise_only_vigil_errors(tmp_path, rows):
    path = tmp_path / "labels.csv"
    text = "payment_id,kind,is_fraud,reported_at\n" + "\n".join(",".join(r) for r in rows)
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        read_labels(path)
    except vigil.VigilError as exc:
        assert str(path) in str(exc)


# --------------------------------------------------------------------------- Handbook


def handbook_frame() -> pa.Table:
    """Six transactions in the Handbook's 9-column format (naive timestamps, integer ids)."""
    start = datetime(2018, 4, 1, 0, 0, 31)
    seconds = [0, 99, 3_600, 86_400, 86_400 + 5, 2 * 86_400]
    return pa.table({
        "TRANSACTION_ID": pa.array(range(6), pa.int64()),
        "TX_DATETIME": pa.array([start + timedelta(seconds=s) for s in seconds],
                                pa.timestamp("us")),
        "CUSTOMER_ID": pa.array([0, 1, 0, 2, 1, 0], pa.int64()),
        "TERMINAL_ID": pa.array([10, 10, 11, 12, 11, 10], pa.int64()),
        "TX_AMOUNT": [57.16, 81.51, 146.0, 64.49, 250.3, 35.0],
        "TX_TIME_SECONDS": pa.array([31 + s for s in seconds], pa.int64()),
        "TX_TIME_DAYS": pa.array([s // 86_400 for s in seconds], pa.int64()),
        "TX_FRAUD": pa.array([0, 0, 1, 0, 1, 1], pa.int64()),
        "TX_FRAUD_SCENARIO": pa.array([0, 0, 3, 0, 1, 2], pa.int64()),
    })


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_handbook_adapter(tmp_path, fmt):
    raw = handbook_frame()
    path = tmp_path / f"transactions.{fmt}"
    if fmt == "parquet":
        pq.write_table(raw, path)
    else:
        pacsv.write_csv(raw, path)
    data = read_handbook(path)
    p, labels, truth = data.payments, data.labels, data.truth
    assert p.schema.equals(PAYMENT_SCHEMA)
    assert p.column("payment_id").to_pylist() == ["0", "1", "2", "3", "4", "5"]
    assert p.column("card_id").to_pylist() == ["0", "1", "0", "2", "1", "0"]
    assert p.column("customer_id").to_pylist() == p.column("card_id").to_pylist()
    assert p.column("terminal_id").to_pylist() == ["10", "10", "11", "12", "11", "10"]
    assert p.column("merchant_id").to_pylist() == p.column("terminal_id").to_pylist()
    assert p.column("currency").to_pylist() == ["EUR"] * 6
    assert p.column("amount").to_pylist() == raw.column("TX_AMOUNT").to_pylist()
    expected_ts = [t.replace(tzinfo=UTC) for t in raw.column("TX_DATETIME").to_pylist()]
    assert p.column("ts").to_pylist() == expected_ts
    assert labels.schema.equals(LABEL_SCHEMA)
    assert labels.column("payment_id").to_pylist() == p.column("payment_id").to_pylist()
    assert labels.column("is_fraud").to_pylist() == [False, False, True, False, True, True]
    assert labels.column("kind").to_pylist() == [
        "fraud_report" if f else "review_outcome" for f in labels.column("is_fraud").to_pylist()]
    assert labels.column("reported_at").to_pylist() == [t + timedelta(days=7)
                                                        for t in expected_ts]
    assert truth is not None
    assert truth.column("scenario").to_pylist() == [
        "legit", "legit", "compromised_card", "legit", "large_amount", "compromised_terminal"]
    assert set(HANDBOOK_SCENARIOS.values()) >= set(truth.column("scenario").to_pylist())
    assert data.info["label_delay_days"] == 7


def test_handbook_label_delay_is_a_parameter(tmp_path):
    pq.write_table(handbook_frame(), tmp_path / "t.parquet")
    data = read_handbook(tmp_path / "t.parquet", label_delay=timedelta(days=3))
    delays = [r - t for r, t in zip(data.labels.column("reported_at").to_pylist(),
                                    data.payments.column("ts").to_pylist(), strict=True)]
    assert delays == [timedelta(days=3)] * 6


def test_not_the_handbook_format(tmp_path):
    pq.write_table(handbook_frame().drop_columns(["TX_FRAUD"]), tmp_path / "t.parquet")
    with pytest.raises(vigil.SchemaError, match="not the Handbook format: missing column"):
        read_handbook(tmp_path / "t.parquet")
