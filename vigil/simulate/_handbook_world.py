"""The Handbook world: the Fraud Detection Handbook's generative story, vectorised.

Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud Detection — Practical
Handbook*, chapter 3 ("Transaction data simulator"), rewritten with numpy. Customers and
terminals sit on a 100 x 100 square; a customer (who holds exactly one card) pays at the
terminals near them, a few times a day, around midday, amounts around their own mean. Three
fraud scenarios are laid over those payments (see :mod:`vigil.simulate._scenarios`).

Why a re-implementation rather than the Handbook's own code: theirs loops in Python per
transaction (hours for large worlds) and seeds the global numpy state per customer. Here a
whole day of every customer is drawn in a handful of array operations, and every random stream
comes from one :class:`numpy.random.SeedSequence`: profiles, payments and each scenario get
their own child stream, so switching a scenario off (``cards_compromised_per_day=0``) leaves
every other draw, and so the legit payments, exactly as they were. The numbers differ from the
Handbook's published dataset (different random streams); the distributions are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

import vigil
from vigil._errors import ConfigError
from vigil.events import TIMESTAMP, EventData
from vigil.simulate._base import (
    Progress,
    WorldSimulator,
    check_currency,
    check_days,
    check_float,
    check_int,
    check_progress,
    epoch_us,
    parse_start,
    seed_sequence,
)
from vigil.simulate._payments import (
    LEGIT,
    SECONDS_PER_DAY,
    Incident,
    Scenario,
    SimulatedPayments,
    describe_scenario,
    fixed_width_ids,
    id_width,
    to_event_data,
)
from vigil.simulate._scenarios import CompromisedCards, CompromisedTerminals, LargeAmount

_MEAN_TIME = SECONDS_PER_DAY / 2  # payments cluster around midday...
_STD_TIME = 20_000.0  # ...with a spread of about 5.5 hours
_SIDE = 100.0  # customers and terminals live on [0, 100] x [0, 100]
_US_PER_DAY = SECONDS_PER_DAY * 1_000_000


class HandbookWorld(WorldSimulator):
    """The Fraud Detection Handbook's synthetic world of cards, terminals and three frauds.

    Parameters
    ----------
    n_cards:
        Customers, each holding one card. Card ``c000123`` belongs to customer ``cu000123``.
    n_terminals:
        Terminals; each is also its own merchant (``merchant_id == terminal_id``).
    radius:
        A customer pays at the terminals strictly closer than this; one with none nearby
        makes no payment.
    label_delay_days:
        Every payment is labelled this long after it (the Handbook benchmark assumes 7 days):
        frauds by a ``fraud_report``, legit payments by a ``review_outcome``.
    large_amount_threshold:
        Scenario ``large_amount``: every payment above this amount is fraud.
    terminals_compromised_per_day, terminal_compromise_days:
        Scenario ``compromised_terminal``: terminals drawn each day and how long they stay
        compromised; all their payments meanwhile are fraud.
    cards_compromised_per_day, card_compromise_days, card_fraud_share, card_amount_multiplier:
        Scenario ``compromised_card``: cards drawn each day, how long they stay compromised,
        the share of their payments then made by the thief, and the factor on those amounts.
    currency:
        ISO 4217 code of every amount.
    extra_scenarios:
        Further :class:`~vigil.simulate.Scenario` objects, applied after the Handbook's three.

    Scenarios are applied in the order ``large_amount``, ``compromised_terminal``,
    ``compromised_card``, then ``extra_scenarios``; where several mark the same payment the
    *last* one names it in the ground truth (the Handbook's precedence). ``large_amount`` looks
    at the amounts before ``compromised_card`` inflates some, so every payment that is not
    ``compromised_card`` fraud and is above the threshold is fraud.

    After :meth:`simulate`: ``cards_`` and ``terminals_`` hold the drawn profiles and
    ``incidents_`` every compromise (scenario, entity, entity_id, start, end), as Arrow tables.

    Examples
    --------
    >>> world = HandbookWorld(n_cards=50, n_terminals=100)
    >>> data = world.simulate(3, start="2024-01-01", seed=7)
    >>> data.payments.num_rows == data.labels.num_rows == data.info["payments"]
    True
    >>> sorted(data.info["scenarios"])
    ['compromised_card', 'compromised_terminal', 'large_amount', 'legit']
    """

    def __init__(
        self,
        *,
        n_cards: int = 5000,
        n_terminals: int = 10000,
        radius: float = 5.0,
        label_delay_days: float = 7,
        large_amount_threshold: float = 220.0,
        terminals_compromised_per_day: int = 2,
        terminal_compromise_days: int = 28,
        cards_compromised_per_day: int = 3,
        card_compromise_days: int = 14,
        card_fraud_share: float = 1 / 3,
        card_amount_multiplier: float = 5.0,
        currency: str = "EUR",
        extra_scenarios: Sequence[Scenario] = (),
    ) -> None:
        self.n_cards = n_cards
        self.n_terminals = n_terminals
        self.radius = radius
        self.label_delay_days = label_delay_days
        self.large_amount_threshold = large_amount_threshold
        self.terminals_compromised_per_day = terminals_compromised_per_day
        self.terminal_compromise_days = terminal_compromise_days
        self.cards_compromised_per_day = cards_compromised_per_day
        self.card_compromise_days = card_compromise_days
        self.card_fraud_share = card_fraud_share
        self.card_amount_multiplier = card_amount_multiplier
        self.currency = currency
        self.extra_scenarios = extra_scenarios

    # -- configuration ------------------------------------------------------------------------

    def _check_params(self) -> dict[str, Any]:
        p = {
            "n_cards": check_int("n_cards", self.n_cards, minimum=1, example=5000),
            "n_terminals": check_int("n_terminals", self.n_terminals, minimum=1, example=10000),
            "radius": check_float("radius", self.radius, minimum=0.0, strict=True, example=5.0),
            "label_delay_days": check_float("label_delay_days", self.label_delay_days,
                                            minimum=0.0, example=7),
            "large_amount_threshold": check_float(
                "large_amount_threshold", self.large_amount_threshold, minimum=0.0,
                example=220.0),
            "terminals_compromised_per_day": check_int(
                "terminals_compromised_per_day", self.terminals_compromised_per_day,
                minimum=0, example=2),
            "terminal_compromise_days": check_int(
                "terminal_compromise_days", self.terminal_compromise_days, minimum=1,
                example=28),
            "cards_compromised_per_day": check_int(
                "cards_compromised_per_day", self.cards_compromised_per_day, minimum=0,
                example=3),
            "card_compromise_days": check_int(
                "card_compromise_days", self.card_compromise_days, minimum=1, example=14),
            "card_fraud_share": check_float("card_fraud_share", self.card_fraud_share,
                                            minimum=0.0, maximum=1.0, example=1 / 3),
            "card_amount_multiplier": check_float(
                "card_amount_multiplier", self.card_amount_multiplier, minimum=0.0,
                strict=True, example=5.0),
        }
        if p["terminals_compromised_per_day"] > p["n_terminals"]:
            raise ConfigError(
                f"terminals_compromised_per_day ({p['terminals_compromised_per_day']}) is more "
                f"than n_terminals ({p['n_terminals']}); lower it or add terminals")
        if p["cards_compromised_per_day"] > p["n_cards"]:
            raise ConfigError(
                f"cards_compromised_per_day ({p['cards_compromised_per_day']}) is more than "
                f"n_cards ({p['n_cards']}); lower it or add cards")
        p["currency"] = check_currency(self.currency)
        return p

    def scenarios(self) -> list[Scenario]:
        """The fraud scenarios, in the order they are applied (lowest precedence first)."""
        extra = list(self.extra_scenarios)
        for s in extra:
            if not isinstance(s, Scenario):
                raise ConfigError(f"extra_scenarios must hold Scenario objects (with a name and "
                                  f"apply(payments, rng)), got {s!r}")
        scenarios: list[Scenario] = [
            LargeAmount(threshold=self.large_amount_threshold),
            CompromisedTerminals(per_day=self.terminals_compromised_per_day,
                                 window_days=self.terminal_compromise_days),
            CompromisedCards(per_day=self.cards_compromised_per_day,
                             window_days=self.card_compromise_days,
                             share=self.card_fraud_share,
                             multiplier=self.card_amount_multiplier),
            *extra,
        ]
        names = [s.name for s in scenarios]
        for name in names:
            if not isinstance(name, str) or not name or name == LEGIT:
                raise ConfigError(f"a scenario name must be a non-empty string other than "
                                  f"'{LEGIT}', got {name!r}")
            if names.count(name) > 1:
                raise ConfigError(f"two scenarios are named '{name}'; give each a unique name")
        return scenarios

    # -- simulation ---------------------------------------------------------------------------

    def simulate(
        self,
        days: int,
        *,
        start: str | date | datetime,
        seed: int | None,
        progress: Progress | None = None,
    ) -> EventData:
        """Simulate ``days`` days from ``start``; see the class docstring for the story.

        ``progress(done_days, total_days)`` is called after each generated day.
        """
        p = self._check_params()
        days = check_days(days)
        start_dt = parse_start(start)
        progress = check_progress(progress)
        scenarios = self.scenarios()
        root = seed_sequence(seed)
        profile_seq, payment_seq, scenario_seq = root.spawn(3)

        rng = np.random.default_rng(profile_seq)
        n_cards, n_terminals = p["n_cards"], p["n_terminals"]
        # one call per column, in this order: the profiles depend only on the seed and sizes
        card_xy = rng.uniform(0.0, _SIDE, size=(n_cards, 2))
        mean_amount = rng.uniform(5.0, 100.0, size=n_cards)
        std_amount = mean_amount / 2
        mean_per_day = rng.uniform(0.0, 4.0, size=n_cards)
        terminal_xy = rng.uniform(0.0, _SIDE, size=(n_terminals, 2))
        offsets, nearby = _terminals_within(card_xy, terminal_xy, p["radius"])

        payments = _draw_payments(
            np.random.default_rng(payment_seq), days, offsets, nearby, mean_amount,
            std_amount, mean_per_day, n_terminals, progress)
        incidents: list[Incident] = []
        for scenario, child in zip(scenarios, scenario_seq.spawn(len(scenarios)), strict=True):
            incidents += scenario.apply(payments, np.random.default_rng(child)) or []
        for scenario in scenarios:  # list every scenario in the counts, even an idle one
            payments.scenario_code(scenario.name)

        card_ids = fixed_width_ids("c", np.arange(n_cards), id_width(n_cards, 6))
        customer_ids = fixed_width_ids("cu", np.arange(n_cards), id_width(n_cards, 6))
        terminal_ids = fixed_width_ids("t", np.arange(n_terminals), id_width(n_terminals, 6))
        start_us = epoch_us(start_dt)
        n = len(payments)
        frauds = int(payments.is_fraud.sum())
        params = {**self.get_params(), **p}  # checked values: plain, JSON-ready Python
        params["extra_scenarios"] = [describe_scenario(s) for s in scenarios[3:]]
        info = {
            "generator": "vigil.simulate.HandbookWorld",
            "vigil_version": vigil.__version__,
            "params": params,
            "seed": int(root.entropy),
            "start": start_dt.isoformat(),
            "days": days,
            "cards": n_cards,
            "terminals": n_terminals,
            "cards_without_terminals": int(np.count_nonzero(np.diff(offsets) == 0)),
            "payments": n,
            "labels": n,
            "frauds": frauds,
            "fraud_rate": frauds / n if n else 0.0,
            "scenarios": payments.scenario_counts(),
            "incidents": {s.name: sum(i.scenario == s.name for i in incidents)
                          for s in scenarios},
        }
        data = to_event_data(
            payments, start_us=start_us,
            label_delay_us=round(p["label_delay_days"] * _US_PER_DAY),
            currency=p["currency"], card_ids=card_ids, customer_ids=customer_ids,
            terminal_ids=terminal_ids, merchant_ids=terminal_ids, info=info)

        self.cards_ = pa.table({
            "card_id": card_ids, "customer_id": customer_ids,
            "x": card_xy[:, 0], "y": card_xy[:, 1],
            "mean_amount": mean_amount, "std_amount": std_amount,
            "mean_nb_tx_per_day": mean_per_day, "n_terminals": np.diff(offsets),
        })
        self.terminals_ = pa.table({"terminal_id": terminal_ids,
                                    "x": terminal_xy[:, 0], "y": terminal_xy[:, 1]})
        self.incidents_ = _incident_table(incidents, card_ids, terminal_ids, start_us)
        return data


def _terminals_within(
    card_xy: np.ndarray, terminal_xy: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """The terminals strictly within ``radius`` of each card, as CSR arrays.

    Card ``c`` may use ``nearby[offsets[c]:offsets[c + 1]]`` (ascending terminal indices).
    Only the terminals in the vertical strip ``|x_terminal - x_card| <= radius`` are measured
    (a tenth of them at the Handbook's sizes), in blocks of cards of a few million candidate
    pairs, so time and memory stay small whatever the world's size.
    """
    n_cards = len(card_xy)
    by_x = np.argsort(terminal_xy[:, 0], kind="stable")
    sorted_x = terminal_xy[by_x, 0]
    lo = np.searchsorted(sorted_x, card_xy[:, 0] - radius, side="left")
    hi = np.searchsorted(sorted_x, card_xy[:, 0] + radius, side="right")
    strip = (hi - lo).astype(np.int64)  # (n_cards,) candidates per card
    r2 = radius * radius
    counts = np.zeros(n_cards, dtype=np.int64)
    parts = []
    first = 0
    while first < n_cards:
        # as many cards as fit in ~4M candidate pairs (at least one)
        last = int(np.searchsorted(np.cumsum(strip[first:]), 4_000_000, side="right"))
        last = first + max(last, 1)
        lens = strip[first:last]
        card = np.repeat(np.arange(first, last, dtype=np.int64), lens)  # (pairs,)
        step = np.arange(card.size, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
        terminal = by_x[lo[card] + step]
        d2 = (card_xy[card, 0] - terminal_xy[terminal, 0]) ** 2 + \
            (card_xy[card, 1] - terminal_xy[terminal, 1]) ** 2
        near = d2 < r2
        card, terminal = card[near], terminal[near]
        order = np.lexsort((terminal, card))  # by card, then terminal index
        counts[first:last] = np.bincount(card - first, minlength=last - first)
        parts.append(terminal[order])
        first = last
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    nearby = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return offsets, nearby


def _draw_payments(
    rng: np.random.Generator,
    days: int,
    offsets: np.ndarray,
    nearby: np.ndarray,
    mean_amount: np.ndarray,
    std_amount: np.ndarray,
    mean_per_day: np.ndarray,
    n_terminals: int,
    progress: Progress | None,
) -> SimulatedPayments:
    """Every customer's payments, one day at a time (vectorised over customers)."""
    n_cards = len(mean_amount)
    n_nearby = np.diff(offsets)
    can_pay = n_nearby > 0
    all_cards = np.arange(n_cards, dtype=np.int64)
    day_parts, second_parts, card_parts, terminal_parts, amount_parts = [], [], [], [], []
    for day in range(days):
        counts = rng.poisson(mean_per_day)  # (n_cards,)
        counts[~can_pay] = 0  # drawn anyway, so the stream does not depend on the geography
        card = np.repeat(all_cards, counts)  # (m,)
        tod = np.floor(rng.normal(_MEAN_TIME, _STD_TIME, size=card.size))
        keep = (tod > 0) & (tod < SECONDS_PER_DAY)  # times outside the day are dropped
        card, tod = card[keep], tod[keep].astype(np.int64)
        amount = rng.normal(mean_amount[card], std_amount[card])
        negative = amount < 0
        amount[negative] = rng.uniform(0.0, 2 * mean_amount[card[negative]])
        amount = np.round(amount, 2)
        terminal = nearby[offsets[card] + rng.integers(0, n_nearby[card])]
        order = np.argsort(tod, kind="stable")  # time order; ties keep card order
        day_parts.append(np.full(card.size, day, dtype=np.int64))
        second_parts.append(day * SECONDS_PER_DAY + tod[order])
        card_parts.append(card[order])
        terminal_parts.append(terminal[order])
        amount_parts.append(amount[order])
        if progress is not None:
            progress(day + 1, days)
    return SimulatedPayments(
        day=np.concatenate(day_parts), second=np.concatenate(second_parts),
        card=np.concatenate(card_parts), terminal=np.concatenate(terminal_parts),
        amount=np.concatenate(amount_parts), n_cards=n_cards, n_terminals=n_terminals,
        days=days)


def _incident_table(
    incidents: list[Incident], card_ids: pa.ChunkedArray, terminal_ids: pa.ChunkedArray,
    start_us: int,
) -> pa.Table:
    """Incidents as a table with entity ids and UTC start/end instants (end exclusive)."""
    ids = {"card": card_ids, "terminal": terminal_ids}
    entity_id = [
        ids[i.entity][i.index].as_py() if i.entity in ids else str(i.index) for i in incidents
    ]
    first = np.array([i.first_day for i in incidents], dtype=np.int64)
    end = np.array([i.end_day for i in incidents], dtype=np.int64)
    return pa.table({
        "scenario": pa.array([i.scenario for i in incidents], pa.string()),
        "entity": pa.array([i.entity for i in incidents], pa.string()),
        "entity_id": pa.array(entity_id, pa.string()),
        "start": pa.array(start_us + first * _US_PER_DAY, pa.int64()).cast(TIMESTAMP),
        "end": pa.array(start_us + end * _US_PER_DAY, pa.int64()).cast(TIMESTAMP),
    })

