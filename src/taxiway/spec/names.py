"""Use-case names as users write them, and the one identifier derived from a name.

A use case's ``name`` is written the way Kubernetes objects and MLflow registered models are
named: ``churn``, ``cdnow-churn``, ``flights.delay``, ``retail_churn_v2``. The rule
(:data:`NAME_RULE`): 1 to 128 characters, each a letter, a digit, ``_``, ``-`` or ``.``;
the first a letter or a digit; the last not ``-`` or ``.``. Case is kept.

Everywhere taxiway uses the name today it is used as it is written, because each of those
places accepts every name the rule allows: the registry's rows and artifact folder
(``<artifacts>/<name>/<version>``), the Redis key prefix (``taxiway:<name>:...``), the
Prometheus label ``taxiway_model_version{name="..."}``, the Open Inference Protocol path
``/v2/models/<name>``, the prediction log's ``model`` field and every report title.

Where a name must become an *identifier* (a SQL table or column, a Prometheus metric name, a
Python or environment-variable name: ``[A-Za-z_][A-Za-z0-9_]*``, at most 63 characters, the
PostgreSQL limit), :func:`identifier` derives it, and nothing else may. (No part of taxiway
needs one yet; this is the rule any part that does must use.)

- a name that already is such an identifier is its own identifier (``retail_churn``);
- otherwise each character other than a letter, digit or ``_`` becomes ``_``, a leading digit
  gets a ``_`` in front, the result is cut to 54 characters, and ``_`` plus the first 8 hex
  digits of the name's SHA-256 is appended (``cdnow-churn`` -> ``cdnow_churn_a3f5...``).

The suffix keeps it collision-aware: ``cdnow-churn``, ``cdnow.churn`` and ``cdnow_churn``
would all read ``cdnow_churn`` without it, and get three different identifiers with it. Two
names can still share one identifier only if two names that both needed rewriting agree in
the first 54 rewritten characters and in 32 bits of SHA-256 (about one chance in four
billion per pair), or if a name is literally another name's derived identifier (such as
``cdnow_churn_a3f5...`` itself). Callers that keep several use cases side by side must
still check the derived identifiers for equality and refuse the second.

>>> check_name("cdnow-churn"), check_name("flights.delay")
('cdnow-churn', 'flights.delay')
>>> identifier("retail_churn")
'retail_churn'
>>> a, b = identifier("cdnow-churn"), identifier("cdnow.churn")
>>> a.startswith("cdnow_churn_"), a != b, len(a)
(True, True, 20)
>>> identifier("2024.flights")[:14]
'_2024_flights_'
>>> check_name("cdnow churn")
Traceback (most recent call last):
  ...
ValueError: 'cdnow churn' is not a use-case name: ...
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["NAME_RULE", "UseCaseName", "check_name", "identifier"]

NAME_RULE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9_])?")
"""What a use-case name may be (see the module docstring)."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_KEEP = 54  # 54 + "_" + 8 hex digits = 63 characters, PostgreSQL's identifier limit


def check_name(value: str) -> str:
    """``value`` if it is a valid use-case name; ``ValueError`` saying the rule if not."""
    if not NAME_RULE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a use-case name: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit and not ending with '-' or '.', at most 128 "
            "characters (e.g. cdnow-churn, flights.delay, retail_churn)"
        )
    return value


UseCaseName = Annotated[str, AfterValidator(check_name)]
"""A ``str`` field holding a use-case name (the spec's ``name``)."""


def identifier(name: str) -> str:
    """The identifier taxiway derives from use-case ``name`` (see the module docstring)."""
    if _IDENTIFIER.fullmatch(name):
        return name
    base = _UNSAFE.sub("_", name)
    if not base or base[0].isdigit():
        base = "_" + base
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{base[:_KEEP]}_{digest}"
