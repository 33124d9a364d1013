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

from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

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
    parse_start,
)
from vigil.simulate._payments import LEGIT, describe_scenario
from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._accounts import AccountModel
from vigil.simulate.realistic._context import RealisticScenario
from vigil.simulate.realistic._entities import (
    NewCustomers,
    Population,
    PopulationParams,
    country_strings,
    ip_strings,
)
from vigil.simulate.realistic._labels import LabelModel
from vigil.simulate.realistic._run import Engine, Setup
from vigil.simulate.realistic._scenarios import default_scenarios
from vigil.simulate.realistic._sinks import FolderSink, MemorySink
from vigil.simulate.realistic._tables import ids

_CHUNK_DAYS = 7  # days made and written at a time by default

PRESETS: dict[str, dict[str, Any]] = {
    "small": {"days": 60, "params": {"n_customers": 1_000, "n_merchants": 300}},
    "medium": {"days": 90, "params": {"n_customers": 14_000, "n_merchants": 3_000}},
    "large": {"days": 180, "params": {"n_customers": 70_000, "n_merchants": 12_000}},
}
"""Named sizes: about 50 thousand, 1 million and 10 million payments (``large``: write it
with :meth:`RealisticWorld.simulate_to`, in bounded memory)."""


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

    After :meth:`simulate` or :meth:`simulate_to`: ``customers_``, ``cards_``,
    ``merchants_``, ``devices_`` and ``ips_`` hold the entities' identity attributes as Arrow
    tables (``cards_`` includes the cards of the synthetic identities that fraud rings open;
    ``customers_`` only the real customers).

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
                                  f"is_fraud, report_share, plan(world, rng)), got {s!r}")
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

    def _setup(self) -> Setup:
        p = self._population_params()
        currency = check_currency(self.currency)
        scenarios = self.scenario_list()
        labels = self._label_model()
        accounts = self._account_model()
        decline_share = check_float("decline_share", self.decline_share, minimum=0.0,
                                    maximum=1.0, example=0.015)
        params = {**self.get_params(), **p.__dict__, "currency": currency,
                  "scenarios": [describe_scenario(s) for s in scenarios],
                  "labels": dict(labels.__dict__), "accounts": dict(accounts.__dict__)}
        return Setup(population=p, currency=currency, scenarios=scenarios, labels=labels,
                     accounts=accounts, decline_share=decline_share, params=params)

    def simulate(
        self,
        days: int,
        *,
        start: str | date | datetime,
        seed: int | None,
        progress: Progress | None = None,
    ) -> EventData:
        """Simulate ``days`` days from ``start``; see the class docstring for the story.

        ``progress(done_days, total_days)`` is called after each simulated day. The tables
        are the ones :meth:`simulate_to` writes for the same settings and seed; for a large
        world write them with it, in bounded memory.
        """
        setup = self._setup()
        days = check_days(days)
        start_dt = parse_start(start)
        progress = check_progress(progress)
        engine = Engine(setup, days, start_dt, seed)
        data = engine.run(MemorySink(), chunk_days=_CHUNK_DAYS, progress=None if progress is None
                          else lambda done, total, _payments: progress(done, total))
        self._publish_entities(engine.population, engine.new_customers)
        return data

    def simulate_to(
        self,
        folder: str | Path,
        days: int,
        *,
        start: str | date | datetime,
        seed: int | None,
        chunk_days: int = _CHUNK_DAYS,
        progress: Callable[[int, int, int], Any] | None = None,
    ) -> dict[str, Any]:
        """Simulate ``days`` days from ``start`` and write the dataset folder as it goes.

        The folder is the one :func:`vigil.events.write_dataset` writes of :meth:`simulate`'s
        tables (the same tables for the same settings and seed, read back with
        :func:`vigil.events.load_dataset`), but memory holds only the population and
        ``chunk_days`` days (and two more) at a time, whatever ``days`` is: the ``large``
        preset's ten million payments need well under 1.5 GB. The chunk size changes nothing
        in the tables; the same seed and chunk size give byte-identical files.

        ``progress(done_days, total_days, payments_so_far)`` is called after each day.
        Returns what ``dataset.json`` holds.

        Examples
        --------
        >>> import tempfile
        >>> from vigil.events import load_dataset
        >>> world = RealisticWorld(n_customers=200, n_merchants=80)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     info = world.simulate_to(folder, 14, start="2024-01-01", seed=3)
        ...     data = load_dataset(folder)
        >>> data.payments.num_rows == info["payments"]
        True
        """
        setup = self._setup()
        days = check_days(days)
        start_dt = parse_start(start)
        chunk_days = check_int("chunk_days", chunk_days, minimum=1, example=_CHUNK_DAYS)
        if progress is not None and not callable(progress):
            raise ConfigError(f"progress must be a callable progress(done_days, total_days, "
                              f"payments_so_far) or None, got {progress!r}")
        engine = Engine(setup, days, start_dt, seed)
        info = engine.run(FolderSink(folder), chunk_days=chunk_days, progress=progress)
        self._publish_entities(engine.population, engine.new_customers)
        return info

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
