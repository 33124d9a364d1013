"""A worker thread that takes work off its queue in batches: whatever waits when it is free.

The group committer and the model batcher are both one. An item is queued with its reply:

- from a thread, :meth:`BatchWorker._submit` returns a :class:`concurrent.futures.Future`;
- from the event loop, :meth:`BatchWorker._run_async` awaits an asyncio future that the
  worker resolves with one ``call_soon_threadsafe`` per batch and loop: the loop wakes once
  for the whole batch, and no thread-safe future is chained to an asyncio one per item.

An item's work can go on in another worker (:class:`Forward`): the reply travels with it,
and whoever waits wakes once, at the end (the scoring service hands a payment from the model
to the group commit this way).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple

STOP = object()
"""Put on a queue to end its worker once the items before it are done."""


class Failed(NamedTuple):
    """What :meth:`BatchWorker._handle` returns for an item that failed."""

    error: BaseException


class Forward(NamedTuple):
    """What :meth:`BatchWorker._handle` returns for an item whose work goes on in ``worker``:
    it is queued there as ``item``, and that worker's outcome answers the waiting caller."""

    worker: BatchWorker
    item: Any


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


def _settle(replies: list[tuple[asyncio.Future, Any]]) -> None:
    """On the event loop: resolve a batch's asyncio futures (a cancelled one is skipped)."""
    for reply, outcome in replies:
        if not reply.done():
            _resolve(reply, outcome)


def _resolve(reply: asyncio.Future | Future, outcome: Any) -> None:
    """Give a reply (either kind of future) its outcome: a value, or a :class:`Failed`."""
    if isinstance(outcome, Failed):
        reply.set_exception(outcome.error)
    else:
        reply.set_result(outcome)


class BatchWorker(ABC):
    """A daemon thread handing batches of queued items to :meth:`_handle`."""

    def __init__(self, *, max_batch: int, name: str) -> None:
        self._max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _submit(self, item: Any) -> Future:
        """Queue an item; the future resolves once its batch is done."""
        done: Future = Future()
        self._queue.put((item, done, None))
        return done

    async def _run_async(self, item: Any) -> Any:
        """Queue an item from the event loop and wait for its outcome without a thread."""
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        self._queue.put((item, reply, loop))
        return await reply

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        self._queue.put(STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            batch, stop = next_batch(self._queue, self._max_batch)
            if batch:
                try:
                    outcomes: Sequence[Any] = self._handle([item for item, _, _ in batch])
                except Exception as exc:  # pragma: no cover - a bug; the requests get a 500
                    outcomes = [Failed(exc)] * len(batch)
                self._reply(batch, outcomes)
            if stop:
                return

    @staticmethod
    def _reply(batch: list[tuple[Any, Any, Any]], outcomes: Sequence[Any]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
        for (_, reply, loop), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Forward):
                outcome.worker._queue.put((outcome.item, reply, loop))
            elif loop is not None:
                by_loop.setdefault(loop, []).append((reply, outcome))
            else:
                _resolve(reply, outcome)
        for loop, replies in by_loop.items():
            # a closed loop: nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, replies)

    @abstractmethod
    def _handle(self, items: list[Any]) -> Sequence[Any]:
        """Do one batch: an outcome per item, in order (a :class:`Failed` for an error, a
        :class:`Forward` for work that goes on elsewhere)."""
