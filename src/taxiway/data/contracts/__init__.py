"""Data contracts in the Open Data Contract Standard (v3) and their validation."""

from taxiway.data.contracts.loader import load_contract, load_contract_text
from taxiway.data.contracts.model import Contract
from taxiway.data.contracts.report import RuleResult, ValidationReport
from taxiway.data.contracts.rules import Rule, RulePlan, compile_rules
from taxiway.data.contracts.validate import new_run_id, validate, validate_frame

__all__ = [
    "Contract",
    "Rule",
    "RulePlan",
    "RuleResult",
    "ValidationReport",
    "compile_rules",
    "load_contract",
    "load_contract_text",
    "new_run_id",
    "validate",
    "validate_frame",
]
