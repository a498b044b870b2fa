"""The service's API against a real `taxiway serve` process: answers, 4xx, OIP, log, metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from taxiway.cli import main
from taxiway.serving.log import read_predictions

from .conftest import Server, serving, variant


@pytest.fixture(scope="module")
def server(shop: Path) -> Iterator[Server]:
    with serving(shop) as running:
        yield running


def test_a_prediction_says_what_served_it(server: Server) -> None:
    with server.client() as client:
        answer = client.post("/v1/predict", json={"entities": {"customer": "100017"}}).json()
    assert set(answer) >= {
        "request_id",
        "prediction",
        "model_version",
        "arm",
        "degraded",
        "path",
        "latency_ms",
    }
    assert answer["path"] == "model"
    assert answer["degraded"] is False
    assert answer["model_version"] == 1
    assert 0 < answer["prediction"] < 1


def test_a_list_gets_one_answer_per_item_and_integer_keys_work(server: Server) -> None:
    with server.client() as client:
        answers = client.post(
            "/v1/predict",
            json=[{"entities": {"customer": 100017}}, {"entities": {"customer": "100018"}}],
        ).json()
    assert [a["path"] for a in answers] == ["model", "model"]
    assert answers[0]["request_id"] != answers[1]["request_id"]


def test_the_service_scores_like_the_model_with_the_stored_features(
    shop: Path, server: Server
) -> None:
    from taxiway.features.lookup import lookup
    from taxiway.features.online import open_online_store
    from taxiway.models.artifact import load_model
    from taxiway.models.registry import open_registry
    from taxiway.spec.project import Project

    project = Project.load(shop)
    store = open_online_store(None, state_dir=project.state_dir, namespace=project.spec.name)
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        model = load_model(registry.get("retail_churn", 1).artifact_dir)
        values = lookup(project.spec, store, "customer", ["100042"])[0].values()
    finally:
        store.close()
        registry.close()
    with server.client() as client:
        served = client.post("/v1/predict", json={"entities": {"customer": "100042"}}).json()
    assert served["prediction"] == pytest.approx(model.predict_one(values), abs=1e-9)


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        ({"entities": {}}, 422, "entities.customer"),
        ({"entities": {"customer": None}}, 422, "entities.customer"),
        ({"entities": {"customer": True}}, 422, "entities.customer"),
        ({"entities": {"customer": "1"}, "features": {"x": 1}}, 422, "features.x"),
        ({"entities": {"customer": "1", "shop": "2"}}, 422, "entities.shop"),
        ({"entities": {"customer": "1"}, "colour": 1}, 422, "colour"),
        ([], 422, None),
        ("just text", 422, None),
    ],
)
def test_malformed_requests_get_422_naming_the_field(
    server: Server, body: object, status: int, names: str | None
) -> None:
    with server.client() as client:
        response = client.post("/v1/predict", json=body)
    assert response.status_code == status, response.text
    if names:
        located = [".".join(d["loc"]) for d in response.json()["detail"]]
        assert names in located


def test_not_json_too_big_and_wrong_method(server: Server) -> None:
    with server.client() as client:
        assert client.post("/v1/predict", content=b"{not json").status_code == 400
        huge = b'{"entities": {"customer": "' + b"9" * (2 << 20) + b'"}}'
        assert client.post("/v1/predict", content=huge).status_code == 413
        assert client.get("/v1/predict").status_code == 405
        assert client.get("/nowhere").status_code == 404


def test_the_open_inference_protocol(server: Server) -> None:
    with server.client() as client:
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").json()["ready"] is True
        meta = client.get("/v2/models/retail_churn").json()
        assert meta["name"] == "retail_churn"
        assert {"name": "customer", "datatype": "BYTES", "shape": [-1]} in meta["inputs"]
        answer = client.post(
            "/v2/models/retail_churn/infer",
            json={
                "id": "r1",
                "inputs": [
                    {"name": "customer", "shape": [2], "datatype": "BYTES", "data": ["17", "18"]}
                ],
            },
        ).json()
        assert answer["id"] == "r1"
        prediction = next(o for o in answer["outputs"] if o["name"] == "prediction")
        assert prediction["shape"] == [2]
        assert all(0 < p < 1 for p in prediction["data"])
        assert client.get("/v2/models/other").status_code == 404
        bad = client.post(
            "/v2/models/retail_churn/infer", json={"inputs": [{"name": "nope", "data": [1]}]}
        )
        assert bad.status_code == 422


def test_outcomes_are_recorded_and_checked(server: Server, shop: Path) -> None:
    with server.client() as client:
        ok = client.post(
            "/v1/outcomes",
            json={
                "request_id": "abc",
                "name": "churned",
                "value": True,
                "timestamp": "2026-01-01T00:00:00",
            },
        )
        assert ok.status_code == 200
        assert client.post("/v1/outcomes", json={"name": "churned", "value": 1}).status_code == 422
        assert (
            client.post(
                "/v1/outcomes", json={"unit": "u1", "name": "x", "value": "high"}
            ).status_code
            == 422
        )


def test_every_answer_is_in_the_log_readable_by_duckdb(server: Server, shop: Path) -> None:
    with server.client() as client:
        ids = [
            client.post(
                "/v1/predict", json={"entities": {"customer": str(100000 + i)}, "unit": f"u{i}"}
            ).json()["request_id"]
            for i in range(20)
        ]
    con = duckdb.connect()
    read_predictions(con, shop.parent / ".taxiway" / "predictions")
    logged = {row[0] for row in con.execute("SELECT request_id FROM predictions").fetchall()}
    assert set(ids) <= logged
    row = con.execute(
        "SELECT model_version, path, unit FROM predictions WHERE request_id = ?", [ids[3]]
    ).fetchall()
    assert row == [(1, "model", "u3")]


def test_metrics_expose_latency_fallbacks_and_version(server: Server) -> None:
    with server.client() as client:
        client.post("/v1/predict", json={"entities": {"customer": "100017"}})
        text = client.get("/metrics").text
    assert (
        'taxiway_request_latency_seconds_bucket{arm="production",le="0.005",path="model"}' in text
    )
    assert 'taxiway_model_version{name="retail_churn"} 1.0' in text
    assert "taxiway_shed_requests_total" in text
    assert "taxiway_online_store_latency_seconds_count" in text


def test_request_counts_use_a_fixed_set_of_route_labels(server: Server) -> None:
    """A label per requested model name would let any client grow /metrics without bound."""
    names = [f"made-up-{i}" for i in range(3)]
    with server.client() as client:
        for name in names:
            assert client.post(f"/v2/models/{name}/infer", json={"inputs": []}).status_code == 404
        client.post("/v1/predict", json={"entities": {"customer": "100017"}})
        text = client.get("/metrics").text
    counted = [line for line in text.splitlines() if line.startswith("taxiway_http_requests_total")]
    assert any('route="/v2/models/{name}/infer",status="404"' in line for line in counted)
    assert any('route="/v1/predict",status="200"' in line for line in counted)
    assert not any("made-up" in line for line in counted)


def test_openapi_document_describes_the_inputs(server: Server) -> None:
    with server.client() as client:
        document = client.get("/openapi.json").json()
    body = document["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    item = body["schema"]["oneOf"][0]
    assert item["properties"]["entities"]["required"] == ["customer"]


def test_an_unknown_entity_key_is_answered_by_the_fallback_marked_degraded(
    server: Server,
) -> None:
    # a customer the store has never seen: every feature is missing, so the model would
    # score a row of nulls (issue 13 defect 6; tests/serving/test_honest_answers.py)
    with server.client() as client:
        answer = client.post(
            "/v1/predict", json={"entities": {"customer": "no-such-customer"}}
        ).json()
    assert (answer["path"], answer["degraded"]) == ("fallback:baseline", True)


def test_nothing_in_production_is_refused_with_the_command_to_run(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = variant(shop, tmp_path)  # its own state folder: an empty registry
    assert main(["serve", "-f", str(spec), "--port", "1"]) == 1
    assert "taxiway models promote" in capsys.readouterr().err


def test_a_non_loopback_bind_without_keys_is_refused(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "-f", str(shop), "--host", "0.0.0.0", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0 without API keys" in err


def test_a_taken_port_is_a_message_not_a_crash(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "-f", str(shop), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "--port" in err


@pytest.mark.parametrize("port", ["0", "70000", "-1"])
def test_a_port_out_of_range_is_a_usage_error(
    shop: Path, port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "-f", str(shop), "--port", port]) == 2
    assert "--port" in capsys.readouterr().err


def test_serve_called_from_python_with_a_bad_port_raises_a_serving_error(shop: Path) -> None:
    from taxiway.errors import ServingError
    from taxiway.serving.server import serve
    from taxiway.spec.project import Project

    with pytest.raises(ServingError, match="not a TCP port") as raised:
        serve(Project.load(shop), port=70000)
    assert "1 to 65535" in (raised.value.fix or "")
