"""Reading and validating event files: Parquet (a file or a folder of partitions) and CSV.

Every problem is reported as a :class:`~vigil.SchemaError` or :class:`~vigil.DataFileError`
naming the file, the 1-based data row and the column, so a user can go straight to it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from vigil._errors import DataFileError, SchemaError
from vigil.events._schema import (
    CHANNELS,
    LABEL_COLUMNS,
    LABEL_KINDS,
    PAYMENT_COLUMNS,
    PAYMENT_STATUSES,
    TIMESTAMP,
    TRUTH_COLUMNS,
    Column,
)

_SUFFIXES = (".parquet", ".pq", ".csv")


def data_files(path: str | Path) -> list[Path]:
    """The data files at ``path``: the file itself, or every Parquet/CSV file below a folder.

    Files are sorted by path, so day partitions (``date=2024-01-01/...``) come in date order.
    """
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"{p}: no such file or folder")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in _SUFFIXES)
        if not files:
            raise DataFileError(f"{p}: folder holds no .parquet or .csv file")
        return files
    if p.suffix.lower() not in _SUFFIXES:
        raise DataFileError(
            f"{p}: unknown file type '{p.suffix or '(none)'}'; vigil reads .parquet and .csv"
        )
    return [p]


def read_file(path: str | Path) -> pa.Table:
    """Read one Parquet or CSV file as it is (CSV columns all as strings)."""
    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"{p}: no such file")
    if p.suffix.lower() == ".csv":
        return _read_csv(p)
    try:
        return pq.read_table(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"{p}: not a readable Parquet file ({_first_line(exc)})") from exc


def _read_csv(p: Path) -> pa.Table:
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{p}: not a UTF-8 text CSV file") from exc
    if not header:
        raise DataFileError(f"{p}: empty CSV file (no header line)")
    try:
        return pacsv.read_csv(
            p,
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                # only an empty cell is missing: "NA" is Namibia, "null" may be an e-mail name
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise DataFileError(f"{p}: not a readable CSV file ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def conform(table: pa.Table, columns: Iterable[Column], source: str) -> pa.Table:
    """Cast ``table`` to the schema ``columns``, checking every value; raise on the first problem.

    Columns the schema knows come first, in schema order, cast to their types; optional ones
    that are absent are added as nulls. Columns it does not know are kept, unchanged, after
    them (they can be used by features). Naive timestamps are read as UTC.
    """
    columns = tuple(columns)
    known = {c.name for c in columns}
    missing = [c.name for c in columns if c.required and c.name not in table.column_names]
    if missing:
        raise SchemaError(
            f"missing required column(s) {', '.join(missing)}; found: "
            f"{', '.join(table.column_names) or '(none)'}",
            source=source,
        )
    arrays, fields = [], []
    for col in columns:
        if col.name in table.column_names:
            arr = _cast(table.column(col.name), col, source)
        else:
            arr = pa.nulls(table.num_rows, col.type)
        if col.required and arr.null_count:
            row = _first_true(pc.is_null(arr))
            raise SchemaError("value is missing (null) but the column is required",
                              source=source, row=row, column=col.name)
        arrays.append(arr)
        fields.append(pa.field(col.name, col.type, nullable=not col.required))
    for name in table.column_names:
        if name not in known:
            arrays.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _first_true(mask: pa.ChunkedArray | pa.Array | np.ndarray) -> int:
    """1-based position of the first true value."""
    if not isinstance(mask, np.ndarray):
        mask = mask.to_numpy(zero_copy_only=False)
    values = np.asarray(mask, dtype=bool)
    return int(np.flatnonzero(values)[0]) + 1


def _cast(arr: pa.ChunkedArray, col: Column, source: str) -> pa.ChunkedArray:
    target = col.type
    if arr.type.equals(target):
        return arr
    if pa.types.is_null(arr.type):  # a column of nothing but nulls, as Arrow infers it
        return pa.chunked_array([pa.nulls(len(arr), target)], target)
    if pa.types.is_timestamp(target):
        return _cast_timestamp(arr, col, source)
    if pa.types.is_string(target):
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or \
                pa.types.is_integer(arr.type) or pa.types.is_dictionary(arr.type):
            return pc.cast(arr, pa.string())
        raise SchemaError(f"expected text, found {arr.type}", source=source, column=col.name)
    if pa.types.is_floating(target):
        if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or \
                pa.types.is_decimal(arr.type):
            return pc.cast(arr, target)
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            values = pd.to_numeric(pd.Series(arr.to_pandas()), errors="coerce")
            bad = values.isna().to_numpy() & ~np.asarray(pc.is_null(arr).to_numpy(
                zero_copy_only=False), dtype=bool)
            if bad.any():
                row = _first_true(bad)
                raise SchemaError(f"'{arr[row - 1].as_py()}' is not a number",
                                  source=source, row=row, column=col.name)
            return pa.chunked_array([pa.array(values.to_numpy(dtype="float64"), from_pandas=True)])
        raise SchemaError(f"expected a number, found {arr.type}", source=source, column=col.name)
    if pa.types.is_boolean(target):
        if pa.types.is_integer(arr.type):
            ok = pc.or_kleene(pc.is_in(arr, pa.array([0, 1], arr.type)), pc.is_null(arr))
            if not pc.all(ok, min_count=0).as_py():  # empty: all true, not null
                row = _first_true(pc.invert(ok))
                raise SchemaError(f"{arr[row - 1].as_py()} is not a boolean (use 0/1 or "
                                  "true/false)", source=source, row=row, column=col.name)
            return pc.cast(arr, pa.bool_())
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            lowered = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
            truthy = pc.is_in(lowered, pa.array(["true", "1", "yes"]))
            falsy = pc.is_in(lowered, pa.array(["false", "0", "no"]))
            ok = pc.or_kleene(pc.or_(truthy, falsy), pc.is_null(arr))
            if not pc.all(ok, min_count=0).as_py():  # empty: all true, not null
                row = _first_true(pc.invert(ok))
                raise SchemaError(f"'{arr[row - 1].as_py()}' is not a boolean (use true/false)",
                                  source=source, row=row, column=col.name)
            return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.bool_()), truthy)
        raise SchemaError(f"expected a boolean, found {arr.type}", source=source, column=col.name)
    if pa.types.is_date(target):
        return _cast_date(arr, col, source)
    if pa.types.is_integer(target):
        return _cast_integer(arr, col, source)
    if pa.types.is_fixed_size_list(target):
        return _cast_vector(arr, col, source)
    return pc.cast(arr, target)  # pragma: no cover - every schema type is handled above


def _cast_date(arr: pa.ChunkedArray, col: Column, source: str) -> pa.ChunkedArray:
    if pa.types.is_date(arr.type):
        return pc.cast(arr, col.type)
    if pa.types.is_timestamp(arr.type):  # a midnight timestamp, as pandas writes dates
        return pc.cast(pc.floor_temporal(arr, unit="day"), col.type)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        raw = pd.Series(arr.to_pandas(), dtype="object")
        parsed = pd.to_datetime(raw, errors="coerce", format="%Y-%m-%d")
        bad = parsed.isna().to_numpy() & raw.notna().to_numpy()
        if bad.any():
            row = _first_true(bad)
            raise SchemaError(f"'{raw.iloc[row - 1]}' is not a date; use YYYY-MM-DD, e.g. "
                              "1984-07-21", source=source, row=row, column=col.name)
        return pa.chunked_array([pa.Array.from_pandas(parsed.dt.date, type=col.type)])
    raise SchemaError(f"expected a date, found {arr.type}", source=source, column=col.name)


def _cast_integer(arr: pa.ChunkedArray, col: Column, source: str) -> pa.ChunkedArray:
    if pa.types.is_integer(arr.type):
        return pc.cast(arr, col.type)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or \
            pa.types.is_floating(arr.type):
        values = pd.to_numeric(pd.Series(arr.to_pandas()), errors="coerce")
        present = ~np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False), dtype=bool)
        bad = present & ~(values.notna().to_numpy() & (values.fillna(0) % 1 == 0).to_numpy())
        if bad.any():
            row = _first_true(bad)
            raise SchemaError(f"'{arr[row - 1].as_py()}' is not a whole number",
                              source=source, row=row, column=col.name)
        return pa.chunked_array([pa.array(values.astype("Int64"), type=col.type)])
    raise SchemaError(f"expected a whole number, found {arr.type}", source=source,
                      column=col.name)


def _cast_vector(arr: pa.ChunkedArray, col: Column, source: str) -> pa.ChunkedArray:
    size = col.type.list_size
    want = f"expected a list of {size} numbers"
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)
            or pa.types.is_fixed_size_list(arr.type)):
        raise SchemaError(f"{want}, found {arr.type}", source=source, column=col.name)
    value_type = arr.type.value_type
    if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type)):
        raise SchemaError(f"{want}, found {arr.type}", source=source, column=col.name)
    if not pa.types.is_fixed_size_list(arr.type) or arr.type.list_size != size:
        lengths = pc.list_value_length(arr)
        wrong = pc.fill_null(pc.not_equal(lengths, size), False)
        if pc.any(wrong).as_py():
            row = _first_true(wrong)
            raise SchemaError(f"{want}, found {lengths[row - 1].as_py()}",
                              source=source, row=row, column=col.name)
    return pa.chunked_array([pc.cast(chunk, col.type) for chunk in arr.chunks], col.type)


def _cast_timestamp(arr: pa.ChunkedArray, col: Column, source: str) -> pa.ChunkedArray:
    if pa.types.is_timestamp(arr.type):
        if arr.type.tz is None:
            arr = pc.assume_timezone(arr, "UTC")
        try:
            return pc.cast(arr, TIMESTAMP)
        except pa.ArrowInvalid as exc:  # nanoseconds (pandas' default) or out of range
            back = pc.cast(pc.cast(arr, TIMESTAMP, safe=False), arr.type, safe=False)
            lossy = pc.fill_null(pc.not_equal(back, arr), False)
            row = _first_true(lossy) if pc.any(lossy).as_py() else None
            raise SchemaError(
                f"{arr.type} value does not fit vigil's microsecond timestamps "
                f"({_first_line(exc)}); round the column to microseconds",
                source=source, row=row, column=col.name) from exc
    if pa.types.is_date(arr.type):
        return pc.cast(pc.cast(arr, pa.timestamp("us")), TIMESTAMP)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        raw = pd.Series(arr.to_pandas(), dtype="object")
        parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
        bad = parsed.isna().to_numpy() & raw.notna().to_numpy()
        if bad.any():
            row = _first_true(bad)
            raise SchemaError(
                f"'{raw.iloc[row - 1]}' is not a timestamp; use ISO 8601, e.g. "
                "2024-05-01T13:45:00Z", source=source, row=row, column=col.name)
        values = parsed.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        return pa.chunked_array([pa.Array.from_pandas(values, type=TIMESTAMP)])
    raise SchemaError(f"expected a timestamp, found {arr.type}", source=source, column=col.name)


def _check_values(table: pa.Table, checks: list[tuple[str, pa.Array, str]], source: str) -> None:
    """``checks``: (column, boolean array that is true where a value is bad, reason)."""
    for column, bad, reason in checks:
        bad = pc.fill_null(bad, False)
        if pc.any(bad).as_py():
            row = _first_true(bad)
            value = table.column(column)[row - 1].as_py()
            raise SchemaError(f"{value!r}: {reason}", source=source, row=row, column=column)


def _not_in(values: pa.ChunkedArray, allowed: tuple[str, ...]) -> pa.ChunkedArray:
    """True where a value is present and not one of ``allowed`` (nulls are not flagged)."""
    return pc.and_(pc.invert(pc.is_null(values)), pc.invert(pc.is_in(values, pa.array(allowed))))


def validate_payments(table: pa.Table, source: str = "payments") -> pa.Table:
    """Conform a table to :data:`~vigil.events.PAYMENT_SCHEMA` and check every value.

    Raises :class:`~vigil.SchemaError` naming ``source``, the row and the column of the
    first problem: a missing or mistyped column, a null where a value is required, an
    unparseable timestamp, a negative or non-finite amount, a malformed currency code,
    an unknown channel or status, or a payment id that appears twice.
    """
    table = conform(table, PAYMENT_COLUMNS, source)
    amount = table.column("amount")
    _check_values(table, [
        ("amount", pc.or_(pc.less(amount, 0.0), pc.invert(pc.is_finite(amount))),
         "amount must be a finite number >= 0"),
        ("currency", pc.invert(pc.match_substring_regex(table.column("currency"), r"^[A-Z]{3}$")),
         "currency must be an ISO 4217 code of three upper-case letters, e.g. EUR"),
        ("channel", _not_in(table.column("channel"), CHANNELS),
         f"channel must be one of {', '.join(CHANNELS)}"),
        ("status", _not_in(table.column("status"), PAYMENT_STATUSES),
         f"status must be one of {', '.join(PAYMENT_STATUSES)}"),
    ], source)
    _check_unique(table, "payment_id", source)
    return table


def validate_labels(table: pa.Table, source: str = "labels") -> pa.Table:
    """Conform a table to :data:`~vigil.events.LABEL_SCHEMA` and check every value."""
    table = conform(table, LABEL_COLUMNS, source)
    table = table.select([c.name for c in LABEL_COLUMNS])
    _check_values(table, [
        ("kind", _not_in(table.column("kind"), LABEL_KINDS),
         f"kind must be one of {', '.join(LABEL_KINDS)}"),
    ], source)
    return table


def validate_truth(table: pa.Table, source: str = "truth") -> pa.Table:
    """Conform a table to :data:`~vigil.events.TRUTH_SCHEMA`."""
    table = conform(table, TRUTH_COLUMNS, source)
    table = table.select([c.name for c in TRUTH_COLUMNS])
    _check_unique(table, "payment_id", source)
    return table


def _check_unique(table: pa.Table, column: str, source: str) -> None:
    values = table.column(column)
    if pc.count_distinct(values).as_py() == len(values):
        return
    series = pd.Series(values.to_numpy(zero_copy_only=False))
    dup = series.duplicated().to_numpy()
    row = _first_true(dup)
    raise SchemaError(f"{series.iloc[row - 1]!r} appears more than once; ids must be unique",
                      source=source, row=row, column=column)


def _read_validated(path: str | Path, validate) -> pa.Table:
    tables = [validate(read_file(f), str(f)) for f in data_files(path)]
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="default")
    except pa.ArrowInvalid as exc:
        raise SchemaError(f"partitions disagree on their columns ({_first_line(exc)})",
                          source=str(path)) from exc


def read_payments(path: str | Path) -> pa.Table:
    """Read and validate payments from a Parquet file, a folder of Parquet files, or a CSV."""
    table = _read_validated(path, validate_payments)
    _check_unique(table, "payment_id", str(path))
    return table


def read_labels(path: str | Path) -> pa.Table:
    """Read and validate labels from a Parquet file, a folder of them, or a CSV."""
    return _read_validated(path, validate_labels)


def read_truth(path: str | Path) -> pa.Table:
    """Read and validate simulator ground truth."""
    return _read_validated(path, validate_truth)


def check_labels_refer(payments: pa.Table, labels: pa.Table, source: str = "labels") -> None:
    """Every label must be about a known payment and reported no earlier than it happened."""
    ids = payments.column("payment_id")
    known = pc.is_in(labels.column("payment_id"), ids)
    if not pc.all(known, min_count=0).as_py():
        row = _first_true(pc.invert(known))
        raise SchemaError(f"{labels.column('payment_id')[row - 1].as_py()!r} is not the id of "
                          "any payment", source=source, row=row, column="payment_id")
    idx = pc.index_in(labels.column("payment_id"), ids)
    paid = pc.take(payments.column("ts"), idx)
    early = pc.less(labels.column("reported_at"), paid)
    if pc.any(early).as_py():
        row = _first_true(early)
        raise SchemaError(
            f"label reported at {labels.column('reported_at')[row - 1].as_py()} is earlier than "
            f"its payment ({paid[row - 1].as_py()})", source=source, row=row, column="reported_at")




def write_payments_by_day(payments: pa.Table, folder: str | Path) -> list[Path]:
    """Write payments as daily Parquet partitions ``folder/date=YYYY-MM-DD/part-0.parquet``.

    Rows are sorted by (ts, payment_id) inside each day. Returns the written paths.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payments = payments.sort_by([("ts", "ascending"), ("payment_id", "ascending")])
    days = pc.strftime(payments.column("ts"), format="%Y-%m-%d")
    written = []
    day_values = days.to_numpy(zero_copy_only=False)
    bounds = np.flatnonzero(day_values[1:] != day_values[:-1]) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(day_values)]])
    for start, end in zip(starts, ends, strict=True):
        if end <= start:
            continue
        day_dir = folder / f"date={day_values[start]}"
        day_dir.mkdir(parents=True, exist_ok=True)
        out = day_dir / "part-0.parquet"
        pq.write_table(payments.slice(start, end - start), out, compression="zstd")
        written.append(out)
    return written
