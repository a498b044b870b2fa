"""taxiway: take a machine-learning pilot to production, driven by one spec (taxiway.yaml).

Importing taxiway is cheap: the public names below load their modules on first use, so no
engine, driver or web framework is imported until it is needed.

>>> import taxiway
>>> taxiway.parse_duration("90m")
datetime.timedelta(seconds=5400)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from taxiway.errors import (
    ContractViolation,
    FeatureError,
    ModelError,
    RolloutError,
    ServingError,
    SourceError,
    SpecError,
    TaxiwayError,
)

if TYPE_CHECKING:
    from taxiway.data.check import CheckReport, check_project
    from taxiway.data.contracts import (
        Contract,
        ValidationReport,
        load_contract,
        validate,
        validate_frame,
    )
    from taxiway.data.findings import Finding
    from taxiway.data.sources import Source, open_source
    from taxiway.spec import Project, TaxiwaySpec, load_spec, parse_duration

__all__ = [
    "CheckReport",
    "Contract",
    "ContractViolation",
    "FeatureError",
    "Finding",
    "ModelError",
    "Project",
    "RolloutError",
    "ServingError",
    "Source",
    "SourceError",
    "SpecError",
    "TaxiwayError",
    "TaxiwaySpec",
    "ValidationReport",
    "check_project",
    "load_contract",
    "load_spec",
    "open_source",
    "parse_duration",
    "validate",
    "validate_frame",
]

_LAZY = {
    "CheckReport": "taxiway.data.check",
    "check_project": "taxiway.data.check",
    "Contract": "taxiway.data.contracts",
    "ValidationReport": "taxiway.data.contracts",
    "load_contract": "taxiway.data.contracts",
    "validate": "taxiway.data.contracts",
    "validate_frame": "taxiway.data.contracts",
    "Finding": "taxiway.data.findings",
    "Source": "taxiway.data.sources",
    "open_source": "taxiway.data.sources",
    "Project": "taxiway.spec",
    "TaxiwaySpec": "taxiway.spec",
    "load_spec": "taxiway.spec",
    "parse_duration": "taxiway.spec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taxiway' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
