"""A small world for the monitor's tests: a reference built as training builds it, and a
prediction log written by the service's own writer, window by window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from taxiway.monitoring.monitor import MonitorInputs
from taxiway.monitoring.quality import quality_reference
from taxiway.monitoring.reference import build_reference
from taxiway.serving.log import PredictionLog
from taxiway.spec.models import Monitoring

START = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
VERSION = 3
FEATURES = ("age", "spend", "plan")
PLANS = np.array(["basic", "plus", "pro"])


def draw(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` rows of the stationary world: two numbers and a category."""
    return {
        "age": rng.normal(40.0, 10.0, n),
        "spend": rng.gamma(2.0, 30.0, n),
        "plan": PLANS[rng.choice(3, size=n, p=[0.5, 0.3, 0.2])],
    }


def score(columns: dict[str, np.ndarray]) -> np.ndarray:
    """The model: a logistic score of age and spend."""
    # a missing (or unreadable) spend scores as the median
    spend = np.nan_to_num(_floats(columns["spend"]), nan=60.0)
    z = 0.08 * (columns["age"] - 40.0) - 0.02 * (spend - 60.0)
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def labels(rng: np.random.Generator, scores: np.ndarray) -> np.ndarray:
    """Labels drawn from the scores: the model is calibrated."""
    return (rng.random(len(scores)) < scores).astype(np.int64)


def reference(seed: int = 0, rows: int = 4_000) -> dict[str, Any]:
    """The stored monitor reference of a version trained on ``rows`` of the world, with its
    quality reference (the validation half's scores and labels)."""
    rng = np.random.default_rng(seed)
    train = draw(rng, rows)
    valid = draw(rng, rows)
    valid_scores = score(valid)
    built = build_reference(
        {"age": train["age"], "spend": train["spend"], "plan": train["plan"].astype(object)},
        {"age": "numeric", "spend": "numeric", "plan": "categorical"},
        valid_scores,
        statistic="psi",
    )
    built["quality"] = quality_reference(valid_scores, labels(rng, valid_scores), "classification")
    return built


Shift = Callable[[dict[str, np.ndarray], np.random.Generator], None]


@dataclass
class World:
    """A folder with a prediction log, an outcomes log and a monitor state."""

    root: Path
    stored: dict[str, Any]
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(1))
    ids: int = 0

    @property
    def log(self) -> Path:
        return self.root / "predictions"

    @property
    def outcomes(self) -> Path:
        return self.root / "outcomes"

    def write_window(
        self,
        hour: int,
        rows: int = 600,
        *,
        shift: Shift | None = None,
        latency_ms: float = 2.0,
        version: int = VERSION,
        outcomes: bool = False,
        flip: float = 0.0,
    ) -> None:
        """``rows`` answers in the ``hour``-th window after :data:`START`, logged by the real
        writer; ``shift`` changes the inputs first; with ``outcomes``, each answer's label
        (flipped with probability ``flip``) is posted to the outcomes log."""
        columns = draw(self.rng, rows)
        scores = score(columns)  # the model scored the inputs as they were...
        if shift is not None:
            shift(columns, self.rng)  # ...unless they drifted before reaching it
            scores = score(columns)
        truth = labels(self.rng, scores)
        if flip:
            truth = np.where(self.rng.random(rows) < flip, 1 - truth, truth)
        at = START + timedelta(hours=hour)
        step = timedelta(hours=1) / rows
        with PredictionLog(self.log, worker=f"w{hour}-{self.ids}") as log:
            for i in range(rows):
                self.ids += 1
                features = {name: _plain(columns[name][i]) for name in FEATURES}
                log.append_sync(
                    {
                        "ts": (at + i * step).isoformat(),
                        "request_id": f"r{self.ids}",
                        "model": "churn",
                        "model_version": version,
                        "arm": "production",
                        "unit": f"u{self.ids}",
                        "path": "model",
                        "degraded": False,
                        "reason": None,
                        "prediction": float(scores[i]),
                        "latency_ms": float(self.rng.gamma(4.0, latency_ms / 4.0)),
                        "lookup_ms": 0.1,
                        "entities": {"customer": str(self.ids)},
                        "request": {},
                        "features": features,
                        "out_of_range": [],
                    }
                )
        if outcomes:
            with PredictionLog(self.outcomes, worker=f"o{hour}-{self.ids}") as log:
                first = self.ids - rows + 1
                for i in range(rows):
                    log.append_sync(
                        {
                            "received_at": (at + timedelta(hours=1)).isoformat(),
                            "request_id": f"r{first + i}",
                            "unit": None,
                            "name": "churned",
                            "value": bool(truth[i]),
                            "timestamp": (at + timedelta(hours=1)).isoformat(),
                        }
                    )

    def inputs(self, **changes: Any) -> MonitorInputs:
        """The monitor's inputs over this world (``changes`` override fields)."""
        base: dict[str, Any] = {
            "name": "churn",
            "model": "churn",
            "version": VERSION,
            "reference": self.stored,
            "log_folder": self.log,
            "outcomes_folder": self.outcomes,
            "state_folder": self.root / "state",
            "window": timedelta(hours=1),
            "since": None,
            "budget_ms": 50.0,
            "monitoring": Monitoring(),
            "task": "classification",
            "contracts": None,
            "sources": {"age": "view customers, source crm", "spend": "view orders, source shop"},
            "outcome_name": "churned",
        }
        return MonitorInputs(**{**base, **changes})


def _floats(values: np.ndarray) -> np.ndarray:
    """Numbers as floats; anything else (a string a source sent instead) as NaN."""
    if values.dtype.kind == "f":
        return values
    return np.array([v if isinstance(v, float) else np.nan for v in values], dtype=np.float64)


def _plain(value: Any) -> Any:
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.str_):
        return str(value)
    return value


def shift_spend(columns: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """The spend arrives in cents: a vendor's format change."""
    columns["spend"] = columns["spend"] * 3.0


def spend_missing(columns: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """A quarter of the spend values stop arriving."""
    spend = columns["spend"].copy()
    spend[rng.random(len(spend)) < 0.25] = np.nan
    columns["spend"] = spend


def spend_as_text(columns: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """The vendor's new format: every spend arrives as text with a decimal comma."""
    columns["spend"] = np.array(
        [f"{x:.2f}".replace(".", ",") for x in columns["spend"]], dtype=object
    )
