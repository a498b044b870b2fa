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

Every estimate comes from the kind of fix (:func:`effort`): a setting or a line of the spec
takes minutes, a GRANT hours (the DBA acts), retraining the training time the sprint measured,
a new data source days. :func:`blocker` builds a blocker through it:

>>> b = blocker("data_access", "technical", "BLOCKED_CRM_URL is not set", evidence="unset",
...             fix="export BLOCKED_CRM_URL=...", kind="setting")
>>> b.estimate, b.who, b.basis
('minutes', 'whoever runs the sprint', 'an environment variable or a setting')
>>> e = effort("retrain", measured_s=37.0)
>>> e.estimate, e.basis
('minutes', 'a change to the inputs, then retraining: the sprint trained in 37 s')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

__all__ = [
    "ESTIMATE_ORDER",
    "FIX_KINDS",
    "PHASES",
    "Blocker",
    "Category",
    "Check",
    "CheckStatus",
    "Effort",
    "Estimate",
    "Exercised",
    "FixKind",
    "Phase",
    "PhaseName",
    "blocker",
    "effort",
]

PhaseName = Literal["data_access", "model_development", "integration", "deployment"]
PHASES: tuple[PhaseName, ...] = ("data_access", "model_development", "integration", "deployment")
"""The four phases, in the order a sprint runs them."""

Category = Literal["technical", "organizational", "capability"]
"""``technical``: code or data a team can change; ``organizational``: a decision or permission
someone must give (a grant, a sign-off, an owner); ``capability``: something the organization
does not have yet (a source that does not exist, a skill, a platform)."""

Estimate = Literal["minutes", "hours", "days", "weeks", "months", "years"]
ESTIMATE_ORDER: dict[str, int] = {
    "minutes": 0,
    "hours": 1,
    "days": 2,
    "weeks": 3,
    "months": 4,
    "years": 5,
}

FixKind = Literal[
    "setting",
    "spec_line",
    "grant",
    "sign_off",
    "retrain",
    "code",
    "tuning",
    "new_source",
    "data_fix",
    "new_signal",
]
"""What a fix is, which sets how long it takes and who acts (:func:`effort`)."""
FIX_KINDS: tuple[FixKind, ...] = get_args(FixKind)

# kind -> (estimate, who acts, what the fix is); retrain's estimate is the measured training
# time when there is one
_EFFORTS: dict[FixKind, tuple[Estimate, str, str]] = {
    "setting": ("minutes", "whoever runs the sprint", "an environment variable or a setting"),
    "spec_line": ("minutes", "the model's team", "a line in taxiway.yaml"),
    "grant": ("hours", "the DBA", "a GRANT the database administrator runs"),
    "sign_off": ("days", "the reviewer", "a review, then `taxiway approve`"),
    "retrain": ("hours", "the model's team", "a change to the inputs, then retraining"),
    "code": ("days", "engineering", "a change to code or infrastructure"),
    "tuning": ("weeks", "engineering", "profiling and tuning the service under load"),
    "new_source": ("days", "data engineering", "a new data source or request field"),
    "data_fix": ("weeks", "the source's producer", "the producer fixes its data, or the "
                 "contract is renegotiated"),
    "new_signal": ("months", "the model's team", "better data or a different framing"),
}  # fmt: skip

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
    kind: FixKind | None = None
    """What the fix is (:func:`effort`); ``None`` only on a blocker not built by :func:`blocker`."""
    who: str | None = None
    """Who acts on the fix: the DBA, a reviewer, the model's team."""
    basis: str = ""
    """Why the estimate is what it is: the kind of fix, and the measured time for retraining."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with every field."""
        return asdict(self)


@dataclass(frozen=True)
class Effort:
    """How long a fix takes and who acts, from the kind of fix."""

    kind: FixKind
    estimate: Estimate
    who: str
    basis: str


def effort(kind: FixKind, *, who: str | None = None, measured_s: float | None = None) -> Effort:
    """The estimate of a fix of ``kind`` and who acts (``who`` names them more exactly).

    ``measured_s`` is the training time the sprint measured, for ``retrain``: the fix takes
    that long (plus the edit), so under an hour is ``minutes``, under a working day ``hours``.

    >>> effort("grant").estimate, effort("grant").who
    ('hours', 'the DBA')
    >>> effort("retrain", measured_s=5 * 3600).estimate, effort("new_source").estimate
    ('hours', 'days')
    """
    if kind not in _EFFORTS:
        raise ValueError(f"unknown fix kind {kind!r}; expected one of {', '.join(FIX_KINDS)}")
    estimate, acts, basis = _EFFORTS[kind]
    if kind == "retrain" and measured_s is not None:
        estimate = _training_estimate(measured_s)
        basis += f": the sprint trained in {_seconds(measured_s)}"
    elif kind == "retrain":
        basis += ": the training time was not measured (the model was reused, not trained)"
    return Effort(kind, estimate, who or acts, basis)


def blocker(
    phase: PhaseName,
    category: Category,
    title: str,
    *,
    evidence: str,
    fix: str,
    kind: FixKind,
    who: str | None = None,
    measured_s: float | None = None,
    critical_path: bool = True,
    structural: bool = False,
) -> Blocker:
    """A blocker whose estimate and actor come from the kind of its fix (:func:`effort`)."""
    found = effort(kind, who=who, measured_s=measured_s)
    return Blocker(
        phase,
        category,
        critical_path,
        title,
        evidence,
        fix,
        found.estimate,
        structural,
        kind=found.kind,
        who=found.who,
        basis=found.basis,
    )


def _training_estimate(seconds: float) -> Estimate:
    if seconds < 3600:
        return "minutes"
    if seconds < 8 * 3600:
        return "hours"
    if seconds < 5 * 24 * 3600:
        return "days"
    return "weeks"


def _seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
