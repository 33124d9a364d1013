"""The three fraud scenarios of the Fraud Detection Handbook's simulator.

Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud Detection — Practical
Handbook*, chapter 3. Each is deliberately simple and detectable by a different kind of
feature, which is what makes the Handbook world a useful benchmark:

- :class:`LargeAmount`: a fixed amount threshold; found by the amount itself.
- :class:`CompromisedTerminals`: terminals skimmed for weeks; found by a terminal's recent
  fraud rate (a label-aware feature, so it only works once labels have arrived).
- :class:`CompromisedCards`: stolen card details spent at inflated amounts; found by a
  card's amount relative to its own history.

Compromises start on the day they are drawn and last a fixed number of days, so on the first
days of a simulation fewer are active (as in the Handbook): the fraud rate ramps up over the
first four weeks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil._errors import ConfigError
from vigil.simulate._base import check_float, check_int
from vigil.simulate._payments import Incident, SimulatedPayments


@dataclass(frozen=True)
class LargeAmount:
    """Every payment with an amount above ``threshold`` is fraud (Handbook scenario 1).

    Applied first, to the amounts as the world drew them: a later scenario that inflates an
    amount above the threshold marks that payment itself.
    """

    threshold: float = 220.0
    name: str = "large_amount"

    def apply(self, payments: SimulatedPayments, rng: np.random.Generator) -> list[Incident]:
        threshold = check_float("threshold", self.threshold, minimum=0.0, example=220.0)
        payments.mark_fraud(payments.amount > threshold, self.name)
        return []


@dataclass(frozen=True)
class CompromisedTerminals:
    """Each day, ``per_day`` terminals (drawn without replacement) are compromised from that
    day for ``window_days`` days; every payment they take meanwhile is fraud (scenario 2).
    """

    per_day: int = 2
    window_days: int = 28
    name: str = "compromised_terminal"

    def apply(self, payments: SimulatedPayments, rng: np.random.Generator) -> list[Incident]:
        per_day = check_int("per_day", self.per_day, minimum=0, example=2)
        window = check_int("window_days", self.window_days, minimum=1, example=28)
        n_terminals, days = payments.n_terminals, payments.days
        if per_day > n_terminals:
            raise ConfigError(f"cannot compromise {per_day} terminals a day: the world has only "
                              f"{n_terminals}; lower per_day or add terminals")
        drawn = np.array([rng.choice(n_terminals, size=per_day, replace=False)
                          for _ in range(days)], dtype=np.int64).reshape(days, per_day)
        first_day = np.repeat(np.arange(days, dtype=np.int64), per_day)
        terminal = drawn.ravel()
        incidents = [Incident(self.name, "terminal", int(t), int(d), int(d) + window)
                     for t, d in zip(terminal, first_day, strict=True)]
        if terminal.size == 0 or len(payments) == 0:
            return incidents
        # active[k, day]: is compromised terminal k (of the few ever compromised) active that
        # day? Built from +1/-1 steps at window ends, so overlapping windows just add up.
        hit_terminals, k = np.unique(terminal, return_inverse=True)
        steps = np.zeros((len(hit_terminals), days + window + 1), dtype=np.int32)
        np.add.at(steps, (k, first_day), 1)
        np.add.at(steps, (k, first_day + window), -1)
        active = np.cumsum(steps, axis=1)[:, :days] > 0
        pos = np.searchsorted(hit_terminals, payments.terminal)
        pos = np.minimum(pos, len(hit_terminals) - 1)
        known = hit_terminals[pos] == payments.terminal
        payments.mark_fraud(known & active[pos, payments.day], self.name)
        return incidents


@dataclass(frozen=True)
class CompromisedCards:
    """Each day, ``per_day`` cards (drawn without replacement) are compromised from that day
    for ``window_days`` days; ``share`` of their payments in that period, rounded down and
    drawn at random, are made by the thief: amount times ``multiplier``, fraud (scenario 3).

    As in the Handbook the share is taken over the pooled payments of the cards drawn on the
    same day. Unlike the Handbook, a payment picked by two overlapping compromises of the same
    card has its amount multiplied once, not twice: one payment is stolen once.
    """

    per_day: int = 3
    window_days: int = 14
    share: float = 1 / 3
    multiplier: float = 5.0
    name: str = "compromised_card"

    def apply(self, payments: SimulatedPayments, rng: np.random.Generator) -> list[Incident]:
        per_day = check_int("per_day", self.per_day, minimum=0, example=3)
        window = check_int("window_days", self.window_days, minimum=1, example=14)
        share = check_float("share", self.share, minimum=0.0, maximum=1.0, example=1 / 3)
        multiplier = check_float("multiplier", self.multiplier, minimum=0.0, strict=True,
                                 example=5.0)
        n_cards, days = payments.n_cards, payments.days
        if per_day > n_cards:
            raise ConfigError(f"cannot compromise {per_day} cards a day: the world has only "
                              f"{n_cards}; lower per_day or add cards")
        # rows grouped by card (time order within a card), to find a card's payments fast
        by_card = np.argsort(payments.card, kind="stable")
        bounds = np.searchsorted(payments.card[by_card], np.arange(n_cards + 1))
        stolen = np.zeros(len(payments), dtype=bool)
        incidents = []
        for day in range(days):
            cards = rng.choice(n_cards, size=per_day, replace=False)
            incidents += [Incident(self.name, "card", int(c), day, day + window) for c in cards]
            rows = np.concatenate([by_card[bounds[c]:bounds[c + 1]] for c in cards] or [[]])
            rows = np.sort(rows.astype(np.int64))
            rows = rows[(payments.day[rows] >= day) & (payments.day[rows] < day + window)]
            # a tiny epsilon so that e.g. 6 * (1/3) counts as 2, not 1.9999999999999998
            k = int(np.floor(len(rows) * share + 1e-9))
            picked = rng.choice(rows, size=k, replace=False) if k else rows[:0]
            fresh = picked[~stolen[picked]]
            stolen[fresh] = True
            payments.amount[fresh] = np.round(payments.amount[fresh] * multiplier, 2)
            payments.mark_fraud(picked, self.name)
        return incidents
