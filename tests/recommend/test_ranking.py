"""The ranking stage: LightGBM lambdarank over the generators' candidates, point in time.

The world: items belong to tastes, each user likes one; time runs in 10-day periods and each
period a random quarter of the items is promoted (known at the period's start). Most
interactions pick a promoted item of the user's taste: the generators, fitted on the past,
cannot see this period's promotions, the ranker reads them as of ``at``, so it must beat the
primary generator's order (measured on recall@10, not assumed).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from taxiway.errors import ModelError, TaxiwayError
from taxiway.recommend.catalog import Catalog
from taxiway.recommend.evaluation import evaluate
from taxiway.recommend.filters import AlreadySeen, Deny, ExclusionFilter, Unavailable
from taxiway.recommend.generators import Generator
from taxiway.recommend.generators.itemknn import ItemKnn
from taxiway.recommend.generators.popularity import Popularity
from taxiway.recommend.history import Histories
from taxiway.recommend.interactions import Interactions
from taxiway.recommend.pipeline import Recommender
from taxiway.recommend.ranking_features import snapshot_builder
from taxiway.recommend.ranking_training import ranking_examples, train_ranker
from taxiway.recommend.split import RecommendSplit, time_split, to_micros
from taxiway.recommend.training import train_recommender
from taxiway.spec.project import Project

START = datetime(2025, 1, 1, tzinfo=UTC)
DAY = 86_400_000_000
PERIOD = 10 * DAY


class World:
    """Interactions driven by per-period promotions (see the module's docstring)."""

    def __init__(
        self,
        *,
        users: int = 300,
        items: int = 80,
        tastes: int = 4,
        periods: int = 10,
        per_period: int = 3,
        promoted_share: float = 0.7,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.n_items = items
        self.periods = periods
        self.start_us = to_micros(START)
        taste = rng.permutation(np.arange(items) % tastes)  # every taste has items
        self.promoted: NDArray[np.bool_] = rng.random((periods, items)) < 0.25  # period x item
        liked = rng.integers(0, tastes, size=users)
        rows = []
        for period in range(periods):
            for user in range(users):
                mine = np.flatnonzero(taste == liked[user])
                hot = mine[self.promoted[period, mine]]
                for _ in range(per_period):
                    if len(hot) and rng.random() < promoted_share:
                        item = rng.choice(hot)
                    else:
                        item = rng.choice(mine)
                    at = self.start_us + period * PERIOD + int(rng.random() * PERIOD)
                    rows.append((user, int(item), at))
        user_col, item_col, at_col = (np.array(c) for c in zip(*rows, strict=True))
        self.data = Interactions(
            user=user_col.astype(np.int32),
            item=item_col.astype(np.int32),
            at=at_col.astype(np.int64),
            weight=np.ones(len(rows), np.float32),
            event=np.zeros(len(rows), np.int8),
            users=np.array([str(u) for u in range(users)], dtype=object),
            items=np.array([f"i{i}" for i in range(items)], dtype=object),
            events=("",),
        )
        self.cutoff_us = self.start_us + (periods - 1) * PERIOD

    def promoted_at(self, at_us: int) -> NDArray[np.float32]:
        """Each item's flag as known at ``at_us`` (the current period's, set at its start)."""
        period = (at_us - self.start_us) // PERIOD
        if period < 0:
            return np.full(self.n_items, np.nan, dtype=np.float32)
        flags: NDArray[np.bool_] = self.promoted[min(period, self.periods - 1)]
        return flags.astype(np.float32)

    def views(
        self, at_us: int
    ) -> tuple[tuple[str, ...], NDArray[np.float32], tuple[str, ...], NDArray[np.float32]]:
        users = np.zeros((self.data.n_users, 0), dtype=np.float32)
        return (), users, ("promoted",), self.promoted_at(at_us)[:, None]


def stages(_: int = 0) -> list[tuple[str, Generator]]:
    return [("itemknn", ItemKnn(k=20, neighbours=20)), ("popularity", Popularity(k=20))]


def fitted(
    world: World,
    *,
    filters: Sequence[ExclusionFilter] | None = None,
    catalog: Catalog | None = None,
) -> tuple[Recommender, RecommendSplit]:
    """The recommender fitted before the cutoff, with its trained ranker."""
    shelf = catalog or Catalog.listing(world.n_items)
    chosen = list(filters or [])
    split = time_split(world.data, world.cutoff_us)
    ranker = train_ranker(
        stages,
        world.data,
        world.cutoff_us,
        snapshot_builder(world.data, world.views),
        filters=chosen,
        catalog=shelf,
        k=10,
        serving_at_us=int(world.data.at.max()) + 1,
        params={"n_estimators": 60},
    )
    made = stages()
    for _, generator in made:
        generator.fit(split.train)
    recommender = Recommender(
        made,
        filters=chosen,
        catalog=shelf,
        histories=Histories.of(world.data),
        items=world.data.items,
        users=world.data.users,
        events=world.data.events,
        k=10,
        popularity_stage="popularity",
        ranker=ranker,
    )
    return recommender, split


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def trained(world: World) -> tuple[Recommender, RecommendSplit]:
    return fitted(world)


def test_the_ranker_beats_the_primary_generators_order_when_an_item_feature_matters(
    trained: tuple[Recommender, RecommendSplit],
) -> None:
    recommender, split = trained
    evaluation = evaluate(recommender, split, "recall@10")
    assert evaluation.unranked is not None
    ranked, unranked = evaluation.model["recall@10"], evaluation.unranked["recall@10"]
    popularity = evaluation.popularity["recall@10"]
    print(f"recall@10 ranked {ranked:.3f} unranked {unranked:.3f} popularity {popularity:.3f}")
    assert ranked > unranked * 1.2
    assert ranked > popularity
    assert set(evaluation.stage_share) == {"itemknn", "popularity"}
    assert recommender.ranker is not None
    facts = recommender.ranker.facts
    assert facts["fit_seconds"] >= 0
    assert facts["groups"] > 0
    assert facts["positives"] > 0


def test_stage_names_the_retriever_and_the_score_is_the_rankers(
    trained: tuple[Recommender, RecommendSplit],
) -> None:
    recommender, split = trained
    at = split.cutoff
    users = [str(u) for u in range(20)]
    lists = recommender.recommend(users, at)
    found = recommender.candidates(recommender.user_codes(users), split.cutoff_us, 10)
    assert recommender.ranker is not None
    scores = recommender.ranker.score(found)
    for row, answer in enumerate(lists):
        assert len(answer) == 10
        got = [r.score for r in answer]
        assert got == sorted(got, reverse=True)
        mine = found.row == row
        best = np.sort(scores[mine])[::-1][:10]
        assert np.allclose(got, best)
        assert {r.stage for r in answer} <= {"itemknn", "popularity"}
    # a restricted call (the service's fallbacks, the baseline) never ranks
    only = recommender.recommend(users[:3], at, stages=["popularity"])
    assert all(r.stage == "popularity" for answer in only for r in answer)
    plain = recommender.ranked(
        recommender.user_codes(users[:3]), split.cutoff_us, 10, stages=["popularity"]
    )
    assert [r.item for r in only[0]] == [str(recommender.items[i]) for i in plain.items[0]]


def test_save_and_load_give_identical_lists_and_scores(
    trained: tuple[Recommender, RecommendSplit], tmp_path: Path
) -> None:
    recommender, split = trained
    recommender.save(tmp_path / "rec")
    assert (tmp_path / "rec" / "ranker" / "model.txt").read_text().startswith("tree")
    assert not list((tmp_path / "rec").rglob("*.pkl"))
    loaded = Recommender.load(tmp_path / "rec")
    users = [str(u) for u in range(50)]
    for at in (split.cutoff, split.cutoff + timedelta(days=12)):
        assert loaded.recommend(users, at) == recommender.recommend(users, at)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    cut=st.integers(3, 8),
    back=st.integers(1, 20),
)
def test_no_training_label_comes_from_at_or_after_the_cutoff(
    seed: int, cut: int, back: int
) -> None:
    world = World(users=25, items=20, periods=9, per_period=2, seed=seed)
    data = world.data
    cutoff = world.start_us + cut * PERIOD
    at = cutoff - back * DAY // 2
    examples = ranking_examples(
        stages,
        data,
        cutoff,
        at,
        snapshot_builder(data, world.views),
        filters=[],
        catalog=Catalog.listing(world.n_items),
        k=5,
    )
    window = (data.at >= at) & (data.at < cutoff)
    allowed = set(zip(data.user[window].tolist(), data.item[window].tolist(), strict=True))
    found = examples.candidates
    users = examples.users[found.row]
    positive = examples.labels == 1
    labelled = set(zip(users[positive].tolist(), found.item[positive].tolist(), strict=True))
    assert labelled <= allowed
    # and every candidate the user did interact with in the window is a positive
    pairs = list(zip(users.tolist(), found.item.tolist(), strict=True))
    assert [p in allowed for p in pairs] == positive.tolist()
    assert examples.label_max_at_us is None or examples.label_max_at_us < cutoff
    # features read nothing after the training time: popularity counts only the past
    popularity = found.layout.names.index("item__item_interactions")
    counts = np.bincount(data.item[data.at < at], minlength=world.n_items)
    assert np.array_equal(found.features[:, popularity], counts[found.item].astype(np.float32))
    # nor do the users: only those known before the training time
    assert set(examples.users.tolist()) <= set(data.user[data.at < at].tolist())


def test_the_filters_hold_with_ranking(world: World) -> None:
    unavailable = np.arange(0, world.n_items, 7)
    rows = [(i, 0, i not in set(unavailable.tolist()), 0) for i in range(world.n_items)]
    item, at, available, category = (np.array(c) for c in zip(*rows, strict=True))
    shelf = Catalog(
        item=item.astype(np.int32),
        at=at.astype(np.int64),
        available=available.astype(bool),
        category=category.astype(np.int32),
        categories=("c0",),
        n_items=world.n_items,
    )
    denied = np.array([1, 2, 3], dtype=np.int32)
    filters: list[ExclusionFilter] = [
        AlreadySeen(lookback_us=20 * DAY, event_types=None),
        Unavailable(),
        Deny(items=denied),
    ]
    recommender, split = fitted(world, filters=filters, catalog=shelf)
    users = [str(u) for u in range(0, 300, 3)]
    for when in (split.cutoff, split.cutoff + timedelta(days=5)):
        at_us = to_micros(when)
        recent = [[f"i{(u * 5) % world.n_items}"] for u in range(len(users))]
        lists = recommender.recommend(users, when, recent=recent)
        for user, extra, answer in zip(users, recent, lists, strict=True):
            code = int(user)
            mine = (
                (world.data.user == code)
                & (world.data.at < at_us)
                & (world.data.at >= at_us - 20 * DAY)
            )
            seen = {f"i{i}" for i in world.data.item[mine]} | set(extra)
            banned = seen | {f"i{i}" for i in unavailable} | {f"i{i}" for i in denied}
            assert answer
            assert not {r.item for r in answer} & banned


def test_a_ranker_without_any_positive_says_what_to_do(world: World) -> None:
    empty = world.data.where(world.data.at < world.start_us + PERIOD)
    with pytest.raises(ModelError, match="nothing to learn"):
        train_ranker(
            stages,
            empty,
            world.start_us + PERIOD + 1,
            snapshot_builder(empty),
            filters=[],
            catalog=Catalog.listing(world.n_items),
            k=10,
            times=[world.start_us + PERIOD],
        )


# --------------------------------------------------------------------------- through the spec


def make_project(root: Path, world: World, *, ranking: str) -> Project:
    """The world as files: events, products, promotions (a history per period), customers."""
    data = root / "data"
    data.mkdir(parents=True)
    events = world.data
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array(events.user.astype(np.int64)),
                "product_id": pa.array([f"i{i}" for i in events.item]),
                "at": pa.array(events.at, pa.timestamp("us", tz="UTC")),
            }
        ),
        data / "events.parquet",
    )
    pq.write_table(
        pa.table({"product_id": [f"i{i}" for i in range(world.n_items)]}),
        data / "products.parquet",
    )
    period, item = np.nonzero(np.ones_like(world.promoted))
    pq.write_table(
        pa.table(
            {
                "product_id": [f"i{i}" for i in item],
                "changed_at": pa.array(
                    world.start_us + period.astype(np.int64) * PERIOD, pa.timestamp("us", tz="UTC")
                ),
                "promoted": pa.array(world.promoted[period, item]),
            }
        ),
        data / "promotions.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array(np.arange(events.n_users, dtype=np.int64)),
                "segment": pa.array(np.arange(events.n_users) % 3, pa.int64()),
                "name": [f"c{u}" for u in range(events.n_users)],
            }
        ),
        data / "customers.parquet",
    )
    spec = root / "taxiway.yaml"
    spec.write_text(
        textwrap.dedent(
            """\
            name: promo-recs
            sources:
              events: {kind: file, path: data/events.parquet, timestamp: at}
              products: {kind: file, path: data/products.parquet}
              promotions: {kind: file, path: data/promotions.parquet, timestamp: changed_at}
              customers: {kind: file, path: data/customers.parquet}
            entities: {customer: customer_id, product: product_id}
            features:
              promo: {source: promotions, entity: product, latest: [promoted]}
              profile: {source: customers, entity: customer, static: [segment]}
              names: {source: customers, entity: customer, static: [name]}
            recommend:
              interactions: {source: events, user: customer_id, item: product_id}
              catalog: {source: products, item: product_id}
              candidates:
                - {kind: itemknn, k: 20, neighbours: 20}
                - {kind: popularity, k: 20}
              filters: []   # the world's users buy their taste's items again and again
              k: 10
              metric: recall@10
            """
        )
        + f"  split: {{cutoff: {datetime.fromtimestamp(world.cutoff_us / 1e6, UTC).isoformat()}}}\n"
        + ranking
    )
    return Project.load(spec, root / "state")


def test_train_recommender_trains_judges_and_registers_the_ranking_stage(tmp_path: Path) -> None:
    world = World(users=200, seed=1)
    project = make_project(
        tmp_path,
        world,
        ranking="  ranking: {kind: lambdarank, features: [promo, profile], "
        "params: {n_estimators: 50}}\n",
    )
    steps: list[str] = []
    result = train_recommender(project, progress=steps.append)
    evaluation = result.evaluation
    assert evaluation.unranked is not None
    assert evaluation.model["recall@10"] > evaluation.unranked["recall@10"]
    assert result.beats_baseline
    assert "ranker" in result.training_seconds
    assert any("ranking stage" in s for s in steps)
    metrics = result.version.metrics
    assert "item__promo__promoted" in metrics["ranking"]["features"]
    assert "user__profile__segment" in metrics["ranking"]["features"]
    assert metrics["ranking"]["label_max_at"] < result.version.training["cutoff"]
    folder = Path(result.version.artifact_dir)
    loaded = Recommender.load(folder)
    assert loaded.ranker is not None
    users = [str(u) for u in range(30)]
    assert loaded.recommend(users, result.split.cutoff) == Recommender.load(folder).recommend(
        users, result.split.cutoff
    )


def test_a_text_feature_is_refused_with_the_fix(tmp_path: Path) -> None:
    world = World(users=60, items=30, periods=6, seed=2)
    project = make_project(
        tmp_path, world, ranking="  ranking: {kind: lambdarank, features: [names]}\n"
    )
    with pytest.raises(TaxiwayError, match="the ranker takes numbers") as error:
        train_recommender(project)
    assert "drop `names`" in str(error.value.fix)
