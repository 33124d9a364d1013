"""Arrow schemas of the events vigil stores: payments, labels and simulator ground truth.

Timestamps are UTC with microsecond precision. Amounts are in the currency's major unit
(``12.50`` EUR), as a float, with the ISO 4217 code beside them. Identifiers are strings,
whatever the source used.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")

LABEL_KINDS = ("dispute", "fraud_report", "review_outcome")
"""Where a label comes from: a chargeback dispute, a fraud report (issuer or cardholder,
including early fraud warnings), or the outcome of a manual review."""

CHANNELS = ("card_present", "card_not_present")


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


def _schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type, nullable=not c.required) for c in columns])


PAYMENT_SCHEMA = _schema(PAYMENT_COLUMNS)
"""Arrow schema of a payment, as stored in Parquet."""

LABEL_SCHEMA = _schema(LABEL_COLUMNS)
"""Arrow schema of a label (a fraud verdict that arrives late), as stored in Parquet."""

TRUTH_SCHEMA = _schema(TRUTH_COLUMNS)
"""Arrow schema of simulator ground truth. Never a feature: for evaluation only."""
