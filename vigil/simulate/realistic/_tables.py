"""From the realistic world's integer columns to vigil's Arrow tables.

String ids are built once per entity and taken by index; rows that have no entity (``-1``)
become nulls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    EventData,
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


@dataclass
class Rows:
    """Everything a run produced, as integer columns in final order, with the ground truth."""

    payments: PaymentBlock
    is_fraud: np.ndarray
    scenario_code: np.ndarray
    accounts: AccountBlock  # sorted by account
    account_code: np.ndarray
    events: EventBlock  # in time order
    event_code: np.ndarray
    sessions: SessionBlock  # in time order
    session_code: np.ndarray
    names: list[str]  # scenario names by code, "legit" first
    card_owner: np.ndarray  # every card's customer, the scenarios' new ones included
    card_country: np.ndarray
    n_customers: int


class _Strings:
    """Each entity's string ids, built once."""

    def __init__(self, pop: Population, n_customers: int) -> None:
        self.pop = pop
        self.customer = ids("cu", n_customers)
        self.account = ids("ac", n_customers)
        self.device = ids("dv", len(pop.dev_os))
        self.ip = ip_strings(pop)
        self.email = email_strings(pop)
        self.country = country_strings(np.arange(len(cat.COUNTRIES)))

    def ip_country(self, ip: np.ndarray) -> pa.Array:
        safe = np.maximum(ip, 0)
        return take(self.country, np.where(ip >= 0, self.pop.ip_country[safe], -1))


def _ts(start_us: int, t: np.ndarray) -> pa.Array:
    return pa.array(start_us + t * 1_000_000, type=pa.int64()).cast(TIMESTAMP)


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), type=pa.date32())


def _text(values: np.ndarray) -> pa.Array:
    return pa.array(values.tolist(), type=pa.string())


def build_tables(pop: Population, rows: Rows, *, start_us: int, currency: str,
                 label_row: np.ndarray, label_kind: np.ndarray, label_t: np.ndarray,
                 info: dict[str, Any]) -> EventData:
    """The dataset: payments, labels, truth, the identity tables and their truth."""
    s = _Strings(pop, rows.n_customers)
    p = rows.payments
    n = len(p)
    payment_ids = fixed_width_ids("p", np.arange(n), id_width(n, 10))
    cnp = pa.array(p.cnp)
    columns = {
        "payment_id": payment_ids,
        "ts": _ts(start_us, p.t),
        "amount": pa.array(p.amount, type=pa.float64()),
        "currency": pa.repeat(pa.scalar(currency, pa.string()), n),
        "card_id": take(ids("card", len(rows.card_owner)), p.card),
        "customer_id": take(s.customer, rows.card_owner[p.card]),
        "merchant_id": take(ids("m", pop.n_merchants), p.merchant),
        "terminal_id": take(ids("t", max(pop.n_terminals, 1)), p.terminal),
        "device_id": take(s.device, p.device),
        "ip": take(s.ip, p.ip),
        "email": take(s.email, p.email),
        "card_country": take(s.country, rows.card_country[p.card]),
        "ip_country": s.ip_country(p.ip),
        "merchant_country": take(s.country, pop.m_country[p.merchant]),
        "channel": pc.if_else(cnp, "card_not_present", "card_present"),
        "account_id": take(s.account, p.account),
        "status": pc.if_else(pa.array(p.declined), "declined", "authorized"),
    }
    payments = pa.Table.from_arrays([columns[f.name] for f in PAYMENT_SCHEMA],
                                    schema=PAYMENT_SCHEMA)

    label_ids = payment_ids.take(pa.array(label_row, type=pa.int64()))
    kinds = pa.array(_LABEL_KINDS).take(pa.array(label_kind.astype(np.int64)))
    reported = _ts(start_us, label_t)
    labels = pa.Table.from_arrays(
        [label_ids, kinds, pa.array(np.ones(label_row.size, dtype=bool)), reported],
        schema=LABEL_SCHEMA)

    names = pa.array(rows.names, pa.string())
    scenario = names.take(pa.array(rows.scenario_code.astype(np.int64)))
    truth = pa.Table.from_arrays([payment_ids, pa.array(rows.is_fraud), scenario],
                                 schema=TRUTH_SCHEMA)

    accounts = _accounts(s, rows.accounts, start_us)
    events = _events(s, rows.events, start_us)
    sessions = _sessions(s, rows.sessions, start_us)
    parts = ((accounts.column("account_id"), rows.accounts, rows.account_code, "accounts"),
             (events.column("event_id"), rows.events, rows.event_code, "account_events"),
             (sessions.column("session_id"), rows.sessions, rows.session_code,
              "verification_sessions"))
    identity_truth = pa.Table.from_arrays([
        pa.chunked_array([pa.repeat(pa.scalar(table, pa.string()), len(block))
                          for _, block, _, table in parts], pa.string()),
        pa.chunked_array([c for col, *_ in parts for c in col.chunks], pa.string()),
        pa.array(np.concatenate([block.fraud for _, block, _, _ in parts])),
        pa.chunked_array([names.take(pa.array(code.astype(np.int64))) for _, _, code, _ in parts],
                         pa.string()),
        masked(np.concatenate([block.incident for _, block, _, _ in parts]),
               np.concatenate([code > 0 for _, _, code, _ in parts])),
    ], schema=IDENTITY_TRUTH_SCHEMA)
    return EventData(payments=payments, labels=labels, truth=truth, info=info,
                     accounts=accounts, account_events=events, verification_sessions=sessions,
                     identity_truth=identity_truth)


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


def _events(s: _Strings, e: EventBlock, start_us: int) -> pa.Table:
    n = len(e)
    columns = {
        "event_id": fixed_width_ids("ev", np.arange(n), id_width(n, 9)),
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


def _sessions(s: _Strings, v: SessionBlock, start_us: int) -> pa.Table:
    n = len(v)
    embedding = np.ascontiguousarray(v.embedding, dtype=np.float32).reshape(-1)
    liveness = np.round(v.liveness, 4)
    columns = {
        "session_id": fixed_width_ids("vs", np.arange(n), id_width(n, 7)),
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
