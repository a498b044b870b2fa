"""The debrief: a sprint's evidence, its five questions answered, the path and the verdict.

A debrief holds what the sprint did (its phases and checks, whether it deployed) and what it
measured (``facts``), plus the readiness assessment when one was made. Everything it says is
derived from those: the blockers, the path, the answers, the one-sentence verdict. It is plain
data, so ``report.json`` can be read back with :meth:`Debrief.from_dict` and re-rendered.

>>> from taxiway.sprint.outcome import Blocker, Check, Phase
>>> grant = Blocker("data_access", "organizational", True, "ml_reader cannot read orders",
...                 evidence="permission denied for table orders",
...                 fix="GRANT SELECT ON public.orders TO ml_reader;", estimate="weeks")
>>> d = Debrief("repurchase", "taxiway.yaml", "2025-06-02T09:00:00Z", "2025-06-02T09:04:00Z",
...             [Phase("data_access", [Check("access.orders", "fail", blocker=grant)], 2.0)],
...             deployed=False)
>>> d.path, d.time_to_deploy, d.unseen_phases
(2, 'weeks', ['model_development', 'integration', 'deployment'])
>>> [q["id"] for q in d.questions()]
['unlimited_resources', 'critical_path', 'how_long', 'fix_in_30_days', 'do_ai']
>>> Debrief.from_dict(d.as_dict()).as_dict() == d.as_dict()
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast, get_args

from taxiway.errors import TaxiwayError
from taxiway.models.metrics import HIGHER_IS_BETTER
from taxiway.sprint.outcome import (
    ESTIMATE_ORDER,
    FIX_KINDS,
    PHASES,
    Blocker,
    Category,
    Check,
    CheckStatus,
    Estimate,
    Phase,
    PhaseName,
)

__all__ = [
    "MARGINAL_LIFT",
    "PATHS",
    "QUESTIONS",
    "WITHIN_30_DAYS",
    "Debrief",
    "Path",
]

Path = Literal[1, 2, 3]
PATHS: dict[int, str] = {
    1: "deploy more",
    2: "fix the blockers, then deploy",
    3: "build the foundation first",
}
"""What each path means, in the words the report uses."""

QUESTIONS: tuple[tuple[str, str], ...] = (
    ("unlimited_resources", "Could this have deployed with unlimited resources?"),
    ("critical_path", "What was the critical-path blocker?"),
    ("how_long", "How long would this really take?"),
    ("fix_in_30_days", "What must be fixed to deploy within 30 days?"),
    ("do_ai", "Should AI be done here at all?"),
)
"""The five debrief questions: ``(id, question)``, in the order the report asks them."""

WITHIN_30_DAYS: frozenset[str] = frozenset({"minutes", "hours", "days", "weeks"})
"""Estimates a fix can fit in a 30-day push; ``months`` and ``years`` cannot."""

MARGINAL_LIFT = 0.01
"""A model whose gain over the baseline is under 1% of the baseline's score is doubtful value."""

_READING: dict[str, str] = {
    "minutes": "ready as soon as the fixes are typed in",
    "hours": "ready today",
    "days": "ready once small fixes land",
    "weeks": "close",
    "months": "real work to do first",
    "years": "this needs a transformation, not a fix",
}
_GATE_NAMES: dict[str, str] = {"monitoring": "monitoring", "rollout": "the gradual rollout"}
_CHECK_STATUSES: tuple[CheckStatus, ...] = get_args(CheckStatus)
_CATEGORIES: tuple[Category, ...] = get_args(Category)
_ESTIMATES: tuple[Estimate, ...] = get_args(Estimate)

_L = TypeVar("_L", bound=str)


@dataclass
class Debrief:
    """What one sprint found, and the answers the debrief draws from it."""

    project: str
    spec_path: str
    started_at: str
    finished_at: str
    phases: list[Phase]
    deployed: bool
    served_url: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    """What the sprint measured; each key is absent when the sprint did not get that far:
    ``model``, ``audit``, ``load``, ``prediction_log``, ``drill``, ``approvals``,
    ``monitoring``, ``rollout`` (see docs/debrief.md)."""
    assessment: dict[str, Any] | None = None
    """The readiness assessment as a JSON-ready dict (``level``, ``name``, ``answers``...)."""

    @property
    def blockers(self) -> list[Blocker]:
        """Every blocker, in phase order, the critical-path ones first within a phase."""
        found = [b for phase in self.phases for b in phase.blockers]
        return sorted(found, key=lambda b: (PHASES.index(b.phase), not b.critical_path))

    @property
    def critical_blockers(self) -> list[Blocker]:
        """The blockers on the critical path: deployment waits for each of them."""
        return [b for b in self.blockers if b.critical_path]

    @property
    def path(self) -> Path:
        """1 (deploy more), 2 (fix the blockers, then deploy) or 3 (build the foundation).

        1 when it deployed and nothing on the critical path blocks it. 3 when a critical-path
        blocker is structural or would take years, or when the readiness level is 1 and a
        critical-path blocker is a missing capability. 2 otherwise.
        """
        if self.deployed and not self.critical_blockers:
            return 1
        if self.foundation_reason is not None:
            return 3
        return 2

    @property
    def time_to_deploy(self) -> Estimate | None:
        """The longest critical-path estimate (``None`` when nothing is on the critical path).

        The fixes are actions of different owners (a grant, a sign-off, a rewrite) and the
        sprint already found them, so they run side by side: the longest one sets the time.
        """
        critical = self.critical_blockers
        if not critical:
            return None
        return max((b.estimate for b in critical), key=ESTIMATE_ORDER.__getitem__)

    @property
    def unseen_phases(self) -> list[PhaseName]:
        """Phases that did not run (absent or every check skipped): blockers there are unknown."""
        ran = {p.name for p in self.phases if p.status != "skip"}
        return [name for name in PHASES if name not in ran]

    @property
    def critical_blocker(self) -> Blocker | None:
        """The one blocker the debrief names: a structural one first, then the longest to fix,
        then the earliest phase (it is met first)."""
        critical = self.critical_blockers
        if not critical:
            return None
        return min(
            critical,
            key=lambda b: (not b.structural, -ESTIMATE_ORDER[b.estimate], PHASES.index(b.phase)),
        )

    @property
    def not_exercised(self) -> list[str]:
        """The gates the spec declares but the sprint did not exercise (``facts.monitoring``
        and ``facts.rollout`` with nothing ``observed``): reported ``warn``, never ``pass``.

        >>> d = Debrief("x", "t.yaml", "", "", [], deployed=True,
        ...             facts={"monitoring": {"declared": {"drift": "psi"}, "observed": None,
        ...                                   "status": "warn"}})
        >>> d.not_exercised, d.verdict
        (['monitoring'], 'x deployed with nothing on the critical path: path 1, deploy more. Not exercised by the sprint: monitoring was declared, but nothing ran it.')
        """
        found = []
        for key in ("monitoring", "rollout"):
            gate = self.facts.get(key)
            if isinstance(gate, dict) and gate.get("declared") and gate.get("observed") is None:
                found.append(key)
        return found

    @property
    def verdict(self) -> str:
        """The debrief in one sentence, and a second when a declared gate was not exercised."""
        unseen = self.not_exercised
        if not unseen:
            return self._verdict
        named = " and ".join(_GATE_NAMES[key] for key in unseen)
        were = "were" if len(unseen) > 1 else "was"
        return f"{self._verdict} Not exercised by the sprint: {named} {were} declared, but " + (
            "nothing ran it." if len(unseen) == 1 else "nothing ran them."
        )

    @property
    def _verdict(self) -> str:
        critical = self.critical_blockers
        path = f"path {self.path}, {PATHS[self.path]}"
        if self.path == 1:
            where = f" at {self.served_url}" if self.served_url else ""
            return f"{self.project} deployed{where} with nothing on the critical path: {path}."
        head = f"{self.project} deployed" if self.deployed else f"{self.project} did not deploy"
        if not critical:
            return f"{head} and recorded no critical-path blocker: {path}."
        if self.foundation_reason is not None:
            return f"{head}: {self.foundation_reason}: {path}."
        count = f"{len(critical)} critical-path blocker{'s' if len(critical) > 1 else ''}"
        return f"{head}: {count}, {self.time_to_deploy} of work to clear. Path {self.path}: " + (
            f"{PATHS[self.path]}."
        )

    def questions(self) -> list[dict[str, Any]]:
        """The five debrief questions, each ``{id, question, answer, evidence: [str]}``."""
        answers: dict[str, Callable[[Debrief], tuple[str, list[str]]]] = {
            "unlimited_resources": _unlimited_resources,
            "critical_path": _critical_path,
            "how_long": _how_long,
            "fix_in_30_days": _fix_in_30_days,
            "do_ai": _do_ai,
        }
        out = []
        for qid, question in QUESTIONS:
            answer, evidence = answers[qid](self)
            out.append({"id": qid, "question": question, "answer": answer, "evidence": evidence})
        return out

    def model_lift(self) -> tuple[float, float | None] | None:
        """The model's gain over the baseline on its metric (positive = better), and that gain
        as a share of the baseline's score; ``None`` without both numbers."""
        model = self.facts.get("model") or {}
        score, base = _number(model.get("model")), _number(model.get("baseline"))
        if score is None or base is None:
            return None
        gain = score - base if model.get("metric") in HIGHER_IS_BETTER else base - score
        return gain, (gain / abs(base) if base else None)

    @property
    def leaking_inputs(self) -> list[str]:
        """The inputs the handoff audit blocked for leakage (``the model`` when it named
        none): the model's score, measured with them, says nothing of its true lift."""
        audit = self.facts.get("audit") or {}
        return list(
            dict.fromkeys(
                str(f.get("feature") or "the model")
                for f in audit.get("findings") or []
                if f.get("check") == "leakage" and f.get("severity") == "blocker"
            )
        )

    def as_dict(self) -> dict[str, Any]:
        """The ``report.json`` document."""
        return {
            "project": self.project,
            "spec_path": self.spec_path,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "deployed": self.deployed,
            "served_url": self.served_url,
            "path": self.path,
            "path_name": PATHS[self.path],
            "verdict": self.verdict,
            "not_exercised": self.not_exercised,
            "phases": [phase.as_dict() for phase in self.phases],
            "blockers": [b.as_dict() for b in self.blockers],
            "questions": self.questions(),
            "facts": self.facts,
            "assessment": self.assessment,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Debrief:
        """Read back what :meth:`as_dict` wrote (derived keys such as ``path`` are recomputed).

        >>> Debrief.from_dict({"project": "x"})
        Traceback (most recent call last):
        ...
        taxiway.errors.TaxiwayError: not a sprint report: missing 'spec_path'
          fix: re-run `taxiway sprint` to write a fresh report.json
        """
        try:
            return cls(
                project=str(data["project"]),
                spec_path=str(data["spec_path"]),
                started_at=str(data["started_at"]),
                finished_at=str(data["finished_at"]),
                phases=[_phase(p) for p in data["phases"]],
                deployed=bool(data["deployed"]),
                served_url=data.get("served_url"),
                facts=dict(data.get("facts") or {}),
                assessment=data.get("assessment"),
            )
        except KeyError as missing:
            raise _not_a_report(f"missing {missing}") from None
        except (TypeError, ValueError, AttributeError) as bad:
            raise _not_a_report(str(bad)) from None

    @property
    def foundation_reason(self) -> str | None:
        """Why the critical path needs foundation work rather than fixes (path 3), or
        ``None``."""
        critical = self.critical_blockers
        for b in critical:
            if b.structural:
                return f"'{b.title}' is structural: no amount of engineering removes it"
        for b in critical:
            if b.estimate == "years":
                return f"'{b.title}' would take years"
        level = (self.assessment or {}).get("level")
        capability = [b for b in critical if b.category == "capability"]
        if level == 1 and capability:
            return (
                f"readiness is at level 1 and '{capability[0].title}' is a capability "
                "the organization does not have yet"
            )
        return None


def _unlimited_resources(d: Debrief) -> tuple[str, list[str]]:
    critical = d.critical_blockers
    structural = [b for b in critical if b.structural]
    if d.deployed and not critical:
        return "Yes: it did deploy, within the sprint.", []
    if structural:
        return (
            f"No: {len(structural)} structural blocker(s) on the critical path would stop it "
            "whatever the budget.",
            [f"{b.phase}: {b.title}: {b.evidence}" for b in structural],
        )
    if not critical:
        return (
            "Yes, as far as the sprint saw: it recorded no critical-path blocker.",
            _unseen_evidence(d),
        )
    return (
        f"Yes: all {len(critical)} critical-path blocker(s) are solvable with budget, people "
        "or tools.",
        [f"{b.phase} ({b.category}, {b.estimate}): {b.title}" for b in critical],
    )


def _critical_path(d: Debrief) -> tuple[str, list[str]]:
    chosen = d.critical_blocker
    if chosen is None:
        if d.deployed:
            return "None: nothing on the critical path stopped the deployment.", []
        return "None recorded, yet it did not deploy.", _unseen_evidence(d)
    others = [b for b in d.critical_blockers if b is not chosen]
    kind = ", structural" if chosen.structural else ""
    answer = f"{chosen.title} ({chosen.phase}, {chosen.category}, {chosen.estimate}{kind})."
    answer += f" Fix: {_sentence(chosen.fix)}"
    if others:
        answer += f" {len(others)} other critical-path blocker(s) must be fixed too."
    return answer, [chosen.evidence, *(f"also: {b.title} ({b.estimate})" for b in others)]


def _how_long(d: Debrief) -> tuple[str, list[str]]:
    estimate = d.time_to_deploy
    if estimate is None:
        if d.deployed:
            seconds = sum(p.duration_s for p in d.phases)
            return f"Hours: it deployed within this sprint ({seconds:.0f} s of checks).", []
        return "Unknown: no critical-path blocker was recorded.", _unseen_evidence(d)
    unseen = d.unseen_phases
    longest = next(b for b in d.critical_blockers if b.estimate == estimate)
    bound = "At least " + estimate if unseen else estimate.capitalize()
    answer = (
        f"{bound}: {_READING[estimate]}. The critical-path fixes belong to different owners "
        f"and can run side by side, so the longest, '{longest.title}'"
        + (f" ({longest.who} acts)" if longest.who else "")
        + ", sets the time."
    )
    evidence = [f"{b.estimate}: {b.title}" for b in d.critical_blockers]
    return answer, evidence + _unseen_evidence(d)


def _fix_in_30_days(d: Debrief) -> tuple[str, list[str]]:
    critical = d.critical_blockers
    doable = [b for b in critical if not b.structural and b.estimate in WITHIN_30_DAYS]
    too_long = [b for b in critical if b not in doable]
    if not critical:
        later = len(d.blockers)
        if d.deployed:
            return f"Nothing blocks it; the {later} off-path blocker(s) can follow.", []
        return "Nothing recorded: rerun the sprint to find what stops it.", _unseen_evidence(d)
    evidence = [f"fix ({b.estimate}): {b.fix}" for b in doable] + [
        f"not in 30 days ({b.estimate}{', structural' if b.structural else ''}): {b.title}"
        for b in too_long
    ]
    if not too_long:
        answer = f"Fix these {len(doable)}, then rerun the sprint: {_numbered(doable)}."
        return answer, evidence + _unseen_evidence(d)
    answer = (
        f"It cannot deploy within 30 days: {len(too_long)} critical-path blocker(s) take "
        "longer (" + ", ".join(f"{b.title}: {b.estimate}" for b in too_long) + ")."
    )
    if doable:
        answer += f" Start {'it' if len(too_long) == 1 else 'them'} now; meanwhile fix the "
        answer += f"{len(doable)} that fit: {_numbered(doable)}."
    return answer, evidence


def _do_ai(d: Debrief) -> tuple[str, list[str]]:
    model = d.facts.get("model")
    lift = d.model_lift()
    evidence = []
    if model:
        score, base = (_number(model.get(k)) for k in ("model", "baseline"))
        evidence.append(
            f"{model.get('metric')}: model {_figure(score)} against the baseline's {_figure(base)}"
        )
    reason = d.foundation_reason
    if reason is not None:
        return f"Not yet: {reason}. Build the foundation first.", evidence
    if model is None:
        return (
            "Not known yet: no model was trained, so nothing shows it beats the baseline. "
            "Fix the blockers and rerun the sprint.",
            _unseen_evidence(d),
        )
    leaking = d.leaking_inputs
    if leaking:
        named = ", ".join(x for x in leaking if x != "the model") or "an input"
        evidence.append(f"the handoff audit blocked the model for leakage: {named}")
        return (
            f"Not known yet: the model's score was measured with {named} leaking the answer "
            "into training, which the handoff audit blocked, so its true lift over the "
            "baseline is unknown until the leak is removed and the model is retrained.",
            evidence,
        )
    beats = model.get("beats_baseline")
    if not (beats if isinstance(beats, bool) else lift is not None and lift[0] > 0):
        return (
            "No, not with this model: it does not beat the baseline. Ship the baseline rule "
            "(it is already the fallback) or find better data before spending on AI.",
            evidence,
        )
    if lift is not None and lift[1] is not None and lift[1] < MARGINAL_LIFT:
        return (
            f"Doubtful: the model beats the baseline by only {lift[1]:.1%}; the baseline rule "
            "may be worth more than the model costs to run.",
            evidence,
        )
    gain = f" by {lift[1]:.0%}" if lift is not None and lift[1] is not None else ""
    if d.path == 1:
        return f"Yes: the model beats the baseline{gain} and it deployed.", evidence
    return f"Yes, once the critical-path blockers are fixed: it beats the baseline{gain}.", evidence


def _unseen_evidence(d: Debrief) -> list[str]:
    unseen = d.unseen_phases
    if not unseen:
        return []
    return [f"did not run, so its blockers are unknown: {', '.join(unseen)}"]


def _numbered(found: list[Blocker]) -> str:
    """The fixes as one list: ``(1) grant read access; (2) add the index``."""
    return "; ".join(f"({i}) {b.fix.strip().rstrip('.;')}" for i, b in enumerate(found, 1))


def _sentence(text: str) -> str:
    """``text`` ending in a full stop, so a fix reads as one sentence among others."""
    text = text.strip()
    return text if text.endswith((".", "!", "?", ";")) else text + "."


def _figure(value: float | None) -> str:
    """A score to four significant digits; ``-`` when there is none."""
    return "-" if value is None else f"{value:.4g}"


def _number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (a bool is not), else ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _literal(value: Any, allowed: tuple[_L, ...], what: str) -> _L:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return cast(_L, value)


def _phase(data: Mapping[str, Any]) -> Phase:
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


def _not_a_report(why: str) -> TaxiwayError:
    return TaxiwayError(
        f"not a sprint report: {why}", fix="re-run `taxiway sprint` to write a fresh report.json"
    )
