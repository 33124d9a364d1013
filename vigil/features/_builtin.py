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
    Ratio,
    Relative,
    TimeSinceFirst,
    TimeSinceFirstFraud,
    TimeSinceLast,
    TimeSinceLastFraud,
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

    The Handbook's inputs plus what stolen cards and compromised terminals leave behind: the
    amount against the card's own history at several horizons (a stolen card spends
    differently) and its recent peaks against its usual amount, how fast and where the card
    pays; and for the terminal, the fraud already *reported* at several horizons, and how
    long ago the first and last of those reports came (a compromise that began weeks ago is
    likely over).
    Chosen on the Handbook benchmark's validation folds only.
    """
    base = list(handbook_baseline().features)
    card = [
        Relative("amount", by="card", window="7d"),
        Relative("amount", by="card", window="30d"),
        Relative("amount", by="card", window="60d"),
        Mean("amount", by="card", window="60d"),
        Max("amount", by="card", window="7d", include_current=False),
        Max("amount", by="card", window="14d", include_current=False),
        Max("amount", by="card", window="30d", include_current=False),
        # a card just used for an unusual spend: its recent peak against its usual amount
        *(Ratio(Max("amount", by="card", window=w, include_current=False),
                Mean("amount", by="card", window="60d")) for w in ("7d", "14d", "30d")),
        Count(by="card", window="1h"),
        TimeSinceLast(by="card"),
        CountDistinct("terminal", by="card", window="7d"),
        FraudCount(by="card", window="30d"),
    ]
    terminal = [
        Count(by="terminal", window="1d"),
        FraudRate(by="terminal", window="2d"),
        FraudRate(by="terminal", window="3d"),
        FraudRate(by="terminal", window="14d"),
        FraudCount(by="terminal", window="7d"),
        FraudCount(by="terminal", window="14d"),
        FraudCount(by="terminal", window="35d"),
        LabelCount(by="terminal", window="35d"),
        TimeSinceFirstFraud(by="terminal", window="35d"),
        TimeSinceFirstFraud(by="terminal", window="60d"),
        TimeSinceLastFraud(by="terminal", window="35d"),
    ]
    return FeatureSet("payments_default", _CARD_TERMINAL, base + card + terminal)


_REALISTIC_KEYS = {**_CARD_TERMINAL, "device": "device_id", "ip": "ip", "email": "email",
                   "merchant": "merchant_id"}


def payments_realistic() -> FeatureSet:
    """The default set plus what online payments carry: devices, IPs, e-mails, merchants.

    For data like the realistic world's (``device_id``, ``ip``, ``email``, ``ip_country``);
    every column it reads is one the scoring API takes, so a model on it can be served. Per
    device and per IP, how busy they are, how many cards they serve (card testing, a thief's
    device, a ring's shared devices) and how new they are; per e-mail, its cards and age;
    per card, new devices, IP countries and e-mails (a stolen card or a taken-over account in
    other hands); per merchant, the cards seen in the last minutes (card testing).
    Chosen on the validation days of ``vigil bench scenarios`` (medium preset) only: the
    fraud already reported per device, IP and merchant added nothing there, and dropping the
    30-day distinct counts lost average precision.
    """
    identity = [
        Count(by="device", window="1h"),
        Count(by="device", window="1d"),
        CountDistinct("card", by="device", window="1h"),
        CountDistinct("card", by="device", window="30d"),
        TimeSinceFirst(by="device"),
        Count(by="ip", window="1h"),
        CountDistinct("card", by="ip", window="10m"),
        CountDistinct("card", by="ip", window="1d"),
        CountDistinct("card", by="ip", window="30d"),
        TimeSinceFirst(by="ip"),
        CountDistinct("card", by="email", window="30d"),
        TimeSinceFirst(by="email"),
        CountDistinct("device", by="card", window="1d"),
        CountDistinct("device", by="card", window="30d"),
        CountDistinct("ip_country", by="card", window="30d"),
        CountDistinct("email", by="card", window="30d"),
        CountDistinct("card", by="merchant", window="10m"),
    ]
    return FeatureSet("payments_realistic", _REALISTIC_KEYS,
                      list(payments_default().features) + identity)


BUILTIN_FEATURE_SETS = {
    "handbook": handbook_baseline,
    "default": payments_default,
    "realistic": payments_realistic,
}


def builtin_feature_set(name: str) -> FeatureSet:
    """A shipped feature set by name: ``handbook``, ``default`` or ``realistic``."""
    try:
        return BUILTIN_FEATURE_SETS[name]()
    except KeyError:
        raise DefinitionError(
            f"no built-in feature set '{name}'; built-in: {', '.join(BUILTIN_FEATURE_SETS)} "
            "(or pass a .toml/.json file)"
        ) from None
