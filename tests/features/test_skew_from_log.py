"""`taxiway features skew --from-log`: the answers a real service logged, recomputed offline at
each answer's time, equal what it used; a tampered online store shows exactly the answers it
served; stale and missing values compare by what training knows at that time; PII is skipped."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from taxiway.cli import main
from taxiway.features.online import open_online_store
from taxiway.features.online.base import ViewValues
from taxiway.features.skew_log import (
    SKIP_NOT_LOGGED,
    SKIP_PII,
    check_skew_from_log,
)
from taxiway.serving.app import build_app
from taxiway.serving.log import MASK
from taxiway.serving.log_files import log_files
from taxiway.serving.service import Service
from taxiway.spec.project import Project

NOW = datetime(2025, 12, 31, tzinfo=UTC)  # the store is materialized as of this time
CUSTOMERS = [str(100000 + i) for i in range(1, 41)]
TAMPERED = CUSTOMERS[:3]
FEATURE = "customer_orders__spend_30d"


def _first_row(query: str) -> Any:
    with duckdb.connect() as con:
        return con.execute(query).fetchone()


def _copy(source: Path, target: Path) -> Path:
    """A copy of the world in ``source`` (spec, data, contracts, state) at ``target``."""
    shutil.copytree(
        source,
        target,
        ignore=shutil.ignore_patterns("serve-*.log", "tmp", "staging"),
    )
    return target / "taxiway.yaml"


def _serve(spec: Path, customers: list[str]) -> None:
    """Answer one prediction per customer through the real service and app, its clock at NOW."""

    async def run() -> None:
        service = Service(
            Project.load(spec), clock=lambda: NOW, reload_interval_s=0, rollout_poll_s=0
        )
        transport = httpx.ASGITransport(app=build_app(service))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                for customer in customers:
                    answer = await client.post(
                        "/v1/predict", json={"entities": {"customer": customer}}
                    )
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["path"] == "model"
        finally:
            await service.stop()

    asyncio.run(run())


@pytest.fixture(scope="module")
def world(served_shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's trained shop (tests/conftest.py), copied, with the customers' email (PII)
    as a feature too, materialized as of NOW, after one answer per customer."""
    spec = _copy(served_shop.parent, tmp_path_factory.mktemp("skew-log") / "shop")
    for folder in ("predictions", "outcomes"):
        shutil.rmtree(spec.parent / ".taxiway" / folder, ignore_errors=True)
    text = spec.read_text()
    assert "static: [country, segment]" in text
    spec.write_text(text.replace("static: [country, segment]", "static: [country, segment, email]"))
    assert main(["features", "materialize", "-f", str(spec), "--as-of", NOW.isoformat()]) == 0
    _serve(spec, CUSTOMERS)
    return spec


def _check(spec: Path, **kwargs: Any) -> Any:
    project = Project.load(spec)
    return check_skew_from_log(project, log_files(project.state_dir / "predictions"), **kwargs)


def test_the_answers_of_a_real_service_show_no_skew(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _check(world)
    assert (report.answers, report.sampled) == (len(CUSTOMERS), len(CUSTOMERS))
    assert report.first == report.last == NOW
    compared = {name: f.compared for name, f in report.features.items() if f.compared}
    # every aggregate and profile feature of every answer: 9 + 6 + 2 per answer
    assert len(compared) == 17
    assert set(compared.values()) == {len(CUSTOMERS)}
    assert report.different == 0
    assert report.compared == 17 * len(CUSTOMERS)

    assert main(["features", "skew", "--from-log", "-f", str(world), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["different"] == 0
    assert printed["compared"] == 17 * len(CUSTOMERS)
    assert main(["features", "skew", "--from-log", "-f", str(world), "--sample", "5"]) == 0
    table = capsys.readouterr().out
    assert "compared 85 values of 5 logged answers" in table
    assert FEATURE in table


def test_pii_is_skipped_with_the_reason_and_never_printed(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logged = [
        json.loads(line)
        for path in log_files(world.parent / ".taxiway" / "predictions")
        for line in path.read_text().splitlines()
    ]
    assert {r["features"]["customer_profile__email"] for r in logged} == {MASK}
    report = _check(world)
    email = report.features["customer_profile__email"]
    assert (email.compared, email.skipped) == (0, {SKIP_PII: len(CUSTOMERS)})
    # even when the values differ, no email reaches the report
    emails = _first_row(f"SELECT list(email) FROM '{world.parent / 'data' / 'customers.parquet'}'")
    assert emails is not None
    assert main(["features", "skew", "--from-log", "-f", str(world), "--json"]) == 0
    out = capsys.readouterr().out
    assert not [e for e in emails[0] if e and e in out]


def test_a_tampered_online_store_shows_exactly_the_answers_it_served(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _copy(world.parent, tmp_path / "shop")
    project = Project.load(spec)
    store = open_online_store(
        project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
    )
    try:
        stored = store.read("customer", TAMPERED)
        changed = []
        for key in TAMPERED:
            (orders,) = [v for v in stored[key] if v.view == "customer_orders"]
            values = {**orders.values, FEATURE: (orders.values[FEATURE] or 0.0) + 1.0}
            changed.append((key, ViewValues(orders.view, values, orders.event_time, orders.as_of)))
        assert store.write("customer", changed) == len(TAMPERED)
    finally:
        store.close()
    _serve(spec, CUSTOMERS[:10])  # the three tampered ones among them

    report = _check(spec)
    assert report.sampled == len(CUSTOMERS) + 10
    assert {n for n, f in report.features.items() if f.different} == {FEATURE}
    tally = report.features[FEATURE]
    assert (tally.compared, tally.different) == (len(CUSTOMERS) + 10, len(TAMPERED))
    assert sorted(d.key for d in tally.examples) == TAMPERED
    for d in tally.examples:
        assert d.served == pytest.approx((d.offline or 0.0) + 1.0)
        assert (d.entity, d.status, d.ts) == ("customer", "present", NOW.isoformat())

    assert main(["features", "skew", "--from-log", "-f", str(spec)]) == 1
    out = capsys.readouterr().out
    assert f"{len(TAMPERED)} different" in out
    assert "customer=100001" in out
    # before the tampering: the same customers' answers were right
    since = ["--since", (NOW + timedelta(seconds=1)).isoformat()]
    assert main(["features", "skew", "--from-log", "-f", str(spec), *since, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sampled"] == 0


def _record(request_id: str, ts: datetime, customer: str, **kwargs: Any) -> dict[str, Any]:
    """A record as the service writes it (path model), with the features and reason given."""
    return {
        "ts": ts.isoformat(),
        "request_id": request_id,
        "model": "retail_churn",
        "model_version": 1,
        "arm": "production",
        "path": "model",
        "degraded": kwargs.get("reason") is not None,
        "prediction": 0.5,
        "entities": {"customer": customer},
        "request": {},
        **kwargs,
    }


def test_stale_and_missing_values_compare_with_what_training_knew_then(
    world: Path, tmp_path: Path
) -> None:
    spec = _copy(world.parent, tmp_path / "shop")
    text = spec.read_text().replace(
        "  customer_profile:\n",
        "  customer_last_order:\n    source: orders\n    entity: customer\n"
        "    latest: [amount]\n    ttl: 30d\n  customer_profile:\n",
        1,
    )
    spec.write_text(text)
    customer, last, amount = _first_row(
        f"SELECT customer_id, ordered_at, amount FROM '{spec.parent / 'data' / 'orders.parquet'}' "
        "QUALIFY count(*) OVER (PARTITION BY customer_id, ordered_at) = 1 "
        "AND ordered_at = max(ordered_at) OVER (PARTITION BY customer_id) "
        "ORDER BY customer_id LIMIT 1"
    )
    last = last.replace(tzinfo=UTC) if last.tzinfo is None else last.astimezone(UTC)
    name = "customer_last_order__amount"
    stale = f"online features stale: {name}"
    nothing = "every online feature is missing (no stored features for customer 1)"
    records = [
        # stale at lookup, and older than the ttl at ts offline too: equal
        _record(
            "r1", last + timedelta(days=31), str(customer), features={name: None}, reason=stale
        ),
        # stale at lookup, but known and fresh at ts offline: the store missed a row
        _record(
            "r2", last + timedelta(hours=2), str(customer), features={name: None}, reason=stale
        ),
        # missing: nothing known offline mentions this key at ts either
        _record("r3", last, "999999999", features={name: None, FEATURE: None}, reason=nothing),
        # missing online, but the customer is known offline (a spend of 0.0, not null)
        _record(
            "r4",
            last + timedelta(days=400),
            str(customer),
            features={FEATURE: None},
            reason=nothing,
        ),
    ]
    folder = tmp_path / "log"
    folder.mkdir()
    path = folder / "predictions-w1-20251231T000000-0000.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    project = Project.load(spec)
    report = check_skew_from_log(project, [path])

    latest = report.features[name]
    assert (latest.compared, latest.equal, latest.different) == (3, 2, 1)
    assert latest.statuses == {"stale": 2, "missing": 1}
    (difference,) = latest.examples
    assert (difference.request_id, difference.status, difference.served) == ("r2", "stale", None)
    assert difference.offline == pytest.approx(float(amount))
    spend = report.features[FEATURE]
    assert (spend.compared, spend.equal, spend.different) == (2, 1, 1)
    (difference,) = spend.examples
    assert (difference.request_id, difference.status, difference.offline) == ("r4", "missing", 0)
    # the features these hand-written answers did not log are skipped, not guessed
    assert report.features["customer_profile__country"].skipped == {SKIP_NOT_LOGGED: 4}
