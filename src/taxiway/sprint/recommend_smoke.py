"""The smoke test of a served recommender: every route answers as documented
(docs/recommend.md), judged on what came back.

- health and readiness (the readiness names the version served: it must be the candidate);
- ``POST /v1/recommend`` for a **known user** (one with a history in the data): ``k`` items,
  each with ``item``, ``score``, ``stage`` and ``position``, by the model's path, not degraded;
- for an **unknown user**: still an answer, ``degraded``, by the popularity fallback (there is
  nothing to personalise from);
- a **bad request** (``k`` not a number, an unknown field): a 4xx naming the fields, never a
  5xx or an answer;
- ``POST /v1/outcomes`` for one item shown (its ``request_id``, ``unit`` and ``item``);
- ``/metrics`` and ``/openapi.json`` (which must document ``/v1/recommend``).

A failed check carries the blocker :class:`~taxiway.sprint.smoke.Prober` builds: the
service's answer as evidence, and a fix that replays the same request.
"""

from __future__ import annotations

from typing import Any

import httpx

from taxiway.spec.project import Project
from taxiway.sprint.outcome import Check
from taxiway.sprint.served import RunningService
from taxiway.sprint.smoke import Judge, Prober, expect_status

__all__ = ["UNKNOWN_USER", "recommend_smoke_test"]

UNKNOWN_USER = "taxiway-sprint-unknown-user"
"""The user id the smoke test asks for as a stranger (no history in any data)."""

_FIELDS = {"items", "request_id", "model_version", "arm", "degraded", "path"}
_ITEM_FIELDS = {"item", "score", "stage", "position"}


def _answer_problems(answer: Any, k: int) -> str | None:
    """What is wrong with a ``/v1/recommend`` answer's shape, or None."""
    if not isinstance(answer, dict):
        return "the answer is not a JSON object"
    missing = _FIELDS - set(answer)
    if missing:
        return f"the answer has no {', '.join(sorted(missing))}"
    items = answer["items"]
    if not isinstance(items, list) or not items or len(items) > k:
        return f"expected 1 to {k} items, got {len(items) if isinstance(items, list) else items!r}"
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict) or _ITEM_FIELDS - set(item):
            return f"item {n} lacks {', '.join(sorted(_ITEM_FIELDS - set(item or {})))}"
        if item["position"] != n:
            return f"item {n} has position {item['position']}"
    if len({i["item"] for i in items}) != len(items):
        return "an item is listed twice"
    return None


def _recommended(k: int, *, degraded: bool, path: str | None, seen: dict[str, Any]) -> Judge:
    """A judge of one ``/v1/recommend`` answer: its shape, then ``degraded`` and the
    ``path`` expected (``None``: any fallback path); the answer is kept in ``seen``."""

    def judge(r: httpx.Response) -> tuple[bool, str]:
        if r.status_code != 200:
            return False, f"HTTP {r.status_code}"
        answer = r.json()
        problem = _answer_problems(answer, k)
        if problem is not None:
            return False, f"HTTP 200, but {problem}"
        seen.update(answer)
        items = answer["items"]
        stages = sorted({str(i["stage"]) for i in items})
        detail = (
            f"{len(items)} items by path {answer['path']} (stages {', '.join(stages)}), "
            f"degraded {str(answer['degraded']).lower()}, v{answer['model_version']}, "
            f"{float(answer.get('latency_ms') or 0.0):.1f} ms"
            + (f"; reason: {answer['reason']}" if answer.get("reason") else "")
        )
        if bool(answer["degraded"]) != degraded:
            expected = "degraded" if degraded else "not degraded"
            return False, f"{detail}: expected {expected}"
        if path is not None and answer["path"] != path:
            return False, f"{detail}: expected path {path}"
        if path is None and answer["path"] == "model":
            return False, f"{detail}: expected a fallback path"
        return True, detail

    return judge


def _refused(r: httpx.Response) -> tuple[bool, str]:
    """A bad request must get a 4xx naming what is wrong."""
    good = 400 <= r.status_code < 500
    return good, f"HTTP {r.status_code} (a 4xx naming the fields is expected)" + (
        f": {r.text[:160]}" if good else ""
    )


def recommend_smoke_test(
    service: RunningService, project: Project, users: list[str], k: int, version: int
) -> tuple[list[Check], dict[str, Any]]:
    """The checks (see the module docstring), and what the two answers were:
    ``{"known": {...}, "unknown": {...}}`` (their bodies, as served)."""
    checks: list[Check] = []
    known: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    user = users[0] if users else UNKNOWN_USER
    with httpx.Client(base_url=service.url, timeout=10.0, headers=service.headers) as client:
        probe = Prober(client, service, project, checks)
        probe("GET /v2/health/live", expect_status(200))

        def ready(r: httpx.Response) -> tuple[bool, str]:
            if r.status_code != 200:
                return False, f"HTTP {r.status_code}"
            body = r.json()
            served = body.get("model_version")
            return served == version, f"v{served} ready: {body.get('detail')}"

        probe("GET /v2/health/ready", ready)
        probe(
            "POST /v1/recommend (a known user)",
            _recommended(k, degraded=False, path="model", seen=known),
            {"user": user, "k": k},
        )
        probe(
            "POST /v1/recommend (an unknown user)",
            _recommended(k, degraded=True, path=None, seen=unknown),
            {"user": UNKNOWN_USER, "k": k},
        )
        probe(
            "POST /v1/recommend (a bad request)",
            _refused,
            {"user": user, "k": "ten", "colour": "blue"},
        )
        shown = (known.get("items") or [{}])[0].get("item")
        rollout = project.spec.rollout
        metric = rollout.metric.name if rollout and rollout.metric else "clicked"
        probe(
            "POST /v1/outcomes (one item shown)",
            expect_status(200),
            {"request_id": known.get("request_id") or "taxiway-sprint-smoke", "unit": user,
             "item": shown or "taxiway-sprint-smoke", "name": metric, "value": 1},
        )  # fmt: skip
        probe(
            "GET /metrics",
            lambda r: (
                r.status_code == 200 and "taxiway_request_latency_seconds" in r.text,
                f"HTTP {r.status_code}",
            ),
        )
        probe(
            "GET /openapi.json",
            lambda r: (
                r.status_code == 200 and "/v1/recommend" in (r.json().get("paths") or {}),
                f"HTTP {r.status_code}"
                + ("" if r.status_code != 200 else ", documents /v1/recommend"),
            ),
        )
    return checks, {"known": known, "unknown": unknown, "user": user}
