"""Offline feature engines: whole histories at once, point in time (DuckDB; Spark later)."""

from vigil.features.offline._duckdb import build_features, compile_sql, first_reports

__all__ = ["build_features", "compile_sql", "first_reports"]
