"""The JSON schemas the OpenAPI document names: a request item, an answer, an error, a tensor,
a pushed event and its receipt."""

from __future__ import annotations

from typing import Any

from taxiway.serving.inputs import InputContract
from taxiway.spec.models import AggregateView, NatsSource, TaxiwaySpec

__all__ = [
    "ANSWER",
    "ERROR",
    "EVENT_RECEIPT",
    "TENSOR",
    "event_schema",
    "event_schemas",
    "item_schema",
    "json_content",
    "name_parameter",
]

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
            "explain": {
                "type": "boolean",
                "description": "Return each input's contribution to the raw score "
                "under `explanation`.",
            },
        },
        "required": ["entities"] if contract.entities else [],
        "additionalProperties": False,
    }


ANSWER = {
    "type": "object",
    "properties": {
        "request_id": {"type": "string"},
        "prediction": {"type": "number"},
        "model_version": {
            "type": ["integer", "null"],
            "description": "null when no model scored: a rollout's baseline or constant "
            "control, or an opted-out unit",
        },
        "arm": {
            "type": "string",
            "description": "The served version's stage: production, or candidate (--model)",
        },
        "degraded": {
            "type": "boolean",
            "description": "true when the fallback answered, or online features were missing "
            "or stale",
        },
        "path": {
            "type": "string",
            "description": "model, fallback:<which>, or opt_out (governance.opt_out)",
        },
        "latency_ms": {"type": "number"},
        "reason": {"type": "string", "description": "Why the answer is degraded"},
        "out_of_range": {"type": "array", "items": {"type": "string"}},
        "explanation": {
            "type": ["object", "null"],
            "description": "With `explain: true`: bias + the sum of the contributions is the "
            "raw score (log-odds for a classifier); null when the model did not answer",
            "properties": {
                "method": {"type": "string", "enum": ["tree_shap", "linear"]},
                "scale": {"type": "string", "enum": ["log_odds", "value"]},
                "raw_score": {"type": "number"},
                "bias": {"type": "number"},
                "contributions": {
                    "type": "object",
                    "description": "input -> contribution, the largest |contribution| first",
                    "additionalProperties": {"type": "number"},
                },
            },
            "required": ["method", "scale", "raw_score", "bias", "contributions"],
        },
        "explanation_unavailable": {
            "type": "string",
            "description": "Why an explanation asked for is null",
        },
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


EVENT_RECEIPT = {
    "type": "object",
    "properties": {
        "source": {"type": "string"},
        "stream": {"type": "string", "description": "The JetStream stream that stored it"},
        "seq": {"type": "integer", "description": "Its sequence in the stream"},
        "duplicate": {
            "type": "boolean",
            "description": "true when the id was stored before (the first copy's seq)",
        },
    },
    "required": ["source", "stream", "seq", "duplicate"],
}


def event_schema(spec: TaxiwaySpec, name: str) -> dict[str, Any]:
    r"""One event of nats source ``name``, as ``POST /v1/events/{source}`` takes it: a JSON
    object holding the source's timestamp, the entity keys of the views over it and its
    ``event_id`` field when it declares one; other fields pass to the source's contract.

    >>> from taxiway.spec import load_spec_text
    >>> spec = load_spec_text(
    ...     "name: s\nsources:\n  ev: {kind: nats, url: 'nats://127.0.0.1:4222', subject: a, "
    ...     "stream: A, durable: d, timestamp: ts, history: h}\nentities: {e: k}\nfeatures:\n"
    ...     "  v: {source: ev, entity: e, aggregate: {n: count(*)}, windows: [1d], tiles: 1h}\n",
    ...     "taxiway.yaml")
    >>> event_schema(spec, "ev")["required"]
    ['k', 'ts']
    """
    source = spec.sources[name]
    assert isinstance(source, NatsSource)
    keys = sorted(
        {
            key
            for view in spec.features.values()
            if isinstance(view, AggregateView) and view.source == name
            for key in spec.entity_keys(view.entity)
        }
    )
    properties: dict[str, Any] = {
        key: {"oneOf": [{"type": "integer"}, {"type": "string", "minLength": 1}]} for key in keys
    }
    assert source.timestamp is not None  # a nats source always has one (spec.models)
    properties[source.timestamp] = {"type": "string", "format": "date-time"}
    if source.event_id is not None:
        properties[source.event_id] = {"type": "string", "minLength": 1, "maxLength": 512}
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "description": f"One event of `{name}` ({source.subject}); fields beyond these are "
        "checked against the source's contract",
    }


def event_schemas(spec: TaxiwaySpec) -> dict[str, dict[str, Any]]:
    """:func:`event_schema` of every nats source of ``spec``, by name."""
    return {
        name: event_schema(spec, name)
        for name, source in spec.sources.items()
        if isinstance(source, NatsSource)
    }
