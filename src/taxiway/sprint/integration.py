"""The integration phase: the candidate served for real, smoke-tested, loaded, and drilled.

The service runs as ``taxiway serve --model V`` in a subprocess on a free loopback port (the
candidate is not in production yet), exactly as it would in production. Then:

- **smoke**: every endpoint answers as documented (health, readiness, ``/v1/predict`` one item
  and a list, the Open Inference Protocol, ``/v1/outcomes``, ``/metrics``, ``/openapi.json``)
  and a malformed request gets a 422, not a 5xx;
- **load**: ``concurrency`` keep-alive clients for ``duration_s`` seconds. Each request is
  timed by its client, from the first byte sent to the last byte of the answer read: that
  p99 (the whole request, as a user sees it) must stay within
  ``serving.latency_budget_ms``, with no error. The service's own ``latency_ms`` (from the
  handler's start to its answer) is reported beside it. The clients run on the same machine,
  so their figure also holds the client's share of the CPU; the load test also counts the
  requests refused because the prediction log could not be written;
- **fault drills**: a second service with the online store made unavailable, once refusing
  connections (``TAXIWAY_FAULTS=online_store=down``) and once hanging
  (``online_store=slow``), each through the real store's own read path (see
  :mod:`taxiway.serving.faults`): every answer must still come, within the budget, marked
  ``degraded``.

Requests are built from the training set's newest rows, so they name entities the online
store holds and carry realistic request fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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
from taxiway.sprint.outcome import Blocker, Check

__all__ = [
    "RunningService",
    "drill",
    "load_test",
    "running_service",
    "sample_requests",
    "smoke_test",
]


@dataclass
class RunningService:
    """A `taxiway serve` subprocess on loopback."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    headers: dict[str, str]

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
        process, f"http://127.0.0.1:{port}", log, {"X-API-Key": key} if key else {}
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


def smoke_test(
    service: RunningService, project: Project, bodies: list[dict[str, Any]]
) -> list[Check]:
    """One check per endpoint; a failed one carries a technical blocker."""
    name = project.spec.name
    body = bodies[0] if bodies else {"entities": {}}
    first_entity = next(iter(body.get("entities", {}).items()), None)
    checks: list[Check] = []
    with httpx.Client(base_url=service.url, timeout=10.0, headers=service.headers) as client:

        def probe(label: str, call: Any, ok: Any) -> None:
            began = time.perf_counter()
            try:
                response = call()
                good, detail = ok(response)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
                good, detail = False, f"{type(error).__name__}: {error}"
            elapsed = time.perf_counter() - began
            if good:
                checks.append(Check(f"smoke {label}", "pass", detail, elapsed))
                return
            checks.append(
                Check(
                    f"smoke {label}",
                    "fail",
                    detail,
                    elapsed,
                    blocker=Blocker(
                        "integration",
                        "technical",
                        True,
                        f"{label} does not answer as documented",
                        evidence=detail,
                        fix=f"run `taxiway serve -f {project.spec_path}` and call {label}; "
                        f"the service's output is in {service.log}",
                        estimate="days",
                    ),
                )
            )

        def status(expected: int) -> Any:
            def judge(r: httpx.Response) -> tuple[bool, str]:
                return r.status_code == expected, f"HTTP {r.status_code}"

            return judge

        def predicted(r: httpx.Response) -> tuple[bool, str]:
            answer = r.json()
            fields = {"request_id", "prediction", "model_version", "arm", "degraded", "path"}
            missing = fields - set(answer)
            if r.status_code != 200 or missing:
                return False, f"HTTP {r.status_code}, missing {sorted(missing)}: {r.text[:200]}"
            return True, f"path {answer['path']}, {answer['latency_ms']:.1f} ms"

        probe("GET /v2/health/live", lambda: client.get("/v2/health/live"), status(200))
        probe("GET /v2/health/ready", lambda: client.get("/v2/health/ready"), status(200))
        probe("POST /v1/predict", lambda: client.post("/v1/predict", json=body), predicted)
        probe(
            "POST /v1/predict (a list)",
            lambda: client.post("/v1/predict", json=bodies[:3] or [body]),
            lambda r: (
                r.status_code == 200 and len(r.json()) == len(bodies[:3] or [body]),
                f"HTTP {r.status_code}",
            ),
        )
        probe(
            "POST /v1/predict (malformed)",
            lambda: client.post("/v1/predict", json={"entities": 17}),
            lambda r: (
                r.status_code == 422 if first_entity else r.status_code in (200, 422),
                f"HTTP {r.status_code} (a 422 naming the field is expected)",
            ),
        )
        probe(f"GET /v2/models/{name}", lambda: client.get(f"/v2/models/{name}"), status(200))
        if first_entity and isinstance(first_entity[1], str):
            entity, key = first_entity
            infer = {"inputs": [{"name": entity, "shape": [1], "datatype": "BYTES",
                                 "data": [key]}]}  # fmt: skip
            for field, value in (body.get("features") or {}).items():
                kind = "BYTES" if isinstance(value, str) else "FP64"
                infer["inputs"].append(
                    {"name": field, "shape": [1], "datatype": kind, "data": [value]}
                )
            probe(
                f"POST /v2/models/{name}/infer",
                lambda: client.post(f"/v2/models/{name}/infer", json=infer),
                status(200),
            )
        label = project.spec.label.name if project.spec.label else "outcome"
        probe(
            "POST /v1/outcomes",
            lambda: client.post(
                "/v1/outcomes",
                json={"unit": "taxiway-sprint-smoke", "name": label, "value": 0},
            ),
            status(200),
        )
        probe(
            "GET /metrics",
            lambda: client.get("/metrics"),
            lambda r: (
                r.status_code == 200 and "taxiway_request_latency_seconds" in r.text,
                f"HTTP {r.status_code}",
            ),
        )
        probe("GET /openapi.json", lambda: client.get("/openapi.json"), status(200))
    return checks


# ---------------------------------------------------------------------------- load


_UNLOGGED = b"prediction log cannot be written"
"""What the service's 503 says when it refuses to answer unlogged (taxiway.serving.service)."""


@dataclass
class LoadResult:
    """What a bounded load run measured.

    ``client_ms`` holds every answered request as its client timed it (sent to read), and
    ``server_ms`` the service's own ``latency_ms`` of each 200; ``refused_unlogged`` counts
    the 503s the service gave because its prediction log could not be written.
    """

    requests: int
    errors: int
    degraded: int
    duration_s: float
    server_ms: list[float]
    client_ms: list[float]
    statuses: dict[int, int]
    refused_unlogged: int = 0

    @property
    def answered(self) -> int:
        """Requests answered with a prediction (HTTP 200)."""
        return len(self.server_ms)

    def summary(self, budget_ms: float) -> dict[str, Any]:
        """JSON-ready figures: requests, answered, errors, rps, p50/p99 as the clients saw them
        (``client_*``, the gate) and as the service timed itself (``p50_ms``, ``p99_ms``), the
        budget and ``within_budget`` (answered, no error, client p99 within the budget)."""
        client_p99 = _quantile(self.client_ms, 0.99)
        return {
            "requests": self.requests,
            "answered": self.answered,
            "errors": self.errors,
            "degraded": self.degraded,
            "refused_unlogged": self.refused_unlogged,
            "rps": round(self.requests / self.duration_s, 1) if self.duration_s else 0.0,
            "p50_ms": _quantile(self.server_ms, 0.5),
            "p99_ms": _quantile(self.server_ms, 0.99),
            "max_ms": max(self.server_ms, default=0.0),
            "client_p50_ms": _quantile(self.client_ms, 0.5),
            "client_p99_ms": client_p99,
            "client_max_ms": round(max(self.client_ms, default=0.0), 3),
            "budget_ms": budget_ms,
            "latency_gate": "client_p99_ms",
            "within_budget": bool(self.answered) and self.errors == 0 and client_p99 <= budget_ms,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def load_test(
    service: RunningService,
    bodies: list[dict[str, Any]],
    *,
    concurrency: int = 8,
    duration_s: float = 5.0,
    max_requests: int = 20_000,
) -> LoadResult:
    """``concurrency`` keep-alive clients posting ``bodies`` round robin, bounded in time and
    count, on loopback."""
    return asyncio.run(_load(service, bodies or [{}], concurrency, duration_s, max_requests))


async def _load(
    service: RunningService,
    bodies: list[dict[str, Any]],
    concurrency: int,
    duration_s: float,
    max_requests: int,
) -> LoadResult:
    # raw keep-alive HTTP/1.1 on asyncio streams: an HTTP client library spends more CPU per
    # request than the service itself, on the same two cores
    host, port = "127.0.0.1", int(service.url.rsplit(":", 1)[1])
    extra = "".join(f"{k}: {v}\r\n" for k, v in service.headers.items())
    requests = []
    for body in bodies:
        payload = json.dumps(body).encode()
        head = (
            f"POST /v1/predict HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n{extra}\r\n"
        )
        requests.append(head.encode() + payload)
    result = LoadResult(0, 0, 0, 0.0, [], [], {})
    began = time.perf_counter()
    stop = began + duration_s

    async def connection(index: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        i = index
        try:
            while time.perf_counter() < stop and result.requests < max_requests:
                request = requests[i % len(requests)]
                i += concurrency
                sent = time.perf_counter()
                try:
                    writer.write(request)
                    status, body, keep = await _response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    result.requests += 1
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.client_ms.append((time.perf_counter() - sent) * 1000)
                result.requests += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status != 200:
                    result.errors += 1
                    result.refused_unlogged += status == 503 and _UNLOGGED in body
                else:
                    answer = json.loads(body)
                    result.server_ms.append(float(answer["latency_ms"]))
                    result.degraded += bool(answer["degraded"])
                if not keep:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    await asyncio.gather(*(connection(i) for i in range(concurrency)))
    result.duration_s = time.perf_counter() - began
    return result


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: (status, body, whether the connection stays open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append((await reader.readexactly(size + 2))[:-2])
            if size == 0:
                break
        body = b"".join(parts)
    else:
        raise ValueError("a response without a length")
    return status, body, headers.get(b"connection") != b"close"


DRILL_MODES = ("down", "slow")
"""The online-store faults the sprint drills, in order (:data:`taxiway.serving.faults`)."""


def drill(
    project: Project,
    version: int,
    bodies: list[dict[str, Any]],
    *,
    requests: int = 200,
    mode: str = "down",
) -> LoadResult:
    """A fault drill: a second service whose online store is ``mode``, ``requests`` answers."""
    with running_service(project, version, faults=f"online_store={mode}") as service:
        return load_test(service, bodies, concurrency=4, duration_s=30.0, max_requests=requests)
