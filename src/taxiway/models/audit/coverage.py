"""Coverage: everything a production model needs around it is declared.

Every source behind an input has a data contract (unchecked data reaches the model otherwise);
a fallback answers when the model cannot; an ``owner`` is accountable; and
``governance.action`` says who acts on each prediction, and how.
"""

from __future__ import annotations

from taxiway.models.audit.context import AuditContext
from taxiway.models.audit.findings import AuditReport

__all__ = ["NO_ACTION", "NO_OWNER", "check_coverage"]

NO_OWNER = "no owner is declared"
"""How the evidence of the missing-owner finding starts (the sprint reports it as governance)."""
NO_ACTION = "governance.action is missing"
"""How the evidence of the missing-action finding starts."""


def check_coverage(ctx: AuditContext, report: AuditReport) -> None:
    """Record a blocker for each missing contract, fallback, owner or action."""
    spec = ctx.spec
    sources = sorted({view.source for view in ctx.model_views.values()})
    if ctx.request_fields and spec.spine is not None:
        sources = sorted({*sources, spec.spine.source})
    for source in sources:
        if spec.sources[source].contract is None:
            report.add(
                "coverage",
                "blocker",
                None,
                f"source `{source}` feeds the model but has no data contract: nothing stops "
                "malformed or late rows from reaching it",
                f"write an ODCS contract for `{source}` (see docs/contracts.md) and set "
                f"sources.{source}.contract",
            )
    if spec.serving is None or not spec.serving.fallback:
        report.add(
            "coverage",
            "blocker",
            None,
            "no fallback is declared: when the model or the online store fails, requests fail",
            "set serving.fallback (e.g. `baseline`, the rule trained with the model)",
        )
    if not spec.owner:
        report.add(
            "coverage",
            "blocker",
            None,
            f"{NO_OWNER}: nobody is accountable for this model in production",
            "set `owner:` to the team that answers for it (e.g. `owner: growth-team`)",
        )
    if spec.governance is None or not spec.governance.action:
        report.add(
            "coverage",
            "blocker",
            None,
            f"{NO_ACTION}: nobody is named to act on the predictions, so the model changes nothing",
            "set governance.action: who acts on each prediction, and how "
            "(e.g. `the retention team calls customers scored above 0.7 each Monday`)",
        )
