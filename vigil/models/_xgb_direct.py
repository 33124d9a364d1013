"""A few rows through XGBoost's C API, without the Python wrapper's work on every call.

``Booster.inplace_predict`` and ``Booster.predict`` are built for tables: on each call they
sniff the input's type among a dozen data frame kinds, validate it, build the request as
JSON, and (for SHAP contributions) wrap the rows in a ``DMatrix`` whose constructor does the
same again. For one payment that bookkeeping costs far more than walking the trees. This
module calls the same C functions the wrapper ends in (``XGBoosterPredictFromDense``,
``XGDMatrixCreateFromDense``, ``XGBoosterPredictFromDMatrix``) with their JSON arguments
made once, so a call costs the trees, the C API's own parsing and a few microseconds of
ctypes. The numbers are the wrapper's, bit for bit (a test holds them side by side).

The rows must be float32 in the model's column order (the caller's job: the bundle's order
by construction); NaN is missing, as in training. Safe to call from several threads: nothing
is shared between calls but the booster, which XGBoost lets predict concurrently.
"""

from __future__ import annotations

import ctypes
import json

import numpy as np
import xgboost as xgb
from xgboost.core import _LIB, _check_call, c_bst_ulong

# XGBoost's prediction types (the wrapper's numbering): margin, and exact SHAP contributions
_MARGIN, _CONTRIBS = 1, 2


def _args(**kwargs: object) -> bytes:
    return json.dumps(kwargs).encode()


def _interface(rows: np.ndarray) -> bytes:
    """The array interface of C-contiguous float32 ``rows`` (2-D), as XGBoost reads it."""
    n, k = rows.shape
    return (b'{"data": [%d, true], "shape": [%d, %d], "typestr": "<f4", "version": 3}'
            % (rows.ctypes.data, n, k))


class DirectBooster:
    """Margins and SHAP contributions of a few rows of a fitted ``xgboost.Booster``."""

    def __init__(self, booster: xgb.Booster) -> None:
        self.booster = booster  # holds the handle alive
        self.n_features = booster.num_features()
        self._handle = booster.handle
        self._margin_args = _args(type=_MARGIN, training=False, iteration_begin=0,
                                  iteration_end=0, missing=float("nan"), strict_shape=False,
                                  cache_id=0)
        self._matrix_args = _args(missing=float("nan"), nthread=1, data_split_mode=0)
        self._contribs_args = _args(type=_CONTRIBS, training=False, iteration_begin=0,
                                    iteration_end=0, strict_shape=False)

    def _rows(self, x: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(x, dtype=np.float32)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape "
                             f"{np.shape(x)}")
        return rows

    @staticmethod
    def _output(shape: ctypes._Pointer, dims: c_bst_ulong, preds: ctypes._Pointer,
                rows: int) -> np.ndarray:
        size = 1
        for i in range(dims.value):
            size *= int(shape[i])
        out = np.ctypeslib.as_array(preds, shape=(size,)).copy()
        return out.reshape(rows, -1)

    def margins(self, x: np.ndarray) -> np.ndarray:
        """The raw margins (log-odds) of ``x`` (one row or several), as float64."""
        rows = self._rows(x)
        shape, dims, preds = ctypes.POINTER(c_bst_ulong)(), c_bst_ulong(), \
            ctypes.POINTER(ctypes.c_float)()
        _check_call(_LIB.XGBoosterPredictFromDense(
            self._handle, _interface(rows), self._margin_args, None, ctypes.byref(shape),
            ctypes.byref(dims), ctypes.byref(preds)))
        return self._output(shape, dims, preds, len(rows))[:, 0].astype(np.float64)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Exact SHAP contributions of ``x`` (rows × features + 1, the bias last), as float64:
        each row adds up to its margin."""
        rows = self._rows(x)
        matrix = ctypes.c_void_p()
        _check_call(_LIB.XGDMatrixCreateFromDense(_interface(rows), self._matrix_args,
                                                  ctypes.byref(matrix)))
        try:
            shape, dims, preds = ctypes.POINTER(c_bst_ulong)(), c_bst_ulong(), \
                ctypes.POINTER(ctypes.c_float)()
            _check_call(_LIB.XGBoosterPredictFromDMatrix(
                self._handle, matrix, self._contribs_args, ctypes.byref(shape),
                ctypes.byref(dims), ctypes.byref(preds)))
            return self._output(shape, dims, preds, len(rows)).astype(np.float64)
        finally:
            _check_call(_LIB.XGDMatrixFree(matrix))
