"""The Spark engine: the same features as DuckDB on random event streams (ties, pre-epoch
times, window edges, late and repeated labels) and on a generated world; day partitions in
and out; training on Spark into a bundle that serves; a real standalone cluster.

Spark starts slowly, so the tests are few and share one local[2] session. They skip without
PySpark, except under .ci/run (VIGIL_REQUIRE_SPARK=1), where they must run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_features_point_in_time import FEATURES, assert_tables_equal, event_streams

from vigil._errors import ConfigError
from vigil.cli import main
from vigil.features import build_features, handbook_baseline, payments_default

if os.environ.get("VIGIL_REQUIRE_SPARK"):
    import pyspark  # noqa: F401  (must be installed here)
else:
    pytest.importorskip("pyspark", reason="PySpark is not installed (pip install 'vigil[spark]')")

from vigil.features.offline import build_features_spark, spark_session
from vigil.features.offline._spark import arrow_to_spark


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]", conf={"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from vigil.events import write_dataset
    from vigil.simulate import HandbookWorld

    data = HandbookWorld(n_cards=200, n_terminals=400).simulate(30, start="2024-01-01", seed=4)
    folder = tmp_path_factory.mktemp("world")
    write_dataset(data, folder)
    return data, folder


def _disjoint(streams: list[tuple[pa.Table, pa.Table]]) -> tuple[pa.Table, pa.Table]:
    """Many small streams as one dataset: each stream's ids and entities get a prefix of
    their own, so the streams share no window and one Spark job checks them all."""
    payments, labels = [], []
    for i, (p, lab) in enumerate(streams):
        def prefixed(table: pa.Table, column: str, i: int = i) -> pa.Table:
            values = pc.binary_join_element_wise(pa.scalar(f"s{i}_"), table.column(column), "")
            return table.set_column(table.column_names.index(column), column, values)

        for column in ("payment_id", "card_id", "customer_id", "terminal_id", "device_id"):
            p = prefixed(p, column)
        payments.append(p)
        labels.append(prefixed(lab, "payment_id"))
    return pa.concat_tables(payments), pa.concat_tables(labels)


@settings(max_examples=3, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams=st.lists(event_streams(max_payments=25), min_size=15, max_size=15))
def test_spark_equals_duckdb_on_random_streams(spark, streams):
    """Every feature kind (243 features): counts exactly, sums and means to 1e-9."""
    payments, labels = _disjoint(streams)
    duck = build_features(FEATURES, payments, labels)
    assert_tables_equal(build_features_spark(FEATURES, payments, labels, spark=spark), duck,
                        FEATURES)


def test_spark_equals_duckdb_on_a_generated_world(spark, world):
    data, _ = world
    for fs in (handbook_baseline(), payments_default()):
        duck = build_features(fs, data.payments, data.labels)
        assert_tables_equal(build_features_spark(fs, data.payments, data.labels, spark=spark),
                            duck, fs)


def test_arrow_tables_with_empty_chunks_lose_no_rows(spark):
    table = pa.table({"a": pa.array([1, 2, 3])})
    chunked = pa.concat_tables([table, table.slice(0, 0), table])
    assert arrow_to_spark(spark, chunked).count() == 6


def _read_partitions(folder: Path) -> pa.Table:
    table = pq.read_table(folder)
    return table.drop_columns(["date"]).sort_by([("ts", "ascending"),
                                                 ("payment_id", "ascending")])


def test_cli_builds_day_partitions_equal_to_duckdb(spark, world, tmp_path):
    data, folder = world
    out = tmp_path / "features"
    result = CliRunner().invoke(main, ["features", "build", "--data", str(folder),
                                       "--engine", "spark", "--out", str(out)])
    assert result.exit_code == 0, result.output
    days = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert days[0] == "date=2024-01-01" and len(days) == 30
    fs = payments_default()
    got = _read_partitions(out)
    want = build_features(fs, data.payments, data.labels)
    assert_tables_equal(got.select(want.column_names), want, fs)
    assert spark.sparkContext._jsc is not None  # the shared session was not stopped


def test_not_a_dataset_folder_is_a_clear_error(spark, tmp_path):
    result = CliRunner().invoke(main, ["features", "build", "--data", str(tmp_path),
                                       "--engine", "spark", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "not a dataset folder" in result.output and "Traceback" not in result.output


def test_training_on_spark_gives_a_bundle_that_serves(spark, world, tmp_path):
    from vigil.features.offline import read_dataset_spark
    from vigil.models import ModelBundle
    from vigil.pipeline import TrainWindow, prepare, train_bundle
    from vigil.pipeline._spark_jobs import train_bundle_spark
    from vigil.scoring import Scorer

    data, folder = world
    day0 = datetime(2024, 1, 1, tzinfo=UTC)
    window = TrainWindow(day0, day0 + timedelta(days=21), day0 + timedelta(days=28),
                         valid_days=5)
    params = {"n_estimators": 40}
    payments, labels = read_dataset_spark(spark, folder)
    on_spark = train_bundle_spark(payments_default(), payments, labels, window, params=params,
                                  num_workers=2)
    one_machine = train_bundle(prepare(data, payments_default()), window, params=params)
    assert on_spark.training["payments"] == one_machine.training["payments"]
    assert on_spark.training["frauds"] == one_machine.training["frauds"]
    a, b = on_spark.metrics["validation"], one_machine.metrics["validation"]
    assert a["payments"] == b["payments"] and a["frauds"] == b["frauds"]
    assert abs(a["ap"] - b["ap"]) < 0.03 and a["auc"] > 0.8
    on_spark.save(tmp_path / "bundle")
    loaded = ModelBundle.load(tmp_path / "bundle")
    assert loaded.training["engine"] == "spark"
    payment = {k: v for k, v in data.payments.slice(0, 1).to_pylist()[0].items()}
    result = Scorer(loaded).score(payment)
    assert 0 <= result.risk_score <= 100 and 0 < result.probability < 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(path: Path, text: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise AssertionError(f"{path.name}: '{text}' not seen in {seconds:.0f} s:\n"
                         + (path.read_text(errors="replace")[-2000:] if path.exists() else ""))


@pytest.mark.slow
def test_a_feature_build_through_a_standalone_cluster(world, tmp_path):
    """A real master and worker on 127.0.0.1, started from the pyspark install; the CLI
    submits to them as a user would, from its own process."""
    import pyspark

    data, folder = world
    home = Path(pyspark.__file__).parent
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(tmp_path), "SPARK_WORKER_DIR": str(tmp_path / "work")}
    port = _free_port()
    master_log, worker_log = tmp_path / "master.log", tmp_path / "worker.log"
    cls = str(home / "bin" / "spark-class")
    procs = []
    try:
        with master_log.open("w") as log:
            procs.append(subprocess.Popen(
                [cls, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                 "--port", str(port), "--webui-port", str(_free_port())],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_for(master_log, "I have been elected leader", 90)
        with worker_log.open("w") as log:
            procs.append(subprocess.Popen(
                [cls, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                 "--cores", "2", "--memory", "2g", "--webui-port", str(_free_port()),
                 f"spark://127.0.0.1:{port}"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_for(worker_log, "Successfully registered with master", 90)
        out = tmp_path / "features"
        vigil = shutil.which("vigil", path=str(Path(sys.executable).parent)) or "vigil"
        run = subprocess.run(
            [vigil, "features", "build", "--data", str(folder), "--engine", "spark",
             "--master", f"spark://127.0.0.1:{port}", "--out", str(out)],
            env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        assert "Launching executor" in master_log.read_text()  # the cluster did the work
        fs = payments_default()
        want = build_features(fs, data.payments, data.labels)
        assert_tables_equal(_read_partitions(out).select(want.column_names), want, fs)
    finally:
        for proc in procs:
            os.killpg(proc.pid, 15)
        for proc in procs:
            proc.wait(timeout=30)


def test_read_dataset_spark_checks_column_types(spark, tmp_path):
    from vigil._errors import SchemaError
    from vigil.features.offline import read_dataset_spark

    (tmp_path / "payments" / "date=2024-01-01").mkdir(parents=True)
    pq.write_table(pa.table({"payment_id": ["p1"], "ts": ["not a time"]}),
                   tmp_path / "payments" / "date=2024-01-01" / "part-0.parquet")
    pq.write_table(pa.table({"payment_id": ["p1"], "is_fraud": [True],
                             "reported_at": pa.array([datetime(2024, 1, 2, tzinfo=UTC)])}),
                   tmp_path / "labels.parquet")
    with pytest.raises(SchemaError, match="column 'ts' is string, expected timestamp"):
        read_dataset_spark(spark, tmp_path)
    with pytest.raises(ConfigError, match="not a dataset folder"):
        read_dataset_spark(spark, tmp_path / "payments")
