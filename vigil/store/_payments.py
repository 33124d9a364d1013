"""Payments with their decisions, and labels: written durably, read back in sequence order."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from vigil._errors import SchemaError
from vigil.store._base import StoreBase
from vigil.store._errors import DuplicatePayment, UnknownPayment
from vigil.store._records import BatchResult, FirstReports
from vigil.store._tables import decisions, labels, payments, reviews
from vigil.store._validate import STORED_COLUMNS, decision_row, label_row, payment_row

_CHUNK = 500  # ids per IN (...) query, well under every backend's bound-parameter limit
_PAYMENT_OUT = [c.name for c in STORED_COLUMNS]
_DECISION_OUT = [c for c in decisions.c if c.name != "payment_id"]
_INSERT_DECISIONS = decisions.insert()


@functools.cache
def _insert_new_payments(backend: str) -> sa.Insert:
    """``INSERT ... ON CONFLICT (payment_id) DO NOTHING RETURNING payment_id, seq`` for
    ``backend``: built once, so each batch costs one cached statement."""
    insert = postgresql.insert if backend == "postgresql" else sqlite.insert
    return (insert(payments).on_conflict_do_nothing(index_elements=[payments.c.payment_id])
            .returning(payments.c.payment_id, payments.c.seq))


class PaymentsMixin(StoreBase):
    """Payments, decisions and labels."""

    def record_payment(self, payment: Mapping[str, Any], decision: Mapping[str, Any]) -> int:
        """Write a payment and its decision in one transaction; return the payment's ``seq``.

        A decision of ``review`` also opens the payment's review case, in the same
        transaction. Raises :class:`~vigil.store.DuplicatePayment` if the payment id is
        already recorded (nothing is written) and :class:`~vigil.SchemaError` on a bad value.
        """
        result = self.record_payments([(payment, decision)])
        seq = result.seqs[0]
        if seq is None:
            raise DuplicatePayment(result.payment_ids[0])
        return seq

    def record_payments(
        self, batch: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]],
    ) -> BatchResult:
        """Write many (payment, decision) pairs in one transaction: one commit, one disk flush.

        A payment whose id is already recorded, or appeared earlier in the batch, is skipped
        and reported in :attr:`BatchResult.duplicates`; the others are written. (A service
        that groups concurrent requests into one commit must not fail them all for one
        client's retry.) A bad value anywhere raises :class:`~vigil.SchemaError` before
        anything is written. Sequence numbers increase in commit order but may skip: the
        database drops a duplicate inside the insert, after numbering it.
        """
        now = self._now()
        rows, verdicts = [], []
        for payment, decision in batch:
            row = payment_row(payment, now)
            rows.append(row)
            verdicts.append(decision_row(row["payment_id"], decision, now))
        ids = [row["payment_id"] for row in rows]
        if not rows:
            return BatchResult([], [])
        seqs: list[int | None] = [None] * len(rows)
        with self._write("payments") as conn:
            # one statement writes the new payments and names them: an id already stored,
            # or met earlier in the batch, is skipped by the database (no read first)
            written = dict(conn.execute(_insert_new_payments(conn.dialect.name), rows).all())
            fresh = []
            for i, pid in enumerate(ids):
                seq = written.pop(pid, None)  # popped: a repeat within the batch gets None
                if seq is not None:
                    seqs[i] = seq
                    fresh.append(i)
            if fresh:
                conn.execute(_INSERT_DECISIONS, [verdicts[i] for i in fresh])
                cases = [{"payment_id": ids[i], "status": "open", "opened_at": now}
                         for i in fresh if verdicts[i]["decision"] == "review"]
                if cases:
                    conn.execute(reviews.insert(), cases)
        return BatchResult(ids, seqs)

    def get_payment(self, payment_id: str) -> dict[str, Any] | None:
        """The payment with its ``decision`` (a dict), ``labels`` (a list, in seq order) and
        ``review`` (a dict, or None); None if the store does not hold it."""
        with self._read() as conn:
            row = conn.execute(sa.select(payments).where(payments.c.payment_id == payment_id)
                               ).mappings().first()
            if row is None:
                return None
            out = payment_dict(row)
            verdict = conn.execute(sa.select(*_DECISION_OUT).where(
                decisions.c.payment_id == payment_id)).mappings().first()
            out["decision"] = dict(verdict) if verdict is not None else None
            out["labels"] = [dict(r) for r in conn.execute(
                sa.select(labels).where(labels.c.payment_id == payment_id)
                .order_by(labels.c.seq)).mappings()]
            case = conn.execute(sa.select(reviews).where(reviews.c.payment_id == payment_id)
                                ).mappings().first()
            out["review"] = dict(case) if case is not None else None
        return out

    def payments_since(self, seq: int = 0, limit: int | None = None, *,
                       page: int = 1000) -> Iterator[dict[str, Any]]:
        """Payments with a sequence number above ``seq``, in seq order, at most ``limit``.

        Each dict holds the payment's fields, its extra fields, ``received_at`` and ``seq``.
        Rows are read ``page`` at a time, each page in a short transaction of its own, so
        replaying millions of payments holds no lock and little memory.
        """
        yield from self._since(payments, payment_dict, seq, limit, page)

    def risk_scores(self) -> dict[str, tuple[int, str]]:
        """Every stored payment's risk score and level, by payment id (for backtests)."""
        with self._read() as conn:
            rows = conn.execute(sa.select(decisions.c.payment_id, decisions.c.risk_score,
                                          decisions.c.risk_level)).all()
        return {pid: (score, level) for pid, score, level in rows}

    def count_payments(self) -> int:
        """How many payments the store holds."""
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(payments)).scalar_one()

    def last_seqs(self) -> tuple[int, int]:
        """The highest payment and label sequence numbers recorded (0 where there is none)."""
        with self._read() as conn:
            return (conn.execute(sa.select(sa.func.max(payments.c.seq))).scalar() or 0,
                    conn.execute(sa.select(sa.func.max(labels.c.seq))).scalar() or 0)

    def add_label(self, label: Mapping[str, Any]) -> int:
        """Record a label (``payment_id``, ``kind``, ``is_fraud``, ``reported_at``, and
        optionally ``received_at``); return its ``seq``.

        Raises :class:`~vigil.store.UnknownPayment` if the store does not hold the payment.
        """
        return self.add_labels([label])[0]

    def add_labels(self, batch: Iterable[Mapping[str, Any]]) -> list[int]:
        """Record many labels in one transaction, all or none; return their ``seq`` numbers."""
        now = self._now()
        rows = [label_row(label, now) for label in batch]
        if not rows:
            return []
        with self._write("labels") as conn:
            return insert_labels(conn, rows)

    def labels_since(self, seq: int = 0, limit: int | None = None, *,
                     page: int = 1000) -> Iterator[dict[str, Any]]:
        """Labels with a sequence number above ``seq``, in seq order (as
        :meth:`payments_since`)."""
        yield from self._since(labels, dict, seq, limit, page)

    def first_reports(self, payment_id: str) -> FirstReports:
        """When a label, and a fraud label, of the payment was first reported (or None).

        This is the label state a label-aware feature reads: a payment counts as labelled
        (or as fraud) from these times on.
        """
        when = labels.c.reported_at
        fraud_when = sa.case((labels.c.is_fraud, when), else_=sa.null())
        with self._read() as conn:
            row = conn.execute(
                sa.select(sa.type_coerce(sa.func.min(when), when.type),
                          sa.type_coerce(sa.func.min(fraud_when), when.type))
                .where(labels.c.payment_id == payment_id)).one()
        return FirstReports(row[0], row[1])

    def _since(self, table: sa.Table, convert: Any, seq: int, limit: int | None,
               page: int) -> Iterator[dict[str, Any]]:
        if page < 1:
            raise SchemaError(f"page={page}: read at least one row per page (page >= 1)")
        last, left = seq, limit
        while left is None or left > 0:
            n = page if left is None else min(page, left)
            with self._read() as conn:
                rows = conn.execute(sa.select(table).where(table.c.seq > last)
                                    .order_by(table.c.seq).limit(n)).mappings().all()
            yield from (convert(row) for row in rows)
            if len(rows) < n:
                return
            last = rows[-1]["seq"]
            if left is not None:
                left -= len(rows)


def payment_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``payments`` row as the payment it came from, plus ``received_at`` and ``seq``."""
    out = {name: row[name] for name in _PAYMENT_OUT}
    if row["extra"]:
        out.update(row["extra"])
    out["received_at"] = row["received_at"]
    out["seq"] = row["seq"]
    return out


def existing_payments(conn: sa.Connection, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` the store holds."""
    unique = sorted(set(ids))
    found: set[str] = set()
    for start in range(0, len(unique), _CHUNK):
        found.update(conn.execute(sa.select(payments.c.payment_id).where(
            payments.c.payment_id.in_(unique[start:start + _CHUNK]))).scalars())
    return found


def insert_labels(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert label rows after checking their payments exist; return their ``seq`` numbers."""
    ids = [row["payment_id"] for row in rows]
    known = existing_payments(conn, ids)
    for pid in ids:
        if pid not in known:
            raise UnknownPayment(f"label for payment '{pid}': the store holds no such payment; "
                                 "record the payment before its labels")
    return list(conn.execute(labels.insert().returning(labels.c.seq,
                                                       sort_by_parameter_order=True),
                             rows).scalars())
