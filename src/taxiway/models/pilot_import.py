"""The imported pilot as `taxiway train` registers it: scored, and compiled when it can be.

The pilot (:mod:`taxiway.models.pilot`) is scored on the validation rows as it was built, on a
pandas frame. Its estimator is then served through a compiled serving form when the taxiway
encoding of those rows, scored by the estimator's own library, reproduces its predictions;
otherwise the pilot itself is served, and the reason is kept.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from taxiway.errors import ModelError
from taxiway.models.artifact import copy_pilot
from taxiway.models.encoding import FeatureEncoder
from taxiway.models.outcome import Outcome
from taxiway.models.pilot import Pilot, load_pilot

__all__ = ["compile_pilot", "import_pilot"]


def import_pilot(
    path: Path,
    table: pa.Table,
    valid_table: pa.Table,
    y_valid: np.ndarray,
    task: str,
    folder: Path,
) -> Outcome:
    pilot: Pilot = load_pilot(path)
    name = copy_pilot(path, folder)
    present = [f for f in pilot.features if f in table.column_names]
    missing = [f for f in pilot.features if f not in table.column_names]
    encoder = FeatureEncoder.fit(table, present)
    p_valid = None
    frame = None
    note = None
    if missing:
        note = (
            f"the pilot expects {', '.join(missing)}, which the training set does not have: "
            "it cannot be scored on production's data"
        )
    else:
        frame = valid_table.select(pilot.features).to_pandas()
        try:
            p_valid = pilot.predict_frame(frame, task)
        except Exception as error:  # the pilot's own code: any failure is reported, not raised
            note = f"the pilot failed to score the validation rows: {type(error).__name__}: {error}"
            frame = None
    del y_valid
    serving: dict[str, Any] = {"chosen": "pilot", "flavour": pilot.flavour, "candidates": []}
    if p_valid is not None and len(p_valid):
        compiled, why_not = compile_pilot(pilot, table, valid_table, p_valid, task, folder)
        serving = compiled if compiled is not None else {**serving, "not_compiled": why_not}

    def predict(inputs: Any) -> np.ndarray:
        return pilot.predict_frame(inputs, task)

    return Outcome(
        features=pilot.features,
        p_valid=p_valid,
        serving=serving,
        profile_encoder=encoder,
        profile_matrix=encoder.encode_table(table),
        predict_valid=predict if frame is not None else None,
        valid_inputs=frame,
        valid_matrix=encoder.encode_table(valid_table) if valid_table.num_rows else None,
        pilot_name=name,
        not_evaluated=note,
    )


def compile_pilot(
    pilot: Pilot,
    table: pa.Table,
    valid_table: pa.Table,
    p_valid: np.ndarray,
    task: str,
    folder: Path,
) -> tuple[dict[str, Any] | None, str | None]:
    """The pilot's estimator in a compiled serving form, when one reproduces it exactly.

    A pickled LightGBM, XGBoost, forest or linear model need not be served through pandas
    and its own Python code: when the taxiway encoding of the validation rows, scored by
    the estimator's library, gives the pilot's own predictions (within the serving
    tolerance), the serving forms are built from it as for a trained model, minus the
    pickle itself. Otherwise the pilot is served as it is; the reason is kept.
    """
    from taxiway.models.serving_form import TOLERANCE, build_serving_form, native_scorer

    if pilot.flavour == "mlflow-pyfunc":
        return None, "an MLflow pyfunc model is scored through MLflow"
    encoder = FeatureEncoder.fit(table, pilot.features)
    X_valid = encoder.encode_table(valid_table)
    with warnings.catch_warnings():
        # fitted on a frame, scored on its encoded matrix: the same columns, in order
        warnings.filterwarnings("ignore", message=".*valid feature names", category=UserWarning)
        try:
            native = native_scorer(pilot.estimator, task).predict(X_valid)
        except Exception as error:  # the pilot's own code: any failure means "not compiled"
            return None, f"its library cannot score the encoded rows: {type(error).__name__}"
        worst = float(np.max(np.abs(np.asarray(native, dtype=np.float64) - p_valid)))
        if not worst <= TOLERANCE:
            return None, f"the encoded rows score {worst:.3g} away from the pilot's own"
        try:
            report = build_serving_form(
                pilot.estimator,
                X_valid,
                task=task,
                out_dir=folder / "serving",
                categorical=encoder.categorical,
                exclude=("sklearn",),
            )
        except ModelError as error:
            shutil.rmtree(folder / "serving", ignore_errors=True)
            return None, error.message
    (folder / "encoder.json").write_text(json.dumps(encoder.as_dict()) + "\n")
    return {**report.as_dict(), "from_pilot": pilot.flavour}, None
