"""Where the readiness answers come from: what a sprint observed (:func:`observe`), what the
spec declares (:func:`spec_declarations`) and the team's answers file (:func:`load_answers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taxiway.errors import SpecError, SpecIssue
from taxiway.spec.project import Project
from taxiway.spec.yaml import did_you_mean, parse_yaml
from taxiway.sprint.questions import _BY_ID, _FACT_EVIDENCE, FACTS

_IN_SPEC = "declared in taxiway.yaml, not seen working"


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
            f"{spec.monitoring.threshold_text}",
        )
    if spec.rollout is not None:
        steps = ", ".join(f"{step:g}%" for step in spec.rollout.steps)
        found["metric_gated_rollout"] = (
            True,
            f"{_IN_SPEC}: a rollout against {spec.rollout.control} in steps of {steps}"
            + (f", gated on {spec.rollout.metric.name}" if spec.rollout.metric else ""),
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
