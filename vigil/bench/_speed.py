"""Speed of the offline path, against the usual approach, on the Handbook's 1.75 M payments.

- features: the Handbook's 15 baseline features with the DuckDB engine, against the same
  features in plain pandas ``groupby().rolling()`` (the Handbook notebooks' way), same run;
- training: one Handbook fold (7 days, about 67,000 payments) with vigil's default features
  and model, and with the Handbook's own XGBoost setting.

Medians of ``repeat`` runs. Targets (docs/benchmarks.md): DuckDB at least 10× faster than
pandas and under 10 s; one fold trained in under 30 s.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vigil._errors import DataFileError
from vigil.bench._machine import machine_info, machine_line
from vigil.bench._pandas_baseline import handbook_features_pandas
from vigil.evaluation import in_window, labels_known_at, prequential_folds
from vigil.events import read_handbook
from vigil.features import build_features, handbook_baseline, payments_default
from vigil.models import RiskModel
from vigil.pipeline import prepare


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def run_speed_benchmark(data_path: str | Path, *, out_dir: str | Path = "bench/results",
                        repeat: int = 3,
                        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; write ``speed.json`` and ``speed.md`` in ``out_dir``."""
    say = progress or (lambda _m: None)
    data_path = Path(data_path)
    if not data_path.exists():
        raise DataFileError(f"{data_path}: no such file; pass the Handbook's "
                            "transactions.parquet")
    data = read_handbook(data_path)
    n = data.payments.num_rows
    fs = handbook_baseline()
    say(f"DuckDB engine, {len(fs.names)} features x {n:,} payments, {repeat} run(s)")
    duck_times, duck = _timed(lambda: build_features(fs, data.payments, data.labels), repeat)
    say(f"  median {statistics.median(duck_times):.2f} s")
    say(f"pandas groupby().rolling(), same features, {repeat} run(s)")
    pandas_times, pandas = _timed(lambda: handbook_features_pandas(data.payments, data.labels),
                                  repeat)
    say(f"  median {statistics.median(pandas_times):.2f} s")
    diffs = {}
    for name in fs.names:
        a = np.asarray(duck.column(name).to_numpy(zero_copy_only=False), dtype=float)
        b = np.asarray(pandas.column(name).to_numpy(zero_copy_only=False), dtype=float)
        diffs[name] = int(np.sum(~np.isclose(a, b, rtol=1e-9, atol=0, equal_nan=True)))

    fold = prequential_folds("2018-08-15")[0]
    training: dict[str, Any] = {}
    for label, feature_set, params in (
        ("vigil default (payments_default, RiskModel defaults without early stopping)",
         payments_default(), {"n_estimators": 300, "early_stopping_rounds": None}),
        ("Handbook XGBoost (15 inputs, 50 trees, depth 3, exact)", fs,
         {"n_estimators": 50, "learning_rate": 0.3, "max_depth": 3, "tree_method": "exact",
          "base_score": 0.5, "calibration": None, "early_stopping_rounds": None}),
    ):
        prepared = prepare(data, feature_set)
        train = in_window(prepared.ts, fold.train_start, fold.train_end)
        y = labels_known_at(prepared.payments.column("payment_id"), prepared.labels,
                            fold.test_start)[train]
        X = prepared.matrix(train)
        times, _ = _timed(lambda X=X, y=y, p=params, f=feature_set: RiskModel(**p).fit(
            X, y, feature_names=f.names), repeat)
        training[label] = {"rows": int(train.sum()), "features": X.shape[1],
                           "seconds_median": statistics.median(times), "seconds": times}
        say(f"training one fold, {label}: median {statistics.median(times):.2f} s")

    duck_s, pandas_s = statistics.median(duck_times), statistics.median(pandas_times)
    result = {
        "benchmark": "speed",
        "data": {"path": str(data_path), "payments": n},
        "features": {
            "feature_set": fs.name, "n_features": len(fs.names),
            "duckdb_seconds_median": duck_s, "duckdb_seconds": duck_times,
            "pandas_seconds_median": pandas_s, "pandas_seconds": pandas_times,
            "speedup": pandas_s / duck_s,
            "values_differing_from_pandas": diffs,
            "targets": {"speedup_at_least": 10, "duckdb_seconds_under": 10},
        },
        "training_one_fold": training,
        "machine": machine_info(),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "speed.md").write_text(speed_markdown(result))
    return result


def speed_markdown(result: dict[str, Any]) -> str:
    f = result["features"]
    rows = [
        "| what | median | target |",
        "|---|---|---|",
        f"| {f['n_features']} Handbook features × {result['data']['payments']:,} payments, "
        f"DuckDB engine | {f['duckdb_seconds_median']:.2f} s | under 10 s |",
        f"| same, pandas `groupby().rolling()` | {f['pandas_seconds_median']:.2f} s | |",
        f"| speed-up | {f['speedup']:.1f}× | at least 10× |",
    ]
    for label, t in result["training_one_fold"].items():
        rows.append(f"| training one fold ({t['rows']:,} rows, {t['features']} features): "
                    f"{label} | {t['seconds_median']:.2f} s | under 30 s |")
    differing = sum(f["values_differing_from_pandas"].values())
    rows.append("")
    rows.append(f"Values differing between the engines (beyond 1e-9 relative): {differing:,} of "
                f"{f['n_features'] * result['data']['payments']:,} (pandas windows include "
                "other payments at the same instant, and labels reported exactly at the "
                "payment's time; vigil counts neither).")
    rows.append("")
    rows.append(f"Machine: {machine_line(result['machine'])}.")
    return "\n".join(rows) + "\n"
