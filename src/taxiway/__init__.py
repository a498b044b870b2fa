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
    RegistryError,
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
    from taxiway.features.lookup import lookup
    from taxiway.features.materialize import materialize
    from taxiway.features.online import open_online_store
    from taxiway.features.skew import check_skew
    from taxiway.features.training_set import build_training_set
    from taxiway.models.artifact import LoadedModel, load_model
    from taxiway.models.audit import AuditReport, run_audit
    from taxiway.models.registry import ModelVersion, Registry, open_registry
    from taxiway.models.training import TrainResult, train_model
    from taxiway.spec import Project, TaxiwaySpec, load_spec, parse_duration

__all__ = [
    "AuditReport",
    "CheckReport",
    "Contract",
    "ContractViolation",
    "FeatureError",
    "Finding",
    "LoadedModel",
    "ModelError",
    "ModelVersion",
    "Project",
    "Registry",
    "RegistryError",
    "RolloutError",
    "ServingError",
    "Source",
    "SourceError",
    "SpecError",
    "TaxiwayError",
    "TaxiwaySpec",
    "TrainResult",
    "ValidationReport",
    "build_training_set",
    "check_project",
    "check_skew",
    "load_contract",
    "load_model",
    "load_spec",
    "lookup",
    "materialize",
    "open_online_store",
    "open_registry",
    "open_source",
    "parse_duration",
    "run_audit",
    "train_model",
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
    "build_training_set": "taxiway.features.training_set",
    "check_skew": "taxiway.features.skew",
    "lookup": "taxiway.features.lookup",
    "materialize": "taxiway.features.materialize",
    "open_online_store": "taxiway.features.online",
    "LoadedModel": "taxiway.models.artifact",
    "load_model": "taxiway.models.artifact",
    "AuditReport": "taxiway.models.audit",
    "run_audit": "taxiway.models.audit",
    "ModelVersion": "taxiway.models.registry",
    "Registry": "taxiway.models.registry",
    "open_registry": "taxiway.models.registry",
    "TrainResult": "taxiway.models.training",
    "train_model": "taxiway.models.training",
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
