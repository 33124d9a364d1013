"""Adapter for the Fraud Detection Handbook's simulated transactions.

Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud Detection — Practical
Handbook*: nine columns per transaction. Mapped to vigil's events as the benchmark
protocol prescribes: CUSTOMER_ID is the card (and the customer), TERMINAL_ID the terminal
(and the merchant), and each TX_FRAUD becomes a label reported a fixed delay (7 days in the
benchmark) after the transaction. TX_FRAUD_SCENARIO becomes ground truth, never a feature.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from vigil._errors import SchemaError
from vigil.events._dataset import EventData
from vigil.events._io import data_files, read_file, validate_labels, validate_payments
from vigil.events._schema import TIMESTAMP

HANDBOOK_COLUMNS = ("TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID",
                    "TX_AMOUNT", "TX_FRAUD", "TX_FRAUD_SCENARIO")

HANDBOOK_SCENARIOS = {0: "legit", 1: "large_amount", 2: "compromised_terminal",
                      3: "compromised_card"}
"""TX_FRAUD_SCENARIO codes: 1 amount over 220, 2 terminal compromised for 28 days,
3 card compromised for 14 days with a third of its payments multiplied by 5."""


def read_handbook(path: str | Path, *, label_delay: timedelta = timedelta(days=7),
                  currency: str = "EUR") -> EventData:
    """Read the Handbook's transactions (Parquet or CSV) as vigil payments, labels and truth.

    Every transaction gets a label reported ``label_delay`` after it, as the benchmark
    assumes investigators report back: ``fraud_report`` for TX_FRAUD 1, ``review_outcome``
    (not fraud) for 0.
    Naive timestamps are taken as UTC.
    """
    files = data_files(path)
    raw = pa.concat_tables([read_file(f) for f in files]) if len(files) > 1 else read_file(files[0])
    source = str(path)
    missing = [c for c in HANDBOOK_COLUMNS if c not in raw.column_names]
    if missing:
        raise SchemaError(f"not the Handbook format: missing column(s) {', '.join(missing)}",
                          source=source)
    ids = pc.cast(raw.column("TRANSACTION_ID"), pa.string())
    card = pc.cast(raw.column("CUSTOMER_ID"), pa.string())
    terminal = pc.cast(raw.column("TERMINAL_ID"), pa.string())
    n = raw.num_rows
    payments = validate_payments(pa.table({
        "payment_id": ids,
        "ts": raw.column("TX_DATETIME"),
        "amount": raw.column("TX_AMOUNT"),
        "currency": pa.array([currency] * n, pa.string()) if n else pa.array([], pa.string()),
        "card_id": card,
        "customer_id": card,
        "merchant_id": terminal,
        "terminal_id": terminal,
    }), source)
    ts = payments.column("ts")
    is_fraud = pc.cast(raw.column("TX_FRAUD"), pa.bool_())
    fraud = validate_labels(pa.table({
        "payment_id": ids,
        "kind": pc.if_else(pc.fill_null(is_fraud, False), "fraud_report", "review_outcome"),
        "is_fraud": raw.column("TX_FRAUD"),
        "reported_at": pc.add(ts, pa.scalar(label_delay, pa.duration("us"))),
    }), source)
    scenario_codes = pc.cast(raw.column("TX_FRAUD_SCENARIO"), pa.int64()).to_numpy(
        zero_copy_only=False)
    names = [HANDBOOK_SCENARIOS.get(int(c), f"scenario_{int(c)}") for c in range(4)]
    scenario = pa.array([names[c] if 0 <= c < 4 else f"scenario_{c}" for c in scenario_codes],
                        pa.string())
    truth = pa.table({"payment_id": ids, "is_fraud": fraud.column("is_fraud"),
                      "scenario": scenario})
    # keep the original order: the benchmark sorts by TRANSACTION_ID, which is time order here
    assert payments.schema.field("ts").type == TIMESTAMP
    return EventData(payments=payments, labels=fraud, truth=truth,
                     info={"source": "fraud-detection-handbook", "path": source,
                           "label_delay_days": label_delay / timedelta(days=1)})
