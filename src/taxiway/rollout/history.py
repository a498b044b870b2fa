"""The models' history a team lead reads (`taxiway models history`).

One row per registered version, from what was recorded, never inferred:

- *why* it was trained: its ``lineage.retrain.trigger`` (cadence, ``drift:<feature>``,
  quality, contract, manual), or a first training by `taxiway train`;
- how it compared with production *on the same validation rows*: its own score, and
  production's as the retrain run scored it (the runs recorded in the registry's database by
  every host, :func:`~taxiway.rollout.retrain.read_runs`), and the gate the run stopped at (or
  the note it was archived with: ``interrupted`` when its run never finished);
- what its rollout decided (the rollout store: its state and when it was reached);
- the time from the trigger (the retrain's as-of) to full traffic (the rollout's ``complete``
  event). Anything not recorded is None: shown as ``unknown``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from taxiway.models.registry import ModelVersion, StageEvent, open_registry
from taxiway.models.retrain import STOPPED
from taxiway.rollout.records import RolloutEvent, RolloutState, utc
from taxiway.rollout.retrain import read_runs
from taxiway.rollout.state import open_rollout_store
from taxiway.spec.project import Project

__all__ = [
    "VersionHistory",
    "describe_trigger",
    "history_fact",
    "history_lines",
    "model_history",
]


@dataclass(frozen=True)
class VersionHistory:
    """One version's history; None means it was not recorded (unknown)."""

    version: int
    stage: str
    created_at: str
    created_by: str
    why: str
    trigger: str | None
    as_of: str | None
    previous: int | None
    production: int | None
    window: dict[str, Any] | None
    new_rows: int | None
    metric: str | None
    score: float | None
    production_score: float | None
    baseline_score: float | None
    gate: str | None
    note: str | None
    rollout: dict[str, Any] | None
    trigger_to_full_traffic_s: float | None

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return asdict(self)


def describe_trigger(trigger: str | None, created_by: str) -> str:
    """Why a version was trained, in words.

    >>> describe_trigger("drift:orders__count_30d", "taxiway retrain")
    'drift on orders__count_30d'
    >>> describe_trigger("quality", "taxiway retrain"), describe_trigger(None, "ann")
    ('quality drop', 'trained by hand (`taxiway train`, by ann)')
    """
    if trigger is None:
        return f"trained by hand (`taxiway train`, by {created_by})"
    kind, _, detail = trigger.partition(":")
    words = {
        "cadence": "cadence",
        "manual": "manual retrain",
        "drift": "drift",
        "quality": "quality drop",
        "contract": "contract alert",
    }.get(kind, kind)
    if detail:
        return f"{words} on {detail}" if kind == "drift" else f"{words} ({detail})"
    return words


def model_history(project: Project) -> list[VersionHistory]:
    """Every version of ``project``'s model, oldest first (see the module docstring)."""
    name = project.spec.name
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        versions = registry.list(name)
        stages = registry.history(name)
    finally:
        registry.close()
    store = open_rollout_store(project.spec.registry, project.state_dir)
    try:
        rollouts = store.history(name)
        events = {r.id: store.events(r.id) for r in rollouts}
    finally:
        store.close()
    runs = {
        int(run["candidate"]): run
        for run in read_runs(project)
        if run.get("name") == name and isinstance(run.get("candidate"), int)
    }
    return [_entry(v, stages, rollouts, events, runs.get(v.version)) for v in versions]


def _entry(
    version: ModelVersion,
    stages: list[StageEvent],
    rollouts: list[RolloutState],
    events: dict[int, list[RolloutEvent]],
    run: dict[str, Any] | None,
) -> VersionHistory:
    retrain: dict[str, Any] = version.lineage.get("retrain") or {}
    trigger = retrain.get("trigger")
    metric = version.metrics.get("metric")
    metric = str(metric) if metric is not None else None
    scores: dict[str, Any] = (run or {}).get("scores") or {}
    archived = [e for e in stages if e.version == version.version and e.to_stage == "archived"]
    note = archived[-1].note if archived else None
    gate = (run or {}).get("gate")
    if gate is None and note and retrain and note.split(":", 1)[0] in STOPPED:
        gate = note.split(":", 1)[0]  # archived by a retrain's gate (not by a promotion)
    if gate is None and note and retrain and note.startswith("interrupted:"):
        gate = "interrupted"  # archived by the next run: its own was killed
    mine = [r for r in rollouts if r.candidate == version.version]
    rollout = _rollout(mine[-1], events.get(mine[-1].id, [])) if mine else None
    as_of = retrain.get("as_of")
    full = None
    if rollout is not None and rollout.get("full_traffic_at") and as_of:
        full = (utc(rollout["full_traffic_at"]) - utc(str(as_of))).total_seconds()
    return VersionHistory(
        version=version.version,
        stage=version.stage,
        created_at=version.created_at.isoformat(),
        created_by=version.created_by,
        why=describe_trigger(trigger, version.created_by),
        trigger=trigger,
        as_of=as_of,
        previous=retrain.get("previous"),
        production=retrain.get("production"),
        window=retrain.get("window"),
        new_rows=retrain.get("new_rows"),
        metric=metric,
        score=_number((version.metrics.get("model") or {}).get(metric)),
        production_score=_number(scores.get("production")),
        baseline_score=_number((version.metrics.get("baseline") or {}).get(metric)),
        gate=gate,
        note=note,
        rollout=rollout,
        trigger_to_full_traffic_s=full,
    )


def history_fact(project: Project) -> dict[str, Any]:
    """The sprint report's "Model history" fact: ``lines`` (:func:`history_lines`) and
    ``versions`` (each :meth:`VersionHistory.as_dict`); empty when nothing is registered."""
    entries = model_history(project)
    if not entries:
        return {}
    return {"lines": history_lines(entries), "versions": [e.as_dict() for e in entries]}


def _rollout(state: RolloutState, events: list[RolloutEvent]) -> dict[str, Any]:
    """The rollout's decision: its state, when it got there, and when traffic was full."""
    complete = [e for e in events if e.kind == "complete"]
    decided = [e for e in events if e.to_state == state.state]
    return {
        "id": state.id,
        "state": state.state,
        "started_at": _iso(state.started_at),
        "decided_at": _iso(decided[-1].at) if decided and not state.active else None,
        "full_traffic_at": _iso(complete[-1].at) if complete else None,
        "control": state.control,
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def history_lines(entries: list[VersionHistory]) -> list[str]:
    """One line per version, for the terminal and the report (``unknown`` where nothing was
    recorded).

    >>> entry = VersionHistory(2, "production", "2026-01-08T00:00:00+00:00", "taxiway retrain",
    ...     "cadence", "cadence", "2026-01-08T00:00:00+00:00", 1, 1, None, 12000, "roc_auc",
    ...     0.81, 0.80, 0.6, "rollout_started", None, {"id": 1, "state": "complete",
    ...     "decided_at": "2026-01-09T06:00:00+00:00"}, 108000.0)
    >>> print(history_lines([entry])[0])
    v2 (production): cadence; roc_auc 0.81 vs production v1 0.8 on the same rows; rollout 1 complete at 2026-01-09T06:00:00+00:00; trigger to full traffic 30.0 h
    """
    lines = []
    for e in entries:
        compared = f"{e.metric or 'metric'} {_show(e.score)}"
        if e.production is not None:
            compared += (
                f" vs production v{e.production} {_show(e.production_score)} on the same rows"
            )
        elif e.trigger is not None:
            compared += " (no production version to compare with)"
        if e.rollout is None:
            decided = "no rollout"
            if e.gate is not None and e.gate not in ("candidate", "rollout_started"):
                decided = f"stopped at {e.gate}"
        else:
            when = e.rollout.get("decided_at") or "unknown"
            state = e.rollout["state"]
            decided = f"rollout {e.rollout['id']} {state}" + (
                "" if state in ("running", "paused") else f" at {when}"
            )
        full = (
            "unknown"
            if e.trigger_to_full_traffic_s is None
            else f"{e.trigger_to_full_traffic_s / 3600:.1f} h"
        )
        lines.append(
            f"v{e.version} ({e.stage}): {e.why}; {compared}; {decided}; "
            f"trigger to full traffic {full}"
        )
    return lines


def _show(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4g}"
