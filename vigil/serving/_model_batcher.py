"""Dynamic batching of model calls: the payments scored at the same moment share one call.

Each XGBoost call costs about a millisecond of fixed overhead here (building its input
matrix), more than the trees themselves. Under load, requests that arrive while a call is
running are explained together in the next one; alone, a request waits for nothing. The
calls run on a thread of their own, so the event loop goes on reading requests meanwhile.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import numpy as np

from vigil.models import RiskModel
from vigil.serving._batches import STOP, next_batch

Explained = tuple[float, np.ndarray]  # probability, SHAP contributions (bias last)


class ModelBatcher:
    """Explains rows of model input, several at a time when several are waiting."""

    def __init__(self, model: RiskModel, *, max_batch: int = 64) -> None:
        self._model = model
        self._max_batch = max_batch
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="vigil-model", daemon=True)
        self._thread.start()
        self.calls = 0
        self.rows = 0

    def submit(self, x: np.ndarray) -> Future[Explained]:
        done: Future[Explained] = Future()
        self._queue.put((x, done))
        return done

    def close(self) -> None:
        self._queue.put(STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            batch, stop = next_batch(self._queue, self._max_batch)
            if batch:
                self._explain(batch)
            if stop:
                return

    def _explain(self, batch: list[tuple[np.ndarray, Future[Explained]]]) -> None:
        try:
            _, probas, contribs = self._model.explain(np.vstack([x for x, _ in batch]))
        except Exception as exc:  # pragma: no cover - a bug; the requests get a 500
            for _, done in batch:
                done.set_exception(exc)
            return
        self.calls += 1
        self.rows += len(batch)
        for i, (_, done) in enumerate(batch):
            done.set_result((float(probas[i]), contribs[i]))
