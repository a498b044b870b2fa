"""Contract files: the ODCS subset loads; anything else is refused with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxiway.data.contracts import load_contract, load_contract_text
from taxiway.errors import SpecError

HEADER = "apiVersion: v3.1.0\nkind: DataContract\n"


def refused(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_contract_text(HEADER + text, "orders.yaml")
    return caught.value


def test_descriptive_keys_of_real_contracts_are_accepted() -> None:
    contract = load_contract_text(
        HEADER
        + """
id: 53581432
version: 1.1.0
status: active
domain: seller
description: {purpose: views on seller tables}
team: [{username: daustin, role: owner}]
servers: [{server: pg, type: postgres}]
tags: [finance]
schema:
  - name: tbl
    physicalName: tbl_1
    physicalType: table
    businessName: payments
    properties:
      - name: rcvr_id
        primaryKey: true
        logicalType: string
        physicalType: varchar(18)
        classification: restricted
        examples: ["a"]
        enum: [{value: a, label: A}, {value: b}]
slaProperties:
  - {property: retention, value: 3, unit: y}
  - {property: latency, value: 4, unit: d, element: tbl.txn_ref_dt}
"""
    )
    assert contract.owner == "daustin"
    prop = contract.table.properties[0]
    assert prop.pii
    assert prop.enum == ["a", "b"]


def test_custom_engine_rules_are_refused_not_ignored() -> None:
    error = refused(
        "schema:\n  - name: t\n    quality:\n      - {type: custom, engine: soda, implementation: x}\n"
    )
    assert "custom rules" in str(error)
    assert error.issues[0].line == 6


def test_unknown_metric_unknown_key_and_missing_operator() -> None:
    assert "unknown metric" in str(
        refused(
            "schema:\n  - name: t\n    properties: [{name: a, quality: [{metric: nullValuez, mustBe: 0}]}]\n"
        )
    )
    error = refused("schema:\n  - name: t\n    properties: [{name: a, requird: true}]\n")
    assert error.issues[0].suggestion == "did you mean `required`?"
    assert "operator" in str(refused("schema:\n  - name: t\n    quality: [{metric: rowCount}]\n"))


def test_relationships_nested_types_and_two_tables_are_refused() -> None:
    assert "relationships" in str(
        refused("schema:\n  - name: t\n    properties: [{name: a, relationships: [{to: b.id}]}]\n")
    )
    assert "nested" in str(
        refused("schema:\n  - name: t\n    properties: [{name: a, logicalType: array}]\n")
    )
    assert "exactly one table" in str(refused("schema:\n  - name: a\n  - name: b\n"))
    assert "v3" in str(load_error("apiVersion: v2.2.0\nkind: DataContract\nschema: [{name: a}]\n"))


def test_bad_policy_value_is_refused() -> None:
    error = refused(
        "schema:\n  - name: t\n    properties:\n      - name: a\n"
        "        customProperties: [{property: taxiway.policy, value: ignore}]\n"
    )
    assert "block, quarantine or warn" in str(error)


def load_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_contract_text(text, "c.yaml")
    return caught.value


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="contract file not found"):
        load_contract(tmp_path / "none.yaml")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "schema:\n  - name: t\n    quality:\n      - metric: rowCount\n        mustBe: 1\n"
            "        customProperties: [{property: taxiway.policy, value: quarantine}]\n",
            "no failing rows|has none",
        ),
        (
            "schema:\n  - name: t\n    properties:\n      - name: a\n"
            "        quality: [{metric: invalidValues, mustBe: 0}]\n",
            "validValues",
        ),
        ("schema:\n  - name: t\n    quality: [{metric: nullValues, mustBe: 0}]\n", "one column"),
        (
            "schema: [{name: t}]\nslaProperties: [{property: latency, value: 1, unit: fortnight, element: t.a}]\n",
            "unit",
        ),
        (
            "schema: [{name: t}]\nslaProperties: [{property: latency, value: 1, unit: d}]\n",
            "element",
        ),
    ],
)
def test_contract_mistakes_are_caught_at_load_with_a_line(text: str, needle: str) -> None:
    error = refused(text)
    assert error.issues[0].line is not None
    import re

    assert re.search(needle, str(error))
