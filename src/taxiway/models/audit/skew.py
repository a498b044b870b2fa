"""Skew: the online store serves what the training set would have computed, for this model.

Runs the feature store's skew check (offline recomputation at the materialization time versus
the online values) on a sample of keys and keeps the mismatches of the model's inputs.
"""

from __future__ import annotations

from taxiway.features.materialize import materialized_as_of
from taxiway.features.online import open_online_store
from taxiway.features.skew import check_skew
from taxiway.models.audit.context import AuditContext
from taxiway.models.audit.findings import AuditReport

__all__ = ["check_model_skew"]


def check_model_skew(ctx: AuditContext, report: AuditReport) -> None:
    """Record a blocker per mismatching input (a warning if the store was never filled)."""
    spec = ctx.spec
    views = ctx.model_views
    if not views:
        report.checks["skew"] = "not applicable"
        return
    done = materialized_as_of(ctx.project)
    missing = [name for name in views if name not in done]
    if missing:
        report.add(
            "skew",
            "warning",
            None,
            f"views {', '.join(missing)} were never materialized, so online and offline values "
            "cannot be compared",
            "run `taxiway features materialize` and audit again",
        )
        return
    as_of = max(done[name] for name in views)
    store = open_online_store(
        spec.online_store, state_dir=ctx.project.state_dir, namespace=spec.name
    )
    try:
        result = check_skew(ctx.project, store, as_of=as_of, sample=ctx.sample)
    except Exception as error:  # any failure to compare is itself the finding
        report.add(
            "skew",
            "blocker",
            None,
            f"the skew check failed: {type(error).__name__}: {str(error).splitlines()[0]}",
            "run `taxiway features skew` to see the error in full, fix it, and audit again",
        )
        return
    finally:
        store.close()
    used = set(ctx.version.features)
    mismatches = [m for m in result.mismatches if m.feature in used]
    report.measured["skew"] = {
        "as_of": as_of.isoformat(),
        "compared": result.compared,
        "mismatches": len(mismatches),
    }
    by_feature: dict[str, list[str]] = {}
    for m in mismatches:
        by_feature.setdefault(m.feature, []).append(
            f"{m.entity}={m.key}: online {m.online!r}, offline {m.offline!r} ({m.reason})"
        )
    for feature, examples in by_feature.items():
        report.add(
            "skew",
            "blocker",
            feature,
            f"{len(examples)} of the sampled keys differ online vs offline, e.g. "
            + "; ".join(examples[:3]),
            "re-run `taxiway features materialize` (a stale or partial load is the usual cause); "
            "if it persists, run `taxiway features skew` and report the view definition",
        )
