"""Identity verification: verification sessions with document, selfie and ID-number checks,
and the identity-fraud signals that only many sessions together reveal.

The face and OCR engines (dlib, RapidOCR) are the optional ``identity`` extra
(``pip install vigil[identity]``); this package imports them only where a check runs.
"""

from vigil.identity._types import (
    DOCUMENT_TYPES,
    ERROR_CODES,
    CheckFailed,
    Claimed,
    DocumentFields,
    FaceMatch,
    Insight,
    SessionFacts,
)

__all__ = [
    "DOCUMENT_TYPES",
    "ERROR_CODES",
    "CheckFailed",
    "Claimed",
    "DocumentFields",
    "FaceMatch",
    "Insight",
    "SessionFacts",
]
