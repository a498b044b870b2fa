"""Run events: valid OpenLineage for each state and every facet taxiway sets, secrets masked."""

from __future__ import annotations

import json
import uuid

import jsonschema
import pytest
from tests.lineage.openlineage_schema import validate_event

from taxiway.lineage.datasets import (
    Assertion,
    ContractRef,
    Dataset,
    SchemaField,
    model_dataset,
    serving_dataset,
)
from taxiway.lineage.events import new_run_id, run_event

SOURCE = Dataset(
    "postgres://db.internal:5432",
    "shop.public.orders",
    (SchemaField("order_id", "bigint", "one per order"), SchemaField("amount")),
    (
        Assertion("not_null", True, column="order_id", severity="block"),
        Assertion("row_count", False, severity="warn", actual="0 failing rows", expected="> 0"),
    ),
    contract=ContractRef("/c/orders.yaml", "retail-orders", "1.2.0", "ab12"),
)
MODEL = model_dataset("taxiway", "churn", 4, ["spend_30d", "n_7d"], stage="candidate")
ROLLOUT = {
    "rollout": 3,
    "control": "v2",
    "candidate": 4,
    "share": 5.0,
    "state": "running",
    "step": 1,
    "transition": "promote",
}


@pytest.mark.parametrize("state", ["START", "COMPLETE", "FAIL"])
def test_every_state_is_a_valid_openlineage_event(state: str) -> None:
    event = run_event(
        state,
        run_id=new_run_id(),
        namespace="taxiway",
        job="churn.train",
        inputs=[SOURCE],
        outputs=[MODEL, serving_dataset("taxiway", "churn", ROLLOUT)],
        error="it broke" if state == "FAIL" else None,
    )
    validate_event(event)
    assert event["eventType"] == state
    assert json.loads(json.dumps(event)) == event


def test_the_facets_say_what_the_datasets_are() -> None:
    event = run_event(
        "COMPLETE",
        run_id=new_run_id(),
        namespace="ns",
        job="churn.check",
        inputs=[SOURCE],
        outputs=[MODEL],
    )
    source, model = event["inputs"][0], event["outputs"][0]
    assert [f["name"] for f in source["facets"]["schema"]["fields"]] == ["order_id", "amount"]
    assert source["facets"]["taxiway_contract"]["version"] == "1.2.0"
    assertions = source["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(a["assertion"], a["success"]) for a in assertions] == [
        ("not_null", True),
        ("row_count", False),
    ]
    assert model["facets"]["version"]["datasetVersion"] == "4"
    assert model["facets"]["taxiway_model"] == {
        "_producer": model["facets"]["taxiway_model"]["_producer"],
        "_schemaURL": model["facets"]["taxiway_model"]["_schemaURL"],
        "name": "churn",
        "version": 4,
        "stage": "candidate",
    }
    assert event["job"] == {
        "namespace": "ns",
        "name": "churn.check",
        "facets": {"jobType": event["job"]["facets"]["jobType"]},
    }


def test_a_fail_event_names_the_error_without_its_secrets() -> None:
    event = run_event(
        "FAIL",
        run_id=new_run_id(),
        namespace="taxiway",
        job="churn.check",
        error="SourceError: cannot reach postgresql://reader:hunter2@db/shop?password=hunter2",
    )
    text = json.dumps(event)
    assert "hunter2" not in text
    assert "postgresql://reader:***@db/shop" in event["run"]["facets"]["errorMessage"]["message"]


def test_run_ids_are_distinct_time_ordered_uuids() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert len(set(ids)) == len(ids)


def test_the_validator_rejects_a_broken_event() -> None:
    # the check that every emitted event is valid can fail
    event = run_event("START", run_id=new_run_id(), namespace="taxiway", job="x.check")
    del event["run"]
    with pytest.raises(jsonschema.ValidationError):
        validate_event(event)
    event = run_event(
        "START", run_id=new_run_id(), namespace="taxiway", job="x.check", inputs=[SOURCE]
    )
    event["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0]["success"] = "yes"
    with pytest.raises(jsonschema.ValidationError):
        validate_event(event)
