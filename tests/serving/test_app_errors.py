"""How errors of the tree reach a client: the status is the class's ``http_status``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from taxiway.errors import (
    ContractViolation,
    FeatureError,
    RequestError,
    ServingError,
    SourceError,
    SpecError,
    TaxiwayError,
)
from taxiway.serving.app import error_answer

from .conftest import serving, variant


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ServingError("log down"), 503),
        (RequestError([("entities.customer", "required")]), 422),
        (SourceError("store down"), 503),
        (SpecError("bad spec"), 400),
        (ContractViolation("blocked"), 422),
        (FeatureError("cannot compute"), 500),
        (TaxiwayError("anything else"), 500),
    ],
)
def test_each_error_answers_with_its_class_status(error: TaxiwayError, status: int) -> None:
    answered, body, headers = error_answer(error)
    assert answered == status == error.http_status
    assert body == {"error": error.message}
    assert headers == ({"retry-after": "1"} if status == 503 else {})


def test_a_log_that_cannot_be_written_is_a_503_to_retry_then_heals(
    shop: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "predictions"
    spec = variant(shop, tmp_path, serving=f"  log:\n    path: {folder}\n")
    body = {"entities": {"customer": "100017"}}
    state = str(shop.parent / ".taxiway")  # the shop's model and store; the log of its own
    with serving(spec, "--state-dir", state) as server, server.client() as client:
        assert client.post("/v1/predict", json=body).status_code == 200
        shutil.rmtree(folder)
        folder.write_text("a file where the log's folder was")
        refused = client.post("/v1/predict", json=body)
        oip = client.post(
            "/v2/models/retail_churn/infer",
            json={
                "inputs": [{"name": "customer", "shape": [1], "datatype": "BYTES", "data": ["17"]}]
            },
        )
        folder.unlink()
        healed = client.post("/v1/predict", json=body)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "cannot be written" in refused.json()["error"]
    assert (oip.status_code, oip.headers.get("retry-after")) == (503, "1"), oip.text
    assert healed.status_code == 200
