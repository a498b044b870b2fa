"""The recommender's handoff audit: a clean version passes; training on the future, histories
past the as-of time, a filter missing at serving and a tiny latency budget are each blocked;
`taxiway audit` exits 0 and 1 accordingly."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypedDict

import pytest
from tests.recommend.synthetic import START
from tests.recommend.test_training import make_project
from threadpoolctl import threadpool_limits

from taxiway.cli import main
from taxiway.models.registry import ModelVersion, NewVersion, open_registry
from taxiway.recommend.audit import RECOMMEND_CHECKS, run_recommend_audit
from taxiway.recommend.audit.context import service_paths
from taxiway.recommend.audit.filters import _Exclusions, leaks_in
from taxiway.recommend.generators import Generator
from taxiway.recommend.generators.itemknn import ItemKnn
from taxiway.recommend.generators.popularity import Popularity
from taxiway.recommend.pipeline import Recommendation, Recommender
from taxiway.recommend.split import from_micros
from taxiway.recommend.training import load_recommend_data, train_recommender
from taxiway.spec.models import Serving
from taxiway.spec.project import Project


class _Sizes(TypedDict):
    """The keyword arguments of :func:`run_recommend_audit` that size its work."""

    sample: int
    repeats: int


FAST: _Sizes = {"sample": 20, "repeats": 20}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, ModelVersion]:
    """One project trained once; each test registers its own hand-made versions beside it."""
    project = make_project(tmp_path_factory.mktemp("audit"))
    return project, train_recommender(project).version


def register(
    project: Project, base: ModelVersion, recommender: Recommender, **training: Any
) -> ModelVersion:
    """``recommender`` registered as a new version with ``base``'s facts, ``training`` over
    them."""
    folder = project.state_dir / "tmp" / f"hand-{len(training)}-{id(recommender)}"
    recommender.save(folder)
    new = NewVersion(
        name=base.name,
        created_by="test",
        algorithm=base.algorithm,
        task=base.task,
        metrics=base.metrics,
        features=[],
        definitions_hash="",
        spec_hash=base.spec_hash,
        git_commit=None,
        training={**base.training, **training},
        lineage={},
        profile={},
        serving=base.serving,
    )
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        return registry.register(new, folder)
    finally:
        registry.close()
        shutil.rmtree(folder, ignore_errors=True)


def saved(version: ModelVersion) -> Recommender:
    return Recommender.load(Path(version.artifact_dir))


def test_a_clean_version_passes_every_check(trained: tuple[Project, ModelVersion]) -> None:
    project, version = trained
    report = run_recommend_audit(project, version, **FAST)
    assert not report.blocked, report.markdown()
    assert {check: report.status(check) for check in ("leakage", "filters", "coverage")} == {
        "leakage": "passed",
        "filters": "passed",
        "coverage": "passed",
    }
    assert report.status("latency") == "passed"
    # no ranking stage here: the report leaves out skew (of the ranking's feature views)
    expected = dict.fromkeys((c for c in RECOMMEND_CHECKS if c != "skew"), "passed")
    assert report.as_dict()["checks"] == expected
    assert "| filters | passed |" in report.markdown()
    measured = report.measured
    assert measured["leakage"]["reread_before_cutoff"] == version.metrics["split"]["train_rows"]
    assert measured["leakage"]["popularity_matches_training"] is True
    assert measured["filters"]["leaks"] == 0
    assert measured["filters"]["service_paths"] == [
        "model",
        "fallback:itemknn",
        "fallback:segment_popularity",
        "fallback:popularity",
        "model with recent items",
    ]
    assert measured["coverage"]["unknown_user_stages"] == ["popularity"]
    assert set(measured["latency"]["stages"]) == {
        "history and filters",
        "itemknn",
        "segment_popularity",
        "popularity",
    }
    json.dumps(report.as_dict())  # the CLI's --json and the sprint read it as is


def _fitted_on_everything(project: Project, version: ModelVersion) -> Recommender:
    """The saved recommender with its generators refitted on every interaction: the future
    included (what a hand-rolled training that skipped the split would ship)."""
    clean = saved(version)
    every = load_recommend_data(project).interactions
    stages: list[tuple[str, Generator]] = [
        ("itemknn", ItemKnn(k=50, neighbours=30)),
        ("popularity", Popularity(k=200)),
    ]
    with threadpool_limits(1, "blas"):
        for _, generator in stages:
            generator.fit(every)
    clean.stages = stages
    return clean


def test_training_on_interactions_after_the_cutoff_is_blocked_with_the_count(
    trained: tuple[Project, ModelVersion],
) -> None:
    project, version = trained
    every = load_recommend_data(project).interactions
    leaky = register(
        project,
        version,
        _fitted_on_everything(project, version),
        train_interactions=len(every),
        train_max_at=from_micros(int(every.at.max())).isoformat(),
    )
    report = run_recommend_audit(project, leaky, **FAST)
    assert report.blocked
    leakage = [f for f in report.findings if f.check == "leakage"]
    assert all(f.severity == "blocker" for f in leakage)
    after = report.measured["leakage"]["reread_at_or_after_cutoff"]
    assert any(
        f"{after:,} of the {after:,} interactions at or after" in f.evidence for f in leakage
    )
    assert any("at or after its cutoff" in f.evidence for f in leakage)
    assert any(f.feature == "popularity" for f in leakage)
    assert all("retrain" in f.fix for f in leakage)


def test_the_fitted_popularity_gives_the_leak_away_even_when_the_stored_facts_are_clean(
    trained: tuple[Project, ModelVersion],
) -> None:
    project, version = trained
    leaky = register(project, version, _fitted_on_everything(project, version))
    report = run_recommend_audit(project, leaky, **FAST)
    assert [(f.check, f.severity, f.feature) for f in report.findings] == [
        ("leakage", "blocker", "popularity")
    ]
    assert report.measured["leakage"]["popularity_matches_training"] is False


def test_histories_after_the_training_as_of_time_are_blocked(
    trained: tuple[Project, ModelVersion],
) -> None:
    project, version = trained
    as_of = START + timedelta(days=95)  # after the cutoff (day ~90), before the last events
    stale = register(project, version, saved(version), as_of=as_of.isoformat())
    report = run_recommend_audit(project, stale, **FAST)
    found = [f for f in report.findings if f.feature == "histories"]
    assert len(found) == 1
    assert found[0].severity == "blocker"
    assert as_of.isoformat() in found[0].evidence
    assert report.status("filters") == "passed"


def test_a_filter_dropped_from_the_served_recommender_is_blocked_naming_item_and_filter(
    trained: tuple[Project, ModelVersion],
) -> None:
    project, version = trained
    recommender = saved(version)
    recommender.filters = [f for f in recommender.filters if f.kind != "deny"]
    leaky = register(project, version, recommender)
    report = run_recommend_audit(project, leaky, **FAST)
    assert report.blocked
    assert report.status("filters") == "blocker"
    found = [f for f in report.findings if f.check == "filters"]
    assert {f.feature for f in found} == {"deny"}
    assert all("`i2`" in f.evidence and "to user `" in f.evidence for f in found)
    assert any("service's `model` lists" in f.evidence for f in found)
    assert any("the evaluation scored" in f.evidence for f in found)
    assert all("`deny`" in f.fix for f in found)
    assert "## filters" in report.markdown()


def test_a_hand_made_list_with_a_seen_item_is_a_leak() -> None:
    exclusions = _Exclusions(at_us=0, shared={"unavailable": {"i9"}}, seen={"u1": {"i3"}})
    lists = [[Recommendation("i3", 1.0, "itemknn"), Recommendation("i4", 0.5, "itemknn")]]
    assert [(x.filter, x.user, x.item) for x in leaks_in("model", ["u1"], lists, exclusions)] == [
        ("already_seen", "u1", "i3")
    ]
    assert leaks_in("model", ["u2"], lists, exclusions) == []


def test_every_fallback_is_a_service_path(trained: tuple[Project, ModelVersion]) -> None:
    """The audit checks the very stage lists the service asks: the recommender's own chain."""
    recommender = saved(trained[1])
    assert service_paths(recommender) == [
        ("model", None),
        ("fallback:itemknn", ("itemknn", "segment_popularity", "popularity")),
        ("fallback:segment_popularity", ("segment_popularity", "popularity")),
        ("fallback:popularity", ("popularity",)),
    ]


def test_a_tiny_latency_budget_is_blocked_naming_the_costliest_stage(
    tmp_path: Path, trained: tuple[Project, ModelVersion]
) -> None:
    project, version = trained
    serving = Serving(latency_budget_ms=0.001)
    tight = replace(project, spec=project.spec.model_copy(update={"serving": serving}))
    report = run_recommend_audit(tight, version, **FAST)
    found = [f for f in report.findings if f.check == "latency"]
    assert len(found) == 1
    assert found[0].severity == "blocker"
    costly = report.measured["latency"]["costliest_stage"]
    assert found[0].feature == costly
    assert costly in {"history and filters", "itemknn", "segment_popularity", "popularity"}
    assert f"`{costly}`" in found[0].evidence
    assert "0.001 ms budget" in found[0].evidence


def test_the_cli_dispatches_a_recommend_spec_and_exits_by_the_verdict(
    tmp_path: Path, trained: tuple[Project, ModelVersion]
) -> None:
    project, version = trained
    args = ["audit", "-f", str(project.spec_path), "--state-dir", str(project.state_dir)]
    out = tmp_path / "report"
    assert main([*args, "--model", str(version.version), "--sample", "10", "--out", str(out)]) == 0
    document = json.loads((out / "audit.json").read_text())
    assert document["blocked"] is False
    assert "filters" in document["measured"]
    recommender = saved(version)
    recommender.filters = [f for f in recommender.filters if f.kind != "deny"]
    leaky = register(project, version, recommender)
    assert main([*args, "--model", str(leaky.version), "--sample", "10", "--json"]) == 1


def test_many_users_seen_only_after_the_cutoff_are_a_coverage_warning(tmp_path: Path) -> None:
    # a cutoff on day 4: about 0.96^20 = 44% of the users (20 events over 100 days) are cold
    project = make_project(tmp_path, extra="  split: {cutoff: 2025-01-05}\n")
    version = train_recommender(project).version
    report = run_recommend_audit(project, version, **FAST)
    coverage = report.measured["coverage"]
    assert coverage["cold_users"] == version.metrics["cold_users"]
    assert coverage["cold_user_share"] > 0.2
    found = [f for f in report.findings if f.check == "coverage"]
    assert (found[0].severity, found[0].feature) == ("warning", "cold users")
    assert "popularity-in-segment fallback" in found[0].fix
    assert sum(coverage["cold_user_stage_share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert not report.blocked
