"""The guardrails of one look: each a one-sided anytime-valid bound, the rollout's alpha
split evenly between them (:mod:`taxiway.rollout.statistics.guardrails`), plus the monitor's
drift status as it reported it.

- ``latency_p99``: the candidate's share of answers slower than the latency limit, at most
  1% (its p99 within the limit);
- ``error_rate``: the candidate's errors per answer, at most ``guardrails.error_rate``;
- ``fallback_rate``: the candidate's fallbacks per answer, at most ``guardrails.fallback_rate``
  above control's;
- ``outcome:<name>``: each outcome that must not get worse (higher is better), compared
  within strata like the metric (:mod:`.strata`): breached when even the upper bound of the
  difference is below 0;
- with ``rollout.interleaving``, the same three for the interleaved answers, an arm of their
  own (``latency_p99:interleaved``, ``error_rate:interleaved``, ``fallback_rate:interleaved``
  against control's): each runs both models, so interleaving that blows the latency budget
  or falls back more rolls the candidate back like the candidate's own answers would;
- drift: the in-service monitor's last report (``<log parent>/monitor/service/latest.json``),
  written after the rollout began, with the output or a feature drifting.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from taxiway.rollout.records import RolloutState
from taxiway.rollout.statistics import (
    ArmStats,
    Guardrail,
    GuardrailResult,
    check_guardrail,
    half_width,
)
from taxiway.rollout.statistics.guardrails import MIN_EVENTS, MIN_UNITS, Status
from taxiway.rollout.strata import strata_difference
from taxiway.rollout.units_state import ANSWER_ARMS, INTERLEAVED, ArmCounts, UnitsState
from taxiway.spec.models import Rollout

__all__ = ["drift_finding", "guardrail_checks", "monitor_drift"]

Mask = npt.NDArray[np.bool_]


def guardrail_checks(
    units: UnitsState, plan: Rollout, control: Mask, candidate: Mask, step: Any, planned: int
) -> list[GuardrailResult]:
    """The guardrails of one look (see the module), in order: the candidate's answers', the
    interleaved answers' (with ``rollout.interleaving``), then each outcome's."""
    rails = plan.guardrails
    arms = {name: units.arms.get(name, ArmCounts()) for name in ANSWER_ARMS}

    def rate(name: str, count: int) -> ArmStats:
        return ArmStats.from_sums(name, arms[name].answers, count, count, count)

    guarded = ["candidate"] + ([INTERLEAVED] if plan.interleaving is not None else [])
    measured: list[tuple[Guardrail, ArmStats | None, ArmStats]] = []
    for arm in guarded:
        suffix = "" if arm == "candidate" else f":{arm}"
        if rails.latency_p99_ms is not None:
            slow = Guardrail(f"latency_p99{suffix}", worse="higher", limit=0.01)
            measured.append((slow, None, rate(arm, arms[arm].slow)))
        errors = Guardrail(f"error_rate{suffix}", worse="higher", limit=rails.error_rate)
        measured.append((errors, None, rate(arm, arms[arm].errors)))
        fallbacks = Guardrail(
            f"fallback_rate{suffix}", worse="higher", tolerance=rails.fallback_rate
        )
        measured.append(
            (fallbacks, rate("control", arms["control"].fallbacks), rate(arm, arms[arm].fallbacks))
        )
    each = plan.alpha / (len(measured) + len(rails.outcomes))
    results = [check_guardrail(g, c, t, alpha=each, planned_n=planned) for g, c, t in measured]
    for name in rails.outcomes:
        if name not in units.units.post:
            continue
        diff, var, n_control, n_candidate = strata_difference(
            units.value(name), control, candidate, step
        )
        width = half_width(var, n_control + n_candidate, each, 2.0 * planned, sides=1)
        bound = diff + width  # higher is better: harm when even the upper bound is below 0
        with_events = (control | candidate) & (units.units.post_events[name] > 0)
        events = int(np.count_nonzero(with_events))
        least = min(n_control, n_candidate)
        status: Status = "ok"
        if least < MIN_UNITS or events < MIN_EVENTS or not math.isfinite(bound):
            status = "not_enough_data"
        elif bound < 0:
            status = "breached"
        results.append(
            GuardrailResult(f"outcome:{name}", status, diff, bound, 0.0, each, least, events)
        )
    return results


def monitor_drift(folder: Path) -> dict[str, Any] | None:
    """The in-service monitor's last run (``<log parent>/monitor/service/latest.json``), or
    None when there is none or it cannot be read."""
    path = folder / "latest.json"
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def drift_finding(
    latest: dict[str, Any] | None, rollout: RolloutState, plan: Rollout
) -> dict[str, Any] | None:
    if latest is None or not isinstance(latest.get("report"), dict):
        return None
    report = latest["report"]
    generated = report.get("generated_at")
    try:
        when = datetime.fromisoformat(str(generated))
    except ValueError:
        return None
    if when.tzinfo is None:  # the monitor writes UTC
        when = when.replace(tzinfo=UTC)
    if when < rollout.started_at:
        return {"status": "stale", "generated_at": generated, "breached": False}
    drifted = [f.get("name") for f in report.get("features") or [] if f.get("status") == "drift"]
    output = report.get("output") or {}
    if output.get("status") == "drift":
        drifted.append("output")
    return {
        "status": "drift" if drifted else "ok",
        "drifted": drifted,
        "version": report.get("version"),
        "generated_at": generated,
        "breached": bool(drifted) and plan.guardrails.drift,
    }
