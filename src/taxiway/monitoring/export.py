"""Prometheus alerting rules and a Grafana dashboard for teams that run those.

Both are written over the series the service itself exports on ``/metrics``, so Prometheus
computes the burn rates on its own, without the monitor:

- the request-latency histogram :data:`LATENCY` (labels ``path``, ``arm``; buckets
  :data:`LATENCY_BUCKETS`), whose count is every answer and whose bucket at the latency
  budget counts the answers within it: the latency SLO's bad share over a window is
  ``1 - bucket(le=budget) / count``;
- the HTTP request counter :data:`HTTP_REQUESTS` (labels ``route``, ``status``): the errors
  SLO's bad share is the 5xx answers of the prediction routes over all of theirs;
- the monitor's gauges (``model`` label): :data:`DRIFT_STATUS` (0 ok, 1 warn, 2 drift) per
  feature (the output as ``feature="__output__"``), :data:`QUALITY` per ``metric`` and
  ``kind`` (``estimated`` or ``realised``), :data:`SLO_BURN_RATE`, and when the monitor last
  ran (:data:`MONITOR_RUN`).

The service's own series carry no ``model`` label (a service serves one model): when one
Prometheus scrapes several services, pass ``selector`` (e.g. ``job="churn"``) to pick this
one's series. The rules' burn-rate pairs are :data:`taxiway.monitoring.slo.PAIRS`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from io import StringIO
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from taxiway.errors import MonitoringError
from taxiway.monitoring.slo import PAIRS, WINDOWS, SloSpec

__all__ = [
    "DRIFT_STATISTIC",
    "DRIFT_STATUS",
    "DRIFT_THRESHOLD",
    "FALLBACKS",
    "HTTP_REQUESTS",
    "LATENCY",
    "LATENCY_BUCKETS",
    "MODEL_VERSION",
    "MONITOR_RUN",
    "OUTPUT",
    "PREDICTION_ROUTES",
    "QUALITY",
    "SHED",
    "SLO_BURN_RATE",
    "budget_bucket",
    "grafana_dashboard",
    "prometheus_rules",
]

LATENCY = "taxiway_request_latency_seconds"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""The service histogram's bucket bounds in seconds (a test holds them to serving's)."""
HTTP_REQUESTS = "taxiway_http_requests_total"
PREDICTION_ROUTES = "/v1/predict|/v2/models/.+/infer"
"""The ``route`` labels of answers to predictions (a regex, anchored as PromQL's are)."""
FALLBACKS = "taxiway_fallbacks_total"
SHED = "taxiway_shed_requests_total"
MODEL_VERSION = "taxiway_model_version"
DRIFT_STATISTIC = "taxiway_drift_statistic"
DRIFT_THRESHOLD = "taxiway_drift_threshold"
DRIFT_STATUS = "taxiway_drift_status"
SLO_BURN_RATE = "taxiway_slo_burn_rate"
QUALITY = "taxiway_quality"
MONITOR_RUN = "taxiway_monitor_last_run_timestamp_seconds"
OUTPUT = "__output__"
"""The ``feature`` label of the output distribution's drift."""

_LOWER_IS_BETTER = frozenset(
    {"mae", "rmse", "mse", "mape", "log_loss", "brier", "ece", "calibration_error"}
)
_DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
_RATE = "$__rate_interval"


def _quote(value: str) -> str:
    """A PromQL string literal.

    >>> _quote('a"b')
    '"a\\\\"b"'
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _selector(*matchers: str) -> str:
    """``{m1,m2}`` of the non-empty matchers, or nothing."""
    inner = ",".join(m for m in matchers if m)
    return "{" + inner + "}" if inner else ""


def _le(bound: float) -> str:
    """A bucket bound as the Python client writes the ``le`` label (``0.05``, ``1.0``)."""
    return repr(float(bound))


def budget_bucket(budget_ms: float) -> float:
    """The histogram bucket bound (seconds) the latency SLO counts as within budget: the
    largest at or under the budget (so a budget between two bounds is judged slightly
    strictly), refused when the budget is under the smallest bucket.

    >>> budget_bucket(50), budget_bucket(60), budget_bucket(10_000)
    (0.05, 0.05, 2.5)
    >>> budget_bucket(0.1)
    Traceback (most recent call last):
    ...
    taxiway.errors.MonitoringError: a latency budget of 0.1 ms is under the latency histogram's smallest bucket (0.5 ms)
      fix: raise serving.latency_budget_ms to at least 0.5, or alert on the monitor's burn-rate gauge instead
    """
    seconds = budget_ms / 1000
    under = [b for b in LATENCY_BUCKETS if b <= seconds + 1e-12]
    if not under:
        raise MonitoringError(
            f"a latency budget of {budget_ms:g} ms is under the latency histogram's smallest "
            f"bucket ({LATENCY_BUCKETS[0] * 1000:g} ms)",
            fix=f"raise serving.latency_budget_ms to at least {LATENCY_BUCKETS[0] * 1000:g}, or "
            f"alert on the monitor's burn-rate gauge instead",
        )
    return under[-1]


def _bad_share(slo: SloSpec, window: str, selector: str, budget_ms: float) -> str:
    """The PromQL of the SLO's bad share over ``window`` (a range: ``1h`` or a variable)."""
    if slo.name == "latency":
        le = _le(budget_bucket(budget_ms))
        within = f"{LATENCY}_bucket{_selector(f'le={_quote(le)}', selector)}"
        every = f"{LATENCY}_count{_selector(selector)}"
        return f"(1 - sum(rate({within}[{window}])) / sum(rate({every}[{window}])))"
    routes = f"route=~{_quote(PREDICTION_ROUTES)}"
    server_errors = 'status=~"5.."'
    errors = f"{HTTP_REQUESTS}{_selector(routes, server_errors, selector)}"
    every = f"{HTTP_REQUESTS}{_selector(routes, selector)}"
    return f"(sum(rate({errors}[{window}])) / sum(rate({every}[{window}])))"


def _burn(slo: SloSpec, window: str, selector: str, budget_ms: float) -> str:
    return f"{_bad_share(slo, window, selector, budget_ms)} / {slo.budget:.6g}"


def _slo_text(slo: SloSpec, budget_ms: float) -> str:
    """The objective in words.

    >>> _slo_text(SloSpec("errors", 0.999), 50.0)
    '99.9% of requests without a 5xx over 30d'
    """
    days = slo.period / timedelta(days=1)
    period = f"{days:g}d" if days >= 1 else f"{slo.period / timedelta(hours=1):g}h"
    what = f"answered within {budget_ms:g} ms" if slo.name == "latency" else "without a 5xx"
    share = f"{slo.objective * 100:.4f}".rstrip("0").rstrip(".")
    return f"{share}% of requests {what} over {period}"


def _rule(
    alert: str,
    expr: str,
    wait: str,
    labels: Mapping[str, str],
    summary: str,
    description: str,
    runbook: str,
    runbook_url: str | None,
) -> dict[str, Any]:
    annotations: dict[str, Any] = {
        "summary": summary,
        "description": description,
        "runbook": runbook,
    }
    if runbook_url:
        annotations["runbook_url"] = runbook_url
    return {
        "alert": alert,
        "expr": LiteralScalarString(expr + "\n") if "\n" in expr else expr,
        "for": wait,
        "labels": dict(labels),
        "annotations": annotations,
    }


def prometheus_rules(
    spec_name: str,
    model: str,
    slos: Sequence[SloSpec],
    features: Sequence[str],
    *,
    budget_ms: float = 50.0,
    quality: Mapping[str, float] | None = None,
    selector: str = "",
    monitor_interval: timedelta | None = timedelta(hours=1),
    runbook_url: str | None = None,
) -> str:
    """The YAML of one Prometheus rule group (``rule_files:``) alerting on ``model``.

    - per SLO, the three burn-rate pairs (1h and 5m over 14.4: page; 6h and 30m over 6: page;
      3d and 6h over 1: ticket), computed from the service's histogram and counter;
    - per feature (and the output), drift status 2 (drift): a ticket (drift explains, quality
      pages);
    - per ``quality`` metric, the estimated or realised value below its floor (above it for
      errors such as ``mae``): a page;
    - the monitor's gauges older than three ``monitor_interval``: a ticket (None: no rule).

    >>> text = prometheus_rules("retail", "churn", [SloSpec("latency")], ["spend"])
    >>> "alert: TaxiwayLatencySloBurn" in text, 'le="0.05"' in text
    (True, True)
    """
    labels = {"model": model, "use_case": spec_name}
    rules: list[dict[str, Any]] = []
    for slo in slos:
        title = slo.name.capitalize()
        for pair in PAIRS:
            long_burn = _burn(slo, pair.long, selector, budget_ms)
            short_burn = _burn(slo, pair.short, selector, budget_ms)
            expr = f"(\n  {long_burn} > {pair.factor:g}\nand\n  {short_burn} > {pair.factor:g}\n)"
            rules.append(
                _rule(
                    f"Taxiway{title}SloBurn",
                    expr,
                    "2m",
                    {**labels, "severity": pair.severity, "slo": slo.name, "window": pair.name},
                    f"{model}: the {slo.name} SLO burns its error budget over "
                    f"{pair.factor:g}x ({pair.name})",
                    f"SLO: {_slo_text(slo, budget_ms)}. Over both {pair.long} and {pair.short} "
                    f"the budget burns over {pair.factor:g}x its sustainable rate "
                    f'({pair.long}: {{{{ $value | printf "%.1f" }}}}x).'
                    + (
                        f" Within budget = the histogram's le={_le(budget_bucket(budget_ms))} s "
                        f"bucket."
                        if slo.name == "latency"
                        else ""
                    ),
                    _RUNBOOK[slo.name],
                    runbook_url,
                )
            )
    for feature in [*features, OUTPUT]:
        what = "the output distribution" if feature == OUTPUT else f"feature {feature}"
        matcher = _selector(f"model={_quote(model)}", f"feature={_quote(feature)}")
        rules.append(
            _rule(
                "TaxiwayOutputDrift" if feature == OUTPUT else "TaxiwayFeatureDrift",
                f"{DRIFT_STATUS}{matcher} == 2",
                "5m",
                {**labels, "severity": "ticket", "feature": feature},
                f"{model}: {what} drifted",
                f"The monitor finds {what} over its threshold in k of the last m windows "
                f"(statistic in {DRIFT_STATISTIC}, threshold in {DRIFT_THRESHOLD}).",
                _RUNBOOK["drift"],
                runbook_url,
            )
        )
    for metric, floor in sorted((quality or {}).items()):
        lower = metric in _LOWER_IS_BETTER
        matcher = _selector(f"model={_quote(model)}", f"metric={_quote(metric)}")
        rules.append(
            _rule(
                "TaxiwayQualityBelowFloor",
                f"{QUALITY}{matcher} {'>' if lower else '<'} {floor:g}",
                "5m",
                {**labels, "severity": "page", "metric": metric},
                f"{model}: {metric} ({{{{ $labels.kind }}}}) is "
                f"{'above' if lower else 'below'} {floor:g}",
                f'The {{{{ $labels.kind }}}} {metric} is {{{{ $value | printf "%.3f" }}}}, '
                f"{'above' if lower else 'below'} its floor {floor:g} (estimated: CBPE before "
                "labels arrive; realised: predictions joined to outcomes).",
                _RUNBOOK["quality"],
                runbook_url,
            )
        )
    if monitor_interval is not None:
        stale = int(3 * monitor_interval.total_seconds())
        rules.append(
            _rule(
                "TaxiwayMonitorStale",
                f"time() - max({MONITOR_RUN}{_selector(f'model={_quote(model)}')}) > {stale}",
                "5m",
                {**labels, "severity": "ticket"},
                f"{model}: the monitor has not run for over {stale // 60} minutes",
                "The drift, quality and burn-rate gauges are older than three monitor "
                "intervals: what they show is stale.",
                _RUNBOOK["stale"],
                runbook_url,
            )
        )
    group = {"groups": [{"name": f"taxiway-{spec_name}-{model}", "rules": rules}]}
    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = StringIO()
    out.write(
        f"# Alerting rules of taxiway use case {spec_name}, model {model}: generated by\n"
        "# `taxiway monitor export --prometheus-rules`. Regenerate rather than edit.\n"
    )
    yaml.dump(group, out)
    return out.getvalue()


_RUNBOOK = {
    "latency": "Compare p99 by path and arm on the dashboard: a slow online store shows in "
    "taxiway_online_store_latency_seconds, a fallback surge in taxiway_fallbacks_total, a new "
    "version in taxiway_model_version. Run `taxiway monitor` for the per-window latency; roll "
    "back the version or shed load if the burn continues.",
    "errors": "Read the service's log for the 5xx answers (taxiway_http_requests_total by "
    "route and status) and check open circuit breakers (taxiway_circuit_open); run "
    "`taxiway monitor` for the error rate per window.",
    "drift": "Run `taxiway monitor --out DIR` and open monitor.html: the feature's "
    "distribution against its reference, its source and that source's latest contract results.",
    "quality": "Run `taxiway monitor --out DIR`: the drivers list ranks the drifting features "
    "by their correlation with the quality change; check their sources' contracts, then "
    "retrain or roll back.",
    "stale": "Check that the service's monitor runs (GET /dashboard shows its last run and "
    "error) or that the scheduled `taxiway monitor` job does.",
}


# -- Grafana ---------------------------------------------------------------------------------


def _target(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> dict[str, Any]:
    return {
        "datasource": _DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        **extra,
    }


def _thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def _timeseries(
    title: str,
    targets: list[dict[str, Any]],
    unit: str,
    *,
    description: str = "",
    lines: Sequence[tuple[str, float]] = (),
) -> dict[str, Any]:
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0}
    steps: list[tuple[str, float | None]] = [("green", None)]
    if lines:
        custom["thresholdsStyle"] = {"mode": "line+area" if len(lines) == 1 else "line"}
        steps += list(lines)
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": _DATASOURCE,
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": unit, "custom": custom, "thresholds": _thresholds(*steps)},
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
    }


def _regex(names: Sequence[str]) -> str:
    """An RE2 alternation matching exactly ``names``."""
    return "|".join(re.sub(r"([^A-Za-z0-9_])", r"\\\1", n) for n in names)


def grafana_dashboard(
    spec_name: str,
    model: str,
    features: Sequence[str],
    *,
    slos: Sequence[SloSpec] = (SloSpec("latency", 0.99), SloSpec("errors", 0.999)),
    budget_ms: float = 50.0,
    selector: str = "",
) -> dict[str, Any]:
    """A Grafana dashboard (JSON model, schemaVersion 39) for ``model``: its Prometheus
    datasource is the input ``${DS_PROMETHEUS}``, chosen when the dashboard is imported.

    Panels: model version; request rate by arm; p50/p99 latency against the budget line; the
    burn rate of each SLO (5m, 1h, 6h) against the alert factors, and as the monitor measured
    it; fallback rate by step; error and shed rates; the drift status per feature (table) and
    each statistic over its threshold; estimated against realised quality.

    >>> board = grafana_dashboard("retail", "churn", ["spend"])
    >>> board["schemaVersion"], board["__inputs"][0]["name"]
    (39, 'DS_PROMETHEUS')
    """
    sel = _selector(selector)
    mine = _selector(f"model={_quote(model)}")
    watched = [*features, OUTPUT]
    by_feature = _selector(f"model={_quote(model)}", f"feature=~{_quote(_regex(watched))}")
    answers = f"sum(rate({LATENCY}_count{sel}[{_RATE}]))"
    budget_s = budget_ms / 1000
    panels: list[dict[str, Any]] = [
        {
            "type": "stat",
            "title": "Model version",
            "datasource": _DATASOURCE,
            "targets": [
                _target(f"max({MODEL_VERSION}{_selector(f'name={_quote(model)}', selector)})")
            ],
            "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "none"},
            "fieldConfig": {"defaults": {"unit": "none", "decimals": 0}, "overrides": []},
        },
        _timeseries(
            "Request rate by arm",
            [_target(f"sum by (arm) (rate({LATENCY}_count{sel}[{_RATE}]))", "{{arm}}")],
            "reqps",
            description="Answered predictions per second, by rollout arm.",
        ),
        _timeseries(
            "Latency p50 / p99 (budget line)",
            [
                _target(
                    f"histogram_quantile({q}, sum by (le) (rate({LATENCY}_bucket{sel}[{_RATE}])))",
                    f"p{round(q * 100)}",
                    ref,
                )
                for q, ref in ((0.5, "A"), (0.99, "B"))
            ],
            "s",
            description=f"From the service's histogram; the red line is the {budget_ms:g} ms "
            "budget.",
            lines=[("red", budget_s)],
        ),
    ]
    for slo in slos:
        panels.append(
            _timeseries(
                f"{slo.name.capitalize()} SLO burn rate",
                [
                    _target(_burn(slo, window, selector, budget_ms), window, ref)
                    for window, ref in (("5m", "A"), ("1h", "B"), ("6h", "C"))
                ],
                "short",
                description=f"SLO: {_slo_text(slo, budget_ms)}. 1 spends the budget exactly "
                "over the period; the lines are the alert factors (14.4 and 6 page, 1 tickets).",
                lines=[("yellow", 1.0), ("orange", 6.0), ("red", 14.4)],
            )
        )
    panels += [
        _timeseries(
            "Burn rate as the monitor measured it (from the log)",
            [_target(f"{SLO_BURN_RATE}{mine}", "{{slo}} {{window}}")],
            "short",
            description=f"The monitor's burn rates over {', '.join(WINDOWS)} (the same "
            "definition, computed from the prediction log).",
            lines=[("red", 14.4)],
        ),
        _timeseries(
            "Fallback rate",
            [
                _target(
                    f"sum by (which) (rate({FALLBACKS}{sel}[{_RATE}])) / ignoring(which) "
                    f"group_left {answers}",
                    "{{which}}",
                )
            ],
            "percentunit",
            description="Share of answers given by each step of the fallback chain.",
        ),
        _timeseries(
            "Error and shed rates",
            [
                _target(
                    _bad_share(SloSpec("errors"), _RATE, selector, budget_ms), "5xx share", "A"
                ),
                _target(f"sum(rate({SHED}{sel}[{_RATE}]))", "shed (429) per s", "B"),
            ],
            "short",
        ),
        _drift_table(by_feature),
        _timeseries(
            "Drift statistic / threshold per feature",
            [
                _target(
                    f"{DRIFT_STATISTIC}{by_feature} / on(model, feature) "
                    f"{DRIFT_THRESHOLD}{by_feature}",
                    "{{feature}}",
                )
            ],
            "short",
            description="Over 1, the feature's latest window is over its calibrated threshold.",
            lines=[("red", 1.0)],
        ),
        _timeseries(
            "Estimated vs realised quality",
            [_target(f"{QUALITY}{mine}", "{{metric}} {{kind}}")],
            "short",
            description="Estimated: CBPE from calibrated scores, before labels arrive. "
            "Realised: predictions joined to their outcomes.",
        ),
    ]
    _lay_out(panels)
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus scraping the taxiway service",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "table", "name": "Table", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
        ],
        "annotations": {"list": []},
        "editable": True,
        "graphTooltip": 1,
        "id": None,
        "uid": re.sub(r"[^A-Za-z0-9_-]", "-", f"taxiway-{spec_name}-{model}")[:40],
        "title": f"taxiway {spec_name}: {model}",
        "tags": ["taxiway", spec_name],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "panels": panels,
    }


def _drift_table(by_feature: str) -> dict[str, Any]:
    targets = [
        _target(f"{metric}{by_feature}", "", ref, instant=True, format="table")
        for metric, ref in ((DRIFT_STATUS, "A"), (DRIFT_STATISTIC, "B"), (DRIFT_THRESHOLD, "C"))
    ]
    status_mapping = {
        "type": "value",
        "options": {
            "0": {"text": "ok", "color": "green", "index": 0},
            "1": {"text": "warn", "color": "orange", "index": 1},
            "2": {"text": "drift", "color": "red", "index": 2},
        },
    }
    return {
        "type": "table",
        "title": "Drift status per feature",
        "description": "The monitor's latest verdict per feature (and __output__): drift when "
        "k of the last m windows are over the threshold.",
        "datasource": _DATASOURCE,
        "targets": targets,
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "__name__": True, "model": True},
                    "renameByName": {
                        "Value #A": "status",
                        "Value #B": "statistic",
                        "Value #C": "threshold",
                    },
                },
            },
        ],
        "fieldConfig": {
            "defaults": {"custom": {"align": "auto"}},
            "overrides": [
                {
                    "matcher": {"id": "byName", "options": "status"},
                    "properties": [
                        {"id": "mappings", "value": [status_mapping]},
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    ],
                }
            ],
        },
        "options": {"showHeader": True},
    }


def _lay_out(panels: list[dict[str, Any]]) -> None:
    """Ids 1..n and a two-column grid (24 units wide), the version stat a thin first row."""
    y = 0
    column = 0
    for index, panel in enumerate(panels, start=1):
        panel["id"] = index
        if panel["type"] == "stat":
            panel["gridPos"] = {"h": 4, "w": 24, "x": 0, "y": y}
            y += 4
            continue
        panel["gridPos"] = {"h": 8, "w": 12, "x": 12 * column, "y": y}
        column = 1 - column
        if column == 0:
            y += 8
