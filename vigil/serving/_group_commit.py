"""Group commit: concurrent requests' payments written in one transaction, one disk flush.

A durable commit costs a flush of the write-ahead log (about a millisecond here); one per
payment caps a service at a few hundred payments a second. Requests that arrive while a
commit is under way wait for the next one, which writes all of them together: each request
still returns only after its own payment is on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from vigil.serving._batches import BatchWorker
from vigil.store import DuplicatePayment, Store


class GroupCommitter(BatchWorker):
    """Writes (payment, decision) pairs through :meth:`Store.record_payments` in batches."""

    def __init__(self, store: Store, *, max_batch: int = 256,
                 on_commit: Callable[[list[int]], None] | None = None) -> None:
        self._store = store
        self._on_commit = on_commit
        self.batches = 0
        self.written = 0
        super().__init__(max_batch=max_batch, name="vigil-group-commit")

    def write(self, payment: Mapping[str, Any], decision: Mapping[str, Any]) -> int:
        """Write one payment durably (with whatever else is waiting); return its seq.

        Raises :class:`~vigil.store.DuplicatePayment` if its id is already stored, and
        whatever the store raised for a bad value or an unreachable database.
        """
        return self.submit(payment, decision).result()

    def submit(self, payment: Mapping[str, Any], decision: Mapping[str, Any]) -> Future[int]:
        """Queue a payment for the next commit; the future resolves once it is on disk."""
        done: Future[int] = Future()
        self._put((payment, decision, done))
        return done

    def _handle(self, batch: list[tuple[Mapping[str, Any], Mapping[str, Any], Future[int]]]
                ) -> None:
        try:
            result = self._store.record_payments([(p, d) for p, d, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][2].set_exception(exc)
                return
            for item in batch:  # find the one that failed; the others still get written
                self._handle([item])
            return
        self.batches += 1
        written = [seq for seq in result.seqs if seq is not None]
        if self._on_commit is not None and written:
            self._on_commit(written)
        for (payment, _, done), seq in zip(batch, result.seqs, strict=True):
            if seq is None:
                done.set_exception(DuplicatePayment(str(payment["payment_id"])))
            else:
                self.written += 1
                done.set_result(seq)
