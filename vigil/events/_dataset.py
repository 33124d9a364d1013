"""A dataset: payments, the labels that arrived for them, optionally the accounts behind them,
and (for simulated data) ground truth.

On disk a dataset is a folder::

    DIR/payments/date=YYYY-MM-DD/part-0.parquet   one partition per day
    DIR/labels.parquet                            labels with their report times
    DIR/accounts.parquet                          optional: one row per account (its sign-up)
    DIR/account_events.parquet                    optional: logins, e-mail and password changes
    DIR/verification_sessions.parquet             optional: identity verification sessions
    DIR/truth.parquet                             ground truth of payments (simulated only)
    DIR/identity_truth.parquet                    ground truth of the three tables above
    DIR/dataset.json                              where it came from: generator, seed, counts
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vigil._errors import DataFileError
from vigil.events._identity import (
    check_accounts_refer,
    read_account_events,
    read_accounts,
    read_identity_truth,
    read_verification_sessions,
)
from vigil.events._io import (
    check_labels_refer,
    read_labels,
    read_payments,
    read_truth,
    write_payments_by_day,
)
from vigil.events._schema import LABEL_SCHEMA

_FILES = {"accounts": "accounts.parquet", "account_events": "account_events.parquet",
          "verification_sessions": "verification_sessions.parquet",
          "identity_truth": "identity_truth.parquet"}


@dataclass(frozen=True)
class EventData:
    """Payments, their labels, optional identity tables and optional ground truth, as Arrow
    tables.

    ``labels`` holds every label, whenever it was reported; code that must not see the
    future filters on ``reported_at`` itself. ``truth`` (simulated data) names the fraud
    scenario behind each payment, ``identity_truth`` the one behind each account, account
    event and verification session: for analysis only, never a feature.

    ``accounts``, ``account_events`` and ``verification_sessions`` follow
    :data:`~vigil.events.ACCOUNT_SCHEMA`, :data:`~vigil.events.ACCOUNT_EVENT_SCHEMA` and
    :data:`~vigil.events.VERIFICATION_SCHEMA`; ``None`` where a dataset has none.
    """

    payments: pa.Table
    labels: pa.Table
    truth: pa.Table | None = None
    info: dict[str, Any] = field(default_factory=dict)
    accounts: pa.Table | None = None
    account_events: pa.Table | None = None
    verification_sessions: pa.Table | None = None
    identity_truth: pa.Table | None = None

    def fingerprint(self) -> str:
        """A short content hash of payments and labels (order-sensitive, schema included)."""
        h = hashlib.sha256()
        for table in (self.payments, self.labels):
            table = table.combine_chunks()  # the hash must not depend on how rows are chunked
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            h.update(sink.getvalue().to_pybytes())
        return h.hexdigest()[:16]


def write_dataset(data: EventData, folder: str | Path) -> Path:
    """Write ``data`` in the dataset folder layout; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_payments_by_day(data.payments, folder / "payments")
    pq.write_table(data.labels, folder / "labels.parquet", compression="zstd")
    if data.truth is not None:
        pq.write_table(data.truth, folder / "truth.parquet", compression="zstd")
    info = dict(data.info)
    info.setdefault("payments", data.payments.num_rows)
    info.setdefault("labels", data.labels.num_rows)
    for name, file in _FILES.items():
        table = getattr(data, name)
        if table is not None:
            pq.write_table(table, folder / file, compression="zstd")
            info.setdefault(name, table.num_rows)
    (folder / "dataset.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return folder


def load_dataset(folder: str | Path) -> EventData:
    """Read and validate a dataset folder (see the module docstring for its layout)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileError(f"{folder}: no such dataset folder (expected payments/ and "
                            "labels.parquet inside; `vigil simulate --out DIR` makes one)")
    if not (folder / "payments").exists():
        raise DataFileError(f"{folder}: not a dataset folder: payments/ is missing")
    payments = read_payments(folder / "payments")
    labels_path = folder / "labels.parquet"
    if not labels_path.exists():
        raise DataFileError(f"{folder}: not a dataset folder: labels.parquet is missing")
    labels = read_labels(labels_path)
    check_labels_refer(payments, labels, source=str(labels_path))
    truth = read_truth(folder / "truth.parquet") if (folder / "truth.parquet").exists() else None
    identity = _read_identity(folder, payments)
    info_path = folder / "dataset.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return EventData(payments=payments, labels=labels, truth=truth, info=info, **identity)


def _read_identity(folder: Path, payments: pa.Table) -> dict[str, pa.Table | None]:
    """The optional identity tables of a dataset folder, checked against each other."""
    readers = {"accounts": read_accounts, "account_events": read_account_events,
               "verification_sessions": read_verification_sessions,
               "identity_truth": read_identity_truth}
    tables = {name: readers[name](folder / file) if (folder / file).exists() else None
              for name, file in _FILES.items()}
    accounts = tables["accounts"]
    for name, time_column in (("account_events", "ts"), ("verification_sessions", "created_at")):
        if tables[name] is not None and accounts is None:
            raise DataFileError(f"{folder / _FILES[name]} refers to accounts, but "
                                f"{folder / _FILES['accounts']} is missing")
        if tables[name] is not None:
            check_accounts_refer(accounts, tables[name], str(folder / _FILES[name]),
                                 time_column)
    if accounts is not None:
        check_accounts_refer(accounts, payments, str(folder / "payments"), "ts")
    return tables


def empty_labels() -> pa.Table:
    """A labels table with no rows (for payments that have none yet)."""
    return LABEL_SCHEMA.empty_table()


def open_dataset(path: str | Path) -> EventData:
    """Open what a user points at: a dataset folder, or a Handbook transactions file.

    A folder must hold ``payments/`` and ``labels.parquet`` (see :func:`load_dataset`); a
    Parquet or CSV file must be in the Fraud Detection Handbook's format.
    """
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"{p}: no such file or folder")
    if p.is_dir():
        return load_dataset(p)
    from vigil.events._handbook import read_handbook

    return read_handbook(p)
