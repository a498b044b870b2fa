"""The answers to the debrief's five questions, each from the debrief's evidence.

Each answer is ``(answer, evidence)``: one paragraph, and the lines of evidence it rests on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taxiway.sprint.outcome import Blocker

if TYPE_CHECKING:  # the answers read a Debrief; debrief.py imports this module
    from taxiway.sprint.debrief import Debrief

__all__ = ["MARGINAL_LIFT", "QUESTIONS", "WITHIN_30_DAYS", "answer_questions", "as_number"]

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


def answer_questions(d: Debrief) -> list[dict[str, Any]]:
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
        answer, evidence = answers[qid](d)
        out.append({"id": qid, "question": question, "answer": answer, "evidence": evidence})
    return out


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
        score, base = (as_number(model.get(k)) for k in ("model", "baseline"))
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


def as_number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (a bool is not), else ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
