"""Fitting the spec's algorithm on the training rows, with its fastest faithful serving form.

The model's inputs are ``model.features`` (a view name stands for its columns) or every
feature and request field; they are encoded one way for training and serving
(:mod:`taxiway.models.encoding`), and the serving form is measured on the validation rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from taxiway.features.training_set import TrainingSetManifest
from taxiway.models.algorithms import fit
from taxiway.models.encoding import FeatureEncoder
from taxiway.models.outcome import Outcome
from taxiway.models.split import TimeSplit
from taxiway.spec.models import ModelSpec, TaxiwaySpec

__all__ = ["fit_algorithm", "model_inputs"]


def model_inputs(spec: TaxiwaySpec, manifest: TrainingSetManifest) -> list[str]:
    """The trained model's inputs: ``model.features`` (views expanded) or every feature."""
    model = spec.model or ModelSpec()
    available = [*manifest.request_fields, *manifest.features]
    if model.features is None:
        return available
    chosen: list[str] = []
    for name in model.features:
        if name in spec.features:
            chosen.extend(spec.features[name].output_names(name))
        else:
            chosen.append(name)
    return list(dict.fromkeys(chosen))


def fit_algorithm(
    model: ModelSpec,
    spec: TaxiwaySpec,
    manifest: TrainingSetManifest,
    table: pa.Table,
    train_table: pa.Table,
    split: TimeSplit,
    y_train: np.ndarray,
    y_valid: np.ndarray,
    task: str,
    folder: Path,
) -> Outcome:
    from taxiway.models.serving_form import build_serving_form, native_scorer

    features = model_inputs(spec, manifest)
    encoder = FeatureEncoder.fit(train_table, features)
    X = encoder.encode_table(table)
    X_train, X_valid = X[split.train], X[split.valid]
    estimator = fit(
        model.algorithm,
        task,
        X_train,
        y_train,
        categorical=encoder.categorical,
        params=model.params,
        seed=model.seed,
    )
    native = native_scorer(estimator, task)
    p_valid = native.predict(X_valid)
    (folder / "encoder.json").write_text(json.dumps(encoder.as_dict()) + "\n")
    report = build_serving_form(
        estimator,
        X_valid if len(X_valid) else X_train[:100],
        task=task,
        out_dir=folder / "serving",
        categorical=encoder.categorical,
    )
    del y_valid
    return Outcome(
        features=features,
        p_valid=p_valid,
        serving=report.as_dict(),
        profile_encoder=encoder,
        profile_matrix=X_train,
        predict_valid=native.predict,
        valid_inputs=X_valid,
        valid_matrix=X_valid,
    )
