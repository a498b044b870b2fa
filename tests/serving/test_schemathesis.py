"""Schemathesis generates requests from the service's OpenAPI document: none may get a 5xx.

Every operation is fuzzed with both valid and invalid inputs (schemathesis' positive and
negative modes) against a real `taxiway serve` process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import serving


@pytest.fixture(scope="module")
def api_schema(shop: Path) -> Iterator[schemathesis.BaseSchema]:
    with serving(shop) as server:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_no_generated_request_gets_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    strategy = st.one_of(
        api_schema.as_strategy(schemathesis.GenerationMode.POSITIVE),
        api_schema.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )
    seen: list[tuple[str, int]] = []

    @given(case=strategy)
    @settings(
        max_examples=400,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def fuzz(case: schemathesis.Case[schemathesis.APIOperation[Any, Any, Any, Any]]) -> None:
        response = case.call(timeout=10)
        seen.append((case.operation.label, response.status_code))
        assert response.status_code < 500, (
            f"{case.operation.label} → {response.status_code}: {response.text[:300]}"
        )

    fuzz()
    operations = {label for label, _ in seen}
    assert {
        "POST /v1/predict",
        "POST /v1/outcomes",
        "POST /v2/models/{model_name}/infer",
    } <= operations
    assert any(status == 200 for _, status in seen)
    assert any(400 <= status < 500 for _, status in seen)
