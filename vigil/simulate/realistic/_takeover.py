"""Account takeover, as the account's events and payments show it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._accounts import EventBlock, next_login
from vigil.simulate.realistic._context import (
    DayContext,
    FraudBatch,
    WorldContext,
    bursts,
    check_params,
    start_seconds,
    thief_ips,
    victims,
    within_run,
)
from vigil.simulate.realistic._legit import SECONDS_PER_DAY, PaymentBlock, online_payments


@dataclass(frozen=True)
class AccountTakeover:
    """Account takeover: a fraudster logs into a customer's account and spends its card.

    Each day each customer's account is taken over with probability ``rate``. The fraudster
    (after a few failed tries, in a share ``stuffing_share``: credential stuffing) logs in
    from a device the account never used, behind a proxy (share ``proxy_share``; half of
    those exit in the customer's own country, to look local) or a residential IP abroad.
    Minutes later they change the account's e-mail to their own (share
    ``email_change_share``) and/or its password (share ``password_change_share``; at least
    one of the two), then make about ``payments_mean`` purchases with the stored card over
    the next hours, through the account, from that device, at the customer's own online shops,
    for amounts around ``amount_median``; the issuer declines a share ``decline_share``.

    At the customer's next own login the account is recovered: a failed login (the password
    was changed), a password reset, the e-mail put back. Those events are the customer's
    (truth: ``is_fraud`` False, scenario ``account_takeover``).
    """

    rate: float = 1e-4
    payments_mean: float = 3.0
    amount_median: float = 300.0
    proxy_share: float = 0.6
    stuffing_share: float = 0.4
    email_change_share: float = 0.75
    password_change_share: float = 0.8
    decline_share: float = 0.03
    report_share: float | None = None
    name: str = "account_takeover"
    is_fraud: bool = True

    def plan(self, world: WorldContext, rng: np.random.Generator) -> _Takeovers:
        check_params(self, rate=(0.0, 1.0), payments_mean=(1.0, None),
                     amount_median=(0.0, None), proxy_share=(0.0, 1.0),
                     stuffing_share=(0.0, 1.0), email_change_share=(0.0, 1.0),
                     password_change_share=(0.0, 1.0), decline_share=(0.0, 1.0))
        return _Takeovers(self, world, rng)


class _Takeovers:
    """Every takeover of the run, drawn up front; each is written out the day after it
    began (by then every e-mail change before its login is known), and the customer's way
    back in once their next own login comes."""

    def __init__(self, s: AccountTakeover, world: WorldContext, rng: np.random.Generator
                 ) -> None:
        pop, acc = world.population, world.accounts
        self.world, self.rng = world, rng
        customer, day = victims(world, rng, s.rate)
        k = len(customer)
        # the fraudster's login, at a thief's hour, once the account exists
        login = np.maximum(start_seconds(rng, day, cat.FRAUD_HOUR_WEIGHTS),
                           acc.created(customer) + 3600)
        device = rng.choice(pop.fraud_devices, size=k)
        ip = thief_ips(rng, pop, k, s.proxy_share)
        local = rng.random(k) < s.proxy_share / 2  # a residential proxy at home
        ip = np.where(local, pop.pick_ip(rng, cat.RESIDENTIAL, pop.cust_country[customer]), ip)
        tries = np.where(rng.random(k) < s.stuffing_share, rng.integers(1, 6, size=k), 0)
        self.f_inc = np.repeat(np.arange(k, dtype=np.int64), tries)
        self.f_t = login[self.f_inc] - rng.integers(30, 1800, size=self.f_inc.size)

        # then the e-mail and/or the password, minutes later
        email_changed = rng.random(k) < s.email_change_share
        password_changed = (rng.random(k) < s.password_change_share) | ~email_changed
        t_email = login + rng.integers(60, 400, size=k)
        t_password = login + rng.integers(60, 400, size=k)
        their_email = rng.choice(pop.fraud_emails, size=k)
        changed = np.maximum(np.where(email_changed, t_email, login),
                             np.where(password_changed, t_password, login))

        # spending, from the same device, within hours, at the customer's own online shops
        counts = 1 + rng.poisson(s.payments_mean - 1.0, size=k)
        incident, t = bursts(rng, changed + rng.integers(300, 2700, size=k), counts,
                             2 * 3600.0)
        online_favs = pop.cust_favorites[customer[incident], -3:]
        merchant = online_favs[np.arange(incident.size), rng.integers(0, 3, size=incident.size)]
        self.payments = online_payments(
            pop, t=t, card=pop.card_on(customer, day)[incident], merchant=merchant,
            device=device[incident], ip=ip[incident], email=-1,
            amount=s.amount_median * np.exp(0.7 * rng.standard_normal(incident.size)),
            incident=incident, account=customer[incident],
            declined=rng.random(incident.size) < s.decline_share)
        self.k, self.customer, self.day, self.login = k, customer, day, login
        self.device, self.ip, self.their_email = device, ip, their_email
        self.email_changed, self.password_changed = email_changed, password_changed
        self.t_email, self.t_password, self.changed = t_email, t_password, changed
        self.own_email = np.full(k, -1, dtype=np.int64)
        self.waiting = np.zeros(0, dtype=np.int64)  # takeovers whose customer is not back yet
        self.yesterday: EventBlock | None = None

    def step(self, day: DayContext) -> FraudBatch:
        due = (self.day == day.day - 1) | ((self.day == day.day) & day.last)
        i = np.flatnonzero(due)
        end = self.world.days * SECONDS_PER_DAY
        batch = FraudBatch(incidents=self.k if day.day == 0 else 0)
        events: list[EventBlock] = []
        if i.size:
            batch.new = self._spending(due, i)
            events = self._theirs(due, i)
        logins = day.logins if self.yesterday is None else _by_account(
            EventBlock.concat([self.yesterday, day.logins]))
        self.yesterday = day.logins
        self.waiting = np.concatenate([self.waiting, i])
        events += self._recovery(logins)
        if day.last:
            self.waiting = self.waiting[:0]  # never back within the run
        if events:
            block = EventBlock.concat(events)
            batch.events = block.take((block.t >= 0) & (block.t < end))
        return batch

    def _spending(self, due: np.ndarray, i: np.ndarray) -> PaymentBlock:
        """The payments of takeovers ``i``, with the e-mail the account had at the login."""
        self.own_email[i] = self.world.accounts.email_at(self.customer[i], self.login[i])
        p = self.payments.take(due[self.payments.incident])
        p.email = np.where(self.email_changed, self.their_email, self.own_email)[p.incident]
        return within_run(p, self.world.days)

    def _theirs(self, due: np.ndarray, i: np.ndarray) -> list[EventBlock]:
        """The fraudster's failed tries, login and changes in takeovers ``i``."""
        f_inc = self.f_inc[due[self.f_inc]]
        e = i[self.email_changed[i]]
        p = i[self.password_changed[i]]
        customer, device, ip = self.customer, self.device, self.ip
        return [
            EventBlock.make(t=self.f_t[due[self.f_inc]], account=customer[f_inc],
                            kind=cat.LOGIN, device=device[f_inc], ip=ip[f_inc], success=False,
                            fraud=True, incident=f_inc),
            EventBlock.make(t=self.login[i], account=customer[i], kind=cat.LOGIN,
                            device=device[i], ip=ip[i], fraud=True, incident=i),
            EventBlock.make(t=self.t_email[e], account=customer[e], kind=cat.EMAIL_CHANGE,
                            device=device[e], ip=ip[e], email=self.their_email[e], fraud=True,
                            incident=e),
            EventBlock.make(t=self.t_password[p], account=customer[p],
                            kind=cat.PASSWORD_CHANGE, device=device[p], ip=ip[p], fraud=True,
                            incident=p),
        ]

    def _recovery(self, logins: EventBlock) -> list[EventBlock]:
        """The customer's way back in, at their next own login (at least 15 minutes on), for
        the takeovers that found it among ``logins``."""
        if self.waiting.size == 0:
            return []
        rng, w = self.rng, self.waiting
        row = next_login(logins, self.customer[w], self.changed[w] + 900)
        back = row >= 0
        r, row = w[back], row[back]
        self.waiting = w[~back]
        at, dev, ip = logins.t[row], logins.device[row], logins.ip[row]
        pw = self.password_changed[r]
        em = self.email_changed[r]
        account = self.customer[r]
        return [
            EventBlock.make(t=(at - rng.integers(120, 900, size=r.size))[pw],
                            account=account[pw], kind=cat.LOGIN, device=dev[pw],
                            ip=ip[pw], success=False, incident=r[pw]),
            EventBlock.make(t=(at - rng.integers(20, 100, size=r.size))[pw],
                            account=account[pw], kind=cat.PASSWORD_CHANGE, device=dev[pw],
                            ip=ip[pw], incident=r[pw]),
            EventBlock.make(t=(at + rng.integers(30, 300, size=r.size))[em],
                            account=account[em], kind=cat.EMAIL_CHANGE, device=dev[em],
                            ip=ip[em], email=self.own_email[r][em], incident=r[em]),
        ]


def _by_account(logins: EventBlock) -> EventBlock:
    """``logins`` sorted by account, then time (as :func:`next_login` wants them)."""
    return logins.take(np.lexsort((logins.t, logins.account)))
