"""Payments as integer columns, and the legitimate behaviour of the realistic world.

Customers pay a few times a day on average, more on Fridays and Saturdays, mostly in the
daytime and the early evening (:data:`~._catalog.HOUR_WEIGHTS`). Most payments go to their
regular merchants (shops near home, a few online shops), some to any popular merchant. On a
trip they pay in shops abroad and go online from a hotel's line (IP country = destination,
card country = home) or from their phone roaming (IP country = home). Online they use their
own phone or a device shared by the household, from the household's broadband line or a
mobile carrier's NAT address shared by hundreds of customers. Card-present payments have a
terminal and no device, IP or e-mail; online (card-not-present) payments the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Self

import numpy as np

from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._entities import N_FAVORITES, Population, popular

SECONDS_PER_DAY = 86_400


class Block:
    """Rows as numpy columns (a dataclass of equally long arrays): take, concatenate."""

    def __len__(self) -> int:
        return len(getattr(self, fields(self)[0].name))  # type: ignore[arg-type]

    def take(self, rows: np.ndarray) -> Self:
        """The rows ``rows`` (a mask or indices), as a new block."""
        return type(self)(**{f.name: getattr(self, f.name)[rows]
                             for f in fields(self)})  # type: ignore[arg-type]

    @classmethod
    def concat(cls, blocks: list[Self], order: np.ndarray | None = None) -> Self:
        """The rows of ``blocks``, one after the other (then taken in ``order``, one column
        at a time, which keeps fewer large arrays alive at once)."""
        out = {}
        for f in fields(cls):  # type: ignore[arg-type]
            column = np.concatenate([getattr(b, f.name) for b in blocks])
            out[f.name] = column if order is None else column[order]
        return cls(**out)


@dataclass
class PaymentBlock(Block):
    """Payments as columns of entity indices; ``-1`` means none (e.g. no terminal online).

    ``incident`` groups the payments of one fraud incident (one stolen card, one attack), whose
    victim reports them together; it is ``-1`` for legitimate payments, and for fraud that
    nobody will ever report. ``account`` is the account a payment was made through (logged
    in), ``-1`` in person and for a guest checkout; ``declined`` the issuer's answer.
    """

    t: np.ndarray  # (n,) int64 seconds since the start
    card: np.ndarray  # (n,) int64
    merchant: np.ndarray  # (n,) int64
    terminal: np.ndarray  # (n,) int64, -1 online
    device: np.ndarray  # (n,) int64, -1 in person
    ip: np.ndarray  # (n,) int64, -1 in person
    email: np.ndarray  # (n,) int64, -1 in person
    amount: np.ndarray  # (n,) float64, rounded to cents
    cnp: np.ndarray  # (n,) bool: card not present (online)
    incident: np.ndarray  # (n,) int64
    account: np.ndarray  # (n,) int64, -1 in person or as a guest
    declined: np.ndarray  # (n,) bool: the issuer said no


def online_payments(pop: Population, *, t: np.ndarray, card: np.ndarray,
                    merchant: np.ndarray, device: np.ndarray, ip: np.ndarray,
                    email: np.ndarray, amount: np.ndarray, incident: np.ndarray,
                    account: np.ndarray | int = -1,
                    declined: np.ndarray | bool = False) -> PaymentBlock:
    """A block of card-not-present payments (no terminal), broadcasting scalars."""
    n = len(t)
    return PaymentBlock(
        t=np.asarray(t, dtype=np.int64), card=np.asarray(card, dtype=np.int64),
        merchant=np.asarray(merchant, dtype=np.int64), terminal=np.full(n, -1, np.int64),
        device=np.broadcast_to(device, n).astype(np.int64),
        ip=np.broadcast_to(ip, n).astype(np.int64),
        email=np.broadcast_to(email, n).astype(np.int64),
        amount=np.round(np.maximum(amount, 0.01), 2), cnp=np.ones(n, dtype=bool),
        incident=np.broadcast_to(incident, n).astype(np.int64),
        account=np.broadcast_to(account, n).astype(np.int64),
        declined=np.broadcast_to(declined, n).astype(bool))


def draw_amounts(rng: np.random.Generator, category: np.ndarray,
                 scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Amounts around each category's median, times a spending scale, rounded to cents."""
    median = np.array([c.median_amount for c in cat.CATEGORIES])[category]
    sigma = np.array([c.sigma for c in cat.CATEGORIES])[category]
    amount = median * scale * np.exp(sigma * rng.standard_normal(len(category)))
    return np.round(np.maximum(amount, 0.5), 2)


class LegitPayments:
    """Every customer's own payments, made one day at a time (vectorised over customers).

    Days must be asked for in order, 0, 1, 2, ...: they draw one after the other from ``rng``,
    so a day's payments do not depend on how the run is cut into chunks.
    """

    def __init__(self, pop: Population, rng: np.random.Generator, *, start_weekday: int
                 ) -> None:
        self.pop, self.rng, self.start_weekday = pop, rng, start_weekday
        self.hour_p = cat.HOUR_WEIGHTS / cat.HOUR_WEIGHTS.sum()
        fav_cdf = np.cumsum(1.0 / np.arange(1, N_FAVORITES + 1))  # the first favourite most
        self.fav_cdf = fav_cdf / fav_cdf[-1]
        # where a customer at home may explore (local shops and any online shop), and where a
        # traveller pays in person
        self.explore_pool = [np.flatnonzero(((pop.m_country == k) & ~pop.m_online)
                                            | pop.m_online) for k in range(cat.N_HOME)]
        self.abroad_pool = {int(k): np.flatnonzero((pop.m_country == k) & ~pop.m_online)
                            for k in cat.TRAVEL_COUNTRIES}
        self.n_terms = np.diff(pop.m_term_offsets)
        self.n_shared = np.diff(pop.hh_dev_offsets)
        self.trip_key = pop.trip_customer * (pop.days + 1) + pop.trip_start
        self.customers = np.arange(pop.n_customers, dtype=np.int64)

    def day(self, day: int) -> PaymentBlock:
        """The legitimate payments of ``day`` (0 is the run's first), in customer order."""
        pop, rng, days = self.pop, self.rng, self.pop.days
        lam = pop.cust_rate * cat.WEEKDAY_FACTORS[(self.start_weekday + day) % 7]
        counts = rng.poisson(lam)
        counts[pop.cust_signup_day > day] = 0  # new customers pay from their sign-up on
        c = np.repeat(self.customers, counts)  # (m,)
        m = c.size
        t = (day * SECONDS_PER_DAY + rng.choice(24, size=m, p=self.hour_p) * 3600
             + rng.integers(0, 3600, size=m))
        country = pop.cust_country[c]

        # abroad? the latest trip that started by today and has not ended
        travelling = np.zeros(m, dtype=bool)
        where = country
        if self.trip_key.size:
            pos = np.searchsorted(self.trip_key, c * (days + 1) + day, side="right") - 1
            safe = np.maximum(pos, 0)
            travelling = ((pos >= 0) & (pop.trip_customer[safe] == c)
                          & (day < pop.trip_end[safe]))
            where = np.where(travelling, pop.trip_country[safe], country)

        # merchant: a regular, an explored one, or a shop abroad
        merchant = pop.cust_favorites[c, np.searchsorted(self.fav_cdf, rng.random(m))]
        u = rng.random(m)
        explore = (u < 0.2) & ~travelling
        for k in range(cat.N_HOME):
            rows = np.flatnonzero(explore & (country == k))
            if rows.size and self.explore_pool[k].size:
                merchant[rows] = popular(rng, self.explore_pool[k], pop.m_popularity, rows.size)
        in_shop_abroad = travelling & (u < 0.75)
        for k, pool in self.abroad_pool.items():
            rows = np.flatnonzero(in_shop_abroad & (where == k))
            if rows.size and pool.size:
                merchant[rows] = popular(rng, pool, pop.m_popularity, rows.size)

        cnp = pop.m_online[merchant]
        terminal = np.where(
            cnp, -1, pop.m_term_offsets[merchant]
            + rng.integers(0, np.maximum(self.n_terms[merchant], 1)))

        # device: the customer's phone, or one the household shares
        hh = pop.cust_household[c]
        k_shared = self.n_shared[hh]
        shared = (rng.random(m) < 0.35) & (k_shared > 0)
        device = pop.cust_phone[c]
        rows = np.flatnonzero(shared)
        device[rows] = pop.hh_devices[pop.hh_dev_offsets[hh[rows]]
                                      + rng.integers(0, k_shared[rows])]
        # IP: home broadband; a phone often goes through the carrier's NAT; abroad, a hotel's
        # line (IP country = destination) or the phone roaming (IP country = home)
        ip = pop.hh_ip[hh]
        on_carrier = ~shared & pop.cust_mobile[c] & (rng.random(m) < 0.7)
        hotel = travelling & (rng.random(m) < 0.6)
        on_carrier |= travelling & ~hotel
        rows = np.flatnonzero(on_carrier)
        ip[rows] = pop.pick_ip(rng, cat.CARRIER_NAT, country[rows])
        rows = np.flatnonzero(hotel)
        ip[rows] = pop.pick_ip(rng, cat.RESIDENTIAL, where[rows])

        amount = draw_amounts(rng, pop.m_category[merchant], pop.cust_scale[c])
        none = np.full(m, -1, dtype=np.int64)
        return PaymentBlock(
            t=t.astype(np.int64), card=pop.card_on(c, np.full(m, day)), merchant=merchant,
            terminal=terminal, device=np.where(cnp, device, none),
            ip=np.where(cnp, ip, none), email=np.where(cnp, pop.cust_email[c], none),
            amount=amount, cnp=cnp, incident=none, account=none.copy(),
            declined=np.zeros(m, dtype=bool))
