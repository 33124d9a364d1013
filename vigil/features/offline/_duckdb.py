"""The offline engine: a FeatureSet compiled to one DuckDB SQL query over the whole history.

Each feature's :class:`~vigil.features.Spec` becomes a window function. Windows are exact
and sliding, over integer microseconds: ``RANGE BETWEEN w-1 PRECEDING AND CURRENT ROW
EXCLUDE TIES`` keeps the payment itself and the entity's payments with ``t - w < ts < t``,
which is the contract in :mod:`vigil.features._definitions`. Label-aware features run over
a second timeline per entity, on which each label sits at its *report* time, so a payment
only sees labels reported strictly before it.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil._errors import ConfigError, SchemaError
from vigil.features._definitions import LABEL_OPS, Spec
from vigil.features._featureset import FeatureSet
from vigil.features.offline._label_windows import label_window_features

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
    key = _q(spec.key)  # type: ignore[arg-type]
    partition = key
    if spec.op == "count_distinct":
        # a payment without the key is a partition of its own (its feature is null anyway):
        # DuckDB's distinct count over a frame that excludes ties takes quadratic time in a
        # partition's rows, and the payments without a device or an IP are most of them
        partition = f"{key}, CASE WHEN {key} IS NULL THEN _i END"
    over = f"OVER (PARTITION BY {partition} ORDER BY _t {_frame(spec)})"
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


# Label-aware features run over timelines of one entity key: the payments (which carry their
# _i) interleaved with label events (_e = 1) at their report times. The "labelled" timeline
# holds the first report of any label per payment; the "fraud" timeline the first report of
# a fraud label. Fraud is rare, so the fraud timeline is barely longer than the payments,
# and keeping the two apart makes each window aggregate cheaper. Several features share one
# aggregate (a fraud rate and a fraud count over the same window), so each distinct
# (aggregate, window) is computed once and features are derived from them.
_LABEL_AGGREGATES = {  # name: (timeline, SQL aggregate)
    "labelled": ("labelled", "sum(_e)"),
    "frauds": ("fraud", "sum(_e)"),
    "first_fraud": ("fraud", "min(CASE WHEN _e = 1 THEN _t END)"),
    "last_fraud": ("fraud", "max(CASE WHEN _e = 1 THEN _t END)"),
}
_LABEL_NEEDS = {
    "fraud_count": ("frauds",),
    "label_count": ("labelled",),
    "fraud_rate": ("frauds", "labelled"),
    "since_first_fraud": ("first_fraud",),
    "since_last_fraud": ("last_fraud",),
}
_EVENT_TIME = {"labelled": "_lab_t", "fraud": "_fraud_t"}


def _label_alias(aggregate: str, spec: Spec) -> str:
    return f"_{aggregate}_{spec.window_us}"


def _label_expr(spec: Spec) -> str:
    """A label-aware feature from the timelines' aggregates (see _LABEL_AGGREGATES)."""
    a = {name: _label_alias(name, spec) for name in _LABEL_NEEDS[spec.op]}
    if spec.op == "fraud_count":
        return f"CAST(coalesce({a['frauds']}, 0) AS DOUBLE)"
    if spec.op == "label_count":
        return f"CAST(coalesce({a['labelled']}, 0) AS DOUBLE)"
    if spec.op == "fraud_rate":
        return f"coalesce(CAST({a['frauds']} AS DOUBLE) / nullif({a['labelled']}, 0), 0.0)"
    if spec.op == "since_first_fraud":
        return f"(_t - {a['first_fraud']}) / 1e6"
    if spec.op == "since_last_fraud":
        return f"(_t - {a['last_fraud']}) / 1e6"
    raise AssertionError(spec.op)  # pragma: no cover


def _label_query(key: str, specs: list[Spec]) -> str:
    """Label-aware features of one entity key, for every payment that has a key."""
    k = _q(key)
    per_timeline: dict[str, dict[str, str]] = {}
    for spec in specs:
        over = f"OVER (PARTITION BY _k ORDER BY _t {_frame(spec)})"
        for name in _LABEL_NEEDS[spec.op]:
            timeline, aggregate = _LABEL_AGGREGATES[name]
            per_timeline.setdefault(timeline, {}).setdefault(_label_alias(name, spec),
                                                             f"{aggregate} {over}")
    parts = []
    for timeline, aggregates in per_timeline.items():
        when = _EVENT_TIME[timeline]
        events = (f"SELECT _i, _t, 0 AS _e, {k} AS _k FROM base WHERE {k} IS NOT NULL "
                  f"UNION ALL SELECT NULL, {when}, 1, {k} FROM base "
                  f"WHERE {when} IS NOT NULL AND {k} IS NOT NULL")
        cols = ", ".join(f"{expr} AS {alias}" for alias, expr in aggregates.items())
        parts.append(f"(SELECT _i, _t, {cols} FROM ({events}) u QUALIFY _i IS NOT NULL) "
                     f"AS {timeline}")
    joined = parts[0] + "".join(f" JOIN {p} USING (_i, _t)" for p in parts[1:])
    outer = ", ".join(f"{_label_expr(s)} AS {_q(s.name)}" for s in specs)
    return f"SELECT _i, {outer} FROM {joined}"


def compile_sql(feature_set: FeatureSet, *, payments: str = "payments",
                label_aware: bool = True) -> str:
    """The single SQL query that computes ``feature_set`` for every payment.

    It reads the relation that :func:`build_features` prepares: ``payments(_i, _t,
    payment_id, _lab_t, _fraud_t, ...)``, one row per payment with ``_i`` its position in the
    input, ``_t`` its time, ``_lab_t`` and ``_fraud_t`` the first report of any label and of
    a fraud label for it (null when none), all in microseconds, and the columns the features
    read. The result is ``_i`` and one DOUBLE column per feature, in ``(ts, payment_id)``
    order. With ``label_aware=False`` the label-aware features are left out (the engine
    computes those by sorted search, see :mod:`vigil.features.offline._label_windows`).
    """
    specs = feature_set.specs()
    if not label_aware:
        specs = [s for s in specs if s.op not in LABEL_OPS]
    ctes = [f"base AS (SELECT * FROM {payments})"]
    ev_cols = [f"{_payment_expr(s)} AS {_q(s.name)}" for s in specs if s.op not in LABEL_OPS]
    ctes.append("ev AS (SELECT " + ", ".join(["_i", "_t", "payment_id", *ev_cols])
                + " FROM base)")

    label_keys: list[str] = []
    for s in specs:
        if s.op in LABEL_OPS and s.key not in label_keys:
            label_keys.append(s.key)  # type: ignore[arg-type]
    source_of: dict[str, str] = {}
    for i, key in enumerate(label_keys):
        own = [s for s in specs if s.op in LABEL_OPS and s.key == key]
        ctes.append(f"lab{i} AS ({_label_query(key, own)})")
        for s in own:
            source_of[s.name] = f"lab{i}"

    select = ["ev._i"] + [f"{source_of.get(s.name, 'ev')}.{_q(s.name)}" for s in specs]
    joins = "".join(f" LEFT JOIN lab{i} ON lab{i}._i = ev._i" for i in range(len(label_keys)))
    return ("WITH " + ",\n".join(ctes) + "\nSELECT " + ", ".join(select)
            + f"\nFROM ev{joins}\nORDER BY ev._t, ev.payment_id")


def _as_codes(values: pa.ChunkedArray) -> pa.Array:
    """Text keys become integer codes (nulls stay null): partitioning and counting distinct
    values need only equality, and integers make DuckDB's sorts and hashes cheaper."""
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type) or \
            pa.types.is_binary(values.type):
        return pc.dictionary_encode(values).combine_chunks().indices
    return values.combine_chunks()


def _engine_inputs(feature_set: FeatureSet, payments: pa.Table, labels: pa.Table) -> pa.Table:
    """The relation the SQL reads (see :func:`compile_sql`)."""
    ts = payments.column("ts").cast(pa.timestamp("us", tz="UTC"))
    columns: dict[str, pa.Array] = {
        "_i": pa.array(np.arange(payments.num_rows, dtype=np.int64)),
        "_t": ts.cast(pa.int64()).combine_chunks(),
        "payment_id": payments.column("payment_id").combine_chunks(),
    }
    if feature_set.needs_labels():
        columns["_lab_t"], columns["_fraud_t"] = first_reports(payments, labels)
    for name in feature_set.input_columns():
        if name not in columns:
            columns[name] = _as_codes(payments.column(name))
    return pa.table(columns)


def first_reports(payments: pa.Table, labels: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Per payment (in ``payments`` order), the first report time of any label and of a fraud
    label, in microseconds, or null: the label state every label-aware feature reads.

    Labels of payments not in ``payments`` cannot matter to these features and are ignored.
    """
    never = np.iinfo(np.int64).max
    if labels.column("payment_id").equals(payments.column("payment_id")):
        # one label per payment, in payment order (the Handbook's case): no lookup needed
        position = pa.array(np.arange(payments.num_rows, dtype=np.int64))
    else:
        position = pc.index_in(labels.column("payment_id"), payments.column("payment_id"))
    known = np.asarray(pc.is_valid(position).to_numpy(zero_copy_only=False), dtype=bool)
    pos = np.asarray(pc.fill_null(position, 0).to_numpy(zero_copy_only=False))[known]
    reported = np.asarray(labels.column("reported_at").cast(pa.timestamp("us", tz="UTC"))
                          .cast(pa.int64()).to_numpy(zero_copy_only=False))[known]
    fraud = np.asarray(labels.column("is_fraud").to_numpy(zero_copy_only=False),
                       dtype=bool)[known]
    first = np.full(payments.num_rows, never, dtype=np.int64)
    np.minimum.at(first, pos, reported)
    first_fraud = np.full(payments.num_rows, never, dtype=np.int64)
    np.minimum.at(first_fraud, pos[fraud], reported[fraud])
    return (pa.array(first, mask=first == never), pa.array(first_fraud, mask=first_fraud == never))


def build_features(feature_set: FeatureSet, payments: pa.Table,
                   labels: pa.Table | None = None, *, threads: int | None = None,
                   source: str = "payments", label_windows: str = "search") -> pa.Table:
    """Compute ``feature_set`` for every payment, point in time, in one DuckDB pass.

    ``payments`` follows :data:`~vigil.events.PAYMENT_SCHEMA` (extra columns allowed);
    ``labels`` follows :data:`~vigil.events.LABEL_SCHEMA` and is required when a feature is
    label-aware. Returns ``payment_id``, ``ts`` and one float64 column per feature, in
    ``(ts, payment_id)`` order.

    Payment windows run in DuckDB; label-aware windows by sorted search in NumPy
    (``label_windows="search"``, several times faster) or in the same SQL query
    (``label_windows="sql"``, the form :func:`compile_sql` prints). Both give the same values.

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
    if labels is None:
        labels = pa.table({"payment_id": pa.array([], pa.string()),
                           "is_fraud": pa.array([], pa.bool_()),
                           "reported_at": pa.array([], pa.timestamp("us", tz="UTC"))})
    if label_windows not in ("search", "sql"):
        raise ConfigError(f"label_windows must be 'search' or 'sql', not {label_windows!r}")
    in_sql = label_windows == "sql"
    payment_rel = _engine_inputs(feature_set, payments, labels)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        con.register("payments", payment_rel)
        relation = con.sql(compile_sql(feature_set, label_aware=in_sql))
        # DuckDB 2 renamed fetch_arrow_table to to_arrow_table
        fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
        result = fetch()
    finally:
        con.close()
    if result.num_rows != payments.num_rows:  # pragma: no cover - a bug, not a user error
        raise AssertionError("the feature query lost or duplicated payments")
    order = result.column("_i")
    arrays = [payments.column("payment_id").take(order),
              payments.column("ts").cast(pa.timestamp("us", tz="UTC")).take(order)]
    searched = {} if in_sql else _searched_label_features(feature_set, payment_rel)
    arrays += [searched[n].take(order) if n in searched else result.column(n).cast(pa.float64())
               for n in feature_set.names]
    return pa.table(arrays, names=["payment_id", "ts", *feature_set.names])


def _searched_label_features(feature_set: FeatureSet, rel: pa.Table) -> dict[str, pa.Array]:
    """Label-aware features by sorted search, per payment in input order."""
    by_key: dict[str, list[Spec]] = {}
    for spec in feature_set.specs():
        if spec.op in LABEL_OPS:
            by_key.setdefault(spec.key, []).append(spec)  # type: ignore[arg-type]
    if not by_key:
        return {}
    t = np.asarray(rel.column("_t").to_numpy(), dtype=np.int64)
    event_time = {}
    for timeline, column in _EVENT_TIME.items():
        col = rel.column(column)
        known = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
        times = np.asarray(pc.fill_null(col, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        event_time[timeline] = (times, known)
    out: dict[str, pa.Array] = {}
    for key, specs in by_key.items():
        encoded = pc.dictionary_encode(rel.column(key)).combine_chunks().indices
        codes = np.asarray(pc.fill_null(encoded, -1).to_numpy(zero_copy_only=False),
                           dtype=np.int64)
        out.update(label_window_features(specs, codes, t, event_time))
    return out
