"""The realistic world: identities, accounts, everyday behaviour, seven frauds and labels
that arrive late.

Where :class:`~vigil.simulate.HandbookWorld` is a benchmark with three deliberately simple
frauds, this world aims at what a processor really sees: payments with device, IP, e-mail
and countries, and the issuer's answer; accounts with their sign-ups, logins, changes and
identity verification sessions; households sharing devices; many customers behind one
carrier IP; travel; new customers and replaced cards; frauds that each leave a different
signature; and labels that come weeks later, for only part of the fraud, with friendly fraud
among them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

import vigil
from vigil._errors import ConfigError
from vigil.events import EventData
from vigil.simulate._base import (
    Progress,
    WorldSimulator,
    check_currency,
    check_days,
    check_float,
    check_int,
    check_progress,
    epoch_us,
    parse_start,
    seed_sequence,
)
from vigil.simulate._payments import LEGIT, describe_scenario
from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._accounts import (
    AccountBlock,
    AccountModel,
    EventBlock,
    SessionBlock,
    legit_activity,
)
from vigil.simulate.realistic._context import RealisticScenario, WorldContext
from vigil.simulate.realistic._entities import (
    NewCustomers,
    Population,
    PopulationParams,
    country_strings,
    describe,
    draw_population,
    ip_strings,
)
from vigil.simulate.realistic._identity import draw_identities
from vigil.simulate.realistic._labels import LabelModel
from vigil.simulate.realistic._legit import (
    SECONDS_PER_DAY,
    Block,
    PaymentBlock,
    legit_payments,
)
from vigil.simulate.realistic._scenarios import default_scenarios
from vigil.simulate.realistic._tables import Rows, build_tables, ids

PRESETS: dict[str, dict[str, Any]] = {
    "small": {"days": 60, "params": {"n_customers": 1_000, "n_merchants": 300}},
    "medium": {"days": 90, "params": {"n_customers": 14_000, "n_merchants": 3_000}},
    "large": {"days": 180, "params": {"n_customers": 70_000, "n_merchants": 12_000}},
}
"""Named sizes: about 50 thousand, 1 million and 10 million payments."""


class RealisticWorld(WorldSimulator):
    """A world of customers, accounts, cards, devices, IPs, e-mails and merchants, with
    seven frauds.

    Parameters
    ----------
    n_customers:
        Customers; each holds one card (some replaced during the run).
    n_merchants:
        Merchants, each with a category (MCC), a country and, in shops, terminals.
    payments_per_day:
        Mean payments a day of a customer (each customer's own rate varies around it).
    household_size:
        Mean people per household; a household shares devices and a broadband line.
    new_customer_share:
        Share of customers whose account opens during the run (they pay from then on).
    card_replacements_per_year:
        Rate at which a card is replaced by a new one (new card id, same customer).
    trips_per_year:
        Trips abroad per customer and year; abroad, IP country and merchant country differ
        from the card's country.
    carrier_nat_users:
        Customers per carrier-NAT address: that many share one mobile IP.
    decline_share:
        Share of ordinary payments the issuer declines (``status`` ``declined``).
    currency:
        ISO 4217 code of every amount.
    accounts:
        The :class:`AccountModel` of how customers use their accounts (guest checkouts,
        sessions, logins, password and e-mail changes, identity verification); ``None`` for
        its defaults.
    scenarios:
        Fraud scenarios (:class:`RealisticScenario` objects with a unique ``name``);
        ``None`` for :func:`default_scenarios`. Later ones win a claimed payment.
    labels:
        The :class:`LabelModel` of delays and reporting; ``None`` for its defaults.

    After :meth:`simulate`: ``customers_``, ``cards_``, ``merchants_``, ``devices_`` and
    ``ips_`` hold the entities' identity attributes as Arrow tables (``cards_`` includes the
    cards of the synthetic identities that fraud rings open; ``customers_`` only the real
    customers).

    Examples
    --------
    >>> world = RealisticWorld(n_customers=200, n_merchants=80)
    >>> data = world.simulate(14, start="2024-01-01", seed=3)
    >>> data.payments.num_rows == data.info["payments"]
    True
    >>> "card_testing" in data.info["scenarios"]
    True
    >>> data.accounts.num_rows >= 200  # every customer has one; rings open more
    True
    """

    def __init__(
        self,
        *,
        n_customers: int = 10_000,
        n_merchants: int = 2_000,
        payments_per_day: float = 0.9,
        household_size: float = 2.2,
        new_customer_share: float = 0.15,
        card_replacements_per_year: float = 0.2,
        trips_per_year: float = 3.0,
        carrier_nat_users: int = 300,
        decline_share: float = 0.015,
        currency: str = "EUR",
        accounts: AccountModel | None = None,
        scenarios: Sequence[RealisticScenario] | None = None,
        labels: LabelModel | None = None,
    ) -> None:
        self.n_customers = n_customers
        self.n_merchants = n_merchants
        self.payments_per_day = payments_per_day
        self.household_size = household_size
        self.new_customer_share = new_customer_share
        self.card_replacements_per_year = card_replacements_per_year
        self.trips_per_year = trips_per_year
        self.carrier_nat_users = carrier_nat_users
        self.decline_share = decline_share
        self.currency = currency
        self.accounts = accounts
        self.scenarios = scenarios
        self.labels = labels

    # -- presets ----------------------------------------------------------------------------

    @classmethod
    def preset(cls, name: str, **params: Any) -> RealisticWorld:
        """A world of a named size (``small``, ``medium``, ``large``); ``params`` override.

        Simulate it for :meth:`preset_days` days for the intended number of payments.
        """
        return cls(**{**cls._preset(name)["params"], **params})

    @classmethod
    def preset_days(cls, name: str) -> int:
        """How many days a preset is meant to be simulated for."""
        return int(cls._preset(name)["days"])

    @staticmethod
    def _preset(name: str) -> dict[str, Any]:
        if name not in PRESETS:
            raise ConfigError(f"no preset {name!r}; use one of {', '.join(PRESETS)}")
        return PRESETS[name]

    # -- configuration ----------------------------------------------------------------------

    def _population_params(self) -> PopulationParams:
        return PopulationParams(
            n_customers=check_int("n_customers", self.n_customers, minimum=1, example=10_000),
            n_merchants=check_int("n_merchants", self.n_merchants, minimum=1, example=2_000),
            payments_per_day=check_float("payments_per_day", self.payments_per_day,
                                         minimum=0.0, example=0.9),
            household_size=check_float("household_size", self.household_size, minimum=1.0,
                                       example=2.2),
            new_customer_share=check_float("new_customer_share", self.new_customer_share,
                                           minimum=0.0, maximum=1.0, example=0.15),
            card_replacements_per_year=check_float(
                "card_replacements_per_year", self.card_replacements_per_year, minimum=0.0,
                example=0.2),
            trips_per_year=check_float("trips_per_year", self.trips_per_year, minimum=0.0,
                                       example=3.0),
            carrier_nat_users=check_int("carrier_nat_users", self.carrier_nat_users,
                                        minimum=1, example=300),
        )

    def scenario_list(self) -> list[RealisticScenario]:
        """The fraud scenarios, in the order they are applied."""
        scenarios = default_scenarios() if self.scenarios is None else list(self.scenarios)
        names = []
        for s in scenarios:
            if not isinstance(s, RealisticScenario):
                raise ConfigError(f"scenarios must hold RealisticScenario objects (name, rate, "
                                  f"is_fraud, report_share, apply(world, rng)), got {s!r}")
            if not isinstance(s.name, str) or not s.name or s.name == LEGIT:
                raise ConfigError(f"a scenario name must be a non-empty string other than "
                                  f"'{LEGIT}', got {s.name!r}")
            if s.name in names:
                raise ConfigError(f"two scenarios are named '{s.name}'; give each a unique name")
            if s.report_share is not None:
                check_float(f"{s.name}.report_share", s.report_share, minimum=0.0, maximum=1.0,
                            example=0.8)
            names.append(s.name)
        return scenarios

    def _account_model(self) -> AccountModel:
        model = AccountModel() if self.accounts is None else self.accounts
        if not isinstance(model, AccountModel):
            raise ConfigError(f"accounts must be an AccountModel or None, got {model!r}")
        return model.check()

    def _label_model(self) -> LabelModel:
        model = LabelModel() if self.labels is None else self.labels
        if not isinstance(model, LabelModel):
            raise ConfigError(f"labels must be a LabelModel or None, got {model!r}")
        return model.check()

    # -- simulation -------------------------------------------------------------------------

    def simulate(
        self,
        days: int,
        *,
        start: str | date | datetime,
        seed: int | None,
        progress: Progress | None = None,
    ) -> EventData:
        """Simulate ``days`` days from ``start``; see the class docstring for the story.

        ``progress(done_days, total_days)`` is called after each day of legitimate payments.
        """
        p = self._population_params()
        check_currency(self.currency)
        scenarios = self.scenario_list()
        label_model = self._label_model()
        account_model = self._account_model()
        decline_share = check_float("decline_share", self.decline_share, minimum=0.0,
                                    maximum=1.0, example=0.015)
        days = check_days(days)
        start_dt = parse_start(start)
        progress = check_progress(progress)
        root = seed_sequence(seed)
        # the first four streams as before; the accounts and the issuer's answers draw apart
        pop_seq, legit_seq, label_seq, scenario_seq, account_seq, issuer_seq = root.spawn(6)
        identity_seq, activity_seq = account_seq.spawn(2)

        pop = draw_population(p, days, np.random.default_rng(pop_seq))
        legit = legit_payments(pop, np.random.default_rng(legit_seq),
                               start_weekday=start_dt.weekday(), progress=progress)
        start_us = epoch_us(start_dt)
        start_day = start_us // (SECONDS_PER_DAY * 1_000_000)
        ident = draw_identities(pop, np.random.default_rng(identity_seq), start_day)
        activity = legit_activity(pop, ident, legit, np.random.default_rng(activity_seq),
                                  account_model, days, start_day)
        legit.declined = np.random.default_rng(issuer_seq).random(len(legit)) < decline_share
        world = WorldContext(population=pop, legit=legit, days=days, identities=ident,
                             activity=activity, new_customers=NewCustomers(pop),
                             decline_share=decline_share, start_day=start_day)

        # every payment's scenario code (0 legit), and incident numbers made global
        names = [LEGIT] + [s.name for s in scenarios]
        code = np.zeros(len(legit), dtype=np.int16)
        incident = np.full(len(legit), -1, dtype=np.int64)
        blocks, codes, incidents = [legit], [code], [incident]
        identity: dict[str, tuple[list, list]] = {
            name: ([block], [np.zeros(len(block), dtype=np.int16)]) for name, block in (
                ("accounts", activity.accounts), ("events", activity.events),
                ("sessions", activity.sessions))}
        counts: dict[str, int] = {}
        next_incident = 0
        for i, (scenario, child) in enumerate(
                zip(scenarios, scenario_seq.spawn(len(scenarios)), strict=True), start=1):
            batch = scenario.apply(world, np.random.default_rng(child))
            counts[scenario.name] = batch.incidents
            code[batch.claimed] = i
            # a claimed payment is its own incident (each victim reports on their own)
            incident[batch.claimed] = next_incident + np.arange(batch.claimed.size)
            next_incident += batch.claimed.size
            if batch.new is not None and len(batch.new):
                blocks.append(batch.new)
                codes.append(np.full(len(batch.new), i, dtype=np.int16))
                local = batch.new.incident  # -1: fraud that nobody will report
                incidents.append(np.where(local >= 0, local + next_incident, -1))
                next_incident += int(local.max()) + 1 if (local >= 0).any() else 0
            for name, (parts, part_codes) in identity.items():
                block = getattr(batch, name)
                if block is not None and len(block):
                    parts.append(block)
                    part_codes.append(np.full(len(block), i, dtype=np.int16))
        # time order; ties: legit, then scenarios
        order = np.argsort(np.concatenate([b.t for b in blocks]), kind="stable")
        rows = PaymentBlock.concat(blocks, order)
        scenario_code = np.concatenate(codes)[order]
        incident = np.concatenate(incidents)[order]

        fraud_by_code = np.array([False] + [bool(s.is_fraud) for s in scenarios])
        is_fraud = fraud_by_code[scenario_code]
        friendly = ~is_fraud & (scenario_code > 0)
        default_share = label_model.report_share
        share_by_code = np.array([0.0] + [default_share if s.report_share is None
                                          else float(s.report_share) for s in scenarios])
        label_row, label_kind, label_t = label_model.draw(
            np.random.default_rng(label_seq), t=rows.t,
            incident=np.where(is_fraud, incident, -1),
            report_share=share_by_code[scenario_code], disputed=friendly)

        accounts, account_code = _ordered(AccountBlock, *identity["accounts"], key="account")
        events, event_code = _ordered(EventBlock, *identity["events"], key="t")
        sessions, session_code = _ordered(SessionBlock, *identity["sessions"], key="t")
        new = world.new_customers
        n = len(rows)
        per_scenario = np.bincount(scenario_code, minlength=len(names))
        login = events.kind == cat.LOGIN
        info = {
            "generator": "vigil.simulate.RealisticWorld",
            "vigil_version": vigil.__version__,
            "params": {**self.get_params(), **p.__dict__, "currency": self.currency,
                       "scenarios": [describe_scenario(s) for s in scenarios],
                       "labels": dict(label_model.__dict__),
                       "accounts": dict(account_model.__dict__)},
            "seed": int(root.entropy),
            "start": start_dt.isoformat(),
            "days": days,
            "entities": describe(pop),
            "payments": n,
            "labels": int(label_row.size),
            "frauds": int(is_fraud.sum()),
            "fraud_rate": float(is_fraud.mean()) if n else 0.0,
            "declined": int(rows.declined.sum()),
            "scenarios": {name: int(per_scenario[i]) for i, name in enumerate(names)},
            "incidents": counts,
            "accounts": len(accounts),
            "account_events": len(events),
            "verification_sessions": len(sessions),
            "identity": {
                "accounts_by_scenario": _by_code(account_code, names),
                "logins": int((login & events.success).sum()),
                "failed_logins": int((login & ~events.success).sum()),
                "email_changes": int((events.kind == cat.EMAIL_CHANGE).sum()),
                "password_changes": int((events.kind == cat.PASSWORD_CHANGE).sum()),
                "events_by_scenario": _by_code(event_code, names),
                "sessions_by_scenario": _by_code(session_code, names),
            },
        }
        tables = Rows(
            payments=rows, is_fraud=is_fraud, scenario_code=scenario_code, accounts=accounts,
            account_code=account_code, events=events, event_code=event_code,
            sessions=sessions, session_code=session_code, names=names,
            card_owner=np.concatenate([pop.card_owner,
                                       pop.n_customers + np.arange(len(new), dtype=np.int64)]),
            card_country=np.concatenate([pop.card_country, new.country]),
            n_customers=pop.n_customers + len(new))
        data = build_tables(pop, tables, start_us=start_us, currency=self.currency,
                            label_row=label_row, label_kind=label_kind, label_t=label_t,
                            info=info)
        self._publish_entities(pop, new)
        return data

    def _publish_entities(self, pop: Population, new: NewCustomers) -> None:
        n, n_all = pop.n_customers, pop.n_customers + len(new)
        self.customers_ = pa.table({
            "customer_id": ids("cu", n_all).slice(0, n),
            "country": country_strings(pop.cust_country),
            "household": pa.array(pop.cust_household), "signup_day": pa.array(
                pop.cust_signup_day), "payments_per_day": pa.array(pop.cust_rate)})
        owner = np.concatenate([pop.card_owner, n + np.arange(len(new), dtype=np.int64)])
        self.cards_ = pa.table({
            "card_id": ids("card", len(owner)),
            "customer_id": ids("cu", n_all).take(pa.array(owner)),
            "bin_country": country_strings(np.concatenate([pop.card_country, new.country])),
            "issuer": pa.array(np.concatenate([pop.card_issuer, new.country * 4])),
            "first_day": pa.array(np.concatenate([pop.card_first_day, new.first_day]))})
        self.merchants_ = pa.table({
            "merchant_id": ids("m", pop.n_merchants),
            "mcc": pa.array([c.mcc for c in cat.CATEGORIES]).take(pa.array(pop.m_category)),
            "category": pa.array([c.name for c in cat.CATEGORIES]).take(
                pa.array(pop.m_category)),
            "risk_tier": pa.array([c.risk_tier for c in cat.CATEGORIES]).take(
                pa.array(pop.m_category)),
            "country": country_strings(pop.m_country), "online": pa.array(pop.m_online),
            "terminals": pa.array(np.diff(pop.m_term_offsets))})
        self.devices_ = pa.table({
            "device_id": ids("dv", len(pop.dev_os)),
            "os": pa.array(cat.DEVICE_OS).take(pa.array(pop.dev_os)),
            "fraud_pool": pa.array(pop.dev_fraud)})
        self.ips_ = pa.table({
            "ip": ip_strings(pop), "country": country_strings(pop.ip_country),
            "kind": pa.array(cat.IP_KINDS).take(pa.array(pop.ip_kind))})


def _ordered(kind: type[Block], parts: list[Block], codes: list[np.ndarray], key: str
             ) -> tuple[Any, np.ndarray]:
    """The blocks as one, sorted by ``key`` (ties: legit first, then scenarios in order)."""
    order = np.argsort(np.concatenate([getattr(b, key) for b in parts]), kind="stable")
    return kind.concat(parts, order), np.concatenate(codes)[order]


def _by_code(code: np.ndarray, names: list[str]) -> dict[str, int]:
    counts = np.bincount(code, minlength=len(names))
    return {name: int(counts[i]) for i, name in enumerate(names)}
