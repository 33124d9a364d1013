"""From the realistic world's integer columns to vigil's Arrow tables.

String ids are built once per entity and taken by index; rows that have no entity (``-1``)
become nulls.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil.events import (
    ACCOUNT_EVENT_KINDS,
    ACCOUNT_EVENT_SCHEMA,
    ACCOUNT_SCHEMA,
    DOCUMENT_TYPES,
    FACE_EMBEDDING_DIM,
    IDENTITY_TRUTH_SCHEMA,
    LABEL_SCHEMA,
    PAYMENT_SCHEMA,
    TIMESTAMP,
    TRUTH_SCHEMA,
    VERIFICATION_REASONS,
    VERIFICATION_SCHEMA,
)
from vigil.simulate._payments import fixed_width_ids, id_width
from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._accounts import AccountBlock, EventBlock, SessionBlock
from vigil.simulate.realistic._entities import (
    Population,
    country_strings,
    email_strings,
    ip_strings,
)
from vigil.simulate.realistic._identity import sha256_hex
from vigil.simulate.realistic._legit import PaymentBlock

_LABEL_KINDS = ("dispute", "fraud_report")


def ids(prefix: str, count: int) -> pa.ChunkedArray:
    """Ids ``prefix`` + 0 .. count-1, at least six digits."""
    return fixed_width_ids(prefix, np.arange(count), id_width(count, 6))


def take(strings: pa.Array | pa.ChunkedArray, index: np.ndarray) -> pa.Array:
    """``strings[index]``, null where the index is -1."""
    return strings.take(masked(index, index >= 0))


def masked(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """``values`` as an int64 array, null where not ``valid``.

    Built from buffers: ``pa.array(values, mask=...)`` takes a hundred times longer.
    """
    values = np.ascontiguousarray(values, dtype=np.int64)
    if valid.all():
        return pa.array(values, type=pa.int64())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.int64(), len(values), [bitmap, pa.py_buffer(values)],
                                 null_count=int(len(values) - np.count_nonzero(valid)))


class Tables:
    """Turns a run's integer rows into vigil's Arrow tables, part by part.

    String ids are built once per entity (e-mails as new addresses appear); payments, events
    and sessions are numbered in the order they are handed in, from ``first`` on, with a
    fixed width (``widths``) so that the string order is the numeric order in every part.
    """

    def __init__(self, pop: Population, *, card_owner: np.ndarray, card_country: np.ndarray,
                 n_customers: int, names: list[str], start_us: int, currency: str,
                 widths: dict[str, int]) -> None:
        self.pop, self.card_owner, self.card_country = pop, card_owner, card_country
        self.start_us, self.currency, self.widths = start_us, currency, widths
        self.names = pa.array(names, pa.string())
        self.s = _Strings(pop, n_customers)
        self.card = ids("card", len(card_owner))
        self.merchant = ids("m", pop.n_merchants)
        self.terminal = ids("t", max(pop.n_terminals, 1))

    def payment_ids(self, rows: np.ndarray) -> pa.ChunkedArray:
        return fixed_width_ids("p", rows, self.widths["payments"])

    def payments(self, p: PaymentBlock, first: int, code: np.ndarray, is_fraud: np.ndarray
                 ) -> tuple[pa.Table, pa.Table]:
        """Payments numbered from ``first``, and their truth."""
        s, pop, n = self.s, self.pop, len(p)
        s.refresh()
        payment_ids = self.payment_ids(first + np.arange(n))
        cnp = pa.array(p.cnp)
        columns = {
            "payment_id": payment_ids,
            "ts": _ts(self.start_us, p.t),
            "amount": pa.array(p.amount, type=pa.float64()),
            "currency": pa.repeat(pa.scalar(self.currency, pa.string()), n),
            "card_id": take(self.card, p.card),
            "customer_id": take(s.customer, self.card_owner[p.card]),
            "merchant_id": take(self.merchant, p.merchant),
            "terminal_id": take(self.terminal, p.terminal),
            "device_id": take(s.device, p.device),
            "ip": take(s.ip, p.ip),
            "email": take(s.email, p.email),
            "card_country": take(s.country, self.card_country[p.card]),
            "ip_country": s.ip_country(p.ip),
            "merchant_country": take(s.country, pop.m_country[p.merchant]),
            "channel": pc.if_else(cnp, "card_not_present", "card_present"),
            "account_id": take(s.account, p.account),
            "status": pc.if_else(pa.array(p.declined), "declined", "authorized"),
        }
        payments = pa.Table.from_arrays([columns[f.name] for f in PAYMENT_SCHEMA],
                                        schema=PAYMENT_SCHEMA)
        truth = pa.Table.from_arrays([payment_ids, pa.array(is_fraud), self._scenario(code)],
                                     schema=TRUTH_SCHEMA)
        return payments, truth

    def labels(self, row: np.ndarray, kind: np.ndarray, t: np.ndarray) -> pa.Table:
        """Labels of the payments numbered ``row``."""
        return pa.Table.from_arrays(
            [self.payment_ids(row), pa.array(_LABEL_KINDS).take(pa.array(kind.astype(np.int64))),
             pa.array(np.ones(row.size, dtype=bool)), _ts(self.start_us, t)],
            schema=LABEL_SCHEMA)

    def accounts(self, a: AccountBlock, code: np.ndarray) -> tuple[pa.Table, pa.Table]:
        """Accounts, and their identity truth."""
        self.s.refresh()
        table = _accounts(self.s, a, self.start_us)
        return table, self._identity_truth("accounts", table.column("account_id"), a, code)

    def events(self, e: EventBlock, first: int, code: np.ndarray) -> tuple[pa.Table, pa.Table]:
        """Account events numbered from ``first``, and their identity truth."""
        self.s.refresh()
        table = _events(self.s, e, self.start_us, first, self.widths["account_events"])
        return table, self._identity_truth("account_events", table.column("event_id"), e, code)

    def sessions(self, v: SessionBlock, first: int, code: np.ndarray
                 ) -> tuple[pa.Table, pa.Table]:
        """Verification sessions numbered from ``first``, and their identity truth."""
        self.s.refresh()
        table = _sessions(self.s, v, self.start_us, first,
                          self.widths["verification_sessions"])
        return table, self._identity_truth("verification_sessions", table.column("session_id"),
                                           v, code)

    def _scenario(self, code: np.ndarray) -> pa.Array:
        return self.names.take(pa.array(code.astype(np.int64)))

    def _identity_truth(self, table: str, record_id: pa.ChunkedArray,
                        block: AccountBlock | EventBlock | SessionBlock, code: np.ndarray
                        ) -> pa.Table:
        return pa.Table.from_arrays([
            pa.repeat(pa.scalar(table, pa.string()), len(block)),
            record_id.combine_chunks() if isinstance(record_id, pa.ChunkedArray) else record_id,
            pa.array(block.fraud, pa.bool_()), self._scenario(code),
            masked(block.incident, code > 0),
        ], schema=IDENTITY_TRUTH_SCHEMA)


class _Strings:
    """Each entity's string ids, built once (e-mails: as new addresses appear)."""

    def __init__(self, pop: Population, n_customers: int) -> None:
        self.pop = pop
        self.customer = ids("cu", n_customers)
        self.account = ids("ac", n_customers)
        self.device = ids("dv", len(pop.dev_os))
        self.ip = ip_strings(pop)
        self.email = email_strings(pop)
        self.country = country_strings(np.arange(len(cat.COUNTRIES)))

    def refresh(self) -> None:
        """Add the e-mail addresses that customers changed to since the last call."""
        known = len(self.email)
        if len(self.pop.email_domain) > known:
            self.email = pa.concat_arrays([self.email, email_strings(self.pop, known)])

    def ip_country(self, ip: np.ndarray) -> pa.Array:
        safe = np.maximum(ip, 0)
        return take(self.country, np.where(ip >= 0, self.pop.ip_country[safe], -1))


def _ts(start_us: int, t: np.ndarray) -> pa.Array:
    return pa.array(start_us + t * 1_000_000, type=pa.int64()).cast(TIMESTAMP)


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), type=pa.date32())


def _text(values: np.ndarray) -> pa.Array:
    return pa.array(values.tolist(), type=pa.string())


def _accounts(s: _Strings, a: AccountBlock, start_us: int) -> pa.Table:
    columns = {
        "account_id": take(s.account, a.account),
        "customer_id": take(s.customer, a.account),
        "created_at": _ts(start_us, a.t),
        "email": take(s.email, a.email),
        "name": _text(a.name),
        "date_of_birth": _dates(a.dob),
        "country": take(s.country, a.country),
        "address_hash": pa.array(sha256_hex(a.address), pa.string()),
        "device_id": take(s.device, a.device),
        "ip": take(s.ip, a.ip),
        "ip_country": s.ip_country(a.ip),
    }
    return pa.Table.from_arrays([columns[f.name] for f in ACCOUNT_SCHEMA], schema=ACCOUNT_SCHEMA)


def _events(s: _Strings, e: EventBlock, start_us: int, first: int, width: int) -> pa.Table:
    n = len(e)
    columns = {
        "event_id": fixed_width_ids("ev", first + np.arange(n), width),
        "account_id": take(s.account, e.account),
        "ts": _ts(start_us, e.t),
        "kind": pa.array(ACCOUNT_EVENT_KINDS).take(pa.array(e.kind.astype(np.int64))),
        "success": pa.array(e.success),
        "device_id": take(s.device, e.device),
        "ip": take(s.ip, e.ip),
        "ip_country": s.ip_country(e.ip),
        "email": take(s.email, e.email),
    }
    return pa.Table.from_arrays([columns[f.name] for f in ACCOUNT_EVENT_SCHEMA],
                                schema=ACCOUNT_EVENT_SCHEMA)


def _sessions(s: _Strings, v: SessionBlock, start_us: int, first: int, width: int
              ) -> pa.Table:
    n = len(v)
    embedding = np.ascontiguousarray(v.embedding, dtype=np.float32).reshape(-1)
    liveness = np.round(v.liveness, 4)
    columns = {
        "session_id": fixed_width_ids("vs", first + np.arange(n), width),
        "account_id": take(s.account, v.account),
        "created_at": _ts(start_us, v.t),
        "reason": pa.array(VERIFICATION_REASONS).take(pa.array(v.reason.astype(np.int64))),
        "document_type": pa.array(DOCUMENT_TYPES).take(pa.array(v.doc_type.astype(np.int64))),
        "issuing_country": take(s.country, v.doc_country),
        "document_number_hash": pa.array(sha256_hex(v.doc_number), pa.string()),
        "claimed_name": _text(v.claimed_name),
        "claimed_date_of_birth": _dates(v.claimed_dob),
        "document_name": _text(v.doc_name),
        "document_date_of_birth": _dates(v.doc_dob),
        "document_expiry": _dates(v.doc_expiry),
        "face_match_score": pa.array(np.round(v.face_match, 4)),
        "liveness_score": pa.array(liveness),
        "liveness_passed": pa.array(liveness >= 0.5),
        "face_embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(embedding, pa.float32()), FACE_EMBEDDING_DIM),
        "device_id": take(s.device, v.device),
        "ip": take(s.ip, v.ip),
        "ip_country": s.ip_country(v.ip),
    }
    return pa.Table.from_arrays([columns[f.name] for f in VERIFICATION_SCHEMA],
                                schema=VERIFICATION_SCHEMA)
