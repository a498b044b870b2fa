"""Simulated rollout traffic for the tests, written with the service's own log writer:
answers assigned by the real rule (:func:`taxiway.rollout.assignment.arm_for`), outcomes
posted per unit into ``<log parent>/outcomes`` as ``POST /v1/outcomes`` writes them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from taxiway.rollout.assignment import arm_for
from taxiway.serving.log import PredictionLog

ArmRule = Callable[[str, str, float], str]


def answer(
    at: datetime,
    unit: str | None,
    arm: str | None,
    *,
    version: int | None,
    latency_ms: float = 5.0,
    path: str = "model",
    reason: str | None = None,
    request_id: str = "r",
) -> dict[str, Any]:
    """One prediction-log record as the service writes it (the fields the rollout reads)."""
    return {
        "ts": at.isoformat(),
        "request_id": request_id,
        "model": "churn",
        "model_version": version,
        "arm": arm,
        "unit": unit,
        "path": path,
        "degraded": path != "model",
        "reason": reason,
        "prediction": 0.5,
        "latency_ms": latency_ms,
    }


def outcome(at: datetime, unit: str | None, value: Any, name: str = "converted") -> dict[str, Any]:
    """One outcome record as ``POST /v1/outcomes`` writes it."""
    return {
        "received_at": at.isoformat(),
        "request_id": None,
        "unit": unit,
        "name": name,
        "value": value,
        "timestamp": at.isoformat(),
    }


def write(folder: Path, records: Sequence[dict[str, Any]], worker: str = "w1") -> None:
    """Append ``records`` to the log in ``folder`` with the service's writer."""
    with PredictionLog(folder, worker=worker, sync="never") as log:
        for record in records:
            log.append_sync(record)


@dataclass
class Traffic:
    """Units visiting a service under a rollout; each visit is answered by the arm the rule
    gives, and converts with that arm's rate."""

    state_dir: Path
    salt: str
    rates: dict[str, float]
    seed: int = 0
    latency_ms: dict[str, float] = field(default_factory=lambda: {"control": 5.0, "candidate": 5.0})
    versions: dict[str, int] = field(default_factory=lambda: {"control": 1, "candidate": 2})
    rule: ArmRule = arm_for
    next_unit: int = 0
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    @property
    def log(self) -> Path:
        return self.state_dir / "predictions"

    @property
    def outcomes(self) -> Path:
        return self.state_dir / "outcomes"

    def visit(
        self, share: float, start: datetime, *, new: int, returning: int = 0, span_s: float = 600
    ) -> None:
        """``new`` units never seen and ``returning`` earlier ones visit once each, spread
        over ``span_s`` seconds from ``start``; a visit converts with its arm's rate."""
        units = [f"u{self.next_unit + i}" for i in range(new)]
        self.next_unit += new
        if returning and self.seen:
            picked = self.rng.choice(len(self.seen), min(returning, len(self.seen)), replace=False)
            units += [self.seen[i] for i in picked]
        self.seen += units[:new]
        offsets = np.sort(self.rng.uniform(0, span_s, len(units)))
        answers, outcomes = [], []
        for unit, offset in zip(units, offsets, strict=True):
            at = start + timedelta(seconds=float(offset))
            arm = self.rule(self.salt, unit, share)
            jitter = float(self.rng.exponential(0.2))
            answers.append(
                answer(
                    at,
                    unit,
                    arm,
                    version=self.versions[arm],
                    latency_ms=self.latency_ms[arm] + jitter,
                )
            )
            if self.rng.random() < self.rates[arm]:
                outcomes.append(outcome(at + timedelta(seconds=1), unit, True))
        write(self.log, answers)
        if outcomes:
            write(self.outcomes, outcomes)
