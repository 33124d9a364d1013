"""The population of the realistic world: customers, households, cards, devices, IP
addresses, e-mails, merchants and terminals, drawn once per run as numpy columns.

Every entity is an integer index into its own arrays; only the final tables turn indices into
string ids. Identity attributes that payments do not carry (a customer's account age, a
card's issuer, a device's OS, an IP's kind) are kept here and published as the world's
``customers_``, ``cards_``, ``merchants_``, ``devices_`` and ``ips_`` tables.

Besides the legitimate population the world holds the *fraudsters' pools*: devices, e-mail
addresses, residential IPs abroad and datacenter/proxy IPs that only fraud scenarios use, so a
stolen card shows up from a device and an address its owner never had.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from vigil.simulate.realistic import _catalog as cat

_NEVER = np.iinfo(np.int32).max


@dataclass(frozen=True)
class PopulationParams:
    """The checked parameters that shape a population (see :class:`RealisticWorld`)."""

    n_customers: int
    n_merchants: int
    payments_per_day: float
    household_size: float
    new_customer_share: float
    card_replacements_per_year: float
    trips_per_year: float
    carrier_nat_users: int


@dataclass
class Population:
    """Entities as numpy columns; ``days`` is the length of the run they were drawn for."""

    days: int
    # customers (n_customers,)
    cust_country: np.ndarray  # int: index into COUNTRIES
    cust_household: np.ndarray
    cust_signup_day: np.ndarray  # day the account opened; < 0: before the start
    cust_rate: np.ndarray  # mean payments per day
    cust_scale: np.ndarray  # spending scale, multiplies every amount
    cust_phone: np.ndarray  # device index of the customer's own phone
    cust_mobile: np.ndarray  # bool: the phone goes online through a carrier NAT
    cust_email: np.ndarray  # e-mail index
    cust_favorites: np.ndarray  # (n_customers, K) merchant indices, most used first
    cust_card: np.ndarray  # the first card
    cust_new_card: np.ndarray  # the card that replaces it, or -1
    cust_replace_day: np.ndarray  # day the replacement takes over (huge when never)
    # households
    hh_ip: np.ndarray  # broadband IP index of each household
    hh_dev_offsets: np.ndarray  # CSR: household h shares hh_devices[off[h]:off[h+1]]
    hh_devices: np.ndarray
    # cards (n_cards,)
    card_owner: np.ndarray
    card_country: np.ndarray
    card_issuer: np.ndarray
    card_first_day: np.ndarray
    # devices (n_devices,)
    dev_os: np.ndarray
    dev_fraud: np.ndarray  # bool: in the fraudsters' pool
    # IPs (n_ips,)
    ip_country: np.ndarray
    ip_kind: np.ndarray
    ip_pool_start: np.ndarray  # (4, n_countries): first IP of each (kind, country) pool
    ip_pool_size: np.ndarray  # (4, n_countries)
    # e-mails (n_emails,)
    email_domain: np.ndarray  # index into DOMAINS
    email_fraud: np.ndarray  # bool: in the fraudsters' pool
    # merchants (n_merchants,) and terminals
    m_category: np.ndarray
    m_country: np.ndarray
    m_online: np.ndarray
    m_popularity: np.ndarray
    m_term_offsets: np.ndarray  # CSR: merchant m owns terminals off[m] .. off[m+1]-1
    # trips, sorted by (customer, start)
    trip_customer: np.ndarray
    trip_start: np.ndarray
    trip_end: np.ndarray  # exclusive day
    trip_country: np.ndarray
    # the fraudsters' pools (index arrays)
    fraud_devices: np.ndarray
    fraud_emails: np.ndarray
    disposable_emails: np.ndarray

    @property
    def n_customers(self) -> int:
        return len(self.cust_country)

    @property
    def n_cards(self) -> int:
        return len(self.card_owner)

    @property
    def n_merchants(self) -> int:
        return len(self.m_category)

    @property
    def n_terminals(self) -> int:
        return int(self.m_term_offsets[-1])

    def card_on(self, customer: np.ndarray, day: np.ndarray) -> np.ndarray:
        """The card each customer pays with on each day (the replacement once it came)."""
        replaced = day >= self.cust_replace_day[customer]
        return np.where(replaced, self.cust_new_card[customer], self.cust_card[customer])

    def active(self, customer: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Whether each customer had an account on each day."""
        return self.cust_signup_day[customer] <= day

    def pick_ip(self, rng: np.random.Generator, kind: int, country: np.ndarray) -> np.ndarray:
        """One random IP of ``kind`` in each of ``country`` (pools must not be empty)."""
        size = self.ip_pool_size[kind, country]
        return self.ip_pool_start[kind, country] + rng.integers(0, size)

    def merchants_in(self, categories: np.ndarray, online: bool | None = None) -> np.ndarray:
        """Merchants of any of ``categories`` (and of that channel, if given)."""
        mask = np.isin(self.m_category, categories)
        if online is not None:
            mask &= self.m_online == online
        return np.flatnonzero(mask)


def draw_population(p: PopulationParams, days: int, rng: np.random.Generator) -> Population:
    """Draw every entity of a world of ``p``'s size for a run of ``days`` days."""
    n = p.n_customers
    n_countries = len(cat.COUNTRIES)
    # -- households and customers: people of a household share a country and devices
    sizes = 1 + rng.poisson(max(p.household_size - 1.0, 0.0), size=n)  # enough households
    household = np.repeat(np.arange(n), sizes)[:n]
    n_households = int(household[-1]) + 1
    hh_country = rng.choice(cat.N_HOME, size=n_households, p=cat.HOME_COUNTRY_WEIGHTS)
    country = hh_country[household]
    new = rng.random(n) < p.new_customer_share
    signup = np.where(new, rng.integers(0, max(days, 1), size=n),
                      -np.ceil(rng.exponential(900.0, size=n)).astype(np.int64) - 1)
    rate = p.payments_per_day * rng.gamma(2.0, 0.5, size=n)  # mean payments_per_day
    scale = rng.lognormal(0.0, 0.45, size=n)

    # -- devices: each customer's phone, then 0..3 shared devices per household, then fraud
    n_shared = np.minimum(rng.poisson(0.9, size=n_households), 3)
    n_fraud_dev = 100 + n // 10
    phone_os = rng.choice(len(cat.DEVICE_OS), size=n, p=cat.PHONE_OS_WEIGHTS)
    shared_os = rng.choice(len(cat.DEVICE_OS), size=int(n_shared.sum()), p=cat.SHARED_OS_WEIGHTS)
    fraud_os = rng.choice(len(cat.DEVICE_OS), size=n_fraud_dev, p=cat.FRAUD_OS_WEIGHTS)
    dev_os = np.concatenate([phone_os, shared_os, fraud_os])
    hh_dev_offsets = np.concatenate([[0], np.cumsum(n_shared)]).astype(np.int64)
    hh_devices = n + np.arange(int(n_shared.sum()), dtype=np.int64)
    fraud_devices = n + len(shared_os) + np.arange(n_fraud_dev, dtype=np.int64)
    dev_fraud = np.zeros(len(dev_os), dtype=bool)
    dev_fraud[fraud_devices] = True

    # -- IP addresses, in pools by (kind, country)
    per_country = np.bincount(country, minlength=n_countries)
    pool_size = np.zeros((4, n_countries), dtype=np.int64)
    pool_size[cat.CARRIER_NAT, :cat.N_HOME] = np.maximum(
        2, per_country[:cat.N_HOME] // p.carrier_nat_users)
    pool_size[cat.RESIDENTIAL, cat.TRAVEL_COUNTRIES] = max(5, n // 400)
    pool_size[cat.RESIDENTIAL, cat.FRAUD_COUNTRIES] = max(20, n // 100)
    pool_size[cat.DATACENTER, cat.DATACENTER_COUNTRIES] = max(10, n // 1000)
    pool_start = n_households + np.concatenate(
        [[0], np.cumsum(pool_size[1:].ravel())[:-1]]).reshape(3, n_countries)
    pool_start = np.vstack([np.zeros((1, n_countries), dtype=np.int64), pool_start])
    ip_country = np.concatenate([hh_country, np.repeat(
        np.tile(np.arange(n_countries), 3), pool_size[1:].ravel())])
    ip_kind = np.concatenate([np.zeros(n_households, dtype=np.int64),
                              np.repeat(np.repeat(np.arange(1, 4), n_countries),
                                        pool_size[1:].ravel())])

    # -- e-mails: one per customer (a few on disposable domains), then the fraudsters' pool
    n_fraud_email = 200 + n // 5
    legit_domain = rng.choice(len(cat.FREEMAIL_DOMAINS), size=n,
                              p=cat.FREEMAIL_WEIGHTS / cat.FREEMAIL_WEIGHTS.sum())
    odd = rng.random(n) < 0.005  # some real people do sign up with a throwaway address
    legit_domain[odd] = len(cat.FREEMAIL_DOMAINS) + rng.integers(
        0, len(cat.DISPOSABLE_DOMAINS), size=int(odd.sum()))
    fraud_disposable = rng.random(n_fraud_email) < 0.5
    fraud_domain = np.where(
        fraud_disposable,
        len(cat.FREEMAIL_DOMAINS) + rng.integers(0, len(cat.DISPOSABLE_DOMAINS),
                                                 size=n_fraud_email),
        rng.choice(len(cat.FREEMAIL_DOMAINS), size=n_fraud_email,
                   p=cat.FREEMAIL_WEIGHTS / cat.FREEMAIL_WEIGHTS.sum()))
    email_domain = np.concatenate([legit_domain, fraud_domain])
    email_fraud = np.arange(len(email_domain)) >= n
    fraud_emails = np.arange(n, n + n_fraud_email, dtype=np.int64)
    disposable_emails = fraud_emails[fraud_disposable]

    # -- cards: one per customer, some replaced during the run (expired, lost, reissued)
    replace_p = 1.0 - np.exp(-p.card_replacements_per_year * days / 365.0)
    replaced = rng.random(n) < replace_p
    replace_day = np.where(replaced, rng.integers(1, max(days, 2), size=n), _NEVER)
    replace_day = np.maximum(replace_day, signup + 1)
    replaced &= replace_day < days
    new_card = np.full(n, -1, dtype=np.int64)
    new_card[replaced] = n + np.arange(int(replaced.sum()))
    card_owner = np.concatenate([np.arange(n), np.flatnonzero(replaced)])
    foreign_bin = rng.random(len(card_owner)) < 0.02  # a card from a bank abroad
    card_country = np.where(foreign_bin, rng.integers(0, 15, size=len(card_owner)),
                            country[card_owner])
    card_issuer = card_country * 4 + rng.integers(0, 4, size=len(card_owner))
    card_first_day = np.concatenate([signup, replace_day[replaced]])

    # -- merchants: most in the home countries, some at travel destinations
    n_m = p.n_merchants
    cat_pop = np.array([c.popularity for c in cat.CATEGORIES])
    m_category = rng.choice(len(cat.CATEGORIES), size=n_m, p=cat_pop / cat_pop.sum())
    online_share = np.array([c.online_share for c in cat.CATEGORIES])
    m_online = rng.random(n_m) < online_share[m_category]
    abroad = rng.random(n_m) < 0.15
    m_country = np.where(
        abroad, cat.TRAVEL_COUNTRIES[rng.integers(0, len(cat.TRAVEL_COUNTRIES), size=n_m)],
        rng.choice(cat.N_HOME, size=n_m, p=cat.HOME_COUNTRY_WEIGHTS))
    # every travel destination has somewhere to pay in person
    first = cat.TRAVEL_COUNTRIES[: min(n_m, len(cat.TRAVEL_COUNTRIES))]
    m_country[: len(first)] = first
    m_online[: len(first)] = False
    m_popularity = rng.pareto(1.5, size=n_m) + 1.0  # a few merchants take much of the trade
    n_terms = np.where(m_online, 0, 1 + rng.poisson(1.5, size=n_m))
    m_term_offsets = np.concatenate([[0], np.cumsum(n_terms)]).astype(np.int64)

    favorites = _draw_favorites(rng, country, m_country, m_online, m_popularity)

    # -- trips abroad
    n_trips = rng.poisson(p.trips_per_year * days / 365.0, size=n)
    trip_customer = np.repeat(np.arange(n), n_trips)
    trip_start = rng.integers(0, max(days, 1), size=trip_customer.size)
    trip_len = 2 + rng.geometric(0.2, size=trip_customer.size)
    tw = cat.TRAVEL_WEIGHTS.copy()
    trip_country = rng.choice(cat.TRAVEL_COUNTRIES, size=trip_customer.size, p=tw / tw.sum())
    home = trip_country == country[trip_customer]  # nobody travels abroad to their own country
    trip_country[home] = cat.COUNTRIES.index("GB")
    order = np.lexsort((trip_start, trip_customer))

    return Population(
        days=days, cust_country=country, cust_household=household,
        cust_signup_day=signup.astype(np.int64), cust_rate=rate, cust_scale=scale,
        cust_phone=np.arange(n, dtype=np.int64), cust_mobile=rng.random(n) < 0.55,
        cust_email=np.arange(n, dtype=np.int64), cust_favorites=favorites,
        cust_card=np.arange(n, dtype=np.int64), cust_new_card=new_card,
        cust_replace_day=np.where(replaced, replace_day, _NEVER).astype(np.int64),
        hh_ip=np.arange(n_households, dtype=np.int64), hh_dev_offsets=hh_dev_offsets,
        hh_devices=hh_devices, card_owner=card_owner.astype(np.int64),
        card_country=card_country, card_issuer=card_issuer,
        card_first_day=card_first_day.astype(np.int64), dev_os=dev_os, dev_fraud=dev_fraud,
        ip_country=ip_country, ip_kind=ip_kind, ip_pool_start=pool_start,
        ip_pool_size=pool_size, email_domain=email_domain, email_fraud=email_fraud,
        m_category=m_category, m_country=m_country, m_online=m_online,
        m_popularity=m_popularity, m_term_offsets=m_term_offsets,
        trip_customer=trip_customer[order], trip_start=trip_start[order],
        trip_end=(trip_start + trip_len)[order], trip_country=trip_country[order],
        fraud_devices=fraud_devices, fraud_emails=fraud_emails,
        disposable_emails=disposable_emails)


N_FAVORITES = 10
_N_LOCAL_FAVORITES = 7


def _draw_favorites(rng: np.random.Generator, country: np.ndarray, m_country: np.ndarray,
                    m_online: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Each customer's regular merchants: shops near home, then online shops, by popularity."""
    n = len(country)
    fav = np.empty((n, N_FAVORITES), dtype=np.int64)
    online = np.flatnonzero(m_online)
    if online.size == 0:
        online = np.arange(len(m_country))
    fav[:, _N_LOCAL_FAVORITES:] = popular(rng, online, popularity,
                                          (n, N_FAVORITES - _N_LOCAL_FAVORITES))
    for k in range(cat.N_HOME):
        who = np.flatnonzero(country == k)
        local = np.flatnonzero((m_country == k) & ~m_online)
        if local.size == 0:
            local = online
        fav[who, :_N_LOCAL_FAVORITES] = popular(rng, local, popularity,
                                                (who.size, _N_LOCAL_FAVORITES))
    return fav


def popular(rng: np.random.Generator, among: np.ndarray, popularity: np.ndarray,
            size: int | tuple[int, ...]) -> np.ndarray:
    """Merchants drawn from ``among`` in proportion to their popularity."""
    cdf = np.cumsum(popularity[among])
    u = rng.random(size) * cdf[-1]
    return among[np.minimum(np.searchsorted(cdf, u, side="right"), among.size - 1)]


# -- string ids and published tables ------------------------------------------------------------


def ip_strings(pop: Population) -> pa.Array:
    """Dotted-quad addresses: each (kind, country) gets its own first octet."""
    n = len(pop.ip_kind)
    first = 11 + pop.ip_kind * len(cat.COUNTRIES) + pop.ip_country
    # a serial number within the /8, spread out by an odd multiplier (a bijection mod 2^24)
    serial = (np.arange(n, dtype=np.int64) * 2_654_435 + 1) % (1 << 24)
    octets = np.stack([first, serial >> 16, (serial >> 8) & 255, serial & 255], axis=1)
    octets[:, 3] = np.maximum(octets[:, 3], 1)
    return pa.array([f"{a}.{b}.{c}.{d}" for a, b, c, d in octets.tolist()], pa.string())


def email_strings(pop: Population, start: int = 0) -> pa.Array:
    """``name.x123@domain`` addresses, unique by construction (the index is in them), of the
    e-mails from ``start`` on."""
    names = cat.FIRST_NAMES
    out = [f"{names[i % len(names)]}.{'xq'[int(f)]}{i}@{cat.DOMAINS[d]}"
           for i, (d, f) in enumerate(zip(pop.email_domain[start:].tolist(),
                                          pop.email_fraud[start:].tolist(), strict=True),
                                      start=start)]
    return pa.array(out, pa.string())


def country_strings(codes: np.ndarray) -> pa.Array:
    """Country codes (ISO 3166-1 alpha-2) for an array of country indices."""
    return pa.array(cat.COUNTRIES, pa.string()).take(pa.array(codes, pa.int64()))


def describe(pop: Population) -> dict[str, Any]:
    """Counts of every kind of entity, for ``dataset.json``."""
    return {
        "customers": pop.n_customers,
        "households": len(pop.hh_ip),
        "cards": pop.n_cards,
        "devices": len(pop.dev_os),
        "ips": len(pop.ip_kind),
        "emails": len(pop.email_domain),
        "merchants": pop.n_merchants,
        "terminals": pop.n_terminals,
        "trips": len(pop.trip_customer),
        "new_customers": int(np.count_nonzero(pop.cust_signup_day >= 0)),
        "replaced_cards": int(np.count_nonzero(pop.cust_new_card >= 0)),
    }


class NewCustomers:
    """Customers that fraud scenarios create (synthetic identities), one card each.

    They are numbered after the population's customers and cards, in the order scenarios
    register them, so that their ids look like everybody else's.
    """

    def __init__(self, pop: Population) -> None:
        self._first_customer = pop.n_customers
        self._first_card = pop.n_cards
        self._country: list[np.ndarray] = []
        self._first_day: list[np.ndarray] = []

    def add(self, country: np.ndarray, first_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Register customers living in ``country`` whose card works from ``first_day``;
        returns their customer and card indices."""
        offset = len(self)
        self._country.append(np.asarray(country, dtype=np.int64))
        self._first_day.append(np.asarray(first_day, dtype=np.int64))
        local = offset + np.arange(len(country), dtype=np.int64)
        return self._first_customer + local, self._first_card + local

    def __len__(self) -> int:
        return sum(len(c) for c in self._country)

    @property
    def country(self) -> np.ndarray:
        return np.concatenate([np.zeros(0, np.int64), *self._country])

    @property
    def first_day(self) -> np.ndarray:
        return np.concatenate([np.zeros(0, np.int64), *self._first_day])
