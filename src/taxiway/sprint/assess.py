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
from pathlib import Path
from typing import Any, Literal, TypeAlias, get_args

from taxiway.errors import SpecError, SpecIssue
from taxiway.spec.project import Project
from taxiway.spec.yaml import did_you_mean, parse_yaml

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

Area = Literal[
    "real_time_infrastructure",
    "data_quality",
    "feature_engineering",
    "ml_ready_architecture",
    "observability",
]
AREAS: tuple[Area, ...] = get_args(Area)
AnswerSource = Literal["observed", "declared", "unanswered"]
SOURCES: tuple[AnswerSource, ...] = get_args(AnswerSource)
AnswerBy = Literal["sprint", "team", "spec"]
"""Who gave an answer: a sprint observed it, the team declared it, or the spec declares it."""
Fact: TypeAlias = bool | tuple[bool, str]
"""A sprint fact: what it saw, alone or with what shows it: ``(False, "7 of 10 logged")``."""


@dataclass(frozen=True)
class Question:
    """One yes/no question; ``how_observed`` says how taxiway can answer it without asking."""

    id: str
    area: Area
    text: str
    how_observed: str | None


QUESTIONS: tuple[Question, ...] = (
    Question(
        "online_features",
        "real_time_infrastructure",
        "Are features read from an online store when a prediction is made, instead of being "
        "computed by a batch job beforehand?",
        "the sprint materializes the online store and sees the service read it (a spec that "
        "declares features and serving is a declaration)",
    ),
    Question(
        "latency_budget",
        "real_time_infrastructure",
        "Does the prediction service answer within an agreed latency budget (p99) under load?",
        "the sprint's load test: the p99 its clients measured against serving.latency_budget_ms",
    ),
    Question(
        "graceful_fallback",
        "real_time_infrastructure",
        "When the model or a feature store is down or slow, does the service still answer with "
        "a fallback, marked degraded, within the budget?",
        "the sprint's fault drill (a serving section is a declaration)",
    ),
    Question(
        "contracts_enforced",
        "data_quality",
        "Does every source the model reads have a data contract that is checked before its rows "
        "reach training or serving?",
        "the sprint checks every source's rows against its contract (a contract named in "
        "taxiway.yaml is a declaration)",
    ),
    Question(
        "contracts_passing",
        "data_quality",
        "Is every source reachable today, and does its data pass its contract?",
        "the sprint reads every source and checks its contract",
    ),
    Question(
        "drift_alerts",
        "data_quality",
        "Does an alert fire when the model's inputs or outputs drift past an agreed threshold?",
        "only the monitor, once it runs in the sprint (a monitoring section is a declaration)",
    ),
    Question(
        "shared_definitions",
        "feature_engineering",
        "Are the same feature definitions computed for training and for serving, so no "
        "feature is implemented twice?",
        "only the sprint: the skew check passes on a materialized online store (level 4 evidence)",
    ),
    Question(
        "handoff_audit",
        "feature_engineering",
        "Does each model pass a handoff audit before it is served: no leakage, every feature "
        "available at prediction time, within the latency budget?",
        "the sprint runs the handoff audit on the registered version",
    ),
    Question(
        "skew_checked",
        "feature_engineering",
        "Are the feature values the live service computes compared with the values the model "
        "was trained on, before each release?",
        "the sprint's training/serving skew check",
    ),
    Question(
        "versioned_models",
        "ml_ready_architecture",
        "Is every model version registered with its artifacts and metrics, so any version can "
        "be restored or rolled back to?",
        "the sprint registers a version with lineage (a model section is a declaration)",
    ),
    Question(
        "metric_gated_rollout",
        "ml_ready_architecture",
        "Are new models released to a growing share of traffic, each step gated by measured "
        "outcomes, with automatic rollback?",
        "only the rollout controller, once it runs in the sprint (level 4 evidence; a rollout "
        "section is a declaration)",
    ),
    Question(
        "unattended",
        "ml_ready_architecture",
        "Can a model go from its spec to a served, monitored service with no manual step but "
        "the sign-offs?",
        "only the sprint: every phase passed, monitoring and rollout exercised, with no manual "
        "step but the sign-offs (level 5 evidence)",
    ),
    Question(
        "lineage_recorded",
        "observability",
        "Can each model version be traced to its training data, feature definitions, sources "
        "and contract versions?",
        "the sprint finds lineage on the registered version",
    ),
    Question(
        "predictions_logged",
        "observability",
        "Is every answered prediction kept in a durable log with its inputs and model version?",
        "the sprint counts its load test's records in the log (a serving section is a declaration)",
    ),
    Question(
        "metrics_exposed",
        "observability",
        "Does the service publish live metrics (latency, errors, degraded answers) for a "
        "monitoring system to scrape?",
        "the sprint reads the service's /metrics",
    ),
)
_BY_ID: dict[str, Question] = {question.id: question for question in QUESTIONS}


@dataclass(frozen=True)
class Level:
    """A maturity level: what it means, and what teams at that level typically achieve."""

    number: int
    name: str
    meaning: str
    success_rate: str
    time_per_model: str


LEVELS: dict[int, Level] = {
    1: Level(
        1,
        "siloed",
        "Data scientists build a model alone and hand it over finished; engineering then "
        "rebuilds it for production, if it ever gets there.",
        "0-10% of models reach production",
        "12-24 months or more (or never)",
    ),
    2: Level(
        2,
        "coordinated",
        "The teams talk and plan together, but the work still moves in sequence, science "
        "first and engineering after: models can ship, at a cost that does not scale.",
        "20-30% of models reach production",
        "6-12 months",
    ),
    3: Level(
        3,
        "integrated",
        "Contracts, features, serving and monitoring are shared infrastructure that both teams "
        "own; models start to return more than they cost.",
        "60-70% of models reach production",
        "3-6 months",
    ),
    4: Level(
        4,
        "collaborative",
        "Cross-functional squads on one toolset: the same feature definitions serve training "
        "and production, and releases are rolled out step by step, gated by measured outcomes.",
        "80-90% of models reach production",
        "weeks",
    ),
    5: Level(
        5,
        "self-service",
        "A model goes from its spec to production with no manual step but the sign-offs; the "
        "platform does everything else.",
        "about 100% of approved models deploy",
        "days",
    ),
}


# the evidence each level above 3 needs, observed by a sprint (never declared)
_LEVEL_EVIDENCE: dict[int, tuple[str, ...]] = {
    4: ("shared_definitions", "metric_gated_rollout"),
    5: ("unattended",),
}

# fact -> (question, evidence when true, evidence when false)
_FACT_EVIDENCE: dict[str, tuple[str, str, str]] = {
    "contracts_checked": (
        "contracts_enforced",
        "observed by the sprint: every source's rows were checked against its contract",
        "observed by the sprint: a source was read without a contract check",
    ),
    "contracts_passed": (
        "contracts_passing",
        "observed by the sprint: every source was reachable and its data passed its contract in full",
        "observed by the sprint: a source was unreachable, or its data failed a rule of its contract",
    ),
    "online_store_used": (
        "online_features",
        "observed by the sprint: the online store was materialized and the service read it",
        "observed by the sprint: the service did not serve from a materialized online store",
    ),
    "lineage_recorded": (
        "lineage_recorded",
        "observed by the sprint: the registered version has lineage back to its sources",
        "observed by the sprint: the registered version has no lineage",
    ),
    "skew_checked": (
        "skew_checked",
        "observed by the sprint: the training/serving skew check passed",
        "observed by the sprint: the training/serving skew check failed or could not run",
    ),
    "audit_passed": (
        "handoff_audit",
        "observed by the sprint: the handoff audit passed",
        "observed by the sprint: the handoff audit found a blocker",
    ),
    "latency_within_budget": (
        "latency_budget",
        "observed by the sprint: the load test's p99, as its clients measured it, was within "
        "the latency budget",
        "observed by the sprint: the load test's p99, as its clients measured it, exceeded the "
        "latency budget (or requests failed)",
    ),
    "fallback_verified": (
        "graceful_fallback",
        "observed by the sprint: in the fault drill, degraded answers came within the budget",
        "observed by the sprint: in the fault drill, the service failed or answered too late",
    ),
    "prediction_log": (
        "predictions_logged",
        "observed by the sprint: the durable log holds a record for every answer of its load test",
        "observed by the sprint: answers of its load test are missing from the durable log, "
        "or the log could not be written",
    ),
    "metrics_exposed": (
        "metrics_exposed",
        "observed by the sprint: the service served /metrics",
        "observed by the sprint: the service did not serve /metrics",
    ),
    "monitoring_exercised": (
        "drift_alerts",
        "observed by the sprint: the monitor watched the service and its drift alert worked",
        "observed by the sprint: the monitor ran, and its drift alert did not work",
    ),
    "shared_definitions": (
        "shared_definitions",
        "observed by the sprint: the features served from the materialized online store "
        "matched the offline ones computed from the same definitions",
        "observed by the sprint: offline and online features were not shown to match on a "
        "materialized store",
    ),
    "metric_gated_rollout": (
        "metric_gated_rollout",
        "observed by the sprint: a rollout gated by measured outcomes was used",
        "observed by the sprint: the rollout controller ran, and did not gate on outcomes",
    ),
    "unattended": (
        "unattended",
        "observed by the sprint: it deployed, monitored, with no manual step but the sign-offs",
        "observed by the sprint: a phase failed or needed a manual step besides the sign-offs",
    ),
}

FACTS: tuple[str, ...] = tuple(_FACT_EVIDENCE)
"""The facts a sprint may pass to :func:`observe`, each a :data:`Fact`, each optional."""

_IN_SPEC = "declared in taxiway.yaml, not seen working"


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


SOURCE_TITLES: dict[str, str] = {
    "observed": "Observed: taxiway saw it happen",
    "declared": "Declared: the team or the spec says so, not seen working",
    "unanswered": "Unanswered: counted as no",
}
"""The heading each kind of answer is shown under, in every form of the report."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def observe(facts: Mapping[str, Any] | None = None) -> dict[str, tuple[bool, str]]:
    """The answers a sprint observed: question id → (yes, evidence).

    ``facts`` (see :data:`FACTS`) is what the sprint saw, each a :data:`Fact`: a bool, or a
    bool with what shows it, which is added to the evidence. Nothing else is an observation
    (the spec's sections are :func:`spec_declarations`). Raise ``ValueError`` for a fact that
    is unknown or not a bool: a caller's bug.

    >>> observe({"prediction_log": (True, "812 records for 812 answers")})
    {'predictions_logged': (True, 'observed by the sprint: the durable log holds a record for every answer of its load test (812 records for 812 answers)')}
    """
    observed: dict[str, tuple[bool, str]] = {}
    for fact, given in (facts or {}).items():
        if fact not in _FACT_EVIDENCE:
            raise ValueError(f"unknown sprint fact {fact!r}; expected one of {', '.join(FACTS)}")
        value, detail = given if isinstance(given, tuple) and len(given) == 2 else (given, "")
        if not isinstance(value, bool) or not isinstance(detail, str):
            raise ValueError(f"sprint fact {fact!r} must be a bool or (bool, str), got {given!r}")
        question, when_true, when_false = _FACT_EVIDENCE[fact]
        evidence = when_true if value else when_false
        observed[question] = (value, f"{evidence} ({detail})" if detail else evidence)
        if fact == "lineage_recorded" and value:
            observed["versioned_models"] = (
                True,
                "observed by the sprint: a version was registered, with lineage",
            )
    return observed


def spec_declarations(project: Project) -> dict[str, tuple[bool, str]]:
    """What the spec declares: question id → (yes, evidence), each a ``declared`` answer.

    A section says what should happen, not that it does. A missing section says nothing (the
    team may do the work elsewhere), except a source without a contract: taxiway would read
    its rows unchecked, so the spec itself declares a no.
    """
    spec = project.spec
    found: dict[str, tuple[bool, str]] = {}
    if spec.sources:
        bare = sorted(name for name, source in spec.sources.items() if source.contract is None)
        if bare:
            found["contracts_enforced"] = (
                False,
                f"taxiway.yaml reads {', '.join(bare)} without a contract, so those rows reach "
                "the model unchecked",
            )
        else:
            found["contracts_enforced"] = (
                True,
                f"{_IN_SPEC}: every source ({', '.join(sorted(spec.sources))}) names a "
                "contract, to be checked on every read",
            )
    if spec.features and (spec.online_store is not None or spec.serving is not None):
        store = spec.online_store.kind if spec.online_store is not None else "sqlite by default"
        found["online_features"] = (
            True,
            f"{_IN_SPEC}: features and serving are declared, so the service would read the "
            f"online store ({store})",
        )
    if spec.serving is not None:
        fallback = spec.serving.fallback
        chain = [fallback] if isinstance(fallback, str) else list(fallback or [])
        found["graceful_fallback"] = (
            True,
            f"{_IN_SPEC}: serving falls back to {', then '.join([*chain, 'the training prior'])}",
        )
        found["predictions_logged"] = (
            True,
            f"{_IN_SPEC}: the service is to write every answered prediction to its log",
        )
    if spec.monitoring is not None:
        found["drift_alerts"] = (
            True,
            f"{_IN_SPEC}: monitoring is to alert on {spec.monitoring.drift} drift above "
            f"{spec.monitoring.alert_threshold:g}",
        )
    if spec.rollout is not None:
        steps = ", ".join(f"{step:g}%" for step in spec.rollout.steps)
        found["metric_gated_rollout"] = (
            True,
            f"{_IN_SPEC}: a rollout against {spec.rollout.control} in steps of {steps}"
            + (f", gated on {spec.rollout.metric}" if spec.rollout.metric else ""),
        )
    if spec.model is not None:
        registry = spec.registry.kind if spec.registry is not None else "sqlite by default"
        found["versioned_models"] = (
            True,
            f"{_IN_SPEC}: each trained version is to be registered ({registry})",
        )
    return found


def load_answers(path: str | Path) -> dict[str, bool]:
    """Read an answers file, one ``question_id: yes|no|true|false`` a line.

    Raise :class:`~taxiway.errors.SpecError` naming the file, the line and the fix for bad
    YAML, an unknown id or an answer that is not yes or no.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            SpecIssue(file, None, None, "", "answers file not found"),
            fix="give the path of a YAML file of `question_id: yes|no` lines "
            "(see docs/readiness.md)",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(
            SpecIssue(file, None, None, "", f"cannot read the answers file: {error}")
        ) from None
    document = parse_yaml(text, file)
    if document.data is None:
        return {}
    if not isinstance(document.data, dict):
        raise SpecError(
            SpecIssue(file, 1, 1, "", "the answers file must be a mapping of question ids"),
            fix="write one `question_id: yes` or `question_id: no` a line",
        )
    valid = ", ".join(_BY_ID)
    issues: list[SpecIssue] = []
    answers: dict[str, bool] = {}
    for key, value in document.data.items():
        if key not in _BY_ID:
            issue = document.issue((key,), f"unknown question `{key}`")
            issues.append(
                SpecIssue(
                    issue.file,
                    issue.line,
                    issue.column,
                    issue.path,
                    issue.message,
                    expected=f"one of {valid}",
                    suggestion=did_you_mean(key, _BY_ID),
                )
            )
            continue
        answer = _as_bool(value)
        if answer is None:
            issues.append(
                document.issue(
                    (key,),
                    f"expected yes or no, got {value!r}",
                    expected="yes, no, true or false",
                    suggestion="answer the question, or delete the line to be asked it",
                )
            )
            continue
        answers[key] = answer
    if issues:
        raise SpecError(
            issues, fix="write one `question_id: yes|no` a line; docs/readiness.md lists them"
        )
    return answers


def _as_bool(value: object) -> bool | None:
    """True or False for a YAML boolean or yes/no/true/false in any case; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"yes": True, "true": True, "no": False, "false": False}.get(value.lower())
    return None


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
