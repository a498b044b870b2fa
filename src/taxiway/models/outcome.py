"""What fitting a model, or importing the pilot, hands to the rest of `taxiway train`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from taxiway.models.encoding import FeatureEncoder

__all__ = ["Outcome"]


@dataclass
class Outcome:
    """A model ready to evaluate and register: its inputs, its validation predictions (None
    when it could not be scored, ``not_evaluated`` says why), its serving form's report, the
    matrix its reference profile is built from, and how to score validation inputs again
    (for permutation importance)."""

    features: list[str]
    p_valid: np.ndarray | None
    serving: dict[str, Any]
    profile_encoder: FeatureEncoder
    profile_matrix: np.ndarray
    predict_valid: Callable[[Any], np.ndarray] | None
    valid_inputs: Any
    pilot_name: str | None = None
    not_evaluated: str | None = None
    valid_matrix: np.ndarray | None = None
    """The validation rows encoded as ``profile_matrix`` is: the monitor's input reference."""
