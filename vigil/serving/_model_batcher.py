"""Dynamic batching of model calls: the payments scored at the same moment share one call.

Each XGBoost call has a fixed cost (its C API parses the request and builds an input
matrix: about 0.1 ms here even called directly, see
:class:`~vigil.models._xgb_direct.DirectBooster`) besides the trees. Under load, requests
that arrive while a call is running are explained together in the next one; alone, a
request waits for nothing. The calls run on a thread of their own, so the event loop goes on
reading requests meanwhile; what follows the model for a payment (its reasons, rules and
decision) can run there too (:meth:`ModelBatcher.explain_then`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from vigil.models import RiskModel
from vigil.serving._batches import BatchWorker, Failed

Explained = tuple[float, np.ndarray]  # probability, SHAP contributions (bias last)
Then = Callable[[float, np.ndarray], Any]


class _Continued(NamedTuple):
    x: np.ndarray
    then: Then


class ModelBatcher(BatchWorker):
    """Explains rows of model input, several at a time when several are waiting."""

    def __init__(self, model: RiskModel, *, max_batch: int = 64) -> None:
        self._model = model
        self.calls = 0
        self.rows = 0
        super().__init__(max_batch=max_batch, name="vigil-model")

    async def explain_then(self, x: np.ndarray, then: Then) -> Any:
        """From the event loop: explain ``x``, then call ``then(probability, contributions)``
        on the model's thread; its return is the outcome awaited (a value, or a
        :class:`~vigil.serving._batches.Forward` to go on in another worker)."""
        return await self._run_async(_Continued(x, then))

    def _handle(self, items: list[np.ndarray | _Continued]) -> list[Any]:
        rows = [item.x if isinstance(item, _Continued) else item for item in items]
        _, probas, contribs = self._model.explain(np.vstack(rows))
        self.calls += 1
        self.rows += len(rows)
        outcomes: list[Any] = []
        for i, item in enumerate(items):
            explained = (float(probas[i]), contribs[i])
            if not isinstance(item, _Continued):
                outcomes.append(explained)
                continue
            try:
                outcomes.append(item.then(*explained))
            except Exception as exc:  # pragma: no cover - a bug; that request gets a 500
                outcomes.append(Failed(exc))
        return outcomes
