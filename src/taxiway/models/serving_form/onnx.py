"""The ``onnx`` form: the model converted to ONNX and scored by ONNX Runtime in float32.

It exists for models whose own library has no fast one-row path (an XGBoost Booster spends
hundreds of microseconds a row; ONNX Runtime, tens). Boosters are converted with onnxmltools,
scikit-learn models with skl2onnx. Float32 can move a split, so the form is kept only when it
passes the faithfulness check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from taxiway.models.serving_form.base import Scorer, _family

ONNXMLTOOLS_OPSET = 15  # a dict opset fails in onnxmltools; 15 covers TreeEnsemble v3
SKL2ONNX_OPSET = 17


class _OnnxScorer:
    """An ONNX model in ONNX Runtime (one thread, float32 input, one output requested)."""

    kind = "onnx"

    def __init__(self, path: Path, form: dict[str, Any]) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # otherwise it prints shape warnings to stderr
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self._run = session.run
        self._input = str(form["input"])
        self._outputs = [str(form["output"])]
        self._index = int(form["index"])

    def predict(self, X: np.ndarray) -> np.ndarray:
        (out,) = self._run(self._outputs, {self._input: X.astype(np.float32)})
        scores = out[:, self._index] if out.ndim == 2 else out
        return np.asarray(scores, dtype=np.float64)

    def predict_one(self, row: np.ndarray) -> float:
        (out,) = self._run(self._outputs, {self._input: row.astype(np.float32).reshape(1, -1)})
        return float(out.item(self._index))


def _build_onnx(model: Any, task: str, folder: Path, n_features: int) -> dict[str, Any]:
    family = _family(model)
    if family == "lightgbm":
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        onnx_model = convert_lightgbm(
            model,
            initial_types=[("input", FloatTensorType([None, n_features]))],
            target_opset=ONNXMLTOOLS_OPSET,
            zipmap=False,
        )
    elif family == "xgboost":
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        onnx_model = convert_xgboost(
            model,
            initial_types=[("input", FloatTensorType([None, n_features]))],
            target_opset=ONNXMLTOOLS_OPSET,
        )
    else:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType as SkFloatTensorType

        final = model.steps[-1][1] if hasattr(model, "steps") else model
        options = {id(final): {"zipmap": False}} if task == "classification" else None
        onnx_model = convert_sklearn(
            model,
            initial_types=[("input", SkFloatTensorType([None, n_features]))],
            target_opset=SKL2ONNX_OPSET,
            options=options,
        )
    outputs = [output.name for output in onnx_model.graph.output]
    if task == "classification":
        output = "probabilities" if "probabilities" in outputs else outputs[-1]
        index = 1
    else:
        output, index = outputs[0], 0
    (folder / "model.onnx").write_bytes(onnx_model.SerializeToString())
    return {"artifact": "model.onnx", "input": "input", "output": output, "index": index}


def _load_onnx(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    return _OnnxScorer(folder / form["artifact"], form)
