"""Where the realistic world's rows go: kept in memory, or written to a dataset folder as
they come (the layout of :func:`vigil.events.write_dataset`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vigil.events import (
    ACCOUNT_EVENT_SCHEMA,
    IDENTITY_TRUTH_SCHEMA,
    PAYMENT_SCHEMA,
    TRUTH_SCHEMA,
    VERIFICATION_SCHEMA,
    EventData,
)

_COMPRESSION = "zstd"  # as write_dataset


class MemorySink:
    """Keeps every part, and joins them into one :class:`~vigil.events.EventData`."""

    def __init__(self) -> None:
        self.parts: dict[str, list[pa.Table]] = {name: [] for name in (
            "payments", "truth", "events", "events_truth", "sessions", "sessions_truth")}

    def payments(self, payments: pa.Table, truth: pa.Table, dates: np.ndarray) -> None:
        self.parts["payments"].append(payments)
        self.parts["truth"].append(truth)

    def events(self, events: pa.Table, truth: pa.Table) -> None:
        self.parts["events"].append(events)
        self.parts["events_truth"].append(truth)

    def sessions(self, sessions: pa.Table, truth: pa.Table) -> None:
        self.parts["sessions"].append(sessions)
        self.parts["sessions_truth"].append(truth)

    def finish(self, *, labels: pa.Table, accounts: pa.Table, accounts_truth: pa.Table,
               info: dict[str, Any]) -> EventData:
        def joined(name: str, schema: pa.Schema) -> pa.Table:
            return pa.concat_tables([schema.empty_table(), *self.parts[name]])

        identity_truth = pa.concat_tables([accounts_truth, *self.parts["events_truth"],
                                           *self.parts["sessions_truth"]])
        return EventData(
            payments=joined("payments", PAYMENT_SCHEMA), labels=labels,
            truth=joined("truth", TRUTH_SCHEMA), info=info, accounts=accounts,
            account_events=joined("events", ACCOUNT_EVENT_SCHEMA),
            verification_sessions=joined("sessions", VERIFICATION_SCHEMA),
            identity_truth=identity_truth)


class FolderSink:
    """Writes each part as it comes: a file per day of payments, a row group per part of
    the single-file tables; the identity truth of events and sessions waits in hidden
    files until the accounts' truth, which comes first, is known."""

    _FILES: ClassVar[dict[str, tuple[str, pa.Schema]]] = {
        "truth": ("truth.parquet", TRUTH_SCHEMA),
        "events": ("account_events.parquet", ACCOUNT_EVENT_SCHEMA),
        "sessions": ("verification_sessions.parquet", VERIFICATION_SCHEMA),
        "events_truth": (".identity_truth.events.parquet", IDENTITY_TRUTH_SCHEMA),
        "sessions_truth": (".identity_truth.sessions.parquet", IDENTITY_TRUTH_SCHEMA),
    }

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        (self.folder / "payments").mkdir(parents=True, exist_ok=True)
        self.writers: dict[str, pq.ParquetWriter] = {}

    def _write(self, name: str, table: pa.Table) -> None:
        if name not in self.writers:
            file, schema = self._FILES[name]
            self.writers[name] = pq.ParquetWriter(self.folder / file, schema,
                                                  compression=_COMPRESSION)
        self.writers[name].write_table(table)

    def payments(self, payments: pa.Table, truth: pa.Table, dates: np.ndarray) -> None:
        bounds = np.flatnonzero(dates[1:] != dates[:-1]) + 1
        for start, end in zip(np.concatenate([[0], bounds]),
                              np.concatenate([bounds, [len(dates)]]), strict=True):
            day = np.datetime64(int(dates[start]), "D")
            folder = self.folder / "payments" / f"date={day}"
            folder.mkdir(exist_ok=True)
            pq.write_table(payments.slice(start, end - start), folder / "part-0.parquet",
                           compression=_COMPRESSION)
        self._write("truth", truth)

    def events(self, events: pa.Table, truth: pa.Table) -> None:
        self._write("events", events)
        self._write("events_truth", truth)

    def sessions(self, sessions: pa.Table, truth: pa.Table) -> None:
        self._write("sessions", sessions)
        self._write("sessions_truth", truth)

    def finish(self, *, labels: pa.Table, accounts: pa.Table, accounts_truth: pa.Table,
               info: dict[str, Any]) -> dict[str, Any]:
        for name, (_, schema) in self._FILES.items():
            if name not in self.writers:  # no rows at all: an empty table
                self._write(name, schema.empty_table())
            self.writers.pop(name).close()
        folder = self.folder
        pq.write_table(labels, folder / "labels.parquet", compression=_COMPRESSION)
        pq.write_table(accounts, folder / "accounts.parquet", compression=_COMPRESSION)
        with pq.ParquetWriter(folder / "identity_truth.parquet", IDENTITY_TRUTH_SCHEMA,
                              compression=_COMPRESSION) as writer:
            writer.write_table(accounts_truth)
            for name in ("events_truth", "sessions_truth"):
                part = folder / self._FILES[name][0]
                source = pq.ParquetFile(part)
                for i in range(source.num_row_groups):  # one part at a time
                    group = source.read_row_group(i)
                    if group.num_rows:
                        writer.write_table(group)
                source.close()
                part.unlink()
        (folder / "dataset.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
        return info
