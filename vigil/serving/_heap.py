"""Short garbage-collector pauses in a long-running scoring process.

CPython's cyclic collector stops every thread while it walks the objects of the generation
it collects, and a full collection walks all of them. In ``vigil serve`` nearly every object
lives as long as the process: the modules, the model, the online state. Under load, full
collections came four times in ten seconds and took 140 to 170 ms each (measured 2026-11-30,
2-core AMD EPYC, ``vigil bench serving``'s model, 1,100 payments/s); every request in flight
waited, and at a steady 1,000 payments/s the queue they left behind took longer still to
drain. So the service:

- at start, once everything is built, collects fully and then **freezes** what is alive
  (:func:`gc.freeze`): later collections skip those objects;
- every :data:`FREEZE_SECONDS`, collects the young generations and freezes what survived them
  (mostly the online state's new entries), so the objects a full collection walks stay few:
  its pauses fell to about a millisecond.

The price: a reference cycle that becomes garbage *after* it was frozen is never reclaimed.
Reference counting still frees everything else the moment it is dropped, evicted online
state included (the state holds no cycles), and young cyclic garbage is collected before each
freeze. ``/metrics`` reports the frozen objects (``vigil_gc_frozen_objects``) so that a slow
growth would show.
"""

from __future__ import annotations

import asyncio
import gc

FREEZE_SECONDS = 5.0
"""How often the service moves the objects that survived the young collections out of the
collector's sight."""


def freeze_survivors(*, full: bool = False) -> int:
    """Collect (every generation with ``full``, else the young ones), then freeze what is
    left; returns how many objects are frozen in all."""
    gc.collect(2 if full else 1)
    gc.freeze()
    return gc.get_freeze_count()


async def freeze_periodically(interval: float = FREEZE_SECONDS) -> None:
    """:func:`freeze_survivors` every ``interval`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        freeze_survivors()
