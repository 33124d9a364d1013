"""Identity verification: verification sessions with document, selfie and ID-number checks,
and the identity-fraud signals that only many sessions together reveal.

The face and OCR engines (dlib, RapidOCR) are the optional ``identity`` extra
(``pip install vigil[identity]``); this package imports them only where a check runs.
"""

from vigil.identity._crypto import KeyRing, SealError, new_key
from vigil.identity._document_check import check_document
from vigil.identity._face_index import FaceIndex
from vigil.identity._faces import MATCH_THRESHOLD, FaceModel, check_selfie
from vigil.identity._graph import FEATURES as GRAPH_FEATURES
from vigil.identity._graph import identity_graph_features
from vigil.identity._id_numbers import (
    MemoryReferenceSource,
    ReferenceRecord,
    ReferenceSource,
    check_id_number,
    validate_id_number,
)
from vigil.identity._images import ImageError, load_rgb
from vigil.identity._sessions import (
    MAX_FILE_BYTES,
    PURPOSES,
    CheckCrashed,
    Checks,
    DefaultChecks,
    Outcome,
    SessionInputError,
    SessionRequest,
    Signals,
    StoreReferenceSource,
    VerificationSessions,
    claimed_from_dict,
    run_checks,
)
from vigil.identity._signals import FEATURE_NAMES as SIGNAL_FEATURES
from vigil.identity._signals import IdentitySignals
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
from vigil.identity._worker import Worker

__all__ = [
    "DOCUMENT_TYPES",
    "ERROR_CODES",
    "GRAPH_FEATURES",
    "MATCH_THRESHOLD",
    "MAX_FILE_BYTES",
    "PURPOSES",
    "SIGNAL_FEATURES",
    "CheckCrashed",
    "CheckFailed",
    "Checks",
    "Claimed",
    "DefaultChecks",
    "DocumentFields",
    "FaceIndex",
    "FaceMatch",
    "FaceModel",
    "IdentitySignals",
    "ImageError",
    "Insight",
    "KeyRing",
    "MemoryReferenceSource",
    "Outcome",
    "ReferenceRecord",
    "ReferenceSource",
    "SealError",
    "SessionFacts",
    "SessionInputError",
    "SessionRequest",
    "Signals",
    "StoreReferenceSource",
    "VerificationSessions",
    "Worker",
    "check_document",
    "check_id_number",
    "check_selfie",
    "claimed_from_dict",
    "identity_graph_features",
    "load_rgb",
    "new_key",
    "run_checks",
    "validate_id_number",
]
