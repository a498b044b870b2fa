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
    GovernanceError,
    LineageError,
    ModelError,
    MonitoringError,
    RegistryError,
    RequestError,
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
    from taxiway.serving.log import PredictionLog, read_predictions
    from taxiway.serving.server import serve
    from taxiway.serving.service import Service
    from taxiway.spec import Project, TaxiwaySpec, load_spec, parse_duration
    from taxiway.sprint.approvals import record_approval, sign_offs
    from taxiway.sprint.assess import Assessment, assess, observe
    from taxiway.sprint.debrief import Debrief
    from taxiway.sprint.outcome import Blocker, Check, Phase
    from taxiway.sprint.report import write_report
    from taxiway.sprint.runbooks import write_runbooks
    from taxiway.sprint.runner import SprintOptions, SprintResult, run_sprint

__all__ = [
    "Assessment",
    "AuditReport",
    "Blocker",
    "Check",
    "CheckReport",
    "Contract",
    "ContractViolation",
    "Debrief",
    "FeatureError",
    "Finding",
    "GovernanceError",
    "LineageError",
    "LoadedModel",
    "ModelError",
    "ModelVersion",
    "MonitoringError",
    "Phase",
    "PredictionLog",
    "Project",
    "Registry",
    "RegistryError",
    "RequestError",
    "RolloutError",
    "Service",
    "ServingError",
    "Source",
    "SourceError",
    "SpecError",
    "SprintOptions",
    "SprintResult",
    "TaxiwayError",
    "TaxiwaySpec",
    "TrainResult",
    "ValidationReport",
    "assess",
    "build_training_set",
    "check_project",
    "check_skew",
    "load_contract",
    "load_model",
    "load_spec",
    "lookup",
    "materialize",
    "observe",
    "open_online_store",
    "open_registry",
    "open_source",
    "parse_duration",
    "read_predictions",
    "record_approval",
    "run_audit",
    "run_sprint",
    "serve",
    "sign_offs",
    "train_model",
    "validate",
    "validate_frame",
    "write_report",
    "write_runbooks",
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
    "PredictionLog": "taxiway.serving.log",
    "read_predictions": "taxiway.serving.log",
    "Service": "taxiway.serving.service",
    "serve": "taxiway.serving.server",
    "Blocker": "taxiway.sprint.outcome",
    "Check": "taxiway.sprint.outcome",
    "Phase": "taxiway.sprint.outcome",
    "Debrief": "taxiway.sprint.debrief",
    "write_report": "taxiway.sprint.report",
    "Assessment": "taxiway.sprint.assess",
    "assess": "taxiway.sprint.assess",
    "observe": "taxiway.sprint.assess",
    "record_approval": "taxiway.sprint.approvals",
    "sign_offs": "taxiway.sprint.approvals",
    "write_runbooks": "taxiway.sprint.runbooks",
    "SprintOptions": "taxiway.sprint.runner",
    "SprintResult": "taxiway.sprint.runner",
    "run_sprint": "taxiway.sprint.runner",
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
