"""Request and response bodies of the scoring API (pydantic): validation names field and reason."""

from __future__ import annotations

import ipaddress
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from vigil.serving._currencies import ISO_4217

MAX_FUTURE = timedelta(minutes=5)  # clock skew allowed for client-given times
_ID = Field(min_length=1, max_length=200)
_COUNTRY = Field(default=None, pattern=r"^[A-Z]{2}$",
                 description="ISO 3166-1 alpha-2 code, e.g. FR")


def _not_future(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value > datetime.now(UTC) + MAX_FUTURE:
        raise ValueError(f"{field} is in the future ({value.isoformat()}); send the time the "
                         "event happened, in UTC")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PaymentIn(_Strict):
    """A payment to score. ``ts`` defaults to now; amounts are in the currency's major unit."""

    payment_id: str = _ID
    ts: AwareDatetime | None = Field(default=None, description="when it happened (UTC)")
    amount: float = Field(ge=0, allow_inf_nan=False, strict=True)
    currency: str = Field(description="ISO 4217 code, e.g. EUR")
    card_id: str = _ID
    customer_id: str = _ID
    merchant_id: str = _ID
    terminal_id: str | None = Field(default=None, max_length=200)
    device_id: str | None = Field(default=None, max_length=200)
    ip: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    card_country: str | None = _COUNTRY
    ip_country: str | None = _COUNTRY
    merchant_country: str | None = _COUNTRY
    channel: str | None = Field(default=None, max_length=50)

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={
        "examples": [{"payment_id": "pay_001", "amount": 42.5, "currency": "EUR",
                      "card_id": "card_9", "customer_id": "cus_9", "merchant_id": "m_1",
                      "terminal_id": "t_1", "email": "ana@example.com",
                      "card_country": "FR", "ip_country": "FR"}]})

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value not in ISO_4217:
            raise ValueError(f"'{value}' is not an ISO 4217 currency code (e.g. EUR, USD)")
        return value

    @field_validator("ts")
    @classmethod
    def _ts(cls, value: datetime | None) -> datetime | None:
        return _not_future(value, "ts")

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"'{value}' is not an IPv4 or IPv6 address") from None
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and (value.count("@") != 1 or value.startswith("@")
                                  or value.endswith("@")):
            raise ValueError(f"'{value}' is not an e-mail address")
        return value.lower() if value is not None else None

    def to_event(self) -> dict[str, Any]:
        event = self.model_dump()
        event["ts"] = (self.ts or datetime.now(UTC)).astimezone(UTC)
        return event


class Reason(BaseModel):
    feature: str
    value: float | None
    contribution: float = Field(description="log-odds this feature added (XGBoost SHAP)")
    sentence: str


class RuleRef(BaseModel):
    id: str
    text: str


class ScoreOut(BaseModel):
    """The decision on a payment."""

    id: str
    risk_score: int = Field(ge=0, le=100)
    risk_level: Literal["normal", "elevated", "highest"]
    probability: float
    decision: Literal["allow", "review", "block", "request_3ds", "request_verification"]
    rule: RuleRef | None
    reasons: list[Reason]
    model_version: str
    timing_us: dict[str, float]


class LabelIn(_Strict):
    """A label that arrived: a dispute, a fraud report or a review outcome."""

    payment_id: str = _ID
    kind: Literal["dispute", "fraud_report", "review_outcome"]
    is_fraud: bool = Field(strict=True)
    reported_at: AwareDatetime | None = Field(default=None, description="default: now")

    @field_validator("reported_at")
    @classmethod
    def _reported(cls, value: datetime | None) -> datetime | None:
        return _not_future(value, "reported_at")

    def to_event(self) -> dict[str, Any]:
        event = self.model_dump()
        event["reported_at"] = (self.reported_at or datetime.now(UTC)).astimezone(UTC)
        return event


class LabelOut(BaseModel):
    payment_id: str
    seq: int


class ReviewClose(_Strict):
    outcome: Literal["approved", "refunded_as_fraud"]


class ListItemIn(_Strict):
    value: str = Field(min_length=1, max_length=320)
    reason: str | None = Field(default=None, max_length=500)


class RulesIn(_Strict):
    """A whole rule set, one rule per line (see docs/rules.md)."""

    rules: str = Field(max_length=60_000, examples=["block if :risk_score: > 75\n"
                                                    "review if :risk_score: > 65"])


class RulesBacktestIn(RulesIn):
    """Rules to replay over the stored history, and whether to compare with those in force."""

    against_current: bool = True


class RulesOut(BaseModel):
    version: int | None
    rules: str


class ApiError(BaseModel):
    """Every error answer: ``{"error": {"type", "message", "errors": [{field, reason}]}}``."""

    error: dict[str, Any]


# identity verification (see docs/identity.md)


class DocumentOptionsIn(_Strict):
    """How the document check runs (Stripe's ``options.document``, plus ``min_age``)."""

    allowed_types: list[Literal["passport", "id_card", "driving_license"]] | None = Field(
        default=None, min_length=1, description="default: all three")
    require_matching_selfie: bool = False
    require_id_number: bool = False
    min_age: int | None = Field(default=None, ge=1, le=150,
                                description="the holder's minimum age in years, e.g. 18")


class VerificationOptionsIn(_Strict):
    document: DocumentOptionsIn | None = None


class ClaimedIn(_Strict):
    """Who the user says they are; compared with what the checks find. Stored encrypted."""

    name: str | None = Field(default=None, max_length=200, description="given names surname")
    dob: date | None = Field(default=None, description="date of birth, YYYY-MM-DD")
    id_number: str | None = Field(default=None, max_length=64)
    id_number_country: str | None = _COUNTRY


class VerificationSessionIn(_Strict):
    """A verification session to create: what to check, what the user claims, and context
    for the cross-session signals (stored encrypted, like ``claimed`` and ``metadata``)."""

    type: Literal["document", "id_number"] = "document"
    options: VerificationOptionsIn | None = None
    claimed: ClaimedIn | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=50)
    account_id: str | None = Field(default=None, max_length=200)
    device_id: str | None = Field(default=None, max_length=200)
    ip: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={
        "examples": [{"type": "document",
                      "options": {"document": {"allowed_types": ["passport", "id_card"],
                                               "require_matching_selfie": True,
                                               "min_age": 18}},
                      "claimed": {"name": "Ana Silva", "dob": "1990-01-31"},
                      "metadata": {"order": "o_123"}, "account_id": "acct_9"}]})

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return PaymentIn._ip(value)  # the same checks as a payment's

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return PaymentIn._email(value)
