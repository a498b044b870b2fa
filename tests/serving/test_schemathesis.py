"""Schemathesis generates requests from the service's OpenAPI document: none may get a 5xx.

Every operation is fuzzed with both valid and invalid inputs (schemathesis' positive and
negative modes) against a real `taxiway serve` process; ``POST /v1/events/{source}`` again on
a shop with a nats source, publishing to a real NATS JetStream.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import require, require_service

from .conftest import serving

NATS = "nats://127.0.0.1:4222"


@pytest.fixture(scope="module")
def api_schema(shop: Path) -> Iterator[schemathesis.BaseSchema]:
    with serving(shop) as server:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def fuzz_statuses(api_schema: schemathesis.BaseSchema, examples: int) -> list[tuple[str, int]]:
    """(operation, status) of ``examples`` generated requests, positive and negative; fails at
    the first 5xx."""
    strategy = st.one_of(
        api_schema.as_strategy(schemathesis.GenerationMode.POSITIVE),
        api_schema.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )
    seen: list[tuple[str, int]] = []

    @given(case=strategy)
    @settings(
        max_examples=examples,
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
        if case.operation.label == "POST /v1/predict" and response.status_code == 200:
            # every generated `explain: true` answered has an explanation (or null), adding up
            for explanation in _explanations_asked(case.body, response.json()):
                if explanation is not None:
                    total = explanation["bias"] + sum(explanation["contributions"].values())
                    assert abs(total - explanation["raw_score"]) < 1e-6

    fuzz()
    return seen


def test_no_generated_request_gets_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    seen = fuzz_statuses(api_schema, 400)
    operations = {label for label, _ in seen}
    assert {
        "POST /v1/predict",
        "POST /v1/outcomes",
        "POST /v1/events/{source}",
        "POST /v2/models/{model_name}/infer",
    } <= operations
    assert any(status == 200 for _, status in seen)
    assert any(400 <= status < 500 for _, status in seen)


@pytest.fixture(scope="module")
def pushed_schema(
    shop: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    """The shop with a nats source (its own stream on the real NATS), served."""
    nats = require("nats", reason="nats-py is the stream extra")
    require_service("NATS", "127.0.0.1", 4222)
    tag = uuid.uuid4().hex[:10]
    target = tmp_path_factory.mktemp("fuzz-events") / "shop"
    shutil.copytree(shop.parent, target, ignore=shutil.ignore_patterns("serve-*.log", "tmp"))
    spec = target / "taxiway.yaml"
    source = (
        f"  pushed: {{kind: nats, url: '{NATS}', subject: tw.fuzz.{tag}, stream: TW_FUZZ_{tag}, "
        "durable: tw, timestamp: ts, history: pushed}\n"
    )
    text = spec.read_text()
    assert "\nsources:\n" in text
    spec.write_text(text.replace("\nsources:\n", "\nsources:\n" + source, 1))
    try:
        with serving(spec) as server:
            yield schemathesis.openapi.from_url(f"{server.url}/openapi.json").include(
                path="/v1/events/{source}"
            )
    finally:

        async def delete() -> None:
            client = await nats.connect(NATS)
            try:
                for name in (f"TW_FUZZ_{tag}", f"TW_FUZZ_{tag}_QUARANTINE"):
                    with contextlib.suppress(nats.js.errors.NotFoundError):
                        await client.jetstream().delete_stream(name)
            finally:
                await client.close()

        asyncio.run(delete())


def test_no_generated_event_gets_a_server_error(pushed_schema: schemathesis.BaseSchema) -> None:
    seen = fuzz_statuses(pushed_schema, 150)
    assert {label for label, _ in seen} == {"POST /v1/events/{source}"}
    statuses = {status for _, status in seen}
    assert 202 in statuses  # valid events were stored by JetStream
    assert 422 in statuses


def _explanations_asked(body: Any, answer: Any) -> list[dict[str, Any] | None]:
    """The ``explanation`` of every answered item that asked for one (it must be there)."""
    items = body if isinstance(body, list) else [body]
    answers = answer if isinstance(answer, list) else [answer]
    out = []
    for item, answered in zip(items, answers, strict=True):
        if isinstance(item, dict) and item.get("explain") is True:
            assert "explanation" in answered, answered
            out.append(answered["explanation"])
    return out
