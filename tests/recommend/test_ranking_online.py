"""The ranking stage at serving: its feature views from the online store, at the request time.

The world is test_ranking.py's (promotions per period, known at each period's start) as spec
files, with three ranking views: ``promo`` (an item's latest promotion flag), ``profile`` (a
customer's static segment) and ``activity`` (a customer's event counts over 10 and 30 days).
The recommender is trained once, as of ``SERVE`` (after the data): training reads the views
offline, point in time; the service reads them from the online store that ``materialize``
fills. Both sides must give the same numbers, hence the same lists.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import pytest
from tests.conftest import require_service
from tests.recommend.test_ranking import START, World, make_project

from taxiway.errors import FeatureError, ModelError
from taxiway.features.materialize import materialize
from taxiway.features.online import open_online_store
from taxiway.features.online.base import OnlineStore, ViewValues
from taxiway.features.online.sqlite import SqliteStore
from taxiway.models.registry import ModelVersion
from taxiway.recommend.audit import run_recommend_audit
from taxiway.recommend.audit.context import recommender_folder
from taxiway.recommend.pipeline import Recommender
from taxiway.recommend.ranking import FeatureLayout
from taxiway.recommend.ranking_features import view_sides
from taxiway.recommend.ranking_online import OnlineRankingFeatures, attach_online_features
from taxiway.recommend.split import to_micros
from taxiway.recommend.training import train_recommender
from taxiway.serving.recommend_service import RecommendService, recommend_version
from taxiway.spec.project import Project

SERVE = START + timedelta(days=97)
"""The serving time: after the last interaction (day 100 is the data's end, minus a margin:
the newest interactions are the evaluation's)."""
RANKING = (
    "  ranking: {kind: lambdarank, features: [promo, profile, activity], "
    "params: {n_estimators: 40}}\n"
)
ACTIVITY = (
    "  activity: {source: events, entity: customer, aggregate: {events: count(*)}, "
    "windows: [10d, 30d]}\n"
)
USERS = [str(u) for u in range(0, 200, 13)]


def _project(root: Path) -> Project:
    world = World(users=200, seed=1)
    spec = make_project(root, world, ranking="").spec_path
    anchor = "  names: {source: customers, entity: customer, static: [name]}\n"
    spec.write_text(spec.read_text().replace(anchor, anchor + ACTIVITY) + RANKING)
    return Project.load(spec, root / "state")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelVersion]:
    """The world's folder and its registered recommender, trained as of SERVE."""
    root = tmp_path_factory.mktemp("ranking-online")
    project = _project(root)
    result = train_recommender(project, as_of=SERVE)
    return root, result.version


@pytest.fixture
def project(trained: tuple[Path, ModelVersion], tmp_path: Path) -> Project:
    """A copy of the trained world with a state of its own (registry, logs, online store)."""
    target = tmp_path / "world"
    shutil.copytree(trained[0], target)
    return Project.load(target / "taxiway.yaml", target / "state")


def _recommender(project: Project) -> Recommender:
    """The registered recommender, loaded as the service loads it (its snapshots only)."""
    return Recommender.load(recommender_folder(recommend_version(project)[0]))


def _online(project: Project, store: OnlineStore, recommender: Recommender) -> None:
    recommend = project.spec.recommend
    assert recommend is not None
    assert recommender.ranker is not None
    assert attach_online_features(project, recommender.ranker, store)


@pytest.fixture(scope="module")
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/0"


def _store(kind: str, project: Project, request: pytest.FixtureRequest) -> Iterator[OnlineStore]:
    if kind == "sqlite":
        store: OnlineStore = SqliteStore(project.state_dir / "online.sqlite")
    else:
        url = request.getfixturevalue("redis_url")
        from taxiway.features.online.redis import RedisStore

        store = RedisStore(url, f"tw-test-ranking:{uuid4().hex}", timeout_ms=2_000)
    try:
        yield store
    finally:
        store.clear()
        store.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(
    request: pytest.FixtureRequest, project: Project
) -> Iterator[OnlineStore]:  # the real stores: SQLite, and Redis when it is up
    yield from _store(str(request.param), project, request)


# --------------------------------------------------------------------------- skew


@pytest.mark.parametrize("when", ["cutoff", "serve"])
def test_served_features_equal_the_offline_point_in_time_values(
    project: Project, store: OnlineStore, when: str
) -> None:
    recommender = _recommender(project)
    ranker = recommender.ranker
    assert ranker is not None
    snapshots = ranker.snapshots.snapshots
    at_us = snapshots[-2].at_us if when == "cutoff" else to_micros(SERVE)
    offline = ranker.snapshots.at(at_us)
    assert offline is not None
    assert offline.at_us == at_us
    at = datetime.fromtimestamp(at_us / 1e6, UTC)
    materialize(project, store, as_of=at)
    _online(project, store, recommender)
    served = ranker.values_at(at_us, recommender.users, recommender.items)
    assert served is not None
    assert served.user_columns == offline.user_columns
    assert served.item_columns == offline.item_columns
    assert "user__activity__events_10d" in ranker.layout.names  # a windowed aggregate too
    users = np.arange(len(recommender.users), dtype=np.int32)
    items = np.arange(len(recommender.items), dtype=np.int32)
    np.testing.assert_array_equal(served.for_users(users), offline.user_values)
    np.testing.assert_array_equal(served.for_items(items), offline.item_values)
    # not a vacuous equality: the views have values, and they vary
    assert np.isfinite(offline.user_values).all()
    assert len(np.unique(offline.user_values, axis=0)) > 1
    assert len(np.unique(offline.item_values[:, 1:], axis=0)) > 1
    assert np.isfinite(offline.item_values).all()
    assert ranker.online is not None
    assert ranker.online.take_misses() == {}


def test_a_value_the_store_does_not_have_is_nan_and_counted(
    project: Project, store: OnlineStore
) -> None:
    recommender = _recommender(project)
    ranker = recommender.ranker
    assert ranker is not None
    materialize(project, store, as_of=SERVE)
    store.clear("customer")  # no user vector at all now
    store.clear("product")  # and item code 3 without its promo view (code 4 with it)
    without, with_promo = (str(i) for i in recommender.items[[3, 4]])
    store.write(
        "product",
        [
            (without, ViewValues("other", {"other__x": 1}, None, SERVE)),
            (with_promo, ViewValues("promo", {"promo__promoted": True}, SERVE, SERVE)),
        ],
    )
    _online(project, store, recommender)
    served = ranker.values_at(to_micros(SERVE), recommender.users, recommender.items)
    assert served is not None
    users = served.for_users(np.array([0, 5, 5], dtype=np.int32))
    assert users.shape == (3, len(ranker.layout.user_columns))
    assert np.isnan(users).all()
    items = served.for_items(np.array([3, 4], dtype=np.int32))
    promo = served.item_columns.index("promo__promoted")
    assert np.isnan(items[0, promo])
    assert items[1, promo] == 1.0
    assert np.isfinite(items[:, 0]).all()  # popularity is the interactions', not the store's
    assert ranker.online is not None
    misses = ranker.online.take_misses()
    assert misses == {
        ("profile", "missing"): 2,
        ("activity", "missing"): 2,
        ("promo", "missing"): 1,
    }
    assert ranker.online.take_misses() == {}  # taken once
    # and the ranker still answers
    lists = recommender.recommend(USERS[:3], SERVE)
    assert all(len(answer) == 10 for answer in lists)


def test_the_spec_and_the_ranker_must_agree_on_the_columns(project: Project) -> None:
    recommender = _recommender(project)
    ranker = recommender.ranker
    assert ranker is not None
    assert project.spec.recommend is not None
    layout = ranker.layout
    store = SqliteStore(project.state_dir / "online.sqlite")
    try:
        sides = view_sides(project, project.spec.recommend)
        swapped = FeatureLayout(layout.stages, layout.user_columns[::-1], layout.item_columns)
        with pytest.raises(ModelError, match="trained on user columns") as error:
            OnlineRankingFeatures(project.spec, store, sides, swapped)
        assert "train the recommender again" in str(error.value.fix)
    finally:
        store.close()


class CountingStore(SqliteStore):
    """The SQLite store, counting its reads (how many, how many keys): the round trips."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[tuple[str, int]] = []

    def read_records(self, entity: str, keys: Sequence[str]) -> Any:
        self.reads.append((entity, len(keys)))
        return super().read_records(entity, keys)


def test_every_candidates_items_are_one_read(project: Project) -> None:
    recommender = _recommender(project)
    assert recommender.ranker is not None
    store = CountingStore(project.state_dir / "online.sqlite")
    try:
        materialize(project, store, as_of=SERVE)
        _online(project, store, recommender)
        store.reads.clear()
        found = recommender.candidates(recommender.user_codes(USERS[:1]), to_micros(SERVE), 10)
        assert len(found.item) > 20  # both generators' top 20, united
        assert store.reads == [("customer", 1), ("product", len(set(found.item.tolist())))]
    finally:
        store.close()


# --------------------------------------------------------------------------- the service


def _ask(service: RecommendService, user: str, k: int = 10) -> Any:
    return asyncio.run(service.recommend(user, k))


def test_the_served_top_k_is_the_offline_top_k_with_ranking(project: Project) -> None:
    store = open_online_store(None, state_dir=project.state_dir, namespace=project.spec.name)
    try:
        materialize(project, store, as_of=SERVE)
    finally:
        store.close()
    offline = _recommender(project)  # the snapshot taken at SERVE, as training computed it
    service = RecommendService(project, clock=lambda: SERVE, reload_interval_s=0)
    try:
        ranker = service.recommender.ranker
        assert ranker is not None
        assert ranker.online is not None
        for user in USERS:
            answer = _ask(service, user)
            assert answer["path"] == "model"
            expected = offline.recommend([user], SERVE)[0]
            assert [i["item"] for i in answer["items"]] == [r.item for r in expected]
            assert [i["score"] for i in answer["items"]] == [r.score for r in expected]
        service.refresh_gauges()
        service.metrics.flush()
        assert b"taxiway_missing_features_total{" not in service.metrics.render()
    finally:
        service.close()


def test_an_empty_store_ranks_on_nan_and_counts_it(project: Project) -> None:
    service = RecommendService(project, clock=lambda: SERVE, reload_interval_s=0)
    try:
        answer = _ask(service, USERS[1])
        assert answer["path"] == "model"
        assert not answer["degraded"]
        assert len(answer["items"]) == 10
        service.refresh_gauges()
        service.metrics.flush()
        text = service.metrics.render().decode()
        assert 'taxiway_missing_features_total{status="missing",view="promo"}' in text
        assert 'taxiway_missing_features_total{status="missing",view="profile"}' in text
    finally:
        service.close()


def test_a_store_that_is_down_means_the_fallback_answers(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAXIWAY_FAULTS", "online_store=down")
    service = RecommendService(project, clock=lambda: SERVE, reload_interval_s=0)
    try:
        answer = _ask(service, USERS[1])
        assert answer["degraded"]
        assert answer["path"] == "fallback:itemknn"
        assert "model failed (FeatureError)" in answer["reason"]
    finally:
        service.close()


def test_a_store_that_cannot_be_read_is_a_feature_error(project: Project) -> None:
    recommender = _recommender(project)
    assert recommender.ranker is not None
    path = project.state_dir / "online.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir()  # a folder where the database should be: nothing can open it
    store = SqliteStore(path)
    try:
        _online(project, store, recommender)
        with pytest.raises(FeatureError):  # the service's step fails: its fallback answers
            recommender.recommend(USERS[:1], SERVE)
    finally:
        store.close()


# --------------------------------------------------------------------------- the handoff audit

SKIP = frozenset({"leakage", "filters", "coverage", "latency"})


def _default_store(project: Project) -> OnlineStore:
    return open_online_store(None, state_dir=project.state_dir, namespace=project.spec.name)


def test_the_audit_observes_no_skew_when_the_store_is_materialized(
    project: Project, trained: tuple[Path, ModelVersion]
) -> None:
    store = _default_store(project)
    try:
        materialize(project, store, as_of=SERVE)
    finally:
        store.close()
    report = run_recommend_audit(
        project, trained[1], sample=50, repeats=10, skip=SKIP - {"latency"}
    )
    assert report.status("skew") == "passed", report.markdown()
    # the latency check times the service's call: through the online store
    assert report.measured["latency"]["ranking_features_from"] == "the online store"
    measured = report.measured["skew"]
    assert measured["as_of"] == SERVE.isoformat()
    assert measured["differences"] == 0
    assert measured["compared"] == 50 * 3 + 50 * 1  # users x segment and 2 counts, items x promo
    assert measured["missing_online"] == {}


def test_the_audit_blocks_a_served_value_that_differs_from_offline(
    project: Project, trained: tuple[Path, ModelVersion]
) -> None:
    store = _default_store(project)
    try:
        materialize(project, store, as_of=SERVE)
        item = str(_recommender(project).items[0])
        store.write("product", [(item, ViewValues("promo", {"promo__promoted": 7}, SERVE, SERVE))])
    finally:
        store.close()
    report = run_recommend_audit(project, trained[1], sample=100, skip=SKIP)
    assert report.blocked
    (finding,) = [f for f in report.findings if f.check == "skew"]
    assert finding.feature == "item__promo__promoted"
    assert f"item {item}: online 7.0" in finding.evidence
    assert "materialize" in finding.fix


def test_the_audit_warns_when_the_ranking_views_were_never_materialized(
    project: Project, trained: tuple[Path, ModelVersion]
) -> None:
    report = run_recommend_audit(project, trained[1], skip=SKIP)
    assert report.status("skew") == "warning"
    assert "never materialized" in report.findings[0].evidence
