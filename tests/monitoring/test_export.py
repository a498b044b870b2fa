"""The exported Prometheus rules and Grafana dashboard name only series the service exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML
from tests.conftest import IN_CI

from taxiway.errors import MonitoringError
from taxiway.monitoring import export
from taxiway.monitoring.export import grafana_dashboard, prometheus_rules
from taxiway.monitoring.slo import SloSpec
from taxiway.serving import metrics as serving_metrics

SLOS = [SloSpec("latency", 0.99), SloSpec("errors", 0.999)]
FEATURES = ["spend", "country", "days_since_last"]
QUALITY = {"roc_auc": 0.75, "mae": 3.0}
SELECTOR_LABELS = {"job"}  # what `selector=` may add: the scrape's own labels
SERIES = re.compile(r"\b(taxiway_[A-Za-z0-9_:]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(?:by|on|ignoring)\s*\(([^)]*)\)")


def exported_series() -> tuple[dict[str, set[str]], set[str]]:
    """Every sample name the service's /metrics can show, with its label names, and the
    latency histogram's ``le`` values: read from a rendered exposition of serving's own
    Metrics, with one child made for every labelled series."""
    metrics = serving_metrics.Metrics()
    for wrapper in vars(metrics).values():
        if not isinstance(wrapper, MetricWrapperBase):
            continue
        labelnames = wrapper._labelnames
        child = wrapper.labels(*["probe"] * len(labelnames)) if labelnames else wrapper
        kind = wrapper._type
        if kind == "histogram":
            child.observe(0.01)  # type: ignore[attr-defined]
        elif kind == "counter":
            child.inc()  # type: ignore[attr-defined]
        else:
            child.set(1)  # type: ignore[attr-defined]
    text = metrics.render().decode()
    names: dict[str, set[str]] = {}
    les: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
            if sample.name == f"{export.LATENCY}_bucket":
                les.add(sample.labels["le"])
    return names, les


KNOWN, LES = exported_series()


def check_expr(expr: str) -> None:
    """Every series ``expr`` selects is exported, with labels it has; grouping labels too."""
    found = SERIES.findall(expr)
    assert found, f"no taxiway series in {expr!r}"
    labels_here: set[str] = set(SELECTOR_LABELS)
    for name, selector in found:
        assert name in KNOWN, f"{name} is not exported by serving/metrics.py ({expr})"
        labels_here |= KNOWN[name]
        for label, _, value in MATCHER.findall(selector):
            assert label in KNOWN[name] | SELECTOR_LABELS, f"{name} has no label {label}"
            if label == "le":
                assert value in LES, f"no bucket le={value}"
    for group in GROUPING.findall(expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            assert label in labels_here, f"grouping by {label}, which no series has ({expr})"


@pytest.mark.parametrize(
    "expr",
    [
        "sum(rate(taxiway_requests_total[5m]))",  # no such series
        'taxiway_drift_status{model="churn",column="x"} == 2',  # no such label
        'taxiway_request_latency_seconds_bucket{le="0.07"}',  # no such bucket
        "sum by (model) (rate(taxiway_fallbacks_total[5m]))",  # fallbacks carry no model
        "vector(1)",  # no series at all
    ],
)
def test_the_checker_catches_unknown_series_and_labels(expr: str) -> None:
    with pytest.raises(AssertionError):
        check_expr(expr)


def load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    text = prometheus_rules("retail", "churn", SLOS, FEATURES, quality=QUALITY)
    [group] = load(text)["groups"]
    assert group["name"] == "taxiway-retail-churn"
    return list(group["rules"])


def test_the_bucket_bounds_are_the_services() -> None:
    assert export.LATENCY_BUCKETS == serving_metrics._BUCKETS


def test_rules_have_prometheus_alerting_rule_shape(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
        assert re.fullmatch(r"\d+[smhd]", rule["for"])
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["labels"]["model"] == "churn"
        assert {"summary", "description", "runbook"} <= set(rule["annotations"])


def test_every_rule_expr_names_exported_series(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        check_expr(rule["expr"])


def test_each_slo_has_the_three_burn_rate_pairs(rules: list[dict[str, Any]]) -> None:
    for slo in SLOS:
        mine = [r for r in rules if r["labels"].get("slo") == slo.name]
        assert [(r["labels"]["window"], r["labels"]["severity"]) for r in mine] == [
            ("1h/5m", "page"),
            ("6h/30m", "page"),
            ("3d/6h", "ticket"),
        ]
        for rule, (long, short, factor) in zip(
            mine, [("1h", "5m", "14.4"), ("6h", "30m", "6"), ("3d", "6h", "1")], strict=True
        ):
            expr = rule["expr"]
            assert f"[{long}]" in expr
            assert f"[{short}]" in expr
            assert expr.count(f"> {factor}\n") == 2
            assert f"/ {slo.budget:.6g} " in expr


def test_the_latency_slo_reads_the_bucket_at_the_budget(rules: list[dict[str, Any]]) -> None:
    latency = [r for r in rules if r["labels"].get("slo") == "latency"]
    assert all('le="0.05"' in r["expr"] for r in latency)
    between = prometheus_rules("retail", "churn", [SLOS[0]], [], budget_ms=80)
    assert 'le="0.05"' in between  # judged on the bucket under the budget
    assert 'le="0.1"' in prometheus_rules("retail", "churn", [SLOS[0]], [], budget_ms=100)
    with pytest.raises(MonitoringError):
        prometheus_rules("retail", "churn", [SLOS[0]], [], budget_ms=0.2)


def test_the_errors_slo_counts_5xx_of_prediction_routes(rules: list[dict[str, Any]]) -> None:
    [fast] = [r for r in rules if r["labels"].get("slo") == "errors"][:1]
    assert 'status=~"5.."' in fast["expr"]
    route = re.search(r'route=~"([^"]+)"', fast["expr"])
    assert route is not None
    for served in ("/v1/predict", "/v2/models/{name}/infer"):
        assert re.fullmatch(route.group(1), served)
    for other in ("/v1/outcomes", "/v2/models"):
        assert not re.fullmatch(route.group(1), other)


def test_drift_rules_per_feature_and_the_output(rules: list[dict[str, Any]]) -> None:
    drift = [r for r in rules if "Drift" in r["alert"]]
    assert [r["labels"]["feature"] for r in drift] == [*FEATURES, "__output__"]
    for rule in drift:
        feature = rule["labels"]["feature"]
        assert rule["expr"] == f'taxiway_drift_status{{model="churn",feature="{feature}"}} == 2'
        assert rule["labels"]["severity"] == "ticket"


def test_quality_rules_page_below_a_floor_or_above_an_error_ceiling(
    rules: list[dict[str, Any]],
) -> None:
    quality = {r["labels"]["metric"]: r for r in rules if r["alert"] == "TaxiwayQualityBelowFloor"}
    assert set(quality) == set(QUALITY)
    assert quality["roc_auc"]["expr"].endswith("< 0.75")
    assert quality["mae"]["expr"].endswith("> 3")
    assert all(r["labels"]["severity"] == "page" for r in quality.values())


def test_optional_rules_can_be_left_out() -> None:
    text = prometheus_rules("retail", "churn", [], [], monitor_interval=None)
    [group] = load(text)["groups"]
    assert [r["alert"] for r in group["rules"]] == ["TaxiwayOutputDrift"]


def test_a_selector_reaches_every_service_series() -> None:
    text = prometheus_rules("retail", "churn", SLOS, FEATURES, selector='job="retail"')
    for rule in load(text)["groups"][0]["rules"]:
        check_expr(rule["expr"])
        for name, selector in SERIES.findall(rule["expr"]):
            if "model=" not in selector and not name.startswith("taxiway_monitor"):
                assert 'job="retail"' in selector, rule["expr"]


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if IN_CI:
            pytest.fail("promtool is not installed; CI must install it (.ci/run)", pytrace=False)
        pytest.skip("promtool is not installed; `apt-get install prometheus` to check the rules")
    return found


def test_promtool_accepts_the_rules(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(prometheus_rules("retail", "churn", SLOS, FEATURES, quality=QUALITY))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- Grafana ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    built = grafana_dashboard("retail", "churn", FEATURES, slos=SLOS)
    result: dict[str, Any] = json.loads(json.dumps(built))  # plain JSON, as written to a file
    return result


def test_the_dashboard_is_a_grafana_model_with_a_datasource_input(board: dict[str, Any]) -> None:
    assert board["schemaVersion"] == 39
    assert board["__inputs"][0]["name"] == "DS_PROMETHEUS"
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board["uid"])
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])


def test_panel_ids_are_unique_and_the_grid_never_overlaps(board: dict[str, Any]) -> None:
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0
        assert pos["x"] + pos["w"] <= 24
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


def test_every_dashboard_target_names_exported_series(board: dict[str, Any]) -> None:
    for panel in board["panels"]:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            check_expr(target["expr"])


def test_the_dashboard_shows_what_the_issue_lists(board: dict[str, Any]) -> None:
    titles = {p["title"]: p for p in board["panels"]}
    for wanted in (
        "Request rate by arm",
        "Latency p50 / p99 (budget line)",
        "Latency SLO burn rate",
        "Errors SLO burn rate",
        "Fallback rate",
        "Drift status per feature",
        "Estimated vs realised quality",
    ):
        assert wanted in titles
    latency = titles["Latency p50 / p99 (budget line)"]
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == pytest.approx(0.05)  # the budget line
    exprs = [t["expr"] for t in latency["targets"]]
    assert any("histogram_quantile(0.5," in e for e in exprs)
    assert any("histogram_quantile(0.99," in e for e in exprs)
    table = titles["Drift status per feature"]
    assert table["type"] == "table"
    assert 'feature=~"spend|country|days_since_last|__output__"' in table["targets"][0]["expr"]
    assert "by (arm)" in titles["Request rate by arm"]["targets"][0]["expr"]


def without_annotations(text: str) -> str:
    """The rules with their expressions intact and no annotations (a promtool unit test
    compares annotations verbatim; the expressions are what these tests are about)."""
    yaml = YAML(typ="safe", pure=True)
    data = yaml.load(text)
    for rule in data["groups"][0]["rules"]:
        rule.pop("annotations")
    out = StringIO()
    yaml.dump(data, out)
    return out.getvalue()


GOOD_MINUTES = 390  # six and a half hours of good traffic, 100 answers a minute
LABELS = "{model: churn, use_case: retail, slo: latency"
Series = list[tuple[str, str, str]]  # name, label matchers, promtool values
Expected = list[tuple[str, str, list[str]]]  # eval time, alert, each firing alert's labels
PROMTOOL_CASES: dict[str, tuple[Series, Expected]] = {
    # 30 minutes at 50% slow: the 1h/5m pair pages (1h burns 25x); 6h at 4.2x is under 6x,
    # but over 1x with 3d: a ticket too
    "a latency regression pages": (
        [
            (
                "taxiway_request_latency_seconds_bucket",
                'le="0.05"',
                f"0+100x{GOOD_MINUTES} 39050+50x29",
            ),
            ("taxiway_request_latency_seconds_count", "", "0+100x420"),
        ],
        [
            (
                "420m",
                "TaxiwayLatencySloBurn",
                [
                    f"{LABELS}, severity: page, window: 1h/5m}}",
                    f"{LABELS}, severity: ticket, window: 3d/6h}}",
                ],
            ),
        ],
    ),
    # one minute all slow at the end of a good hour: the 5m window is over 14.4x, 1h is not
    "a single slow minute does not": (
        [
            ("taxiway_request_latency_seconds_bucket", 'le="0.05"', "0+100x418 41800 41800"),
            ("taxiway_request_latency_seconds_count", "", "0+100x420"),
        ],
        [("420m", "TaxiwayLatencySloBurn", []), ("425m", "TaxiwayLatencySloBurn", [])],
    ),
    "5xx answers burn the errors budget": (
        [
            (
                "taxiway_http_requests_total",
                'route="/v1/predict",status="200"',
                "0+100x390 39000+90x30",
            ),
            ("taxiway_http_requests_total", 'route="/v1/predict",status="500"', "0x390 10+10x29"),
            ("taxiway_http_requests_total", 'route="/v1/outcomes",status="500"', "0+1000x420"),
        ],
        [
            (
                "420m",
                "TaxiwayErrorsSloBurn",
                [
                    "{model: churn, use_case: retail, slo: errors, severity: page, window: 1h/5m}",
                    "{model: churn, use_case: retail, slo: errors, severity: page, window: 6h/30m}",
                    "{model: churn, use_case: retail, slo: errors, severity: ticket, window: 3d/6h}",
                ],
            )
        ],
    ),
    "5xx answers to outcomes burn nothing": (
        [
            ("taxiway_http_requests_total", 'route="/v1/predict",status="200"', "0+100x420"),
            ("taxiway_http_requests_total", 'route="/v1/outcomes",status="500"', "0+1000x420"),
        ],
        [("420m", "TaxiwayErrorsSloBurn", [])],
    ),
    "a drifted feature makes a ticket": (
        [("taxiway_drift_status", 'model="churn",feature="spend"', "0x10 2x10")],
        [
            ("12m", "TaxiwayFeatureDrift", []),
            (
                "20m",
                "TaxiwayFeatureDrift",
                ["{model: churn, use_case: retail, severity: ticket, feature: spend}"],
            ),
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(PROMTOOL_CASES))
def test_promtool_fires_the_rules_on_synthetic_series(
    promtool: str, tmp_path: Path, case: str
) -> None:
    series, expectations = PROMTOOL_CASES[case]
    rules = prometheus_rules("retail", "churn", SLOS, ["spend"], monitor_interval=None)
    (tmp_path / "rules.yml").write_text(without_annotations(rules))
    lines = ["rule_files: [rules.yml]", "evaluation_interval: 1m", "tests:", "  - interval: 1m"]
    lines.append("    input_series:")
    for name, labels, values in series:
        lines += [f"      - series: '{name}{{{labels}}}'", f"        values: '{values}'"]
    lines.append("    alert_rule_test:")
    for at, alert, expected in expectations:
        lines += [f"      - eval_time: {at}", f"        alertname: {alert}", "        exp_alerts:"]
        lines[-1] += "" if expected else " []"
        lines += [f"          - exp_labels: {labels}" for labels in expected]
    (tmp_path / "test.yml").write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [promtool, "test", "rules", "test.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
