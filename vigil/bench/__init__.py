"""Benchmarks: each prints a table and writes ``bench/results/NAME.json``."""

from vigil.bench._handbook import handbook_markdown, run_handbook_benchmark
from vigil.bench._machine import machine_info, machine_line
from vigil.bench._speed import run_speed_benchmark, speed_markdown

__all__ = [
    "handbook_markdown",
    "machine_info",
    "machine_line",
    "run_handbook_benchmark",
    "run_speed_benchmark",
    "speed_markdown",
]
