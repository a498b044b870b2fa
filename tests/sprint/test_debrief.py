"""The debrief: the path rule, the five answers, and report.json read back unchanged."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import TaxiwayError
from taxiway.sprint.debrief import QUESTIONS, Debrief
from taxiway.sprint.outcome import (
    ESTIMATE_ORDER,
    FIX_KINDS,
    PHASES,
    Blocker,
    Category,
    Check,
    Estimate,
    Phase,
    PhaseName,
)

SHORT_TEXT = st.text(max_size=12)
START, END = "2025-06-02T09:00:00+00:00", "2025-06-02T09:04:00+00:00"

blockers = st.builds(
    Blocker,
    phase=st.sampled_from(PHASES),
    category=st.sampled_from(get_args(Category)),
    critical_path=st.booleans(),
    title=st.text(max_size=12),
    evidence=st.text(max_size=20),
    fix=st.text(max_size=20),
    estimate=st.sampled_from(get_args(Estimate)),
    structural=st.booleans(),
    kind=st.none() | st.sampled_from(FIX_KINDS),
    who=st.none() | st.text(min_size=1, max_size=12),
    basis=st.text(max_size=12),
)
model_facts = st.fixed_dictionaries(
    {
        "version": st.integers(1, 9),
        "algorithm": st.sampled_from(["lightgbm", "logistic"]),
        "metric": st.sampled_from(["roc_auc", "rmse"]),
        "model": st.floats(0, 1),
        "baseline": st.floats(0, 1),
        "beats_baseline": st.booleans(),
    }
)


@st.composite
def debriefs(draw: st.DrawFn, text: st.SearchStrategy[str] = SHORT_TEXT) -> Debrief:
    """A sprint with a random set of blockers, its phases in a random order (some skipped)."""
    found = draw(st.lists(blockers, max_size=8))
    order = draw(st.permutations(PHASES))
    phases = []
    for name in order:
        checks = [Check(f"c{i}", "fail", blocker=b) for i, b in enumerate(found) if b.phase == name]
        if draw(st.booleans()):
            checks.append(Check(draw(text), draw(st.sampled_from(["pass", "warn", "skip"]))))
        phases.append(Phase(name, checks, draw(st.floats(0, 3600))))
    level = draw(st.none() | st.integers(1, 5))
    assessment = None if level is None else {"level": level, "name": draw(text), "answers": []}
    facts = {"model": draw(model_facts)} if draw(st.booleans()) else {}
    return Debrief(
        draw(text),
        "taxiway.yaml",
        START,
        END,
        phases,
        draw(st.booleans()),
        served_url=draw(st.none() | text),
        facts=facts,
        assessment=assessment,
    )


def sprint(*found: Blocker, deployed: bool = False, **extra: Any) -> Debrief:
    """Every phase ran; each blocker is one failed check of its phase."""
    phases = [
        Phase(
            name,
            [Check("ok", "pass")]
            + [Check("x", "fail", blocker=b) for b in found if b.phase == name],
            1.0,
        )
        for name in PHASES
    ]
    return Debrief("shop", "taxiway.yaml", START, END, phases, deployed, **extra)


def blocker(
    phase: PhaseName = "data_access",
    estimate: Estimate = "days",
    *,
    critical: bool = True,
    structural: bool = False,
    category: Category = "technical",
    title: str = "",
) -> Blocker:
    return Blocker(
        phase,
        category,
        critical,
        title or f"{phase} {estimate}",
        f"saw {phase}",
        f"fix {phase} {estimate}",
        estimate,
        structural,
    )


def answer(d: Debrief, qid: str) -> dict[str, Any]:
    return next(q for q in d.questions() if q["id"] == qid)


# --- blockers and the path ----------------------------------------------------------------


@given(debriefs())
def test_blockers_are_every_failed_check_in_phase_order_critical_first(d: Debrief) -> None:
    expected = [c.blocker for p in d.phases for c in p.checks if c.blocker is not None]
    assert sorted(map(repr, d.blockers)) == sorted(map(repr, expected))
    keys = [(PHASES.index(b.phase), not b.critical_path) for b in d.blockers]
    assert keys == sorted(keys)


@given(debriefs())
def test_path_1_iff_deployed_and_nothing_on_the_critical_path(d: Debrief) -> None:
    assert (d.path == 1) == (d.deployed and not any(b.critical_path for b in d.blockers))


@given(debriefs())
def test_path_3_iff_the_critical_path_needs_foundation_work(d: Debrief) -> None:
    critical = [b for b in d.blockers if b.critical_path]
    level_1 = d.assessment is not None and d.assessment["level"] == 1
    foundation = (
        any(b.structural for b in critical)
        or any(b.estimate == "years" for b in critical)
        or (level_1 and any(b.category == "capability" for b in critical))
    )
    assert (d.path == 3) == foundation
    if any(b.structural for b in critical):
        assert d.path == 3


def test_path_2_when_fixable_blockers_stand_in_the_way() -> None:
    assert sprint(blocker(estimate="months")).path == 2
    # deployed, but a critical-path blocker remains (say, an approval still missing)
    assert sprint(blocker("deployment"), deployed=True).path == 2
    # capability gaps only force path 3 at readiness level 1
    gap = blocker(category="capability")
    assert sprint(gap, assessment={"level": 2}).path == 2
    assert sprint(gap, assessment={"level": 1}).path == 3


def test_an_off_path_blocker_never_changes_the_path() -> None:
    slow = blocker("integration", "years", critical=False, structural=True)
    assert sprint(slow, deployed=True).path == 1
    assert sprint(slow).path == 2


# --- the five questions -------------------------------------------------------------------


@given(debriefs())
def test_every_question_is_answered_with_evidence_strings(d: Debrief) -> None:
    questions = d.questions()
    assert [(q["id"], q["question"]) for q in questions] == list(QUESTIONS)
    for q in questions:
        assert q["answer"].strip()
        assert all(isinstance(item, str) for item in q["evidence"])


def test_unlimited_resources_separates_structural_from_solvable() -> None:
    solvable = sprint(blocker(estimate="months"), blocker("deployment", "weeks"))
    assert answer(solvable, "unlimited_resources")["answer"].startswith("Yes")
    missing = blocker("data_access", "months", structural=True, title="no returns data")
    stuck = sprint(missing, blocker("deployment", "weeks"))
    a = answer(stuck, "unlimited_resources")
    assert a["answer"].startswith("No: 1 structural")
    assert a["evidence"] == ["data_access: no returns data: saw data_access"]


def test_the_critical_path_blocker_is_structural_first_then_the_longest() -> None:
    grant = blocker("data_access", "weeks", title="grant")
    review = blocker("integration", "months", title="architecture review")
    assert sprint(grant, review).critical_blocker == review
    gone = blocker("deployment", "days", structural=True, title="no owner")
    assert sprint(grant, review, gone).critical_blocker == gone
    # a tie on the estimate goes to the earlier phase: it is met first
    first = blocker("data_access", "months", title="first")
    assert sprint(review, first).critical_blocker == first
    a = answer(sprint(grant, review), "critical_path")
    assert a["answer"].startswith("architecture review (integration, technical, months).")
    assert "1 other critical-path blocker(s)" in a["answer"]
    assert answer(sprint(deployed=True), "critical_path")["answer"].startswith("None")


@given(debriefs())
def test_it_takes_as_long_as_the_longest_critical_path_fix(d: Debrief) -> None:
    critical = [ESTIMATE_ORDER[b.estimate] for b in d.blockers if b.critical_path]
    if not critical:
        assert d.time_to_deploy is None
    else:
        assert d.time_to_deploy is not None
        assert ESTIMATE_ORDER[d.time_to_deploy] == max(critical)


def test_how_long_ignores_off_path_blockers_and_says_when_it_is_a_lower_bound() -> None:
    d = sprint(blocker(estimate="weeks"), blocker("integration", "years", critical=False))
    assert answer(d, "how_long")["answer"].startswith("Weeks: close.")
    # the sprint stopped at data access: what lies behind it is unknown
    cut = Debrief(
        "shop",
        "taxiway.yaml",
        START,
        END,
        [Phase("data_access", [Check("read", "fail", blocker=blocker())], 1.0)],
        False,
    )
    a = answer(cut, "how_long")
    assert a["answer"].startswith("At least days")
    assert a["evidence"][-1].endswith("model_development, integration, deployment")


def test_the_30_day_plan_lists_the_fixes_and_what_does_not_fit() -> None:
    grant = blocker("data_access", "weeks")
    d = sprint(
        grant, blocker("integration", "hours"), blocker("deployment", "days", critical=False)
    )
    a = answer(d, "fix_in_30_days")
    assert a["answer"] == (
        "Fix these 2, then rerun the sprint: (1) fix data_access weeks; (2) fix integration hours."
    )
    late = sprint(
        grant,
        blocker("deployment", "months", title="security review"),
        blocker("integration", "days", structural=True, title="no API"),
    )
    a = answer(late, "fix_in_30_days")
    assert a["answer"].startswith("It cannot deploy within 30 days: 2 critical-path blocker(s)")
    assert a["answer"].endswith(
        "Start them now; meanwhile fix the 1 that fit: (1) fix data_access weeks."
    )
    assert "fix (weeks): fix data_access weeks" in a["evidence"]
    assert "not in 30 days (days, structural): no API" in a["evidence"]
    assert "not in 30 days (months): security review" in a["evidence"]


@pytest.mark.parametrize(
    ("model", "found", "starts"),
    [
        (None, [], "Not known yet"),
        ({"metric": "roc_auc", "model": 0.6, "baseline": 0.7, "beats_baseline": False}, [], "No"),
        (
            {"metric": "roc_auc", "model": 0.702, "baseline": 0.7, "beats_baseline": True},
            [],
            "Doubtful: the model beats the baseline by only 0.3%",
        ),
        (
            {"metric": "rmse", "model": 8.0, "baseline": 10.0, "beats_baseline": True},
            [],
            "Yes, once the critical-path blockers are fixed: it beats the baseline by 20%",
        ),
        (
            {"metric": "roc_auc", "model": 0.8, "baseline": 0.6, "beats_baseline": True},
            [blocker(estimate="years", title="rewrite")],
            "Not yet: 'rewrite' would take years",
        ),
    ],
)
def test_whether_to_do_ai_follows_the_lift_and_the_path(
    model: dict[str, Any] | None, found: list[Blocker], starts: str
) -> None:
    facts = {"model": model} if model else {}
    d = sprint(*found, blocker("integration", "weeks"), facts=facts)
    assert answer(d, "do_ai")["answer"].startswith(starts)


def test_a_deployed_model_that_beats_the_baseline_is_a_yes() -> None:
    facts = {"model": {"metric": "roc_auc", "model": 0.78, "baseline": 0.65}}
    d = sprint(deployed=True, facts=facts)
    assert d.model_lift() == pytest.approx((0.13, 0.2))
    assert (
        answer(d, "do_ai")["answer"] == "Yes: the model beats the baseline by 20% and it deployed."
    )


def test_a_model_the_audit_blocked_for_leakage_has_no_known_lift() -> None:
    """Issue 13, defect 3: "yes, beats the baseline by 8%" quoted a leaking model's score."""
    facts: dict[str, Any] = {
        "model": {"metric": "roc_auc", "model": 0.982, "baseline": 0.907, "beats_baseline": True},
        "audit": {"blocked": True, "findings": [
            {"check": "leakage", "severity": "blocker", "feature": "account__status",
             "message": "account__status is written after the prediction time", "fix": "x"},
        ]},
    }  # fmt: skip
    d = sprint(blocker("model_development", "minutes", title="leakage"), facts=facts)
    said = answer(d, "do_ai")
    assert not said["answer"].startswith("Yes")
    assert "8%" not in said["answer"]
    assert "true lift over the baseline is unknown until the leak is removed" in said["answer"]
    assert "account__status" in said["answer"]
    assert d.leaking_inputs == ["account__status"]
    # a warning about leakage is no block: the lift stands
    facts["audit"]["findings"][0]["severity"] = "warning"
    assert answer(d, "do_ai")["answer"].startswith("Yes")


def test_the_verdict_names_the_path() -> None:
    assert sprint(deployed=True, served_url="http://127.0.0.1:8000").verdict == (
        "shop deployed at http://127.0.0.1:8000 with nothing on the critical path: "
        "path 1, deploy more."
    )
    assert sprint(blocker(estimate="weeks")).verdict == (
        "shop did not deploy: 1 critical-path blocker, weeks of work to clear. "
        "Path 2: fix the blockers, then deploy."
    )
    assert "is structural" in sprint(blocker(structural=True)).verdict


# --- report.json --------------------------------------------------------------------------


@settings(max_examples=60)
@given(debriefs())
def test_report_json_reads_back_unchanged(d: Debrief) -> None:
    document = json.loads(json.dumps(d.as_dict()))
    again = Debrief.from_dict(document)
    assert again.as_dict() == d.as_dict()


def test_report_json_holds_what_the_issue_lists() -> None:
    d = sprint(blocker("integration", "weeks"), deployed=False)
    doc = d.as_dict()
    assert {"path", "deployed", "phases", "blockers", "questions", "verdict"} <= doc.keys()
    assert [(p["name"], p["status"], p["duration_s"]) for p in doc["phases"]] == [
        ("data_access", "pass", 1.0),
        ("model_development", "pass", 1.0),
        ("integration", "fail", 1.0),
        ("deployment", "pass", 1.0),
    ]
    (b,) = doc["blockers"]
    assert {k: b[k] for k in ("phase", "category", "critical_path", "estimate")} == {
        "phase": "integration",
        "category": "technical",
        "critical_path": True,
        "estimate": "weeks",
    }
    assert b["evidence"] == "saw integration"
    assert b["fix"] == "fix integration weeks"
    assert len(doc["questions"]) == 5


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (lambda doc: doc.pop("phases"), "missing 'phases'"),
        (
            lambda doc: doc["phases"][2]["checks"][1]["blocker"].update(estimate="soon"),
            "estimate 'soon' is not one of minutes, hours, days, weeks, months, years",
        ),
        (lambda doc: doc["phases"][0].update(name="launch"), "phase 'launch' is not one of"),
    ],
)
def test_a_broken_report_json_is_a_clear_error(broken: Any, message: str) -> None:
    doc = sprint(blocker("integration")).as_dict()
    broken(doc)
    with pytest.raises(TaxiwayError, match="not a sprint report") as raised:
        Debrief.from_dict(doc)
    assert message in str(raised.value)
