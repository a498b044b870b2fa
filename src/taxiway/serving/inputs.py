"""The input contract of a model version, built from its training data, and request parsing.

A request names the entity of each of the model's views (``{"customer": "100017"}``, or
for a compound key ``{"store_product": {"store_id": 1, "product_id": 7}}``) and sends the
request fields (``{"distance": 1400, "dest": "LAX"}``). Malformed input is a
:class:`RequestError` naming the field (HTTP 422): a value of the wrong JSON type is refused,
never converted (``"dest": 5`` for a text field is a 422, as a string for a number is); a
value outside what training saw (a number beyond the training minimum/maximum, a category
never seen) is accepted and reported in ``out_of_range``.

During a rollout the two arms may need different inputs (a candidate trained with a request
field the control lacks): a request is then validated for the arm that serves it, and what
only the other arm takes is accepted and left out (``ignore``); see
:meth:`taxiway.serving.arms.Arms.parse`.

The contract's *online features* are the model's inputs that come from a feature view (not
request fields): the ones whose lookup status (missing, stale) makes an answer degraded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taxiway.errors import RequestError
from taxiway.features.materialize import encode_key
from taxiway.models.artifact import LoadedModel
from taxiway.spec.models import TaxiwaySpec

__all__ = ["FieldRule", "InputContract", "Parsed", "RequestError"]

_MAX_TEXT = 512
_ITEM_KEYS = frozenset(("entities", "features", "unit", "explain"))


@dataclass(frozen=True)
class FieldRule:
    """What one request field may hold."""

    name: str
    kind: str  # numeric | boolean | timestamp | categorical
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        """Its JSON schema (for the OpenAPI document)."""
        if self.kind == "numeric":
            return {"type": ["number", "null"]}
        if self.kind == "boolean":
            return {"type": ["boolean", "null"]}
        if self.kind == "timestamp":
            return {"type": ["string", "null"], "format": "date-time"}
        return {"type": ["string", "null"], "maxLength": _MAX_TEXT}


@dataclass
class Parsed:
    """One request item, validated: encoded entity keys, request values, flags."""

    keys: dict[str, str]
    values: dict[str, Any]
    unit: str | None
    out_of_range: list[str] = field(default_factory=list)
    arm: str | None = None  # during a rollout: the arm it was validated for, which serves it
    explain: bool = False  # the answer carries each input's contribution (models/explain.py)


@dataclass(frozen=True)
class InputContract:
    """The entities and request fields one model version needs."""

    entities: dict[str, tuple[str, ...]]  # entity -> its key columns
    fields: dict[str, FieldRule]
    online: dict[str, str] = field(default_factory=dict)  # online feature -> its view

    @classmethod
    def build(
        cls, spec: TaxiwaySpec, model: LoadedModel, profile: Mapping[str, Any]
    ) -> InputContract:
        """From the spec's views and the version's encoder and reference profile."""
        inputs = set(model.features)
        entities: dict[str, tuple[str, ...]] = {}
        online: dict[str, str] = {}
        for name, view in spec.features.items():
            used = inputs.intersection(view.output_names(name))
            if used:
                entities[view.entity] = spec.entity_keys(view.entity)
                online.update(dict.fromkeys(used, name))
        kinds = {}
        vocab: dict[str, tuple[str, ...]] = {}
        if model.encoder is not None:
            kinds = dict(zip(model.encoder.features, model.encoder.kinds, strict=True))
            vocab = dict(model.encoder.vocabularies)
        stats = profile.get("features", {}) if isinstance(profile, Mapping) else {}
        rules = {}
        for name in model.card.request_fields:
            if name not in inputs:
                continue
            kind = kinds.get(name, "numeric")
            seen = stats.get(name, {})
            rules[name] = FieldRule(
                name=name,
                kind=kind,
                minimum=seen.get("min"),
                maximum=seen.get("max"),
                allowed=vocab.get(name, ()),
            )
        return cls(entities=entities, fields=rules, online=online)

    def names(self) -> frozenset[str]:
        """The entities and request fields a request may send this version."""
        return frozenset(self.entities) | frozenset(self.fields)

    def parse(self, item: Any, ignore: frozenset[str] = frozenset()) -> Parsed:
        """Validate one request item; raise :class:`RequestError` naming every bad field.

        An entity or request field named in ``ignore`` that this contract does not take (one
        only the other arm of a rollout takes) is accepted and left out, unchecked.

        >>> contract = InputContract(entities={}, fields={"dest": FieldRule("dest", "categorical")})
        >>> contract.parse({"features": {"dest": "LAX", "channel": "app"}},
        ...                ignore=frozenset({"channel"})).values
        {'dest': 'LAX'}
        """
        problems: list[tuple[str, str]] = []
        if not isinstance(item, dict):
            raise RequestError([("body", "expected an object with `entities` (and `features`)")])
        if not item.keys() <= _ITEM_KEYS:  # the set difference only for a bad item
            for key in sorted(set(item) - _ITEM_KEYS):
                problems.append((key, "unknown key; expected entities, features, unit, explain"))
        keys = self._entities(_without(item.get("entities"), ignore), problems)
        values = self._fields(_without(item.get("features"), ignore), problems)
        unit = item.get("unit")
        if unit is not None and not isinstance(unit, str | int):
            problems.append(("unit", "expected a string"))
        explain = item.get("explain", False)
        if not isinstance(explain, bool):
            problems.append(("explain", "expected true or false"))
        if problems:
            raise RequestError(problems)
        out = [
            name for name, value in values.items() if not self._in_range(self.fields[name], value)
        ]
        return Parsed(keys, values, None if unit is None else str(unit), out, explain=explain)

    def _entities(self, given: Any, problems: list[tuple[str, str]]) -> dict[str, str]:
        if not self.entities:
            return {}
        if not isinstance(given, dict):
            names = ", ".join(self.entities)
            problems.append(("entities", f"expected an object with {names}"))
            return {}
        keys: dict[str, str] = {}
        if not given.keys() <= self.entities.keys():
            for name in sorted(set(given) - set(self.entities)):
                problems.append(
                    (f"entities.{name}", f"unknown entity; expected {', '.join(self.entities)}")
                )
        for name, columns in self.entities.items():
            value = given.get(name)
            where = f"entities.{name}"
            if value is None:
                problems.append((where, "required"))
            elif len(columns) == 1 and isinstance(value, str | int) and not isinstance(value, bool):
                text = str(value)
                if not text or len(text) > _MAX_TEXT:
                    problems.append((where, f"expected a key of 1 to {_MAX_TEXT} characters"))
                else:
                    keys[name] = text
            elif len(columns) > 1 and isinstance(value, dict):
                missing = [c for c in columns if value.get(c) is None]
                if missing:
                    problems.append((where, f"missing key column {', '.join(missing)}"))
                else:
                    keys[name] = encode_key(tuple(value[c] for c in columns))
            else:
                shape = (
                    "a string or integer key"
                    if len(columns) == 1
                    else f"an object with {', '.join(columns)}"
                )
                problems.append((where, f"expected {shape}"))
        return keys

    def _fields(self, given: Any, problems: list[tuple[str, str]]) -> dict[str, Any]:
        if given is None:
            given = {}
        if not isinstance(given, dict):
            problems.append(("features", "expected an object of request fields"))
            return {}
        values: dict[str, Any] = {}
        if not given.keys() <= self.fields.keys():
            known = ", ".join(self.fields) or "none: this model takes no request fields"
            for name in sorted(set(given) - set(self.fields)):
                problems.append((f"features.{name}", f"unknown request field; expected {known}"))
        for name, rule in self.fields.items():
            value = given.get(name)
            where = f"features.{name}"
            if value is None:
                values[name] = None
            elif rule.kind == "numeric":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    problems.append((where, "expected a number"))
                elif value != value or value in (float("inf"), float("-inf")):
                    problems.append((where, "expected a finite number"))
                else:
                    values[name] = value
            elif rule.kind == "boolean":
                if not isinstance(value, bool):
                    problems.append((where, "expected true or false"))
                else:
                    values[name] = value
            elif rule.kind == "timestamp":
                try:
                    if not isinstance(value, str):
                        raise ValueError(value)
                    values[name] = datetime.fromisoformat(value)
                except ValueError:
                    problems.append((where, "expected an ISO 8601 date-time"))
            elif not isinstance(value, str):
                problems.append((where, "expected a string"))
            elif len(value) > _MAX_TEXT:
                problems.append((where, f"expected a string of at most {_MAX_TEXT} characters"))
            else:
                values[name] = value
        return values

    @staticmethod
    def _in_range(rule: FieldRule, value: Any) -> bool:
        if value is None:
            return True
        if rule.kind == "numeric":
            low = rule.minimum if rule.minimum is not None else float("-inf")
            high = rule.maximum if rule.maximum is not None else float("inf")
            return bool(low <= value <= high)
        if rule.kind == "categorical" and rule.allowed:
            return value in rule.allowed
        return True


def _without(given: Any, ignore: frozenset[str]) -> Any:
    """``given`` (an object of entities or request fields) without the names in ``ignore``."""
    if not ignore or not isinstance(given, dict) or ignore.isdisjoint(given):
        return given
    return {name: value for name, value in given.items() if name not in ignore}
