"""The OpenAPI document of the service, built from the model's input contract.

The document is assembled here from its paths (/v1: taxiway's own API, /v2: the Open Inference
Protocol); the schemas they name live in :mod:`taxiway.serving.openapi_schemas`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taxiway.serving.inputs import InputContract
from taxiway.serving.openapi_schemas import (
    ANSWER,
    ERROR,
    EVENT_RECEIPT,
    TENSOR,
    item_schema,
    json_content,
    name_parameter,
)

__all__ = ["openapi_document"]

# The names this module had before the schemas moved out (issue 14).
_ERROR = ERROR
_ANSWER = ANSWER
_item_schema = item_schema
_json = json_content
_name_parameter = name_parameter

_Security = list[dict[str, list[str]]]


def openapi_document(
    name: str,
    version: int,
    contract: InputContract,
    events: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """OpenAPI 3.1 for /v1 (taxiway's own API) and /v2 (the Open Inference Protocol).

    ``events``: each nats source's event schema
    (:func:`~taxiway.serving.openapi_schemas.event_schema`), for ``POST /v1/events/{source}``;
    the path is listed without one too (it answers 404 naming the nats sources).
    """
    errors = _error_responses()
    security: _Security = [{"apiKey": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"taxiway: {name}",
            "version": str(version),
            "description": "Predictions within a latency budget, with fallback and a durable log.",
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
        },
        "paths": {
            **_v1_paths(item_schema(contract), errors, security),
            **_events_path(events or {}, errors, security),
            **_v2_paths(errors, security),
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus metrics"}}}},
        },
    }


def _error_responses() -> dict[str, Any]:
    """The error answers every keyed endpoint may give, each with the error body."""
    return {
        "401": {"description": "No or unknown API key", "content": json_content(ERROR)},
        "403": {"description": "The key lacks the role", "content": json_content(ERROR)},
        "404": {"description": "No such path", "content": json_content(ERROR)},
        "413": {"description": "Body too large", "content": json_content(ERROR)},
        "422": {"description": "Malformed request", "content": json_content(ERROR)},
        "429": {"description": "Too many requests in flight", "content": json_content(ERROR)},
    }


def _v1_paths(item: dict[str, Any], errors: dict[str, Any], security: _Security) -> dict[str, Any]:
    """taxiway's own API: /v1/predict and /v1/outcomes."""
    return {
        "/v1/predict": {
            "post": {
                "summary": "Predict for one request item or a list of them",
                "security": security,
                "requestBody": {
                    "required": True,
                    "content": json_content(
                        {"oneOf": [item, {"type": "array", "items": item, "maxItems": 1000}]}
                    ),
                },
                "responses": {
                    "200": {
                        "description": "The answer(s)",
                        "content": json_content(
                            {"oneOf": [ANSWER, {"type": "array", "items": ANSWER}]}
                        ),
                    },
                    **errors,
                },
            }
        },
        "/v1/outcomes": {
            "post": {
                "summary": "Record an outcome for a prediction or a unit",
                "security": security,
                "requestBody": {
                    "required": True,
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "request_id": {"type": "string", "maxLength": 64},
                                "unit": {"type": "string", "maxLength": 512},
                                "name": {"type": "string", "minLength": 1, "maxLength": 128},
                                "value": {"type": ["number", "boolean"]},
                                "timestamp": {"type": "string", "format": "date-time"},
                            },
                            "required": ["name", "value"],
                            "additionalProperties": False,
                        }
                    ),
                },
                "responses": {"200": {"description": "Recorded"}, **errors},
            }
        },
    }


def _events_path(
    events: Mapping[str, dict[str, Any]], errors: dict[str, Any], security: _Security
) -> dict[str, Any]:
    """``POST /v1/events/{source}``: an event of a nats source, published to its subject."""
    source: dict[str, Any] = {"type": "string", "minLength": 1}
    if events:
        source["enum"] = sorted(events)
    body: dict[str, Any] = (
        {"oneOf": [events[name] for name in sorted(events)]}
        if len(events) > 1
        else next(iter(events.values()), {"type": "object"})
    )
    return {
        "/v1/events/{source}": {
            "post": {
                "summary": "Push one event of a nats source (applied by `taxiway features stream`)",
                "security": security,
                "parameters": [
                    {"name": "source", "in": "path", "required": True, "schema": source},
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "The event's id when the source declares no "
                        "`event_id` field: a repeat is stored once",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 512},
                    },
                ],
                "requestBody": {"required": True, "content": json_content(body)},
                "responses": {
                    "202": {
                        "description": "Stored by JetStream (or a repeat of a stored id)",
                        "content": json_content(EVENT_RECEIPT),
                    },
                    **errors,
                    "503": {
                        "description": "NATS unreachable or slow: retry the same event",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": json_content(ERROR),
                    },
                },
            }
        }
    }


def _v2_paths(errors: dict[str, Any], security: _Security) -> dict[str, Any]:
    """The Open Inference Protocol: health, model metadata, infer."""
    return {
        "/v2/health/live": {"get": {"responses": {"200": {"description": "Alive"}}}},
        "/v2/health/ready": {
            "get": {
                "responses": {
                    "200": {"description": "Model loaded and warmed up"},
                    "503": {"description": "Not ready yet"},
                }
            }
        },
        "/v2/models/{model_name}": {
            "get": {
                "parameters": [name_parameter()],
                "responses": {
                    "200": {"description": "Model metadata"},
                    "404": {"description": "Unknown model"},
                },
            }
        },
        "/v2/models/{model_name}/infer": {
            "post": {
                "security": security,
                "parameters": [name_parameter()],
                "requestBody": {
                    "required": True,
                    "content": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "inputs": {"type": "array", "items": TENSOR},
                            },
                            "required": ["inputs"],
                        }
                    ),
                },
                "responses": {
                    "200": {"description": "Inference response"},
                    "404": {"description": "Unknown model"},
                    **errors,
                },
            }
        },
    }
