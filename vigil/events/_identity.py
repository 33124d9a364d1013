"""Reading and validating the identity tables: accounts, account events, verification sessions.

They sit beside the payments in a dataset folder and are all optional (the Handbook format
and older folders have none). Problems are reported as the payment readers do: a
:class:`~vigil.SchemaError` naming the file, the 1-based row and the column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil._errors import SchemaError
from vigil.events._io import (
    _check_unique,
    _check_values,
    _first_true,
    _not_in,
    _read_validated,
    conform,
    data_files,
)
from vigil.events._schema import (
    ACCOUNT_COLUMNS,
    ACCOUNT_EVENT_COLUMNS,
    ACCOUNT_EVENT_KINDS,
    DOCUMENT_TYPES,
    IDENTITY_TABLES,
    IDENTITY_TRUTH_COLUMNS,
    VERIFICATION_COLUMNS,
    VERIFICATION_REASONS,
    Column,
)

_COUNTRY = r"^[A-Z]{2}$"
_SHA256 = r"^[0-9a-f]{64}$"


def _country_checks(table: pa.Table, *columns: str) -> list[tuple[str, pa.Array, str]]:
    return [(c, pc.invert(pc.match_substring_regex(table.column(c), _COUNTRY)),
             "must be an ISO 3166-1 alpha-2 country code, e.g. FR") for c in columns]


def _hash_checks(table: pa.Table, *columns: str) -> list[tuple[str, pa.Array, str]]:
    return [(c, pc.invert(pc.match_substring_regex(table.column(c), _SHA256)),
             "must be a SHA-256 hash: 64 lower-case hex digits") for c in columns]


def _keep(table: pa.Table, columns: tuple[Column, ...]) -> pa.Table:
    return table.select([c.name for c in columns])


def validate_accounts(table: pa.Table, source: str = "accounts") -> pa.Table:
    """Conform a table to :data:`~vigil.events.ACCOUNT_SCHEMA` and check every value.

    Account ids must be unique; countries are ISO codes; the address is a SHA-256 hash.
    """
    table = _keep(conform(table, ACCOUNT_COLUMNS, source), ACCOUNT_COLUMNS)
    _check_values(table, [*_country_checks(table, "country", "ip_country"),
                          *_hash_checks(table, "address_hash")], source)
    _check_unique(table, "account_id", source)
    return table


def validate_account_events(table: pa.Table, source: str = "account_events") -> pa.Table:
    """Conform a table to :data:`~vigil.events.ACCOUNT_EVENT_SCHEMA` and check every value.

    Event ids must be unique; ``kind`` is one of :data:`~vigil.events.ACCOUNT_EVENT_KINDS`;
    an ``email_change`` that succeeded names the new address.
    """
    table = _keep(conform(table, ACCOUNT_EVENT_COLUMNS, source), ACCOUNT_EVENT_COLUMNS)
    kind = table.column("kind")
    _check_values(table, [
        ("kind", _not_in(kind, ACCOUNT_EVENT_KINDS),
         f"kind must be one of {', '.join(ACCOUNT_EVENT_KINDS)}"),
        *_country_checks(table, "ip_country"),
    ], source)
    no_email = pc.and_(pc.and_(pc.equal(kind, "email_change"), table.column("success")),
                       pc.is_null(table.column("email")))
    if pc.any(no_email).as_py():
        raise SchemaError("an email_change that succeeded must give the new address",
                          source=source, row=_first_true(no_email), column="email")
    _check_unique(table, "event_id", source)
    return table


def validate_verification_sessions(table: pa.Table,
                                   source: str = "verification_sessions") -> pa.Table:
    """Conform a table to :data:`~vigil.events.VERIFICATION_SCHEMA` and check every value.

    Session ids must be unique; ``reason`` and ``document_type`` come from their lists;
    scores lie in 0..1; the document number is a SHA-256 hash; a face embedding has unit
    length (within 1e-3).
    """
    table = _keep(conform(table, VERIFICATION_COLUMNS, source), VERIFICATION_COLUMNS)
    checks = [
        ("reason", _not_in(table.column("reason"), VERIFICATION_REASONS),
         f"reason must be one of {', '.join(VERIFICATION_REASONS)}"),
        ("document_type", _not_in(table.column("document_type"), DOCUMENT_TYPES),
         f"document_type must be one of {', '.join(DOCUMENT_TYPES)}"),
        *_country_checks(table, "issuing_country", "ip_country"),
        *_hash_checks(table, "document_number_hash"),
    ]
    for name in ("face_match_score", "liveness_score"):
        score = table.column(name)
        checks.append((name, pc.invert(pc.and_(pc.is_finite(score), pc.and_(
            pc.greater_equal(score, 0.0), pc.less_equal(score, 1.0)))),
            "a score must be a number from 0 to 1"))
    _check_values(table, checks, source)
    _check_unit_vectors(table, "face_embedding", source)
    _check_unique(table, "session_id", source)
    return table


def _check_unit_vectors(table: pa.Table, column: str, source: str) -> None:
    vectors = table.column(column).combine_chunks()
    if len(vectors) == 0 or vectors.null_count == len(vectors):
        return
    size = vectors.type.list_size
    present = np.flatnonzero(~np.asarray(vectors.is_null().to_numpy(zero_copy_only=False)))
    flat = vectors.take(pa.array(present)).flatten().to_numpy(zero_copy_only=False)
    values = np.asarray(flat, dtype=np.float64).reshape(-1, size)
    norm = np.sqrt((values ** 2).sum(axis=1))
    bad = ~np.isfinite(norm) | (np.abs(norm - 1.0) > 1e-3)
    if bad.any():
        row = int(present[np.flatnonzero(bad)[0]]) + 1
        raise SchemaError(f"a face embedding must have unit length, this one has "
                          f"{norm[bad][0]:.4g}", source=source, row=row, column=column)


def validate_identity_truth(table: pa.Table, source: str = "identity_truth") -> pa.Table:
    """Conform a table to :data:`~vigil.events.IDENTITY_TRUTH_SCHEMA`."""
    table = _keep(conform(table, IDENTITY_TRUTH_COLUMNS, source), IDENTITY_TRUTH_COLUMNS)
    _check_values(table, [
        ("table_name", _not_in(table.column("table_name"), IDENTITY_TABLES),
         f"table_name must be one of {', '.join(IDENTITY_TABLES)}"),
    ], source)
    return table


def read_accounts(path: str | Path) -> pa.Table:
    """Read and validate accounts from a Parquet file, a folder of them, or a CSV."""
    return _unique(_read_validated(path, validate_accounts), "account_id", path)


def read_account_events(path: str | Path) -> pa.Table:
    """Read and validate account events (logins, e-mail and password changes)."""
    return _unique(_read_validated(path, validate_account_events), "event_id", path)


def read_verification_sessions(path: str | Path) -> pa.Table:
    """Read and validate identity verification sessions."""
    return _unique(_read_validated(path, validate_verification_sessions), "session_id", path)


def read_identity_truth(path: str | Path) -> pa.Table:
    """Read and validate simulator ground truth of the identity tables."""
    return _read_validated(path, validate_identity_truth)


def _unique(table: pa.Table, column: str, path: str | Path) -> pa.Table:
    """Ids unique across the files of a folder (each file's own were checked as it was read)."""
    if len(data_files(path)) > 1:
        _check_unique(table, column, str(path))
    return table


def check_accounts_refer(accounts: pa.Table, table: pa.Table, source: str,
                         time_column: str | None = None) -> None:
    """Every non-null ``account_id`` of ``table`` must be a known account, and (when
    ``time_column`` is given) the row must not come before the account was created."""
    ids = accounts.column("account_id")
    refs = table.column("account_id")
    unknown = pc.and_(pc.invert(pc.is_null(refs)), pc.invert(pc.is_in(refs, ids)))
    if pc.any(unknown).as_py():
        row = _first_true(unknown)
        raise SchemaError(f"{refs[row - 1].as_py()!r} is not the id of any account "
                          "(accounts.parquet)", source=source, row=row, column="account_id")
    if time_column is None:
        return
    created = pc.take(accounts.column("created_at"), pc.index_in(refs, ids))
    early = pc.fill_null(pc.less(table.column(time_column), created), False)
    if pc.any(early).as_py():
        row = _first_true(early)
        raise SchemaError(
            f"{table.column(time_column)[row - 1].as_py()} is earlier than the account's "
            f"creation ({created[row - 1].as_py()})", source=source, row=row,
            column=time_column)
