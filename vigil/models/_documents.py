"""The JSON records beside saved models (``bundle.json``, ``sequence.json``): read with a
format check, and the SHA-256 of the files they list."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vigil._errors import ModelError


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_record(path: Path, *, what: str, version: int, missing: str) -> dict[str, Any]:
    """``path`` as JSON, when it exists, parses, and has ``"format": version``; otherwise a
    :class:`~vigil.ModelError` (``missing`` says what the folder is not, and how to make one)."""
    if not path.is_file():
        raise ModelError(f"{path.parent}: {missing}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc
    if doc.get("format") != version:
        raise ModelError(f"{path}: {what} format {doc.get('format')!r} is not supported "
                         f"(this vigil reads format {version})")
    return doc
