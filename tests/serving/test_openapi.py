"""The OpenAPI document: its paths, in order, and the request item drawn from the contract."""

from __future__ import annotations

from taxiway.serving.inputs import FieldRule, InputContract
from taxiway.serving.openapi import openapi_document
from taxiway.serving.openapi_schemas import ANSWER, EVENT_RECEIPT, event_schemas, item_schema
from taxiway.spec import load_spec_text

STREAMED = """
name: pushed
sources:
  clicks: {kind: nats, url: 'nats://127.0.0.1:4222', subject: shop.clicks, stream: CLICKS,
           durable: tw, timestamp: at, event_id: click_id, history: clicks}
  orders: {kind: nats, url: 'nats://127.0.0.1:4222', subject: shop.orders, stream: ORDERS,
           durable: tw, timestamp: ordered_at, history: orders}
entities: {customer: customer_id}
features:
  recent: {source: orders, entity: customer, aggregate: {n: count(*)}, windows: [1d], tiles: 1h}
"""


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
        "/v1/events/{source}",
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


def test_events_take_each_nats_sources_event_and_answer_with_a_receipt() -> None:
    spec = load_spec_text(STREAMED, "taxiway.yaml")
    events = event_schemas(spec)
    post = openapi_document("churn", 3, _contract(), events)["paths"]["/v1/events/{source}"]["post"]
    source = post["parameters"][0]
    assert (source["name"], source["in"], source["schema"]["enum"]) == (
        "source",
        "path",
        ["clicks", "orders"],
    )
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"] == [events["clicks"], events["orders"]]
    # the views' entity keys and the timestamp are required; the event_id field when declared
    assert events["orders"]["required"] == ["customer_id", "ordered_at"]
    assert events["clicks"]["required"] == ["at", "click_id"]
    assert events["orders"]["properties"]["ordered_at"]["format"] == "date-time"
    answers = post["responses"]
    assert answers["202"]["content"]["application/json"]["schema"] == EVENT_RECEIPT
    assert {"404", "413", "422", "503"} <= set(answers)


def test_events_are_listed_without_a_nats_source_as_any_object() -> None:
    post = openapi_document("churn", 3, _contract())["paths"]["/v1/events/{source}"]["post"]
    assert "enum" not in post["parameters"][0]["schema"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"type": "object"}


def test_explain_is_in_the_item_and_an_explained_answer_fits_the_answer_schema() -> None:
    import jsonschema

    from taxiway.models.explain import Explanation
    from taxiway.serving.predictor import Answer

    assert item_schema(_contract())["properties"]["explain"] == {
        "type": "boolean",
        "description": "Return each input's contribution to the raw score under `explanation`.",
    }
    explained = Explanation(-0.9, -0.4, {"a": -0.6, "b": 0.1}, "tree_shap", "log_odds")
    answer = Answer("r1", 0.29, 3, "production", False, "model", 0.4, explanation=explained.body())
    jsonschema.validate(answer.body(), ANSWER)
    unexplained = Answer("r2", 0.5, None, "opt_out", False, "opt_out", 0.3)
    unexplained.unexplained = "the unit opted out: the model did not score it"
    jsonschema.validate(unexplained.body(), {**ANSWER, "required": ["explanation"]})
    assert unexplained.body()["explanation"] is None
