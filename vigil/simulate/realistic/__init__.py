"""The realistic world: identities, accounts, everyday behaviour, seven frauds and labels that
arrive late.

:class:`RealisticWorld` is the world; its fraud scenarios (:class:`RealisticScenario`
objects), its :class:`AccountModel` and its :class:`LabelModel` plug in as parameters. See
``docs/simulator.md``.
"""

from vigil.simulate.realistic._accounts import AccountModel
from vigil.simulate.realistic._context import FraudBatch, RealisticScenario, WorldContext
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
    "AccountModel",
    "AccountTakeover",
    "AdaptiveFraud",
    "CardTesting",
    "CompromisedTerminal",
    "FraudBatch",
    "FriendlyFraud",
    "LabelModel",
    "RealisticScenario",
    "RealisticWorld",
    "StolenCardCNP",
    "SyntheticIdentityRing",
    "WorldContext",
    "default_scenarios",
]
