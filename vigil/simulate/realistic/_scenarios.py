"""Fraud scenarios of the realistic world, as pluggable objects.

A scenario sees the population and the legitimate payments (:class:`WorldContext`) and
returns a :class:`FraudBatch`: new payments it made (a thief's), and/or legitimate payments
it claims (a skimmed terminal's, a disputed purchase). Each has a ``rate`` and a unique
``name``, the ``scenario`` of its payments in the ground truth, which is never a feature.

Scenarios that *claim* payments are applied in order: a later one re-names a payment an
earlier one claimed. Frauds that add payments never collide.

Each draws only from the generator it is given, so switching one scenario off (``rate=0``)
leaves the legitimate payments and every other scenario's draws as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vigil.simulate._base import check_float
from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._entities import Population, popular
from vigil.simulate.realistic._legit import (
    SECONDS_PER_DAY,
    PaymentBlock,
    online_payments,
)


@dataclass(frozen=True)
class WorldContext:
    """What a scenario may look at: the population and the legitimate payments."""

    population: Population
    legit: PaymentBlock
    days: int


@dataclass
class FraudBatch:
    """What one scenario did.

    ``new``: payments it made (their ``incident`` numbers are the scenario's own, from 0);
    ``claimed``: rows of the legitimate payments it turns into its own; ``incidents``: how
    many incidents (stolen cards, attacks, compromises) it caused.
    """

    new: PaymentBlock | None = None
    claimed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    incidents: int = 0


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


def _victims(world: WorldContext, rng: np.random.Generator, per_customer_day: float
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


def _start_seconds(rng: np.random.Generator, day: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A start time on each day, its hour drawn by ``weights``."""
    hour = rng.choice(24, size=len(day), p=weights / weights.sum())
    return day * SECONDS_PER_DAY + hour * 3600 + rng.integers(0, 3600, size=len(day))


def _bursts(rng: np.random.Generator, t0: np.ndarray, counts: np.ndarray, gap_s: float
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


def _or_online(pop: Population, merchants: np.ndarray) -> np.ndarray:
    """``merchants``, or every online merchant if there are none (tiny worlds)."""
    if merchants.size:
        return merchants
    online = np.flatnonzero(pop.m_online)
    return online if online.size else np.arange(pop.n_merchants)


def _thief_ips(rng: np.random.Generator, pop: Population, n: int, proxy_share: float
               ) -> np.ndarray:
    """A datacenter/proxy IP (share ``proxy_share``), else a residential IP in a fraud country."""
    proxy = rng.random(n) < proxy_share
    dc = cat.DATACENTER_COUNTRIES[rng.integers(0, len(cat.DATACENTER_COUNTRIES), size=n)]
    fc = cat.FRAUD_COUNTRIES[rng.integers(0, len(cat.FRAUD_COUNTRIES), size=n)]
    return np.where(proxy, pop.pick_ip(rng, cat.DATACENTER, dc),
                    pop.pick_ip(rng, cat.RESIDENTIAL, fc))


def _within_run(block: PaymentBlock, days: int) -> PaymentBlock:
    return block.take(block.t < days * SECONDS_PER_DAY)


def _check(scenario: Any, **bounds: tuple[float, float | None]) -> None:
    for name, (low, high) in bounds.items():
        check_float(f"{type(scenario).__name__}.{name}", getattr(scenario, name),
                    minimum=low, maximum=high, example=getattr(type(scenario), name))


# -- the scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StolenCardCNP:
    """Stolen card details spent online (card not present).

    Each day each card is stolen with probability ``rate``. The thief spends it in a burst of
    about ``burst_mean`` payments, ``gap_minutes`` apart on average, from a device and an
    e-mail of the fraudsters' pool, behind a datacenter/proxy IP (share ``proxy_share``) or a
    residential IP in a fraud country, at merchants whose goods resell (electronics, jewelry,
    gift cards), for amounts around ``amount_median``, at any hour.
    """

    rate: float = 3e-4
    burst_mean: float = 4.0
    gap_minutes: float = 25.0
    amount_median: float = 220.0
    proxy_share: float = 0.5
    report_share: float | None = None
    name: str = "stolen_card_cnp"
    is_fraud: bool = True

    def apply(self, world: WorldContext, rng: np.random.Generator) -> FraudBatch:
        _check(self, rate=(0.0, 1.0), burst_mean=(1.0, None), gap_minutes=(0.0, None),
               amount_median=(0.0, None), proxy_share=(0.0, 1.0))
        pop = world.population
        customer, day = _victims(world, rng, self.rate)
        counts = 1 + rng.poisson(self.burst_mean - 1.0, size=len(customer))
        t0 = _start_seconds(rng, day, cat.FRAUD_HOUR_WEIGHTS)
        incident, t = _bursts(rng, t0, counts, self.gap_minutes * 60.0)
        resale = _or_online(pop, pop.merchants_in(cat.RESALE_CATEGORIES, online=True))
        block = online_payments(
            pop, t=t, card=pop.card_on(customer, day)[incident],
            merchant=popular(rng, resale, pop.m_popularity, incident.size),
            device=rng.choice(pop.fraud_devices, size=len(customer))[incident],
            ip=_thief_ips(rng, pop, len(customer), self.proxy_share)[incident],
            email=rng.choice(pop.fraud_emails, size=len(customer))[incident],
            amount=self.amount_median * np.exp(0.6 * rng.standard_normal(incident.size)),
            incident=incident)
        return FraudBatch(new=_within_run(block, world.days), incidents=len(customer))


@dataclass(frozen=True)
class CardTesting:
    """Card testing: a fraudster checks which stolen card numbers work.

    ``rate`` attacks per day per 10,000 cards. An attack tries about ``cards_mean`` different
    cards within ``window_minutes``, from one device and one datacenter IP, at one online
    merchant that takes tiny payments (a charity, a digital-goods shop), for 0.50 to 3.00,
    each with a throwaway e-mail. Cardholders rarely notice: ``report_share`` 0.2.
    (Declines are not simulated: the payment schema has no outcome column yet.)
    """

    rate: float = 1.0
    cards_mean: float = 30.0
    window_minutes: float = 8.0
    report_share: float | None = 0.2
    name: str = "card_testing"
    is_fraud: bool = True

    def apply(self, world: WorldContext, rng: np.random.Generator) -> FraudBatch:
        _check(self, rate=(0.0, None), cards_mean=(1.0, None), window_minutes=(0.0, None))
        pop, days = world.population, world.days
        k = rng.poisson(self.rate * pop.n_cards / 10_000 * days)
        day = rng.integers(0, days, size=k)
        t0 = _start_seconds(rng, day, cat.FRAUD_HOUR_WEIGHTS)
        counts = np.maximum(1, rng.poisson(self.cards_mean, size=k))
        attack = np.repeat(np.arange(k, dtype=np.int64), counts)
        t = t0[attack] + rng.integers(0, max(int(self.window_minutes * 60), 1), size=attack.size)
        # cards of customers with an account that day (a leaked list of real cards)
        customer = rng.integers(0, pop.n_customers, size=attack.size)
        ok = pop.active(customer, day[attack])
        attack, t, customer = attack[ok], t[ok], customer[ok]
        targets = _or_online(pop, pop.merchants_in(cat.TESTING_CATEGORIES, online=True))
        dc = cat.DATACENTER_COUNTRIES[rng.integers(0, len(cat.DATACENTER_COUNTRIES), size=k)]
        block = online_payments(
            pop, t=t, card=pop.card_on(customer, day[attack]),
            merchant=rng.choice(targets, size=k)[attack] if k else attack,
            device=rng.choice(pop.fraud_devices, size=k)[attack] if k else attack,
            ip=pop.pick_ip(rng, cat.DATACENTER, dc)[attack],
            email=rng.choice(pop.disposable_emails if pop.disposable_emails.size
                             else pop.fraud_emails, size=attack.size),
            amount=rng.uniform(0.5, 3.0, size=attack.size),
            # each tested card is its own victim, who reports (or not) on their own
            incident=np.arange(attack.size, dtype=np.int64))
        return FraudBatch(new=_within_run(block, days), incidents=int(k))


@dataclass(frozen=True)
class AccountTakeover:
    """Account takeover: a fraudster logs into a customer's account and spends its card.

    Each day each customer's account is taken over with probability ``rate``. The fraudster
    logs in from a new device, behind a proxy (share ``proxy_share``; half of those exit in
    the customer's own country, to look local) or a residential IP abroad, changes the
    account's e-mail to their own, then makes about ``payments_mean`` purchases with the
    stored card over the next hours, at the customer's own online shops (where the account
    is), for amounts around ``amount_median``.
    (Sign-ups and logins are not events yet: the takeover shows at payment level only.)
    """

    rate: float = 1e-4
    payments_mean: float = 3.0
    amount_median: float = 300.0
    proxy_share: float = 0.6
    report_share: float | None = None
    name: str = "account_takeover"
    is_fraud: bool = True

    def apply(self, world: WorldContext, rng: np.random.Generator) -> FraudBatch:
        _check(self, rate=(0.0, 1.0), payments_mean=(1.0, None), amount_median=(0.0, None),
               proxy_share=(0.0, 1.0))
        pop = world.population
        customer, day = _victims(world, rng, self.rate)
        k = len(customer)
        counts = 1 + rng.poisson(self.payments_mean - 1.0, size=k)
        t0 = _start_seconds(rng, day, cat.FRAUD_HOUR_WEIGHTS)
        incident, t = _bursts(rng, t0, counts, 2 * 3600.0)
        ip = _thief_ips(rng, pop, k, self.proxy_share)
        local = rng.random(k) < self.proxy_share / 2  # a residential proxy at home
        home = pop.cust_country[customer]
        ip = np.where(local, pop.pick_ip(rng, cat.RESIDENTIAL, home), ip)
        # the customer's regular online shops are the last columns of their favourites
        online_favs = pop.cust_favorites[customer[incident], -3:]
        merchant = online_favs[np.arange(incident.size), rng.integers(0, 3, size=incident.size)]
        block = online_payments(
            pop, t=t, card=pop.card_on(customer, day)[incident], merchant=merchant,
            device=rng.choice(pop.fraud_devices, size=k)[incident], ip=ip[incident],
            email=rng.choice(pop.fraud_emails, size=k)[incident],
            amount=self.amount_median * np.exp(0.7 * rng.standard_normal(incident.size)),
            incident=incident)
        return FraudBatch(new=_within_run(block, world.days), incidents=k)


@dataclass(frozen=True)
class CompromisedTerminal:
    """A merchant's terminal in fraudsters' hands, as in the Fraud Detection Handbook.

    Each day each terminal is compromised with probability ``rate``, for ``window_days``
    days; meanwhile a share ``share`` of the in-person payments it takes are fraud.
    """

    rate: float = 1e-4
    window_days: int = 21
    share: float = 1.0
    report_share: float | None = None
    name: str = "compromised_terminal"
    is_fraud: bool = True

    def apply(self, world: WorldContext, rng: np.random.Generator) -> FraudBatch:
        _check(self, rate=(0.0, 1.0), window_days=(1.0, None), share=(0.0, 1.0))
        pop, legit, days = world.population, world.legit, world.days
        k = rng.poisson(self.rate * pop.n_terminals * days) if pop.n_terminals else 0
        terminal = rng.integers(0, max(pop.n_terminals, 1), size=k)
        first = rng.integers(0, days, size=k)
        by_terminal = np.argsort(legit.terminal, kind="stable")
        bounds = np.searchsorted(legit.terminal[by_terminal], terminal)
        ends = np.searchsorted(legit.terminal[by_terminal], terminal, side="right")
        claimed = []
        for i in range(k):
            rows = by_terminal[bounds[i]:ends[i]]
            day = legit.t[rows] // SECONDS_PER_DAY
            rows = rows[(day >= first[i]) & (day < first[i] + int(self.window_days))]
            claimed.append(rows[rng.random(rows.size) < self.share])
        rows = np.unique(np.concatenate(claimed)) if claimed else np.zeros(0, np.int64)
        return FraudBatch(claimed=rows.astype(np.int64), incidents=int(k))


@dataclass(frozen=True)
class FriendlyFraud:
    """Friendly fraud: a cardholder disputes a purchase they made themselves.

    A share ``rate`` of legitimate online payments is disputed later, and reported as
    fraud; the ground truth says ``is_fraud`` False, scenario ``friendly_fraud``: label noise
    a model cannot learn from the payment, by design.
    """

    rate: float = 2e-3
    report_share: float | None = 1.0
    name: str = "friendly_fraud"
    is_fraud: bool = False

    def apply(self, world: WorldContext, rng: np.random.Generator) -> FraudBatch:
        _check(self, rate=(0.0, 1.0))
        online = np.flatnonzero(world.legit.cnp)
        rows = online[rng.random(online.size) < self.rate]
        return FraudBatch(claimed=rows, incidents=int(rows.size))


@dataclass(frozen=True)
class AdaptiveFraud:
    """Card-not-present fraud that adapts to being caught.

    Each day each card is stolen with probability ``rate``. Until day ``shift_day`` the
    thieves behave like :class:`StolenCardCNP` (proxies and IPs abroad, resale goods, large
    amounts around ``amount_median``); from then on they route through residential proxies
    in the card's own country, keep the amounts small (around ``shifted_amount_median``),
    buy digital goods, food, rides and subscriptions, and keep daytime hours.
    """

    rate: float = 2e-4
    shift_day: int = 28
    amount_median: float = 250.0
    shifted_amount_median: float = 45.0
    report_share: float | None = None
    name: str = "adaptive_fraud"
    is_fraud: bool = True

    def apply(self, world: WorldContext, rng: np.random.Generator) -> FraudBatch:
        _check(self, rate=(0.0, 1.0), shift_day=(0.0, None), amount_median=(0.0, None),
               shifted_amount_median=(0.0, None))
        pop = world.population
        customer, day = _victims(world, rng, self.rate)
        k = len(customer)
        late = day >= self.shift_day
        counts = 1 + rng.poisson(2.5, size=k)
        t0 = np.where(late, _start_seconds(rng, day, cat.HOUR_WEIGHTS),
                      _start_seconds(rng, day, cat.FRAUD_HOUR_WEIGHTS))
        incident, t = _bursts(rng, t0, counts, 40 * 60.0)
        card = pop.card_on(customer, day)
        ip = np.where(late, pop.pick_ip(rng, cat.RESIDENTIAL, pop.card_country[card]),
                      _thief_ips(rng, pop, k, 0.5))
        resale = _or_online(pop, pop.merchants_in(cat.RESALE_CATEGORIES, online=True))
        shifted = _or_online(pop, pop.merchants_in(cat.SHIFTED_CATEGORIES, online=True))
        row_late = late[incident]
        merchant = np.where(row_late, popular(rng, shifted, pop.m_popularity, incident.size),
                            popular(rng, resale, pop.m_popularity, incident.size))
        median = np.where(row_late, self.shifted_amount_median, self.amount_median)
        amount = median * np.exp(np.where(row_late, 0.5, 0.6)
                                 * rng.standard_normal(incident.size))
        block = online_payments(
            pop, t=t, card=card[incident], merchant=merchant,
            device=rng.choice(pop.fraud_devices, size=k)[incident], ip=ip[incident],
            email=rng.choice(pop.fraud_emails, size=k)[incident], amount=amount,
            incident=incident)
        return FraudBatch(new=_within_run(block, world.days), incidents=k)


def default_scenarios() -> list[RealisticScenario]:
    """Every scenario at its default rate, in the order they are applied."""
    return [StolenCardCNP(), CardTesting(), AccountTakeover(), CompromisedTerminal(),
            FriendlyFraud(), AdaptiveFraud()]
