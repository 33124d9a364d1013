"""Accounts and what their owners do with them: sign-ups, logins, password and e-mail changes,
identity verification sessions, as numpy columns.

Every customer has one account, opened when they became a customer (long before the run, or
during it). Online they pay through the account (logged in) or as a guest
(``AccountModel.guest_share``); before a *session* of account payments they log in from the
device and the IP of its first payment (a session lasts until ``session_hours`` pass without
a payment from that device), and now and then they log in just to look around. A few
logins fail (a mistyped password) and are tried again; some sessions end with a new password
or, rarely, a new e-mail address, which the customer's later payments then carry. A share of
sign-ups, and a few later sessions (*step-ups*), verify the person's identity: their own
document and face, read with a little OCR noise, with high scores and rare genuine failures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.simulate._base import check_float
from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._entities import Population
from vigil.simulate.realistic._identity import (
    Identities,
    documents_at,
    genuine_scores,
    ocr,
    selfies,
)
from vigil.simulate.realistic._legit import SECONDS_PER_DAY, Block, PaymentBlock

NEVER = np.iinfo(np.int64).max // 4  # a time after every run


@dataclass(frozen=True)
class AccountModel:
    """How customers use their accounts (see the module docstring for the story)."""

    guest_share: float = 0.25
    session_hours: float = 8.0
    extra_logins_per_day: float = 0.15
    failed_login_share: float = 0.03
    password_changes_per_year: float = 0.3
    email_changes_per_year: float = 0.05
    signup_verification_share: float = 0.5
    step_ups_per_year: float = 0.1

    def check(self) -> AccountModel:
        """Raise ConfigError on an impossible setting; returns ``self``."""
        for name in ("guest_share", "failed_login_share", "signup_verification_share"):
            check_float(f"AccountModel.{name}", getattr(self, name), minimum=0.0, maximum=1.0,
                        example=getattr(AccountModel, name))
        for name in ("session_hours", "extra_logins_per_day", "password_changes_per_year",
                     "email_changes_per_year", "step_ups_per_year"):
            check_float(f"AccountModel.{name}", getattr(self, name), minimum=0.0,
                        example=getattr(AccountModel, name))
        return self


# -- blocks of rows --------------------------------------------------------------------------------


@dataclass
class AccountBlock(Block):
    """Accounts (sign-ups); ``account`` is also the index of the customer it belongs to."""

    account: np.ndarray  # int64
    t: np.ndarray  # int64 seconds since the start (negative: before the run)
    email: np.ndarray  # int64
    device: np.ndarray  # int64
    ip: np.ndarray  # int64
    country: np.ndarray  # int64
    name: np.ndarray  # object
    dob: np.ndarray  # int64 days since 1970
    address: np.ndarray  # object: normalised postal address
    fraud: np.ndarray  # bool: opened by a fraudster
    incident: np.ndarray  # int64: the scenario's incident, -1 legit


@dataclass
class EventBlock(Block):
    """Account events: logins (``success`` False: a wrong password) and changes."""

    t: np.ndarray  # int64
    account: np.ndarray  # int64
    kind: np.ndarray  # int8: LOGIN, EMAIL_CHANGE, PASSWORD_CHANGE
    success: np.ndarray  # bool
    device: np.ndarray  # int64
    ip: np.ndarray  # int64
    email: np.ndarray  # int64: the new address of an e-mail change, else -1
    fraud: np.ndarray  # bool: done by a fraudster
    incident: np.ndarray  # int64

    @staticmethod
    def make(*, t: np.ndarray, account: np.ndarray, kind: int, device: np.ndarray,
             ip: np.ndarray, success: np.ndarray | bool = True, email: np.ndarray | int = -1,
             fraud: bool = False, incident: np.ndarray | int = -1) -> EventBlock:
        """A block of events of one kind, broadcasting scalars."""
        n = len(t)

        def col(v: np.ndarray | int | bool, dtype: type) -> np.ndarray:
            return np.broadcast_to(v, n).astype(dtype)

        return EventBlock(t=col(t, np.int64), account=col(account, np.int64),
                          kind=np.full(n, kind, np.int8), success=col(success, bool),
                          device=col(device, np.int64), ip=col(ip, np.int64),
                          email=col(email, np.int64), fraud=col(fraud, bool),
                          incident=col(incident, np.int64))


@dataclass
class SessionBlock(Block):
    """Identity verification sessions: what was claimed, what the document says, the selfie."""

    t: np.ndarray  # int64
    account: np.ndarray  # int64
    reason: np.ndarray  # int8: SIGNUP, STEP_UP
    doc_type: np.ndarray  # int64
    doc_country: np.ndarray  # int64
    doc_number: np.ndarray  # object
    claimed_name: np.ndarray  # object
    claimed_dob: np.ndarray  # int64 days since 1970
    doc_name: np.ndarray  # object
    doc_dob: np.ndarray  # int64
    doc_expiry: np.ndarray  # int64
    face_match: np.ndarray  # float64
    liveness: np.ndarray  # float64
    embedding: np.ndarray  # (n, FACE_EMBEDDING_DIM) float32
    device: np.ndarray  # int64
    ip: np.ndarray  # int64
    fraud: np.ndarray  # bool
    incident: np.ndarray  # int64


class Accounts:
    """Every customer's account, and what the run has made of it so far.

    ``block`` holds one account per customer, in customer order. ``created`` of a customer
    who signs up during the run is settled on their sign-up day (before their first payment
    that day; it only ever moves earlier); e-mail changes are known once the day they happen
    on has been made.
    """

    def __init__(self, block: AccountBlock) -> None:
        self.block = block
        n = len(block)
        self.email_change_t = np.full(n, NEVER, dtype=np.int64)  # NEVER: not changed
        self.new_email = np.full(n, -1, dtype=np.int64)

    def created(self, account: np.ndarray) -> np.ndarray:
        """When each account was opened (seconds since the start)."""
        return self.block.t[account]

    def email_at(self, account: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Each account's e-mail address at time ``t``."""
        changed = t > self.email_change_t[account]
        return np.where(changed, self.new_email[account], self.block.email[account])


def next_login(logins: EventBlock, account: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The row (in ``logins``, sorted by account then time) of each account's first login
    after ``after``; -1 where there is none."""
    if len(logins) == 0:
        return np.full(len(account), -1, dtype=np.int64)
    pos = np.searchsorted(_key(logins.account, logins.t), _key(account, after), side="right")
    safe = np.minimum(pos, len(logins) - 1)
    found = (pos < len(logins)) & (logins.account[safe] == account)
    return np.where(found, safe, -1)


def _key(account: np.ndarray, t: np.ndarray) -> np.ndarray:
    """One sortable int64 per (account, time); times lie within +-2**36 s of the start."""
    return account.astype(np.int64) * (1 << 38) + (t + (1 << 37))


# -- the legitimate activity -----------------------------------------------------------------------


def hour_seconds(rng: np.random.Generator, n: int, weights: np.ndarray = cat.HOUR_WEIGHTS
                 ) -> np.ndarray:
    """A time of day (seconds) for each of ``n`` events, its hour drawn by ``weights``."""
    hour = rng.choice(24, size=n, p=weights / weights.sum())
    return hour * 3600 + rng.integers(0, 3600, size=n)


def home_ip(pop: Population, rng: np.random.Generator, customer: np.ndarray,
            phone: np.ndarray) -> np.ndarray:
    """The IP a customer goes online from at home: the household's line, or (a phone on a
    mobile contract, mostly) a carrier NAT address."""
    ip = pop.hh_ip[pop.cust_household[customer]]
    carrier = np.flatnonzero(phone & pop.cust_mobile[customer]
                             & (rng.random(len(customer)) < 0.7))
    ip[carrier] = pop.pick_ip(rng, cat.CARRIER_NAT, pop.cust_country[customer[carrier]])
    return ip


def genuine_sessions(rng: np.random.Generator, ident: Identities, account: np.ndarray,
                     t: np.ndarray, reason: int, device: np.ndarray, ip: np.ndarray,
                     start_day: int) -> SessionBlock:
    """Verification sessions of real customers with their own documents and faces."""
    n = len(account)
    face, live = genuine_scores(rng, n)
    claimed = ident.name[account]
    number, expiry = documents_at(ident, account, start_day + t // SECONDS_PER_DAY)
    return SessionBlock(
        t=t.astype(np.int64), account=account.astype(np.int64),
        reason=np.full(n, reason, np.int8), doc_type=ident.doc_type[account],
        doc_country=ident.doc_country[account], doc_number=number,
        claimed_name=claimed, claimed_dob=ident.dob[account],
        doc_name=ocr(rng, claimed, 0.03), doc_dob=ident.dob[account],
        doc_expiry=expiry, face_match=face, liveness=live,
        embedding=selfies(rng, ident.face[account]), device=device.astype(np.int64),
        ip=ip.astype(np.int64), fraud=np.zeros(n, bool), incident=np.full(n, -1, np.int64))


class LegitActivity:
    """The legitimate side of the accounts, one day at a time.

    Drawn up front: each account (its sign-up, planned), each customer's guest habit, who
    verifies at sign-up. Carried from day to day: each customer's last account payment (a
    session goes on across midnight), who changed their e-mail (at most once a run), the new
    addresses. Days must be asked for in order.
    """

    def __init__(self, pop: Population, ident: Identities, rng: np.random.Generator,
                 model: AccountModel, days: int, start_day: int) -> None:
        self.pop, self.ident, self.rng, self.model = pop, ident, rng, model
        self.end, self.start_day = days * SECONDS_PER_DAY, start_day
        n = pop.n_customers
        customers = np.arange(n, dtype=np.int64)
        # sign-up: on the customer's first day; on that day before their first payment
        created = pop.cust_signup_day * SECONDS_PER_DAY + hour_seconds(rng, n)
        self.lead = rng.integers(60, 1800, size=n)
        self.accounts = Accounts(AccountBlock(
            account=customers, t=created, email=pop.cust_email.copy(),
            device=pop.cust_phone.copy(), ip=home_ip(pop, rng, customers, np.ones(n, bool)),
            country=pop.cust_country.copy(), name=ident.name, dob=ident.dob,
            address=ident.address, fraud=np.zeros(n, bool), incident=np.full(n, -1, np.int64)))
        # online: through the account, or as a guest (each customer has their habit)
        g = model.guest_share
        self.guest_p = rng.beta(1.5, 1.5 * (1 - g) / g, size=n) if 0 < g < 1 else np.full(n, g)
        # identity verification at a share of sign-ups, minutes after it
        self.verified = rng.random(n) < model.signup_verification_share
        self.verify_after = rng.integers(60, 900, size=n)
        # who has an account on each day: customers by sign-up day
        self.by_signup = np.argsort(pop.cust_signup_day, kind="stable")
        self.signup_sorted = pop.cust_signup_day[self.by_signup]
        # a session's last account payment and its device, per customer
        self.last_t = np.full(n, -NEVER, dtype=np.int64)
        self.last_device = np.full(n, -1, dtype=np.int64)

    def day(self, day: int, legit: PaymentBlock) -> tuple[EventBlock, SessionBlock, EventBlock]:
        """The account events and verification sessions of ``day``'s legitimate payments
        and of customers looking around; and the day's successful logins sorted by account
        and time (for scenarios that wait for a customer's next login).

        Sets ``legit.account`` (payments made through the account). Rows before the run
        (sign-ups long ago and their verification) come with day 0; a login minutes before
        a payment just after midnight lies on the day before.
        """
        pop, rng, model, acc = self.pop, self.rng, self.model, self.accounts
        created = acc.block.t
        owner = pop.card_owner[legit.card]
        lo = np.searchsorted(self.signup_sorted, day, side="left")
        hi = np.searchsorted(self.signup_sorted, day, side="right")
        active = self.by_signup[:hi]  # customers with an account today
        # sign-ups today: minutes before the first payment, if that comes before the plan;
        # those long before the run come with day 0
        new = self.by_signup[lo:hi]
        signing_up = new if day > 0 else active
        first_pay = np.full(pop.n_customers, NEVER, dtype=np.int64)
        today = np.flatnonzero(pop.cust_signup_day[owner] == day)
        np.minimum.at(first_pay, owner[today], legit.t[today])
        created[new] = np.minimum(created[new], first_pay[new] - self.lead[new])
        v = signing_up[self.verified[signing_up]]
        signup = genuine_sessions(rng, self.ident, v, created[v] + self.verify_after[v],
                                  cat.SIGNUP, acc.block.device[v], acc.block.ip[v],
                                  self.start_day)

        # online: through the account, or as a guest
        online = np.flatnonzero(legit.cnp)
        via = online[rng.random(online.size) >= self.guest_p[owner[online]]]
        legit.account[via] = owner[via]

        # a login before each session of account payments (a long pause or another device: a
        # new session), which may have begun yesterday
        via = via[np.lexsort((legit.t[via], owner[via]))]
        c, t, dev = owner[via], legit.t[via], legit.device[via]
        prev_t, prev_dev = np.empty_like(t), np.empty_like(dev)
        first_of = np.ones(via.size, dtype=bool)
        first_of[1:] = c[1:] != c[:-1]
        prev_t[1:], prev_dev[1:] = t[:-1], dev[:-1]
        prev_t[first_of], prev_dev[first_of] = self.last_t[c[first_of]], \
            self.last_device[c[first_of]]
        new_session = (t - prev_t > model.session_hours * 3600) | (dev != prev_dev)
        last_of = np.ones(via.size, dtype=bool)
        last_of[:-1] = c[:-1] != c[1:]
        self.last_t[c[last_of]], self.last_device[c[last_of]] = t[last_of], dev[last_of]
        first = via[new_session]
        s_acc = owner[first]
        s_t = np.maximum(legit.t[first] - rng.integers(20, 600, size=first.size),
                         created[s_acc] + 5)
        session_logins = EventBlock.make(t=s_t, account=s_acc, kind=cat.LOGIN,
                                         device=legit.device[first], ip=legit.ip[first])

        # logins just to look around, from the phone or a device the household shares
        k = rng.poisson(model.extra_logins_per_day * active.size) if active.size else 0
        b_acc = active[rng.integers(0, max(active.size, 1), size=k)]
        b_t = np.maximum(day * SECONDS_PER_DAY + hour_seconds(rng, k), created[b_acc] + 5)
        hh = pop.cust_household[b_acc]
        n_shared = np.diff(pop.hh_dev_offsets)[hh]
        shared = (rng.random(k) < 0.35) & (n_shared > 0)
        which = pop.hh_dev_offsets[hh] + rng.integers(0, np.maximum(n_shared, 1))
        b_dev = pop.cust_phone[b_acc].copy()
        b_dev[shared] = pop.hh_devices[which[shared]]
        browse = EventBlock.make(t=b_t, account=b_acc, kind=cat.LOGIN, device=b_dev,
                                 ip=home_ip(pop, rng, b_acc, ~shared))
        logins = EventBlock.concat([session_logins, browse])
        logins = logins.take((logins.t >= 0) & (logins.t < self.end))  # before: history

        # a mistyped password first, now and then
        f = np.flatnonzero(rng.random(len(logins)) < model.failed_login_share)
        failed = logins.take(f)
        failed.t = np.maximum(failed.t - rng.integers(5, 120, size=f.size),
                              created[failed.account] + 1)
        failed.success[:] = False

        years = active.size / 365.0  # account-years today
        password = _after_logins(rng, logins, rng.poisson(model.password_changes_per_year
                                                          * years), cat.PASSWORD_CHANGE)
        email = self._email_changes(_after_logins(
            rng, logins, rng.poisson(model.email_changes_per_year * years), cat.EMAIL_CHANGE))

        # identity verification now and then at a later login (step-up)
        k = rng.poisson(model.step_ups_per_year * years) if len(logins) else 0
        pick = rng.integers(0, max(len(logins), 1), size=k)
        step_up = genuine_sessions(rng, self.ident, logins.account[pick],
                                   logins.t[pick] + rng.integers(10, 180, size=k), cat.STEP_UP,
                                   logins.device[pick], logins.ip[pick], self.start_day)
        sessions = SessionBlock.concat([signup, step_up])
        sessions = sessions.take(sessions.t < self.end)

        events = EventBlock.concat([logins, failed, password.take(password.t < self.end),
                                    email])
        events = events.take(events.t >= 0)
        ok = np.flatnonzero((events.kind == cat.LOGIN) & events.success)
        ok = ok[np.argsort(_key(events.account[ok], events.t[ok]), kind="stable")]
        return events, sessions, events.take(ok)

    def _email_changes(self, email: EventBlock) -> EventBlock:
        """Today's e-mail changes: the first of each account that never changed it, with a
        new address each (appended to the population's e-mails)."""
        pop, acc = self.pop, self.accounts
        email = email.take(np.argsort(email.t, kind="stable"))
        email = email.take((email.t < self.end) & (acc.email_change_t[email.account] == NEVER))
        email = email.take(np.sort(np.unique(email.account, return_index=True)[1]))
        email.email = len(pop.email_domain) + np.arange(len(email), dtype=np.int64)
        pop.email_domain = np.concatenate([pop.email_domain, self.rng.choice(
            len(cat.FREEMAIL_DOMAINS), size=len(email),
            p=cat.FREEMAIL_WEIGHTS / cat.FREEMAIL_WEIGHTS.sum())])
        pop.email_fraud = np.concatenate([pop.email_fraud, np.zeros(len(email), dtype=bool)])
        acc.email_change_t[email.account] = email.t
        acc.new_email[email.account] = email.email
        return email

    def moved_email(self, customer: np.ndarray, t: np.ndarray, email: np.ndarray) -> np.ndarray:
        """``email`` of legitimate payments, with the new address where the customer had
        changed theirs before ``t`` (in person, without an e-mail, stays -1)."""
        acc = self.accounts
        moved = (email >= 0) & (t > acc.email_change_t[customer])
        return np.where(moved, acc.new_email[customer], email)


def _after_logins(rng: np.random.Generator, logins: EventBlock, k: int, kind: int
                  ) -> EventBlock:
    """``k`` changes, each a few minutes after a random login, from its device and IP."""
    pick = rng.integers(0, max(len(logins), 1), size=k if len(logins) else 0)
    return EventBlock.make(t=logins.t[pick] + rng.integers(20, 300, size=pick.size),
                           account=logins.account[pick], kind=kind,
                           device=logins.device[pick], ip=logins.ip[pick])
