"""The spec loader: valid specs load; every bad one is a SpecError naming file, line and fix."""

from __future__ import annotations

import contextlib
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taxiway.errors import SpecError
from taxiway.spec import Project, load_spec, load_spec_text
from taxiway.spec.models import AggregateView, EventSpine, LatestView, PeriodicSpine, StaticView

GOOD = textwrap.dedent(
    """\
    name: repurchase
    owner: growth-team
    sources:
      orders:
        kind: file
        path: data/orders.parquet
        timestamp: ordered_at
        available_after: 1h
        contract: contracts/orders.yaml
      customers: {kind: file, path: data/customers.csv}
      warehouse:
        kind: postgres
        url: ${ORDERS_DB_URL}
        table: public.orders
        timestamp: ordered_at
    entities: {customer: customer_id}
    features:
      stats:
        source: orders
        entity: customer
        aggregate: {n: count(*), spend: sum(amount)}
        windows: [7d, 30d]
      last:
        source: orders
        entity: customer
        latest: [amount]
        ttl: 3h
      profile: {source: customers, entity: customer, static: [country]}
    spine: {every: 7d, start: 2025-01-06, end: 2025-12-29, source: orders}
    label: {name: repurchased, kind: any_event, source: orders, entity: customer, horizon: 30d}
    model: {algorithm: lightgbm, metric: roc_auc}
    serving: {latency_budget_ms: 50, fallback: baseline}
    monitoring: {drift: psi, alert_threshold: 0.2}
    rollout: {control: baseline, steps: [1, 5, 25, 50, 100], metric: converted}
    governance: {approvals: [security, privacy], action: "growth team calls the customer"}
    """
)


def test_a_complete_spec_loads_with_paths_relative_to_its_file(tmp_path: Path) -> None:
    spec = load_spec_text(GOOD, "taxiway.yaml", base_dir=tmp_path)
    orders = spec.sources["orders"]
    assert orders.available_after == timedelta(hours=1)
    assert orders.path == str(tmp_path / "data/orders.parquet")  # type: ignore[union-attr]
    assert orders.contract == str(tmp_path / "contracts/orders.yaml")
    assert isinstance(spec.features["stats"], AggregateView)
    assert isinstance(spec.features["last"], LatestView)
    assert isinstance(spec.features["profile"], StaticView)
    assert isinstance(spec.spine, PeriodicSpine)
    assert spec.entity_keys("customer") == ("customer_id",)


def test_the_spec_is_frozen() -> None:
    spec = load_spec_text(GOOD)
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "other"  # type: ignore[misc]


def issue_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, "taxiway.yaml")
    return caught.value


def test_unknown_key_names_line_column_and_suggests_the_right_one() -> None:
    error = issue_of(
        GOOD.replace(
            "    timestamp: ordered_at\n    available", "    timestmp: ordered_at\n    available"
        )
    )
    [issue] = error.issues
    assert (issue.file, issue.line, issue.column) == ("taxiway.yaml", 7, 5)
    assert issue.path == "sources.orders.timestmp"
    assert issue.suggestion == "did you mean `timestamp`?"
    assert "taxiway.yaml:7:5" in str(error)


def test_unknown_top_level_section_is_an_error_not_ignored() -> None:
    error = issue_of("name: x\nalerts: {}\n")
    assert error.issues[0].path == "alerts"
    assert "unknown key" in error.issues[0].message


def test_bad_kind_suggests_the_closest_kind() -> None:
    error = issue_of("name: x\nsources:\n  o: {kind: parquet_file, path: a}\n")
    assert error.issues[0].line == 3
    assert "file" in (error.issues[0].expected or "")


def test_bad_duration_says_what_a_duration_looks_like() -> None:
    error = issue_of(GOOD.replace("available_after: 1h", "available_after: 1 hour"))
    [issue] = error.issues
    assert issue.line == 8
    assert "30d" in issue.message


def test_literal_password_is_refused_and_the_env_form_shown_without_the_password() -> None:
    error = issue_of(GOOD.replace("${ORDERS_DB_URL}", "postgresql://ml:hunter2@db/prod"))
    text = str(error)
    assert "hunter2" not in text
    assert "url: ${DB_URL}" in text
    assert error.issues[0].line == 13


def test_password_from_env_reference_inside_the_url_is_fine() -> None:
    spec = load_spec_text(GOOD.replace("${ORDERS_DB_URL}", "postgresql://ml:${PGPASS}@db/prod"))
    assert spec.sources["warehouse"].url.names == ["PGPASS"]  # type: ignore[union-attr]


def test_references_to_unknown_sources_and_entities_are_located() -> None:
    error = issue_of(
        GOOD.replace(
            "source: orders\n    entity: customer\n    aggregate",
            "source: order\n    entity: custmer\n    aggregate",
        )
    )
    messages = {issue.path: issue for issue in error.issues}
    assert messages["features.stats.source"].suggestion == "did you mean `orders`?"
    assert messages["features.stats.entity"].suggestion == "did you mean `customer`?"
    assert messages["features.stats.source"].line == 19


def test_static_view_over_a_source_with_timestamps_is_refused() -> None:
    error = issue_of(GOOD.replace("profile: {source: customers", "profile: {source: orders"))
    assert any("static view" in issue.message for issue in error.issues)


def test_bad_aggregate_is_refused_with_the_allowed_forms() -> None:
    error = issue_of(GOOD.replace("sum(amount)", "median(amount)"))
    assert "median" in str(error)
    assert "count(*)" in str(error)


def test_event_spine_and_column_label() -> None:
    spec = load_spec_text(
        "name: f\nsources:\n  flights: {kind: file, path: f.parquet, timestamp: t}\n"
        "spine: {source: flights}\nlabel: {name: delayed, kind: column, expr: arr_delay > 15}\n"
    )
    assert isinstance(spec.spine, EventSpine)


def test_column_label_needs_an_event_spine() -> None:
    error = issue_of(
        GOOD.replace(
            "label: {name: repurchased, kind: any_event, source: orders, entity: customer, horizon: 30d}",
            "label: {name: late, kind: column, expr: amount > 3}",
        )
    )
    assert error.issues[0].path == "label.kind"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("- a\n- b\n", "mapping"),
        ("name: [unclosed\n", "not valid YAML"),
        ("name: x\nname: y\n", "not valid YAML"),
        ("name: !!python/object:os.system x\n", "not"),
        ("name: x\nsources: 3\n", "mapping"),
        ("owner: me\n", "missing required key `name`"),
        ("name: x\nsources:\n  o: {path: a}\n", "kind"),
    ],
)
def test_malformed_documents_are_spec_errors(text: str, needle: str) -> None:
    error = issue_of(text)
    assert needle in str(error)


def test_missing_spec_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "nope.yaml")
    assert "-f PATH" in (caught.value.fix or "")


def test_project_finds_the_spec_in_a_folder_and_puts_state_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAXIWAY_STATE_DIR", raising=False)
    (tmp_path / "taxiway.yaml").write_text("name: demo\n")
    project = Project.load(tmp_path)
    assert project.spec.name == "demo"
    assert project.state_dir == tmp_path.resolve() / ".taxiway"
    monkeypatch.setenv("TAXIWAY_STATE_DIR", str(tmp_path / "state"))
    assert Project.load(tmp_path).state_dir == tmp_path / "state"


# --------------------------------------------------------------------------- property test

KEYS = [
    "name",
    "owner",
    "sources",
    "kind",
    "file",
    "path",
    "timestamp",
    "available_after",
    "features",
    "aggregate",
    "windows",
    "latest",
    "static",
    "ttl",
    "entity",
    "entities",
    "spine",
    "every",
    "start",
    "end",
    "label",
    "horizon",
    "model",
    "serving",
    "url",
    "table",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["30d", "1h", "count(*)", "sum(x)", "file", "${X}"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5
        ),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents_only_ever_raise_spec_error(document: object) -> None:
    import json

    text = json.dumps(document, allow_nan=True)  # JSON is YAML
    try:
        load_spec_text(text, "fuzz.yaml")
    except SpecError as error:
        issues = error.issues
    else:
        return
    assert issues
    assert all(issue.file == "fuzz.yaml" for issue in issues)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_text_only_ever_raises_spec_error(text: str) -> None:
    with contextlib.suppress(SpecError):
        load_spec_text(text, "fuzz.yaml")


def test_window_no_longer_than_available_after_is_refused() -> None:
    error = issue_of(GOOD.replace("windows: [7d, 30d]", "windows: [1h, 30d]"))
    [issue] = error.issues
    assert issue.path == "features.stats.windows[0]"
    assert "never holds a known row" in issue.message


def test_label_name_clashing_with_a_key_or_feature_is_refused() -> None:
    for name in ("timestamp", "customer_id", "stats__n_7d"):
        error = issue_of(GOOD.replace("name: repurchased", f"name: {name}"))
        assert error.issues[0].path == "label.name"


def test_spine_entity_must_be_the_label_entity() -> None:
    text = GOOD.replace(
        "entities: {customer: customer_id}", "entities: {customer: customer_id, store: store_id}"
    )
    text = text.replace("source: orders}\nlabel", "source: orders, entity: store}\nlabel")
    error = issue_of(text)
    assert error.issues[0].path == "spine.entity"


@pytest.mark.parametrize("policy", ["score", "fallback"])
def test_serving_missing_features_takes_score_or_fallback(policy: str) -> None:
    text = GOOD.replace(
        "serving: {latency_budget_ms: 50, fallback: baseline}",
        f"serving: {{latency_budget_ms: 50, fallback: baseline, missing_features: {policy}}}",
    )
    assert text != GOOD
    serving = load_spec_text(text, "taxiway.yaml").serving
    assert serving is not None
    assert serving.missing_features == policy


def test_serving_missing_features_is_absent_by_default_and_refuses_other_words() -> None:
    serving = load_spec_text(GOOD, "taxiway.yaml").serving
    assert serving is not None
    assert serving.missing_features is None  # the fallback for an unknown entity only
    error = issue_of(
        GOOD.replace(
            "serving: {latency_budget_ms: 50, fallback: baseline}",
            "serving: {latency_budget_ms: 50, fallback: baseline, missing_features: ignore}",
        )
    )
    [issue] = error.issues
    assert issue.path == "serving.missing_features"
