"""What the identity checks hand each other: the claimed identity, what a document says, a
face comparison, the facts a session leaves for cross-session signals, and the one exception
a check raises when it sends a session back to ``requires_input``.

Error codes follow Stripe Identity's names, so an integrator who knows one knows the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

# every reason a session goes back to requires_input, and what a person is told
ERROR_CODES: dict[str, str] = {
    "document_expired": "The document has expired.",
    "document_unverified_other": "The document could not be verified.",
    "document_type_not_supported": "This kind of document is not accepted for this session.",
    "document_too_young": "The document's holder is younger than the minimum age.",
    "document_mrz_unreadable": "The document's machine-readable zone could not be read.",
    "selfie_face_mismatch": "The selfie does not match the face on the document.",
    "selfie_no_face": "No face was found in the selfie.",
    "selfie_multiple_faces": "More than one face was found in the selfie.",
    "selfie_document_missing_photo": "No face was found on the document's portrait.",
    "selfie_unverified_other": "The selfie could not be verified (for example, too small a face).",
    "id_number_mismatch": "The ID number does not match the name and date of birth.",
    "id_number_invalid": "The ID number is not a valid number for its country.",
    "id_number_unverified_other": "The ID number could not be verified.",
}

# the kinds of document a session can allow (Stripe's names)
DOCUMENT_TYPES = ("passport", "id_card", "driving_license")


class CheckFailed(Exception):
    """A check's verdict that sends the session back to ``requires_input``.

    ``code`` is one of :data:`ERROR_CODES`; ``reason`` says what was seen, for people (it
    must not carry personal data beyond what the session already holds). ``face``: the
    comparison behind a ``selfie_face_mismatch`` (the cross-session signals remember whose
    face was tried on the document).
    """

    def __init__(self, code: str, reason: str, *, face: FaceMatch | None = None):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown verification error code {code!r}")
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.face = face


@dataclass(frozen=True)
class Claimed:
    """What the user (or the integrator) says about who they are; each part optional."""

    name: str | None = None  # "Given Names Surname", as typed
    birth_date: date | None = None
    id_number: str | None = None
    id_number_country: str | None = None  # ISO 3166-1 alpha-2, e.g. "US"


@dataclass(frozen=True)
class DocumentFields:
    """What a document check read and verified (from the MRZ, every check digit agreeing)."""

    document_type: str  # one of DOCUMENT_TYPES
    mrz_format: str  # "TD1", "TD2" or "TD3"
    issuing_country: str  # ICAO 9303 three-letter code, e.g. "UTO", "D<<" normalised to "D"
    document_number: str
    surname: str
    given_names: str
    nationality: str
    birth_date: date
    expiry_date: date | None  # None: the document does not expire
    sex: str  # "M", "F" or "X"
    repaired: int = 0  # how many characters the OCR repair changed

    @property
    def full_name(self) -> str:
        return f"{self.given_names} {self.surname}".strip()


@dataclass(frozen=True)
class FaceMatch:
    """A selfie compared with the document's portrait (128-d dlib embeddings)."""

    distance: float  # Euclidean distance between the two embeddings
    threshold: float  # the distance at and above which the faces are different people
    document_embedding: np.ndarray
    selfie_embedding: np.ndarray

    @property
    def same_person(self) -> bool:
        return self.distance < self.threshold


@dataclass(frozen=True)
class SessionFacts:
    """What one processed verification session leaves behind for cross-session signals."""

    session_id: str
    tenant: str
    created_at: datetime
    outcome: str  # "verified" or "requires_input"
    error_code: str | None = None
    account_id: str | None = None
    device_id: str | None = None
    ip: str | None = None
    email: str | None = None
    document_number: str | None = None
    document_country: str | None = None
    name: str | None = None
    birth_date: date | None = None
    face_embedding: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Insight:
    """A cross-session fraud signal shown on a session, as Stripe shows its insights."""

    kind: str  # e.g. "document_reused", "face_reused", "device_many_sessions", "retries"
    level: str  # "low", "elevated" or "high"
    detail: str  # a sentence for people, e.g. "this face verified 3 other identities"
    related_sessions: tuple[str, ...] = ()
