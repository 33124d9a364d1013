"""The realistic world: identities, everyday behaviour, six frauds and labels that arrive late.

Where :class:`~vigil.simulate.HandbookWorld` is a benchmark with three deliberately simple
frauds, this world aims at what a processor really sees: payments with device, IP, e-mail
and countries; households sharing devices; many customers behind one carrier IP; travel;
new customers and replaced cards; frauds that each leave a different signature; and labels
that come weeks later, for only part of the fraud, with friendly fraud among them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import vigil
from vigil._errors import ConfigError
from vigil.events import LABEL_SCHEMA, PAYMENT_SCHEMA, TIMESTAMP, TRUTH_SCHEMA, EventData
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
from vigil.simulate._payments import LEGIT, describe_scenario, fixed_width_ids, id_width
from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._entities import (
    Population,
    PopulationParams,
    country_strings,
    describe,
    draw_population,
    email_strings,
    ip_strings,
)
from vigil.simulate.realistic._labels import LabelModel
from vigil.simulate.realistic._legit import PaymentBlock, legit_payments
from vigil.simulate.realistic._scenarios import (
    RealisticScenario,
    WorldContext,
    default_scenarios,
)

PRESETS: dict[str, dict[str, Any]] = {
    "small": {"days": 60, "params": {"n_customers": 1_000, "n_merchants": 300}},
    "medium": {"days": 90, "params": {"n_customers": 14_000, "n_merchants": 3_000}},
    "large": {"days": 180, "params": {"n_customers": 70_000, "n_merchants": 12_000}},
}
"""Named sizes: about 50 thousand, 1 million and 10 million payments."""

_LABEL_KINDS = ("dispute", "fraud_report")


class RealisticWorld(WorldSimulator):
    """A world of customers, cards, devices, IPs, e-mails and merchants, with six frauds.

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
    currency:
        ISO 4217 code of every amount.
    scenarios:
        Fraud scenarios (:class:`RealisticScenario` objects with a unique ``name``);
        ``None`` for :func:`default_scenarios`. Later ones win a claimed payment.
    labels:
        The :class:`LabelModel` of delays and reporting; ``None`` for its defaults.

    After :meth:`simulate`: ``customers_``, ``cards_``, ``merchants_``, ``devices_`` and
    ``ips_`` hold the entities' identity attributes as Arrow tables.

    Examples
    --------
    >>> world = RealisticWorld(n_customers=200, n_merchants=80)
    >>> data = world.simulate(14, start="2024-01-01", seed=3)
    >>> data.payments.num_rows == data.info["payments"]
    True
    >>> "card_testing" in data.info["scenarios"]
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
        currency: str = "EUR",
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
        self.currency = currency
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
        days = check_days(days)
        start_dt = parse_start(start)
        progress = check_progress(progress)
        root = seed_sequence(seed)
        pop_seq, legit_seq, label_seq, scenario_seq = root.spawn(4)

        pop = draw_population(p, days, np.random.default_rng(pop_seq))
        legit = legit_payments(pop, np.random.default_rng(legit_seq),
                               start_weekday=start_dt.weekday(), progress=progress)
        world = WorldContext(population=pop, legit=legit, days=days)

        # every payment's scenario code (0 legit), and incident numbers made global
        names = [LEGIT] + [s.name for s in scenarios]
        code = np.zeros(len(legit), dtype=np.int16)
        incident = np.full(len(legit), -1, dtype=np.int64)
        blocks, codes, incidents = [legit], [code], [incident]
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
                incidents.append(batch.new.incident + next_incident)
                next_incident += int(batch.new.incident.max()) + 1
        rows = PaymentBlock.concat(blocks)
        scenario_code = np.concatenate(codes)
        incident = np.concatenate(incidents)
        order = np.argsort(rows.t, kind="stable")  # time order; ties: legit, then scenarios
        rows, scenario_code, incident = rows.take(order), scenario_code[order], incident[order]

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

        start_us = epoch_us(start_dt)
        n = len(rows)
        per_scenario = np.bincount(scenario_code, minlength=len(names))
        info = {
            "generator": "vigil.simulate.RealisticWorld",
            "vigil_version": vigil.__version__,
            "params": {**self.get_params(), **p.__dict__, "currency": self.currency,
                       "scenarios": [describe_scenario(s) for s in scenarios],
                       "labels": dict(label_model.__dict__)},
            "seed": int(root.entropy),
            "start": start_dt.isoformat(),
            "days": days,
            "entities": describe(pop),
            "payments": n,
            "labels": int(label_row.size),
            "frauds": int(is_fraud.sum()),
            "fraud_rate": float(is_fraud.mean()) if n else 0.0,
            "scenarios": {name: int(per_scenario[i]) for i, name in enumerate(names)},
            "incidents": counts,
        }
        data = _tables(pop, rows, start_us=start_us, currency=self.currency,
                       is_fraud=is_fraud, scenario_code=scenario_code, names=names,
                       label_row=label_row, label_kind=label_kind, label_t=label_t, info=info)
        self._publish_entities(pop)
        return data

    def _publish_entities(self, pop: Population) -> None:
        n = pop.n_customers
        self.customers_ = pa.table({
            "customer_id": _ids("cu", n), "country": country_strings(pop.cust_country),
            "household": pa.array(pop.cust_household), "signup_day": pa.array(
                pop.cust_signup_day), "payments_per_day": pa.array(pop.cust_rate)})
        self.cards_ = pa.table({
            "card_id": _ids("card", pop.n_cards),
            "customer_id": _ids("cu", n).take(pa.array(pop.card_owner)),
            "bin_country": country_strings(pop.card_country),
            "issuer": pa.array(pop.card_issuer), "first_day": pa.array(pop.card_first_day)})
        self.merchants_ = pa.table({
            "merchant_id": _ids("m", pop.n_merchants),
            "mcc": pa.array([c.mcc for c in cat.CATEGORIES]).take(pa.array(pop.m_category)),
            "category": pa.array([c.name for c in cat.CATEGORIES]).take(
                pa.array(pop.m_category)),
            "risk_tier": pa.array([c.risk_tier for c in cat.CATEGORIES]).take(
                pa.array(pop.m_category)),
            "country": country_strings(pop.m_country), "online": pa.array(pop.m_online),
            "terminals": pa.array(np.diff(pop.m_term_offsets))})
        self.devices_ = pa.table({
            "device_id": _ids("dv", len(pop.dev_os)),
            "os": pa.array(cat.DEVICE_OS).take(pa.array(pop.dev_os)),
            "fraud_pool": pa.array(pop.dev_fraud)})
        self.ips_ = pa.table({
            "ip": ip_strings(pop), "country": country_strings(pop.ip_country),
            "kind": pa.array(cat.IP_KINDS).take(pa.array(pop.ip_kind))})


def _ids(prefix: str, count: int) -> pa.ChunkedArray:
    return fixed_width_ids(prefix, np.arange(count), id_width(count, 6))


def _take(strings: pa.Array | pa.ChunkedArray, index: np.ndarray) -> pa.Array:
    """``strings[index]``, null where the index is -1."""
    return strings.take(pa.array(index, type=pa.int64(), mask=index < 0))


def _tables(pop: Population, rows: PaymentBlock, *, start_us: int, currency: str,
            is_fraud: np.ndarray, scenario_code: np.ndarray, names: list[str],
            label_row: np.ndarray, label_kind: np.ndarray, label_t: np.ndarray,
            info: dict[str, Any]) -> EventData:
    """The payments, labels and truth tables, string ids built once per entity."""
    n = len(rows)
    payment_ids = fixed_width_ids("p", np.arange(n), id_width(n, 10))
    ts_us = start_us + rows.t * 1_000_000
    customer = pop.card_owner[rows.card]
    cnp = pa.array(rows.cnp)
    columns = {
        "payment_id": payment_ids,
        "ts": pa.array(ts_us, type=pa.int64()).cast(TIMESTAMP),
        "amount": pa.array(rows.amount, type=pa.float64()),
        "currency": pa.repeat(pa.scalar(currency, pa.string()), n),
        "card_id": _take(_ids("card", pop.n_cards), rows.card),
        "customer_id": _take(_ids("cu", pop.n_customers), customer),
        "merchant_id": _take(_ids("m", pop.n_merchants), rows.merchant),
        "terminal_id": _take(_ids("t", max(pop.n_terminals, 1)), rows.terminal),
        "device_id": _take(_ids("dv", len(pop.dev_os)), rows.device),
        "ip": _take(ip_strings(pop), rows.ip),
        "email": _take(email_strings(pop), rows.email),
        "card_country": _take(country_strings(np.arange(len(cat.COUNTRIES))),
                              pop.card_country[rows.card]),
        "ip_country": _take(country_strings(np.arange(len(cat.COUNTRIES))),
                            np.where(rows.ip >= 0, pop.ip_country[rows.ip], -1)),
        "merchant_country": _take(country_strings(np.arange(len(cat.COUNTRIES))),
                                  pop.m_country[rows.merchant]),
        "channel": pc.if_else(cnp, "card_not_present", "card_present"),
    }
    payments = pa.Table.from_arrays([columns[f.name] for f in PAYMENT_SCHEMA],
                                    schema=PAYMENT_SCHEMA)

    label_ids = payment_ids.take(pa.array(label_row, type=pa.int64()))
    kinds = pa.array(_LABEL_KINDS).take(pa.array(label_kind.astype(np.int64)))
    reported = pa.array(start_us + label_t * 1_000_000, type=pa.int64()).cast(TIMESTAMP)
    labels = pa.Table.from_arrays(
        [label_ids, kinds, pa.array(np.ones(label_row.size, dtype=bool)), reported],
        schema=LABEL_SCHEMA)

    scenario = pa.array(names, pa.string()).take(pa.array(scenario_code.astype(np.int64)))
    truth = pa.Table.from_arrays([payment_ids, pa.array(is_fraud), scenario],
                                 schema=TRUTH_SCHEMA)
    return EventData(payments=payments, labels=labels, truth=truth, info=info)
