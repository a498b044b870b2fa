"""The sign-off policy's decision: which retrains are routine (no training needed)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from taxiway.models.retrain_signoff import RetrainChanges, decide, retrain_changes
from taxiway.spec.models import RetrainSignoff


def _changes(**over: object) -> RetrainChanges:
    base: dict[str, object] = {
        "candidate_features": ["a", "b"],
        "production_features": ["a", "b"],
        "candidate_sources": ["orders"],
        "production_sources": ["orders"],
        "candidate_definitions": "h",
        "production_definitions": "h",
        "metric": "roc_auc",
        "candidate_score": 0.8,
        "production_score": 0.8,
    }
    base.update(over)
    return retrain_changes(**base)  # type: ignore[arg-type]


def test_same_definitions_and_sources_within_bounds_is_routine() -> None:
    decision = decide(RetrainSignoff(max_metric_drop=0.01), _changes(candidate_score=0.795))
    assert decision.routine
    assert decision.reasons == []


def test_a_new_feature_a_changed_definition_and_a_new_source_each_need_a_person() -> None:
    policy = RetrainSignoff()
    assert decide(policy, _changes(candidate_features=["a", "b", "c"])).reasons == [
        "new features: c"
    ]
    assert decide(policy, _changes(candidate_definitions="h2")).reasons == [
        "the feature definitions changed (another definitions hash)"
    ]
    assert decide(policy, _changes(candidate_sources=["orders", "sessions"])).reasons == [
        "new sources: sessions"
    ]


def test_a_change_the_policy_turns_off_is_routine() -> None:
    policy = RetrainSignoff(on_new_feature=False, on_new_source=False)
    changes = _changes(candidate_features=["a", "c"], candidate_sources=["sessions"])
    assert decide(policy, changes).routine


def test_a_drop_beyond_the_bound_needs_a_person_and_rmse_drops_upward() -> None:
    policy = RetrainSignoff(max_metric_drop=0.01)
    assert not decide(policy, _changes(candidate_score=0.78)).routine
    rmse = _changes(metric="rmse", candidate_score=10.5, production_score=10.0)
    assert rmse.drop == 0.5
    assert "rmse is 0.5 below production's" in decide(policy, rmse).reasons[0]
    unknown = _changes(candidate_score=None)
    assert decide(policy, unknown).reasons == ["the roc_auc drop is unknown"]
    assert decide(RetrainSignoff(), unknown).routine  # no bound: no score needed


def test_without_production_no_retrain_is_routine() -> None:
    changes = RetrainChanges([], False, [], "roc_auc", None, production=False)
    assert not decide(RetrainSignoff(on_new_feature=False, on_new_source=False), changes).routine


@given(
    metric=st.sampled_from(["roc_auc", "pr_auc", "rmse", "mae"]),
    candidate=st.floats(0, 100, allow_nan=False),
    production=st.floats(0, 100, allow_nan=False),
    bound=st.floats(0, 10, allow_nan=False),
)
def test_the_drop_is_never_negative_and_only_an_actual_fall_beyond_the_bound_calls(
    metric: str, candidate: float, production: float, bound: float
) -> None:
    changes = _changes(metric=metric, candidate_score=candidate, production_score=production)
    assert changes.drop is not None
    assert changes.drop >= 0
    worse_by = production - candidate if metric in ("roc_auc", "pr_auc") else candidate - production
    routine = decide(RetrainSignoff(max_metric_drop=bound), changes).routine
    assert routine == (max(0.0, worse_by) <= bound)
