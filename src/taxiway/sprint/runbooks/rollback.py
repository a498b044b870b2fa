"""The runbook page: roll a worse version back, with the outcome-per-version query
(``scripts/outcomes.tmpl``), until ``taxiway rollout`` exists.
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
A new version is worse than the one before it. The rollout controller is not built yet: the
planned `{_ROLLOUT}` command will send the declared share of traffic to the candidate
against the control, test the outcome and the guardrails, and roll back by itself. Today every
request goes to the production version (`"arm": "production"`), so a rollout is a promotion
and a rollback is promoting the previous version again.

## Thresholds

{declared}

## Symptoms

- After a promotion (`{f.series("model_version")}` changed), the outcome `{metric}` is worse
  for the new version than for the one before it (the query below), or its fallbacks
  (`{f.series("fallbacks")}`) or latency (`{f.series("latency", "_count")}`) went up.

## Diagnose

{_sh(f.cmd("models", "list"), f.cmd("models", "show", "<version>", "--lineage"))}

The outcome per version, joining the prediction log with the outcomes callers sent to
`POST /v1/outcomes` (`name: {metric}`):

```python
{script}
```

The versions served at different times, so this is a comparison, not an experiment; the
rollout controller will randomize.

## Recover

Promote the version that served before (it stays in the registry when archived); every worker
switches within seconds without failing a request:

{_sh(f.cmd("models", "promote", "<version>", "--by", "'<your name>'", "--note", "'rollback: <why>'"))}

If the gate refuses (the audit of that version, the sign-offs) and the rollback cannot
wait, add `--force --reason 'rollback: <why>'`: who, why and what was overridden go into the
approvals log.

## Verify

`{f.series("model_version")}` shows the version you promoted; `taxiway models list` shows it
in production and the history records who rolled back and why.
"""
