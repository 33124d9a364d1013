"""The usual approach: the Handbook's 15 features in plain pandas, as its notebooks compute them.

This is what the speed benchmark compares the DuckDB engine with, so it is kept
straightforward on purpose (``groupby`` per card and per terminal, a ``DatetimeIndex`` and
time-based ``.rolling('ND')``, as in the Handbook's chapter 3 "baseline feature
transformation"), not tuned.

Where it differs from :func:`vigil.features.handbook_baseline` (the contract in
:mod:`vigil.features._definitions`):

- A pandas window ``.rolling('ND')`` is ``(t - N days, t]`` up to the current *row*: of
  several payments of one card at the same instant, each sees those sorted before it. vigil
  sees none of them (only the payment itself).
- The terminal features are sums over ``(t - delay - N days, t]`` minus sums over
  ``(t - delay, t]``, i.e. payments at ``(t - delay - N, t - delay]``. A payment exactly
  ``delay`` before ``t`` is counted, although its label is reported exactly at ``t``; vigil
  counts a label only once it was reported strictly before ``t``.
- It needs one label delay for every payment (it reads the Handbook's fixed 7 days off the
  labels), since the windows are shifted by payment time, not placed at report time.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from vigil._errors import ConfigError

_WINDOWS_DAYS = (1, 7, 30)


def _card_features(card: pd.DataFrame) -> pd.DataFrame:
    """Count and mean amount over 1, 7 and 30 days, the payment included (Handbook ch. 3)."""
    card = card.sort_values("ts", kind="stable")
    amount = card.set_index("ts")["amount"]
    out = pd.DataFrame(index=card.index)
    for days in _WINDOWS_DAYS:
        window = amount.rolling(f"{days}D")
        count = window.count()
        out[f"count_by_card_{days}d"] = count.to_numpy()
        out[f"amount_mean_by_card_{days}d"] = (window.sum() / count).to_numpy()
    return out


def _terminal_features(terminal: pd.DataFrame, delay: pd.Timedelta) -> pd.DataFrame:
    """Labelled payments and their fraud share over 1, 7 and 30 days, shifted back by the
    label delay: windows of (delay + N) days minus the last (delay) days (Handbook ch. 3)."""
    terminal = terminal.sort_values("ts", kind="stable")
    fraud = terminal.set_index("ts")["fraud"]
    frauds_in_delay = fraud.rolling(delay).sum()
    labelled_in_delay = fraud.rolling(delay).count()
    out = pd.DataFrame(index=terminal.index)
    for days in _WINDOWS_DAYS:
        frauds = fraud.rolling(delay + pd.Timedelta(days=days)).sum() - frauds_in_delay
        labelled = fraud.rolling(delay + pd.Timedelta(days=days)).count() - labelled_in_delay
        out[f"label_count_by_terminal_{days}d"] = labelled.to_numpy()
        out[f"fraud_rate_by_terminal_{days}d"] = (frauds / labelled).to_numpy()
    return out.fillna(0)  # no labelled payment in the window: risk 0, as the Handbook does


def _label_delay(frame: pd.DataFrame) -> pd.Timedelta:
    delays = (frame["reported_at"] - frame["ts"]).dropna().unique()
    if len(delays) != 1:
        raise ConfigError("the pandas baseline needs one label delay for every labelled "
                          f"payment (the Handbook's 7 days); found {len(delays)} different")
    return pd.Timedelta(delays[0])


def handbook_features_pandas(payments: pa.Table, labels: pa.Table) -> pa.Table:
    """The 15 features of :func:`vigil.features.handbook_baseline`, computed with pandas.

    Same layout as :func:`vigil.features.build_features`: ``payment_id``, ``ts`` and the 15
    float64 columns in the same order, rows in ``(ts, payment_id)`` order. See the module
    docstring for where its windows differ from vigil's at ties.
    """
    df = payments.select(["payment_id", "ts", "amount", "card_id", "terminal_id"]).to_pandas()
    df = df.sort_values(["ts", "payment_id"], kind="stable").reset_index(drop=True)
    lab = labels.select(["payment_id", "is_fraud", "reported_at"]).to_pandas()
    lab = lab.groupby("payment_id").agg(fraud=("is_fraud", "max"),
                                        reported_at=("reported_at", "min"))
    df = df.join(lab, on="payment_id")
    df["fraud"] = df["fraud"].astype("float64")  # NaN where a payment has no label
    delay = _label_delay(df)

    out = pd.DataFrame({"payment_id": df["payment_id"], "ts": df["ts"]})
    out["amount"] = df["amount"].astype("float64")
    out["is_weekend"] = (df["ts"].dt.day_of_week >= 5).astype("float64")
    out["is_night"] = (df["ts"].dt.hour <= 6).astype("float64")

    card = df.groupby("card_id", group_keys=False)[["ts", "amount"]].apply(_card_features)
    terminal = df.groupby("terminal_id", group_keys=False)[["ts", "fraud"]].apply(
        _terminal_features, delay)
    out = out.join(card).join(terminal)  # rows without a card or terminal stay NaN

    names = ["amount", "is_weekend", "is_night"]
    for days in _WINDOWS_DAYS:
        names += [f"count_by_card_{days}d", f"amount_mean_by_card_{days}d"]
    for days in _WINDOWS_DAYS:
        names += [f"label_count_by_terminal_{days}d", f"fraud_rate_by_terminal_{days}d"]
    arrays = [pa.array(out["payment_id"], pa.string()),
              pa.array(out["ts"]).cast(pa.timestamp("us", tz="UTC"))]
    arrays += [pa.array(out[n].to_numpy(dtype="float64"), pa.float64()) for n in names]
    return pa.table(arrays, names=["payment_id", "ts", *names])
