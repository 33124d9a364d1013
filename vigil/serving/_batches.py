"""Taking work off a queue in batches: whatever waits when a worker thread is free."""

from __future__ import annotations

import queue
from typing import Any

STOP = object()
"""Put on a queue to end its worker once the items before it are done."""


def next_batch(q: queue.Queue, max_batch: int) -> tuple[list[Any], bool]:
    """Wait for one item, then take those already waiting, up to ``max_batch``.

    Returns the batch and whether :data:`STOP` was met (the batch may still hold items to do
    before stopping).
    """
    first = q.get()
    if first is STOP:
        return [], True
    batch = [first]
    while len(batch) < max_batch:
        try:
            item = q.get_nowait()
        except queue.Empty:
            break
        if item is STOP:
            return batch, True
        batch.append(item)
    return batch, False
