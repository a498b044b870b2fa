"""The runbook page: a rollout rolled back (or to roll back by hand), with ``taxiway rollout``
and the outcome-per-version query (``scripts/outcomes.tmpl``).
"""

from __future__ import annotations

from taxiway.spec.models import Rollout
from taxiway.sprint.runbooks.facts import _ROLLOUT, _Facts, _script, _sh, _show, _yaml


def _rollback(f: _Facts) -> str:
    rollout = f.project.spec.rollout
    label = f.project.spec.label
    if rollout is None:
        metric = label.name if label is not None else "<outcome>"
        defaults = Rollout()
        declared = (
            "The spec has no `rollout:` section: no control, steps or outcome are declared. "
            "Add one (these steps are taxiway's defaults; the outcome is the spec's label):\n\n"
            + _yaml(
                f"rollout:\n  control: {defaults.control}\n  steps: {_show(defaults.steps)}\n"
                f"  metric: {metric}"
            )
        )
    else:
        metric = (
            rollout.metric.name
            if rollout.metric
            else (label.name if label is not None else "<outcome>")
        )
        declared = f.thresholds("rollout.control", "rollout.steps", "rollout.metric")
        declared += f"\n\nGuardrails: {_show(rollout.guardrails.model_dump(mode='json'))}."
    outcomes = f.log_folder.parent / "outcomes"
    script = (
        _script("outcomes.tmpl")
        .rstrip("\n")
        .format(log=str(f.log_folder), outcomes=str(outcomes), metric=metric)
    )
    return f"""{f.header("Rollout rollback")}
A new version is worse than its control. `{_ROLLOUT}` sends a growing share of units (users,
customers: `rollout.unit`) to the candidate, compares the outcome `{metric}` between the arms
with a confidence sequence that stays valid however often it is checked, watches the
guardrails, and rolls back by itself, sending all traffic back to control at once, when the
data show harm or a guardrail is breached. This page is for that moment, and for rolling back
by hand.

## Thresholds

{declared}

## Symptoms

- `{f.cmd("rollout", "status")}` says `rolled_back`, or its last verdict is `rollback` with
  the reasons (harm on `{metric}`, a guardrail, a sample ratio mismatch).
- `GET /v1/rollout/verdict` answers `"healthy": false` (Argo Rollouts and Flagger act on it:
  docs/rollout-hooks.md).
- After a completed rollout (the candidate in production), the outcome `{metric}` is worse for
  the new version than for the one before it (the query below), or its fallbacks
  (`{f.series("fallbacks")}`) or latency (`{f.series("latency", "_count")}`) went up.

## Diagnose

The rollout's state, its arms (units, events, mean, interval) and every transition with its
evidence, the hash chain verified:

{_sh(f.cmd("rollout", "status", "--json"), f.cmd("rollout", "status", "--events"))}

The outcome per version, joining the prediction log with the outcomes callers sent to
`POST /v1/outcomes` (`name: {metric}`):

```python
{script}
```

Across versions served at different times this is a comparison, not an experiment; within a
rollout the arms are randomized by unit, and the status above is the experiment's answer.

## Recover

During a rollout, send everyone back to control now (every worker follows within seconds):

{_sh(f.cmd("rollout", "rollback", "--reason", "'<why>'"))}

After a rollout completed, promote the version that served before (it stays in the registry
when archived):

{_sh(f.cmd("models", "promote", "<version>", "--by", "'<your name>'", "--note", "'rollback: <why>'"))}

If the gate refuses (the audit of that version, the sign-offs) and the rollback cannot
wait, add `--force --reason 'rollback: <why>'`: who, why and what was overridden go into the
approvals log.

## Verify

`{f.cmd("rollout", "status")}` says `rolled_back`; `{f.series("model_version")}` shows the
control's version; the rollout's events record who rolled back and why.
"""
