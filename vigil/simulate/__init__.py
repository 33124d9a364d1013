"""Synthetic worlds: payments, their delayed labels and the ground truth behind them.

A world (:class:`WorldSimulator`) is configured with keyword parameters and asked for a
dataset with ``simulate(days, start=..., seed=...)``, which returns
:class:`vigil.events.EventData`. :class:`HandbookWorld` follows the Fraud Detection Handbook's
simulator; fraud scenarios are pluggable :class:`Scenario` objects applied to its payments.
"""

from vigil.simulate._base import Progress, WorldSimulator
from vigil.simulate._handbook_world import HandbookWorld
from vigil.simulate._payments import Incident, Scenario, SimulatedPayments
from vigil.simulate._scenarios import CompromisedCards, CompromisedTerminals, LargeAmount
from vigil.simulate.realistic import (
    AccountModel,
    LabelModel,
    RealisticScenario,
    RealisticWorld,
)

__all__ = [
    "AccountModel",
    "CompromisedCards",
    "CompromisedTerminals",
    "HandbookWorld",
    "Incident",
    "LabelModel",
    "LargeAmount",
    "Progress",
    "RealisticScenario",
    "RealisticWorld",
    "Scenario",
    "SimulatedPayments",
    "WorldSimulator",
]
