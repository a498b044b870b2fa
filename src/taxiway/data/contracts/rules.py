"""Compile a contract, against the columns a source really has, into executable rules.

Each rule is SQL for the offline engine: a row check (TRUE when a row passes) that can be
counted, sampled and quarantined; a uniqueness check; a row count; or a scalar SQL query.
Schema drift (columns added, removed, retyped versus the contract) is found here too.

One module per family of rules: :mod:`~taxiway.data.contracts.property_rules` (a property's
type, presence, values), :mod:`~taxiway.data.contracts.quality_rules` (``quality:`` entries);
this one adds the table's (schema drift, a composite key, freshness SLAs). The rules are the
types of :mod:`~taxiway.data.contracts.plan`; type families are in
:mod:`~taxiway.data.contracts.families`.

>>> from taxiway.data.contracts.loader import load_contract_text
>>> contract = load_contract_text('''
... apiVersion: v3.1.0
... schema:
...   - name: orders
...     properties:
...       - {name: amount, logicalType: number, logicalTypeOptions: {minimum: 0}}
... ''')
>>> plan = compile_rules(contract, {"amount": "DOUBLE"}, source="orders")
>>> [(r.id, r.policy, r.row_check) for r in plan.rules]
[('amount.minimum', 'quarantine', '"amount" IS NULL OR "amount" >= 0')]
"""

from __future__ import annotations

from typing import Any

from taxiway.data.contracts.families import logical_family
from taxiway.data.contracts.model import Contract, Policy
from taxiway.data.contracts.plan import FreshnessRule, Rule, RulePlan, contract_error
from taxiway.data.contracts.property_rules import property_rules
from taxiway.data.contracts.quality_rules import quality_rule
from taxiway.data.findings import Finding

__all__ = ["FreshnessRule", "Rule", "RulePlan", "compile_rules", "logical_family"]


def compile_rules(contract: Contract, columns: dict[str, str], *, source: str) -> RulePlan:
    """The rules of ``contract`` for a source whose columns (name → engine type) are given."""
    table = contract.table
    drift: list[Finding] = []
    notes: list[Finding] = []
    pii = frozenset(p.name for p in table.properties if p.pii)
    drift += _added_columns(contract, columns, source)
    rules = _table_rules(contract, columns, source, drift, notes)
    freshness = _freshness_rules(contract, columns, source, drift)
    return RulePlan(rules=rules, freshness=freshness, drift=drift, pii=pii, notes=notes)


def _added_columns(contract: Contract, columns: dict[str, str], source: str) -> list[Finding]:
    """Schema drift: a column in the data that the contract does not describe (a warning)."""
    declared = {p.name for p in contract.table.properties}
    drift: list[Finding] = []
    for name in columns:
        if name not in declared:
            drift.append(
                Finding(
                    source,
                    f"schema.added.{name}",
                    "warn",
                    f"column `{name}` ({columns[name]}) is in the data but not in the contract",
                    fix=f"describe `{name}` in the contract, or stop producing it upstream",
                )
            )
    return drift


def _table_rules(
    contract: Contract,
    columns: dict[str, str],
    source: str,
    drift: list[Finding],
    notes: list[Finding],
) -> list[Rule]:
    """Each present property's rules, a composite primary key's, then the `quality:` rules;
    a property missing from the data is schema drift (it blocks)."""
    table = contract.table
    rules: list[Rule] = []
    primary_keys = [p.name for p in table.properties if p.primaryKey]
    for prop in table.properties:
        column = prop.name
        if column not in columns:
            drift.append(
                Finding(
                    source,
                    f"schema.removed.{column}",
                    "block",
                    f"column `{column}` is in the contract but not in the data",
                    fix=f"restore `{column}` upstream, or remove it from the contract and the spec",
                )
            )
            continue
        rules.extend(
            property_rules(prop, columns[column], source, drift, notes, len(primary_keys) == 1)
        )
    if len(primary_keys) > 1 and all(k in columns for k in primary_keys):
        rules.append(
            Rule(
                id="primaryKey.unique",
                column=None,
                policy=_policy_of(table.customProperties) or "quarantine",
                reason=f"duplicate primary key ({', '.join(primary_keys)})",
                unique_over=tuple(primary_keys),
            )
        )
    for index, quality in enumerate(table.quality):
        rule = quality_rule(quality, None, columns, f"{quality.kind}[{index}]", table.name)
        if rule is not None:
            rules.append(rule)
    return rules


def _freshness_rules(
    contract: Contract, columns: dict[str, str], source: str, drift: list[Finding]
) -> list[FreshnessRule]:
    """The latency SLAs as freshness rules; one on a column the data lacks is schema drift."""
    freshness: list[FreshnessRule] = []
    for sla in contract.slaProperties:
        if not sla.is_freshness:
            continue
        element = sla.element or contract.slaDefaultElement
        sla_column = element.split(",")[0].strip().split(".")[-1] if element else None
        if sla_column is None:
            raise contract_error("a latency (freshness) SLA needs `element: table.column`")
        if sla_column not in columns:
            drift.append(
                Finding(
                    source,
                    "sla.freshness",
                    "block",
                    f"the freshness SLA is on `{sla_column}`, which is not in the data",
                    fix="point `element:` at the source's timestamp column",
                )
            )
            continue
        policy = _policy_of(sla.customProperties) or "warn"
        freshness.append(
            FreshnessRule(
                id=f"{sla_column}.freshness",
                column=sla_column,
                max_age=sla.max_age,
                policy=policy,
            )
        )
    return freshness


def _policy_of(custom: list[Any]) -> Policy | None:
    for item in custom:
        if item.property == "taxiway.policy":
            return item.value  # type: ignore[no-any-return]
    return None
