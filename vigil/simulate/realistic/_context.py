"""What a fraud scenario of the realistic world sees, what it returns, and the helpers
scenarios share (victims, start times, bursts, thieves' IPs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vigil.simulate._base import check_float
from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._accounts import (
    AccountActivity,
    AccountBlock,
    EventBlock,
    SessionBlock,
)
from vigil.simulate.realistic._entities import NewCustomers, Population
from vigil.simulate.realistic._identity import Identities
from vigil.simulate.realistic._legit import SECONDS_PER_DAY, PaymentBlock


@dataclass(frozen=True)
class WorldContext:
    """What a scenario may look at: the population, the legitimate payments, the people's
    identities and their accounts' activity; and where it registers customers it creates.

    ``start_day`` is the run's first day in days since 1970 (for dates of birth and of
    expiry); ``decline_share`` the share of ordinary payments an issuer declines.
    """

    population: Population
    legit: PaymentBlock
    days: int
    identities: Identities
    activity: AccountActivity
    new_customers: NewCustomers
    decline_share: float
    start_day: int


@dataclass
class FraudBatch:
    """What one scenario did.

    ``new``: payments it made (their ``incident`` numbers are the scenario's own, from 0;
    ``-1`` for fraud nobody will report); ``claimed``: rows of the legitimate payments it
    turns into its own; ``incidents``: how many incidents (stolen cards, attacks,
    compromises, rings) it caused; ``accounts``, ``events``, ``sessions``: accounts it opened,
    account events and verification sessions it caused (their ``fraud`` flag says whether
    the fraudster did it; a victim recovering their account did not).
    """

    new: PaymentBlock | None = None
    claimed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    incidents: int = 0
    accounts: AccountBlock | None = None
    events: EventBlock | None = None
    sessions: SessionBlock | None = None


@runtime_checkable
class RealisticScenario(Protocol):
    """A fraud scenario of :class:`~vigil.simulate.RealisticWorld`.

    ``is_fraud`` is the ground truth of its payments (``False`` for friendly fraud: real
    purchases that the cardholder disputes). ``report_share`` overrides the label model's
    share of its frauds that are ever reported (``None``: the label model's). ``apply``
    must draw all its randomness from ``rng``.
    """

    name: str
    rate: float
    is_fraud: bool
    report_share: float | None

    def apply(self, world: WorldContext, rng: np.random.Generator) -> FraudBatch:
        """The payments this scenario makes or claims."""
        ...


# -- helpers -------------------------------------------------------------------------------------


def victims(world: WorldContext, rng: np.random.Generator, per_customer_day: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Customers hit at ``per_customer_day`` per day while they hold an account, and the day.

    A Poisson number of incidents over all active customer-days, spread evenly over them.
    """
    pop, days = world.population, world.days
    first = np.maximum(pop.cust_signup_day, 0)
    active_days = np.maximum(days - first, 0).astype(float)
    total = active_days.sum()
    k = rng.poisson(per_customer_day * total) if total > 0 else 0
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    customer = rng.choice(len(first), size=k, p=active_days / total)
    day = first[customer] + rng.integers(0, active_days[customer].astype(np.int64))
    return customer.astype(np.int64), day.astype(np.int64)


def start_seconds(rng: np.random.Generator, day: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A start time on each day, its hour drawn by ``weights``."""
    hour = rng.choice(24, size=len(day), p=weights / weights.sum())
    return day * SECONDS_PER_DAY + hour * 3600 + rng.integers(0, 3600, size=len(day))


def bursts(rng: np.random.Generator, t0: np.ndarray, counts: np.ndarray, gap_s: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """``counts[i]`` payment times from ``t0[i]``, exponential gaps of mean ``gap_s``.

    Returns (incident of each payment, its time in seconds).
    """
    incident = np.repeat(np.arange(len(t0), dtype=np.int64), counts)
    gaps = rng.exponential(gap_s, size=incident.size)
    starts = np.cumsum(counts) - counts
    gaps[starts[counts > 0]] = 0.0  # the first payment at t0
    run = np.cumsum(gaps)
    run -= np.repeat(run[starts[counts > 0]], counts[counts > 0])
    return incident, t0[incident] + run.astype(np.int64)


def or_online(pop: Population, merchants: np.ndarray) -> np.ndarray:
    """``merchants``, or every online merchant if there are none (tiny worlds)."""
    if merchants.size:
        return merchants
    online = np.flatnonzero(pop.m_online)
    return online if online.size else np.arange(pop.n_merchants)


def thief_ips(rng: np.random.Generator, pop: Population, n: int, proxy_share: float
               ) -> np.ndarray:
    """A datacenter/proxy IP (share ``proxy_share``), else a residential IP in a fraud country."""
    proxy = rng.random(n) < proxy_share
    dc = cat.DATACENTER_COUNTRIES[rng.integers(0, len(cat.DATACENTER_COUNTRIES), size=n)]
    fc = cat.FRAUD_COUNTRIES[rng.integers(0, len(cat.FRAUD_COUNTRIES), size=n)]
    return np.where(proxy, pop.pick_ip(rng, cat.DATACENTER, dc),
                    pop.pick_ip(rng, cat.RESIDENTIAL, fc))


def within_run(block: PaymentBlock, days: int) -> PaymentBlock:
    return block.take(block.t < days * SECONDS_PER_DAY)


def check_params(scenario: Any, **bounds: tuple[float, float | None]) -> None:
    for name, (low, high) in bounds.items():
        check_float(f"{type(scenario).__name__}.{name}", getattr(scenario, name),
                    minimum=low, maximum=high, example=getattr(type(scenario), name))
