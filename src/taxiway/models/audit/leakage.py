"""Leakage: inputs that would not exist, or not have these values, at prediction time.

- a `latest` view on a source with no event time reads values as of the export, after every
  prediction time (a `static` view says the values never change: the user's attestation);
- one input that on its own separates the validation label almost perfectly (own ROC AUC ≥
  0.98, or R² ≥ 0.98 for regression) is almost surely the label in disguise: a blocker;
- one input that holds over 80% of the model's permutation importance: a warning;
- an imported pilot that expects the label itself, or a column named like an outcome.

Features that look back from the source the label looks forward into are correct by
construction (the point-in-time join sees only rows known before the prediction time) and
are not flagged for sharing that source.
"""

from __future__ import annotations

import re

from taxiway.models.audit.context import AuditContext
from taxiway.models.audit.findings import AuditReport
from taxiway.spec.models import LatestView

__all__ = ["OWN_SCORE_LIMIT", "SHARE_LIMIT", "check_leakage", "outcome_like"]

OWN_SCORE_LIMIT = 0.98
SHARE_LIMIT = 0.80
_OUTCOME = re.compile(
    r"(^|_)(target|label|outcome|y_true|ground_truth|future|next|will|after|result)(_|$)",
    re.IGNORECASE,
)


def outcome_like(name: str, label: str | None) -> str | None:
    """Why ``name`` looks like the outcome (the label's name, or an outcome word), or None.

    >>> outcome_like("is_churned", "churned"), outcome_like("orders_next_30d", "churned")
    ('it contains the label name `churned`', 'it is named like an outcome (`next`)')
    >>> outcome_like("orders_30d", "churned") is None
    True
    """
    lowered = name.lower()
    if label and lowered == label.lower():
        return f"it is the label `{label}`"
    if label and label.lower() in lowered:
        return f"it contains the label name `{label}`"
    match = _OUTCOME.search(name)
    return f"it is named like an outcome (`{match.group(2).lower()}`)" if match else None


def check_leakage(ctx: AuditContext, report: AuditReport) -> None:
    """Record every leakage finding of ``ctx``'s model in ``report``."""
    spec = ctx.spec
    version = ctx.version
    for name in version.features:
        origin = ctx.origins.get(name)
        if origin is None or not isinstance(origin.view, LatestView):
            continue
        source = spec.sources[origin.view.source]
        if source.timestamp is None:
            report.add(
                "leakage",
                "blocker",
                name,
                f"`{name}` comes from `latest:` on source `{origin.view.source}`, which has no "
                "event time: every training row sees the values as of the export, written after "
                "the prediction times it is trained for",
                f"give sources.{origin.view.source} a `timestamp:` (e.g. updated_at) so taxiway "
                "takes the value known at each prediction time; only if the values never change "
                f"once written, declare features.{origin.view_name} as `static:` instead",
            )
    score_name = version.metrics.get("single_feature_score", "roc_auc")
    for name, score in (version.metrics.get("single_feature") or {}).items():
        if score is not None and score >= OWN_SCORE_LIMIT:
            report.add(
                "leakage",
                "blocker",
                name,
                f"on its own, `{name}` predicts the validation label with {score_name} "
                f"{score:.3f}: almost surely the label in disguise, or computed from data "
                "written after the prediction time",
                f"find how `{name}` is produced; if it reads the outcome or later data, drop it "
                "from model.features (or fix its source's timestamp/available_after) and retrain",
            )
    for name, share in (version.metrics.get("importance") or {}).items():
        if share > SHARE_LIMIT:
            report.add(
                "leakage",
                "warning",
                name,
                f"`{name}` holds {share:.0%} of the model's permutation importance: the model "
                "is close to a one-feature rule on it",
                f"confirm `{name}` is known at prediction time with the value used in training; "
                "compare with the baseline rule on it (model.baseline_feature)",
            )
    if version.algorithm == "pilot":
        label = spec.label.name if spec.label else None
        for name in version.features:
            why = outcome_like(name, label)
            if why is not None:
                report.add(
                    "leakage",
                    "blocker",
                    name,
                    f"the pilot expects `{name}`: {why}, which is only known after the prediction",
                    f"retrain the pilot without `{name}` (on taxiway's point-in-time training "
                    "set: `taxiway features build`), then import it again",
                )
