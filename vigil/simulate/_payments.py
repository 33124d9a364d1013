"""Payments while a world is being simulated, the Scenario protocol, and the final tables.

Worlds generate payments as plain numpy columns of integer indices (card, terminal, day) and
only turn them into Arrow tables of string ids at the very end: fraud scenarios then work on
fast integer arrays, and the costly string building happens once, vectorised.

Scenarios are small objects that a world applies to its payments one after the other, each
with its own random generator. A later scenario overrides the ``scenario`` of a payment that
an earlier one already marked (the Handbook's precedence), so the order of application is the
order of precedence, lowest first. New scenarios plug in without touching any world.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil.events import LABEL_SCHEMA, PAYMENT_SCHEMA, TIMESTAMP, TRUTH_SCHEMA, EventData

SECONDS_PER_DAY = 86_400
LEGIT = "legit"


@dataclass
class SimulatedPayments:
    """The payments of a world, as mutable numpy columns, in final (time) order.

    Row ``i`` becomes the payment with the ``i``-th id. ``amount`` may be changed by
    scenarios (e.g. a thief multiplies it); everything else is fixed by the world.
    ``scenario`` holds codes into ``scenario_names`` (``0`` is ``"legit"``).
    """

    day: np.ndarray  # (n,) int64: day index, 0 = the start day
    second: np.ndarray  # (n,) int64: seconds since the start
    card: np.ndarray  # (n,) int64: card index in [0, n_cards)
    terminal: np.ndarray  # (n,) int64: terminal index in [0, n_terminals)
    amount: np.ndarray  # (n,) float64: in the currency's major unit, rounded to cents
    n_cards: int
    n_terminals: int
    days: int
    is_fraud: np.ndarray = field(init=False)  # (n,) bool
    scenario: np.ndarray = field(init=False)  # (n,) int16 codes into scenario_names
    scenario_names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.day)
        for name in ("second", "card", "terminal", "amount"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name} has {len(getattr(self, name))} rows, not {n}")
        self.is_fraud = np.zeros(n, dtype=bool)
        self.scenario = np.zeros(n, dtype=np.int16)
        self.scenario_names = [LEGIT]

    def __len__(self) -> int:
        return len(self.day)

    def mark_fraud(self, rows: np.ndarray, scenario: str) -> None:
        """Mark ``rows`` (a boolean mask or row indices) as fraud produced by ``scenario``.

        A payment marked before by another scenario is re-labelled: the later scenario wins.
        """
        if scenario == LEGIT:
            raise ValueError(f"'{LEGIT}' is not a fraud scenario")
        code = self.scenario_code(scenario)
        self.is_fraud[rows] = True
        self.scenario[rows] = code

    def scenario_code(self, scenario: str) -> int:
        """The code of ``scenario`` in ``self.scenario`` (a new name gets the next code)."""
        if scenario not in self.scenario_names:
            self.scenario_names.append(scenario)
        return self.scenario_names.index(scenario)

    def scenario_counts(self) -> dict[str, int]:
        """Number of payments per scenario name (every known name, zero included)."""
        counts = np.bincount(self.scenario, minlength=len(self.scenario_names))
        return {name: int(counts[i]) for i, name in enumerate(self.scenario_names)}


@dataclass(frozen=True)
class Incident:
    """One compromise a scenario caused: ``entity`` number ``index`` was in the thieves'
    hands on days ``first_day <= day < end_day`` (day indices from the start)."""

    scenario: str
    entity: str  # "card" or "terminal"
    index: int
    first_day: int
    end_day: int


@runtime_checkable
class Scenario(Protocol):
    """A fraud scenario: marks (and may alter) some of a world's payments as fraud.

    ``apply`` must draw all its randomness from ``rng`` and be deterministic given it;
    it marks payments with ``payments.mark_fraud(rows, self.name)`` and returns the
    incidents it caused (empty where the notion does not apply).
    """

    name: str

    def apply(self, payments: SimulatedPayments, rng: np.random.Generator) -> list[Incident]:
        """Mark fraud in ``payments`` in place; return the incidents behind it."""
        ...


def describe_scenario(scenario: Any) -> dict[str, Any]:
    """A JSON-ready description of a scenario, for ``dataset.json``."""
    out: dict[str, Any] = {"type": type(scenario).__name__, "name": scenario.name}
    if hasattr(scenario, "__dataclass_fields__"):
        for key in scenario.__dataclass_fields__:
            value = getattr(scenario, key)
            out[key] = value if isinstance(value, (int, float, str, bool)) else repr(value)
    else:
        out["repr"] = repr(scenario)
    return out


# -- from integer columns to Arrow tables -----------------------------------------------------

_MAX_CHUNK = 20_000_000  # rows per string chunk: keeps 32-bit string offsets far from overflow


def id_width(count: int, minimum: int) -> int:
    """Digits needed to write ids ``0 .. count-1``, at least ``minimum``."""
    return max(minimum, len(str(max(count - 1, 0))))


def fixed_width_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.ChunkedArray:
    """``prefix`` + zero-padded ``numbers`` as Arrow strings, built without Python strings.

    Fixed width makes the string order equal the numeric order, so sorting by payment id
    keeps the generation order; building the bytes in numpy is ~50x faster than formatting.
    """
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    row_width = len(head) + width
    chunks = []
    for start in range(0, max(len(numbers), 1), _MAX_CHUNK):
        part = np.asarray(numbers[start:start + _MAX_CHUNK], dtype=np.int64)
        if part.size and (part.min() < 0 or part.max() >= 10**width):
            raise ValueError(f"ids do not fit in {width} digits")
        buf = np.empty((len(part), row_width), dtype=np.uint8)
        buf[:, : len(head)] = head
        rest = part.copy()
        for col in range(row_width - 1, len(head) - 1, -1):
            buf[:, col] = 48 + rest % 10  # 48 = ord("0")
            rest //= 10
        offsets = np.arange(len(part) + 1, dtype=np.int32) * row_width
        chunks.append(pa.StringArray.from_buffers(
            len(part), pa.py_buffer(offsets.tobytes()), pa.py_buffer(buf.tobytes())))
    return pa.chunked_array(chunks, type=pa.string())


def to_event_data(
    payments: SimulatedPayments,
    *,
    start_us: int,
    label_delay_us: int,
    currency: str,
    card_ids: pa.Array,
    customer_ids: pa.Array,
    terminal_ids: pa.Array,
    merchant_ids: pa.Array,
    info: dict[str, Any],
) -> EventData:
    """Build the payments, labels and truth tables of ``payments``.

    ``*_ids`` are the string ids of every card / terminal, by index. Payment ids follow the
    row order (which is time order), so the tables are sorted by ``(ts, payment_id)``.
    Every payment gets exactly one label, ``label_delay_us`` after it: a ``fraud_report``
    for fraud and a ``review_outcome`` for legit payments.
    """
    n = len(payments)
    payment_ids = fixed_width_ids("p", np.arange(n), id_width(n, 10))
    ts_us = start_us + payments.second * 1_000_000
    ts = pa.array(ts_us, type=pa.int64()).cast(TIMESTAMP)
    card = pa.array(payments.card, type=pa.int64())
    terminal = pa.array(payments.terminal, type=pa.int64())
    null = pa.nulls(n, pa.string())
    columns = {
        "payment_id": payment_ids,
        "ts": ts,
        "amount": pa.array(payments.amount, type=pa.float64()),
        "currency": pa.repeat(pa.scalar(currency, pa.string()), n),
        "card_id": card_ids.take(card),
        "customer_id": customer_ids.take(card),
        "merchant_id": merchant_ids.take(terminal),
        "terminal_id": terminal_ids.take(terminal),
    }
    arrays = [columns.get(f.name, null) for f in PAYMENT_SCHEMA]
    payment_table = pa.Table.from_arrays(arrays, schema=PAYMENT_SCHEMA)

    is_fraud = pa.array(payments.is_fraud, type=pa.bool_())
    kinds = pc.if_else(is_fraud, "fraud_report", "review_outcome")
    reported = pa.array(ts_us + label_delay_us, type=pa.int64()).cast(TIMESTAMP)
    labels = pa.Table.from_arrays([payment_ids, kinds, is_fraud, reported], schema=LABEL_SCHEMA)

    names = pa.array(payments.scenario_names, type=pa.string())
    scenario = names.take(pa.array(payments.scenario.astype(np.int32)))
    truth = pa.Table.from_arrays([payment_ids, is_fraud, scenario], schema=TRUTH_SCHEMA)
    return EventData(payments=payment_table, labels=labels, truth=truth, info=info)
