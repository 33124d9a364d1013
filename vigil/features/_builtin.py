"""Feature sets that ship with vigil, by name (``vigil train --features handbook``)."""

from __future__ import annotations

from vigil._errors import DefinitionError
from vigil.features._definitions import (
    Count,
    CountDistinct,
    FraudCount,
    FraudRate,
    IsNight,
    IsWeekend,
    LabelCount,
    Max,
    Mean,
    Relative,
    TimeSinceLast,
    Value,
)
from vigil.features._featureset import FeatureSet

_CARD_TERMINAL = {"card": "card_id", "terminal": "terminal_id"}


def handbook_baseline() -> FeatureSet:
    """The Handbook's 15 inputs, in its order.

    The amount; weekend and night flags; per card, the count and mean amount over 1, 7 and 30
    days including the payment; per terminal, the number of labelled payments and their fraud
    share over 1, 7 and 30 days of label reports. With labels reported 7 days after each
    payment (the benchmark's delay) the terminal features equal the Handbook's windows
    "shifted back by the delay".
    """
    features = [Value("amount"), IsWeekend(), IsNight()]
    for days in (1, 7, 30):
        features += [Count(by="card", window=f"{days}d"),
                     Mean("amount", by="card", window=f"{days}d")]
    for days in (1, 7, 30):
        features += [LabelCount(by="terminal", window=f"{days}d"),
                     FraudRate(by="terminal", window=f"{days}d")]
    return FeatureSet("handbook_baseline", _CARD_TERMINAL, features)


def payments_default() -> FeatureSet:
    """vigil's default feature set for card payments with card and terminal keys.

    The Handbook's inputs plus what its fraud patterns call for: the amount against the
    card's own history (a stolen card spends differently), its recent peaks, how fast it
    pays, how many terminals it visits; and the terminal's fraud known from reports at
    several horizons, with how recent the last known fraud was.
    """
    base = list(handbook_baseline().features)
    extra = [
        Relative("amount", by="card", window="30d"),
        Relative("amount", by="card", window="7d"),
        Max("amount", by="card", window="7d", include_current=False),
        Max("amount", by="card", window="30d", include_current=False),
        Count(by="card", window="1h"),
        TimeSinceLast(by="card"),
        CountDistinct("terminal", by="card", window="7d"),
        Count(by="terminal", window="1d"),
        FraudCount(by="terminal", window="7d"),
        FraudCount(by="terminal", window="14d"),
        FraudRate(by="terminal", window="14d"),
        FraudCount(by="card", window="30d"),
    ]
    return FeatureSet("payments_default", _CARD_TERMINAL, base + extra)


BUILTIN_FEATURE_SETS = {
    "handbook": handbook_baseline,
    "default": payments_default,
}


def builtin_feature_set(name: str) -> FeatureSet:
    """A shipped feature set by name: ``handbook`` or ``default``."""
    try:
        return BUILTIN_FEATURE_SETS[name]()
    except KeyError:
        raise DefinitionError(
            f"no built-in feature set '{name}'; built-in: {', '.join(BUILTIN_FEATURE_SETS)} "
            "(or pass a .toml/.json file)"
        ) from None
