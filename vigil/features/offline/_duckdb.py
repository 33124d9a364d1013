"""The offline engine: a FeatureSet compiled to one DuckDB SQL query over the whole history.

Each feature's :class:`~vigil.features.Spec` becomes a window function. Windows are exact
and sliding, over integer microseconds: ``RANGE BETWEEN w-1 PRECEDING AND CURRENT ROW
EXCLUDE TIES`` keeps the payment itself and the entity's payments with ``t - w < ts < t``,
which is the contract in :mod:`vigil.features._definitions`. Label-aware features run over
a second timeline per entity, on which each label sits at its *report* time, so a payment
only sees labels reported strictly before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from vigil._errors import ConfigError, SchemaError
from vigil.features._definitions import LABEL_OPS, Spec
from vigil.features._featureset import FeatureSet

_DAY_US = 86_400_000_000
_HOUR_US = 3_600_000_000


def _q(name: str) -> str:
    """Quote an identifier for SQL."""
    return '"' + name.replace('"', '""') + '"'


def _frame(spec: Spec) -> str:
    if spec.window_us is None:
        return "RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
    lower = f"{spec.window_us - 1} PRECEDING"
    if spec.include_current:
        return f"RANGE BETWEEN {lower} AND CURRENT ROW EXCLUDE TIES"
    return f"RANGE BETWEEN {lower} AND 1 PRECEDING"


def _pmod(expr: str, m: int) -> str:
    return f"((({expr}) % {m}) + {m}) % {m}"


def _row_expr(spec: Spec) -> str:
    """SQL for a row-level feature, over the ``base`` relation (``_t`` in microseconds)."""
    day = f"((_t - {_pmod('_t', _DAY_US)}) // {_DAY_US})"
    hour = f"({_pmod('_t', _DAY_US)} // {_HOUR_US})"
    if spec.op == "value":
        return f"CAST({_q(spec.column)} AS DOUBLE)"  # type: ignore[arg-type]
    if spec.op == "is_weekend":  # 1970-01-01 was a Thursday: weekday = (day + 3) mod 7
        return f"CAST({_pmod(day + ' + 3', 7)} >= 5 AS DOUBLE)"
    if spec.op == "day_of_week":
        return f"CAST({_pmod(day + ' + 3', 7)} AS DOUBLE)"
    if spec.op == "hour_of_day":
        return f"CAST({hour} AS DOUBLE)"
    if spec.op == "is_night":
        return f"CAST({hour} <= {spec.param} AS DOUBLE)"
    raise AssertionError(spec.op)


def _payment_expr(spec: Spec) -> str:
    """SQL for any feature computed over the payments alone (not label-aware)."""
    if spec.op == "ratio":
        num, den = (_payment_expr(o) for o in spec.operands)
        return f"(({num}) / nullif(({den}), 0.0))"
    return _window_expr(spec) if spec.key else _row_expr(spec)


def _window_expr(spec: Spec) -> str:
    """SQL for a windowed or history feature of the entity's payments."""
    over = f"OVER (PARTITION BY {_q(spec.key)} ORDER BY _t {_frame(spec)})"  # type: ignore
    col = f"CAST({_q(spec.column)} AS DOUBLE)" if spec.column else None
    op = spec.op
    if op == "count":
        expr = f"CAST(count(*) {over} AS DOUBLE)"
    elif op == "sum":
        expr = f"coalesce(sum({col}) {over}, 0.0)"
    elif op == "mean":
        expr = f"avg({col}) {over}"
    elif op in ("min", "max"):
        expr = f"{op}({col}) {over}"
    elif op == "count_distinct":
        expr = f"CAST(count(DISTINCT {_q(spec.column)}) {over} AS DOUBLE)"  # type: ignore
    elif op == "relative":
        expr = f"{col} / nullif(avg({col}) {over}, 0.0)"
    elif op == "since_first":
        expr = f"(_t - min(_t) {over}) / 1e6"
    elif op == "since_last":
        expr = f"(_t - max(_t) {over}) / 1e6"
    else:  # pragma: no cover
        raise AssertionError(op)
    return f"CASE WHEN {_q(spec.key)} IS NULL THEN NULL ELSE {expr} END"  # type: ignore


def _label_expr(spec: Spec) -> str:
    """SQL over an entity's label timeline ``u(_row, _t, _kind, _k)``: _kind 0 is a payment,
    1 the first report of any label for a payment, 2 the first report of a fraud label."""
    over = f"OVER (PARTITION BY _k ORDER BY _t {_frame(spec)})"
    labelled = f"sum(CASE WHEN _kind = 1 THEN 1 ELSE 0 END) {over}"
    fraud = f"sum(CASE WHEN _kind = 2 THEN 1 ELSE 0 END) {over}"
    if spec.op == "fraud_count":
        return f"CAST(coalesce({fraud}, 0) AS DOUBLE)"
    if spec.op == "label_count":
        return f"CAST(coalesce({labelled}, 0) AS DOUBLE)"
    if spec.op == "fraud_rate":
        return f"coalesce(CAST({fraud} AS DOUBLE) / nullif({labelled}, 0), 0.0)"
    if spec.op == "since_first_fraud":
        return f"(_t - min(CASE WHEN _kind = 2 THEN _t END) {over}) / 1e6"
    if spec.op == "since_last_fraud":
        return f"(_t - max(CASE WHEN _kind = 2 THEN _t END) {over}) / 1e6"
    raise AssertionError(spec.op)  # pragma: no cover


def compile_sql(feature_set: FeatureSet, *, payments: str = "payments",
                labels: str = "labels") -> str:
    """The single SQL query that computes ``feature_set`` for every payment.

    ``payments`` and ``labels`` name relations with the payment and label schemas. The
    result has ``payment_id``, ``ts`` and one DOUBLE column per feature, in (ts, payment_id)
    order.
    """
    specs = feature_set.specs()
    ctes = [f"base AS (SELECT *, epoch_us(ts) AS _t, "
            f"row_number() OVER (ORDER BY ts, payment_id) AS _row FROM {payments})"]
    ev_cols = []
    for s in specs:
        if s.op in LABEL_OPS:
            continue
        ev_cols.append(f"{_payment_expr(s)} AS {_q(s.name)}")
    ctes.append("ev AS (SELECT " + ", ".join(["_row", "payment_id", "ts", *ev_cols])
                + " FROM base)")

    label_keys: list[str] = []
    for s in specs:
        if s.op in LABEL_OPS and s.key not in label_keys:
            label_keys.append(s.key)  # type: ignore[arg-type]
    source_of: dict[str, str] = {}
    if label_keys:
        ctes.append(
            "lab AS (SELECT payment_id, min(epoch_us(reported_at)) AS _lab_t, "
            "min(CASE WHEN is_fraud THEN epoch_us(reported_at) END) AS _fraud_t "
            f"FROM {labels} GROUP BY payment_id)"
        )
    for i, key in enumerate(label_keys):
        k = _q(key)
        timeline = (
            f"SELECT _row, _t, 0 AS _kind, {k} AS _k FROM base WHERE {k} IS NOT NULL "
            f"UNION ALL SELECT NULL, l._lab_t, 1, b.{k} FROM lab l "
            f"JOIN base b ON l.payment_id = b.payment_id WHERE b.{k} IS NOT NULL "
            f"UNION ALL SELECT NULL, l._fraud_t, 2, b.{k} FROM lab l "
            f"JOIN base b ON l.payment_id = b.payment_id "
            f"WHERE l._fraud_t IS NOT NULL AND b.{k} IS NOT NULL"
        )
        cols = [f"{_label_expr(s)} AS {_q(s.name)}" for s in specs
                if s.op in LABEL_OPS and s.key == key]
        ctes.append(f"lab{i} AS (SELECT _row, _kind, {', '.join(cols)} FROM ({timeline}) u "
                    "QUALIFY _kind = 0)")
        for s in specs:
            if s.op in LABEL_OPS and s.key == key:
                source_of[s.name] = f"lab{i}"

    select = ["ev.payment_id", "ev.ts"]
    for s in specs:
        select.append(f"{source_of.get(s.name, 'ev')}.{_q(s.name)}")
    joins = "".join(f" LEFT JOIN lab{i} ON lab{i}._row = ev._row"
                    for i in range(len(label_keys)))
    return ("WITH " + ",\n".join(ctes) + "\nSELECT " + ", ".join(select)
            + f"\nFROM ev{joins}\nORDER BY ev._row")


def build_features(feature_set: FeatureSet, payments: pa.Table,
                   labels: pa.Table | None = None, *, threads: int | None = None,
                   source: str = "payments") -> pa.Table:
    """Compute ``feature_set`` for every payment, point in time, in one DuckDB pass.

    ``payments`` follows :data:`~vigil.events.PAYMENT_SCHEMA` (extra columns allowed);
    ``labels`` follows :data:`~vigil.events.LABEL_SCHEMA` and is required when a feature is
    label-aware. Returns ``payment_id``, ``ts`` and one float64 column per feature, in
    ``(ts, payment_id)`` order.

    .. warning::
       Pass *all* labels you have: the engine itself only lets a payment see labels reported
       before it. Filtering labels by anything but report time beforehand can leak.
    """
    for required in ("payment_id", "ts"):
        if required not in payments.column_names:
            raise SchemaError(f"missing required column '{required}'", source=source)
    feature_set.check_columns(payments.schema, source=source)
    if feature_set.needs_labels() and labels is None:
        raise ConfigError(f"feature set '{feature_set.name}' has label-aware features; "
                          "pass the labels table")
    keep = ["payment_id", "ts", *feature_set.input_columns()]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        con.register("payments", payments.select(keep))
        if labels is None:
            labels = pa.table({"payment_id": pa.array([], pa.string()),
                               "is_fraud": pa.array([], pa.bool_()),
                               "reported_at": pa.array([], pa.timestamp("us", tz="UTC"))})
        con.register("labels", labels.select(["payment_id", "is_fraud", "reported_at"]))
        relation = con.sql(compile_sql(feature_set))
        # DuckDB 2 renamed fetch_arrow_table to to_arrow_table
        fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
        result = fetch()
    finally:
        con.close()
    return _normalise(result, feature_set.names)


def _normalise(table: pa.Table, names: Sequence[str]) -> pa.Table:
    arrays = [table.column("payment_id"),
              table.column("ts").cast(pa.timestamp("us", tz="UTC"))]
    arrays += [table.column(n).cast(pa.float64()) for n in names]
    return pa.table(arrays, names=["payment_id", "ts", *names])
