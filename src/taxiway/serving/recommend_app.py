"""The ASGI application of a recommendation service: ``POST /v1/recommend``, outcomes, health,
``/metrics``, ``/openapi.json`` and the rollout's verdict.

Bounded like the prediction service (:mod:`taxiway.serving.app`): API keys and roles
(``predict`` for recommendations, ``outcomes`` for outcomes), an in-flight limit answered
with 429 and ``Retry-After``, a body limit (413), every malformed body a 4xx naming the field
and the fix (an unknown user is not one: popularity answers it, ``degraded``), every error body
JSON, and every answered list in the durable log before the answer leaves.

``POST /v1/outcomes`` takes the prediction service's outcome (``request_id`` or ``unit``,
``name``, ``value``, ``timestamp``) plus an optional ``item``, so a click or a purchase joins
the impression it follows by (request, item):
:func:`taxiway.serving.recommend_log.join_impressions`.

``GET /v1/rollout/verdict`` (``POST`` too, for a Flagger webhook) answers as the prediction
service's does (:func:`taxiway.serving.arms.verdict_document`: ``?strict=true`` answers 503
when the rollout is unhealthy). With ``rollout.auto: true`` the lifespan also runs the
automatic rollout checks (:func:`taxiway.serving.rollout_task.service_rollout_loop`: one
process across the workers and replicas checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from taxiway.errors import RequestError, TaxiwayError
from taxiway.serving.app import (
    MAX_BODY,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    error_answer,
    header,
    http_error,
    outcome_problems,
    send_json,
    server_error,
)
from taxiway.serving.arms import verdict_document
from taxiway.serving.metrics import CONTENT_TYPE_LATEST
from taxiway.serving.recommend_service import MAX_ID_LENGTH, RecommendService
from taxiway.serving.rollout_task import service_rollout_loop

__all__ = ["build_recommend_app", "recommend_openapi"]

_ROLES = {"/v1/recommend": "predict", "/v1/outcomes": "outcomes"}
_ALLOW_POST = {"allow": "POST"}
logger = logging.getLogger("taxiway.serving")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class _BadBody(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _read_json(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise _BadBody(413, f"body over {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise _BadBody(413, f"body over {MAX_BODY} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise _BadBody(400, f"the body is not JSON: {error}") from None


def build_recommend_app(service: RecommendService) -> ASGIApp:
    """The ASGI app around ``service``."""

    async def outcomes(request: Request) -> Response:
        payload = await _read_json(request)
        problems = _item_outcome_problems(payload)
        if problems:
            return _json({"error": "malformed outcome", "detail": problems}, 422)
        await service.outcome(payload)
        return _json({"recorded": True})

    async def live(_: Request) -> Response:
        return _json({"live": True})

    async def ready(_: Request) -> Response:
        if service.ready:
            return _json(service.readiness())
        return _json({"ready": False, "reason": service.not_ready_reason}, 503)

    async def metrics(_: Request) -> Response:
        service.refresh_gauges()
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(_: Request) -> Response:
        return _json(recommend_openapi(service))

    async def rollout_verdict(request: Request) -> Response:
        strict = request.query_params.get("strict", "").lower() in ("1", "true", "yes")
        status, body = verdict_document(await service.rollout_now(), strict=strict)
        return _json(body, status)

    rollout_loop = service_rollout_loop(service)  # None unless the spec says rollout.auto

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await service.start()
        if rollout_loop is not None:
            rollout_loop.start()
        try:
            yield
        finally:
            if rollout_loop is not None:
                await asyncio.to_thread(rollout_loop.stop)
            await service.stop()

    routes = [
        Route("/v1/outcomes", _guard(outcomes), methods=["POST"]),
        # POST too: a Flagger webhook posts its canary's JSON (ignored) and reads the status
        Route("/v1/rollout/verdict", _guard(rollout_verdict), methods=["GET", "POST"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    return _Limits(app, service)


def _guard(handler: Any) -> Any:
    async def guarded(request: Request) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except _BadBody as error:
            return _json({"error": error.message}, error.status)
        except TaxiwayError as error:
            status, body, headers = error_answer(error)
            return _json(body, status, headers)

    return guarded


def _item_outcome_problems(payload: Any) -> list[dict[str, Any]]:
    """The prediction service's outcome checks, plus the optional ``item``."""
    if not isinstance(payload, dict):
        return outcome_problems(payload)
    problems = outcome_problems({k: v for k, v in payload.items() if k != "item"})
    for problem in problems:
        if problem["loc"] == ["request_id"] and problem["msg"] == "give request_id or unit":
            problem["msg"] = "give request_id (with item: the impression) or unit"
    item = payload.get("item")
    if item is not None and (
        isinstance(item, bool)
        or not (isinstance(item, int) or (isinstance(item, str) and 0 < len(item) <= MAX_ID_LENGTH))
    ):
        problems.append(
            {
                "loc": ["item"],
                "msg": f"expected the id of an item shown (a string of 1 to {MAX_ID_LENGTH} "
                "characters, or an integer)",
            }
        )
    return problems


class _Limits:
    """Pure ASGI: API keys and roles, then the in-flight bound (429), then the app."""

    def __init__(self, app: ASGIApp, service: RecommendService) -> None:
        self.app = app
        self.service = service
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        role = _ROLES.get(path)
        service = self.service
        if role is None:
            await self.app(scope, receive, send)
            return
        if service.keys:
            presented = header(scope, b"x-api-key")
            if presented is None:
                auth = header(scope, b"authorization")
                if auth and auth.lower().startswith("bearer "):
                    presented = auth[7:].strip()
            roles = service.keys.roles_of(presented)
            if not roles:
                await send_json(
                    send, 401, {"error": "a valid API key is required (X-API-Key header)"}
                )
                service.metrics.requests_of(path, "401").inc()
                return
            if role not in roles and "admin" not in roles:
                await send_json(send, 403, {"error": f"this key lacks the `{role}` role"})
                service.metrics.requests_of(path, "403").inc()
                return
        if self.in_flight >= service.max_in_flight:
            service.metrics.shed.inc()
            service.metrics.requests_of(path, "429").inc()
            await send_json(
                send,
                429,
                {"error": f"over {service.max_in_flight} requests in flight; retry shortly"},
                {"retry-after": "1"},
            )
            return
        self.in_flight += 1
        status = [500]
        try:
            if path == "/v1/recommend":  # the hot path reports its status itself
                try:
                    status[0] = await _recommend(service, scope, receive, send)
                except Exception as error:  # no answer was sent: _recommend sends last
                    status[0] = 500
                    logger.error("unhandled error answering a recommendation", exc_info=error)
                    await send_json(send, 500, {"error": "internal error; see the service's log"})
            else:

                async def tracking(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        status[0] = message["status"]
                    await send(message)

                await self.app(scope, receive, tracking)
        finally:
            self.in_flight -= 1
            service.metrics.requests_of(path, str(status[0])).inc()


async def _recommend(service: RecommendService, scope: Scope, receive: Receive, send: Send) -> int:
    """``POST /v1/recommend``, the hot path: plain ASGI, no router, request or response
    objects (the prediction service's ``/v1/predict`` does the same). The same answers and
    refusals as the routed endpoints: 405, 413, 400 (not JSON), 422 naming each field, 503
    when the log cannot be written.

    Returns the status it answered with (499 when the client left before asking).
    """
    started = time.perf_counter()
    if scope["method"] != "POST":
        await send_json(
            send, 405, {"error": f"{scope['method']} is not allowed here; use POST"}, _ALLOW_POST
        )
        return 405
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        await send_json(send, 413, {"error": f"body over {MAX_BODY} bytes"})
        return 413
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return 499
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            await send_json(send, 413, {"error": f"body over {MAX_BODY} bytes"})
            return 413
        if not message.get("more_body"):
            break
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        await send_json(send, 400, {"error": f"the body is not JSON: {error}"})
        return 400
    try:
        parsed = service.parse(payload)
    except RequestError as error:
        await send_json(send, 422, {"error": "malformed request", "detail": error.detail()})
        return 422
    try:
        answer = await service.answer(parsed, started)
        await service.record(answer)
    except TaxiwayError as error:
        status, error_body, headers = error_answer(error)
        await send_json(send, status, error_body, headers)
        return status
    payload = orjson.dumps(answer.body(), option=orjson.OPT_SERIALIZE_NUMPY)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
    return 200


# ---------------------------------------------------------------------- OpenAPI

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "array"}},
    "required": ["error"],
}
_ID = {
    "oneOf": [{"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}, {"type": "integer"}]
}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def recommend_openapi(service: RecommendService) -> dict[str, Any]:
    """OpenAPI 3.1 for the recommendation service's paths."""
    served = service.served
    errors = {
        str(code): {"description": what, "content": _content(_ERROR)}
        for code, what in (
            (401, "No or unknown API key"),
            (403, "The key lacks the role"),
            (413, "Body too large"),
            (422, "Malformed request: `detail` names each field and the fix"),
            (429, "Too many requests in flight"),
            (503, "The log cannot be written: retry"),
        )
    }
    security: list[dict[str, list[str]]] = [{"apiKey": []}]
    request = {
        "type": "object",
        "properties": {
            "user": {**_ID, "description": "The user; an unknown one gets popularity, degraded"},
            "k": {
                "type": "integer",
                "minimum": 1,
                "maximum": served.max_k,
                "default": served.recommender.k,
            },
            "context": {
                "type": "object",
                "properties": {
                    "recent_items": {
                        "type": "array",
                        "items": _ID,
                        "maxItems": 1000,
                        "description": "Items the user interacted with just now (joined to "
                        "their history; filtered like it)",
                    }
                },
                "additionalProperties": False,
            },
        },
        "required": ["user"],
        "additionalProperties": False,
    }
    item = {
        "type": "object",
        "properties": {
            "item": {"type": "string"},
            "score": {"type": "number"},
            "stage": {"type": "string", "description": "The generator that produced it"},
            "position": {"type": "integer", "minimum": 1},
            "team": {
                "type": "string",
                "enum": ["control", "candidate"],
                "description": "In an interleaved answer (arm `interleaved`): the arm whose "
                "list this item was drafted from",
            },
        },
        "required": ["item", "score", "stage", "position"],
    }
    answer = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": item},
            "request_id": {"type": "string"},
            "model_version": {
                "type": ["integer", "null"],
                "description": "The version that chose the list; null for a rollout's baseline "
                "control (the popularity stage)",
            },
            "arm": {"type": "string"},
            "degraded": {"type": "boolean"},
            "path": {
                "type": "string",
                "enum": ["model", *(path for path, _ in served.fallbacks)],
            },
            "reason": {"type": "string"},
            "latency_ms": {"type": "number"},
        },
        "required": ["items", "request_id", "model_version", "arm", "degraded", "path"],
    }
    outcome = {
        "type": "object",
        "properties": {
            "request_id": {"type": "string", "maxLength": 64},
            "item": _ID,
            "unit": {"type": "string", "maxLength": 512},
            "name": {"type": "string", "minLength": 1, "maxLength": 128},
            "value": {"type": ["number", "boolean"]},
            "timestamp": {"type": "string", "format": "date-time"},
        },
        "required": ["name", "value"],
        "additionalProperties": False,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"taxiway: {service.name} (recommendations)",
            "version": str(served.version.version),
            "description": "The top k items for a user within a latency budget, with fallbacks, "
            "filters always applied, and the full list shown in a durable log.",
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
        },
        "paths": {
            "/v1/recommend": {
                "post": {
                    "summary": "The top k items for a user now",
                    "security": security,
                    "requestBody": {"required": True, "content": _content(request)},
                    "responses": {
                        "200": {"description": "The list", "content": _content(answer)},
                        **errors,
                    },
                }
            },
            "/v1/outcomes": {
                "post": {
                    "summary": "Record an outcome of a request's item (a click, a purchase)",
                    "security": security,
                    "requestBody": {"required": True, "content": _content(outcome)},
                    "responses": {"200": {"description": "Recorded"}, **errors},
                }
            },
            "/v2/health/live": {"get": {"responses": {"200": {"description": "Alive"}}}},
            "/v2/health/ready": {
                "get": {
                    "responses": {
                        "200": {"description": "Loaded and warmed up; which version and why"},
                        "503": {"description": "Not ready yet"},
                    }
                }
            },
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus metrics"}}}},
            "/v1/rollout/verdict": {
                op: {
                    "summary": "The rollout's verdict for delivery tools (?strict=true: 503 "
                    "when unhealthy)",
                    "responses": {
                        "200": {"description": "The active (else newest) rollout's verdict"},
                        "404": {"description": "This model has had no rollout"},
                        "503": {"description": "With ?strict=true: the rollout is unhealthy"},
                    },
                }
                for op in ("get", "post")
            },
        },
    }
