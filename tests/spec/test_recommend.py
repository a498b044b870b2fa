"""The `recommend:` section: a full spec loads, defaults are as documented, and every bad input
is a SpecError naming the file, the line of the offending key and the fix."""

from __future__ import annotations

import json
import re
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from taxiway.errors import SpecError
from taxiway.spec import (
    AlreadySeenFilter,
    AlsGenerator,
    BprGenerator,
    DenyFilter,
    EaseGenerator,
    ItemKnnGenerator,
    PopularityGenerator,
    RecommendSpec,
    SegmentPopularityGenerator,
    UnavailableFilter,
    load_spec_text,
)
from taxiway.spec.recommend import parse_metric

FULL = textwrap.dedent(
    """\
    name: shop-recs
    sources:
      interactions: {kind: file, path: data/events.parquet, timestamp: at}
      products: {kind: file, path: data/products.parquet, timestamp: changed_at}
      recalled: {kind: file, path: data/recalled.csv}
    entities: {customer: customer_id, product: product_id}
    features:
      customer_orders:
        source: interactions
        entity: customer
        aggregate: {n: count(*)}
        windows: [30d]
      product_stats:
        source: interactions
        entity: product
        aggregate: {buyers: count_distinct(customer_id)}
        windows: [7d]
    recommend:
      interactions:
        source: interactions
        user: customer_id
        item: product_id
        weight: quantity
        event_type: event
      catalog:
        source: products
        item: product_id
        available: in_stock
        category: category
      candidates:
        - {kind: ease, k: 200, l2: 500.0}
        - {kind: itemknn, k: 200, neighbours: 100}
        - {kind: als, k: 200, factors: 64, iterations: 15, regularization: 0.01, alpha: 1.0}
        - {kind: bpr, k: 200, factors: 64, iterations: 100, learning_rate: 0.01}
        - {kind: popularity, k: 200, window: 30d}
      filters:
        - {kind: already_seen, lookback: 90d, event_types: [purchase]}
        - {kind: unavailable}
        - {kind: deny, source: recalled, item: product_id}
      ranking:
        kind: lambdarank
        features: [customer_orders, product_stats]
        params: {num_leaves: 31}
      ordering: {max_per_category: 3}
      k: 10
      metric: ndcg@10
      split: {cutoff: 2025-12-01}
    """
)

MINIMAL = textwrap.dedent(
    """\
    name: shop-recs
    sources:
      interactions: {kind: file, path: events.parquet, timestamp: at}
      products: {kind: file, path: products.parquet}
    recommend:
      interactions: {source: interactions, user: customer_id, item: product_id}
      catalog: {source: products, item: product_id}
      candidates:
        - {kind: ease}
        - {kind: popularity}
    """
)


def test_a_full_recommend_spec_loads_every_key() -> None:
    spec = load_spec_text(FULL, "shop.yaml")
    recommend = spec.recommend
    assert recommend is not None
    assert (recommend.interactions.weight, recommend.interactions.event_type) == (
        "quantity",
        "event",
    )
    assert (recommend.catalog.available, recommend.catalog.category) == ("in_stock", "category")
    kinds = [type(g) for g in recommend.candidates]
    assert kinds == [
        EaseGenerator,
        ItemKnnGenerator,
        AlsGenerator,
        BprGenerator,
        PopularityGenerator,
    ]
    assert recommend.primary.kind == "ease"
    popularity = recommend.candidates[4]
    assert isinstance(popularity, PopularityGenerator)
    assert popularity.window == timedelta(days=30)
    seen, unavailable, deny = recommend.filters
    assert isinstance(seen, AlreadySeenFilter)
    assert (seen.lookback, seen.event_types) == (timedelta(days=90), ["purchase"])
    assert isinstance(unavailable, UnavailableFilter)
    assert isinstance(deny, DenyFilter)
    assert (deny.source, deny.item) == ("recalled", "product_id")
    assert recommend.ranking is not None
    assert recommend.ranking.features == ["customer_orders", "product_stats"]
    assert recommend.ranking.params == {"num_leaves": 31}
    assert recommend.ordering is not None
    assert recommend.ordering.max_per_category == 3
    assert (recommend.k, recommend.metric, recommend.metric_at) == (10, "ndcg@10", ("ndcg", 10))
    assert recommend.split.cutoff == date(2025, 12, 1)
    assert spec.label is None
    assert spec.model is None


def test_defaults_are_the_documented_ones() -> None:
    recommend = load_spec_text(MINIMAL, "shop.yaml").recommend
    assert recommend is not None
    assert (recommend.k, recommend.metric) == (10, "recall@10")
    assert recommend.filters == [AlreadySeenFilter(kind="already_seen")]
    seen = recommend.filters[0]
    assert isinstance(seen, AlreadySeenFilter)
    assert (seen.lookback, seen.event_types) == (None, None)
    ease, popularity = recommend.candidates
    assert isinstance(ease, EaseGenerator)
    assert (ease.k, ease.l2) == (200, 500.0)
    assert isinstance(popularity, PopularityGenerator)
    assert (popularity.k, popularity.window) == (200, None)
    assert (recommend.interactions.weight, recommend.interactions.event_type) == (None, None)
    assert (recommend.catalog.available, recommend.catalog.category) == (None, None)
    assert (recommend.ranking, recommend.ordering, recommend.split.cutoff) == (None, None, None)


def test_generator_defaults() -> None:
    als = AlsGenerator(kind="als")
    bpr = BprGenerator(kind="bpr")
    knn = ItemKnnGenerator(kind="itemknn")
    assert (als.k, als.factors, als.iterations, als.regularization, als.alpha) == (
        200,
        64,
        15,
        0.01,
        1.0,
    )
    assert (bpr.factors, bpr.iterations, bpr.learning_rate, bpr.regularization) == (
        64,
        100,
        0.01,
        0.01,
    )
    assert als.exact_limit == bpr.exact_limit == 50_000
    assert knn.neighbours == 100
    assert DenyFilter(kind="deny", source="recalled").item is None


def test_the_default_metric_follows_k_and_an_explicit_one_is_kept() -> None:
    base = MINIMAL.replace("  candidates:", "  k: 25\n  candidates:")
    recommend = load_spec_text(base, "shop.yaml").recommend
    assert recommend is not None
    assert (recommend.metric, recommend.metric_at) == ("recall@25", ("recall", 25))
    explicit = base.replace("  k: 25\n", "  k: 25\n  metric: hit_rate@5\n")
    recommend = load_spec_text(explicit, "shop.yaml").recommend
    assert recommend is not None
    assert recommend.metric_at == ("hit_rate", 5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-12-01T06:00:00", datetime(2025, 12, 1, 6)),
        ("2025-12-01 06:00:00+00:00", datetime.fromisoformat("2025-12-01T06:00:00+00:00")),
    ],
)
def test_split_cutoff_is_a_date_or_a_time(value: str, expected: datetime) -> None:
    text = FULL.replace("split: {cutoff: 2025-12-01}", f"split: {{cutoff: {value}}}")
    assert text != FULL
    recommend = load_spec_text(text, "shop.yaml").recommend
    assert recommend is not None
    assert recommend.split.cutoff == expected


@pytest.mark.parametrize(
    ("metric", "parsed"),
    [("recall@10", ("recall", 10)), ("map@3", ("map", 3)), ("hit_rate@1", ("hit_rate", 1))],
)
def test_parse_metric(metric: str, parsed: tuple[str, int]) -> None:
    assert parse_metric(metric) == parsed


def test_a_spec_without_recommend_is_unchanged() -> None:
    spec = load_spec_text("name: demo\n", "taxiway.yaml")
    assert spec.recommend is None


# Each case: (text to replace in FULL, its replacement, a text on the line the error must point
# at, words of the message, words of the fix).
BAD = [
    pytest.param(
        "    source: interactions\n    user:",
        "    source: interactons\n    user:",
        "source: interactons",
        "unknown source `interactons`",
        "did you mean `interactions`",
        id="interactions-source-unknown",
    ),
    pytest.param(
        "    source: products\n",
        "    source: prodcts\n",
        "source: prodcts",
        "unknown source `prodcts`",
        "did you mean `products`",
        id="catalog-source-unknown",
    ),
    pytest.param(
        "deny, source: recalled",
        "deny, source: recaled",
        "source: recaled",
        "unknown source `recaled`",
        "did you mean `recalled`",
        id="deny-source-unknown",
    ),
    pytest.param(
        "interactions: {kind: file, path: data/events.parquet, timestamp: at}",
        "interactions: {kind: file, path: data/events.parquet}",
        "    source: interactions\n    user:",
        "interactions need event times",
        "add `timestamp: <column>` to sources.interactions",
        id="interactions-without-timestamp",
    ),
    pytest.param(
        "    available: in_stock\n",
        "",
        "- {kind: unavailable}",
        "`unavailable` filter needs",
        "add `available: <boolean column>` to recommend.catalog",
        id="unavailable-without-available",
    ),
    pytest.param(
        "    category: category\n",
        "",
        "ordering: {max_per_category: 3}",
        "`max_per_category` needs the items' categories",
        "add `category: <column>` to recommend.catalog",
        id="ordering-without-category",
    ),
    pytest.param(
        "    event_type: event\n",
        "",
        "- {kind: already_seen",
        "`event_types` picks events by type",
        "add `event_type: <column>` to recommend.interactions",
        id="event-types-without-event-type",
    ),
    pytest.param(
        "recommend:\n",
        "label: {name: bought, kind: any_event, source: interactions, entity: customer, "
        "horizon: 7d}\nrecommend:\n",
        "label: {name: bought",
        "cannot also have `label:`",
        "split it into two specs",
        id="recommend-with-label",
    ),
    pytest.param(
        "recommend:\n",
        "model: {algorithm: lightgbm}\nrecommend:\n",
        "model: {algorithm",
        "cannot also have `model:`",
        "split it into two specs",
        id="recommend-with-model",
    ),
    pytest.param(
        "- {kind: bpr, k: 200, factors: 64, iterations: 100, learning_rate: 0.01}",
        "- {kind: als, k: 200, factors: 32}",
        "- {kind: als, k: 200, factors: 32}",
        "generator `als` is listed twice (first at candidates[2])",
        "keep one entry per kind",
        id="generator-kind-twice",
    ),
    pytest.param(
        "{kind: itemknn, k: 200,",
        "{kind: itemknn, k: 5,",
        "{kind: itemknn, k: 5",
        "returns 5 candidates, fewer than the 10 items",
        "raise its `k` to at least 10",
        id="generator-k-below-recommend-k",
    ),
    pytest.param(
        "  k: 10\n",
        "  k: 500\n",
        "- {kind: ease, k: 200",
        "returns 200 candidates, fewer than the 500 items",
        "raise its `k` to at least 500",
        id="recommend-k-above-generator-k",
    ),
    pytest.param(
        "  k: 10\n",
        "  k: 0\n",
        "  k: 0",
        "must be > 0",
        "",
        id="k-zero",
    ),
    pytest.param(
        "{kind: ease, k: 200,",
        "{kind: ease, k: -1,",
        "{kind: ease, k: -1",
        "must be > 0",
        "",
        id="generator-k-negative",
    ),
    pytest.param(
        "metric: ndcg@10",
        "metric: precision@10",
        "metric: precision@10",
        "'precision@10' is not a metric",
        "recall, ndcg, map, hit_rate, e.g. recall@10",
        id="metric-unknown",
    ),
    pytest.param(
        "metric: ndcg@10",
        "metric: ndcg@0",
        "metric: ndcg@0",
        "k must be at least 1",
        "ndcg@10",
        id="metric-k-zero",
    ),
    pytest.param(
        "metric: ndcg@10",
        "metric: ndcg@20",
        "metric: ndcg@20",
        "judges the top 20 items, but each answer holds 10",
        "use `metric: ndcg@10` or raise `k` to 20",
        id="metric-k-above-recommend-k",
    ),
    pytest.param(
        "split: {cutoff: 2025-12-01}",
        "split: {cutoff: last month}",
        "split: {cutoff: last month}",
        "expected a date such as 2025-12-01",
        "",
        id="cutoff-not-a-date",
    ),
    pytest.param(
        "features: [customer_orders, product_stats]",
        "features: [customer_orders, product_stat]",
        "features: [customer_orders, product_stat]",
        "unknown feature view `product_stat`",
        "did you mean `product_stats`",
        id="ranking-feature-unknown",
    ),
    pytest.param(
        "{kind: popularity, k: 200, window: 30d}",
        "{kind: popularity, k: 200, window: 30}",
        "{kind: popularity, k: 200, window: 30}",
        "expected a duration such as 30d",
        "",
        id="window-without-unit",
    ),
    pytest.param(
        "{kind: popularity,",
        "{kind: popular,",
        "{kind: popular,",
        "unknown kind 'popular'",
        "did you mean `popularity`",
        id="generator-kind-unknown",
    ),
    pytest.param(
        "- {kind: unavailable}",
        "- {kind: unavailabel}",
        "- {kind: unavailabel}",
        "unknown kind 'unavailabel'",
        "did you mean `unavailable`",
        id="filter-kind-unknown",
    ),
    pytest.param(
        "  ordering: {max_per_category: 3}",
        "  ordering: {max_per_categry: 3}",
        "ordering: {max_per_categry: 3}",
        "unknown key `max_per_categry`",
        "did you mean `max_per_category`",
        id="ordering-key-misspelt",
    ),
    pytest.param(
        "    item: product_id\n    weight",
        "    item: customer_id\n    weight",
        "  interactions:\n    source: interactions\n    user:",
        "must name different columns",
        "",
        id="user-and-item-the-same-column",
    ),
]


@pytest.mark.parametrize(("old", "new", "at", "message", "fix"), BAD)
def test_each_bad_input_names_the_file_the_line_and_the_fix(
    old: str, new: str, at: str, message: str, fix: str
) -> None:
    text = FULL.replace(old, new, 1)
    assert text != FULL, old
    with pytest.raises(SpecError) as raised:
        load_spec_text(text, "shop.yaml")
    issues = [i for i in raised.value.issues if message in str(i)]
    assert issues, str(raised.value)
    issue = issues[0]
    assert issue.file == "shop.yaml"
    expected = text[: text.index(at)].count("\n") + 1
    assert issue.line == expected, (str(issue), at)
    assert fix in str(issue)


def test_segment_popularity_without_a_category_names_the_file_the_line_and_the_fix() -> None:
    text = (
        FULL.replace("    category: category\n", "", 1)
        .replace("  ordering: {max_per_category: 3}\n", "", 1)
        .replace(
            "    - {kind: popularity, k: 200, window: 30d}",
            "    - {kind: segment_popularity, k: 200}\n    - {kind: popularity, k: 200, window: 30d}",
            1,
        )
    )
    with pytest.raises(SpecError) as raised:
        load_spec_text(text, "shop.yaml")
    (issue,) = raised.value.issues
    assert issue.file == "shop.yaml"
    assert issue.line == text[: text.index("{kind: segment_popularity")].count("\n") + 1
    assert "`segment_popularity` segments users by the items' categories" in str(issue)
    assert "add `category: <column>` to recommend.catalog, or drop this generator" in str(issue)
    # with the category back, the same generator loads
    spec = load_spec_text(
        text.replace("    available: in_stock\n", "    available: in_stock\n    category: c\n"),
        "shop.yaml",
    )
    assert spec.recommend is not None
    assert isinstance(spec.recommend.candidates[4], SegmentPopularityGenerator)


def test_monitoring_recommend_loads_and_is_checked() -> None:
    text = FULL + "monitoring:\n  recommend: {horizon: 3d, max_fallback_share: 0.1}\n"
    monitoring = load_spec_text(text, "shop.yaml").monitoring
    assert monitoring is not None
    assert (monitoring.recommend.horizon, monitoring.recommend.max_fallback_share) == (
        timedelta(days=3),
        0.1,
    )
    assert monitoring.recommend.min_answers == 50
    with pytest.raises(SpecError) as raised:
        load_spec_text(text.replace("0.1}", "5}"), "shop.yaml")
    assert "recommend.max_fallback_share" in str(raised.value)
    assert "must be < 1.0, got 5" in str(raised.value)


def test_monitoring_recommend_without_recommend_names_the_line_and_the_fix() -> None:
    text = textwrap.dedent(
        """\
        name: churn
        monitoring:
          window: 1h
          recommend: {horizon: 3d}
        """
    )
    with pytest.raises(SpecError) as raised:
        load_spec_text(text, "churn.yaml")
    (issue,) = raised.value.issues
    assert (issue.file, issue.line) == ("churn.yaml", 4)
    assert "this spec has no `recommend:`" in str(issue)
    assert "drop `monitoring.recommend`" in str(issue)
    assert load_spec_text(text.replace("  recommend: {horizon: 3d}\n", ""), "churn.yaml")


def test_generators_need_at_least_one() -> None:
    text = FULL.split("  candidates:")[0] + "  candidates: []\n"
    with pytest.raises(SpecError, match=r"shop.yaml:\d+:\d+: recommend.candidates"):
        load_spec_text(text, "shop.yaml")


def test_the_python_api_derives_the_metric_and_defaults_too() -> None:
    spec = RecommendSpec.model_validate(
        {
            "interactions": {"source": "e", "user": "u", "item": "i"},
            "catalog": {"source": "c", "item": "i"},
            "candidates": [{"kind": "itemknn"}],
            "k": 5,
        }
    )
    assert spec.metric == "recall@5"
    assert spec.split.cutoff is None
    assert [f.kind for f in spec.filters] == ["already_seen"]


DOC = Path(__file__).resolve().parents[2] / "docs" / "spec.md"


def _recommend_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index("## Recommend") : text.index("## Errors")]


def test_the_documented_example_loads_and_the_documented_errors_are_real() -> None:
    blocks = re.findall(r"```(yaml|text)\n(.*?)```", _recommend_section(), re.S)
    specs = [body for kind, body in blocks if kind == "yaml" and body.startswith("name:")]
    example, bad = specs
    recommend = load_spec_text(example, "taxiway.yaml").recommend
    assert recommend is not None
    assert recommend.metric == "ndcg@10"
    shown = next(body for kind, body in blocks if kind == "text")
    with pytest.raises(SpecError) as raised:
        load_spec_text(bad, "taxiway.yaml")
    assert shown.strip() == f"error: {raised.value}".strip()


def test_taxiway_check_runs_on_a_recommend_only_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from taxiway.cli import main

    (tmp_path / "events.csv").write_text(
        "customer_id,product_id,at,quantity\na,p1,2025-01-01 10:00:00,1\nb,p2,2025-01-02 10:00:00,2\n"
    )
    (tmp_path / "products.csv").write_text("product_id,in_stock\np1,true\np2,false\n")
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(
        MINIMAL.replace("events.parquet", "events.csv").replace("products.parquet", "products.csv")
    )
    code = main(["check", "-f", str(spec), "--state-dir", str(tmp_path / "state"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(s["name"], s["rows"]) for s in report["sources"]] == [
        ("interactions", 2),
        ("products", 2),
    ]
    assert not report["blocked"]


def test_taxiway_check_blocks_a_misspelt_recommend_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from taxiway.cli import main

    (tmp_path / "events.csv").write_text(
        "customer_id,product_id,at\na,p1,2025-01-01 10:00:00\nb,p2,2025-01-02 10:00:00\n"
    )
    (tmp_path / "products.csv").write_text("product_id\np1\np2\n")
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(
        MINIMAL.replace("events.parquet", "events.csv")
        .replace("products.parquet", "products.csv")
        .replace("user: customer_id", "user: custmer_id")
    )
    code = main(["check", "-f", str(spec), "--state-dir", str(tmp_path / "state"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code != 0
    assert report["blocked"]
    assert "custmer_id" in json.dumps(report)
