"""What every serving form shares: the :class:`Scorer` protocol, the report, the pickle helpers.

A form module (``lightgbm``, ``xgboost``, ``sklearn``, ``forest``, ``linear``, ``onnx``) holds
one scorer plus its builder and loader, and imports only this module; ``build`` puts them
together. ``SERVING_FILE`` names the card a serving folder is read from, and ``TOLERANCE`` is
the largest error a faithful form may show.
"""

from __future__ import annotations

import pickle  # nosec B403
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

SERVING_FILE = "serving.json"
TOLERANCE = 1e-6


class Scorer(Protocol):
    """A loaded serving form: a float64 matrix in, one float per row out."""

    kind: str

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions (float64, one per row) for the float64 matrix ``X`` (NaN = missing)."""
        ...

    def predict_one(self, row: np.ndarray) -> float:
        """The prediction for one float64 row: the hot path, with no validation."""
        ...


@dataclass(frozen=True)
class Candidate:
    """One form that was tried: whether it is faithful, its error and its one-row latency."""

    kind: str
    faithful: bool
    max_abs_error: float | None
    p50_us: float | None
    p99_us: float | None
    error: str | None


@dataclass(frozen=True)
class ServingFormReport:
    """The form chosen and every candidate measured, native first."""

    chosen: str
    candidates: list[Candidate]

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON types."""
        return {"chosen": self.chosen, "candidates": [asdict(c) for c in self.candidates]}


def _family(model: Any) -> str:
    kind = type(model)
    if kind.__name__ == "Booster" and kind.__module__.startswith("lightgbm"):
        return "lightgbm"
    if kind.__name__ == "Booster" and kind.__module__.startswith("xgboost"):
        return "xgboost"
    return "sklearn"


def _build_pickle(model: Any, task: str, folder: Path, n_features: int) -> dict[str, Any]:
    with (folder / "model.pkl").open("wb") as handle:
        pickle.dump(model, handle, protocol=5)
    return {"artifact": "model.pkl"}


def _unpickle(folder: Path, form: dict[str, Any]) -> Any:
    # the folder is written by taxiway itself; a pickle from elsewhere must not be loaded
    with (folder / form["artifact"]).open("rb") as handle:
        return pickle.load(handle)  # nosec B301
