"""The readiness catalogue: the fifteen questions, the five levels, and the facts a sprint may
observe with the evidence each one's answer quotes. Data only: :mod:`taxiway.sprint.answers`
finds the answers and :mod:`taxiway.sprint.assess` scores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias, get_args

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
        "observed by the sprint: the monitor watched the service and the alert of its drill "
        "fired (a classifier's drift drill, a recommender's fallback drill), only there",
        "observed by the sprint: the monitor ran, and the alert of its drill did not work",
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


SOURCE_TITLES: dict[str, str] = {
    "observed": "Observed: taxiway saw it happen",
    "declared": "Declared: the team or the spec says so, not seen working",
    "unanswered": "Unanswered: counted as no",
}
"""The heading each kind of answer is shown under, in every form of the report."""
