"""A secret URL in a dumped spec (a source's fingerprint, a section's JSON in a report) is its
template with any password redacted: the references, never what they resolve to."""

from __future__ import annotations

import json

import pytest

from taxiway.spec.models import NatsSource, PostgresSource


def test_a_dumped_secret_url_holds_the_template_never_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TW_TEST_PW", "hunter2-very-secret")
    source = PostgresSource(
        kind="postgres", url="postgresql://app:${TW_TEST_PW}@db/shop", table="t"
    )
    assert source.url.reveal() == "postgresql://app:hunter2-very-secret@db/shop"
    dumped = source.model_dump_json()
    assert "hunter2" not in dumped
    assert json.loads(dumped)["url"] == "postgresql://app:***@db/shop"
    assert source.model_dump(mode="json")["url"] == "postgresql://app:***@db/shop"


def test_a_url_without_a_password_dumps_as_written() -> None:
    source = NatsSource.model_validate(
        {
            "kind": "nats",
            "url": "nats://127.0.0.1:4222",
            "subject": "orders",
            "stream": "ORDERS",
            "durable": "tw",
            "timestamp": "ts",
            "history": "history",
        }
    )
    assert json.loads(source.model_dump_json())["url"] == "nats://127.0.0.1:4222"
