"""The fastest faithful form of a trained model for one-row scoring, chosen by measuring.

Every trained model is turned into each form that can be built for it, and each form is
saved and loaded back the way serving will load it. A form stays a candidate only if its
predictions equal the model's own (``native``) within ``1e-6`` on every validation row. The
fastest remaining form by one-row p50 is written to a folder with ``serving.json``. Forms:

==================  =====================================================================
``lightgbm``        the Booster; one row through LightGBM's single-row C entry point
``xgboost``         the Booster; ``inplace_predict``
``sklearn``         the estimator's own ``predict_proba`` / ``predict`` (pickled)
``sklearn-forest``  a random forest's trees called directly (no joblib pool per call)
``linear``          imputer / scaler / one-hot / linear model folded into numpy weights
``onnx``            ONNX Runtime, float32 (onnxmltools for boosters, skl2onnx for sklearn)
==================  =====================================================================

Predictions are P(class 1) for binary classification and the value for regression. Float32
ONNX can move a split: when its error passes the tolerance it is rejected, and the report says
by how much. A form that cannot be built is listed with the reason; it never raises.

Every scorer is safe to share between threads.

>>> import tempfile
>>> from pathlib import Path
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
>>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
>>> with tempfile.TemporaryDirectory() as folder:
...     report = build_serving_form(model, X, task="classification", out_dir=Path(folder))
...     scorer = load_serving_form(Path(folder))
>>> [(c.kind, c.faithful) for c in report.candidates]
[('sklearn', True), ('linear', True), ('onnx', True)]
>>> scorer.kind == report.chosen, round(scorer.predict_one(np.array([3.0])), 3)
(True, 0.808)
"""

from __future__ import annotations

from taxiway.models.serving_form.base import (
    SERVING_FILE,
    TOLERANCE,
    Candidate,
    Scorer,
    ServingFormReport,
)
from taxiway.models.serving_form.build import (
    build_serving_form,
    load_serving_form,
    native_scorer,
)

__all__ = [
    "SERVING_FILE",
    "TOLERANCE",
    "Candidate",
    "Scorer",
    "ServingFormReport",
    "build_serving_form",
    "load_serving_form",
    "native_scorer",
]
