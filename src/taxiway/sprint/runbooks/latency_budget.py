"""The runbook page: the latency budget is breached."""

from __future__ import annotations

from functools import cache

from taxiway.serving.metrics import Metrics
from taxiway.sprint.runbooks.facts import SERVICE_URL, _Facts, _series, _sh


@cache
def _latency_buckets() -> tuple[tuple[float, str], ...]:
    """The latency histogram's bucket bounds, as numbers and as their ``le`` labels."""
    metrics = Metrics()
    metrics.latency.labels("model", "production")
    family = _series()["latency"]
    bounds = [
        sample.labels["le"]
        for collected in metrics.registry.collect()
        if collected.name == family
        for sample in collected.samples
        if sample.name == f"{family}_bucket" and sample.labels["le"] != "+Inf"
    ]
    return tuple((float(bound), bound) for bound in bounds)


def _latency_budget(f: _Facts) -> str:
    budget_s = f.serving.latency_budget_ms / 1000
    bucket = f.series("latency", "_bucket")
    count = f.series("latency", "_count")
    above = [(b, s) for b, s in _latency_buckets() if b >= budget_s - 1e-12]
    if above:
        bound, label = above[0]
        over = f'\n  1 - sum(rate({bucket}{{le="{label}"}}[5m])) / sum(rate({count}[5m]))'
        note = (
            "The second is the share of answers over the budget."
            if abs(bound - budget_s) < 1e-12
            else f"The second is the share of answers over {bound * 1000:g} ms, the nearest "
            f"histogram bound above the {f.serving.latency_budget_ms:g} ms budget (so at most "
            "the share over the budget)."
        )
    else:
        over = ""
        note = (
            f"The histogram's largest bound ({_latency_buckets()[-1][0]:g} s) is below the "
            "budget, so /metrics cannot count answers over it: use `latency_ms` in the log."
        )
    return f"""{f.header("Latency budget breached")}
Each request has {f.serving.latency_budget_ms:g} ms from its arrival. A network store lookup is
abandoned at 80% of it and a slow pilot model at the deadline, and the fallback answers; the
durable log commit comes after that, before the answer is sent.

## Symptoms

- The 99th percentile of `{f.series("latency")}` nears {budget_s:g} s:

  ```promql
  histogram_quantile(0.99, sum by (le, path) (rate({bucket}[5m]))){over}
  ```

  {note}
- `{f.series("fallbacks", labels='reason="timed_out"')}` (store) or `reason="overran"` (model)
  grows: the budget is being enforced by falling back.
- `{f.series("shed")}` and `{f.series("requests", labels='status="429"')}` grow: more than
  `serving.max_in_flight` requests at once per worker.
- `{f.series("log_commit", "_sum")}` / `{f.series("log_commit", "_count")}` rises: the disk
  under the prediction log (`{f.log_folder}`) is slow; callers wait for it though it is not in
  `latency_ms`.

## Thresholds

{f.thresholds("serving.latency_budget_ms", "serving.max_in_flight")}

## Diagnose

{
        _sh(
            f"curl -s {SERVICE_URL}/metrics | grep -E '{f.metric['latency']}_count|{f.metric['shed']}|{f.metric['log_commit']}_sum'",
            f.cmd("models", "show", "<version>"),
            f.cmd("audit", "--model", "<version>"),
        )
    }

`models show` gives the serving form's measured scoring time; `audit` re-measures the
lookup and scoring latency. Where the time goes, by answer path, over the last hour:

{
        f.log_query(
            "ts >= now() - INTERVAL 1 HOUR",
            "path, count(*) AS answers, quantile_cont(latency_ms, 0.99) AS p99_ms, "
            "quantile_cont(lookup_ms, 0.99) AS lookup_p99_ms",
        )
    }

## Recover

- Lookups slow: see [online store down](online-store-down.md).
- Scoring slow: roll back (`taxiway models promote <version>`, see
  [model error](model-error.md)) and retrain with a lighter model.
- Overload (shed requests, every path slow): add workers, as many as there are free cores:

{_sh(f.cmd("serve", "--workers", "<n>"))}

- Log commits slow: move `serving.log.path` to a faster disk, or relax its sync setting
  (docs/serving.md explains the trade-off).

## Verify

The p99 query above stays under {budget_s:g} s and the `timed_out`/`overran` fallbacks stop.
"""
