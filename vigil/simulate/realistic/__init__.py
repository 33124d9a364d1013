"""The realistic world: identities, everyday behaviour, six frauds and labels that arrive late.

:class:`RealisticWorld` is the world; its fraud scenarios (:class:`RealisticScenario`
objects) and its :class:`LabelModel` plug in as parameters. See ``docs/simulator.md``.
"""

from vigil.simulate.realistic._labels import LabelModel
from vigil.simulate.realistic._scenarios import (
    AccountTakeover,
    AdaptiveFraud,
    CardTesting,
    CompromisedTerminal,
    FraudBatch,
    FriendlyFraud,
    RealisticScenario,
    StolenCardCNP,
    WorldContext,
    default_scenarios,
)
from vigil.simulate.realistic._world import PRESETS, RealisticWorld

__all__ = [
    "PRESETS",
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
    "WorldContext",
    "default_scenarios",
]
