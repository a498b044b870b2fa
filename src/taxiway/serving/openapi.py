"""The OpenAPI document of the service, built from the model's input contract."""

from __future__ import annotations

from typing import Any

from taxiway.serving.inputs import InputContract

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "array", "items": {"type": "object"}},
    },
}


def _item_schema(contract: InputContract) -> dict[str, Any]:
    entities: dict[str, Any] = {}
    for name, columns in contract.entities.items():
        if len(columns) == 1:
            entities[name] = {
                "oneOf": [{"type": "string", "minLength": 1, "maxLength": 512}, {"type": "integer"}]
            }
        else:
            entities[name] = {
                "type": "object",
                "properties": {c: {"type": ["string", "integer"]} for c in columns},
                "required": list(columns),
            }
    return {
        "type": "object",
        "properties": {
            "entities": {
                "type": "object",
                "properties": entities,
                "required": list(contract.entities),
                "additionalProperties": False,
            },
            "features": {
                "type": "object",
                "properties": {n: rule.schema() for n, rule in contract.fields.items()},
                "additionalProperties": False,
            },
            "unit": {"type": "string", "description": "A stable id for traffic assignment."},
        },
        "required": ["entities"] if contract.entities else [],
        "additionalProperties": False,
    }


_ANSWER = {
    "type": "object",
    "properties": {
        "request_id": {"type": "string"},
        "prediction": {"type": "number"},
        "model_version": {"type": "integer"},
        "arm": {
            "type": "string",
            "description": "The served version's stage: production, or candidate (--model)",
        },
        "degraded": {
            "type": "boolean",
            "description": "true when the fallback answered, or online features were missing "
            "or stale",
        },
        "path": {"type": "string", "description": "model, or fallback:<which>"},
        "latency_ms": {"type": "number"},
        "reason": {"type": "string", "description": "Why the answer is degraded"},
        "out_of_range": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["request_id", "prediction", "model_version", "arm", "degraded", "path"],
}


def openapi_document(name: str, version: int, contract: InputContract) -> dict[str, Any]:
    """OpenAPI 3.1 for /v1 (taxiway's own API) and /v2 (the Open Inference Protocol)."""
    item = _item_schema(contract)
    errors = {
        "401": {"description": "No or unknown API key", "content": _json(_ERROR)},
        "403": {"description": "The key lacks the role", "content": _json(_ERROR)},
        "404": {"description": "No such path", "content": _json(_ERROR)},
        "413": {"description": "Body too large", "content": _json(_ERROR)},
        "422": {"description": "Malformed request", "content": _json(_ERROR)},
        "429": {"description": "Too many requests in flight", "content": _json(_ERROR)},
    }
    security: list[dict[str, list[str]]] = [{"apiKey": []}]
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": {"type": "array"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
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
            "/v1/predict": {
                "post": {
                    "summary": "Predict for one request item or a list of them",
                    "security": security,
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            {"oneOf": [item, {"type": "array", "items": item, "maxItems": 1000}]}
                        ),
                    },
                    "responses": {
                        "200": {
                            "description": "The answer(s)",
                            "content": _json(
                                {"oneOf": [_ANSWER, {"type": "array", "items": _ANSWER}]}
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
                        "content": _json(
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
                    "parameters": [_name_parameter()],
                    "responses": {
                        "200": {"description": "Model metadata"},
                        "404": {"description": "Unknown model"},
                    },
                }
            },
            "/v2/models/{model_name}/infer": {
                "post": {
                    "security": security,
                    "parameters": [_name_parameter()],
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "string"},
                                    "inputs": {"type": "array", "items": tensor},
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
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus metrics"}}}},
        },
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _name_parameter() -> dict[str, Any]:
    return {"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"}}
