"""What a benchmark ran on: cores, CPU model, library versions, date."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigil.models import library_versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """A record of the machine and libraries, to store beside every benchmark figure."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": cores,
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "libraries": library_versions(),
    }


def machine_line(info: dict[str, Any]) -> str:
    libs = info["libraries"]
    return (f"{info['date'][:10]}, {info['cores']} cores, {info['cpu']}; python "
            f"{libs['python']}, xgboost {libs['xgboost']}, duckdb {libs['duckdb']}")
