"""bench/monitor.py, part one: NannyML's CBPE against taxiway's estimate, on the same model and
chunks.

The data (made with a seed): ``FEATURES`` standard normal inputs and a label drawn from a fixed
non-linear law of them (so ``P(label | inputs)`` never changes: CBPE's premise). A LightGBM
classifier is trained on ``--train`` rows; its scores on ``--reference`` fresh rows with their
labels are the reference both tools fit on (taxiway: ``quality_reference``, stored at
training; NannyML: ``CBPE.fit``). Then ``--chunks`` chunks of ``--chunk-rows`` rows: the first
half from the training law, the second half under a covariate shift that grows chunk by chunk
(the first input's mean moves up to ``SHIFT_SD`` sd, the two most telling inputs narrow to half
their spread), which lowers the model's realised ROC AUC. Both tools see only each chunk's scores; the realised ROC
AUC comes from its labels. Scores and labels go to ``bench/.data/monitor/estimate-*.npz`` so
NannyML, in its own venv, reads exactly what taxiway reads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from toolkit import rss

FEATURES = 8
SHIFT_SD = 2.0


def _law(x: Any) -> Any:
    """The probability of the positive label given the inputs (fixed)."""
    import numpy as np

    z = 1.1 * x[:, 0] - 0.8 * x[:, 1] + 0.7 * x[:, 2] * x[:, 3] + 0.6 * np.sin(2 * x[:, 4]) - 0.4
    return 1.0 / (1.0 + np.exp(-z))


def _inputs(rng: Any, rows: int, shift: float = 0.0) -> Any:
    """Inputs; ``shift`` (0 to 1) moves the first one's mean up by up to SHIFT_SD sd and
    narrows the two most telling ones (to half their spread): the model's ROC AUC falls."""
    x = rng.normal(size=(rows, FEATURES))
    x[:, 0] = x[:, 0] * (1.0 - 0.5 * shift) + shift * SHIFT_SD
    x[:, 1] *= 1.0 - 0.5 * shift
    return x


def make(path: Path, train: int, reference: int, chunks: int, chunk_rows: int, seed: int) -> Path:
    """Train the model and write the reference and chunk scores and labels to ``path``."""
    import lightgbm as lgb
    import numpy as np

    if path.exists():
        return path
    rng = np.random.default_rng(seed)

    def labelled(x: Any) -> Any:
        return (rng.random(len(x)) < _law(x)).astype(np.int8)

    x = _inputs(rng, train)
    model = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=31, verbose=-1)
    model.fit(x, labelled(x))
    xr = _inputs(rng, reference)
    shifts = [max(0.0, (i - chunks // 2 + 1) / (chunks - chunks // 2)) for i in range(chunks)]
    xs = [_inputs(rng, chunk_rows, s) for s in shifts]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        reference_scores=model.predict_proba(xr)[:, 1],
        reference_labels=labelled(xr),
        chunk_scores=np.stack([model.predict_proba(c)[:, 1] for c in xs]),
        chunk_labels=np.stack([labelled(c) for c in xs]),
        shifts=np.array(shifts),
    )
    return path


def realised(path: Path) -> list[float]:
    """Each chunk's ROC AUC from its labels (taxiway's roc_auc, tested against sklearn's)."""
    import numpy as np

    from taxiway.monitoring.quality_metrics import roc_auc

    data = np.load(path)
    out = []
    for scores, labels in zip(data["chunk_scores"], data["chunk_labels"], strict=True):
        value = roc_auc(scores, labels)
        out.append(float("nan") if value is None else value)
    return out


def taxiway(path: Path) -> dict[str, Any]:
    """Fit (training's job) and estimate each chunk, timed apart."""
    import numpy as np

    from taxiway.monitoring.quality import estimated, quality_reference

    data = np.load(path)
    scores, labels = data["reference_scores"], data["reference_labels"]
    chunks = list(data["chunk_scores"])
    loaded = rss()
    began = time.perf_counter()
    reference = quality_reference(scores, labels, "classification")
    fit = time.perf_counter() - began
    began = time.perf_counter()
    estimates = [estimated(chunk, reference) for chunk in chunks]
    seconds = time.perf_counter() - began
    return {
        "fit_s": fit,
        "seconds": seconds,
        "loaded_rss": loaded,
        "estimates": [e.roc_auc for e in estimates],
        "trusted": reference["trusted"],
        "why": reference["why"],
    }


def nannyml(path: Path) -> dict[str, Any]:
    """NannyML's CBPE: ``fit`` on the reference, ``estimate`` on the chunks, timed apart."""
    import logging

    import nannyml as nml
    import numpy as np
    import pandas as pd

    logging.disable(logging.WARNING)
    data = np.load(path)
    chunk_scores = data["chunk_scores"]
    rows = chunk_scores.shape[1]
    reference = pd.DataFrame(
        {
            "proba": data["reference_scores"],
            "pred": (data["reference_scores"] > 0.5).astype(int),
            "label": data["reference_labels"].astype(int),
        }
    )
    flat = chunk_scores.ravel()
    analysis = pd.DataFrame({"proba": flat, "pred": (flat > 0.5).astype(int)})
    loaded = rss()
    began = time.perf_counter()
    estimator = nml.CBPE(
        metrics=["roc_auc"],
        y_pred_proba="proba",
        y_pred="pred",
        y_true="label",
        problem_type="classification_binary",
        chunk_size=rows,
    )
    estimator.fit(reference)
    fit = time.perf_counter() - began
    began = time.perf_counter()
    result = estimator.estimate(analysis)
    frame = result.filter(period="analysis").to_df()
    seconds = time.perf_counter() - began
    values = [float(v) for v in frame[("roc_auc", "value")]]
    return {
        "fit_s": fit,
        "seconds": seconds,
        "loaded_rss": loaded,
        "estimates": values,
        "version": nml.__version__,
    }
