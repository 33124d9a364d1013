"""A dataset: payments, the labels that arrived for them, and (for simulated data) ground truth.

On disk a dataset is a folder::

    DIR/payments/date=YYYY-MM-DD/part-0.parquet   one partition per day
    DIR/labels.parquet                            labels with their report times
    DIR/truth.parquet                             ground truth (simulated worlds only)
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
from vigil.events._io import (
    check_labels_refer,
    read_labels,
    read_payments,
    read_truth,
    write_payments_by_day,
)
from vigil.events._schema import LABEL_SCHEMA


@dataclass(frozen=True)
class EventData:
    """Payments, their labels and optional ground truth, as Arrow tables.

    ``labels`` holds every label, whenever it was reported; code that must not see the
    future filters on ``reported_at`` itself. ``truth`` (simulated data) names the fraud
    scenario behind each payment, for analysis only: it is never a feature.
    """

    payments: pa.Table
    labels: pa.Table
    truth: pa.Table | None = None
    info: dict[str, Any] = field(default_factory=dict)

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
    info_path = folder / "dataset.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return EventData(payments=payments, labels=labels, truth=truth, info=info)


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
