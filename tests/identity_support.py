"""What the identity tests need that a laptop may lack: the ``identity`` extra, Debian's OCR-B
font and the shared face photographs. Without them the tests skip with the reason; under
``.ci/run`` (``VIGIL_REQUIRE_IDENTITY=1``) they fail instead, so CI cannot pass by skipping.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

OCR_B_FONT = Path("/usr/share/fonts/opentype/ocr-b/OCRB.otf")
FACES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"


def _missing(what: str) -> None:
    if os.environ.get("VIGIL_REQUIRE_IDENTITY"):
        pytest.fail(f"VIGIL_REQUIRE_IDENTITY is set but {what}")
    pytest.skip(what)


def require_modules(*names: str) -> None:
    """Skip (or, under CI, fail) unless every module in ``names`` can be imported."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            _missing(f"{name} is not installed (pip install 'vigil[identity]')")


def require_ocr_b_font() -> Path:
    if not OCR_B_FONT.exists():
        _missing(f"{OCR_B_FONT} is missing (apt-get install fonts-ocr-b)")
    return OCR_B_FONT


def require_faces() -> Path:
    """The shared face photographs (../shared/data/faces; never copied into the repo)."""
    if not FACES_DIR.is_dir():
        _missing(f"the shared face photographs are not at {FACES_DIR}")
    return FACES_DIR
