"""The smoke test of the served candidate: every endpoint answers as documented (health,
readiness, ``/v1/predict`` one item and a list, the Open Inference Protocol, ``/v1/outcomes``,
``/metrics``, ``/openapi.json``) and a malformed request gets a 422, not a 5xx.

The Open Inference request is built from what the service says it takes
(``GET /v2/models/{name}``): every entity and request field of the served input contract,
several rows. A failed check's evidence holds the service's answer, and its fix replays the
same request, saved to a file.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from taxiway.spec.project import Project
from taxiway.sprint.outcome import Check, blocker
from taxiway.sprint.served import RunningService

__all__ = ["SMOKE_ROWS", "Judge", "Prober", "expect_status", "infer_request", "smoke_test"]

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


Judge = Callable[[httpx.Response], tuple[bool, str]]


def expect_status(expected: int) -> Judge:
    """A judge passing an answer with the ``expected`` HTTP status, and no other."""

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


def _inferred(rows: int, names: list[str]) -> Judge:
    def judge(r: httpx.Response) -> tuple[bool, str]:
        if r.status_code != 200:
            return False, f"HTTP {r.status_code}"
        outputs = {o.get("name"): o for o in r.json().get("outputs", [])}
        data = outputs.get("prediction", {}).get("data")
        if not isinstance(data, list) or len(data) != rows:
            return False, f"HTTP 200 without {rows} predictions"
        return True, f"HTTP 200, {rows} predictions for {rows} rows ({', '.join(names)})"

    return judge


class Prober:
    """Sends one smoke request and judges its answer: a check appended to ``checks``, a failed
    one with a technical blocker whose evidence holds the service's answer (its first 500
    characters) and whose fix replays the request (:func:`_replay`)."""

    def __init__(
        self,
        client: httpx.Client,
        service: RunningService,
        project: Project,
        checks: list[Check],
    ) -> None:
        self.client, self.service, self.project, self.checks = client, service, project, checks

    def __call__(
        self,
        label: str,
        judge: Judge,
        payload: Any = None,
        data: dict[str, Any] | None = None,
    ) -> httpx.Response | None:
        """``label`` is ``METHOD /path`` with an optional `` (note)``; the answer when it
        passed, else None."""
        method, path = label.split(" (")[0].split(" ", 1)
        began = time.perf_counter()
        response = None
        try:
            response = self.client.request(method, path, json=payload)
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
                fix=_replay(self.service, self.project, label, method, path, payload, response),
                kind="code",
            )
        self.checks.append(check)
        return response if good else None


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
        probe = Prober(client, service, project, checks)
        probe("GET /v2/health/live", expect_status(200))
        probe("GET /v2/health/ready", expect_status(200))
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
        metadata = probe(f"GET /v2/models/{name}", expect_status(200))
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
            expect_status(200),
            {"unit": "taxiway-sprint-smoke", "name": outcome, "value": 0},
        )
        probe(
            "GET /metrics",
            lambda r: (
                r.status_code == 200 and "taxiway_request_latency_seconds" in r.text,
                f"HTTP {r.status_code}",
            ),
        )
        probe("GET /openapi.json", expect_status(200))
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
