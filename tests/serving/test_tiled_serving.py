"""Tiled views served for real: the features a running service logged for /v1/predict equal the
offline training-set value at exactly the request's time, on SQLite and on Redis, and a
windowed count falls as time passes with no new events and no new materialization.

The shop's orders end on 2025-12-31 (known an hour later); the service's clock is set to two
request times after that, so every change between them is events leaving the windows.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import duckdb
import httpx
import pytest
from tests.conftest import require_service

from taxiway.cli import main
from taxiway.data.stage import stage_sources
from taxiway.engines.duckdb import connect
from taxiway.features.online import open_online_store
from taxiway.features.pit import compute_view
from taxiway.features.skew import same_value
from taxiway.serving.app import build_app
from taxiway.serving.log_files import log_files
from taxiway.serving.service import Service
from taxiway.spec.project import Project

VIEW = """\
  customer_recent:
    source: orders
    entity: customer
    aggregate: {recent_orders: count(*), recent_spend: sum(amount), recent_max: max(amount)}
    windows: [1d, 7d]
    tiles: 1h
"""
# the last order is at 2025-12-31 23:49:21, known an hour later (available_after: 1h)
FIRST = datetime(2026, 1, 1, 10, 17, 33, 250001, tzinfo=UTC)  # not on a tile boundary
LATER = datetime(2026, 1, 4, 22, 0, tzinfo=UTC)
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def tiled_shop(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained shop (version 1 in production), with a tiled view added to its spec."""
    target = tmp_path_factory.mktemp("tiled-serving") / "shop"
    shutil.copytree(
        shop.parent, target, ignore=shutil.ignore_patterns("serve-*.log", "tmp", "staging")
    )
    for folder in ("predictions", "outcomes"):
        shutil.rmtree(target / ".taxiway" / folder, ignore_errors=True)
    spec = target / "taxiway.yaml"
    text = spec.read_text()
    assert "\nfeatures:\n" in text
    spec.write_text(text.replace("\nfeatures:\n", "\nfeatures:\n" + VIEW, 1))
    return spec


@pytest.fixture(params=["sqlite", "redis"])
def served(request: pytest.FixtureRequest, tiled_shop: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the tiled shop whose online store (SQLite, or a real Redis under a fresh
    prefix) is materialized before the first request time: vectors and tiles."""
    target = tmp_path / "shop"
    shutil.copytree(tiled_shop.parent, target)
    spec = target / "taxiway.yaml"
    if request.param == "redis":
        require_service("Redis", "127.0.0.1", 6379)
        store = f"online_store: {{kind: redis, url: '{REDIS}', prefix: 'tw-test:{uuid4().hex}'}}\n"
        spec.write_text(spec.read_text() + "\n" + store)
    as_of = "2026-01-01T01:00:00+00:00"
    assert main(["features", "materialize", "-f", str(spec), "--as-of", as_of]) == 0
    try:
        yield spec
    finally:
        project = Project.load(spec)
        online = open_online_store(
            project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
        )
        try:
            if request.param == "redis":
                online.clear()
        finally:
            online.close()


def recent_customers(spec: Path) -> list[str]:
    """25 customers with orders in the last week of the data, and 5 with none then."""
    orders = spec.parent / "data" / "orders.parquet"
    with duckdb.connect() as con:
        recent = con.execute(
            f"SELECT DISTINCT customer_id FROM '{orders}' WHERE ordered_at > '2025-12-26' "
            "ORDER BY 1 LIMIT 25"
        ).fetchall()
        quiet = con.execute(
            f"SELECT DISTINCT customer_id FROM '{orders}' WHERE customer_id NOT IN "
            f"(SELECT customer_id FROM '{orders}' WHERE ordered_at > '2025-12-20') ORDER BY 1 "
            "LIMIT 5"
        ).fetchall()
    return [str(row[0]) for row in recent + quiet]


def serve(spec: Path, customers: list[str], times: list[datetime]) -> None:
    """Ask the real service and app for every customer at each time (its clock set to it)."""
    now = [times[0]]

    async def run() -> None:
        service = Service(
            Project.load(spec),
            clock=lambda: now[0],
            reload_interval_s=0,
            rollout_poll_s=0,
            warm_up=False,
        )
        # the lookup judges at the service's clock (the one its log's ts records)
        assert service.predictor.clock is service.clock
        transport = httpx.ASGITransport(app=build_app(service))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                for moment in times:
                    now[0] = moment
                    for customer in customers:
                        answer = await client.post(
                            "/v1/predict", json={"entities": {"customer": customer}}
                        )
                        assert answer.status_code == 200, answer.text
        finally:
            await service.stop()

    asyncio.run(run())


def logged(spec: Path) -> dict[tuple[str, datetime], dict[str, Any]]:
    """(customer, ts) → the features the service logged for that answer."""
    project = Project.load(spec)
    out: dict[tuple[str, datetime], dict[str, Any]] = {}
    for path in log_files(project.state_dir / "predictions"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            moment = datetime.fromisoformat(record["ts"])
            out[(record["entities"]["customer"], moment)] = record["features"]
    return out


def offline(
    spec: Path, probes: list[tuple[str, datetime]]
) -> dict[tuple[str, datetime], dict[str, Any]]:
    """The training set's values (pit.py) of the tiled view for each (customer, time)."""
    project = Project.load(spec)
    con = connect()
    try:
        staged = stage_sources(project, con, ["orders"], run_id=uuid4().hex, keep_quarantine=False)
        con.execute("CREATE TABLE spine (__sid BIGINT, customer_id BIGINT, __t TIMESTAMP)")
        con.executemany(
            "INSERT INTO spine VALUES (?, ?, ?)",
            [(i, int(k), t.replace(tzinfo=None)) for i, (k, t) in enumerate(probes)],
        )
        columns = compute_view(
            con, project.spec, "customer_recent", staged["orders"].view, "spine", "out"
        )
        names = [c.name for c in columns]
        rows = con.execute(f"SELECT __sid, {', '.join(names)} FROM out ORDER BY __sid").fetchall()
    finally:
        con.close()
    return {probes[row[0]]: dict(zip(names, row[1:], strict=True)) for row in rows}


def test_served_tiled_features_equal_the_offline_values_at_the_request_time(
    served: Path,
) -> None:
    customers = recent_customers(served)
    serve(served, customers, [FIRST, LATER])

    answers = logged(served)
    probes = [(c, t) for t in (FIRST, LATER) for c in customers]
    assert set(answers) == set(probes)
    expected = offline(served, probes)
    names = list(expected[probes[0]])
    assert len(names) == 6
    for probe in probes:
        for name in names:
            got, want = answers[probe][name], expected[probe][name]
            assert same_value(got, want), (probe, name, got, want)

    # no new event and no new materialization: events left the windows between the times
    week = "customer_recent__recent_orders_7d"
    first = {c: answers[(c, FIRST)][week] for c in customers}
    later = {c: answers[(c, LATER)][week] for c in customers}
    assert all(later[c] <= first[c] for c in customers)
    assert sum(later.values()) < sum(first.values())
    assert sum(answers[(c, FIRST)]["customer_recent__recent_orders_1d"] for c in customers) > 0
    assert {answers[(c, LATER)]["customer_recent__recent_orders_1d"] for c in customers} == {0}
    # the customers without orders in the last weeks: counted 0, not missing
    assert {first[c] for c in customers[25:]} == {0}
