"""The runbook page: when and how to retrain, from the spec's ``retrain:`` policy (cadence,
triggers, window, sign-off policy), the spine and the label."""

from __future__ import annotations

from datetime import timedelta

from taxiway.spec.models import EventLabel, PeriodicSpine, RetrainSignoff, SumLabel
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
    if spec.retrain is not None:
        return _policy_page(f, table, " ".join(lines))
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


_TRIGGERS = {
    "drift": "[input drift](input-drift.md) alerts (`taxiway retrain --trigger drift:<feature>`)",
    "quality": "the outcome falls (`--trigger quality`)",
    "contract": "a source's contract alerts (`--trigger contract`)",
}


def _policy_page(f: _Facts, spine_table: str, spine_lines: str) -> str:
    """The page when the spec declares ``retrain:``: the policy, then the commands."""
    policy = f.project.spec.retrain
    assert policy is not None  # nosec B101
    governance = f.project.spec.governance
    roles = list(governance.approvals) if governance is not None else []
    keys = ["retrain.every", "retrain.min_new_rows", "retrain.auto_rollout"]
    if policy.window is not None:
        keys.insert(1, "retrain.window")
    if policy.signoff is not None:
        keys += ["retrain.signoff.on_new_feature", "retrain.signoff.on_new_source"]
        if policy.signoff.max_metric_drop is not None:
            keys.append("retrain.signoff.max_metric_drop")
    early = [_TRIGGERS[t] for t in policy.on if t in _TRIGGERS]
    triggers = (
        "Besides the cadence, a retrain starts early (`retrain.on`) when "
        + "; when ".join(early)
        + "."
        if early
        else "Nothing but the cadence starts a retrain (`retrain.on` is empty)."
    )
    window = (
        f"Each retrain trains on the last {_show(policy.window)} of spine times "
        "(`retrain.window`), sliding forward with the as-of time."
        if policy.window is not None
        else "Each retrain trains on the whole spine up to its as-of time."
    )
    return f"""{f.header("Retraining cadence")}
The spec's `retrain:` policy: a retrain every {_show(policy.every)}. {triggers} {window}
A run with fewer than {policy.min_new_rows:,} new source rows since the last version does
nothing (`retrain.min_new_rows`).

{f.thresholds(*keys)}

{spine_lines}

{spine_table}

## Sign-off

{_signoff_text(policy.signoff, roles, policy.auto_rollout)}

## Retrain

Each run takes the candidate through every gate: the sources' contracts, new data, the
baseline, production on the same validation rows, the audit. It exits 1 at a failed gate
(the candidate is archived with the figures) and 3 when a source fails its contract:

{_sh(f.cmd("retrain", "--json"))}

Then read what each version did and why:

{_sh(f.cmd("models", "history"))}

A candidate stopped at `candidate` waits for a person:

{_sh(f.cmd("approve", "--list"), f.cmd("rollout", "start", "--candidate", "<version>"))}

Watch `{f.series("model_version")}` switch, and the [rollback](rollback.md) query for the
outcome in the weeks after.
"""


def _signoff_text(signoff: RetrainSignoff | None, roles: list[str], auto: bool) -> str:
    rollout = (
        "starts its rollout by itself (`retrain.auto_rollout`)"
        if auto
        else "stops at `candidate`: `retrain.auto_rollout` is off, so a person starts its rollout"
    )
    if not roles:
        return f"The spec asks for no sign-offs: a candidate that passes every gate {rollout}."
    asked = ", ".join(roles)
    if signoff is None:
        return (
            f"The spec asks for sign-offs ({asked}) and sets no `retrain.signoff`: every "
            "retrain stops at `candidate` until they are given again."
        )
    person = []
    if signoff.on_new_feature:
        person.append("reads a feature production does not, or changes a feature's definition")
    if signoff.on_new_source:
        person.append("trains on a source production did not")
    if signoff.max_metric_drop is not None:
        person.append(
            f"scores more than {_show(signoff.max_metric_drop)} below production on the same rows"
        )
    need = "; or ".join(person) if person else "(nothing: every retrain is routine)"
    return (
        f"A person signs off again ({asked}) when the candidate {need}. Any other retrain is "
        f"routine: it reuses the standing sign-offs, records a `routine_retrain` line naming "
        f"them in the approvals log, and {rollout}."
    )
