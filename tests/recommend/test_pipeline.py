"""The Recommender: stages in order, recent items, save/load, and one code path with evaluation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.recommend.pipeline_world import catalog, interactions, recommender

from taxiway.errors import ModelError
from taxiway.recommend.evaluation import evaluate, lists_at_cutoff
from taxiway.recommend.filters import AlreadySeen, Deny, Unavailable
from taxiway.recommend.pipeline import Recommender, _is_in, _mask_of
from taxiway.recommend.split import from_micros, time_split

N_USERS, N_ITEMS = 40, 12
LATER = datetime(2000, 1, 1, tzinfo=UTC)


def _rows(seed: int = 7) -> list[tuple[int, int, int, int]]:
    """Two tastes: even users like items 0-5, odd users items 6-11; item 0 and 6 are hits."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(N_USERS):
        base = 0 if user % 2 == 0 else 6
        for _ in range(6):
            item = base + (0 if rng.random() < 0.3 else int(rng.integers(0, 6)))
            rows.append((user, item, int(rng.integers(0, 1_000)), int(rng.integers(0, 2))))
    return rows


def _model(**kwargs: object) -> Recommender:
    every = interactions(_rows(), N_USERS, N_ITEMS)
    shelf = catalog(
        [(i, 0, True, i % 3) for i in range(N_ITEMS)] + [(3, 500, False, 0), (9, 800, False, 0)],
        N_ITEMS,
    )
    filters = [AlreadySeen(lookback_us=600), Unavailable(), Deny(items=np.array([11], np.int32))]
    return recommender(every.before(900), every, shelf, filters, **kwargs)  # type: ignore[arg-type]


def test_save_and_load_give_identical_lists(tmp_path: Path) -> None:
    model = _model(kinds=("itemknn",), k=4, max_per_category=2)
    users = [f"u{u}" for u in range(N_USERS)] + ["new"]
    recent = [["i01"]] * N_USERS + [["i07", "i08", "nope"]]
    model.save(tmp_path / "rec")
    loaded = Recommender.load(tmp_path / "rec")
    assert loaded.generators == model.generators == ["itemknn", "popularity"]
    assert loaded.items.tolist() == model.items.tolist()
    for at in (100, 700, 950):
        when = from_micros(at)
        assert loaded.recommend(users, when, recent=recent) == model.recommend(
            users, when, recent=recent
        )


def test_recommend_for_a_user_at_t_equals_the_evaluation_list() -> None:
    model = _model(kinds=("itemknn",), k=4)
    split = time_split(interactions(_rows(), N_USERS, N_ITEMS), 900)
    ranked = lists_at_cutoff(model, split, 4)
    for row, code in enumerate(split.evaluated_users.tolist()):
        served = model.recommend([f"u{code}"], split.cutoff)[0]
        offline = [
            (str(model.items[i]), float(s), ranked.stages[g])
            for i, s, g in zip(
                ranked.items[row], ranked.scores[row], ranked.stage[row], strict=True
            )
            if i >= 0
        ]
        assert [(r.item, r.score, r.stage) for r in served] == offline


def test_the_primary_fills_first_and_popularity_fills_what_it_cannot() -> None:
    model = _model(kinds=("itemknn",), k=4)
    known, stranger = model.recommend(["u0", "stranger"], LATER)
    assert known
    assert known[0].stage == "itemknn"
    # a user nobody knows has no history: itemknn gives nothing, popularity answers
    assert stranger
    assert {r.stage for r in stranger} == {"popularity"}
    assert [r.item for r in stranger] == [
        r.item for r in model.recommend(["stranger"], LATER, stages=["popularity"])[0]
    ]


def test_recent_items_count_for_an_unknown_user_and_are_not_shown_back() -> None:
    model = _model(kinds=("itemknn",), k=4)
    at = from_micros(950)
    answer = model.recommend(["stranger"], at, recent=[["i06", "i07"]])[0]
    items = [r.item for r in answer]
    assert "i06" not in items
    assert "i07" not in items
    assert answer[0].stage == "itemknn"
    assert all(int(i[1:]) >= 6 for i in items if answer[items.index(i)].stage == "itemknn")


def test_evaluation_judges_the_model_against_popularity_on_the_same_users() -> None:
    every = interactions(_rows(), N_USERS, N_ITEMS)
    split = time_split(every, 900)
    model = _model(kinds=("itemknn",), k=4)
    result = evaluate(model, split, "recall@2")
    assert set(result.model) >= {"recall@4", "ndcg@4", "map@4", "hit_rate@4", "recall@2"}
    assert set(result.model) >= {"coverage", "avg_popularity", "gini"}
    assert result.users == len(split.evaluated_users)
    assert result.stage_share["popularity"] < 0.5
    assert result.beats_baseline == (result.model["recall@2"] > result.popularity["recall@2"])


def test_an_unknown_stage_names_the_stages() -> None:
    model = _model(kinds=("itemknn",), k=4)
    with pytest.raises(ModelError, match="itemknn, popularity"):
        model.recommend(["u0"], LATER, stages=["ease"])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(0, 6),
    n_items=st.integers(1, 30),
    density=st.floats(0.0, 1.0),
)
def test_is_in_and_mask_of_agree_with_a_dense_lookup(
    seed: int, rows: int, n_items: int, density: float
) -> None:
    rng = np.random.default_rng(seed)
    dense = (rng.random((rows, n_items)) < density).astype(np.float32)
    # each row's columns stored in descending order (unsorted CSR), the first one a stored
    # zero: only the non-zeros count, in whatever order they lie
    indices = [np.flatnonzero(line)[::-1] for line in dense]
    indptr = np.cumsum([0] + [len(i) for i in indices])
    flat = np.concatenate([*indices, np.zeros(0, np.int64)]).astype(np.int32)
    data = np.ones(len(flat), dtype=np.float32)
    if len(flat):
        data[0] = 0.0
        dense[np.searchsorted(indptr, 0, side="right") - 1, flat[0]] = 0.0
    mask = sp.csr_matrix((data, flat, indptr), shape=(rows, n_items))
    asked = rng.integers(-1, n_items, size=(rows, 8)).astype(np.int32)
    expected = np.array(
        [[item >= 0 and dense[r, item] != 0 for item in line] for r, line in enumerate(asked)],
        dtype=bool,
    ).reshape(asked.shape)
    np.testing.assert_array_equal(_is_in(asked, mask), expected)
    lists = np.full((rows, 5), -1, dtype=np.int32)
    for line in lists:
        chosen = rng.permutation(n_items)[:5]
        line[: len(chosen)] = chosen
    lists[rng.random(lists.shape) < 0.3] = -1
    held = np.zeros((rows, n_items), dtype=np.float32)
    for r, line in enumerate(lists):
        held[r, line[line >= 0]] = 1
    np.testing.assert_array_equal(_mask_of(lists, n_items).toarray(), held)
