"""A worker thread that takes work off its queue in batches: whatever waits when it is free.

The group committer and the model batcher are both one: each item carries a future that the
worker resolves once its batch is done.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
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


class BatchWorker(ABC):
    """A daemon thread handing batches of queued items to :meth:`_handle`."""

    def __init__(self, *, max_batch: int, name: str) -> None:
        self._max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> None:
        self._queue.put(item)

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        self._queue.put(STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            batch, stop = next_batch(self._queue, self._max_batch)
            if batch:
                self._handle(batch)
            if stop:
                return

    @abstractmethod
    def _handle(self, batch: list[Any]) -> None:
        """Do one batch and resolve each item's future."""
