"""The OpenAPI document: its paths, in order, and the request item drawn from the contract."""

from __future__ import annotations

from taxiway.serving.inputs import FieldRule, InputContract
from taxiway.serving.openapi import openapi_document
from taxiway.serving.openapi_schemas import ANSWER, item_schema


def _contract() -> InputContract:
    return InputContract(
        entities={"customer": ("customer_id",), "pair": ("origin", "dest")},
        fields={"amount": FieldRule(name="amount", kind="numeric")},
    )


def test_the_document_lists_every_endpoint_in_order() -> None:
    document = openapi_document("churn", 3, _contract())
    assert list(document["paths"]) == [
        "/v1/predict",
        "/v1/outcomes",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model_name}",
        "/v2/models/{model_name}/infer",
        "/metrics",
    ]
    assert document["info"]["title"] == "taxiway: churn"
    assert document["info"]["version"] == "3"


def test_predict_takes_the_contracts_item_and_answers_with_the_answer_schema() -> None:
    contract = _contract()
    post = openapi_document("churn", 3, contract)["paths"]["/v1/predict"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][0] == item_schema(contract)
    assert body["oneOf"][0]["properties"]["entities"]["required"] == ["customer", "pair"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"][0] == ANSWER
    assert set(post["responses"]) == {"200", "401", "403", "404", "413", "422", "429"}
