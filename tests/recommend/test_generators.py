"""The conformance suite every candidate generator and the ranking stage pass (base.py states
the rules; the ranking stage's section at the end says which apply to a re-ranker and why).

Each kind is fitted once on the synthetic taste data's training split; ``als_index`` and
``bpr_index`` are ALS and BPR with ``exact_limit`` below the catalog, so their top() searches
the faiss index: the approximate path keeps the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.recommend.catalog import Catalog
from taxiway.recommend.generators import (
    KINDS,
    Als,
    Bpr,
    Ease,
    Generator,
    ItemKnn,
    Popularity,
    SegmentPopularity,
    generator_for,
    load_generator,
)
from taxiway.recommend.generators.factors import FactorIndex
from taxiway.recommend.generators.topk import top_k
from taxiway.recommend.interactions import Interactions
from taxiway.recommend.ranking import Ranker, candidates, order_by_score
from taxiway.recommend.ranking_features import snapshot_builder
from taxiway.recommend.ranking_training import train_ranker
from taxiway.spec.recommend import (
    AlsGenerator,
    BprGenerator,
    EaseGenerator,
    ItemKnnGenerator,
    PopularityGenerator,
    SegmentPopularityGenerator,
)
from taxiway.spec.recommend import Generator as GeneratorSpec

from . import synthetic

DATA = synthetic.interactions(users=300, items=200, per_user=30, seed=3)
TRAIN, TEST, CUTOFF = synthetic.split(DATA)
SEEN = TRAIN.matrix()
CATEGORIES = synthetic.categories(DATA, seed=3)  # the taste groups: categories carry taste

MAKERS: dict[str, Callable[[], Generator]] = {
    "popularity": lambda: Popularity(k=20),
    "segment_popularity": lambda: SegmentPopularity(k=20, categories=CATEGORIES),
    "itemknn": lambda: ItemKnn(k=20, neighbours=30),
    "ease": lambda: Ease(k=20, l2=50.0),
    "als": lambda: Als(k=20, factors=16, iterations=8, regularization=0.1),
    "bpr": lambda: Bpr(k=20, factors=16, iterations=60, learning_rate=0.01),
    "als_index": lambda: Als(k=20, factors=16, iterations=8, regularization=0.1, exact_limit=50),
    "bpr_index": lambda: Bpr(k=20, factors=16, iterations=60, learning_rate=0.01, exact_limit=50),
}
PERSONALISED = [name for name in MAKERS if name != "popularity"]


@pytest.fixture(scope="module")
def fitted() -> dict[str, Generator]:
    generators = {}
    for name, make in MAKERS.items():
        generator = make()
        generator.fit(TRAIN)
        generators[name] = generator
    return generators


def rows(*users: int) -> sp.csr_matrix:
    return sp.csr_matrix(SEEN[list(users)])


def recall_at_10(generator: Generator | RankingStage) -> float:
    """Mean recall@10 over users with interactions on both sides of the cutoff, seen items
    excluded (the already_seen filter's effect)."""
    later = TEST.matrix()
    users = np.flatnonzero((np.diff(SEEN.indptr) > 0) & (np.diff(later.indptr) > 0))
    history = sp.csr_matrix(SEEN[users])
    items, _ = generator.top(history, 10, exclude=history)
    recalls = [
        len(set(items[row].tolist()) & set(later[user].indices.tolist())) / min(10, later[user].nnz)
        for row, user in enumerate(users)
    ]
    return float(np.mean(recalls))


def test_every_kind_is_in_the_suite() -> None:
    assert set(KINDS) <= {name.removesuffix("_index") for name in MAKERS}


@pytest.mark.parametrize("name", MAKERS)
def test_shapes_order_and_padding(fitted: dict[str, Generator], name: str) -> None:
    k = TRAIN.n_items + 7  # more than the catalog: the tail must be padding
    items, scores = fitted[name].top(rows(0, 1, 2, 3), k)
    assert items.shape == scores.shape == (4, k)
    assert items.dtype == np.int32
    assert scores.dtype == np.float32
    for line, values in zip(items, scores, strict=True):
        real = line >= 0
        count = int(real.sum())
        assert real[:count].all()
        assert not real[count:].any()
        assert (line[count:] == -1).all()
        assert np.isneginf(values[count:]).all()
        assert np.isfinite(values[:count]).all()
        assert (np.diff(values[:count]) <= 0).all()  # best first
        assert len(set(line[:count].tolist())) == count  # no item twice
        assert (line[:count] < TRAIN.n_items).all()


@pytest.mark.parametrize("name", MAKERS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), density=st.floats(0.0, 1.0), k=st.integers(1, 60))
def test_excluded_items_never_come_back(
    fitted: dict[str, Generator], name: str, seed: int, density: float, k: int
) -> None:
    rng = np.random.default_rng(seed)
    users = rng.choice(TRAIN.n_users, size=6, replace=False)
    exclude = sp.csr_matrix(rng.random((6, TRAIN.n_items)) < density, dtype=np.float32)
    items, _ = fitted[name].top(rows(*users), k, exclude=exclude)
    for row in range(6):
        returned = items[row][items[row] >= 0]
        assert not set(returned.tolist()) & set(exclude[row].indices.tolist())


@pytest.mark.parametrize("name", MAKERS)
def test_the_same_answer_every_time_and_after_save_load(
    fitted: dict[str, Generator], name: str, tmp_path: Path
) -> None:
    generator = fitted[name]
    history = rows(*range(20))
    exclude = sp.csr_matrix(np.eye(20, TRAIN.n_items, dtype=np.float32))
    first = generator.top(history, 15, exclude)
    again = generator.top(history, 15, exclude)
    generator.save(tmp_path / name)
    loaded = load_generator(tmp_path / name)
    assert type(loaded) is type(generator)
    assert loaded.k == generator.k
    after = loaded.top(history, 15, exclude)
    for answer in (again, after):
        np.testing.assert_array_equal(first[0], answer[0])
        np.testing.assert_array_equal(first[1], answer[1])
    assert not list(tmp_path.rglob("*.pkl"))
    assert not list(tmp_path.rglob("*.pickle"))


@pytest.mark.parametrize("name", PERSONALISED)
def test_a_new_user_history_gets_candidates_of_its_taste(
    fitted: dict[str, Generator], name: str
) -> None:
    # two users unseen at fit, each the history of a test user of a different taste
    later = TEST.matrix()
    a, b = np.argsort(-np.diff(later.indptr))[:2]
    history = sp.csr_matrix(later[[a, b]])
    items, _ = fitted[name].top(history, 10)
    assert (items >= 0).all()
    assert items[0].tolist() != items[1].tolist()  # the history, not only popularity, counts


@pytest.mark.parametrize("name", MAKERS)
def test_an_empty_history(fitted: dict[str, Generator], name: str) -> None:
    items, _ = fitted[name].top(sp.csr_matrix((2, TRAIN.n_items), dtype=np.float32), 5)
    if name == "popularity":
        assert (items >= 0).all()
        np.testing.assert_array_equal(items[0], items[1])
    else:  # nothing to go on: no item, so the pipeline falls back
        assert (items == -1).all()


@pytest.mark.parametrize("name", PERSONALISED)
def test_personalised_kinds_beat_popularity(fitted: dict[str, Generator], name: str) -> None:
    # measured on this split: popularity about 0.07, the personalised kinds 0.18-0.24
    # (segment_popularity, where categories are the tastes: see test_segment_popularity.py)
    assert recall_at_10(fitted[name]) > 1.5 * recall_at_10(fitted["popularity"])


@pytest.mark.parametrize("name", MAKERS)
def test_a_history_of_another_catalog_is_refused(fitted: dict[str, Generator], name: str) -> None:
    with pytest.raises(ModelError, match="fitted on 200 items"):
        fitted[name].top(sp.csr_matrix((1, 7), dtype=np.float32), 5)


@pytest.mark.parametrize("name", MAKERS)
def test_fit_on_nothing_is_a_clear_error(name: str) -> None:
    empty = TRAIN.where(np.zeros(len(TRAIN), dtype=bool))
    with pytest.raises(ModelError, match="empty"):
        MAKERS[name]().fit(empty)


@pytest.mark.parametrize("name", MAKERS)
def test_fit_on_one_item_is_an_error_or_a_sensible_answer(name: str) -> None:
    one = TRAIN.where(TRAIN.item == TRAIN.item[0])
    generator = MAKERS[name]()
    if name.startswith("bpr"):  # BPR ranks a touched item above an untouched one: none here
        with pytest.raises(ModelError, match="touch 1 item"):
            generator.fit(one)
        return
    generator.fit(one)
    items, _scores = generator.top(rows(0, 1), 5)
    assert items.shape == (2, 5)
    assert set(items.ravel().tolist()) <= {-1, *range(TRAIN.n_items)}


@pytest.mark.parametrize("name", MAKERS)
def test_an_unfitted_generator_says_so(name: str) -> None:
    with pytest.raises(ModelError, match="not fitted"):
        MAKERS[name]().top(rows(0), 5)


def test_generator_for_reads_each_kind_from_the_spec() -> None:
    specs: list[GeneratorSpec] = [
        PopularityGenerator(kind="popularity", k=7, window=timedelta(days=3)),
        ItemKnnGenerator(kind="itemknn", k=7, neighbours=9),
        EaseGenerator(kind="ease", k=7, l2=3.0),
        AlsGenerator(kind="als", k=7, factors=5, exact_limit=11),
        BprGenerator(kind="bpr", k=7, factors=5, learning_rate=0.5),
        SegmentPopularityGenerator(kind="segment_popularity", k=7, window=timedelta(days=2)),
    ]
    made = [generator_for(spec, categories=CATEGORIES) for spec in specs]
    kinds = ["popularity", "itemknn", "ease", "als", "bpr", "segment_popularity"]
    assert [g.kind for g in made] == kinds
    assert all(g.k == 7 for g in made)
    popularity, itemknn, ease, als, bpr, segment = made
    assert isinstance(popularity, Popularity)
    assert popularity.window == timedelta(days=3)
    assert isinstance(itemknn, ItemKnn)
    assert itemknn.neighbours == 9
    assert isinstance(ease, Ease)
    assert ease.l2 == 3.0
    assert isinstance(als, Als)
    assert (als.factors, als.exact_limit) == (5, 11)
    assert isinstance(bpr, Bpr)
    assert bpr.learning_rate == 0.5
    assert isinstance(segment, SegmentPopularity)
    assert segment.window == timedelta(days=2)
    assert segment.categories is not None
    np.testing.assert_array_equal(segment.categories, CATEGORIES)
    with pytest.raises(ModelError, match="needs the items' categories"):
        generator_for(specs[-1])


def test_popularity_counts_the_window_before_the_newest_interaction() -> None:
    day = 86_400_000_000
    train = Interactions(
        user=np.array([0, 0, 1, 1, 1], np.int32),
        item=np.array([0, 0, 1, 2, 2], np.int32),
        at=np.array([0, 1, 8 * day, 9 * day, 10 * day], np.int64),
        weight=np.array([5, 5, 1, 1, 1], np.float32),
        event=np.zeros(5, np.int8),
        users=np.array(["a", "b"], object),
        items=np.array(["x", "y", "z"], object),
        events=("",),
    )
    everything, recent = Popularity(k=3), Popularity(k=3, window=timedelta(days=3))
    everything.fit(train)
    recent.fit(train)
    empty = sp.csr_matrix((1, 3), dtype=np.float32)
    assert everything.top(empty, 3)[0].tolist() == [[0, 2, 1]]
    assert recent.top(empty, 3)[0].tolist() == [[2, 1, -1]]  # x is older than 3 days


def test_itemknn_keeps_at_most_its_neighbours(fitted: dict[str, Generator]) -> None:
    generator = fitted["itemknn"]
    assert isinstance(generator, ItemKnn)
    assert generator.similarity is not None
    per_item = np.diff(generator.similarity.indptr)
    assert per_item.max() <= 30
    assert (generator.similarity.diagonal() == 0).all()


def test_ease_refuses_a_catalog_above_its_limit() -> None:
    with pytest.raises(ModelError, match="limited to 100 items") as raised:
        Ease(max_items=100).fit(TRAIN)
    assert raised.value.fix is not None
    assert "itemknn" in raised.value.fix


@pytest.mark.parametrize("name", ["als_index", "bpr_index"])
def test_the_index_finds_what_exact_scoring_finds(fitted: dict[str, Generator], name: str) -> None:
    approximate = fitted[name]
    exact = MAKERS[name.removesuffix("_index")]()
    exact.fit(TRAIN)
    history = rows(*range(50))
    found, _ = approximate.top(history, 10, exclude=history)
    truth, _ = exact.top(history, 10, exclude=history)
    overlap = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert overlap >= 0.95


def _index_and_users(
    items: int = 5000, users: int = 20, dims: int = 16
) -> tuple[FactorIndex, NDArray[np.float32]]:
    rng = np.random.default_rng(11)
    factors = rng.standard_normal((items, dims)).astype(np.float32)
    index = FactorIndex(factors, exact_limit=100)  # far below the catalog: the faiss path
    assert index.approximate
    return index, rng.standard_normal((users, dims)).astype(np.float32)


@pytest.mark.parametrize("excluded", [3000, 4800])  # the graph search; then exact (< 10% left)
def test_the_index_filters_thousands_of_items_and_still_finds_k(excluded: int) -> None:
    index, users = _index_and_users()
    rng = np.random.default_rng(excluded)
    # each row bans its own items, the best ones among them (the already-seen case)
    banned = []
    for user in users:
        ranked = np.argsort(-(index.item_factors @ user))
        banned.append(
            np.sort(np.r_[ranked[:500], rng.choice(ranked[500:], excluded - 500, replace=False)])
        )
    exclude = sp.csr_matrix(
        (
            np.ones(sum(len(b) for b in banned), dtype=np.float32),
            np.concatenate(banned),
            np.cumsum([0] + [len(b) for b in banned]),
        ),
        shape=(len(users), index.n_items),
    )
    no_row_empty = np.zeros(len(users), dtype=bool)
    items, scores = index.top(users, 10, exclude, no_row_empty)
    truth, _ = top_k(users @ index.item_factors.T, 10, exclude)
    for row in range(len(users)):
        assert (items[row] >= 0).all()  # k valid items
        assert not set(items[row].tolist()) & set(banned[row].tolist())
        assert (np.diff(scores[row]) <= 0).all()
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(items, truth, strict=True)])
    assert recall >= 0.95


def test_the_index_pads_a_row_that_allows_fewer_than_k() -> None:
    index, users = _index_and_users(users=2)
    exclude = sp.csr_matrix(np.ones((2, index.n_items), dtype=np.float32))
    exclude[0, [7, 42, 4999]] = 0
    exclude.eliminate_zeros()
    items, scores = index.top(users, 5, exclude, np.zeros(2, dtype=bool))
    assert sorted(items[0][:3].tolist()) == [7, 42, 4999]
    assert (items[0][3:] == -1).all()
    assert np.isneginf(scores[0][3:]).all()
    assert (items[1] == -1).all()


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_items=st.integers(1, 40),
    k=st.integers(1, 50),
    positive_only=st.booleans(),
)
def test_top_k_equals_a_full_sort(seed: int, n_items: int, k: int, positive_only: bool) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(-3, 4, size=(4, n_items)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.1] = np.nan
    scores[rng.random(scores.shape) < 0.1] = np.inf
    exclude = sp.csr_matrix(rng.random(scores.shape) < 0.3, dtype=np.float32)
    before = scores.copy()
    items, values = top_k(scores, k, exclude, positive_only=positive_only)
    np.testing.assert_array_equal(scores, before)  # the caller's scores untouched
    for row in range(4):
        line = scores[row]
        ok = np.isfinite(line) & (exclude[row].toarray()[0] == 0)
        if positive_only:
            ok &= line > 0
        codes = np.flatnonzero(ok)
        expected = codes[np.lexsort((codes, -line[codes]))][:k]
        assert items[row][: expected.size].tolist() == expected.tolist()
        assert (items[row][expected.size :] == -1).all()
        np.testing.assert_array_equal(values[row][: expected.size], line[expected])


# --------------------------------------------------------------------------- the ranking stage
#
# The ranking stage passes the same suite, where a property applies to a re-ranker. As a
# generator it is ``top(history, k, exclude)``: the generators below retrieve (each its own top
# max(its k, k), the exclusions left out), the fitted LightGBM lambdarank orders their union by
# its score (ranking.candidates + Ranker.score + order_by_score: what Recommender.ranked runs).
# The rows are histories with no user behind them (user code -1): user features missing, as for
# a user unknown at training.


class RankingStage:
    """The ranking stage over fitted generators, with the generators' ``top`` signature."""

    kind = "ranking"

    def __init__(self, stages: list[tuple[str, Generator]], ranker: Ranker) -> None:
        self.stages = stages
        self.ranker = ranker

    def top(
        self, history: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None = None
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        shape = history.shape
        banned = sp.csr_matrix(shape, dtype=np.float32) if exclude is None else exclude
        users = np.full(shape[0], -1, dtype=np.int32)
        snapshot = self.ranker.snapshots.at(CUTOFF)
        found = candidates(self.stages, history, banned, users, snapshot, self.ranker.layout, k)
        items, scores, _ = order_by_score(found, self.ranker.score(found), k)
        return items, scores


def _ranking_stages(_: int = 0) -> list[tuple[str, Generator]]:
    return [("itemknn", ItemKnn(k=20, neighbours=30)), ("popularity", Popularity(k=20))]


def _ranker(data: Interactions) -> Ranker:
    return train_ranker(
        _ranking_stages,
        data,
        CUTOFF,
        snapshot_builder(data),
        filters=[],
        catalog=Catalog.listing(data.n_items),
        k=10,
        params={"n_estimators": 40},
    )


@pytest.fixture(scope="module")
def ranking() -> RankingStage:
    stages = _ranking_stages()
    for _, generator in stages:
        generator.fit(TRAIN)
    return RankingStage(stages, _ranker(DATA))


def test_ranking_shapes_order_and_padding(ranking: RankingStage) -> None:
    k = TRAIN.n_items + 7  # more than the catalog (and than the candidates): padding
    items, scores = ranking.top(rows(0, 1, 2, 3), k)
    assert items.shape == scores.shape == (4, k)
    assert items.dtype == np.int32
    assert scores.dtype == np.float32
    for line, values in zip(items, scores, strict=True):
        count = int((line >= 0).sum())
        assert count > 0
        assert (line[:count] >= 0).all()
        assert (line[count:] == -1).all()
        # padding scores are 0, not -inf: the pipeline's lists (Ranked) pad so, the ranker's
        # scores being LightGBM's, of any sign; the items' -1 is what marks the padding
        assert (values[count:] == 0).all()
        assert np.isfinite(values[:count]).all()
        assert (np.diff(values[:count]) <= 0).all()  # best first
        assert len(set(line[:count].tolist())) == count  # no item twice
        assert (line[:count] < TRAIN.n_items).all()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), density=st.floats(0.0, 1.0), k=st.integers(1, 60))
def test_ranking_never_returns_an_excluded_item(
    ranking: RankingStage, seed: int, density: float, k: int
) -> None:
    rng = np.random.default_rng(seed)
    users = rng.choice(TRAIN.n_users, size=6, replace=False)
    exclude = sp.csr_matrix(rng.random((6, TRAIN.n_items)) < density, dtype=np.float32)
    items, _ = ranking.top(rows(*users), k, exclude=exclude)
    assert items.shape == (6, k)  # at most k
    for row in range(6):
        returned = items[row][items[row] >= 0]
        assert not set(returned.tolist()) & set(exclude[row].indices.tolist())


def test_ranking_the_same_answer_every_time_and_after_save_load(
    ranking: RankingStage, tmp_path: Path
) -> None:
    history = rows(*range(20))
    exclude = sp.csr_matrix(np.eye(20, TRAIN.n_items, dtype=np.float32))
    first = ranking.top(history, 15, exclude)
    again = ranking.top(history, 15, exclude)
    ranking.ranker.save(tmp_path / "ranker")
    loaded = RankingStage(ranking.stages, Ranker.load(tmp_path / "ranker"))
    after = loaded.top(history, 15, exclude)
    for answer in (again, after):
        np.testing.assert_array_equal(first[0], answer[0])
        np.testing.assert_array_equal(first[1], answer[1])
    # and training again on the same data gives the same ranker (deterministic LightGBM)
    retrained = RankingStage(ranking.stages, _ranker(DATA)).top(history, 15, exclude)
    np.testing.assert_array_equal(first[0], retrained[0])
    assert not list(tmp_path.rglob("*.pkl"))
    assert not list(tmp_path.rglob("*.pickle"))


def test_ranking_a_new_user_history_gets_candidates_of_its_taste(ranking: RankingStage) -> None:
    later = TEST.matrix()
    a, b = np.argsort(-np.diff(later.indptr))[:2]
    items, _ = ranking.top(sp.csr_matrix(later[[a, b]]), 10)
    assert (items >= 0).all()
    assert items[0].tolist() != items[1].tolist()


def test_ranking_an_empty_history(ranking: RankingStage) -> None:
    # unlike a personalised generator, the ranker has candidates: popularity retrieves for
    # anyone; with nothing known of either row, both get the same ranked list
    items, _ = ranking.top(sp.csr_matrix((2, TRAIN.n_items), dtype=np.float32), 5)
    assert (items >= 0).all()
    np.testing.assert_array_equal(items[0], items[1])


def test_ranking_beats_popularity(ranking: RankingStage, fitted: dict[str, Generator]) -> None:
    assert recall_at_10(ranking) > 1.5 * recall_at_10(fitted["popularity"])


def test_ranking_a_history_of_another_catalog_is_refused(ranking: RankingStage) -> None:
    with pytest.raises(ModelError, match="fitted on 200 items"):
        ranking.top(sp.csr_matrix((1, 7), dtype=np.float32), 5)


def test_ranking_fit_on_nothing_is_a_clear_error() -> None:
    empty = TRAIN.where(np.zeros(len(TRAIN), dtype=bool))
    with pytest.raises(ModelError, match="no interaction before the cutoff"):
        _ranker(empty)


def test_ranking_fit_on_one_item_is_an_error_or_a_sensible_answer() -> None:
    one = DATA.where(DATA.item == DATA.item[0])
    stages = _ranking_stages()
    for _, generator in stages:
        generator.fit(one.before(CUTOFF))
    items, _ = RankingStage(stages, _ranker(one)).top(rows(0, 1), 5)
    assert items.shape == (2, 5)
    assert set(items.ravel().tolist()) <= {-1, int(DATA.item[0])}


# Not applicable to the ranking stage:
# - "an unfitted generator says so": a Ranker exists only fitted (train_ranker returns one,
#   Ranker.load reads a saved booster, and a missing or bad model.txt is a ModelError there);
# - "generator_for reads each kind from the spec": the stage is recommend.ranking, read by
#   train_spec_ranker (tests/recommend/test_ranking.py trains it through the spec).
