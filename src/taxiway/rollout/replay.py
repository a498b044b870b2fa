"""A rollout replayed on simulated traffic through the real controller: how the interval
narrows and which step each check takes, for a true lift chosen in advance.

The replay runs in its own state folder, never the project's: a SQLite registry holding two
placeholder versions (1 in production, 2 the candidate), the spec's ``rollout:`` plan, and
a prediction log and an outcomes log written in the service's format. Units arrive at a
steady rate (``units`` over ``duration``); each visit is assigned by the real rule
(:func:`~taxiway.rollout.assignment.arm_for` with the rollout's salt) and converts with
probability ``base`` in the control arm and ``base * (1 + lift)`` in the candidate's. After
every ``check_every`` of simulated time the controller checks and acts, as in production.

>>> import tempfile
>>> from taxiway.spec.models import Rollout
>>> plan = Rollout.model_validate({"steps": [50, 100], "min_duration": "10m",
...     "metric": {"name": "converted", "min_effect": 0.1}, "check_every": "10m"})
>>> points = replay(plan, Path(tempfile.mkdtemp()), lift=1.0, base=0.2, units=4000,
...     duration=timedelta(hours=2), seed=1)
>>> points[-1].verdict, points[-1].state
('complete', 'complete')
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from taxiway.models.registry import NewVersion, open_registry
from taxiway.rollout.assignment import arm_for
from taxiway.rollout.controller import Controller
from taxiway.spec.models import Rollout, TaxiwaySpec
from taxiway.spec.project import Project

__all__ = ["ReplayPoint", "chart_svg", "replay"]

MAX_CHECKS = 400
"""The most checks a replay runs (the plan's ``check_every`` is stretched beyond that)."""

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""The simulated clock's start (any fixed time: the replay is reproducible)."""


@dataclass(frozen=True)
class ReplayPoint:
    """One check of the replay: when (hours since the start), at which share, what it said,
    and the difference with its interval (None before there is one)."""

    hours: float
    share: float
    verdict: str
    state: str
    units: tuple[int, int]
    diff: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def replay(
    plan: Rollout,
    folder: Path,
    *,
    lift: float,
    base: float,
    units: int,
    duration: timedelta,
    seed: int = 0,
) -> list[ReplayPoint]:
    """Replay ``plan`` in ``folder`` (see the module docstring); one point per check."""
    project = _project(plan, folder)
    rng = np.random.default_rng(seed)
    rates = {"control": base, "candidate": min(1.0, base * (1.0 + lift))}
    name = plan.metric.name if plan.metric is not None else "converted"
    # checks as often as the plan says, but at most MAX_CHECKS in all: a plan that holds each
    # step for a day and checks every minute would otherwise replay 14,400 checks
    every = max(plan.check_every, duration / MAX_CHECKS)
    checks = max(1, math.ceil(duration / every))
    per_check = units / checks
    points: list[ReplayPoint] = []
    arrived = 0
    with Controller(project, by="taxiway rollout simulate") as controller:
        state = controller.start(candidate=2, now=START)
        now = START
        for index in range(checks):
            due = round((index + 1) * per_check)
            numbers = range(arrived, due)
            _visit(controller, state.salt, state.share, now, every, numbers, rates, rng, name)
            arrived = due
            now += every
            result = controller.check(now=now)
            comparison = result.analysis.comparison
            finite = comparison is not None and math.isfinite(comparison.high - comparison.low)
            points.append(
                ReplayPoint(
                    hours=(now - START) / timedelta(hours=1),
                    share=state.share,
                    verdict=result.verdict.kind,
                    state=result.state.state,
                    units=(result.analysis.arms[0].units, result.analysis.arms[1].units),
                    diff=comparison.diff if comparison is not None and finite else None,
                    low=comparison.low if comparison is not None and finite else None,
                    high=comparison.high if comparison is not None and finite else None,
                )
            )
            state = result.state
            if not state.active or state.state == "paused":
                break
    return points


def _project(plan: Rollout, folder: Path) -> Project:
    """A spec with ``plan`` and an SQLite registry in ``folder`` holding versions 1 and 2."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = TaxiwaySpec.model_validate(
        {
            "name": "simulated",
            "sources": {"events": {"kind": "file", "path": "events.parquet", "timestamp": "at"}},
            "entities": {"user": "user_id"},
        }
    ).model_copy(update={"rollout": plan})
    project = Project(spec, folder / "taxiway.yaml", folder / "state")
    artifacts = folder / "placeholder"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "README").write_text("a placeholder model: the replay serves no prediction\n")
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        for _ in range(2):
            registry.register(_version(), artifacts)
        registry.set_stage("simulated", 1, "production", by="taxiway rollout simulate")
    finally:
        registry.close()
    return project


def _version() -> NewVersion:
    return NewVersion(
        name="simulated",
        created_by="taxiway rollout simulate",
        algorithm="placeholder",
        task="classification",
        metrics={},
        features=[],
        definitions_hash="",
        spec_hash="",
        git_commit=None,
        training={},
        lineage={},
        profile={},
        serving={},
    )


def _visit(
    controller: Controller,
    salt: str,
    share: float,
    start: datetime,
    span: timedelta,
    numbers: range,
    rates: dict[str, float],
    rng: np.random.Generator,
    outcome: str,
) -> None:
    """Units ``numbers`` visit once each during ``span``; answers and their ``outcome``
    appended to the logs."""
    if not numbers:
        return
    offsets = np.sort(rng.uniform(0, span.total_seconds(), len(numbers)))
    converts = rng.random(len(numbers))
    answers, outcomes = [], []
    for number, offset, draw in zip(numbers, offsets.tolist(), converts.tolist(), strict=True):
        unit = f"user-{number}"
        arm = arm_for(salt, unit, share)
        at = start + timedelta(seconds=offset)
        answers.append(
            {
                "ts": at.isoformat(),
                "request_id": f"r{number}",
                "model": "simulated",
                "model_version": 2 if arm == "candidate" else 1,
                "arm": arm,
                "unit": unit,
                "path": "model",
                "degraded": False,
                "reason": None,
                "prediction": 0.5,
                "latency_ms": float(1.0 + rng.exponential(2.0)),
            }
        )
        if draw < rates[arm]:
            later = (at + timedelta(minutes=1)).isoformat()
            outcomes.append(
                {
                    "received_at": later,
                    "request_id": None,
                    "unit": unit,
                    "name": outcome,
                    "value": True,
                    "timestamp": later,
                }
            )
    stamp = start.strftime("%Y%m%dT%H%M%S")
    _append(controller.log_folder / f"predictions-sim-{stamp}-0000.jsonl", answers)
    _append(
        controller.log_folder.parent / "outcomes" / f"predictions-sim-{stamp}-0000.jsonl", outcomes
    )


def _append(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(b"".join(orjson.dumps(record) + b"\n" for record in records))


def chart_svg(points: list[ReplayPoint], title: str) -> str:
    """An SVG chart of the replay: the difference (candidate minus control) and its interval
    at each check, 0 dashed, and a line at each check that changed the step.

    >>> svg = chart_svg([ReplayPoint(1.0, 5.0, "promote", "running", (120, 12), 0.1, -0.2, 0.4)],
    ...                 "lift 5%")
    >>> svg.startswith("<svg") and "promote" in svg
    True
    """
    width, height, left, right, top, bottom = 760, 340, 64, 16, 36, 40
    known = [p for p in points if p.low is not None and p.high is not None]
    values = [0.0] + [v for p in known for v in (p.low, p.high) if v is not None]
    low, high = min(values), max(values)
    if high - low < 1e-12:
        low, high = low - 1.0, high + 1.0
    span = max((p.hours for p in points), default=1.0) or 1.0

    def x(hours: float) -> float:
        return left + (width - left - right) * hours / span

    def y(value: float) -> float:
        return top + (height - top - bottom) * (high - value) / (high - low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="20" font-size="13">{_escape(title)}</text>',
        f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
        'stroke="#888" stroke-dasharray="4 3"/>',
    ]
    if known:
        upper = [f"{x(p.hours):.1f},{y(p.high or 0):.1f}" for p in known]
        lower = [f"{x(p.hours):.1f},{y(p.low or 0):.1f}" for p in reversed(known)]
        parts.append(f'<polygon points="{" ".join(upper + lower)}" fill="#9cc3e6" opacity="0.6"/>')
        line = " ".join(f"{x(p.hours):.1f},{y(p.diff or 0):.1f}" for p in known)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#1f5f99" stroke-width="2"/>')
    for point in points:
        if point.verdict in ("promote", "complete", "rollback", "pause"):
            at = x(point.hours)
            parts.append(
                f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{top}" y2="{height - bottom}" '
                'stroke="#c0392b" stroke-width="1"/>'
            )
            parts.append(
                f'<text x="{at + 3:.1f}" y="{top + 10}" fill="#c0392b">{point.verdict} '
                f"at {point.share:g}%</text>"
            )
    for value in (low, 0.0, high):
        parts.append(f'<text x="4" y="{y(value) + 4:.1f}">{value:.3g}</text>')
    parts.append(
        f'<text x="{left}" y="{height - 12}">hours since the start ({span:.3g} h); band: the '
        "anytime-valid interval of candidate minus control</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
