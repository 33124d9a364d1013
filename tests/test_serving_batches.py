"""The service's worker threads: batches, replies to threads and to the event loop, work handed
from one worker to the next, failures; and the garbage collector kept to short pauses."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import Any

import pytest

from vigil.serving._batches import BatchWorker, Failed, Forward
from vigil.serving._heap import freeze_survivors


class _Double(BatchWorker):
    """Doubles numbers; a negative one fails; a string goes on to ``then`` as its length."""

    def __init__(self, then: BatchWorker | None = None, gate: threading.Event | None = None
                 ) -> None:
        self.batches: list[list[Any]] = []
        self.threads: set[str] = set()
        self._then, self._gate = then, gate
        super().__init__(max_batch=4, name="test-double")

    def _handle(self, items: list[Any]) -> list[Any]:
        if self._gate is not None:
            self._gate.wait(5)
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        out: list[Any] = []
        for x in items:
            if isinstance(x, str):
                assert self._then is not None
                out.append(Forward(self._then, len(x)))
            elif x < 0:
                out.append(Failed(ValueError(f"{x} is negative")))
            else:
                out.append(2 * x)
        return out


def test_thread_callers_get_their_own_outcomes_in_batches_of_what_waited():
    gate = threading.Event()
    worker = _Double(gate=gate)
    try:
        futures = [worker._submit(i) for i in range(10)]
        failing = worker._submit(-1)
        gate.set()
        assert [f.result(5) for f in futures] == [2 * i for i in range(10)]
        with pytest.raises(ValueError, match="-1 is negative"):
            failing.result(5)
        # what queued while the worker was held came in batches of at most four
        sizes = [len(b) for b in worker.batches]
        assert sum(sizes) == 11 and max(sizes) == 4 and len(sizes) <= 4
        assert worker.threads == {"test-double"}
    finally:
        worker.close()


def test_event_loop_callers_wake_once_per_batch_and_forwarded_work_answers_them():
    last = _Double()
    first = _Double(then=last)
    woken: list[int] = []

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        real = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any) -> Any:
            woken.append(len(args[0]) if args else 0)
            return real(callback, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        results = await asyncio.gather(
            first._run_async(3), first._run_async("abcd"), first._run_async(-2),
            first._run_async("xy"), return_exceptions=True)
        loop.call_soon_threadsafe = real  # type: ignore[method-assign]
        return results

    try:
        results = asyncio.run(main())
        assert results[0] == 6
        assert results[1] == 8 and results[3] == 4  # the length, doubled by the next worker
        assert isinstance(results[2], ValueError)
        # every caller answered, by as many wake-ups as batches that answered someone
        assert sum(woken) == 4 and len(woken) <= len(first.batches) + len(last.batches)
        assert sorted(x for b in last.batches for x in b) == [2, 4]
    finally:
        first.close()
        last.close()


def test_a_cancelled_caller_is_skipped_and_the_worker_goes_on():
    gate = threading.Event()
    worker = _Double(gate=gate)

    async def main() -> int:
        waiting = asyncio.ensure_future(worker._run_async(1))
        await asyncio.sleep(0)
        waiting.cancel()
        gate.set()
        return int(await worker._run_async(5))

    try:
        assert asyncio.run(main()) == 10
    finally:
        worker.close()


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_freezing_keeps_what_lives_and_collects_young_cycles_first():
    try:
        dead = _Node()
        dead.other = _Node()
        dead.other.other = dead  # a cycle: only the collector can free it
        gone = weakref.ref(dead)
        alive = {"kept": [1, 2, 3]}
        del dead
        frozen = freeze_survivors()
        assert gone() is None  # collected before the freeze, not frozen for good
        assert frozen == gc.get_freeze_count() > 0
        assert gc.is_tracked(alive) and alive["kept"] == [1, 2, 3]
        before = gc.get_freeze_count()
        newer = [[i] for i in range(1000)]
        assert freeze_survivors() >= before + len(newer)
    finally:
        gc.unfreeze()  # the rest of the suite runs with the collector as usual
