"""Fraud scenarios of the realistic world, as pluggable objects.

A scenario plans its run from the population and the accounts (:class:`WorldContext`), then
steps through the days, seeing each day's legitimate payments and logins
(:class:`DayContext`), and returns :class:`FraudBatch` es: new payments it made (a thief's),
legitimate payments it claims (a skimmed terminal's, a disputed purchase), and the accounts,
account events and verification sessions it caused. Each has a ``rate`` and a unique
``name``, the ``scenario`` of its payments in the ground truth, which is never a feature.
Thieves who only need the population are drawn entirely up front (:class:`Planned`).

Scenarios that *claim* payments are applied in order: a later one re-names a payment an
earlier one claimed. Frauds that add payments never collide.

Each draws only from the generator it is given, so switching one scenario off (``rate=0``)
leaves the legitimate payments and every other scenario's draws as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._context import (
    DayContext,
    FraudBatch,
    Planned,
    RealisticScenario,
    WorldContext,
    bursts,
    check_params,
    or_online,
    start_seconds,
    thief_ips,
    victims,
    within_run,
)
from vigil.simulate.realistic._entities import popular
from vigil.simulate.realistic._legit import online_payments
from vigil.simulate.realistic._rings import SyntheticIdentityRing
from vigil.simulate.realistic._takeover import AccountTakeover

# -- the scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StolenCardCNP:
    """Stolen card details spent online (card not present).

    Each day each card is stolen with probability ``rate``. The thief spends it in a burst of
    about ``burst_mean`` payments, ``gap_minutes`` apart on average, from a device and an
    e-mail of the fraudsters' pool, behind a datacenter/proxy IP (share ``proxy_share``) or a
    residential IP in a fraud country, at merchants whose goods resell (electronics, jewelry,
    gift cards), for amounts around ``amount_median``, at any hour, as a guest (no account).
    The issuer declines a share ``decline_share`` of the payments.
    """

    rate: float = 3e-4
    burst_mean: float = 4.0
    gap_minutes: float = 25.0
    amount_median: float = 220.0
    proxy_share: float = 0.5
    decline_share: float = 0.08
    report_share: float | None = None
    name: str = "stolen_card_cnp"
    is_fraud: bool = True

    def plan(self, world: WorldContext, rng: np.random.Generator) -> Planned:
        check_params(self, rate=(0.0, 1.0), burst_mean=(1.0, None), gap_minutes=(0.0, None),
               amount_median=(0.0, None), proxy_share=(0.0, 1.0), decline_share=(0.0, 1.0))
        pop = world.population
        customer, day = victims(world, rng, self.rate)
        counts = 1 + rng.poisson(self.burst_mean - 1.0, size=len(customer))
        t0 = start_seconds(rng, day, cat.FRAUD_HOUR_WEIGHTS)
        incident, t = bursts(rng, t0, counts, self.gap_minutes * 60.0)
        resale = or_online(pop, pop.merchants_in(cat.RESALE_CATEGORIES, online=True))
        block = online_payments(
            pop, t=t, card=pop.card_on(customer, day)[incident],
            merchant=popular(rng, resale, pop.m_popularity, incident.size),
            device=rng.choice(pop.fraud_devices, size=len(customer))[incident],
            ip=thief_ips(rng, pop, len(customer), self.proxy_share)[incident],
            email=rng.choice(pop.fraud_emails, size=len(customer))[incident],
            amount=self.amount_median * np.exp(0.6 * rng.standard_normal(incident.size)),
            incident=incident, declined=rng.random(incident.size) < self.decline_share)
        return Planned(FraudBatch(new=within_run(block, world.days), incidents=len(customer)))


@dataclass(frozen=True)
class CardTesting:
    """Card testing: a fraudster checks which stolen card numbers work.

    ``rate`` attacks per day per 10,000 cards. An attack tries about ``cards_mean`` different
    cards within ``window_minutes``, from one device and one datacenter IP, at one online
    merchant that takes tiny payments (a charity, a digital-goods shop), for 0.50 to 3.00,
    each with a throwaway e-mail. Most of the numbers are dead (blocked, expired, mistyped):
    the issuer declines a share ``decline_share`` of the tries. Cardholders rarely notice:
    ``report_share`` 0.2.
    """

    rate: float = 1.0
    cards_mean: float = 30.0
    window_minutes: float = 8.0
    decline_share: float = 0.85
    report_share: float | None = 0.2
    name: str = "card_testing"
    is_fraud: bool = True

    def plan(self, world: WorldContext, rng: np.random.Generator) -> Planned:
        check_params(self, rate=(0.0, None), cards_mean=(1.0, None),
                     window_minutes=(0.0, None), decline_share=(0.0, 1.0))
        pop, days = world.population, world.days
        k = rng.poisson(self.rate * pop.n_cards / 10_000 * days)
        day = rng.integers(0, days, size=k)
        t0 = start_seconds(rng, day, cat.FRAUD_HOUR_WEIGHTS)
        counts = np.maximum(1, rng.poisson(self.cards_mean, size=k))
        attack = np.repeat(np.arange(k, dtype=np.int64), counts)
        t = t0[attack] + rng.integers(0, max(int(self.window_minutes * 60), 1), size=attack.size)
        # cards of customers with an account that day (a leaked list of real cards)
        customer = rng.integers(0, pop.n_customers, size=attack.size)
        ok = pop.active(customer, day[attack])
        attack, t, customer = attack[ok], t[ok], customer[ok]
        targets = or_online(pop, pop.merchants_in(cat.TESTING_CATEGORIES, online=True))
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
            incident=np.arange(attack.size, dtype=np.int64),
            declined=rng.random(attack.size) < self.decline_share)
        return Planned(FraudBatch(new=within_run(block, days), incidents=int(k)))


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

    def plan(self, world: WorldContext, rng: np.random.Generator) -> _CompromisedTerminals:
        check_params(self, rate=(0.0, 1.0), window_days=(1.0, None), share=(0.0, 1.0))
        pop, days = world.population, world.days
        k = rng.poisson(self.rate * pop.n_terminals * days) if pop.n_terminals else 0
        terminal = rng.integers(0, max(pop.n_terminals, 1), size=k)
        first = rng.integers(0, days, size=k)
        return _CompromisedTerminals(self, rng, terminal, first)


class _CompromisedTerminals:
    """Which terminals are compromised from which day: each day, their payments."""

    def __init__(self, scenario: CompromisedTerminal, rng: np.random.Generator,
                 terminal: np.ndarray, first: np.ndarray) -> None:
        self.share, self.window = scenario.share, int(scenario.window_days)
        self.rng, self.terminal, self.first = rng, terminal, first

    def step(self, day: DayContext) -> FraudBatch:
        legit, d = day.legit, day.day
        claimed = []
        for i in np.flatnonzero((self.first <= d) & (d < self.first + self.window)).tolist():
            rows = np.flatnonzero(legit.terminal == self.terminal[i])
            claimed.append(rows[self.rng.random(rows.size) < self.share])
        rows = np.unique(np.concatenate(claimed)) if claimed else np.zeros(0, np.int64)
        return FraudBatch(claimed=rows.astype(np.int64),
                          incidents=self.terminal.size if d == 0 else 0)


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

    def plan(self, world: WorldContext, rng: np.random.Generator) -> _Disputes:
        check_params(self, rate=(0.0, 1.0))
        return _Disputes(self.rate, rng)


class _Disputes:
    """Each day, a share of the day's legitimate online payments that will be disputed."""

    def __init__(self, rate: float, rng: np.random.Generator) -> None:
        self.rate, self.rng = rate, rng

    def step(self, day: DayContext) -> FraudBatch:
        online = np.flatnonzero(day.legit.cnp)
        rows = online[self.rng.random(online.size) < self.rate]
        return FraudBatch(claimed=rows, incidents=int(rows.size))


@dataclass(frozen=True)
class AdaptiveFraud:
    """Card-not-present fraud that adapts to being caught.

    Each day each card is stolen with probability ``rate``. Until day ``shift_day`` the
    thieves behave like :class:`StolenCardCNP` (proxies and IPs abroad, resale goods, large
    amounts around ``amount_median``); from then on they route through residential proxies
    in the card's own country, keep the amounts small (around ``shifted_amount_median``),
    buy digital goods, food, rides and subscriptions, and keep daytime hours. The issuer
    declines a share ``decline_share`` of the payments.
    """

    rate: float = 2e-4
    shift_day: int = 28
    amount_median: float = 250.0
    shifted_amount_median: float = 45.0
    decline_share: float = 0.05
    report_share: float | None = None
    name: str = "adaptive_fraud"
    is_fraud: bool = True

    def plan(self, world: WorldContext, rng: np.random.Generator) -> Planned:
        check_params(self, rate=(0.0, 1.0), shift_day=(0.0, None), amount_median=(0.0, None),
               shifted_amount_median=(0.0, None), decline_share=(0.0, 1.0))
        pop = world.population
        customer, day = victims(world, rng, self.rate)
        k = len(customer)
        late = day >= self.shift_day
        counts = 1 + rng.poisson(2.5, size=k)
        t0 = np.where(late, start_seconds(rng, day, cat.HOUR_WEIGHTS),
                      start_seconds(rng, day, cat.FRAUD_HOUR_WEIGHTS))
        incident, t = bursts(rng, t0, counts, 40 * 60.0)
        card = pop.card_on(customer, day)
        ip = np.where(late, pop.pick_ip(rng, cat.RESIDENTIAL, pop.card_country[card]),
                      thief_ips(rng, pop, k, 0.5))
        resale = or_online(pop, pop.merchants_in(cat.RESALE_CATEGORIES, online=True))
        shifted = or_online(pop, pop.merchants_in(cat.SHIFTED_CATEGORIES, online=True))
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
            incident=incident, declined=rng.random(incident.size) < self.decline_share)
        return Planned(FraudBatch(new=within_run(block, world.days), incidents=k))


def default_scenarios() -> list[RealisticScenario]:
    """Every scenario at its default rate, in the order they are applied."""
    return [StolenCardCNP(), CardTesting(), AccountTakeover(), CompromisedTerminal(),
            FriendlyFraud(), AdaptiveFraud(), SyntheticIdentityRing()]
