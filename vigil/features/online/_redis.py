"""Online feature state in Redis, for several service processes or hosts.

Layout, under a prefix (``vigil:<namespace>:``):

- ``pay:<key>:<value>``: a sorted set of the entity's retained payments, scored by time
  (microseconds; exact in a double until the year 2255), each member the JSON
  ``[payment_id, [column values...]]``;
- ``first:<key>`` and ``gone:<key>``: sorted sets of entity → earliest payment time ever, and
  → latest evicted payment time (for ``TimeSinceFirst`` / ``TimeSinceLast``);
- ``lab:<timeline>:<key>:<value>``: the entity's first label reports, payment id scored by
  report time.

A payment is recorded and the entity's expired payments evicted in one Lua script, so
concurrent writers never lose an event. Reads run in one pipeline per payment. Keys carry a
TTL of their window plus a day, so entities that go quiet leave Redis on their own; a key
with ``keep_last`` (the sequence encoder's history) keeps each entity's newest payments
however old, so its payment sets do not expire.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from typing import Any

from vigil._errors import ConfigError
from vigil.features.online._state import FeatureState, KeyConfig, LabelView, PaymentView, Read

_DAY_MS = 86_400_000

# KEYS: pay zset, first zset, gone zset. ARGV: t, member, entity, retain_us, ttl_ms (0: no
# expiry), keep_last (the newest this many stay whatever their age).
# Numbers go back to Redis through %.0f: Lua's default formatting would round big integers.
_ADD_PAYMENT = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'LT', ARGV[1], ARGV[3])
local newest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
local retain = tonumber(ARGV[4])
local upper
if retain > 0 then upper = string.format('%.0f', newest - retain)
else upper = '(' .. string.format('%.0f', newest) end
local n = redis.call('ZCOUNT', KEYS[1], '-inf', upper)
local spare = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[6])
if spare < n then n = spare end
if n > 0 then
  local last = redis.call('ZRANGE', KEYS[1], n - 1, n - 1, 'WITHSCORES')
  redis.call('ZADD', KEYS[3], 'GT', last[2], ARGV[3])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - 1)
end
if tonumber(ARGV[5]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[5])
else redis.call('PERSIST', KEYS[1]) end
return 1
"""


class RedisState(FeatureState):
    """The state in Redis (``redis://host:port/db``); see the module docstring."""

    def __init__(self, url: str, *, namespace: str = "default", client: Any = None) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - the serve extra brings it
            raise ConfigError("the Redis state needs the 'redis' package: "
                              "pip install 'vigil[serve]'") from exc
        self.url = url
        self._redis = client or redis.Redis.from_url(url)
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise ConfigError(f"cannot reach Redis at {url}: {exc}") from exc
        self._prefix = f"vigil:{namespace}:"
        self._config: dict[str, KeyConfig] = {}
        self._add_payment = self._redis.register_script(_ADD_PAYMENT)

    def configure(self, key: str, config: KeyConfig) -> None:
        self._config[key] = config

    def _k(self, *parts: Any) -> str:
        return self._prefix + ":".join(str(p) for p in parts)

    def read(self, reads: list[Read]) -> list[PaymentView | LabelView | None]:
        pipe = self._redis.pipeline(transaction=False)
        for r in reads:
            if r.timeline is None:
                low = "-inf" if r.since <= -(2**62) else f"({r.since}"
                pipe.zrangebyscore(self._k("pay", r.key, r.value), low, "+inf", withscores=True)
                pipe.zscore(self._k("first", r.key), str(r.value))
                pipe.zscore(self._k("gone", r.key), str(r.value))
            else:
                key = self._k("lab", r.timeline, r.key, r.value)
                pipe.zremrangebyscore(key, "-inf", r.since)  # evicted: no later payment reads
                pipe.zrangebyscore(key, f"({r.since}", "+inf", withscores=True)
        results = pipe.execute()
        out: list[PaymentView | LabelView | None] = []
        i = 0
        for r in reads:
            if r.timeline is None:
                members, first, gone = results[i:i + 3]
                i += 3
                if not members and first is None:
                    out.append(None)
                    continue
                columns = self._config[r.key].columns
                view = PaymentView(values={c: [] for c in columns},
                                   first=None if first is None else int(first),
                                   gone=None if gone is None else int(gone))
                for member, score in members:
                    pid, values = json.loads(member)
                    view.times.append(int(score))
                    view.pids.append(pid)
                    for c, v in zip(columns, values, strict=True):
                        view.values[c].append(v)
                out.append(view)
            else:
                members = results[i + 1]
                i += 2
                out.append(LabelView([int(s) for _, s in members],
                                     [m.decode() for m, _ in members]) if members else None)
        return out

    def add_payment(self, key: str, value: Hashable, t: int, pid: str,
                    row: Mapping[str, Any]) -> None:
        config = self._config[key]
        values = [row.get(c) for c in config.columns]
        values = [float(v) if v is not None and c in config.numeric else v
                  for c, v in zip(config.columns, values, strict=True)]
        member = json.dumps([pid, values])
        self._add_payment(keys=[self._k("pay", key, value), self._k("first", key),
                                self._k("gone", key)],
                          args=[t, member, str(value), config.retain_us,
                                0 if config.keep_last else config.retain_us // 1000 + _DAY_MS,
                                config.keep_last])

    def add_label(self, key: str, value: Hashable, timeline: str, pid: str, reported: int,
                  previous: int | None) -> None:
        if previous is not None and previous <= reported:
            return  # its first report is already counted (or already out of every window)
        name = self._k("lab", timeline, key, value)
        pipe = self._redis.pipeline(transaction=True)
        pipe.zadd(name, {pid: reported}, lt=True)
        pipe.pexpire(name, self._config[key].label_retain_us // 1000 + _DAY_MS)
        pipe.execute()

    def clear(self) -> None:
        """Delete every key of this namespace (tests; re-building from the store)."""
        for name in self._redis.scan_iter(match=self._prefix + "*", count=1000):
            self._redis.delete(name)

    def close(self) -> None:
        self._redis.close()
