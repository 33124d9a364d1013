"""What a fraud scenario of the realistic world sees, what it returns, and the helpers
scenarios share (victims, start times, bursts, thieves' IPs).

The world is made one day at a time, so that a run of any length fits in memory. A scenario
*plans* its run once, before the first day (:meth:`RealisticScenario.plan`, which sees the
population, the people and their accounts): what can be drawn up front is drawn there (its
incidents are few, even when they last weeks, as a ring's). The plan then *steps* through
the days (:meth:`ScenarioRun.step`), each time seeing the day's legitimate payments and
logins, and returns what it did that day: payments it made, legitimate payments it claims,
accounts, account events and verification sessions. :class:`Planned` steps through a run
drawn entirely up front.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vigil.simulate._base import check_float
from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._accounts import (
    AccountBlock,
    Accounts,
    EventBlock,
    SessionBlock,
)
from vigil.simulate.realistic._entities import NewCustomers, Population
from vigil.simulate.realistic._identity import Identities
from vigil.simulate.realistic._legit import SECONDS_PER_DAY, Block, PaymentBlock

REACH_BACK_DAYS = 2
"""How far before its day a row made on that day may lie (a login minutes before a payment
just after midnight; a takeover, handled the day after it began, with its failed logins the
night before). Rows earlier than the day before yesterday are already written."""


@dataclass(frozen=True)
class WorldContext:
    """What a scenario may look at when it plans: the population, the people's identities,
    their accounts; and where it registers customers it creates.

    ``start_day`` is the run's first day in days since 1970 (for dates of birth and of
    expiry); ``decline_share`` the share of ordinary payments an issuer declines.
    ``accounts`` changes as the run goes on (a sign-up during the run is settled on its day,
    e-mail changes come as they happen): read it in :meth:`ScenarioRun.step` for what is
    known by then.
    """

    population: Population
    days: int
    identities: Identities
    accounts: Accounts
    new_customers: NewCustomers
    decline_share: float
    start_day: int


@dataclass(frozen=True)
class DayContext:
    """One day of the run, as the legitimate world made it.

    ``legit``: the day's legitimate payments (the rows a :class:`FraudBatch` claims are
    numbered in it, from 0); ``logins``: the day's successful logins by the customers
    themselves, sorted by account and time (see :func:`~._accounts.next_login`).
    """

    day: int
    days: int
    legit: PaymentBlock
    logins: EventBlock

    @property
    def last(self) -> bool:
        """Whether this is the run's last day."""
        return self.day == self.days - 1


@dataclass
class FraudBatch:
    """What one scenario did (on one day, or over the whole run for :class:`Planned`).

    ``new``: payments it made (their ``incident`` numbers are the scenario's own, from 0, the
    same on every day for one incident; ``-1`` for fraud nobody will report); ``claimed``:
    rows of the day's legitimate payments it turns into its own; ``incidents``: how many
    incidents (stolen cards, attacks, compromises, rings) it caused; ``accounts``,
    ``events``, ``sessions``: accounts it opened, account events and verification sessions
    it caused (their ``fraud`` flag says whether the fraudster did it; a victim recovering
    their account did not).
    """

    new: PaymentBlock | None = None
    claimed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    incidents: int = 0
    accounts: AccountBlock | None = None
    events: EventBlock | None = None
    sessions: SessionBlock | None = None


@runtime_checkable
class ScenarioRun(Protocol):
    """A scenario's plan for one run, stepped through the days in order."""

    def step(self, day: DayContext) -> FraudBatch:
        """What the scenario does on ``day``.

        Rows must lie before the end of the run (later ones are dropped) and at most
        :data:`REACH_BACK_DAYS` days before ``day`` (except on day 0, which may bring rows
        from before the run: accounts opened long ago).
        """
        ...


@runtime_checkable
class RealisticScenario(Protocol):
    """A fraud scenario of :class:`~vigil.simulate.RealisticWorld`.

    ``is_fraud`` is the ground truth of its payments (``False`` for friendly fraud: real
    purchases that the cardholder disputes). ``report_share`` overrides the label model's
    share of its frauds that are ever reported (``None``: the label model's). ``plan``
    must draw all its randomness from ``rng`` (and the returned run from ``rng`` too).
    """

    name: str
    rate: float
    is_fraud: bool
    report_share: float | None

    def plan(self, world: WorldContext, rng: np.random.Generator) -> ScenarioRun:
        """Draw what can be drawn before the first day; the run does the rest day by day."""
        ...


class Planned:
    """A run drawn entirely up front, handed out one day at a time: each day the rows that
    lie in it (day 0 also those before the run), the accounts and the incident count with
    day 0."""

    def __init__(self, batch: FraudBatch) -> None:
        self.incidents, self.accounts = batch.incidents, batch.accounts
        self._parts: dict[str, Block] = {}
        for name in ("new", "events", "sessions"):
            block = getattr(batch, name)
            if block is not None and len(block):
                self._parts[name] = block.take(np.argsort(block.t, kind="stable"))

    def step(self, day: DayContext) -> FraudBatch:
        out = FraudBatch(incidents=self.incidents if day.day == 0 else 0,
                         accounts=self.accounts if day.day == 0 else None)
        for name, block in self._parts.items():
            lo = 0 if day.day == 0 else np.searchsorted(block.t, day.day * SECONDS_PER_DAY)
            hi = np.searchsorted(block.t, (day.day + 1) * SECONDS_PER_DAY)
            setattr(out, name, block.take(slice(lo, hi)))
        return out


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
    """The payments of ``block`` before the end of a run of ``days`` days."""
    return block.take(block.t < days * SECONDS_PER_DAY)


def check_params(scenario: Any, **bounds: tuple[float, float | None]) -> None:
    for name, (low, high) in bounds.items():
        check_float(f"{type(scenario).__name__}.{name}", getattr(scenario, name),
                    minimum=low, maximum=high, example=getattr(type(scenario), name))
