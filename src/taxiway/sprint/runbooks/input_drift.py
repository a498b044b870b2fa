"""The runbook page: an input drift alert, diagnosed with ``taxiway monitor``."""

from __future__ import annotations

from datetime import timedelta

from taxiway.spec.models import Monitoring, PeriodicSpine
from taxiway.sprint.runbooks.facts import _MONITOR, _Facts, _sh, _yaml


def _input_drift(f: _Facts) -> str:
    monitoring = f.project.spec.monitoring
    spine = f.project.spec.spine
    since = spine.every if isinstance(spine, PeriodicSpine) else timedelta(days=1)
    since_text = f"{int(since.total_seconds() // 3600)}h"
    if monitoring is None:
        declared = (
            "The spec has no `monitoring:` section: no drift statistic, window or webhook is "
            f"declared. `{_MONITOR}` runs with the defaults below all the same; declare the "
            "section to choose (thresholds are calibrated per window size unless "
            "`alert_threshold` fixes one):\n\n"
            + _yaml(f"monitoring:\n  drift: {Monitoring().drift}\n  window: 1h")
        )
    else:
        keys = ["monitoring.drift", "monitoring.window", "monitoring.hysteresis"]
        if monitoring.alert_threshold is not None:
            keys.insert(1, "monitoring.alert_threshold")
        declared = f.thresholds(*keys)
        if monitoring.alert_threshold is None:
            declared += (
                "\n\nNo `alert_threshold`: each feature's threshold is calibrated per window "
                "size at training (the 99th percentile of the statistic between reference "
                "resamples of that size), so about 1% of healthy windows cross it."
            )
    window = (monitoring or Monitoring()).window
    hysteresis = (monitoring or Monitoring()).hysteresis
    monitor = f.cmd("monitor", "--since", since_text)
    return f"""{f.header("Input drift alert")}
Live inputs no longer look like the data the model was validated on. `{_MONITOR}` compares
each window of the prediction log ({window.total_seconds() / 3600:g} h) with the reference
profile stored with the version at training, and marks a feature `drift` when
{hysteresis.k} of the last {hysteresis.m} windows are over its threshold.

## Symptoms

- `{_MONITOR}` exits 1 with a `drift` ticket naming the feature, its view and its source (and
  POSTs it to `monitoring.webhook` when one is set).
- `taxiway_drift_status{{feature="<feature>"}}` is 2 on the service's `/metrics`, and the
  feature is marked drifted on its `/dashboard`.
- `{f.series("out_of_range", labels='field="<field>"')}` grows: request values beyond anything
  seen in training.

## Thresholds

{declared}

## Diagnose

The report of the last scoring round ({since_text}): every feature's statistic, threshold and
status, its distribution against the reference (monitor.html), and for the drifted ones the
source to look at:

{_sh(f"{monitor} --out {f.project.state_dir}/monitor/report", f"{monitor} --json")}

- Several features of one source moved together: check the source (`taxiway check`, see
  [contract breach](contract-breach-breaker-open.md)): a changed upstream feed (a unit, a
  format, a vendor's release) is the usual cause.
- A feature's missing share jumped: the source stopped sending it.
- The output moved and quality (realised, or estimated while labels wait) fell: the model no
  longer fits; inputs explain, quality decides.

## Recover

- A broken source: fix or roll back the feed; the windows after the fix come back `ok`.
- Online values differ from what the same definitions give offline: a pipeline bug.

{_sh(f.cmd("check"), f.cmd("features", "skew"))}

- The world moved (the data is right and it changed): retrain on recent data,
  [retraining](retraining.md).
"""
