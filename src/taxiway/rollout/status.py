"""A rollout as ``taxiway rollout status --json`` shows it (and the sprint's report, the
dashboard or any other reader of the store): the stored state with its last verdict.

>>> from datetime import UTC, datetime
>>> from taxiway.rollout.records import RolloutState
>>> at = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
>>> state = RolloutState(3, "churn", "s", {"kind": "version", "version": 6, "constant": None},
...     7, None, [1.0, 5.0, 100.0], 1, 5.0, "running", at, at, at, None, {})
>>> document = status_document(state)
>>> document["step"], document["share"], document["verdict"], document["arms"][1]["version"]
(2, 5.0, None, 7)
"""

from __future__ import annotations

from typing import Any

from taxiway.rollout.records import RolloutState

__all__ = ["status_document"]


def status_document(state: RolloutState) -> dict[str, Any]:
    """What `status --json` prints: ``state``, ``step`` (1-based), ``share``, ``verdict``
    and ``arms[]`` (``name``, ``version``, ``units``, ``events``, ``mean``, ``interval``), with
    the last verdict's reasons and what the next step needs, and ``interleaving`` (wins,
    losses, ties, p-value; null without ``rollout.interleaving``)."""
    verdict = state.verdict or {}
    evidence = verdict.get("evidence") or {}
    arms = evidence.get("arms") or [
        {"name": "control", "version": state.control.get("version")},
        {"name": "candidate", "version": state.candidate},
    ]
    keys = ("name", "version", "units", "events", "mean", "interval")
    return {
        "id": state.id,
        "name": state.name,
        "state": state.state,
        "step": state.step_index + 1,
        "steps": state.steps,
        "share": state.share,
        "candidate": state.candidate,
        "control": state.control,
        "verdict": verdict.get("kind"),
        "reasons": verdict.get("reasons", []),
        "needs": verdict.get("needs", []),
        "checked_at": verdict.get("checked_at"),
        "arms": [{key: arm.get(key) for key in keys} for arm in arms],
        "comparison": evidence.get("comparison"),
        "interleaving": evidence.get("interleaving"),
        "started_at": state.started_at.isoformat(),
        "step_started_at": state.step_started_at.isoformat(),
        "updated_at": state.updated_at.isoformat(),
    }
