"""Synthetic identities opened by a fraud ring, which build trust and then bust out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._accounts import (
    AccountBlock,
    EventBlock,
    SessionBlock,
    hour_seconds,
)
from vigil.simulate.realistic._context import (
    FraudBatch,
    Planned,
    WorldContext,
    check_params,
    or_online,
)
from vigil.simulate.realistic._entities import popular
from vigil.simulate.realistic._identity import (
    DAYS_PER_YEAR,
    document_numbers,
    new_faces,
    postal_addresses,
    selfies,
)
from vigil.simulate.realistic._legit import SECONDS_PER_DAY, PaymentBlock, online_payments


@dataclass(frozen=True)
class SyntheticIdentityRing:
    """A fraud ring opens accounts under made-up identities, earns trust, then busts out.

    ``rate`` rings start per day per 10,000 customers. A ring works in one country: over
    ``signup_days`` days it opens about ``accounts_mean`` accounts from its two to four
    devices and two to four IPs (residential proxies in that country, or datacenters), with
    addresses from one to three mail drops and e-mails of the fraudsters' pool. Each
    identity is invented: a common first name and one of a few surnames, an adult's date of
    birth. A share ``verified_share`` of the sign-ups pass an identity verification with a
    forged document made from one template: the same type, issuer and expiry date, numbers
    in one series (now and then one number used twice); on half of them the name, on half
    the date of birth, is the template's rather than the one claimed; the selfie is one of
    the ring's two or three members, so one face appears under many names.

    For ``trust_days`` days the accounts pay small amounts (around ``trust_amount_median``,
    about ``trust_payments_per_day`` a day) at everyday online shops, logged in from the
    ring's devices: nobody will ever report those. Then, within ``bustout_hours``, every
    account spends: about ``bustout_payments_mean`` payments around
    ``bustout_amount_median`` at electronics, jewelry and gift-card shops; the issuer
    declines a share ``bustout_decline_share``. Each account's bust-out is an incident that
    the issuer reports as fraud. Truth: every payment, account, login and session of the
    ring is fraud (scenario ``synthetic_identity_ring``, incident = the ring).
    """

    rate: float = 0.06
    accounts_mean: float = 12.0
    signup_days: int = 14
    trust_days: int = 35
    trust_payments_per_day: float = 0.4
    trust_amount_median: float = 25.0
    bustout_hours: float = 36.0
    bustout_payments_mean: float = 6.0
    bustout_amount_median: float = 600.0
    bustout_decline_share: float = 0.25
    verified_share: float = 0.8
    report_share: float | None = None
    name: str = "synthetic_identity_ring"
    is_fraud: bool = True

    def plan(self, world: WorldContext, rng: np.random.Generator) -> Planned:
        check_params(self, rate=(0.0, None), accounts_mean=(1.0, None),
                     signup_days=(1.0, None), trust_days=(0.0, None),
                     trust_payments_per_day=(0.0, None), trust_amount_median=(0.0, None),
                     bustout_hours=(0.0, None), bustout_payments_mean=(1.0, None),
                     bustout_amount_median=(0.0, None), bustout_decline_share=(0.0, 1.0),
                     verified_share=(0.0, 1.0))
        pop, days = world.population, world.days
        lead = int(self.signup_days) + int(self.trust_days)
        k = rng.poisson(self.rate * pop.n_customers / 10_000 * (days + lead))
        first_day = rng.integers(-lead, max(days, 1), size=k)  # bust-outs all over the run
        rings = [self._ring(world, rng, i, int(first_day[i])) for i in range(k)]
        rings = [r for r in rings if r is not None]
        if not rings:
            return Planned(FraudBatch(incidents=0))
        offsets = np.cumsum([0] + [len(r[0]) for r in rings])[:-1]
        for (_, _, _, payments), offset in zip(rings, offsets, strict=True):
            payments.incident = np.where(payments.incident >= 0, payments.incident + offset, -1)
        return Planned(FraudBatch(
            new=PaymentBlock.concat([r[3] for r in rings]), incidents=k,
            accounts=AccountBlock.concat([r[0] for r in rings]),
            events=EventBlock.concat([r[1] for r in rings]),
            sessions=SessionBlock.concat([r[2] for r in rings])))

    def _ring(self, world: WorldContext, rng: np.random.Generator, ring: int, first_day: int
              ) -> tuple[AccountBlock, EventBlock, SessionBlock, PaymentBlock] | None:
        """One ring's accounts, logins, sessions and payments (accounts numbered from 0)."""
        pop = world.population
        end = world.days * SECONDS_PER_DAY
        country = int(rng.choice(cat.N_HOME, p=cat.HOME_COUNTRY_WEIGHTS))
        m = max(3, int(rng.poisson(self.accounts_mean)))
        # the ring's means: devices, IPs, mail drops, members' faces
        devices = rng.choice(pop.fraud_devices, size=int(rng.integers(2, 5)), replace=False)
        n_ip = int(rng.integers(2, 5))
        dc = cat.DATACENTER_COUNTRIES[rng.integers(0, len(cat.DATACENTER_COUNTRIES), size=n_ip)]
        ips = np.where(rng.random(n_ip) < 0.6,
                       pop.pick_ip(rng, cat.RESIDENTIAL, np.full(n_ip, country)),
                       pop.pick_ip(rng, cat.DATACENTER, dc))
        drops = postal_addresses(rng, np.full(int(rng.integers(1, 4)), country))
        faces = new_faces(rng, int(rng.integers(2, 4)))

        # the invented people, signed up over the first days
        surnames = rng.choice(len(cat.SURNAMES[country]), size=4, replace=False)
        name = _names(rng, country, surnames, m)
        dob = world.start_day - (rng.uniform(20.0, 45.0, size=m) * DAYS_PER_YEAR).astype(np.int64)
        created = np.sort(first_day * SECONDS_PER_DAY + rng.integers(
            0, int(self.signup_days) * SECONDS_PER_DAY, size=m))
        own_device = devices[rng.integers(0, devices.size, size=m)]
        own_ip = ips[rng.integers(0, n_ip, size=m)]
        local = np.arange(m, dtype=np.int64)
        accounts = AccountBlock(
            account=local, t=created, email=rng.choice(pop.fraud_emails, size=m, replace=False),
            device=own_device, ip=own_ip, country=np.full(m, country, np.int64), name=name,
            dob=dob, address=drops[rng.integers(0, drops.size, size=m)],
            fraud=np.ones(m, bool), incident=np.full(m, ring, np.int64))

        # forged documents from one template, the members' faces
        numbers = _series(rng, m)
        template_names = _names(rng, country, surnames, 2)
        template_dobs = world.start_day - rng.integers(20 * 365, 45 * 365, size=2)
        fake_name = rng.random(m) < 0.5
        fake_dob = rng.random(m) < 0.5
        sessions = SessionBlock(
            t=created + rng.integers(60, 900, size=m), account=local,
            reason=np.full(m, cat.SIGNUP, np.int8),
            doc_type=np.full(m, rng.choice(3, p=[0.2, 0.5, 0.3]), np.int64),
            doc_country=np.full(m, country, np.int64), doc_number=numbers, claimed_name=name,
            claimed_dob=dob,
            doc_name=np.where(fake_name, template_names[rng.integers(0, 2, size=m)], name),
            doc_dob=np.where(fake_dob, template_dobs[rng.integers(0, 2, size=m)], dob),
            doc_expiry=np.full(m, world.start_day + int(rng.integers(1500, 3000)), np.int64),
            face_match=rng.beta(9.0, 2.5, size=m),
            liveness=np.where(rng.random(m) < 0.1, rng.beta(2.0, 5.0, size=m),
                              rng.beta(20.0, 1.5, size=m)),
            embedding=selfies(rng, faces[rng.integers(0, len(faces), size=m)]),
            device=own_device, ip=own_ip, fraud=np.ones(m, bool),
            incident=np.full(m, ring, np.int64))
        sessions = sessions.take(rng.random(m) < self.verified_share)

        # trust: small payments at everyday online shops until the bust-out
        bust = (first_day + int(self.signup_days) + int(self.trust_days)) * SECONDS_PER_DAY \
            + int(hour_seconds(rng, 1, cat.FRAUD_HOUR_WEIGHTS)[0])
        span = np.maximum(bust - created - 2 * 3600, 0)
        a = np.repeat(local, rng.poisson(self.trust_payments_per_day * span / SECONDS_PER_DAY))
        everyday = or_online(pop, pop.merchants_in(cat.EVERYDAY_ONLINE, online=True))
        other = rng.random(a.size) < 0.3  # now and then from another of the ring's devices
        trust = online_payments(
            pop, t=created[a] + 3600 + (rng.random(a.size) * span[a]).astype(np.int64),
            card=a, merchant=popular(rng, everyday, pop.m_popularity, a.size),
            device=np.where(other, devices[rng.integers(0, devices.size, size=a.size)],
                            own_device[a]),
            ip=np.where(other, ips[rng.integers(0, n_ip, size=a.size)], own_ip[a]),
            email=accounts.email[a],
            amount=self.trust_amount_median * np.exp(0.5 * rng.standard_normal(a.size)),
            incident=-1, account=a, declined=rng.random(a.size) < world.decline_share)

        # the bust-out: every account, within hours, resale goods
        b = np.repeat(local, 1 + rng.poisson(self.bustout_payments_mean - 1.0, size=m))
        resale = or_online(pop, pop.merchants_in(cat.RESALE_CATEGORIES, online=True))
        bust_out = online_payments(
            pop, t=bust + (rng.random(b.size) * self.bustout_hours * 3600).astype(np.int64),
            card=b, merchant=popular(rng, resale, pop.m_popularity, b.size),
            device=own_device[b], ip=own_ip[b], email=accounts.email[b],
            amount=self.bustout_amount_median * np.exp(0.5 * rng.standard_normal(b.size)),
            incident=b, account=b, declined=rng.random(b.size) < self.bustout_decline_share)
        payments = PaymentBlock.concat([trust, bust_out])

        # a login before each trust payment, and before each account's bust-out
        first_bust = np.full(m, np.iinfo(np.int64).max)
        np.minimum.at(first_bust, b, bust_out.t)
        login_t = np.concatenate([trust.t, first_bust]) - rng.integers(
            30, 600, size=len(trust) + m)
        login_account = np.concatenate([a, local])
        events = EventBlock.make(
            t=login_t, account=login_account, kind=cat.LOGIN,
            device=np.concatenate([trust.device, own_device]),
            ip=np.concatenate([trust.ip, own_ip]), fraud=True, incident=ring)

        # what happened before the run is history; what comes after it, the future
        keep = created < end
        if not keep.any():
            return None
        customer, card = world.new_customers.add(np.full(int(keep.sum()), country),
                                                 created[keep] // SECONDS_PER_DAY)
        to_customer = np.full(m, -1, dtype=np.int64)
        to_customer[keep] = customer
        to_card = np.full(m, -1, dtype=np.int64)
        to_card[keep] = card
        accounts = accounts.take(keep)
        sessions = sessions.take(keep[sessions.account] & (sessions.t < end))
        events = events.take(keep[events.account] & (events.t >= 0) & (events.t < end))
        payments = payments.take(keep[payments.account] & (payments.t >= 0)
                                 & (payments.t < end))
        renumber = np.cumsum(keep) - 1  # the payments' incidents: kept accounts from 0
        payments.incident = np.where(payments.incident >= 0, renumber[payments.incident], -1)
        for block in (accounts, sessions, events, payments):
            block.account = to_customer[block.account]
        payments.card = to_card[payments.card]
        return accounts, events, sessions, payments


def _names(rng: np.random.Generator, country: int, surnames: np.ndarray, n: int) -> np.ndarray:
    """``n`` full names: any first name, one of ``surnames`` of ``country``."""
    given = rng.integers(0, len(cat.GIVEN_NAMES), size=n)
    family = surnames[rng.integers(0, surnames.size, size=n)]
    return np.array([f"{cat.GIVEN_NAMES[g]} {cat.SURNAMES[country][s]}" for g, s in
                     zip(given.tolist(), family.tolist(), strict=True)], dtype=object)


def _series(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` document numbers from one template: a series, one reused now and then."""
    head = document_numbers(rng, 1)[0][:2]
    base = int(rng.integers(0, 9_000_000))
    numbers = np.array([f"{head}{base + j:07d}" for j in range(n)], dtype=object)
    reuse = np.flatnonzero(rng.random(n) < 0.2)
    reuse = reuse[reuse > 0]
    numbers[reuse] = numbers[(rng.random(reuse.size) * reuse).astype(np.int64)]
    return numbers
