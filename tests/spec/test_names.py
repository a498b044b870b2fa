"""Use-case names as users write them (`cdnow-churn`, `flights.delay`) load, and every place
that uses the name takes it: the registry (SQLite and PostgreSQL), the Redis key prefix, the
/v2 model path, the Prometheus label, the prediction log. One identifier rule for the rest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import require_service, retail_shop
from tests.serving.conftest import promote, serving

from taxiway.cli import main
from taxiway.errors import SpecError
from taxiway.features.online._codec import check_entity
from taxiway.models.registry.base import check_name as registry_name
from taxiway.serving.log import count_records, log_files
from taxiway.spec.loader import load_spec_text
from taxiway.spec.names import NAME_RULE, check_name, identifier

names = st.from_regex(NAME_RULE, fullmatch=True)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@pytest.mark.parametrize("name", ["cdnow-churn", "flights.delay", "retail_churn", "2024.q1-v2"])
def test_kebab_dotted_and_snake_names_load(name: str) -> None:
    assert load_spec_text(f"name: {name}\n").name == name


@pytest.mark.parametrize(
    "name", ["cdnow churn", "-churn", "churn-", "churn.", ".hidden", "a/b", "a:b", "x" * 129]
)
def test_other_names_are_refused_at_their_line_with_the_rule(name: str) -> None:
    with pytest.raises(SpecError) as raised:
        load_spec_text(f"owner: me\nname: '{name}'\n")
    text = str(raised.value)
    assert "taxiway.yaml:2:" in text
    assert "e.g. cdnow-churn, flights.delay" in text


@settings(max_examples=300, deadline=None)
@given(names)
def test_every_valid_name_can_be_registered_and_prefix_redis_keys(name: str) -> None:
    assert check_name(name) == name
    assert registry_name(name) == name
    assert check_entity(name) == name  # no `:`, glob or backslash: a clean key segment


@settings(max_examples=300, deadline=None)
@given(names)
def test_the_derived_identifier_is_an_identifier(name: str) -> None:
    derived = identifier(name)
    assert IDENTIFIER.fullmatch(derived), derived
    assert identifier(derived) == derived  # an identifier is its own identifier
    if IDENTIFIER.fullmatch(name):
        assert derived == name


@settings(max_examples=200, deadline=None)
@given(st.lists(names, min_size=2, max_size=30, unique=True))
def test_names_that_read_alike_get_different_identifiers(given_names: list[str]) -> None:
    alike = {n.replace("-", "_").replace(".", "_") for n in given_names}
    every = given_names + [a for a in alike if a not in given_names]
    assert len({identifier(n) for n in every}) == len(every)


def test_punctuation_variants_of_one_name_do_not_collide() -> None:
    variants = ["cdnow-churn", "cdnow.churn", "cdnow_churn", "cdnow-churn_", "Cdnow-churn"]
    assert len({identifier(v) for v in variants}) == len(variants)
    assert identifier("cdnow_churn") == "cdnow_churn"


# ---------------------------------------------------------------- train and serve by name


def _named(folder: Path, name: str, extra: str = "") -> Path:
    spec = retail_shop(folder, customers=300)
    text = spec.read_text()
    assert "\nname: retail_churn" in text
    spec.write_text(text.replace("\nname: retail_churn", f"\nname: {name}", 1) + extra)
    return spec


def _serve_and_check(spec: Path, name: str) -> None:
    with serving(spec) as server, server.client() as client:
        answer = client.post("/v1/predict", json={"entities": {"customer": "100017"}}).json()
        assert answer["path"] == "model", answer
        meta = client.get(f"/v2/models/{name}").json()
        assert meta["name"] == name
        inferred = client.post(
            f"/v2/models/{name}/infer",
            json={
                "inputs": [
                    {
                        "name": "customer",
                        "shape": [2],
                        "datatype": "BYTES",
                        "data": ["100017", "100018"],
                    }
                ]
            },
        )
        assert inferred.status_code == 200, inferred.text
        assert inferred.json()["model_name"] == name
        assert client.get(f"/v2/models/{name}/ready").status_code == 200
        metrics = client.get("/metrics").text
        assert f'taxiway_model_version{{name="{name}"}} 1.0' in metrics


@pytest.mark.slow
def test_a_kebab_named_use_case_trains_registers_serves_and_logs(tmp_path: Path) -> None:
    spec = _named(tmp_path, "cdnow-churn")
    assert main(["train", "-f", str(spec), "--json"]) in (0, 1)  # 1: does not beat the baseline
    promote(spec, 1)
    assert main(["features", "materialize", "-f", str(spec), "--as-of", "2025-12-31"]) == 0
    assert (tmp_path / ".taxiway" / "artifacts" / "cdnow-churn" / "1" / "model.json").exists()
    _serve_and_check(spec, "cdnow-churn")
    log = tmp_path / ".taxiway" / "predictions"
    assert count_records(log) >= 3
    record = json.loads(log_files(log)[0].read_text().splitlines()[0])
    assert record["model"] == "cdnow-churn"


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_a_dotted_name_in_postgresql_and_as_the_redis_prefix(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    import psycopg
    import redis

    monkeypatch.setenv("TW_NAMES_REGISTRY_URL", postgres_url)
    monkeypatch.setenv("TW_NAMES_REDIS_URL", "redis://127.0.0.1:6379/0")
    spec = _named(
        tmp_path,
        "flights.delay",
        "\nregistry:\n  kind: postgres\n  url: ${TW_NAMES_REGISTRY_URL}\n  schema: names\n"
        "online_store:\n  kind: redis\n  url: ${TW_NAMES_REDIS_URL}\n",
    )
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = "taxiway:flights.delay:"  # the default prefix, taxiway:<name>

    def clear() -> None:
        keys = list(client.scan_iter(f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)

    clear()
    try:
        assert main(["train", "-f", str(spec), "--json"]) in (0, 1)
        promote(spec, 1)
        assert main(["features", "materialize", "-f", str(spec), "--as-of", "2025-12-31"]) == 0
        assert any(True for _ in client.scan_iter(f"{prefix}*", count=1000))
        with psycopg.connect(postgres_url) as con:
            row = con.execute(
                "SELECT version, stage FROM names.model_versions WHERE name = 'flights.delay'"
            ).fetchone()
        assert row == (1, "production")
        _serve_and_check(spec, "flights.delay")
    finally:
        clear()
        client.close()
