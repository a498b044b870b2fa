"""Import the pilot: a pickled scikit-learn model or an MLflow model directory.

A pilot is scored as it was built: on a pandas frame of raw values with the column names it
was fitted on (its expected feature names). Those names are what the handoff audit checks
against what production can give it at prediction time.

Supported: ``.pkl``/``.pickle``/``.joblib`` files of a scikit-learn estimator or pipeline (or
anything with ``predict_proba``/``predict`` and recorded feature names); an MLflow model
directory (a folder with an ``MLmodel`` file) of the ``sklearn`` flavour, read without
MLflow; other ``python_function`` models through ``mlflow.pyfunc`` when MLflow is installed.
Unpickling runs code from the file: import only pilots you trust.
"""

from __future__ import annotations

import json
import pickle  # nosec B403
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from taxiway.errors import ModelError

__all__ = ["Pilot", "load_pilot"]

_PICKLES = (".pkl", ".pickle", ".joblib")


@dataclass
class Pilot:
    """A loaded pilot with the feature names it expects, in order."""

    estimator: Any
    features: list[str]
    flavour: str  # "sklearn" | "mlflow-sklearn" | "mlflow-pyfunc"
    path: str

    def predict_table(self, table: pa.Table, task: str) -> np.ndarray:
        """Predictions (P(class 1) or values) for every row of ``table``."""
        return self.predict_frame(table.select(self.features).to_pandas(), task)

    def predict_frame(self, frame: Any, task: str) -> np.ndarray:
        """Predictions for a pandas frame with the expected columns."""
        frame = frame[self.features]
        if self.flavour == "mlflow-pyfunc":
            out = np.asarray(self.estimator.predict(frame), dtype=np.float64)
            return out[:, -1] if out.ndim == 2 else out
        if task == "classification" and hasattr(self.estimator, "predict_proba"):
            return np.asarray(self.estimator.predict_proba(frame)[:, 1], dtype=np.float64)
        return np.asarray(self.estimator.predict(frame), dtype=np.float64)

    def predict_one(self, values: dict[str, Any], task: str) -> float:
        """One prediction from a mapping of feature name to raw value."""
        import pandas as pd

        frame = pd.DataFrame([{name: values.get(name) for name in self.features}])
        return float(self.predict_frame(frame, task)[0])


def load_pilot(path: str | Path) -> Pilot:
    """Load the pilot at ``path`` (a pickle file or an MLflow model directory)."""
    where = Path(path)
    if where.is_dir():
        return _mlflow(where)
    if where.suffix.lower() not in _PICKLES:
        raise ModelError(
            f"cannot import the pilot {where}: expected a .pkl, .pickle or .joblib file or an "
            "MLflow model directory",
            fix="save the model with pickle/joblib, or mlflow.sklearn.save_model(model, DIR)",
        )
    estimator = _unpickle(where)
    return Pilot(estimator, _feature_names(estimator, where), "sklearn", str(where))


def _unpickle(path: Path) -> Any:
    try:
        if path.suffix.lower() == ".joblib":
            import joblib

            return joblib.load(path)
        with path.open("rb") as handle:
            return pickle.load(handle)  # the user's own model file, named in their spec  # nosec B301
    except FileNotFoundError:
        raise ModelError(f"the pilot {path} does not exist", fix="fix model.pilot") from None
    except ModuleNotFoundError as error:
        raise ModelError(
            f"the pilot {path} needs the Python package `{error.name}` to load",
            fix=f"pip install {error.name} (the library the pilot was built with)",
        ) from None
    except Exception as error:
        raise ModelError(
            f"the pilot {path} cannot be unpickled: {type(error).__name__}: {error}",
            fix="save it again with the same library versions taxiway runs with",
        ) from None


def _feature_names(estimator: Any, path: Path, declared: list[str] | None = None) -> list[str]:
    names = declared
    if names is None and hasattr(estimator, "feature_names_in_"):
        names = [str(n) for n in estimator.feature_names_in_]
    if names is None and hasattr(estimator, "feature_name_"):  # LightGBM's sklearn wrapper
        names = [str(n) for n in estimator.feature_name_]
    sidecar = path.with_name(path.stem + ".features.json") if path.is_file() else None
    if names is None and sidecar is not None and sidecar.exists():
        names = [str(n) for n in json.loads(sidecar.read_text())]
    if not names:
        raise ModelError(
            f"the pilot {path} does not record the feature names it expects",
            fix="fit it on a pandas DataFrame (scikit-learn records feature_names_in_), or "
            f"list the names in {path.stem}.features.json next to it",
        )
    if not (hasattr(estimator, "predict_proba") or hasattr(estimator, "predict")):
        raise ModelError(
            f"the pilot {path} ({type(estimator).__name__}) has no predict or predict_proba",
            fix="import a fitted scikit-learn estimator or pipeline",
        )
    return names


def _mlflow(folder: Path) -> Pilot:
    from ruamel.yaml import YAML

    meta_path = folder / "MLmodel"
    if not meta_path.exists():
        raise ModelError(
            f"the pilot folder {folder} has no MLmodel file, so it is not an MLflow model",
            fix="point model.pilot at the folder mlflow.*.save_model wrote, or at a .pkl file",
        )
    meta = YAML(typ="safe").load(meta_path.read_text()) or {}
    flavors = meta.get("flavors") or {}
    declared = _signature_names(meta)
    sklearn = flavors.get("sklearn")
    if isinstance(sklearn, dict) and sklearn.get("pickled_model"):
        model_file = folder / str(sklearn["pickled_model"])
        if sklearn.get("serialization_format") == "skops":
            estimator = _skops(model_file)
        else:
            estimator = _unpickle_any(model_file)
        names = _feature_names(estimator, folder, declared)
        return Pilot(estimator, names, "mlflow-sklearn", str(folder))
    if "python_function" not in flavors:
        raise ModelError(
            f"the MLflow model {folder} has neither an sklearn nor a python_function flavour "
            f"(it has: {', '.join(flavors) or 'none'})",
            fix="save the pilot with mlflow.sklearn.save_model or mlflow.pyfunc.save_model",
        )
    try:
        import mlflow.pyfunc
    except ImportError:
        raise ModelError(
            f"the MLflow model {folder} is a python_function model, which only MLflow can load",
            fix="pip install mlflow-skinny (or save the pilot with mlflow.sklearn)",
        ) from None
    model = mlflow.pyfunc.load_model(str(folder))
    if not declared:
        raise ModelError(
            f"the MLflow model {folder} has no input signature, so its feature names are unknown",
            fix="save it with a signature (mlflow.models.infer_signature)",
        )
    return Pilot(model, declared, "mlflow-pyfunc", str(folder))


def _skops(path: Path) -> Any:
    """MLflow 3's default sklearn format; every type in the file is trusted, as for a pickle."""
    try:
        import skops.io
    except ImportError:
        raise ModelError(
            f"the MLflow model {path.parent} is saved in the skops format",
            fix="pip install 'taxiway[mlflow]' (it brings skops)",
        ) from None
    try:
        return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    except Exception as error:
        raise ModelError(
            f"the pilot {path} cannot be loaded with skops: {type(error).__name__}: {error}",
            fix="save it again with the same library versions taxiway runs with",
        ) from None


def _unpickle_any(path: Path) -> Any:
    try:
        import cloudpickle
    except ImportError:
        return _unpickle(path)
    try:
        with path.open("rb") as handle:
            return cloudpickle.load(handle)  # the user's own model file, named in their spec
    except Exception:
        return _unpickle(path)


def _signature_names(meta: dict[str, Any]) -> list[str] | None:
    signature = meta.get("signature") or {}
    inputs = signature.get("inputs")
    if not inputs:
        return None
    try:
        columns = json.loads(inputs) if isinstance(inputs, str) else inputs
        names = [str(c["name"]) for c in columns if isinstance(c, dict) and "name" in c]
    except (ValueError, TypeError, KeyError):
        return None
    return names or None
