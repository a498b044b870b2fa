"""The JSON schemas the OpenAPI document names: a request item, an answer, an error, a tensor."""

from __future__ import annotations

from typing import Any

from taxiway.serving.inputs import InputContract

__all__ = ["ANSWER", "ERROR", "TENSOR", "item_schema", "json_content", "name_parameter"]

ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "array", "items": {"type": "object"}},
    },
}


def item_schema(contract: InputContract) -> dict[str, Any]:
    """One /v1/predict request item: the contract's entities (keys) and request fields."""
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


ANSWER = {
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

TENSOR = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "data": {"type": "array"},
    },
    "required": ["name", "shape", "datatype", "data"],
}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A request or response body of JSON with this schema."""
    return {"application/json": {"schema": schema}}


def name_parameter() -> dict[str, Any]:
    """The {model_name} path parameter of the Open Inference Protocol."""
    return {"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"}}
