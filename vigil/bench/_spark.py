"""DuckDB against Spark on a realistic world: the same feature set (vigil's default, 40
features, label-aware ones included), read from the dataset folder and written back as
Parquet, end to end.

Each engine runs in a process of its own (``python -m vigil.bench._spark ENGINE ...``), so
its peak memory is its own: for DuckDB the process's, for Spark local mode the JVM's (the
driver and its executor are one JVM there). Spark runs at ``local[1]`` and ``local[2]`` to
show how it scales with cores; its output is checked equal to DuckDB's.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vigil.bench._machine import machine_info, machine_line


def _peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident memory of a process (VmHWM), in MB; of this one by default."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover


def _run_duckdb(data: Path, out: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from vigil.events import open_dataset
    from vigil.features import build_features, payments_default

    t0 = time.perf_counter()
    dataset = open_dataset(data)
    t1 = time.perf_counter()
    table = build_features(payments_default(), dataset.payments, dataset.labels)
    t2 = time.perf_counter()
    pq.write_table(table, out / "features.parquet", compression="zstd")
    t3 = time.perf_counter()
    return {"seconds": t3 - t0, "read_s": t1 - t0, "compute_s": t2 - t1, "write_s": t3 - t2,
            "payments": dataset.payments.num_rows, "peak_rss_mb": _peak_rss_mb()}


def _run_spark(data: Path, out: Path, master: str, memory: str) -> dict[str, Any]:
    from vigil.features import payments_default
    from vigil.features.offline import (
        read_dataset_spark,
        spark_features,
        spark_session,
        write_features_by_day,
    )

    t0 = time.perf_counter()
    spark = spark_session(master, conf={"spark.driver.memory": memory})
    t1 = time.perf_counter()
    payments, labels = read_dataset_spark(spark, data)
    write_features_by_day(spark_features(payments_default(), payments, labels),
                          out / "features")
    t2 = time.perf_counter()
    jvm = spark.sparkContext._gateway.proc.pid  # type: ignore[union-attr]
    peak = _peak_rss_mb(jvm)
    spark.stop()
    return {"seconds": t2 - t0, "startup_s": t1 - t0, "job_s": t2 - t1,
            "peak_rss_mb": peak, "driver_memory": memory}


def _same_features(duck: Path, spark_out: Path) -> dict[str, Any]:
    """Compare the two outputs column by column (counts exact, the rest to 1e-9)."""
    import numpy as np
    import pyarrow.parquet as pq

    a = pq.read_table(duck)
    b = pq.read_table(spark_out).drop_columns(["date"]).sort_by(
        [("ts", "ascending"), ("payment_id", "ascending")])
    if a.num_rows != b.num_rows or not a.column("payment_id").equals(b.column("payment_id")):
        return {"identical": False, "why": "rows differ"}
    worst = 0.0
    for name in a.column_names[2:]:
        x = a.column(name).to_numpy(zero_copy_only=False).astype(float)
        y = b.column(name).to_numpy(zero_copy_only=False).astype(float)
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            return {"identical": False, "why": f"{name}: missing values differ"}
        ok = ~np.isnan(x)
        scale = np.maximum(np.abs(x[ok]), 1e-300)
        worst = max(worst, float(np.max(np.abs(x[ok] - y[ok]) / scale, initial=0.0)))
    return {"identical": worst <= 1e-9, "max_relative_difference": worst}


def run_spark_benchmark(*, preset: str = "medium", data: str | Path | None = None,
                        out_dir: str | Path = "bench/results", memory: str = "8g",
                        timeout: float | None = None,
                        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; write ``spark_PRESET.json`` and ``.md`` in ``out_dir``.

    An engine that runs past ``timeout`` seconds is stopped and recorded as not finished.
    """
    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-spark-") as tmp:
        work = Path(tmp)
        if data is None:
            from vigil.simulate.realistic import RealisticWorld

            say(f"simulating the {preset} preset")
            world = RealisticWorld.preset(preset)
            data = work / "world"
            world.simulate_to(data, RealisticWorld.preset_days(preset), start="2024-01-01",
                              seed=7)  # written as it is made: the large preset in bounded memory
        data = Path(data)
        runs: dict[str, Any] = {}
        for name, args in (("duckdb", ["duckdb"]), ("spark local[1]", ["spark", "local[1]"]),
                           ("spark local[2]", ["spark", "local[2]"])):
            out = work / name.replace(" ", "_").replace("[", "").replace("]", "")
            out.mkdir()
            say(f"{name} ...")
            try:
                proc = subprocess.run([sys.executable, "-m", "vigil.bench._spark", *args,
                                       str(data), str(out), memory], capture_output=True,
                                      text=True, check=False, timeout=timeout)
            except subprocess.TimeoutExpired:
                runs[name] = {"finished": False, "timeout_s": timeout}
                say(f"  stopped: not finished within {timeout:.0f} s")
                continue
            if proc.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
            runs[name] = {"finished": True, **json.loads(proc.stdout.strip().splitlines()[-1])}
            runs[name]["output"] = str(out)
            say(f"  {runs[name]['seconds']:.1f} s, peak memory "
                f"{runs[name]['peak_rss_mb']:,.0f} MB")
        spark_done = [n for n in ("spark local[2]", "spark local[1]")
                      if runs[n].get("finished")]
        check: dict[str, Any] = {"identical": None, "why": "no Spark run finished"}
        if spark_done and runs["duckdb"].get("finished"):
            say(f"checking {spark_done[0]}'s features equal DuckDB's")
            check = _same_features(Path(runs["duckdb"]["output"]) / "features.parquet",
                                   Path(runs[spark_done[0]]["output"]) / "features")
    for r in runs.values():
        r.pop("output", None)
    result = {"machine": machine_info(), "preset": preset,
              "payments": runs["duckdb"]["payments"], "features": 40, "runs": runs,
              "spark_equals_duckdb": check}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"spark_{preset}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"spark_{preset}.md").write_text(spark_markdown(result))
    return result


def spark_markdown(result: dict[str, Any]) -> str:
    runs = result["runs"]
    duck = runs["duckdb"].get("seconds", float("nan"))
    lines = [f"# DuckDB against Spark ({result['preset']} preset, "
             f"{result['payments']:,} payments, {result['features']} features)", "",
             f"Measured {machine_line(result['machine'])}.", "",
             "| engine | seconds (read, compute, write) | payments/s | time against DuckDB "
             "| peak memory |", "|---|---|---|---|---|"]
    for name, r in runs.items():
        if not r.get("finished", True):
            lines.append(f"| {name} | not finished in {r['timeout_s']:,.0f} s | | | |")
            continue
        lines.append(f"| {name} | {r['seconds']:.1f} | {result['payments'] / r['seconds']:,.0f} "
                     f"| {r['seconds'] / duck:.1f}× | {r['peak_rss_mb']:,.0f} MB |")
    one, two = runs["spark local[1]"], runs["spark local[2]"]
    if one.get("finished", True) and two.get("finished", True):
        lines += ["", f"Spark from 1 to 2 cores: {one['job_s'] / two['job_s']:.2f}× faster (job "
                      f"time, start-up excluded: {one['job_s']:.1f} s and {two['job_s']:.1f} s)."]
    check = result["spark_equals_duckdb"]
    verdict = {True: "yes", False: "NO", None: "not checked"}[check["identical"]]
    lines += ["", f"Spark's features equal DuckDB's: {verdict} (largest relative difference "
                  f"{check.get('max_relative_difference', 0):.1e}).", ""]
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    engine, *rest = argv
    if engine == "duckdb":
        data, out, _memory = rest
        result = _run_duckdb(Path(data), Path(out))
    else:
        master, data, out, memory = rest
        result = _run_spark(Path(data), Path(out), master, memory)
    print(json.dumps(result))


if __name__ == "__main__":
    _main(sys.argv[1:])
