"""The runbook page: when and how to retrain, from the spine and the label."""

from __future__ import annotations

from datetime import timedelta

from taxiway.spec.models import EventLabel, PeriodicSpine, SumLabel
from taxiway.sprint.runbooks.facts import _Facts, _sh, _show


def _retraining(f: _Facts) -> str:
    spec = f.project.spec
    spine, label = spec.spine, spec.label
    lines = []
    keys: list[str] = []
    if isinstance(spine, PeriodicSpine):
        keys += ["spine.every", "spine.start", "spine.end"]
        lines.append(
            f"Predictions are made every {_show(spine.every)} (`spine.every`); training uses "
            f"the spine times from `spine.start` to `spine.end`, so retraining on newer data "
            "means moving `spine.end` forward."
        )
    elif spine is not None:
        lines.append(
            f"Predictions are made at each row of `{spine.source}` (an event spine); retraining "
            "takes every row known at the time."
        )
    else:
        lines.append("The spec has no `spine:`: nothing says when predictions are made.")
    if isinstance(label, EventLabel | SumLabel):
        keys.append("label.horizon")
        lag = spec.sources[label.source].available_after if label.source in spec.sources else None
        if lag is not None:
            keys.append(f"sources.{label.source}.available_after")
        wait = label.horizon + (lag or timedelta(0))
        lines.append(
            f"A prediction's label (`{label.name}`) is complete {_show(wait)} after it is made "
            f"(`label.horizon`{' + the source lag' if lag else ''}): the newest spine time "
            f"worth training on is today − {_show(wait)}."
        )
    elif label is not None:
        lines.append(f"The label `{label.name}` is read from the spine row itself.")
    cadence = (
        f"Retraining more often than every {_show(spine.every)} adds no labels. "
        if isinstance(spine, PeriodicSpine)
        else ""
    )
    table = f.thresholds(*keys) if keys else "No spine or label is declared."
    return f"""{f.header("Retraining cadence")}
The spec declares no retraining schedule, and taxiway schedules nothing by itself: the team
picks one and writes it here. What the spec fixes:

{table}

{" ".join(lines)}

{cadence}Retrain when [input drift](input-drift.md) alerts, when the outcome falls
([rollout rollback](rollback.md) shows it per version), or when a source or its contract
changes. Keep the online features fresh for every scoring round by materializing before it.

## Retrain

1. Move `spine.end` forward (a periodic spine) to the newest spine time whose labels are
   complete, then:

{
        _sh(
            f.cmd("check"),
            f.cmd("train"),
            f.cmd("audit"),
            f.cmd("models", "list"),
        )
    }

`train` exits 1 when the new version does not beat its baseline, and `audit` when it finds a
blocker: stop there. Editing the spec changes its hash, so earlier sign-offs now show as given
for an earlier spec; ask again if your policy says so:

{_sh(f.cmd("approve", "--list"))}

2. Promote, refresh the online store, and confirm it matches the offline definitions:

{
        _sh(
            f.cmd(
                "models", "promote", "<version>", "--by", "'<your name>'", "--note", "'retrained'"
            ),
            f.cmd("features", "materialize"),
            f.cmd("features", "skew"),
        )
    }

Watch `{f.series("model_version")}` switch, and the [rollback](rollback.md) query for the
outcome in the weeks after.
"""
