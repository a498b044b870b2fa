"""Reading a debrief back from ``report.json``: its phases, checks and blockers, each value
checked against the words taxiway writes (a phase name, a status, a category, an estimate)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast, get_args

from taxiway.errors import TaxiwayError
from taxiway.sprint.outcome import (
    FIX_KINDS,
    PHASES,
    Blocker,
    Category,
    Check,
    CheckStatus,
    Estimate,
    Phase,
)

__all__ = ["not_a_report", "phase_from_dict"]

_CHECK_STATUSES: tuple[CheckStatus, ...] = get_args(CheckStatus)
_CATEGORIES: tuple[Category, ...] = get_args(Category)
_ESTIMATES: tuple[Estimate, ...] = get_args(Estimate)

_L = TypeVar("_L", bound=str)


def _literal(value: Any, allowed: tuple[_L, ...], what: str) -> _L:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return cast(_L, value)


def phase_from_dict(data: Mapping[str, Any]) -> Phase:
    return Phase(
        name=_literal(data["name"], PHASES, "phase"),
        checks=[_check(c) for c in data.get("checks") or []],
        duration_s=float(data.get("duration_s") or 0.0),
        started_at=data.get("started_at"),
    )


def _check(data: Mapping[str, Any]) -> Check:
    blocker = data.get("blocker")
    return Check(
        name=str(data["name"]),
        status=_literal(data["status"], _CHECK_STATUSES, "check status"),
        detail=str(data.get("detail") or ""),
        duration_s=float(data.get("duration_s") or 0.0),
        blocker=_blocker(blocker) if blocker else None,
        data=dict(data.get("data") or {}),
    )


def _blocker(data: Mapping[str, Any]) -> Blocker:
    return Blocker(
        phase=_literal(data["phase"], PHASES, "phase"),
        category=_literal(data["category"], _CATEGORIES, "category"),
        critical_path=bool(data["critical_path"]),
        title=str(data["title"]),
        evidence=str(data["evidence"]),
        fix=str(data["fix"]),
        estimate=_literal(data["estimate"], _ESTIMATES, "estimate"),
        structural=bool(data.get("structural", False)),
        kind=_literal(data["kind"], FIX_KINDS, "fix kind") if data.get("kind") else None,
        who=str(data["who"]) if data.get("who") else None,
        basis=str(data.get("basis") or ""),
    )


def not_a_report(why: str) -> TaxiwayError:
    return TaxiwayError(
        f"not a sprint report: {why}", fix="re-run `taxiway sprint` to write a fresh report.json"
    )
