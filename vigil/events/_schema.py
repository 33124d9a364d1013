"""Arrow schemas of the events vigil stores: payments, labels, accounts and their events,
identity verification sessions, and simulator ground truth.

Timestamps are UTC with microsecond precision; dates (of birth, of expiry) are calendar dates.
Amounts are in the currency's major unit (``12.50`` EUR), as a float, with the ISO 4217 code
beside them. Identifiers are strings, whatever the source used.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")

LABEL_KINDS = ("dispute", "fraud_report", "review_outcome")
"""Where a label comes from: a chargeback dispute, a fraud report (issuer or cardholder,
including early fraud warnings), or the outcome of a manual review."""

CHANNELS = ("card_present", "card_not_present")

PAYMENT_STATUSES = ("authorized", "declined")
"""The issuer's answer to a payment."""

OUTCOME_COLUMNS = ("status",)
"""Payment columns known only after the payment was scored (the issuer answers after vigil
decides): never a feature, never a rule input."""

ACCOUNT_EVENT_KINDS = ("login", "email_change", "password_change")
"""What happened to an account: a login attempt, or a change of its e-mail or password."""

VERIFICATION_REASONS = ("signup", "step_up")
"""Why an identity verification session was held: at sign-up, or asked for later (step-up)."""

DOCUMENT_TYPES = ("passport", "id_card", "driving_license")

FACE_EMBEDDING_DIM = 32
"""Length of a face embedding (unit norm): the same face gives near-identical vectors."""

DATE = pa.date32()


@dataclass(frozen=True)
class Column:
    """One column of an event schema: its Arrow type, whether it may be null, and its meaning."""

    name: str
    type: pa.DataType
    required: bool
    doc: str


PAYMENT_COLUMNS: tuple[Column, ...] = (
    Column("payment_id", pa.string(), True, "unique id of the payment"),
    Column("ts", TIMESTAMP, True, "when the payment was attempted (UTC)"),
    Column("amount", pa.float64(), True, "amount in the currency's major unit, >= 0"),
    Column("currency", pa.string(), True, "ISO 4217 code, three upper-case letters"),
    Column("card_id", pa.string(), True, "the card (or its fingerprint)"),
    Column("customer_id", pa.string(), True, "the customer who holds the card"),
    Column("merchant_id", pa.string(), True, "the merchant"),
    Column("terminal_id", pa.string(), False, "the merchant's terminal, where there is one"),
    Column("device_id", pa.string(), False, "device fingerprint"),
    Column("ip", pa.string(), False, "IP address"),
    Column("email", pa.string(), False, "e-mail address (or its hash)"),
    Column("card_country", pa.string(), False, "ISO 3166-1 alpha-2 country of the card's issuer"),
    Column("ip_country", pa.string(), False, "country of the IP address"),
    Column("merchant_country", pa.string(), False, "country of the merchant"),
    Column("channel", pa.string(), False, "card_present or card_not_present"),
    Column("account_id", pa.string(), False,
           "the account the payment was made through (logged in); null in person and for "
           "a guest checkout"),
    Column("status", pa.string(), False,
           "the issuer's answer, authorized or declined; known only after scoring, so never "
           "a feature"),
)

LABEL_COLUMNS: tuple[Column, ...] = (
    Column("payment_id", pa.string(), True, "the payment the label is about"),
    Column("kind", pa.string(), True, "dispute, fraud_report or review_outcome"),
    Column("is_fraud", pa.bool_(), True, "whether the label says the payment was fraud"),
    Column("reported_at", TIMESTAMP, True, "when the label became known (UTC)"),
)

TRUTH_COLUMNS: tuple[Column, ...] = (
    Column("payment_id", pa.string(), True, "the payment"),
    Column("is_fraud", pa.bool_(), True, "ground truth: was it fraud"),
    Column("scenario", pa.string(), True, "the fraud scenario that produced it, or 'legit'"),
)


ACCOUNT_COLUMNS: tuple[Column, ...] = (
    Column("account_id", pa.string(), True, "unique id of the account"),
    Column("customer_id", pa.string(), True, "the customer (person) the account belongs to"),
    Column("created_at", TIMESTAMP, True, "when the account was signed up for (UTC)"),
    Column("email", pa.string(), False, "e-mail address given at sign-up"),
    Column("name", pa.string(), False, "full name, as claimed at sign-up"),
    Column("date_of_birth", DATE, False, "date of birth, as claimed at sign-up"),
    Column("country", pa.string(), False, "country of residence, as claimed at sign-up"),
    Column("address_hash", pa.string(), False,
           "SHA-256 (hex) of the normalised postal address claimed at sign-up"),
    Column("device_id", pa.string(), False, "device fingerprint of the sign-up"),
    Column("ip", pa.string(), False, "IP address of the sign-up"),
    Column("ip_country", pa.string(), False, "country of that IP address"),
)

ACCOUNT_EVENT_COLUMNS: tuple[Column, ...] = (
    Column("event_id", pa.string(), True, "unique id of the event"),
    Column("account_id", pa.string(), True, "the account"),
    Column("ts", TIMESTAMP, True, "when it happened (UTC)"),
    Column("kind", pa.string(), True, "login, email_change or password_change"),
    Column("success", pa.bool_(), True,
           "whether it succeeded (a login with a wrong password does not)"),
    Column("device_id", pa.string(), False, "device fingerprint"),
    Column("ip", pa.string(), False, "IP address"),
    Column("ip_country", pa.string(), False, "country of the IP address"),
    Column("email", pa.string(), False, "the new e-mail address of an email_change, else null"),
)

VERIFICATION_COLUMNS: tuple[Column, ...] = (
    Column("session_id", pa.string(), True, "unique id of the verification session"),
    Column("account_id", pa.string(), True, "the account being verified"),
    Column("created_at", TIMESTAMP, True, "when the session was held (UTC)"),
    Column("reason", pa.string(), True, "signup, or step_up (asked for later)"),
    Column("document_type", pa.string(), True, "passport, id_card or driving_license"),
    Column("issuing_country", pa.string(), False, "ISO 3166-1 alpha-2 issuer of the document"),
    Column("document_number_hash", pa.string(), False,
           "SHA-256 (hex) of the document number (the number itself is never stored)"),
    Column("claimed_name", pa.string(), False, "full name the person typed in"),
    Column("claimed_date_of_birth", DATE, False, "date of birth the person typed in"),
    Column("document_name", pa.string(), False, "full name read from the document (OCR)"),
    Column("document_date_of_birth", DATE, False, "date of birth read from the document"),
    Column("document_expiry", DATE, False, "expiry date read from the document"),
    Column("face_match_score", pa.float64(), False,
           "0..1: how well the selfie matches the document's photo (vendor's vision model)"),
    Column("liveness_score", pa.float64(), False,
           "0..1: how sure the vendor is that a live person took the selfie"),
    Column("liveness_passed", pa.bool_(), False, "the vendor's liveness verdict"),
    Column("face_embedding", pa.list_(pa.float32(), FACE_EMBEDDING_DIM), False,
           f"the selfie's face as a unit vector of {FACE_EMBEDDING_DIM} floats: the same "
           "face gives near-identical vectors in every session"),
    Column("device_id", pa.string(), False, "device fingerprint of the session"),
    Column("ip", pa.string(), False, "IP address of the session"),
    Column("ip_country", pa.string(), False, "country of that IP address"),
)

IDENTITY_TRUTH_COLUMNS: tuple[Column, ...] = (
    Column("table_name", pa.string(), True,
           "accounts, account_events or verification_sessions"),
    Column("record_id", pa.string(), True,
           "the row's id in that table (account_id, event_id or session_id)"),
    Column("is_fraud", pa.bool_(), True, "ground truth: did a fraudster do it"),
    Column("scenario", pa.string(), True, "the fraud scenario that produced it, or 'legit'"),
    Column("incident", pa.int64(), False,
           "number of the scenario's incident (a ring, a takeover) it belongs to"),
)

IDENTITY_TABLES = ("accounts", "account_events", "verification_sessions")
"""The identity tables a dataset may hold, as named in its folder and in identity truth."""


def _schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type, nullable=not c.required) for c in columns])


PAYMENT_SCHEMA = _schema(PAYMENT_COLUMNS)
"""Arrow schema of a payment, as stored in Parquet."""

LABEL_SCHEMA = _schema(LABEL_COLUMNS)
"""Arrow schema of a label (a fraud verdict that arrives late), as stored in Parquet."""

TRUTH_SCHEMA = _schema(TRUTH_COLUMNS)
"""Arrow schema of simulator ground truth. Never a feature: for evaluation only."""

ACCOUNT_SCHEMA = _schema(ACCOUNT_COLUMNS)
"""Arrow schema of an account: one row per sign-up."""

ACCOUNT_EVENT_SCHEMA = _schema(ACCOUNT_EVENT_COLUMNS)
"""Arrow schema of an account event: a login or a change of e-mail or password."""

VERIFICATION_SCHEMA = _schema(VERIFICATION_COLUMNS)
"""Arrow schema of an identity verification session (document check, selfie, liveness)."""

IDENTITY_TRUTH_SCHEMA = _schema(IDENTITY_TRUTH_COLUMNS)
"""Arrow schema of simulator ground truth for the identity tables. Never a feature."""
