"""Dynamic batching of model calls: the payments scored at the same moment share one call.

Each XGBoost call has a fixed cost (its C API parses the request and builds an input
matrix: about 0.1 ms here even called directly, see
:class:`~vigil.models._xgb_direct.DirectBooster`) besides the trees. Under load, requests
that arrive while a call is running are explained together in the next one; alone, a
request waits for nothing. The calls run on a thread of their own, so the event loop goes on
reading requests meanwhile.
"""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np

from vigil.models import RiskModel
from vigil.serving._batches import BatchWorker

Explained = tuple[float, np.ndarray]  # probability, SHAP contributions (bias last)


class ModelBatcher(BatchWorker):
    """Explains rows of model input, several at a time when several are waiting."""

    def __init__(self, model: RiskModel, *, max_batch: int = 64) -> None:
        self._model = model
        self.calls = 0
        self.rows = 0
        super().__init__(max_batch=max_batch, name="vigil-model")

    def submit(self, x: np.ndarray) -> Future[Explained]:
        done: Future[Explained] = Future()
        self._put((x, done))
        return done

    def _handle(self, batch: list[tuple[np.ndarray, Future[Explained]]]) -> None:
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
