"""The ASGI application: taxiway's /v1 API, the Open Inference Protocol (/v2), /metrics,
/dashboard (and the in-service monitor behind it), and the rollout's verdict for delivery
tools (``GET /v1/rollout/verdict``, ``?strict=true`` answering 503 when it is unhealthy).
With ``rollout.auto: true`` the lifespan also runs the automatic rollout checks
(:mod:`taxiway.serving.rollout_task`: one process across the workers and replicas).

Every request is bounded (in-flight limit → 429 with ``Retry-After``; body size → 413), every
malformed body is a 4xx naming the problem, every error body is JSON (``{"error": ...}``, an
unknown path and a wrong method too), and every answered prediction is in the durable log
before the answer leaves. The served model is swapped without dropping requests when the
registry's production version changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from taxiway.errors import TaxiwayError
from taxiway.serving.arms import verdict_document
from taxiway.serving.dashboard import dashboard_routes, service_data, service_monitor
from taxiway.serving.events import EventPublisher, events_route
from taxiway.serving.inputs import RequestError
from taxiway.serving.metrics import CONTENT_TYPE_LATEST
from taxiway.serving.rollout_task import service_rollout_loop
from taxiway.serving.service import Service

__all__ = [
    "build_app",
    "error_answer",
    "header",
    "http_error",
    "outcome_problems",
    "send_json",
    "server_error",
]

logger = logging.getLogger("taxiway.serving")

MAX_BODY = 1 << 20
MAX_ITEMS = 1000
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ROLES = {
    "/v1/predict": "predict",
    "/v1/outcomes": "outcomes",
}
_INFER_ROUTE = "/v2/models/{name}/infer"
_EVENTS_PREFIX, _EVENTS_ROUTE = "/v1/events/", "/v1/events/{source}"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(status: int, message: str, detail: list[dict[str, Any]] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if detail:
        body["detail"] = detail
    return _json(body, status)


def error_answer(error: TaxiwayError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, body and headers a request gets when ``error`` reaches it: the status is
    the error class's ``http_status`` (the one place the service maps the tree to HTTP), and a
    503 (e.g. the prediction log cannot be written: no unlogged answer) asks to retry.

    >>> from taxiway.errors import ServingError
    >>> error_answer(ServingError("the prediction log cannot be written"))
    (503, {'error': 'the prediction log cannot be written'}, {'retry-after': '1'})
    """
    headers = {"retry-after": "1"} if error.http_status == 503 else {}
    return error.http_status, {"error": error.message}, headers


def build_app(service: Service) -> Starlette:
    """The Starlette app around ``service``."""

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            raise _HttpError(413, f"body over {MAX_BODY} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise _HttpError(413, f"body over {MAX_BODY} bytes")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise _HttpError(400, f"the body is not JSON: {error}") from None

    async def outcomes(request: Request) -> Response:
        payload = await read_json(request)
        problems = outcome_problems(payload)
        if problems:
            return _error(422, "malformed outcome", problems)
        await service.outcome(payload)
        return _json({"recorded": True})

    async def live(_: Request) -> Response:
        return _json({"live": True})

    async def ready(_: Request) -> Response:
        if service.ready:
            return _json({"ready": True, "model_version": service.predictor.version.version})
        return _json({"ready": False, "reason": service.not_ready_reason}, 503)

    async def server_metadata(_: Request) -> Response:
        return _json({"name": "taxiway", "version": service.taxiway_version, "extensions": []})

    async def model_metadata(request: Request) -> Response:
        if request.path_params["model_name"] != service.name:
            return _error(404, f"unknown model; this server serves `{service.name}`")
        return _json(service.oip_metadata())

    async def model_ready(request: Request) -> Response:
        if request.path_params["model_name"] != service.name:
            return _error(404, f"unknown model; this server serves `{service.name}`")
        return _json({"ready": service.ready}, 200 if service.ready else 503)

    async def infer(request: Request) -> Response:
        started = time.perf_counter()
        if request.path_params["model_name"] != service.name:
            return _error(404, f"unknown model; this server serves `{service.name}`")
        payload = await read_json(request)
        try:
            parsed, items, request_id = service.oip_parse(payload)
        except RequestError as error:
            return _error(422, "malformed inference request", error.detail())
        answers = await asyncio.gather(*(service.answer(p, started) for p in parsed))
        await service.record(answers, parsed, items)
        return _json(service.oip_response(answers, request_id))

    async def rollout_verdict(request: Request) -> Response:
        strict = request.query_params.get("strict", "").lower() in ("1", "true", "yes")
        status, body = verdict_document(await service.rollout_now(), strict=strict)
        return _json(body, status)

    async def metrics(_: Request) -> Response:
        service.refresh_gauges()
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(_: Request) -> Response:
        return _json(service.openapi())

    events = EventPublisher(service.project.spec)
    monitor = service_monitor(service)
    rollout_loop = service_rollout_loop(service)  # None unless the spec says rollout.auto

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await service.start()
        monitor.start()
        if rollout_loop is not None:
            rollout_loop.start()
        try:
            yield
        finally:
            if rollout_loop is not None:
                await asyncio.to_thread(rollout_loop.stop)
            await asyncio.to_thread(monitor.stop)
            await events.close()
            await service.stop()

    routes = [
        Route("/v1/outcomes", _guard(outcomes), methods=["POST"]),
        events_route(events),
        # POST too: a Flagger webhook posts its canary's JSON (ignored) and reads the status
        Route("/v1/rollout/verdict", _guard(rollout_verdict), methods=["GET", "POST"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{model_name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{model_name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{model_name}/infer", _guard(infer), methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *dashboard_routes(service_data(service, monitor)),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    return _Limits(app, service)  # type: ignore[return-value]


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own refusals (no such path, wrong method) as JSON, like every other."""
    assert isinstance(error, HTTPException)  # nosec B101
    message = error.detail
    if error.status_code == 404:
        message = f"no such path: {request.url.path} (the API is in /openapi.json)"
    elif error.status_code == 405:
        allowed = (error.headers or {}).get("allow", "")
        message = f"{request.method} is not allowed here; use {allowed or 'another method'}"
    return _json({"error": message}, error.status_code, dict(error.headers or {}))


async def server_error(_: Request, error: Exception) -> Response:
    logger.error("unhandled error answering a request", exc_info=error)
    return _json({"error": "internal error; the service's log has the details"}, 500)


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _guard(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except _HttpError as error:
            return _error(error.status, error.message)
        except TaxiwayError as error:
            status, body, headers = error_answer(error)
            return _json(body, status, headers)

    return guarded


def outcome_problems(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict):
        return [{"loc": ["body"], "msg": "expected an object"}]
    problems = []
    for key in sorted(set(payload) - {"request_id", "unit", "name", "value", "timestamp"}):
        problems.append({"loc": [key], "msg": "unknown key"})
    if payload.get("request_id") is None and payload.get("unit") is None:
        problems.append({"loc": ["request_id"], "msg": "give request_id or unit"})
    for key, limit in (("request_id", 64), ("unit", 512)):
        value = payload.get(key)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit):
            problems.append({"loc": [key], "msg": f"expected a string of 1 to {limit} characters"})
    name = payload.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 128:
        problems.append({"loc": ["name"], "msg": "expected a string of 1 to 128 characters"})
    value = payload.get("value")
    if isinstance(value, bool):
        pass
    elif not isinstance(value, int | float) or value != value or abs(value) == float("inf"):
        problems.append({"loc": ["value"], "msg": "expected a finite number or a boolean"})
    stamp = payload.get("timestamp")
    if stamp is not None:
        try:
            datetime.fromisoformat(str(stamp))
        except ValueError:
            problems.append({"loc": ["timestamp"], "msg": "expected an ISO 8601 date-time"})
    return problems


class _Limits:
    """Pure ASGI: API keys and roles, then the in-flight bound (429), then the app."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        role = _ROLES.get(path) or ("predict" if path.endswith("/infer") else None)
        # a fixed set of route labels: a label per requested model name would let any client
        # grow the metrics without bound
        route = path if path in _ROLES else (_INFER_ROUTE if role else "/v2/models")
        if path.startswith(_EVENTS_PREFIX):  # pushed events are facts, as outcomes are
            role, route = "outcomes", _EVENTS_ROUTE
        service = self.service
        if role is not None and service.keys:
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
                service.metrics.requests_of(route, "401").inc()
                return
            if role not in roles and "admin" not in roles:
                await send_json(send, 403, {"error": f"this key lacks the `{role}` role"})
                service.metrics.requests_of(route, "403").inc()
                return
        if role is not None and self.in_flight >= service.max_in_flight:
            service.metrics.shed.inc()
            service.metrics.requests_of(route, "429").inc()
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
            if path == "/v1/predict":  # the hot path reports its status itself
                try:
                    status[0] = await _predict(service, scope, receive, send)
                except Exception as error:  # no answer was sent: _predict sends last
                    status[0] = 500
                    logger.error("unhandled error answering a prediction", exc_info=error)
                    await send_json(send, 500, {"error": "internal error; see the service's log"})
            else:

                async def tracking(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        status[0] = message["status"]
                    await send(message)

                await self.app(scope, receive, tracking)
        finally:
            self.in_flight -= 1
            if role is not None or path.startswith("/v2/models"):
                service.metrics.requests_of(route, str(status[0])).inc()


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def send_json(
    send: Send, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    payload = orjson.dumps(body)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


async def _predict(service: Service, scope: Scope, receive: Receive, send: Send) -> int:
    """``POST /v1/predict``, the hot path: plain ASGI, no router or middleware stack.

    Returns the status it answered with (499 when the client left before asking).
    """
    started = time.perf_counter()
    if scope["method"] != "POST":
        await send_json(send, 405, {"error": "use POST"}, {"allow": "POST"})
        return 405
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return 499
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            await send_json(send, 413, {"error": f"body over {MAX_BODY} bytes"})
            return 413
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    try:
        payload = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as error:
        await send_json(send, 400, {"error": f"the body is not JSON: {error}"})
        return 400
    single = isinstance(payload, dict)
    items = [payload] if single else payload
    if not isinstance(items, list) or not items:
        await send_json(
            send, 422, {"error": "expected a request object or a non-empty list of them"}
        )
        return 422
    if len(items) > MAX_ITEMS:
        await send_json(send, 413, {"error": f"at most {MAX_ITEMS} items per request"})
        return 413
    try:  # for the arm that answers it, during a rollout (a field only one arm reads)
        parsed = [service.parse(item) for item in items]
    except RequestError as error:
        await send_json(send, 422, {"error": "malformed request", "detail": error.detail()})
        return 422
    if len(parsed) == 1:
        answers = [await service.answer(parsed[0], started)]
    else:
        answers = await asyncio.gather(*(service.answer(p, started) for p in parsed))
    try:
        await service.record(answers, parsed, items)
    except TaxiwayError as error:
        status, body, headers = error_answer(error)
        await send_json(send, status, body, headers)
        return status
    bodies = [a.body() for a in answers]
    await send_json(send, 200, bodies[0] if single else bodies)
    return 200
