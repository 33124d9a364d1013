"""The realistic world: identities, accounts, everyday behaviour, seven frauds and labels that
arrive late.

:class:`RealisticWorld` is the world; its fraud scenarios (:class:`RealisticScenario`
objects, which plan a run that steps through the days: a :class:`ScenarioRun`, e.g.
:class:`Planned`), its :class:`AccountModel` and its :class:`LabelModel` plug in as
parameters. See ``docs/simulator.md``.
"""

from vigil.simulate.realistic._accounts import AccountModel
from vigil.simulate.realistic._context import (
    REACH_BACK_DAYS,
    DayContext,
    FraudBatch,
    Planned,
    RealisticScenario,
    ScenarioRun,
    WorldContext,
)
from vigil.simulate.realistic._labels import LabelModel
from vigil.simulate.realistic._rings import SyntheticIdentityRing
from vigil.simulate.realistic._scenarios import (
    AdaptiveFraud,
    CardTesting,
    CompromisedTerminal,
    FriendlyFraud,
    StolenCardCNP,
    default_scenarios,
)
from vigil.simulate.realistic._takeover import AccountTakeover
from vigil.simulate.realistic._world import PRESETS, RealisticWorld

__all__ = [
    "PRESETS",
    "REACH_BACK_DAYS",
    "AccountModel",
    "AccountTakeover",
    "AdaptiveFraud",
    "CardTesting",
    "CompromisedTerminal",
    "DayContext",
    "FraudBatch",
    "FriendlyFraud",
    "LabelModel",
    "Planned",
    "RealisticScenario",
    "RealisticWorld",
    "ScenarioRun",
    "StolenCardCNP",
    "SyntheticIdentityRing",
    "WorldContext",
    "default_scenarios",
]
