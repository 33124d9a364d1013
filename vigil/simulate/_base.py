"""The contract every synthetic world keeps, and the parameter checks they share.

A world is configured once (keyword parameters, stored as given, scikit-learn style) and then
asked for any number of datasets: ``simulate(days, start=..., seed=...)``. Keeping the seed out
of ``__init__`` and turning it into a :class:`numpy.random.Generator` only inside ``simulate``
means one configured world can produce many independent, reproducible datasets, and the
configuration can be printed, compared and stored in ``dataset.json`` as plain values.
"""

from __future__ import annotations

import inspect
import math
import numbers
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from vigil._errors import ConfigError
from vigil.events import EventData

Progress = Callable[[int, int], Any]
"""``progress(done_days, total_days)``, called as days are generated (e.g. to drive a bar)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class WorldSimulator(ABC):
    """A synthetic world that produces payments, their delayed labels and ground truth.

    Subclasses follow scikit-learn's estimator rules: ``__init__`` takes keyword parameters
    only and stores each, unchanged, on an attribute of the same name; every check happens
    in :meth:`simulate`, so ``get_params``/``set_params`` and ``repr`` work for any setting.
    What a call to ``simulate`` learns about the world it drew (profiles, incidents) is kept
    on attributes ending in ``_``.
    """

    @abstractmethod
    def simulate(
        self,
        days: int,
        *,
        start: str | date | datetime,
        seed: int | None,
        progress: Progress | None = None,
    ) -> EventData:
        """Generate ``days`` days of events from ``start`` (UTC).

        The same parameters and ``seed`` give byte-identical tables; ``seed=None`` draws fresh
        entropy, which is recorded in ``info["seed"]`` so the run can still be repeated.
        """

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        names = []
        for p in sig.parameters.values():
            if p.name == "self":
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must take named keyword parameters "
                                f"only (found *{p.name})")
            names.append(p.name)
        return sorted(names)

    def get_params(self) -> dict[str, Any]:
        """The parameters given to ``__init__``, by name (values as stored, unchecked)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> WorldSimulator:
        """Change parameters in place; returns ``self``. Unknown names raise ConfigError."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ConfigError(f"{type(self).__name__} has no parameter '{name}'; "
                                  f"valid parameters: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.default is not p.empty
        }
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if name not in defaults or not _same(value, defaults[name])
        ]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # pragma: no cover - exotic values that refuse comparison
        return a is b


# -- parameter checks shared by worlds and scenarios -----------------------------------------


def check_int(name: str, value: Any, *, minimum: int, example: int) -> int:
    """``value`` as an int >= ``minimum``, or a ConfigError that names it and shows an example."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be a whole number >= {minimum} (e.g. {example}), "
                          f"got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum} (e.g. {example}), got {value}")
    return int(value)


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float,
    example: float,
    strict: bool = False,
    maximum: float | None = None,
) -> float:
    """``value`` as a finite float >= ``minimum`` (> when ``strict``), <= ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number (e.g. {example}), got {value!r}")
    value = float(value)
    low_ok = value > minimum if strict else value >= minimum
    if not math.isfinite(value) or not low_ok or (maximum is not None and value > maximum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        if maximum is not None:
            bound += f" and <= {maximum}"
        raise ConfigError(f"{name} must be a finite number {bound} (e.g. {example}), "
                          f"got {value}")
    return value


def check_currency(currency: object) -> str:
    """A world's currency: an ISO 4217 code of three upper-case letters."""
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise ConfigError(f"currency must be an ISO 4217 code of three upper-case letters "
                          f"(e.g. 'EUR'), got {currency!r}")
    return currency


def check_days(days: Any) -> int:
    """The number of days to simulate: a positive whole number."""
    return check_int("days", days, minimum=1, example=183)


def check_progress(progress: Any) -> Progress | None:
    if progress is not None and not callable(progress):
        raise ConfigError(f"progress must be a callable progress(done_days, total_days) or "
                          f"None, got {progress!r}")
    return progress


def parse_start(start: Any) -> datetime:
    """The first instant of the simulation, as an aware UTC datetime.

    Accepts a :class:`~datetime.date` (midnight UTC), a :class:`~datetime.datetime` (naive
    ones are taken as UTC, aware ones converted) or an ISO 8601 string of either.
    """
    value = start
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ConfigError(f"start {start!r} is not a date or time; use ISO 8601, e.g. "
                              "'2018-04-01' or '2018-04-01T00:00:00Z'") from exc
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ConfigError(f"start must be a date, a datetime or an ISO 8601 string such as "
                      f"'2018-04-01', got {start!r}")


def epoch_us(moment: datetime) -> int:
    """Microseconds since 1970-01-01 UTC (exact integer arithmetic, no float rounding)."""
    return (moment - _EPOCH) // _US


def seed_sequence(seed: Any) -> np.random.SeedSequence:
    """The root of every random stream of a run.

    ``None`` draws fresh OS entropy; the returned sequence's ``entropy`` is then the seed to
    record, so an unseeded run can still be repeated.
    """
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0 (e.g. 42) or None, got {seed!r}")
    return np.random.SeedSequence(int(seed))
