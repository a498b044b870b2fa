"""``POST /v1/events/{source}``: push an event of a ``kind: nats`` source over HTTP, for systems
that cannot publish to NATS.

The event (one JSON object) is checked exactly as the stream consumer checks it
(:mod:`taxiway.data.sources.nats_events`) and published to the source's subject with
``Nats-Msg-Id`` = its id, so JetStream drops a repeat inside the stream's duplicate window
and the consumer's journal drops any later one. The id is the source's ``event_id`` field,
else the request's ``Idempotency-Key`` (or ``Nats-Msg-Id``) header.

Answers: 202 ``{"source", "stream", "seq", "duplicate"}`` once JetStream has stored it (a
repeat answers 202 with ``duplicate: true`` and the first copy's sequence); 404 for a source
that is not a nats source; 422 with ``detail: [{loc, msg, fix}]`` for a refused event; 503
with ``retry-after`` when NATS cannot be reached or does not answer in time (never a 500).
Events are not applied here: ``taxiway features stream`` applies them.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from taxiway.data.contracts.loader import load_contract
from taxiway.data.contracts.model import Contract
from taxiway.data.sources.nats_events import check_events
from taxiway.errors import SourceError
from taxiway.spec.models import AggregateView, NatsSource, TaxiwaySpec

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = ["EventPublisher", "events_route"]

logger = logging.getLogger("taxiway.serving")

MAX_EVENT = 1 << 20
PUBLISH_TIMEOUT_S = 2.0
RETRY_AFTER_S = 1.0  # after a failed connect, answer 503 at once for this long
ID_HEADERS = ("idempotency-key", "nats-msg-id")


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


class EventPublisher:
    """Checks pushed events and publishes them to their source's subject (one connection to
    each NATS server, opened at the first event and reopened after a failure)."""

    def __init__(self, spec: TaxiwaySpec) -> None:
        self.sources = {n: s for n, s in spec.sources.items() if isinstance(s, NatsSource)}
        self.required = {
            name: sorted(
                {
                    key
                    for view in spec.features.values()
                    if isinstance(view, AggregateView) and view.source == name
                    for key in spec.entity_keys(view.entity)
                }
            )
            for name in self.sources
        }
        self._contracts: dict[str, Contract | None] = {}
        self._clients: dict[str, Client] = {}
        self._ready: set[str] = set()  # sources whose streams are known to exist
        self._failed_at: dict[str, float] = {}

    def _contract(self, name: str) -> Contract | None:
        if name not in self._contracts:
            path = self.sources[name].contract
            self._contracts[name] = load_contract(path) if path is not None else None
        return self._contracts[name]

    async def handle(self, request: Request) -> Response:
        """The route's answer (the module docstring)."""
        name = request.path_params["source"]
        source = self.sources.get(name)
        if source is None:
            known = ", ".join(sorted(self.sources)) or "none"
            return _json({"error": f"no nats source `{name}` (nats sources: {known})"}, 404)
        body = await request.body()
        if len(body) > MAX_EVENT:
            return _json({"error": f"body over {MAX_EVENT} bytes"}, 413)
        header_id = next((request.headers[h] for h in ID_HEADERS if h in request.headers), None)
        checked = check_events(
            name, source, self._contract(name), [(header_id, body)], required=self.required[name]
        )
        if checked.rejected:
            detail = [_problem(source, reason) for _, reason in checked.rejected]
            return _json({"error": f"event refused by source `{name}`", "detail": detail}, 422)
        try:
            ack = await self._publish(name, source, body, checked.ids[0])
        except SourceError as error:
            return _json(
                {"error": error.message, "fix": error.fix},
                503,
                {"retry-after": str(int(RETRY_AFTER_S))},
            )
        return _json(
            {
                "source": name,
                "stream": ack.stream,
                "seq": ack.seq,
                "duplicate": bool(ack.duplicate),
            },
            202,
        )

    async def _publish(self, name: str, source: NatsSource, body: bytes, event_id: str) -> Any:
        url = source.url.reveal()
        failed = self._failed_at.get(url)
        if failed is not None and time.monotonic() - failed < RETRY_AFTER_S:
            raise SourceError(f"NATS at {source.url} was unreachable under a second ago")
        try:
            # optional extra: nats-py only when events are pushed
            from taxiway.features.stream import connect, ensure_streams
        except ImportError as error:
            if (error.name or "").startswith("taxiway"):
                raise
            raise SourceError(
                "pushing events needs nats-py, which is not installed",
                fix="pip install 'taxiway[stream]'",
            ) from None
        import nats.errors

        try:
            client = self._clients.get(url)
            if client is None or client.is_closed:
                client = self._clients[url] = await connect(source, name=name, reconnect=False)
            js = client.jetstream()
            if name not in self._ready:
                await ensure_streams(js, source)
                self._ready.add(name)
            ack = await js.publish(
                source.subject, body, headers={"Nats-Msg-Id": event_id}, timeout=PUBLISH_TIMEOUT_S
            )
        except SourceError:
            self._failed_at[url] = time.monotonic()
            raise
        except (nats.errors.Error, OSError, TimeoutError) as error:
            self._failed_at[url] = time.monotonic()
            await self._drop(url)
            raise SourceError(
                f"NATS at {source.url} did not store the event: {error or type(error).__name__}",
                fix="check that nats-server runs with JetStream; retry the same event (its id "
                "makes a repeat harmless)",
            ) from None
        self._failed_at.pop(url, None)
        return ack

    async def _drop(self, url: str) -> None:
        client = self._clients.pop(url, None)
        if client is not None and not client.is_closed:
            try:
                await client.close()
            except Exception:  # closing a broken connection: nothing left to save
                logger.debug("closing a failed NATS connection", exc_info=True)

    async def close(self) -> None:
        """Close the NATS connections."""
        for url in list(self._clients):
            await self._drop(url)


def _problem(source: NatsSource, reason: str) -> dict[str, Any]:
    """``{loc, msg, fix}`` of one refusal reason (``field[.rule]: text`` or a sentence)."""
    head, sep, _ = reason.partition(": ")
    field = head.split(".")[0] if sep and " " not in head else None
    if field is None:
        fix = (
            "send one JSON object with an Idempotency-Key header"
            if reason.startswith("no event id")
            else "send one JSON object (the event)"
        )
        return {"loc": ["body"], "msg": reason, "fix": fix}
    fix = (
        f"give `{field}` an ISO 8601 time, e.g. 2026-01-31T12:00:00Z"
        if field == source.timestamp
        else f"send `{field}` as the source's contract declares it"
        if source.contract
        else f"send `{field}`"
    )
    return {"loc": ["body", field], "msg": reason, "fix": fix}


def events_route(publisher: EventPublisher) -> Route:
    """The ``POST /v1/events/{source}`` route of ``publisher``."""
    return Route("/v1/events/{source}", publisher.handle, methods=["POST"])
