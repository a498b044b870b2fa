"""A model version's folder: what is saved at training and how it is loaded to score.

Layout (every file JSON but the model itself)::

    model.json              kind (trained | pilot), algorithm, task, label, inputs
    encoder.json            how each input becomes a float (trained models)
    serving/                the fastest faithful serving form and its report (trained models)
    pilot/<file or folder>  the imported pilot, as given (pilots)
    baseline.json           the baseline (also the service's fallback)
    baseline_encoder.json   how the baseline's one feature is encoded
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from taxiway.errors import ModelError
from taxiway.models.baseline import Baseline
from taxiway.models.encoding import FeatureEncoder

__all__ = ["LoadedModel", "ModelCard", "load_model", "save_card"]

CARD = "model.json"


@dataclass(frozen=True)
class ModelCard:
    """What a model version is, in ``model.json``."""

    kind: str  # "trained" | "pilot"
    algorithm: str
    task: str
    label: str | None
    features: list[str]
    metric: str
    request_fields: list[str] = field(default_factory=list)
    pilot: str | None = None  # file or folder name under pilot/


def save_card(folder: Path, card: ModelCard) -> None:
    """Write ``model.json``."""
    (folder / CARD).write_text(json.dumps(asdict(card), indent=2) + "\n")


class LoadedModel:
    """A model version ready to score rows or single requests, and its baseline."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            self.card = ModelCard(**json.loads((folder / CARD).read_text()))
            self.baseline = Baseline.from_dict(json.loads((folder / "baseline.json").read_text()))
            self.baseline_encoder = FeatureEncoder.from_dict(
                json.loads((folder / "baseline_encoder.json").read_text())
            )
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise ModelError(
                f"the model folder {folder} is incomplete or corrupt: {error}",
                fix="retrain (`taxiway train`) or pick another version",
            ) from None
        self.encoder: FeatureEncoder | None = None
        self._scorer: Any = None
        self._pilot: Any = None
        compiled = (folder / "serving" / "serving.json").exists() and (
            folder / "encoder.json"
        ).exists()
        if self.card.kind == "pilot" and not compiled:  # a pilot no form reproduces
            from taxiway.models.pilot import load_pilot

            assert self.card.pilot is not None  # nosec B101
            self._pilot = load_pilot(folder / "pilot" / self.card.pilot)
        else:
            from taxiway.models.serving_form import load_serving_form

            self.encoder = FeatureEncoder.from_dict(
                json.loads((folder / "encoder.json").read_text())
            )
            self._scorer = load_serving_form(folder / "serving")

    @property
    def features(self) -> list[str]:
        """The inputs the model expects, in order."""
        return list(self.card.features)

    @property
    def serving_kind(self) -> str:
        """The serving form in use (``onnx``, ``lightgbm``, ... or ``pilot``)."""
        return "pilot" if self._pilot is not None else str(self._scorer.kind)

    def predict_table(self, table: pa.Table) -> np.ndarray:
        """Predictions for every row of ``table`` (columns by input name)."""
        if self._pilot is not None:
            return np.asarray(self._pilot.predict_table(table, self.card.task))
        assert self.encoder is not None  # nosec B101
        return np.asarray(self._scorer.predict(self.encoder.encode_table(table)))

    def predict_one(self, values: Mapping[str, Any]) -> float:
        """One prediction from input name → raw value (absent → missing)."""
        if self._pilot is not None:
            return float(self._pilot.predict_one(dict(values), self.card.task))
        assert self.encoder is not None  # nosec B101
        return float(self._scorer.predict_one(self.encoder.encode_one(values)))

    def baseline_one(self, values: Mapping[str, Any]) -> float:
        """The baseline's prediction for one request (the fallback)."""
        if self.baseline.feature is None:
            return self.baseline.prior
        encoded = self.baseline_encoder.encode_one(values)
        return self.baseline.predict_one(float(encoded[0]))

    def baseline_table(self, table: pa.Table) -> np.ndarray:
        """The baseline's predictions for every row of ``table``."""
        if self.baseline.feature is None:
            return np.full(table.num_rows, self.baseline.prior)
        return self.baseline.predict(self.baseline_encoder.encode_table(table)[:, 0])


def load_model(folder: str | Path) -> LoadedModel:
    """Load the model version saved in ``folder``."""
    return LoadedModel(Path(folder))


def copy_pilot(source: Path, folder: Path) -> str:
    """Copy the pilot file or directory into ``folder/pilot``; return its name there."""
    target = folder / "pilot" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)
        sidecar = source.with_name(source.stem + ".features.json")
        if sidecar.exists():
            shutil.copy2(sidecar, target.with_name(sidecar.name))
    return source.name
