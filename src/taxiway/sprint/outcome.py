"""What a sprint observed: checks, the phases they belong to, and the blockers they raise.

These are plain data, shared by the phases that produce them and the debrief and report that
read them. A failed check carries its :class:`Blocker`: where it was found, what kind of
problem it is, whether it is on the critical path, the evidence, the fix as one specific
action, and how long that fix takes.

>>> b = Blocker("data_access", "organizational", True, "role ml_reader cannot read orders",
...             evidence="permission denied for table orders",
...             fix="GRANT SELECT ON public.orders TO ml_reader;", estimate="days")
>>> c = Check("access.orders", "fail", "cannot read public.orders", blocker=b)
>>> p = Phase("data_access", [c], duration_s=1.5)
>>> p.status, p.blockers[0].estimate, Phase("integration", [Check("smoke", "pass")]).status
('fail', 'days', 'pass')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "ESTIMATE_ORDER",
    "PHASES",
    "Blocker",
    "Category",
    "Check",
    "CheckStatus",
    "Estimate",
    "Exercised",
    "Phase",
    "PhaseName",
]

PhaseName = Literal["data_access", "model_development", "integration", "deployment"]
PHASES: tuple[PhaseName, ...] = ("data_access", "model_development", "integration", "deployment")
"""The four phases, in the order a sprint runs them."""

Category = Literal["technical", "organizational", "capability"]
"""``technical``: code or data a team can change; ``organizational``: a decision or permission
someone must give (a grant, a sign-off, an owner); ``capability``: something the organization
does not have yet (a source that does not exist, a skill, a platform)."""

Estimate = Literal["hours", "days", "weeks", "months", "years"]
ESTIMATE_ORDER: dict[str, int] = {"hours": 0, "days": 1, "weeks": 2, "months": 3, "years": 4}

CheckStatus = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Blocker:
    """One thing that stops (or, off the critical path, slows) the deployment."""

    phase: PhaseName
    category: Category
    critical_path: bool
    title: str
    evidence: str
    fix: str
    estimate: Estimate
    structural: bool = False
    """True when no amount of engineering removes it (the data does not exist, the action
    cannot be taken): unlimited resources would still not deploy."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with every field."""
        return asdict(self)


@dataclass
class Check:
    """One check of a phase: its outcome, a one-line detail, and its blocker when it failed."""

    name: str
    status: CheckStatus
    detail: str = ""
    duration_s: float = 0.0
    blocker: Blocker | None = None
    data: dict[str, Any] = field(default_factory=dict)
    """Measurements the debrief shows (metrics, latencies, counts), JSON-ready."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``blocker`` is nested when present."""
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "duration_s": round(self.duration_s, 3),
            "blocker": self.blocker.as_dict() if self.blocker else None,
            "data": self.data,
        }


@dataclass(frozen=True)
class Exercised:
    """What a part of the platform observed while the sprint ran it: the monitor watching the
    service, the rollout controller stepping traffic. ``ok`` is its verdict, ``evidence`` what
    it saw, ``data`` its figures (JSON-ready). A spec section is never one of these: only the
    part that ran can report it."""

    ok: bool
    evidence: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with every field."""
        return asdict(self)


@dataclass
class Phase:
    """A phase's checks, in the order they ran, and how long the phase took."""

    name: PhaseName
    checks: list[Check] = field(default_factory=list)
    duration_s: float = 0.0
    started_at: str | None = None

    @property
    def status(self) -> CheckStatus:
        """``fail`` if any check failed, else ``warn`` if any warned, ``skip`` if every check
        was skipped (or none ran), else ``pass``."""
        statuses = {check.status for check in self.checks}
        if "fail" in statuses:
            return "fail"
        if "warn" in statuses:
            return "warn"
        if not statuses or statuses == {"skip"}:
            return "skip"
        return "pass"

    @property
    def blockers(self) -> list[Blocker]:
        """The blockers of this phase's failed checks."""
        return [check.blocker for check in self.checks if check.blocker is not None]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``name``, ``status``, ``duration_s``, ``started_at``, ``checks``."""
        return {
            "name": self.name,
            "status": self.status,
            "duration_s": round(self.duration_s, 3),
            "started_at": self.started_at,
            "checks": [check.as_dict() for check in self.checks],
        }
