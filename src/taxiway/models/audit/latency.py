"""Latency budget: measured p99 of the online lookup and of one-row scoring.

The lookup reads every entity the model's views are keyed by (one store round trip each, as
the service will) for keys sampled from the training set; scoring runs the model's serving
form on one row at a time. Their p99s together must fit ``serving.latency_budget_ms``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from taxiway.features.lookup import lookup
from taxiway.features.materialize import encode_key
from taxiway.features.online import open_online_store
from taxiway.models.artifact import load_model
from taxiway.models.audit.context import AuditContext
from taxiway.models.audit.findings import AuditReport
from taxiway.spec.models import Serving

__all__ = ["check_latency", "percentiles"]


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50/p99 in milliseconds of durations in seconds.

    >>> percentiles([0.001] * 99 + [0.010])
    {'p50_ms': 1.0, 'p99_ms': 1.09, 'calls': 100}
    """
    values = np.asarray(samples_s) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "calls": len(samples_s),
    }


def _timed(action: Callable[[], Any], repeats: int) -> list[float]:
    for _ in range(min(20, repeats)):  # warm-up: caches, lazy imports, connections
        action()
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        samples.append(time.perf_counter() - began)
    return samples


def check_latency(ctx: AuditContext, report: AuditReport) -> None:
    """Measure lookup and scoring p99 and compare their sum with the budget."""
    spec = ctx.spec
    budget = (spec.serving or Serving()).latency_budget_ms
    rows = ctx.training_rows(ctx.sample)
    if rows is None or rows.num_rows == 0:
        report.add(
            "latency",
            "warning",
            None,
            "the training set this version was trained on is gone, so no keys or rows to time",
            "rebuild it (`taxiway train` reuses or rebuilds it) and audit again",
        )
        return
    records = rows.to_pylist()
    entities = {view.entity for view in ctx.model_views.values()}
    lookup_p99 = 0.0
    if entities:
        store = open_online_store(
            spec.online_store, state_dir=ctx.project.state_dir, namespace=spec.name
        )
        try:
            keys = {
                entity: [
                    encode_key(tuple(r.get(k) for k in spec.entity_keys(entity))) for r in records
                ]
                for entity in entities
            }
            cycle = iter(range(10**9))
            found = 0

            def one_request() -> None:
                nonlocal found
                index = next(cycle) % len(records)
                for entity in entities:
                    got = lookup(spec, store, entity, [keys[entity][index]])
                    found += any(v.status == "present" for v in got[0].features.values())

            timings = percentiles(_timed(one_request, ctx.repeats))
        except Exception as error:  # a store that is down is a finding, not a crash
            report.add(
                "latency",
                "blocker",
                None,
                f"the online store could not be read: {type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}",
                "start the online store (or fix online_store in the spec), run `taxiway "
                "features materialize`, and audit again",
            )
            return
        finally:
            store.close()
        lookup_p99 = timings["p99_ms"]
        report.measured["online_lookup"] = {**timings, "entities": sorted(entities)}
        if found == 0:
            report.add(
                "latency",
                "warning",
                None,
                "the online store holds no values for the sampled keys: the lookup was timed "
                "on an empty store",
                "run `taxiway features materialize` before serving (and before this audit)",
            )
    model = load_model(ctx.version.artifact_dir)
    cycle_rows = iter(range(10**9))

    def one_score() -> None:
        model.predict_one(records[next(cycle_rows) % len(records)])

    try:
        scoring = percentiles(_timed(one_score, ctx.repeats))
    except Exception as error:  # the model's own code: a failure is the finding
        report.add(
            "latency",
            "blocker",
            None,
            f"one-row scoring failed on a training row: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}",
            "make the model accept every row production sends (missing values included: impute "
            "inside the pipeline), or it will answer only from the fallback",
        )
        return
    report.measured["scoring"] = {**scoring, "form": model.serving_kind}
    total = lookup_p99 + scoring["p99_ms"]
    report.measured["latency_budget_ms"] = budget
    report.measured["p99_total_ms"] = round(total, 3)
    if total > budget:
        report.add(
            "latency",
            "blocker",
            None,
            f"p99 online lookup {lookup_p99:.2f} ms + p99 one-row scoring "
            f"{scoring['p99_ms']:.2f} ms = {total:.2f} ms, over the {budget:g} ms budget",
            "use a faster online store (Redis on the same network), fewer or cheaper views, a "
            "smaller model (fewer trees), or raise serving.latency_budget_ms if the caller "
            "can wait",
        )
