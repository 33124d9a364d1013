"""Online feature state: per entity, the recent payments and label reports its features read.

The state is a function of the set of events recorded, not of their arrival order: each
entity keeps its payments sorted by time and, per label timeline, the first report time of
each of its payments' labels. The executor (:mod:`vigil.features.online._executor`) reads
*views* of it and computes features from them, the same code whichever backend holds them.

Two backends share the interface: :class:`MemoryState` (in-process dicts; the default) and
:class:`~vigil.features.online.RedisState` (several service processes or hosts).

Bounded: an entity's payments older than its longest window (and label reports older than
its longest label window) are evicted as time moves on; the latest evicted payment time is
remembered for ``TimeSinceLast``, the earliest ever for ``TimeSinceFirst``. A key with
``keep_last = N`` (the sequence encoder's history) also keeps each entity's newest N payments
whatever their age, and its entities are never dropped whole.
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

TIMELINES = ("labelled", "fraud")


@dataclass
class PaymentView:
    """An entity's retained payments, sorted by time (read-only for the executor)."""

    times: list[int] = field(default_factory=list)
    pids: list[str] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)
    first: int | None = None  # earliest payment time ever recorded
    gone: int | None = None  # latest time among evicted payments

    def add(self, t: int, pid: str, row: Mapping[str, Any], columns: tuple[str, ...],
            numeric: tuple[str, ...] = ()) -> bool:
        """Insert in time order (then payment id); False if this payment is already here.
        Values of ``numeric`` columns are kept as floats."""
        i = bisect.bisect_left(self.times, t)
        while i < len(self.times) and self.times[i] == t and self.pids[i] < pid:
            i += 1
        if i < len(self.times) and self.times[i] == t and self.pids[i] == pid:
            return False
        self.times.insert(i, t)
        self.pids.insert(i, pid)
        for c in columns:
            v = row.get(c)
            self.values.setdefault(c, []).insert(i, float(v) if v is not None and c in numeric
                                                 else v)
        if self.first is None or t < self.first:
            self.first = t
        return True

    def evict(self, before: int, keep_last: int = 0) -> None:
        """Forget payments at or before ``before``, but never those at the latest time nor
        the newest ``keep_last``."""
        n = bisect.bisect_right(self.times, before)
        if n and n == len(self.times):
            n = bisect.bisect_left(self.times, self.times[-1])
        n = min(n, max(0, len(self.times) - keep_last))
        if n:
            last = self.times[n - 1]
            self.gone = last if self.gone is None else max(self.gone, last)
            del self.times[:n]
            del self.pids[:n]
            for col in self.values.values():
                del col[:n]


@dataclass
class LabelView:
    """An entity's first label reports on one timeline: sorted times and their payment ids."""

    times: list[int] = field(default_factory=list)
    pids: list[str] = field(default_factory=list)

    def add(self, pid: str, reported: int, previous: int | None) -> None:
        """Record ``pid``'s first report at ``reported``; ``previous`` is the first report
        known before (moved if the new one is earlier, kept otherwise)."""
        if previous is not None:
            if previous <= reported:
                return
            self.remove(pid, previous)
        i = bisect.bisect_left(self.times, reported)
        self.times.insert(i, reported)
        self.pids.insert(i, pid)

    def remove(self, pid: str, reported: int) -> None:
        i = bisect.bisect_left(self.times, reported)
        while i < len(self.times) and self.times[i] == reported:
            if self.pids[i] == pid:
                del self.times[i]
                del self.pids[i]
                return
            i += 1

    def evict(self, before: int) -> None:
        n = bisect.bisect_right(self.times, before)
        if n:
            del self.times[:n]
            del self.pids[:n]


class Read(NamedTuple):
    """One view to read: an entity's payments (``timeline`` None) or one label timeline.

    A named tuple rather than a dataclass: the executor makes several per payment."""

    key: str
    value: Hashable
    since: int  # the executor needs nothing at or before this time
    timeline: str | None = None


@dataclass(frozen=True)
class KeyConfig:
    """How long one entity key's events are kept (from the executor's plan)."""

    columns: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()  # of the columns, those kept as floats
    retain_us: int = 0  # payments: the longest window (0: only the latest time is needed)
    history: bool = False  # a TimeSince* feature reads it: keep the entity for good
    label_retain_us: int = 0
    keep_last: int = 0  # payments: also keep the newest this many, whatever their age


class FeatureState(ABC):
    """The interface every backend implements (see the module docstring)."""

    @abstractmethod
    def configure(self, key: str, config: KeyConfig) -> None:
        """Declare what ``key``'s entities keep; called by the executor before any event."""

    @abstractmethod
    def read(self, reads: list[Read]) -> list[PaymentView | LabelView | None]:
        """The views asked for, in order; None where the entity has nothing yet."""

    @abstractmethod
    def add_payment(self, key: str, value: Hashable, t: int, pid: str,
                    row: Mapping[str, Any]) -> None:
        """Record a payment of entity ``value`` of ``key`` and evict what fell out of reach."""

    @abstractmethod
    def add_label(self, key: str, value: Hashable, timeline: str, pid: str, reported: int,
                  previous: int | None) -> None:
        """Record the first report of ``pid``'s label on ``timeline`` (see LabelView.add)."""

    def sweep(self, now: int) -> None:  # noqa: B027 - optional: backends that expire alone
        """Evict from every entity what no payment at or after ``now`` can read."""

    def close(self) -> None:  # noqa: B027 - optional: backends without connections
        """Release connections."""


class MemoryState(FeatureState):
    """In-process state: dicts of :class:`PaymentView` and :class:`LabelView`.

    >>> s = MemoryState()
    >>> s.configure("card_id", KeyConfig(columns=("amount",), retain_us=100))
    >>> s.add_payment("card_id", "c1", 10, "p1", {"amount": 5.0})
    >>> s.read([Read("card_id", "c1", since=0)])[0].times
    [10]
    """

    def __init__(self) -> None:
        self._payments: dict[str, dict[Hashable, PaymentView]] = {}
        self._labels: dict[tuple[str, str], dict[Hashable, LabelView]] = {}
        self._config: dict[str, KeyConfig] = {}
        self._loaded: dict[str, Any] | None = None  # the configs a loaded snapshot was made with

    def configure(self, key: str, config: KeyConfig) -> None:
        if self._loaded is not None and key in self._payments:
            made = self._loaded.get(key)
            # a snapshot without configs predates keep_last
            if (bool(config.keep_last) if made is None else made != _config_doc(config)):
                raise ValueError(f"the online state snapshot keeps other data for '{key}' "
                                 "than these features need (another model's snapshot); "
                                 "rebuild the state from the events instead")
        self._config[key] = config

    def read(self, reads: list[Read]) -> list[PaymentView | LabelView | None]:
        out: list[PaymentView | LabelView | None] = []
        for r in reads:
            if r.timeline is None:
                out.append(self._payments.get(r.key, {}).get(r.value))
            else:
                out.append(self._labels.get((r.key, r.timeline), {}).get(r.value))
        return out

    def add_payment(self, key: str, value: Hashable, t: int, pid: str,
                    row: Mapping[str, Any]) -> None:
        config = self._config[key]
        view = self._payments.setdefault(key, {}).get(value)
        if view is None:
            view = PaymentView(values={c: [] for c in config.columns})
            self._payments[key][value] = view
        view.add(t, pid, row, config.columns, config.numeric)
        view.evict(view.times[-1] - config.retain_us, config.keep_last)

    def add_label(self, key: str, value: Hashable, timeline: str, pid: str, reported: int,
                  previous: int | None) -> None:
        view = self._labels.setdefault((key, timeline), {}).setdefault(value, LabelView())
        view.add(pid, reported, previous)

    def sweep(self, now: int) -> None:
        for key, entities in self._payments.items():
            config = self._config[key]
            for value in list(entities):
                view = entities[value]
                if (not config.history and not config.keep_last
                        and view.times[-1] <= now - config.retain_us):
                    del entities[value]  # nothing left that a later payment could read
                else:
                    view.evict(now - config.retain_us, config.keep_last)
        for (key, _), entities in self._labels.items():
            horizon = now - self._config[key].label_retain_us
            for value in list(entities):
                view = entities[value]
                view.evict(horizon)
                if not view.times:
                    del entities[value]

    def sizes(self) -> dict[str, int]:
        """Entities and retained events, per kind of state (for memory measurements)."""
        return {
            "payment_entities": sum(len(e) for e in self._payments.values()),
            "payment_events": sum(len(v.times) for e in self._payments.values()
                                  for v in e.values()),
            "label_entities": sum(len(e) for e in self._labels.values()),
            "label_events": sum(len(v.times) for e in self._labels.values() for v in e.values()),
        }

    # snapshots: plain JSON-able data, so a restart can load the state instead of replaying
    def dump(self) -> dict[str, Any]:
        """The whole state as JSON-able data (see :meth:`load`)."""
        return {
            "format": 1,
            "config": {key: _config_doc(c) for key, c in self._config.items()},
            "payments": {key: [[_jsonable(value), v.times, v.pids, v.values, v.first, v.gone]
                               for value, v in entities.items()]
                         for key, entities in self._payments.items()},
            "labels": [[key, timeline, [[_jsonable(value), v.times, v.pids]
                                        for value, v in entities.items()]]
                       for (key, timeline), entities in self._labels.items()],
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> MemoryState:
        """Rebuild a state from :meth:`dump`'s output (the executor configures it again)."""
        if data.get("format") != 1:
            raise ValueError(f"unknown online state snapshot format {data.get('format')!r}")
        state = cls()
        state._loaded = data.get("config", {})
        for key, entities in data["payments"].items():
            state._payments[key] = {
                _hashable(value): PaymentView(times, pids, values, first, gone)
                for value, times, pids, values, first, gone in entities}
        for key, timeline, entities in data["labels"]:
            state._labels[key, timeline] = {_hashable(value): LabelView(times, pids)
                                            for value, times, pids in entities}
        return state


def _config_doc(config: KeyConfig) -> dict[str, Any]:
    return {"columns": list(config.columns), "numeric": list(config.numeric),
            "retain_us": config.retain_us, "history": config.history,
            "label_retain_us": config.label_retain_us, "keep_last": config.keep_last}


def _jsonable(value: Hashable) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _hashable(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, list) else value

