"""Top-k metrics against their definitions, written out per user as plain Python."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import SpecError
from taxiway.recommend.metrics import catalog_metrics, gini, parse_metric, ranking_metrics

N_ITEMS = 8


def _brute(lists: list[list[int]], relevant: list[set[int]], k: int) -> dict[str, float]:
    recall: list[float] = []
    ndcg: list[float] = []
    ap: list[float] = []
    hit: list[float] = []
    for shown, wanted in zip(lists, relevant, strict=True):
        if not wanted:
            continue
        top = list(shown[:k])
        got = [i >= 0 and i in wanted for i in top]
        recall.append(sum(got) / len(wanted))
        hit.append(1.0 if any(got) else 0.0)
        dcg = sum(1 / math.log2(p + 2) for p, g in enumerate(got) if g)
        idcg = sum(1 / math.log2(p + 2) for p in range(min(k, len(wanted))))
        ndcg.append(dcg / idcg)
        precisions = [sum(got[: p + 1]) / (p + 1) for p, g in enumerate(got) if g]
        ap.append(sum(precisions) / min(k, len(wanted)))

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else 0.0

    return {
        f"recall@{k}": mean(recall),
        f"ndcg@{k}": mean(ndcg),
        f"map@{k}": mean(ap),
        f"hit_rate@{k}": mean(hit),
    }


@st.composite
def _case(draw: st.DrawFn) -> tuple[list[list[int]], list[set[int]], int]:
    users = draw(st.integers(1, 6))
    width = draw(st.integers(1, 6))
    lists = []
    for _ in range(users):
        distinct = draw(st.lists(st.integers(0, N_ITEMS - 1), unique=True, max_size=width))
        lists.append(distinct + [-1] * (width - len(distinct)))
    relevant = [draw(st.sets(st.integers(0, N_ITEMS - 1), max_size=N_ITEMS)) for _ in range(users)]
    return lists, relevant, draw(st.integers(1, 8))


@settings(max_examples=200, deadline=None)
@given(_case())
def test_ranking_metrics_equal_their_definitions(
    case: tuple[list[list[int]], list[set[int]], int],
) -> None:
    lists, relevant, k = case
    dense = np.zeros((len(lists), N_ITEMS), dtype=np.float32)
    for row, wanted in enumerate(relevant):
        dense[row, sorted(wanted)] = 1.0
    got = ranking_metrics(np.array(lists, dtype=np.int32), sp.csr_matrix(dense), k)
    expected = _brute(lists, relevant, k)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name
    assert got["users"] == sum(1 for wanted in relevant if wanted)
    for name in expected:
        assert 0.0 <= got[name] <= 1.0 + 1e-12


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=30))
def test_gini_equals_the_mean_absolute_difference_definition(counts: list[int]) -> None:
    n, total = len(counts), sum(counts)
    expected = (
        0.0 if total == 0 else sum(abs(a - b) for a in counts for b in counts) / (2 * n * total)
    )
    assert gini(np.array(counts)) == pytest.approx(expected)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.integers(-1, N_ITEMS - 1), min_size=3, max_size=3), min_size=1, max_size=6)
)
def test_catalog_metrics_equal_their_definitions(lists: list[list[int]]) -> None:
    popularity = np.linspace(0.0, 1.0, N_ITEMS)
    got = catalog_metrics(np.array(lists, dtype=np.int32), popularity, N_ITEMS)
    shown = [i for row in lists for i in row if i >= 0]
    assert got["coverage"] == pytest.approx(len(set(shown)) / N_ITEMS)
    assert got["avg_popularity"] == pytest.approx(
        sum(popularity[i] for i in shown) / len(shown) if shown else 0.0
    )
    counts = [shown.count(i) for i in range(N_ITEMS)]
    assert got["gini"] == pytest.approx(gini(np.array(counts)))


def test_a_perfect_list_scores_one_and_an_empty_list_zero() -> None:
    relevant = sp.csr_matrix(np.array([[1, 1, 0, 0]], dtype=np.float32))
    perfect = ranking_metrics(np.array([[1, 0, 3]], dtype=np.int32), relevant, 3)
    assert all(perfect[f"{m}@3"] == 1.0 for m in ("recall", "ndcg", "map", "hit_rate"))
    empty = ranking_metrics(np.array([[-1, -1, -1]], dtype=np.int32), relevant, 3)
    assert all(empty[f"{m}@3"] == 0.0 for m in ("recall", "ndcg", "map", "hit_rate"))


def test_metric_names_parse_or_say_the_fix() -> None:
    assert parse_metric("hit_rate@5") == ("hit_rate", 5)
    with pytest.raises(SpecError, match="recall@10"):
        parse_metric("precision@10")
