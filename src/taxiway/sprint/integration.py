"""The integration phase: the candidate served for real, smoke-tested, loaded, and drilled.

The service runs as ``taxiway serve --model V`` in a subprocess on a free loopback port (the
candidate is not in production yet), exactly as it would in production
(:mod:`taxiway.sprint.served`). Then:

- **smoke**: every endpoint answers as documented (health, readiness, ``/v1/predict`` one item
  and a list, the Open Inference Protocol, ``/v1/outcomes``, ``/metrics``, ``/openapi.json``)
  and a malformed request gets a 422, not a 5xx. The Open Inference request is built from
  what the service says it takes (``GET /v2/models/{name}``): every entity and request field
  of the served input contract, several rows. A failed check's evidence holds the service's
  answer, and its fix replays the same request, saved to a file (:mod:`taxiway.sprint.smoke`);
- **load**: ``concurrency`` keep-alive clients for ``duration_s`` seconds
  (:mod:`taxiway.sprint.load`). Each request is timed by its client, from the first byte sent
  to the last byte of the answer read: that p99 (the whole request, as a user sees it) must
  stay within ``serving.latency_budget_ms``, with no error. The service's own ``latency_ms``
  is reported beside it, with the test's real duration; the load test also counts the
  requests refused because the prediction log could not be written;
- **fault drills**: a second service with the online store made unavailable, once refusing
  connections (``TAXIWAY_FAULTS=online_store=down``) and once hanging
  (``online_store=slow``), each through the real store's own read path (see
  :mod:`taxiway.serving.faults`): every answer must still come, within the budget, marked
  ``degraded``. A drill sends a number of requests (``requests``), not a length of time.

Requests are built from the training set's newest rows, so they name entities the online
store holds and carry realistic request fields.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxiway.models.registry import ModelVersion
from taxiway.spec.project import Project
from taxiway.sprint.load import LoadResult, load_test
from taxiway.sprint.served import RunningService, running_service, stop_service
from taxiway.sprint.smoke import SMOKE_ROWS, infer_request, smoke_test

__all__ = [
    "DRILL_MODES",
    "SMOKE_ROWS",
    "LoadResult",
    "RunningService",
    "drill",
    "infer_request",
    "load_test",
    "running_service",
    "sample_requests",
    "smoke_test",
    "stop_service",
]


def sample_requests(project: Project, version: ModelVersion, n: int = 256) -> list[dict[str, Any]]:
    """Up to ``n`` request bodies from the training set's newest rows (entities + fields)."""
    spec = project.spec
    inputs = set(version.features)
    entities: dict[str, tuple[str, ...]] = {}
    for name, view in spec.features.items():
        if inputs & set(view.output_names(name)):
            entities[view.entity] = spec.entity_keys(view.entity)
    fields = [f for f in (spec.model.request_fields if spec.model else []) if f in inputs]
    path = version.training.get("path")
    if not path or not Path(str(path)).exists():
        return [{"entities": {}, "features": {}}] if not entities else []
    columns = [c for cols in entities.values() for c in cols] + fields
    table = pq.read_table(str(path), columns=[*dict.fromkeys(columns), "timestamp"])
    if table.num_rows == 0:
        return []
    newest = pc.max(table["timestamp"])
    rows = table.filter(pc.equal(table["timestamp"], newest)).slice(0, n).to_pylist()
    bodies = []
    for row in rows:
        body: dict[str, Any] = {"entities": {}}
        for entity, keys in entities.items():
            if len(keys) == 1:
                body["entities"][entity] = str(row[keys[0]])
            else:
                body["entities"][entity] = {k: row[k] for k in keys}
        if fields:
            body["features"] = {f: _plain(row[f]) for f in fields}
        bodies.append(body)
    return bodies


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


DRILL_MODES = ("down", "slow")
"""The online-store faults the sprint drills, in order (:data:`taxiway.serving.faults`)."""


def drill(
    project: Project,
    version: int,
    bodies: list[dict[str, Any]],
    *,
    requests: int = 200,
    mode: str = "down",
    timeout_s: float = 30.0,
) -> LoadResult:
    """A fault drill: a second service whose online store is ``mode``, ``requests`` answers
    (or what ``timeout_s`` allows). Its result times the service's start and stop too
    (``service_start_s``, ``service_stop_s``; ``total_s`` is the whole drill)."""
    began = time.perf_counter()
    with running_service(project, version, faults=f"online_store={mode}") as service:
        ready = time.perf_counter()
        result = load_test(
            service, bodies, concurrency=4, duration_s=timeout_s, max_requests=requests
        )
        loaded = time.perf_counter()
    result.service_start_s = ready - began
    result.service_stop_s = time.perf_counter() - loaded
    return result
