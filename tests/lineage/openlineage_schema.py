"""Validate run events against the OpenLineage JSON Schemas vendored in ``openlineage_spec/``.

The event against ``OpenLineage.json#/$defs/RunEvent`` (every facet, taxiway's own included,
against the base facet it must extend), then each standard facet against its own schema,
found by the name in its ``_schemaURL``. A standard facet whose schema is not vendored fails:
add its file from the OpenLineage repository's ``spec/facets/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SPEC = Path(__file__).parent / "openlineage_spec"
STANDARD = "https://openlineage.io/spec/"


@cache
def _registry() -> tuple[Registry, dict[str, str]]:
    registry: Registry = Registry()
    ids: dict[str, str] = {}
    for path in sorted(SPEC.glob("*.json")):
        document = json.loads(path.read_text())
        registry = registry.with_resource(document["$id"], Resource.from_contents(document))
        ids[path.stem] = document["$id"]
    return registry, ids


def _validate(uri: str, instance: Any) -> None:
    registry, _ = _registry()
    Draft202012Validator({"$ref": uri}, registry=registry).validate(instance)


def _facets(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from (event.get("run", {}).get("facets") or {}).items()
    yield from (event.get("job", {}).get("facets") or {}).items()
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        for key in ("facets", "inputFacets", "outputFacets"):
            yield from (dataset.get(key) or {}).items()


def validate_event(event: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``event`` is a valid OpenLineage run event."""
    _, ids = _registry()
    _validate(ids["OpenLineage"] + "#/$defs/RunEvent", event)
    for name, facet in _facets(event):
        url = facet["_schemaURL"]
        if not url.startswith(STANDARD):
            assert name.startswith("taxiway_"), f"custom facet {name} lacks the taxiway_ prefix"
            continue
        document, _, pointer = url.partition("#")
        stem = document.rsplit("/", 1)[-1].removesuffix(".json")
        assert stem in ids, f"vendor {stem}.json from OpenLineage's spec/facets/"
        _validate(ids[stem] + "#" + pointer, facet)
