"""The realistic world's engine: the world made one day at a time, handed over a chunk of
days at a time, so that a run of any length fits in memory.

Whatever spans weeks is planned before the first day: the population (customers, cards and
their replacements, trips, devices, IPs), the people's identities and accounts, and each
fraud scenario's run (:meth:`~._context.RealisticScenario.plan`: incidents are few, even
those that last weeks, as a ring's). Then the days are made in order: the legitimate
payments, the accounts' activity around them (a session may go on across midnight, a
customer changes their e-mail once), what each scenario does that day. Rows wait until no
later day can bring an earlier one (a day reaches back at most
:data:`~._context.REACH_BACK_DAYS`); then, every ``chunk_days`` days, they are sorted,
numbered and handed to a *sink*, which keeps them (:meth:`RealisticWorld.simulate`) or
writes them (:meth:`RealisticWorld.simulate_to`). Labels come last, from the fraud payments
alone. Memory holds the population and a chunk of days, whatever the number of days.

Each stream draws day after day in the same order whatever ``chunk_days`` is: the chunk size
changes how rows are handed over, never the world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

import vigil
from vigil._errors import ConfigError
from vigil.simulate._base import epoch_us, seed_sequence
from vigil.simulate._payments import LEGIT, id_width
from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._accounts import (
    AccountBlock,
    AccountModel,
    EventBlock,
    LegitActivity,
    SessionBlock,
)
from vigil.simulate.realistic._context import (
    REACH_BACK_DAYS,
    DayContext,
    FraudBatch,
    RealisticScenario,
    ScenarioRun,
    WorldContext,
)
from vigil.simulate.realistic._entities import (
    NewCustomers,
    PopulationParams,
    describe,
    draw_population,
)
from vigil.simulate.realistic._identity import draw_identities
from vigil.simulate.realistic._labels import LabelModel
from vigil.simulate.realistic._legit import SECONDS_PER_DAY, Block, LegitPayments, PaymentBlock
from vigil.simulate.realistic._tables import Tables

_DAY_US = SECONDS_PER_DAY * 1_000_000
_CLAIMED = 1 << 39  # incident numbers: scenario << 40, then its own or (claimed) a payment's


@dataclass(frozen=True)
class Setup:
    """A world's checked settings, and how ``dataset.json`` describes them."""

    population: PopulationParams
    currency: str
    scenarios: list[RealisticScenario]
    labels: LabelModel
    accounts: AccountModel
    decline_share: float
    params: dict[str, Any]


class Sink(Protocol):
    """Where finished rows go: tables in time order, numbered on from the previous part."""

    def payments(self, payments: pa.Table, truth: pa.Table, dates: np.ndarray) -> None:
        """Payments (``dates``: each one's UTC day, days since 1970) and their truth."""

    def events(self, events: pa.Table, truth: pa.Table) -> None:
        """Account events and their identity truth."""

    def sessions(self, sessions: pa.Table, truth: pa.Table) -> None:
        """Verification sessions and their identity truth."""

    def finish(self, *, labels: pa.Table, accounts: pa.Table, accounts_truth: pa.Table,
               info: dict[str, Any]) -> Any:
        """The tables only known at the end; returns what the run returns."""


DayProgress = Callable[[int, int, int], Any]
"""``progress(done_days, total_days, payments_so_far)``."""


class Engine:
    """One run: planned on construction, made and handed over by :meth:`run`."""

    def __init__(self, setup: Setup, days: int, start: datetime, seed: int | None) -> None:
        self.setup, self.days, self.start = setup, days, start
        self.root = root = seed_sequence(seed)
        # the first four streams as ever; the accounts and the issuer's answers draw apart
        pop_seq, legit_seq, label_seq, scenario_seq, account_seq, issuer_seq = root.spawn(6)
        identity_seq, activity_seq = account_seq.spawn(2)
        self.label_rng = np.random.default_rng(label_seq)
        self.issuer = np.random.default_rng(issuer_seq)
        self.start_us = epoch_us(start)
        start_day = self.start_us // _DAY_US
        pop = draw_population(setup.population, days, np.random.default_rng(pop_seq))
        ident = draw_identities(pop, np.random.default_rng(identity_seq), start_day)
        self.legit = LegitPayments(pop, np.random.default_rng(legit_seq),
                                   start_weekday=start.weekday())
        self.activity = LegitActivity(pop, ident, np.random.default_rng(activity_seq),
                                      setup.accounts, days, start_day)
        self.population, self.new_customers = pop, NewCustomers(pop)
        world = WorldContext(population=pop, days=days, identities=ident,
                             accounts=self.activity.accounts, new_customers=self.new_customers,
                             decline_share=setup.decline_share, start_day=start_day)
        scenarios = setup.scenarios
        self.runs = [_plan(s, world, np.random.default_rng(child)) for s, child in
                     zip(scenarios, scenario_seq.spawn(len(scenarios)), strict=True)]

        # every customer and card is known now (rings register theirs when they plan)
        new = self.new_customers
        self.names = [LEGIT] + [s.name for s in scenarios]
        self.card_owner = np.concatenate(
            [pop.card_owner, pop.n_customers + np.arange(len(new), dtype=np.int64)])
        self.tables = Tables(
            pop, card_owner=self.card_owner,
            card_country=np.concatenate([pop.card_country, new.country]),
            n_customers=pop.n_customers + len(new), names=self.names,
            start_us=self.start_us, currency=setup.currency, widths=self._widths())
        self.fraud_by_code = np.array([False] + [bool(s.is_fraud) for s in scenarios])
        default = setup.labels.report_share
        self.share_by_code = np.array([0.0] + [default if s.report_share is None
                                               else float(s.report_share) for s in scenarios])

        self.payments = _Pending(PaymentBlock)
        self.events = _Pending(EventBlock)
        self.sessions = _Pending(SessionBlock)
        self.accounts: list[tuple[AccountBlock, np.ndarray]] = [
            (self.activity.accounts.block, np.zeros(pop.n_customers, np.int16))]
        self.handed_until = np.iinfo(np.int64).min  # rows before this are handed over
        self.legit_rows = 0  # legitimate payments made so far (numbers claimed incidents)
        self.made = 0  # payments made so far, for progress
        n = len(self.names)
        self.count = {"payments": 0, "events": 0, "sessions": 0, "frauds": 0, "declined": 0}
        self.by_code = {name: np.zeros(n, np.int64) for name in ("payments", "events",
                                                                 "sessions")}
        self.incidents = np.zeros(n, np.int64)
        self.kinds = np.zeros(4, np.int64)  # logins, failed logins, e-mail, password changes
        self.labelled: list[tuple[np.ndarray, ...]] = []  # (row, t, incident, code)

    def _widths(self) -> dict[str, int]:
        """Digits of the payment, event and session numbers: fixed before the first row is
        written, from ten times a generous estimate (every preset gets the minimum)."""
        pop, days, model = self.population, self.days, self.setup.accounts
        payments = pop.cust_rate.sum() * 1.3 * days + pop.n_customers
        events = 2 * payments + model.extra_logins_per_day * pop.n_customers * days
        sessions = (pop.n_customers + len(self.new_customers)) * (
            1 + model.step_ups_per_year * days / 365)
        return {"payments": id_width(int(10 * payments), 10),
                "account_events": id_width(int(10 * events), 9),
                "verification_sessions": id_width(int(10 * sessions), 7)}

    # -- the run ------------------------------------------------------------------------------

    def run(self, sink: Sink, *, chunk_days: int, progress: DayProgress | None = None) -> Any:
        """Make every day, hand rows to ``sink`` every ``chunk_days`` days; what
        ``sink.finish`` returns."""
        for day in range(self.days):
            self._day(day)
            if (day + 1) % chunk_days == 0 and day + 1 < self.days:
                self._hand_over(sink, self._settled(day))
            if progress is not None:
                progress(day + 1, self.days, self.made)
        self._hand_over(sink, None)
        return self._finish(sink)

    def _settled(self, day: int) -> int:
        """Once ``day`` is made, rows before this (seconds since the start, a UTC midnight)
        are final: later days reach back to the day before yesterday at most."""
        until_us = self.start_us + (day + 1 - REACH_BACK_DAYS) * _DAY_US
        midnight_us = until_us // _DAY_US * _DAY_US  # a calendar day goes out in one piece
        return -((self.start_us - midnight_us) // 1_000_000)  # rounded up to whole seconds

    def _day(self, day: int) -> None:
        pay = self.legit.day(day)
        pay.declined = self.issuer.random(len(pay)) < self.setup.decline_share
        events, sessions, logins = self.activity.day(day, pay)
        context = DayContext(day=day, days=self.days, legit=pay, logins=logins)
        m = len(pay)
        code = np.zeros(m, dtype=np.int16)
        incident = np.full(m, -1, dtype=np.int64)
        serial = self.legit_rows + np.arange(m, dtype=np.int64)
        self.legit_rows += m
        self.made += m
        self.events.add(events, np.zeros(len(events), np.int16))
        self.sessions.add(sessions, np.zeros(len(sessions), np.int16))
        for i, run in enumerate(self.runs, start=1):
            batch = run.step(context)
            name = self.names[i]
            if not isinstance(batch, FraudBatch):
                raise ConfigError(f"scenario '{name}': step(day) must return a FraudBatch, "
                                  f"got {batch!r}")
            self.incidents[i] += batch.incidents
            # later scenarios win a claimed payment; each is its own incident (each victim
            # reports on their own)
            claimed = np.asarray(batch.claimed, dtype=np.int64)
            code[claimed] = i
            incident[claimed] = (i << 40) | _CLAIMED | serial[claimed]
            new = self._within(batch.new, name)
            if new is not None:
                self.made += len(new)
                self.payments.add(new, np.full(len(new), i, np.int16),
                                  code=np.full(len(new), i, np.int16), incident=np.where(
                                      new.incident >= 0, (i << 40) + new.incident, -1))
            for pending, block in ((self.events, batch.events),
                                   (self.sessions, batch.sessions)):
                block = self._within(block, name)
                if block is not None:
                    pending.add(block, np.full(len(block), i, np.int16))
            if batch.accounts is not None and len(batch.accounts):
                self.accounts.append((batch.accounts,
                                      np.full(len(batch.accounts), i, np.int16)))
        self.payments.add(pay, np.zeros(m, np.int16), code=code, incident=incident)

    def _within(self, block: Block | None, name: str) -> Block | None:
        """A scenario's rows before the end of the run; none before what was handed over."""
        if block is None or len(block) == 0:
            return None
        block = block.take(block.t < self.days * SECONDS_PER_DAY)
        if len(block) and block.t.min() < self.handed_until:
            raise ConfigError(
                f"scenario '{name}' made a row at {int(block.t.min())} s, before rows already "
                f"written ({self.handed_until} s); a day's rows may lie at most "
                f"{REACH_BACK_DAYS} days before it")
        return block if len(block) else None

    # -- handing over -------------------------------------------------------------------------

    def _hand_over(self, sink: Sink, until: int | None) -> None:
        """Number the rows before ``until`` (all: ``None``) and hand them to ``sink``."""
        done = self.payments.release(until)
        if done is not None:
            block, origin, extra = done
            self._payments(sink, block, origin, extra["code"], extra["incident"])
        done = self.events.release(until)
        if done is not None:
            block, code, _ = done
            first = self.count["events"]
            sink.events(*self.tables.events(block, first, code))
            self.count["events"] += len(block)
            self.by_code["events"] += np.bincount(code, minlength=len(self.names))
            login = block.kind == cat.LOGIN
            self.kinds += [np.count_nonzero(login & block.success),
                           np.count_nonzero(login & ~block.success),
                           np.count_nonzero(block.kind == cat.EMAIL_CHANGE),
                           np.count_nonzero(block.kind == cat.PASSWORD_CHANGE)]
        done = self.sessions.release(until)
        if done is not None:
            block, code, _ = done
            sink.sessions(*self.tables.sessions(block, self.count["sessions"], code))
            self.count["sessions"] += len(block)
            self.by_code["sessions"] += np.bincount(code, minlength=len(self.names))
        if until is not None:
            self.handed_until = until

    def _payments(self, sink: Sink, p: PaymentBlock, origin: np.ndarray, code: np.ndarray,
                  incident: np.ndarray) -> None:
        # the legitimate world's payments carry the e-mail address the customer had then
        # (known now: every change before the rows handed over has been made)
        legit = origin == 0
        p.email[legit] = self.activity.moved_email(self.card_owner[p.card[legit]], p.t[legit],
                                                   p.email[legit])
        is_fraud = self.fraud_by_code[code]
        first = self.count["payments"]
        payments, truth = self.tables.payments(p, first, code, is_fraud)
        dates = (self.start_us + p.t * 1_000_000) // _DAY_US
        sink.payments(payments, truth, dates)
        self.count["payments"] += len(p)
        self.count["frauds"] += int(is_fraud.sum())
        self.count["declined"] += int(p.declined.sum())
        self.by_code["payments"] += np.bincount(code, minlength=len(self.names))
        # all the labels need, kept to the end: the fraud and the disputed payments
        f = np.flatnonzero(code > 0)
        self.labelled.append((first + f, p.t[f], np.where(is_fraud[f], incident[f], -1),
                              code[f]))

    # -- the end ------------------------------------------------------------------------------

    def _finish(self, sink: Sink) -> Any:
        if self.labelled:
            row, t, incident, code = (np.concatenate(parts)
                                      for parts in zip(*self.labelled, strict=True))
        else:
            row = t = incident = code = np.zeros(0, np.int64)
        label_row, label_kind, label_t = self.setup.labels.draw(
            self.label_rng, t=t, incident=incident, report_share=self.share_by_code[code],
            disputed=~self.fraud_by_code[code] & (code > 0))
        labels = self.tables.labels(row[label_row], label_kind, label_t)

        order = np.argsort(np.concatenate([b.account for b, _ in self.accounts]), kind="stable")
        accounts = AccountBlock.concat([b for b, _ in self.accounts], order)
        account_code = np.concatenate([c for _, c in self.accounts])[order]
        accounts_table, accounts_truth = self.tables.accounts(accounts, account_code)
        return sink.finish(labels=labels, accounts=accounts_table,
                           accounts_truth=accounts_truth,
                           info=self._info(len(accounts), account_code, labels.num_rows))

    def _info(self, n_accounts: int, account_code: np.ndarray, n_labels: int
              ) -> dict[str, Any]:
        names, count = self.names, self.count
        n = count["payments"]

        def by_name(counts: np.ndarray) -> dict[str, int]:
            return {name: int(counts[i]) for i, name in enumerate(names)}

        logins, failed, email, password = (int(k) for k in self.kinds)
        return {
            "generator": "vigil.simulate.RealisticWorld",
            "vigil_version": vigil.__version__,
            "params": self.setup.params,
            "seed": int(self.root.entropy),
            "start": self.start.isoformat(),
            "days": self.days,
            "entities": describe(self.population),
            "payments": n,
            "labels": n_labels,
            "frauds": count["frauds"],
            "fraud_rate": count["frauds"] / n if n else 0.0,
            "declined": count["declined"],
            "scenarios": by_name(self.by_code["payments"]),
            "incidents": {name: int(k) for name, k in zip(names[1:], self.incidents[1:],
                                                          strict=True)},
            "accounts": n_accounts,
            "account_events": count["events"],
            "verification_sessions": count["sessions"],
            "identity_truth": n_accounts + count["events"] + count["sessions"],
            "identity": {
                "accounts_by_scenario": by_name(np.bincount(account_code,
                                                            minlength=len(names))),
                "logins": logins,
                "failed_logins": failed,
                "email_changes": email,
                "password_changes": password,
                "events_by_scenario": by_name(self.by_code["events"]),
                "sessions_by_scenario": by_name(self.by_code["sessions"]),
            },
        }


def _plan(scenario: RealisticScenario, world: WorldContext, rng: np.random.Generator
          ) -> ScenarioRun:
    run = scenario.plan(world, rng)
    if not isinstance(run, ScenarioRun):
        raise ConfigError(f"scenario '{scenario.name}': plan(world, rng) must return a run "
                          f"with a step(day) method, got {run!r}")
    return run


class _Pending:
    """Rows made but not yet final, in the order they came; released in time order (ties:
    the legitimate world first, then the scenarios in order, then as they came)."""

    def __init__(self, kind: type[Block]) -> None:
        self.kind = kind
        self.parts: list[tuple[Block, np.ndarray, dict[str, np.ndarray]]] = []

    def add(self, block: Block, tie: np.ndarray, **extra: np.ndarray) -> None:
        """Rows of ``block``; ``tie``: the code of who made them (0: the legitimate world);
        ``extra``: more columns that travel with them."""
        if len(block):
            self.parts.append((block, tie, extra))

    def release(self, until: int | None
                ) -> tuple[Block, np.ndarray, dict[str, np.ndarray]] | None:
        """The rows before ``until`` (all: ``None``), sorted; the rest stay."""
        if not self.parts:
            return None
        blocks, ties, extras = zip(*self.parts, strict=True)
        block = blocks[0] if len(blocks) == 1 else self.kind.concat(list(blocks))
        tie = np.concatenate(ties)
        extra = {k: np.concatenate([e[k] for e in extras]) for k in extras[0]}
        order = np.lexsort((tie, block.t))  # stable: equal rows stay as they came
        n = len(order) if until is None else int(np.searchsorted(block.t[order], until))
        rest = order[n:]
        self.parts = [] if rest.size == 0 else [
            (block.take(rest), tie[rest], {k: v[rest] for k, v in extra.items()})]
        if n == 0:
            return None
        out = order[:n]
        return block.take(out), tie[out], {k: v[out] for k, v in extra.items()}
