"""Group commit: concurrent requests' payments written in one transaction, one disk flush.

A durable commit costs a flush of the write-ahead log (about a millisecond here); one per
payment caps a service at a few hundred payments a second. Requests that arrive while a
commit is under way wait for the next one, which writes all of them together: each request
still returns only after its own payment is on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vigil.serving._batches import BatchWorker, Failed
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
        return int(self._submit((payment, decision)).result())

    def _handle(self, items: list[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[Any]:
        try:
            result = self._store.record_payments(items)
        except Exception as exc:
            if len(items) == 1:
                return [Failed(exc)]
            # find the one that failed; the others still get written
            return [self._handle([item])[0] for item in items]
        self.batches += 1
        written = [seq for seq in result.seqs if seq is not None]
        if self._on_commit is not None and written:
            self._on_commit(written)
        self.written += len(written)
        return [seq if seq is not None else Failed(DuplicatePayment(str(payment["payment_id"])))
                for (payment, _), seq in zip(items, result.seqs, strict=True)]
