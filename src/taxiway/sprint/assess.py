"""The readiness assessment: fifteen yes/no questions scored to a maturity level from 1 to 5.

Three questions in each of five areas. Each answer is one of three kinds:

- ``observed``: taxiway saw it happen in a sprint (:func:`observe`, from the sprint's facts);
- ``declared``: the team says so, in its answers file or at the prompt (:func:`load_answers`),
  or the spec declares it (:func:`spec_declarations`);
- ``unanswered``: nobody answered it; it counts as no.

A spec section is a plan, never an observation: it is ``declared``, and a team's explicit
answer beats it, so a team's "no" stays no. An observation beats both, and the disagreement
is kept in the evidence. :func:`assess` counts the yes answers of every kind: 0-5 is level 1,
6-10 level 2, 11-15 level 3. Levels 4 and 5 are never reached by counting: they need their
evidence observed.

>>> from pathlib import Path
>>> from taxiway.spec.loader import load_spec_text
>>> from taxiway.spec.project import Project
>>> project = Project(load_spec_text("name: demo\\nmonitoring: {drift: psi}"), Path("taxiway.yaml"))
>>> in_spec = spec_declarations(project)
>>> sorted(in_spec)
['drift_alerts']
>>> observed = observe({"metrics_exposed": True, "prediction_log": (False, "0 of 12 logged")})
>>> result = assess(observed, {"drift_alerts": False, "contracts_enforced": True}, in_spec)
>>> result.level, result.name, result.yes_count
(1, 'siloed', 2)
>>> for a in result.answers:
...     if a.yes is not None:
...         print(a.question.id, a.source, a.by, a.yes)
contracts_enforced declared team True
drift_alerts declared team False
predictions_logged observed sprint False
metrics_exposed observed sprint True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taxiway.errors import SpecError
from taxiway.sprint.answers import load_answers, observe, spec_declarations
from taxiway.sprint.questions import (
    _BY_ID,
    _LEVEL_EVIDENCE,
    AREAS,
    FACTS,
    LEVELS,
    QUESTIONS,
    SOURCE_TITLES,
    SOURCES,
    AnswerBy,
    AnswerSource,
    Area,
    Fact,
    Level,
    Question,
)

__all__ = [
    "AREAS",
    "FACTS",
    "LEVELS",
    "QUESTIONS",
    "SOURCES",
    "SOURCE_TITLES",
    "Answer",
    "AnswerBy",
    "AnswerSource",
    "Area",
    "Assessment",
    "Fact",
    "Level",
    "Question",
    "assess",
    "load_answers",
    "observe",
    "spec_declarations",
]


@dataclass(frozen=True)
class Answer:
    """The answer to one question, its kind (``source``), who gave it (``by``) and why."""

    question: Question
    yes: bool | None
    source: AnswerSource
    evidence: str
    by: AnswerBy | None = None


@dataclass
class Assessment:
    """Every answer, the yes count, the level reached and what the next level needs."""

    answers: list[Answer]
    yes_count: int
    level: int
    name: str
    meaning: str
    success_rate: str
    time_per_model: str
    level_notes: list[str]

    def of(self, source: AnswerSource) -> list[Answer]:
        """The answers of one kind, in question order."""
        return [answer for answer in self.answers if answer.source == source]

    def counts(self) -> dict[str, int]:
        """How many answers of each kind: ``observed``, ``declared``, ``unanswered``."""
        return {source: len(self.of(source)) for source in SOURCES}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the level, its figures, the notes, the count of each kind of
        answer and every answer (``source`` is its kind, ``by`` who gave it)."""
        return {
            "level": self.level,
            "name": self.name,
            "yes_count": self.yes_count,
            "meaning": self.meaning,
            "success_rate": self.success_rate,
            "time_per_model": self.time_per_model,
            "level_notes": list(self.level_notes),
            "counts": self.counts(),
            "answers": [
                {
                    "id": answer.question.id,
                    "area": answer.question.area,
                    "text": answer.question.text,
                    "yes": answer.yes,
                    "source": answer.source,
                    "by": answer.by,
                    "evidence": answer.evidence,
                }
                for answer in self.answers
            ],
        }

    def markdown(self) -> str:
        """A Markdown section: the level, its meaning, and the answers of each kind apart."""
        counts = self.counts()
        lines = [
            f"## Readiness: level {self.level} ({self.name})",
            "",
            self.meaning,
            "",
            f"- yes answers: {self.yes_count} of {len(self.answers)} "
            f"({counts['observed']} observed by taxiway, {counts['declared']} declared by the "
            f"team or the spec, {counts['unanswered']} unanswered and counted as no)",
            f"- typical success rate at this level: {self.success_rate}",
            f"- typical time per model: {self.time_per_model}",
            "",
        ]
        if self.level_notes:
            lines += ["Next level:", "", *(f"- {note}" for note in self.level_notes), ""]
        for source in SOURCES:
            lines += [f"### {SOURCE_TITLES[source]}", ""]
            answers = self.of(source)
            if not answers:
                lines += ["none", ""]
                continue
            lines += ["| area | question | answer | by | evidence |", "|---|---|---|---|---|"]
            for answer in answers:
                cells = (
                    answer.question.area.replace("_", " "),
                    f"`{answer.question.id}`: {answer.question.text}",
                    {True: "yes", False: "no", None: "-"}[answer.yes],
                    answer.by or "-",
                    answer.evidence,
                )
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
            lines.append("")
        return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def assess(
    observed: Mapping[str, tuple[bool, str]],
    declared: Mapping[str, bool],
    in_spec: Mapping[str, tuple[bool, str]] | None = None,
    unseen: Mapping[str, str] | None = None,
) -> Assessment:
    """Merge the answers and score them to a level.

    ``observed`` is what a sprint saw (:func:`observe`), ``declared`` the team's answers
    (:func:`load_answers`), ``in_spec`` what the spec declares (:func:`spec_declarations`).
    Each question takes the first of: the observation, the team's answer, the spec's; the
    others' disagreement is kept in the evidence. ``unseen`` says why the sprint could not
    observe a question (question id → why): an unanswered one keeps that as its evidence. So a spec section never overrides a team's
    "no", and is never ``observed``.

    Levels 1-3 follow the yes count (0-5, 6-10, 11-15). Level 4 also needs
    ``shared_definitions`` and ``metric_gated_rollout`` observed yes, and level 5 adds
    ``unattended``: a declared yes counts toward the total, never toward levels 4 and 5.

    >>> everything = {q.id: True for q in QUESTIONS}
    >>> assess({}, everything).level
    3
    >>> assess({q: (True, "seen") for q in everything}, {}).level
    5
    """
    in_spec = in_spec or {}
    unknown = sorted((set(observed) | set(declared) | set(in_spec)) - set(_BY_ID))
    if unknown:
        raise SpecError(
            f"unknown readiness question {', '.join(unknown)}",
            fix=f"use one of {', '.join(_BY_ID)}",
        )
    answers = [
        _answer(
            q, observed.get(q.id), declared.get(q.id), in_spec.get(q.id), (unseen or {}).get(q.id)
        )
        for q in QUESTIONS
    ]
    yes_count = sum(1 for answer in answers if answer.yes)
    level = 1 if yes_count <= 5 else 2 if yes_count <= 10 else 3
    by_id = {answer.question.id: answer for answer in answers}
    for higher, needed in sorted(_LEVEL_EVIDENCE.items()):
        if level == higher - 1 and all(_seen_yes(by_id[q]) for q in needed):
            level = higher
    found = LEVELS[level]
    return Assessment(
        answers=answers,
        yes_count=yes_count,
        level=level,
        name=found.name,
        meaning=found.meaning,
        success_rate=found.success_rate,
        time_per_model=found.time_per_model,
        level_notes=_next_level_notes(level, yes_count, by_id),
    )


def _seen_yes(answer: Answer) -> bool:
    return answer.source == "observed" and answer.yes is True


def _answer(
    question: Question,
    seen: tuple[bool, str] | None,
    said: bool | None,
    planned: tuple[bool, str] | None,
    why_unseen: str | None = None,
) -> Answer:
    if seen is not None:
        yes, evidence = seen
        if said is not None and said != yes:
            evidence += f" (the team declared {_word(said)}; the observation wins)"
        return Answer(question, yes, "observed", evidence, "sprint")
    if said is not None:
        evidence = "declared by the team, not observed"
        if planned is not None and planned[0] != said:
            evidence += f" (taxiway.yaml declares {_word(planned[0])}; the team's answer stands)"
        return Answer(question, said, "declared", evidence, "team")
    if planned is not None:
        return Answer(question, planned[0], "declared", planned[1], "spec")
    if why_unseen:
        return Answer(question, None, "unanswered", f"not observed: {why_unseen}; counts as no")
    return Answer(question, None, "unanswered", "neither observed nor answered: counts as no")


def _word(yes: bool) -> str:
    return "yes" if yes else "no"


def _next_level_notes(level: int, yes_count: int, by_id: Mapping[str, Answer]) -> list[str]:
    """What the next level needs, in the user's words: below level 3, the yes answers still
    missing (and, for later, the evidence levels 4 and 5 need observed); at 3 and 4, the
    evidence of the next level that no sprint has observed yet, and why."""
    if level == 5:
        return ["level 5 is the top: nothing more is needed"]
    following = LEVELS[level + 1]
    if level < 3:
        threshold = 6 if level == 1 else 11
        notes = [
            f"level {following.number} ({following.name}) needs {threshold} yes answers: "
            f"{threshold - yes_count} more"
        ]
        missing = [q for q, a in by_id.items() if a.source == "unanswered"]
        if missing:
            notes.append(f"unanswered, so counted as no: {', '.join(missing)}")
        unseen = [q for n in (4, 5) for q in _LEVEL_EVIDENCE[n] if not _seen_yes(by_id[q])]
        if unseen:
            notes.append(f"levels 4 and 5 will need, observed by a sprint: {', '.join(unseen)}")
        return notes
    notes = []
    for question in _LEVEL_EVIDENCE[level + 1]:
        answer = by_id[question]
        if _seen_yes(answer):
            continue
        if answer.source == "declared" and answer.yes:
            why = f"declared yes by the {answer.by}, but only an observation counts"
        elif answer.source == "observed":
            why = "the sprint observed no"
        else:
            why = "not observed by a sprint"
        notes.append(
            f"level {following.number} ({following.name}) needs `{question}` observed: {why}"
        )
    return notes
