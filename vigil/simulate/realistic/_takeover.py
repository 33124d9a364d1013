"""Account takeover, as the account's events and payments show it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._accounts import EventBlock
from vigil.simulate.realistic._context import (
    FraudBatch,
    WorldContext,
    bursts,
    check_params,
    start_seconds,
    thief_ips,
    victims,
    within_run,
)
from vigil.simulate.realistic._legit import SECONDS_PER_DAY, online_payments


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

    def apply(self, world: WorldContext, rng: np.random.Generator) -> FraudBatch:
        check_params(self, rate=(0.0, 1.0), payments_mean=(1.0, None),
                     amount_median=(0.0, None), proxy_share=(0.0, 1.0),
                     stuffing_share=(0.0, 1.0), email_change_share=(0.0, 1.0),
                     password_change_share=(0.0, 1.0), decline_share=(0.0, 1.0))
        pop, act = world.population, world.activity
        customer, day = victims(world, rng, self.rate)
        k = len(customer)
        incidents = np.arange(k, dtype=np.int64)
        # the fraudster's login, at a thief's hour, once the account exists
        login = np.maximum(start_seconds(rng, day, cat.FRAUD_HOUR_WEIGHTS),
                           act.created(customer) + 3600)
        device = rng.choice(pop.fraud_devices, size=k)
        ip = thief_ips(rng, pop, k, self.proxy_share)
        local = rng.random(k) < self.proxy_share / 2  # a residential proxy at home
        ip = np.where(local, pop.pick_ip(rng, cat.RESIDENTIAL, pop.cust_country[customer]), ip)
        tries = np.where(rng.random(k) < self.stuffing_share, rng.integers(1, 6, size=k), 0)
        f_inc = np.repeat(incidents, tries)
        f_t = login[f_inc] - rng.integers(30, 1800, size=f_inc.size)

        # then the e-mail and/or the password, minutes later
        email_changed = rng.random(k) < self.email_change_share
        password_changed = (rng.random(k) < self.password_change_share) | ~email_changed
        t_email = login + rng.integers(60, 400, size=k)
        t_password = login + rng.integers(60, 400, size=k)
        own_email = act.email_at(customer, login)
        their_email = rng.choice(pop.fraud_emails, size=k)
        changed = np.maximum(np.where(email_changed, t_email, login),
                             np.where(password_changed, t_password, login))

        # spending, from the same device, within hours, at the customer's own online shops
        counts = 1 + rng.poisson(self.payments_mean - 1.0, size=k)
        incident, t = bursts(rng, changed + rng.integers(300, 2700, size=k), counts,
                             2 * 3600.0)
        online_favs = pop.cust_favorites[customer[incident], -3:]
        merchant = online_favs[np.arange(incident.size), rng.integers(0, 3, size=incident.size)]
        block = online_payments(
            pop, t=t, card=pop.card_on(customer, day)[incident], merchant=merchant,
            device=device[incident], ip=ip[incident],
            email=np.where(email_changed, their_email, own_email)[incident],
            amount=self.amount_median * np.exp(0.7 * rng.standard_normal(incident.size)),
            incident=incident, account=customer[incident],
            declined=rng.random(incident.size) < self.decline_share)

        e, p = np.flatnonzero(email_changed), np.flatnonzero(password_changed)
        theirs = [
            EventBlock.make(t=f_t, account=customer[f_inc], kind=cat.LOGIN,
                            device=device[f_inc], ip=ip[f_inc], success=False, fraud=True,
                            incident=f_inc),
            EventBlock.make(t=login, account=customer, kind=cat.LOGIN, device=device, ip=ip,
                            fraud=True, incident=incidents),
            EventBlock.make(t=t_email[e], account=customer[e], kind=cat.EMAIL_CHANGE,
                            device=device[e], ip=ip[e], email=their_email[e], fraud=True,
                            incident=e),
            EventBlock.make(t=t_password[p], account=customer[p], kind=cat.PASSWORD_CHANGE,
                            device=device[p], ip=ip[p], fraud=True, incident=p),
        ]
        events = EventBlock.concat(theirs + self._recovery(
            rng, world, customer, changed, own_email, email_changed, password_changed))
        in_run = (events.t >= 0) & (events.t < world.days * SECONDS_PER_DAY)
        return FraudBatch(new=within_run(block, world.days), incidents=k,
                          events=events.take(in_run))

    @staticmethod
    def _recovery(rng: np.random.Generator, world: WorldContext, customer: np.ndarray,
                  changed: np.ndarray, own_email: np.ndarray, email_changed: np.ndarray,
                  password_changed: np.ndarray) -> list[EventBlock]:
        """The customer's way back in, at their next own login (at least 15 minutes on)."""
        act = world.activity
        row = act.next_login(customer, changed + 900)
        r = np.flatnonzero(row >= 0)
        at, dev, ip = act.events.t[row[r]], act.events.device[row[r]], act.events.ip[row[r]]
        pw = password_changed[r]
        em = email_changed[r]
        return [
            EventBlock.make(t=(at - rng.integers(120, 900, size=r.size))[pw],
                            account=customer[r][pw], kind=cat.LOGIN, device=dev[pw],
                            ip=ip[pw], success=False, incident=r[pw]),
            EventBlock.make(t=(at - rng.integers(20, 100, size=r.size))[pw],
                            account=customer[r][pw], kind=cat.PASSWORD_CHANGE, device=dev[pw],
                            ip=ip[pw], incident=r[pw]),
            EventBlock.make(t=(at + rng.integers(30, 300, size=r.size))[em],
                            account=customer[r][em], kind=cat.EMAIL_CHANGE, device=dev[em],
                            ip=ip[em], email=own_email[r][em], incident=r[em]),
        ]
