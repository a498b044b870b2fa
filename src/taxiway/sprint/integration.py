"""The integration phase: the candidate served for real, smoke-tested, loaded, and drilled.

The service runs as ``taxiway serve --model V`` in a subprocess on a free loopback port (the
candidate is not in production yet), exactly as it would in production. Then:

- **smoke**: every endpoint answers as documented (health, readiness, ``/v1/predict`` one item
  and a list, the Open Inference Protocol, ``/v1/outcomes``, ``/metrics``, ``/openapi.json``)
  and a malformed request gets a 422, not a 5xx. The Open Inference request is built from
  what the service says it takes (``GET /v2/models/{name}``): every entity and request field
  of the served input contract, several rows. A failed check's evidence holds the service's
  answer, and its fix replays the same request, saved to a file;
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

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxiway.errors import TaxiwayError
from taxiway.models.registry import ModelVersion
from taxiway.serving.auth import client_key
from taxiway.serving.faults import ENV as FAULTS_ENV
from taxiway.spec.models import Serving
from taxiway.spec.project import Project
from taxiway.sprint.load import LoadResult, load_test
from taxiway.sprint.outcome import Check, blocker

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


@dataclass
class RunningService:
    """A `taxiway serve` subprocess on loopback, serving ``version`` (None: production)."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    headers: dict[str, str]
    version: int | None = None

    def output(self, last: int = 2000) -> str:
        """The end of what the service printed."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-last:]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_service(
    project: Project,
    version: int | None,
    *,
    faults: str | None = None,
    port: int | None = None,
    ready_timeout_s: float = 120.0,
    keep: bool = False,
) -> Iterator[RunningService]:
    """Start ``taxiway serve`` for ``version`` (None: production); stop it after (unless
    ``keep``). Raises :class:`TaxiwayError` with the service's output when it does not get
    ready."""
    port = port or _free_port()
    folder = project.state_dir / "sprint"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"serve-{port}.log"
    command = [sys.executable, "-m", "taxiway", "serve", "-f", str(project.spec_path),
               "--state-dir", str(project.state_dir), "--port", str(port)]  # fmt: skip
    if version is not None:
        command += ["--model", str(version)]
    env = {k: v for k, v in os.environ.items() if k != FAULTS_ENV}
    if faults:
        env[FAULTS_ENV] = faults
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    key = client_key((project.spec.serving or Serving()).auth)
    service = RunningService(
        process, f"http://127.0.0.1:{port}", log, {"X-API-Key": key} if key else {}, version
    )
    try:
        _wait_ready(service, ready_timeout_s)
        yield service
    finally:
        if not keep:
            stop_service(service)


def stop_service(service: RunningService) -> None:
    """SIGTERM the service's process group, then SIGKILL after 15 s."""
    process = service.process
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_ready(service: RunningService, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if service.process.poll() is not None:
            raise TaxiwayError(
                f"the service exited with code {service.process.returncode} before it was "
                f"ready: {service.output(600).strip()}",
                fix=f"run the same `taxiway serve` yourself; its output is in {service.log}",
            )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{service.url}/v2/health/ready", timeout=1.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            stop_service(service)
            raise TaxiwayError(
                f"the service was not ready after {timeout_s:.0f}s: {service.output(600).strip()}",
                fix=f"see {service.log}",
            )
        time.sleep(0.2)


# ---------------------------------------------------------------------------- requests


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


# ---------------------------------------------------------------------------- smoke

SMOKE_ROWS = 3
"""How many sampled requests the list and Open Inference smoke requests carry."""


def infer_request(metadata: dict[str, Any], bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """An Open Inference Protocol request for ``bodies`` (``/v1/predict`` items), built from
    the served model's metadata (``GET /v2/models/{name}``): one tensor per input it names,
    entity or request field, one row per body, with the datatype the service declares.

    >>> meta = {"inputs": [{"name": "origin", "datatype": "BYTES", "shape": [-1]},
    ...                    {"name": "carrier", "datatype": "BYTES", "shape": [-1]},
    ...                    {"name": "distance", "datatype": "FP64", "shape": [-1]}]}
    >>> bodies = [{"entities": {"origin": "JFK", "carrier": "B6"}, "features": {"distance": 944}},
    ...           {"entities": {"origin": "EWR", "carrier": "UA"}, "features": {"distance": None}}]
    >>> [(t["name"], t["shape"], t["data"]) for t in infer_request(meta, bodies)["inputs"]]
    [('origin', [2], ['JFK', 'EWR']), ('carrier', [2], ['B6', 'UA']), ('distance', [2], [944, None])]
    """
    inputs = []
    for tensor in metadata.get("inputs", []):
        name = str(tensor["name"])
        data = [_input_value(body, name) for body in bodies]
        inputs.append(
            {"name": name, "shape": [len(data)], "datatype": tensor["datatype"], "data": data}
        )
    return {"id": "taxiway-sprint-smoke", "inputs": inputs}


def _input_value(body: dict[str, Any], name: str) -> Any:
    entities = body.get("entities") or {}
    if name in entities:
        return entities[name]
    return (body.get("features") or {}).get(name)


_Judge = Callable[[httpx.Response], tuple[bool, str]]


def _status(expected: int) -> _Judge:
    def judge(r: httpx.Response) -> tuple[bool, str]:
        return r.status_code == expected, f"HTTP {r.status_code}"

    return judge


def _predicted(r: httpx.Response) -> tuple[bool, str]:
    if r.status_code != 200:
        return False, f"HTTP {r.status_code}"
    answer = r.json()
    fields = {"request_id", "prediction", "model_version", "arm", "degraded", "path"}
    missing = fields - set(answer)
    if missing:
        return False, f"HTTP 200 without {', '.join(sorted(missing))}"
    return True, f"path {answer['path']}, {answer['latency_ms']:.1f} ms"


def _inferred(rows: int, names: list[str]) -> _Judge:
    def judge(r: httpx.Response) -> tuple[bool, str]:
        if r.status_code != 200:
            return False, f"HTTP {r.status_code}"
        outputs = {o.get("name"): o for o in r.json().get("outputs", [])}
        data = outputs.get("prediction", {}).get("data")
        if not isinstance(data, list) or len(data) != rows:
            return False, f"HTTP 200 without {rows} predictions"
        return True, f"HTTP 200, {rows} predictions for {rows} rows ({', '.join(names)})"

    return judge


def smoke_test(
    service: RunningService, project: Project, bodies: list[dict[str, Any]]
) -> list[Check]:
    """One check per endpoint; a failed one carries a technical blocker whose evidence holds
    the service's answer (its first 500 characters) and whose fix replays the request, saved
    under ``<state dir>/sprint/smoke/``."""
    name = project.spec.name
    body = bodies[0] if bodies else {"entities": {}}
    some = bodies[:SMOKE_ROWS] or [body]
    checks: list[Check] = []
    with httpx.Client(base_url=service.url, timeout=10.0, headers=service.headers) as client:

        def probe(
            label: str,
            judge: _Judge,
            payload: Any = None,
            data: dict[str, Any] | None = None,
        ) -> httpx.Response | None:
            method, path = label.split(" (")[0].split(" ", 1)
            began = time.perf_counter()
            response = None
            try:
                response = client.request(method, path, json=payload)
                good, detail = judge(response)
            except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as error:
                good, detail = False, f"{type(error).__name__}: {error}"
            elapsed = time.perf_counter() - began
            check = Check(f"smoke {label}", "pass" if good else "fail", detail, elapsed,
                          data=data or {})  # fmt: skip
            if not good:
                evidence = detail
                if response is not None and response.text:
                    evidence += f"; the service answered: {response.text[:500]}"
                check.blocker = blocker(
                    "integration",
                    "technical",
                    f"{label} does not answer as documented",
                    evidence=evidence,
                    fix=_replay(service, project, label, method, path, payload, response),
                    kind="code",
                )
            checks.append(check)
            return response if good else None

        probe("GET /v2/health/live", _status(200))
        probe("GET /v2/health/ready", _status(200))
        probe("POST /v1/predict", _predicted, body)
        probe(
            "POST /v1/predict (a list)",
            lambda r: (
                r.status_code == 200 and len(r.json()) == len(some),
                f"HTTP {r.status_code}",
            ),
            some,
        )
        has_entities = bool(body.get("entities"))
        probe(
            "POST /v1/predict (malformed)",
            lambda r: (
                r.status_code == 422 if has_entities else r.status_code in (200, 422),
                f"HTTP {r.status_code} (a 422 naming the field is expected)",
            ),
            {"entities": 17},
        )
        metadata = probe(f"GET /v2/models/{name}", _status(200))
        if metadata is not None:
            infer = infer_request(metadata.json(), some)
            names = [str(t["name"]) for t in infer["inputs"]]
            label = f"POST /v2/models/{name}/infer"
            if names:
                rows = {"inputs": names, "rows": len(some)}
                probe(label, _inferred(len(some), names), infer, rows)
            else:
                checks.append(Check(f"smoke {label}", "skip",
                                    "the model takes no input, so there is no tensor to send"))  # fmt: skip
        outcome = project.spec.label.name if project.spec.label else "outcome"
        probe(
            "POST /v1/outcomes",
            _status(200),
            {"unit": "taxiway-sprint-smoke", "name": outcome, "value": 0},
        )
        probe(
            "GET /metrics",
            lambda r: (
                r.status_code == 200 and "taxiway_request_latency_seconds" in r.text,
                f"HTTP {r.status_code}",
            ),
        )
        probe("GET /openapi.json", _status(200))
    return checks


def _replay(
    service: RunningService,
    project: Project,
    label: str,
    method: str,
    path: str,
    payload: Any,
    response: httpx.Response | None,
) -> str:
    """The fix of a failed smoke check: serve the same version and send the same request.

    The request goes to a file (``<state dir>/sprint/smoke/``) so the command replays it
    exactly. The service prints no line per request, so the fix points at its log only when
    it crashed or failed (no answer, or a 5xx), where a traceback may be.
    """
    serve = f"taxiway serve -f {project.spec_path} --state-dir {project.state_dir}"
    if service.version is not None:
        serve += f" --model {service.version}"
    key = " -H 'X-API-Key: <a key with every role>'" if service.headers else ""
    url = f"http://127.0.0.1:8080{path}"
    if payload is None:
        call = f"curl -sS{key} {url}"
    else:
        folder = project.state_dir / "sprint" / "smoke"
        folder.mkdir(parents=True, exist_ok=True)
        saved = folder / (re.sub(r"[^A-Za-z0-9_]+", "-", label).strip("-").lower() + ".json")
        saved.write_text(json.dumps(payload, indent=1, default=str))
        call = f"curl -sS -X {method}{key} -H 'content-type: application/json' -d @{saved} {url}"
    fix = f"run `{serve}`, then `{call}`"
    if response is None or response.status_code >= 500:
        return f"{fix}; the service's output is in {service.log}"
    if response.status_code >= 400:
        return f"{fix}: the service's answer (in the evidence) names what it refused"
    return f"{fix}, and compare its answer (in the evidence) with docs/serving.md"


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
