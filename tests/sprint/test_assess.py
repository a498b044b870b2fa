"""The readiness assessment: observed, declared (team, then spec) and unanswered answers, a
level from the count, levels 4 and 5 only on observed evidence."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taxiway.cli.app import main
from taxiway.errors import SpecError
from taxiway.spec.loader import load_spec_text
from taxiway.spec.project import Project
from taxiway.sprint.assess import (
    AREAS,
    FACTS,
    LEVELS,
    QUESTIONS,
    assess,
    load_answers,
    observe,
    spec_declarations,
)

RETAIL = Path(__file__).resolve().parents[2] / "examples" / "retail" / "taxiway.yaml"
IDS = [question.id for question in QUESTIONS]
LEVEL_EVIDENCE = ("shared_definitions", "metric_gated_rollout", "unattended")


def project_of(text: str) -> Project:
    return Project(load_spec_text(textwrap.dedent(text)), Path("/srv/demo/taxiway.yaml"))


def declared_yes(count: int) -> dict[str, bool]:
    """The first ``count`` questions declared yes, the rest declared no."""
    return {qid: index < count for index, qid in enumerate(IDS)}


# ------------------------------------------------------------------------ questions and levels


def test_fifteen_questions_three_per_area_with_unique_ids() -> None:
    assert len(QUESTIONS) == 15
    assert len(set(IDS)) == 15
    for area in AREAS:
        assert sum(1 for q in QUESTIONS if q.area == area) == 3, area


def test_each_level_carries_its_figures_from_the_seed() -> None:
    assert [LEVELS[n].name for n in range(1, 6)] == [
        "siloed",
        "coordinated",
        "integrated",
        "collaborative",
        "self-service",
    ]
    assert LEVELS[1].success_rate.startswith("0-10%")
    assert LEVELS[3].success_rate.startswith("60-70%")
    assert LEVELS[4].time_per_model == "weeks"
    assert LEVELS[5].time_per_model == "days"


@pytest.mark.parametrize(("count", "level"), [(0, 1), (5, 1), (6, 2), (10, 2), (11, 3), (15, 3)])
def test_the_yes_count_sets_levels_one_to_three_at_the_boundaries(count: int, level: int) -> None:
    result = assess({}, declared_yes(count))
    assert (result.yes_count, result.level) == (count, level)
    assert result.name == LEVELS[level].name
    assert result.success_rate == LEVELS[level].success_rate


answer_choice = st.sampled_from([None, True, False])


@given(
    seen=st.fixed_dictionaries(dict.fromkeys(IDS, answer_choice)),
    said=st.fixed_dictionaries(dict.fromkeys(IDS, answer_choice)),
    planned=st.fixed_dictionaries(dict.fromkeys(IDS, answer_choice)),
)
def test_any_answers_score_by_the_count_rule_and_seen_evidence(
    seen: dict[str, bool | None], said: dict[str, bool | None], planned: dict[str, bool | None]
) -> None:
    observed = {qid: (yes, "seen") for qid, yes in seen.items() if yes is not None}
    declared = {qid: yes for qid, yes in said.items() if yes is not None}
    in_spec = {qid: (yes, "in spec") for qid, yes in planned.items() if yes is not None}
    result = assess(observed, declared, in_spec)

    # the observation first, then the team's answer, then the spec's; none counts as no
    effective: dict[str, bool] = {}
    for qid in IDS:
        first = next((x for x in (seen[qid], said[qid], planned[qid]) if x is not None), None)
        effective[qid] = bool(first)
    count = sum(effective.values())
    expected = 1 if count <= 5 else 2 if count <= 10 else 3
    if expected == 3 and seen["shared_definitions"] and seen["metric_gated_rollout"]:
        expected = 5 if seen["unattended"] else 4
    assert result.yes_count == count
    assert result.level == expected
    assert result.level_notes
    for answer in result.answers:
        qid = answer.question.id
        if seen[qid] is not None:
            assert (answer.source, answer.by, answer.yes) == ("observed", "sprint", seen[qid])
        elif said[qid] is not None:
            assert (answer.source, answer.by, answer.yes) == ("declared", "team", said[qid])
        elif planned[qid] is not None:
            assert (answer.source, answer.by, answer.yes) == ("declared", "spec", planned[qid])
        else:
            assert (answer.source, answer.yes) == ("unanswered", None)


@given(said=st.fixed_dictionaries({qid: st.booleans() for qid in IDS}))
def test_declared_answers_alone_never_reach_level_four(said: dict[str, bool]) -> None:
    assert assess({}, said).level <= 3


def test_level_four_and_five_need_their_evidence_observed() -> None:
    everything_declared = dict.fromkeys(IDS, True)
    seen = dict.fromkeys(LEVEL_EVIDENCE[:2], (True, "seen"))
    four = assess(seen, everything_declared)
    assert four.level == 4
    assert four.level_notes == [
        "level 5 (self-service) needs `unattended` observed: declared yes by the team, but "
        "only an observation counts"
    ]
    five = assess({**seen, "unattended": (True, "seen")}, everything_declared)
    assert (five.level, five.name, five.time_per_model) == (5, "self-service", "days")


def test_level_three_notes_name_the_missing_level_four_evidence() -> None:
    result = assess({"metric_gated_rollout": (False, "no rollout ran")}, declared_yes(15))
    assert result.level == 3
    assert result.level_notes == [
        "level 4 (collaborative) needs `shared_definitions` observed: declared yes by the "
        "team, but only an observation counts",
        "level 4 (collaborative) needs `metric_gated_rollout` observed: the sprint observed no",
    ]


def test_level_notes_below_three_count_what_is_missing() -> None:
    result = assess({}, {"drift_alerts": True, "latency_budget": False})
    assert result.level_notes[0] == "level 2 (coordinated) needs 6 yes answers: 5 more"
    assert "drift_alerts" not in result.level_notes[1]
    assert "latency_budget" not in result.level_notes[1]
    assert "metrics_exposed" in result.level_notes[1]
    assert result.level_notes[2] == (
        "levels 4 and 5 will need, observed by a sprint: shared_definitions, "
        "metric_gated_rollout, unattended"
    )


def test_observed_beats_declared_and_the_disagreement_is_kept() -> None:
    result = assess(
        {"metrics_exposed": (False, "the service did not serve /metrics")},
        {"metrics_exposed": True, "drift_alerts": True},
    )
    answers = {a.question.id: a for a in result.answers}
    assert answers["metrics_exposed"].yes is False
    assert answers["metrics_exposed"].source == "observed"
    assert "the team declared yes; the observation wins" in answers["metrics_exposed"].evidence
    assert answers["drift_alerts"].source == "declared"
    agreeing = assess({"drift_alerts": (True, "monitoring: psi")}, {"drift_alerts": True})
    assert [a.evidence for a in agreeing.answers if a.source == "observed"] == ["monitoring: psi"]


def test_an_unknown_question_is_refused() -> None:
    with pytest.raises(SpecError, match="unknown readiness question drift"):
        assess({}, {"drift": True})


# ------------------------------------------------------------------------ observe and declare


def test_the_retail_spec_is_declared_never_observed() -> None:
    project = Project.load(RETAIL)
    assert observe() == {}
    in_spec = spec_declarations(project)
    assert set(in_spec) == {
        "online_features",
        "graceful_fallback",
        "contracts_enforced",
        "drift_alerts",
        "metric_gated_rollout",
        "versioned_models",
        "predictions_logged",
    }
    assert all(yes for yes, _ in in_spec.values())
    for qid, (_, evidence) in in_spec.items():
        assert "declared in taxiway.yaml, not seen working" in evidence, qid
    assert "customers, orders, sessions" in in_spec["contracts_enforced"][1]
    assert "baseline, then the training prior" in in_spec["graceful_fallback"][1]
    result = assess(observe(), {}, in_spec)
    assert result.counts() == {"observed": 0, "declared": 7, "unanswered": 8}
    for answer in result.answers:
        assert answer.source != "observed"
        if answer.question.id in in_spec:
            assert (answer.source, answer.by) == ("declared", "spec")


def test_a_declared_monitoring_section_is_a_declared_answer_not_an_observed_one() -> None:
    project = project_of("name: demo\nmonitoring: {drift: psi, alert_threshold: 0.1}\n")
    result = assess(observe(), {}, spec_declarations(project))
    (drift,) = (a for a in result.answers if a.question.id == "drift_alerts")
    assert (drift.yes, drift.source, drift.by) == (True, "declared", "spec")
    assert "psi drift above 0.1" in drift.evidence
    assert result.as_dict()["counts"] == {"observed": 0, "declared": 1, "unanswered": 14}


@pytest.mark.parametrize("qid", ["drift_alerts", "metric_gated_rollout", "predictions_logged"])
def test_a_teams_no_stays_no_even_when_the_spec_declares_the_section(qid: str) -> None:
    in_spec = spec_declarations(Project.load(RETAIL))
    assert in_spec[qid][0] is True
    result = assess(observe(), {qid: False}, in_spec)
    (answer,) = (a for a in result.answers if a.question.id == qid)
    assert (answer.yes, answer.source, answer.by) == (False, "declared", "team")
    assert "taxiway.yaml declares yes; the team's answer stands" in answer.evidence
    assert result.yes_count == assess(observe(), {}, in_spec).yes_count - 1


def test_a_source_without_a_contract_is_a_declared_no_that_a_sprint_can_overrule() -> None:
    project = project_of(
        """\
        name: demo
        sources:
          orders: {kind: file, path: o.csv, contract: c.yaml}
          refunds: {kind: file, path: r.csv}
        """
    )
    yes, evidence = spec_declarations(project)["contracts_enforced"]
    assert yes is False
    assert "refunds" in evidence
    assert "orders" not in evidence
    seen = assess(observe({"contracts_checked": True}), {}, spec_declarations(project))
    (answer,) = (a for a in seen.answers if a.question.id == "contracts_enforced")
    assert (answer.yes, answer.source) == (True, "observed")


def test_an_empty_spec_declares_nothing() -> None:
    assert spec_declarations(project_of("name: demo")) == {}


def test_sprint_facts_are_observed_and_beat_the_spec_and_the_team() -> None:
    in_spec = spec_declarations(Project.load(RETAIL))
    observed = observe({"prediction_log": (False, "3 records for 10 answers")})
    assert observed["predictions_logged"] == (
        False,
        "observed by the sprint: answers of its load test are missing from the durable log, "
        "or the log could not be written (3 records for 10 answers)",
    )
    result = assess(observed, {"predictions_logged": True}, in_spec)
    (answer,) = (a for a in result.answers if a.question.id == "predictions_logged")
    assert (answer.yes, answer.source, answer.by) == (False, "observed", "sprint")
    assert "the team declared yes; the observation wins" in answer.evidence


def test_every_fact_answers_one_question_both_ways() -> None:
    for fact in FACTS:
        for value in (True, False):
            observed = observe({fact: value})
            assert any(yes is value for yes, _ in observed.values()), (fact, value)
            assert observe({fact: (value, "why")}) != observed
    both = observe(dict.fromkeys(FACTS, True))
    assert set(both) == set(IDS)


def test_lineage_shows_a_registered_version() -> None:
    assert observe({"lineage_recorded": True})["versioned_models"][0] is True
    assert "versioned_models" not in observe({"lineage_recorded": False})


def test_the_sprint_can_reach_level_five_only_through_its_facts() -> None:
    in_spec = spec_declarations(Project.load(RETAIL))
    facts = dict.fromkeys(FACTS, True)
    assert assess(observe(facts), {}, in_spec).level == 5
    assert assess(observe({**facts, "unattended": False}), {}, in_spec).level == 4
    no_rollout = {k: v for k, v in facts.items() if k != "metric_gated_rollout"}
    # the spec declares the rollout and the team says yes: still only level 3
    result = assess(observe(no_rollout), {"metric_gated_rollout": True}, in_spec)
    assert result.level == 3
    assert result.level_notes == [
        "level 4 (collaborative) needs `metric_gated_rollout` observed: declared yes by the "
        "team, but only an observation counts"
    ]
    spec_only = assess(observe(no_rollout), {}, in_spec)
    assert spec_only.level_notes == [
        "level 4 (collaborative) needs `metric_gated_rollout` observed: declared yes by the "
        "spec, but only an observation counts"
    ]


def test_unknown_or_non_boolean_facts_are_a_callers_bug() -> None:
    with pytest.raises(ValueError, match="unknown sprint fact 'lineage'"):
        observe({"lineage": True})
    with pytest.raises(ValueError, match="must be a bool"):
        observe({"metrics_exposed": "yes"})
    with pytest.raises(ValueError, match="must be a bool"):
        observe({"metrics_exposed": (True, 3)})


# ------------------------------------------------------------------------ answers file


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "answers.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_answers_accept_yes_no_true_false_in_any_case(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        # the team's answers
        latency_budget: yes
        drift_alerts: No
        skew_checked: true
        unattended: FALSE
        """,
    )
    assert load_answers(path) == {
        "latency_budget": True,
        "drift_alerts": False,
        "skew_checked": True,
        "unattended": False,
    }


def test_an_empty_answers_file_answers_nothing(tmp_path: Path) -> None:
    assert load_answers(write(tmp_path, "# nothing yet\n")) == {}


def test_an_unknown_id_names_the_line_a_suggestion_and_the_valid_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "latency_budget: yes\n\ndrift_alert: no\n")
    with pytest.raises(SpecError) as caught:
        load_answers(path)
    message = str(caught.value)
    assert f"{path}:3:1: drift_alert: unknown question `drift_alert`" in message
    assert "did you mean `drift_alerts`?" in message
    assert f"expected: one of {', '.join(IDS)}" in message


def test_a_non_boolean_answer_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "latency_budget: yes\nskew_checked: maybe\nunattended: 1\n")
    with pytest.raises(SpecError) as caught:
        load_answers(path)
    assert [(i.line, i.path) for i in caught.value.issues] == [
        (2, "skew_checked"),
        (3, "unattended"),
    ]
    assert "expected yes or no, got 'maybe'" in str(caught.value)


def test_bad_yaml_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "latency_budget: yes\nskew_checked: [yes\n")
    with pytest.raises(SpecError, match=r"answers\.yaml:\d+:\d+: not valid YAML"):
        load_answers(path)


@pytest.mark.parametrize("text", ["- latency_budget\n", "yes\n"])
def test_an_answers_file_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    with pytest.raises(SpecError, match="must be a mapping of question ids"):
        load_answers(write(tmp_path, text))


def test_a_missing_answers_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="answers file not found"):
        load_answers(tmp_path / "nope.yaml")


# ------------------------------------------------------------------------ markdown


def test_markdown_shows_the_level_and_each_kind_of_answer_apart() -> None:
    result = assess(
        {"metrics_exposed": (True, "served /metrics | 200")},
        {"drift_alerts": True},
        {"predictions_logged": (True, "declared in taxiway.yaml")},
    )
    text = result.markdown()
    assert text.startswith("## Readiness: level 1 (siloed)\n")
    assert result.meaning in text
    assert "1 observed by taxiway, 2 declared by the team or the spec, 12 unanswered" in text
    observed, declared, unanswered = text.split("\n### ")[1:]
    assert observed.startswith("Observed: taxiway saw it happen")
    assert declared.startswith("Declared:")
    assert unanswered.startswith("Unanswered:")
    rows = {name: [ln for ln in part.splitlines() if ln.startswith("| ")][1:]
            for name, part in (("o", observed), ("d", declared), ("u", unanswered))}  # fmt: skip
    assert [len(rows[k]) for k in "odu"] == [1, 2, 12]
    assert "`metrics_exposed`" in rows["o"][0]
    assert "| yes | sprint | served /metrics \\| 200 |" in rows["o"][0]
    assert any("`drift_alerts`" in r and "| yes | team |" in r for r in rows["d"])
    assert any("`predictions_logged`" in r and "| yes | spec |" in r for r in rows["d"])


# ------------------------------------------------------------------------ CLI


def test_cli_with_an_answers_file_prints_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = write(
        tmp_path,
        """\
        latency_budget: yes
        contracts_passing: yes
        handoff_audit: yes
        predictions_logged: no
        shared_definitions: yes
        """,
    )
    code = main(["assess", "-f", str(RETAIL), "--answers", str(answers), "--json", "--no-input"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    by_id = {a["id"]: a for a in result["answers"]}
    assert (by_id["latency_budget"]["source"], by_id["latency_budget"]["by"]) == (
        "declared",
        "team",
    )
    # without a sprint nothing is observed: the spec's sections are declarations
    assert result["counts"]["observed"] == 0
    assert (by_id["contracts_enforced"]["source"], by_id["contracts_enforced"]["by"]) == (
        "declared",
        "spec",
    )
    # the team's "no" stays no although the spec declares serving
    assert by_id["predictions_logged"]["yes"] is False
    assert "the team's answer stands" in by_id["predictions_logged"]["evidence"]
    assert by_id["metrics_exposed"]["source"] == "unanswered"
    # 6 from the spec (predictions_logged overruled) + 4 yes from the team
    assert (result["yes_count"], result["level"], result["name"]) == (10, 2, "coordinated")


def test_cli_prints_the_level_and_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["assess", "-f", str(RETAIL), "--no-input"]) == 0
    out = capsys.readouterr().out
    assert "Readiness: level 2 (coordinated)" in out
    assert "(0 observed, 7 declared, 8 unanswered)" in out
    observed = out.index("Observed: taxiway saw it happen (0): none")
    declared = out.index("Declared: the team or the spec says so")
    unanswered = out.index("Unanswered: counted as no (8)")
    assert observed < declared < out.index("contracts_enforced") < unanswered
    assert declared < unanswered < out.index("metrics_exposed")


def test_cli_reports_a_bad_answers_file_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = write(tmp_path, "latency_budget: sometimes\n")
    assert main(["assess", "-f", str(RETAIL), "--answers", str(answers), "--no-input"]) == 2
    assert "answers.yaml:1:1: latency_budget: expected yes or no" in capsys.readouterr().err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_asks_in_a_terminal_only_what_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = write(tmp_path, "latency_budget: no\n")
    # 15 questions - 7 declared by the spec - 1 answered = 7 prompts, all answered yes
    monkeypatch.setattr("sys.stdin", Terminal("y\n" * 7))
    assert main(["assess", "-f", str(RETAIL), "--answers", str(answers), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert captured.err.count("[y/N]") == 7
    sources = [a["source"] for a in result["answers"]]
    assert sources.count("declared") == 15
    assert result["yes_count"] == 14
    assert result["level"] == 3  # never 4 without a sprint's observation


def test_cli_does_not_prompt_with_no_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(""))
    assert main(["assess", "-f", str(RETAIL), "--json", "--no-input"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sum(1 for a in result["answers"] if a["source"] == "unanswered") == 8


def test_a_question_the_sprint_could_not_observe_says_why() -> None:
    why = "only the sign-offs stopped it, but monitoring was not exercised"
    result = assess({}, {}, unseen={"unattended": why})
    answer = next(a for a in result.answers if a.question.id == "unattended")
    assert (answer.source, answer.yes) == ("unanswered", None)
    assert answer.evidence == f"not observed: {why}; counts as no"
    # an answer from the team still wins over the note
    said = assess({}, {"unattended": True}, unseen={"unattended": why})
    assert next(a for a in said.answers if a.question.id == "unattended").source == "declared"
