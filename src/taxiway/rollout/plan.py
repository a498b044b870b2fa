"""What a rollout starts from: its candidate, its control, and the plan frozen into its state.

- The **candidate** is the version given (``--candidate``, else the spec's
  ``rollout.candidate``), else the newest candidate-stage version that passes the handoff
  audit (:func:`default_candidate`; audited newest first, stopping at the first that passes;
  for a recommend spec, among its ``recommend`` versions).
- The **control** is stored as ``{"kind", "version", "constant"}``: the production version
  (``kind: version``), the baseline (``kind: baseline``, of the production version when there
  is one), or a constant score (``kind: constant``); ``production`` falls back to the
  baseline when nothing is in production.
- A **recommender**'s rollout (:func:`recommend_rollout`) randomises users: its unit is the
  interactions' user column (the request's ``user``), and its control is ``production`` or
  ``baseline`` (the popularity stage of the candidate's Recommender), never a constant score.
- The **plan** is the spec's ``rollout:`` section as JSON, with the latency limit resolved
  (``guardrails.latency_p99_ms``, else ``serving.latency_budget_ms``) and the candidate
  chosen, and durations written as the spec writes them, so it loads back into
  :class:`~taxiway.spec.models.Rollout` and a later edit of the spec does not change a
  rollout under way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from taxiway.errors import RolloutError
from taxiway.models.registry import ModelVersion, Registry
from taxiway.spec.models import Rollout

__all__ = ["Auditor", "control_of", "default_candidate", "frozen_plan", "recommend_rollout"]

Auditor = Callable[[ModelVersion], bool]
"""Whether a version passed the handoff audit (the CLI passes one that runs it)."""


def default_candidate(
    registry: Registry,
    name: str,
    production: int | None,
    audited: Auditor | None,
    *,
    task: str | None = None,
) -> ModelVersion:
    """The newest candidate-stage version that passed the audit (``audited``; None takes the
    newest candidate-stage version); RolloutError when there is none. ``task`` keeps only
    the versions of that task (``recommend`` for a recommend spec).

    The audit is run newest first and stops at the first version that passes.
    """
    candidates = [
        v
        for v in reversed(registry.list(name))
        if v.stage == "candidate" and v.version != production and (task is None or v.task == task)
    ]
    if not candidates:
        raise RolloutError(
            f"model {name!r} has no candidate version to roll out",
            fix="train a new version (`taxiway train`), or name one with --candidate",
        )
    if audited is None:
        return candidates[0]
    for version in candidates:
        if audited(version):
            return version
    raise RolloutError(
        f"no candidate version of {name!r} passed the handoff audit "
        f"(tried {', '.join(str(v.version) for v in candidates)})",
        fix="see `taxiway audit --model <version>`; or name a version with --candidate, or "
        "take the newest candidate with --no-audit",
    )


def frozen_plan(plan: Rollout, *, candidate: int, latency_budget_ms: float) -> dict[str, Any]:
    """``plan`` as stored with a rollout (see the module docstring).

    >>> frozen = frozen_plan(Rollout(), candidate=7, latency_budget_ms=50.0)
    >>> frozen["candidate"], frozen["min_duration"], frozen["guardrails"]["latency_p99_ms"]
    (7, '3600s', 50.0)
    >>> Rollout.model_validate(frozen).min_duration
    datetime.timedelta(seconds=3600)
    """
    frozen = plan.model_dump(mode="json", by_alias=True)
    frozen["min_duration"] = _spec_duration(plan.min_duration)
    frozen["check_every"] = _spec_duration(plan.check_every)
    limit = plan.guardrails.latency_p99_ms or latency_budget_ms
    frozen["guardrails"]["latency_p99_ms"] = limit
    frozen["candidate"] = candidate
    return frozen


def _spec_duration(duration: timedelta) -> str:
    """A duration as the spec writes it (``600s``, ``1500ms``), so the stored plan loads back.

    >>> _spec_duration(timedelta(minutes=10)), _spec_duration(timedelta(seconds=1.5))
    ('600s', '1500ms')
    """
    seconds = duration.total_seconds()
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{round(seconds * 1000)}ms"


def control_of(control: str | float, production: int | None) -> dict[str, Any]:
    """The stored control: the production version (the baseline when there is none), the
    baseline, or a constant score.

    >>> control_of("production", 3), control_of(0.1, 3)["kind"]
    ({'kind': 'version', 'version': 3, 'constant': None}, 'constant')
    """
    if isinstance(control, float | int) and not isinstance(control, bool):
        return {"kind": "constant", "version": None, "constant": float(control)}
    if control == "production" and production is not None:
        return {"kind": "version", "version": production, "constant": None}
    return {"kind": "baseline", "version": production, "constant": None}


def recommend_rollout(plan: Rollout, user: str) -> Rollout:
    """``plan`` for a recommender whose interactions name users by ``user``: its unit is that
    column (the request's ``user``: what the service assigns by); a RolloutError names the fix
    for a constant control or another unit.

    >>> recommend_rollout(Rollout(), "customer_id").unit
    'customer_id'
    >>> recommend_rollout(Rollout(control=0.1), "customer_id")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    taxiway.errors.RolloutError: a recommender's rollout.control is ... not the constant 0.1
    ...
    """
    if not isinstance(plan.control, str):
        raise RolloutError(
            f"a recommender's rollout.control is `production` or `baseline`, not the constant "
            f"{plan.control:g}",
            fix="`control: baseline` stands for a shop without recommendations (the "
            "popularity stage of the candidate's own Recommender)",
        )
    if plan.unit not in (None, user, "user"):
        raise RolloutError(
            f"a recommender's rollout randomises users: rollout.unit is `{user}` (the "
            f"interactions' user column), not `{plan.unit}`",
            fix=f"remove rollout.unit, or set it to `{user}`: the service assigns each request "
            "by its `user`",
        )
    return plan.model_copy(update={"unit": user})
