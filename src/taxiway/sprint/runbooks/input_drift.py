"""The runbook page: an input drift alert, with the PSI script (``scripts/drift_psi.tmpl``)
to run by hand until ``taxiway monitor`` exists.
"""

from __future__ import annotations

from datetime import timedelta

from taxiway.spec.models import Monitoring, PeriodicSpine
from taxiway.sprint.runbooks.facts import _MONITOR, _Facts, _script, _sh, _yaml


def _input_drift(f: _Facts) -> str:
    monitoring = f.project.spec.monitoring
    spine = f.project.spec.spine
    since = spine.every if isinstance(spine, PeriodicSpine) else timedelta(days=1)
    since_note = (
        "spine.every: one scoring round"
        if isinstance(spine, PeriodicSpine)
        else "a day of traffic; widen it when there are few answers"
    )
    if monitoring is None:
        declared = (
            "The spec has no `monitoring:` section: no drift test or threshold is declared, so "
            "nothing would alert. Declare one (thresholds are calibrated per window size unless "
            "you fix one with `alert_threshold`):\n\n"
            + _yaml(f"monitoring:\n  drift: {Monitoring().drift}")
            + "\n\nUntil then the script below prints PSI values without judging them."
        )
        threshold, threshold_note = "None", "no monitoring.alert_threshold in the spec"
    else:
        declared = f.thresholds("monitoring.drift", "monitoring.alert_threshold")
        if monitoring.alert_threshold is None:
            declared += (
                "\n\nThe spec's thresholds are calibrated per version and window size: "
                "`taxiway monitor` applies them; the script below prints PSI without judging it."
            )
            threshold, threshold_note = "None", "calibrated thresholds: see `taxiway monitor`"
        elif monitoring.drift == "psi":
            threshold = f"{monitoring.alert_threshold:g}"
            threshold_note = "monitoring.alert_threshold"
        else:
            declared += (
                f"\n\nThe spec's test is `{monitoring.drift}`; the script below computes PSI, so "
                "it does not apply the spec's threshold (it is on another scale)."
            )
            threshold, threshold_note = "None", f"the spec's threshold is for {monitoring.drift}"
    script = _script("drift_psi.tmpl").format(
        threshold=threshold,
        threshold_note=threshold_note,
        since=repr(since).removeprefix("datetime."),
        since_note=since_note,
        spec=str(f.project.spec_path),
        state=str(f.project.state_dir),
        log=str(f.log_folder),
    )
    return f"""{f.header("Input drift alert")}
Live inputs no longer look like the training data. Drift monitoring is not built yet: the
planned `{_MONITOR}` command will compute it continuously and fire the alert. Until then,
run the check below by hand (or from cron) after each scoring round.

## Symptoms

- The script below prints `ALERT` for a feature.
- `{f.series("out_of_range", labels='field="<field>"')}` grows: request values beyond anything
  seen in training.
- Predictions shift: the share of high scores in the prediction log moves without a reason
  in the business.

## Thresholds

{declared}

## Diagnose

PSI of each input of the production version against its training profile (decile bins, as
the profile stores them; empty bins count as 0.0001):

```python
{script.rstrip()}
```

## Recover

- One source's features moved together: check the source (`taxiway check`, see
  [contract breach](contract-breach-breaker-open.md)): a changed upstream feed is the usual
  cause.
- Online values differ from what the same definitions give offline: a pipeline bug.

{_sh(f.cmd("check"), f.cmd("features", "skew"))}

- The world moved (the data is right and it changed): retrain on recent data,
  [retraining](retraining.md).
"""
