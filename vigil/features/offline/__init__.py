"""Offline feature engines: whole histories at once, point in time, on DuckDB (one machine)
or Spark (past one machine; PySpark is imported only when a Spark function is called)."""

from vigil.features.offline._duckdb import build_features, compile_sql, first_reports
from vigil.features.offline._spark import (
    build_features_spark,
    read_dataset_spark,
    spark_features,
    spark_job,
    spark_session,
    write_features_by_day,
)

__all__ = [
    "build_features",
    "build_features_spark",
    "compile_sql",
    "first_reports",
    "read_dataset_spark",
    "spark_features",
    "spark_job",
    "spark_session",
    "write_features_by_day",
]
