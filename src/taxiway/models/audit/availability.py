"""Prediction-time availability: production can give the model every input it expects.

Each input must be produced by a feature view (the online store serves it) or declared in
``model.request_fields`` (the caller sends it). Anything else is a blocker naming the input:
the notebook had it, production does not. A source whose ``available_after`` exceeds its
contract's freshness SLA is a warning: one of the two numbers is wrong.
"""

from __future__ import annotations

from taxiway.data.contracts.loader import load_contract
from taxiway.errors import TaxiwayError
from taxiway.models.audit.context import AuditContext
from taxiway.models.audit.findings import AuditReport
from taxiway.spec.durations import format_duration

__all__ = ["check_availability"]


def check_availability(ctx: AuditContext, report: AuditReport) -> None:
    """Record every input production cannot give, and SLA/delay contradictions."""
    spec = ctx.spec
    requested = set(ctx.request_fields)
    for name in ctx.version.features:
        if name in ctx.origins or name in requested:
            continue
        holders = [
            source
            for source, declared in spec.sources.items()
            if name in _columns(declared.contract)
        ]
        if holders:
            hint = (
                f"`{name}` is a column of source `{holders[0]}`: serve it through a view "
                f"(e.g. `latest: [{name}]` on `{holders[0]}`), retrain on the view's column, "
                f"or declare it in model.request_fields if the caller sends it"
            )
        else:
            hint = (
                f"add a feature view that produces `{name}`, declare it in model.request_fields "
                "if the caller sends it with each request, or retrain without it"
            )
        report.add(
            "availability",
            "blocker",
            name,
            f"the model expects `{name}`, but no feature view produces it and no request "
            "carries it: production cannot give it at prediction time",
            hint,
        )
    sources = {ctx.origins[f].view.source for f in ctx.version.features if f in ctx.origins}
    for source in sorted(sources):
        declared = spec.sources[source]
        if declared.contract is None or declared.timestamp is None:
            continue
        try:
            contract = load_contract(declared.contract)
        except TaxiwayError:
            continue  # the coverage and data checks report broken contracts
        for sla in contract.slaProperties:
            if sla.is_freshness and declared.available_after > sla.max_age:
                report.add(
                    "availability",
                    "warning",
                    None,
                    f"source `{source}` declares available_after "
                    f"{format_duration(declared.available_after)}, longer than its contract's "
                    f"freshness SLA ({format_duration(sla.max_age)}): either the SLA is not met "
                    "or the delay is overstated",
                    f"measure the ingestion delay of `{source}`; set available_after to it, or "
                    "raise the SLA in its contract to what the pipeline delivers",
                )


def _columns(contract_path: str | None) -> set[str]:
    if contract_path is None:
        return set()
    try:
        contract = load_contract(contract_path)
    except TaxiwayError:
        return set()
    return {p.name for obj in contract.schema_ for p in obj.properties}
