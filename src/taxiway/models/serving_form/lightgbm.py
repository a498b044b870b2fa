"""The ``lightgbm`` form: the Booster, one row through LightGBM's single-row C entry point.

It exists because ``Booster.predict`` spends tens of microseconds per row on argument
handling, while the C API's prepared single-row predictor scores the same trees with the same
double arithmetic in a few; the artifact is the Booster's own text file (``model.lgb.txt``).
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from taxiway.errors import ModelError
from taxiway.models.serving_form.base import Scorer


class _LightGBMScorer:
    """A LightGBM Booster; one row goes through the C API's prepared single-row predictor."""

    kind = "lightgbm"

    def __init__(self, booster: Any) -> None:
        if booster.num_model_per_iteration() != 1:
            raise ModelError(
                "the LightGBM model has several outputs (multiclass?); taxiway scores "
                "binary classification and regression",
                fix="train a binary or regression objective",
            )
        self._booster = booster
        self._row = np.zeros(int(booster.num_feature()), dtype=np.float64)
        self._out = np.zeros(1, dtype=np.float64)
        self._lock = threading.Lock()
        self._length: Any = None
        self._fast = _lightgbm_single_row(self, booster)

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self._booster.predict(X)
        return np.asarray(scores, dtype=np.float64)

    def predict_one(self, row: np.ndarray) -> float:
        if self._fast is None:
            return float(self._booster.predict(row.reshape(1, -1), num_threads=1)[0])
        with self._lock:
            self._row[:] = row
            if self._fast():
                raise ModelError(f"LightGBM could not score the row: {_lightgbm_error()}")
            return float(self._out[0])


def _lightgbm_single_row(owner: _LightGBMScorer, booster: Any) -> Any:
    """A no-argument call scoring ``owner._row`` into ``owner._out``, or None if unavailable.

    ``Booster.predict`` costs ~40 us a row in argument handling; the C API's
    ``...SingleRowFast`` reuses a prepared config and costs a few us (same trees, same
    double arithmetic). The entry points are reached through ``lightgbm.basic._LIB``: if a
    LightGBM release moves them, the scorer falls back to ``Booster.predict``. The prepared
    predictor follows the iteration count of the booster's last prediction, so the booster
    must be one nobody else predicts with: a copy, or one loaded from a file.
    """
    import ctypes

    try:
        from lightgbm import basic

        library: Any = basic.__dict__["_LIB"]
        handle = booster._handle
        config = ctypes.c_void_p()
        status = library.LGBM_BoosterPredictForMatSingleRowFastInit(
            handle,
            ctypes.c_int(0),  # C_API_PREDICT_NORMAL: probabilities / values
            ctypes.c_int(0),  # start iteration
            ctypes.c_int(-1),  # every iteration: the booster is the scorer's own copy
            ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
            ctypes.c_int32(owner._row.shape[0]),
            ctypes.c_char_p(b"num_threads=1"),
            ctypes.byref(config),
        )
        if status != 0 or not config.value:
            return None
        # PYFUNCTYPE keeps the GIL during the call: nothing else can touch the buffers
        prototype = ctypes.PYFUNCTYPE(
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
        )
        predict = prototype(("LGBM_BoosterPredictForMatSingleRowFast", library))
    except (AttributeError, ImportError, KeyError, OSError):
        return None
    length = ctypes.c_int64()
    address = config.value
    row, out, length_at = owner._row.ctypes.data, owner._out.ctypes.data, ctypes.addressof(length)
    weakref.finalize(owner, _free_fast_config, library, address, booster)

    owner._length = length  # the C side writes the output length here

    def fast() -> int:
        return int(predict(address, row, length_at, out))

    return fast


def _private_booster(booster: Any) -> Any:
    """A copy of ``booster`` with the trees its ``predict`` uses (up to the best iteration)."""
    import lightgbm

    return lightgbm.Booster(model_str=booster.model_to_string())


def _free_fast_config(library: Any, address: int, booster: Any) -> None:
    """Free the prepared predictor; ``booster`` is passed only to outlive it."""
    import ctypes

    library.LGBM_FastConfigFree(ctypes.c_void_p(address))


def _lightgbm_error() -> str:
    from lightgbm import basic

    return str(basic.__dict__["_LIB"].LGBM_GetLastError().decode())


def _build_lightgbm(model: Any, task: str, folder: Path, n_features: int) -> dict[str, Any]:
    model.save_model(str(folder / "model.lgb.txt"))
    return {"artifact": "model.lgb.txt"}


def _load_lightgbm(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    import lightgbm

    return _LightGBMScorer(lightgbm.Booster(model_file=str(folder / form["artifact"])))
