"""The debrief: a sprint's evidence, its five questions answered, the path and the verdict.

A debrief holds what the sprint did (its phases and checks, whether it deployed) and what it
measured (``facts``), plus the readiness assessment when one was made. Everything it says is
derived from those: the blockers, the path, the answers, the one-sentence verdict. It is plain
data, so ``report.json`` can be read back with :meth:`Debrief.from_dict` and re-rendered.

The five answers are drawn in :mod:`taxiway.sprint.debrief_answers` (with ``QUESTIONS``,
``WITHIN_30_DAYS`` and ``MARGINAL_LIFT``, importable from here too), and ``report.json`` is read
back through :mod:`taxiway.sprint.debrief_reading`.

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

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from taxiway.models.metrics import HIGHER_IS_BETTER
from taxiway.sprint.debrief_answers import (
    MARGINAL_LIFT,
    QUESTIONS,
    WITHIN_30_DAYS,
    answer_questions,
    as_number,
)
from taxiway.sprint.debrief_reading import not_a_report, phase_from_dict
from taxiway.sprint.outcome import (
    ESTIMATE_ORDER,
    PHASES,
    Blocker,
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
    "higher_is_better",
]

Path = Literal[1, 2, 3]
PATHS: dict[int, str] = {
    1: "deploy more",
    2: "fix the blockers, then deploy",
    3: "build the foundation first",
}
"""What each path means, in the words the report uses."""

_GATE_NAMES: dict[str, str] = {"monitoring": "monitoring", "rollout": "the gradual rollout"}
_RANKING = re.compile(r"(recall|ndcg|map|hit_rate)@[1-9][0-9]*")


def higher_is_better(metric: Any) -> bool:
    """Whether a larger ``metric`` is better: ROC AUC, PR AUC and a recommender's ranking
    metrics (``recall@10``, ``ndcg@10``, ``map@10``, ``hit_rate@10``); losses and errors are
    lower-is-better.

    >>> higher_is_better("recall@10"), higher_is_better("roc_auc"), higher_is_better("log_loss")
    (True, True, False)
    """
    return metric in HIGHER_IS_BETTER or bool(_RANKING.fullmatch(str(metric)))


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
            rolling = self.facts.get("rollout_state") or {}
            if rolling.get("state") == "running":
                # a recommender's rollout randomises users (rollout.unit is its user column)
                units = "users" if self.facts.get("recommend") else "units"
                where += (
                    f", rolling out to {rolling.get('share', 0):g}% of {units} (`taxiway "
                    "rollout status` says what the next step needs)"
                )
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
        return answer_questions(self)

    def model_lift(self) -> tuple[float, float | None] | None:
        """The model's gain over the baseline on its metric (positive = better), and that gain
        as a share of the baseline's score; ``None`` without both numbers."""
        model = self.facts.get("model") or {}
        score, base = as_number(model.get("model")), as_number(model.get("baseline"))
        if score is None or base is None:
            return None
        gain = score - base if higher_is_better(model.get("metric")) else base - score
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
                phases=[phase_from_dict(p) for p in data["phases"]],
                deployed=bool(data["deployed"]),
                served_url=data.get("served_url"),
                facts=dict(data.get("facts") or {}),
                assessment=data.get("assessment"),
            )
        except KeyError as missing:
            raise not_a_report(f"missing {missing}") from None
        except (TypeError, ValueError, AttributeError) as bad:
            raise not_a_report(str(bad)) from None

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
