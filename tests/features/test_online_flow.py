"""Materialize → lookup → skew: online values equal offline ones, statuses are honest,
incremental materialization equals a full one, and an injected mismatch is caught."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxiway.cli import main
from taxiway.features.lookup import lookup, lookup_values
from taxiway.features.materialize import materialize
from taxiway.features.online import SqliteStore, ViewValues
from taxiway.features.skew import check_skew
from taxiway.spec import Project, load_spec_text

T0 = datetime(2025, 3, 1, tzinfo=UTC)
SPEC = """
name: shop
sources:
  orders: {kind: file, path: orders.parquet, timestamp: at, available_after: 1h}
  visits: {kind: file, path: visits.parquet, timestamp: at}
  customers: {kind: file, path: customers.parquet}
entities: {customer: customer_id}
features:
  spend: {source: orders, entity: customer, aggregate: {n: count(*), total: sum(amount)}, windows: [1d, 7d]}
  last_visit: {source: visits, entity: customer, latest: [page], ttl: 2h}
  profile: {source: customers, entity: customer, static: [country]}
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    naive = T0.replace(tzinfo=None)
    orders = [
        {"customer_id": c, "at": naive - timedelta(hours=h), "amount": float(c * 10 + h)}
        for c in range(1, 6)
        for h in range(0, 200, 7 * c)
    ]
    visits = [
        {"customer_id": 1, "at": naive - timedelta(minutes=30), "page": "home"},
        {"customer_id": 2, "at": naive - timedelta(hours=5), "page": "cart"},
    ]
    customers = [{"customer_id": c, "country": "PL" if c % 2 else "DE"} for c in range(1, 8)]
    pq.write_table(pa.Table.from_pylist(orders), tmp_path / "orders.parquet")
    pq.write_table(pa.Table.from_pylist(visits), tmp_path / "visits.parquet")
    pq.write_table(pa.Table.from_pylist(customers), tmp_path / "customers.parquet")
    (tmp_path / "taxiway.yaml").write_text(SPEC)
    spec = load_spec_text(SPEC, str(tmp_path / "taxiway.yaml"), base_dir=tmp_path)
    return Project(spec, tmp_path / "taxiway.yaml", tmp_path / ".state")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "online.sqlite")
    yield opened
    opened.close()


def test_every_known_entity_gets_every_view_and_values_match_offline(
    project: Project, store: SqliteStore
) -> None:
    report = materialize(project, store, as_of=T0)
    assert {v: info["entities"] for v, info in report.views.items()} == {
        "spend": 7,
        "last_visit": 7,
        "profile": 7,
    }
    skew = check_skew(project, store, as_of=T0, sample=100)
    assert skew.entities == 7
    assert skew.compared == 7 * (4 + 1 + 1)
    assert skew.mismatches == []


def test_statuses_present_missing_stale(project: Project, store: SqliteStore) -> None:
    materialize(project, store, as_of=T0)
    [one, two, seven, unknown] = lookup(
        project.spec, store, "customer", ["1", "2", "7", "999"], now=T0 + timedelta(hours=1)
    )
    assert one.features["last_visit__page"].value == "home"
    assert one.features["last_visit__page"].status == "present"
    assert one.features["last_visit__page"].age_s == pytest.approx(90 * 60)
    # customer 2's visit was already older than the 2h ttl at T0: null offline and online
    assert two.features["last_visit__page"].status == "missing"
    assert seven.features["spend__n_7d"].value == 0  # known customer, no orders: a count of 0
    assert seven.features["profile__country"].value == "PL"
    assert all(v.status == "missing" for v in unknown.features.values())
    # two hours later customer 1's visit (90 min old at T0) is past its ttl: stale, never served
    [later] = lookup(project.spec, store, "customer", ["1"], now=T0 + timedelta(hours=2))
    assert later.features["last_visit__page"].status == "stale"
    assert later.features["last_visit__page"].value is None


def test_incremental_materialization_equals_a_full_one(project: Project, tmp_path: Path) -> None:
    incremental = SqliteStore(tmp_path / "a.sqlite")
    full = SqliteStore(tmp_path / "b.sqlite")
    try:
        materialize(project, incremental, as_of=T0)
        later = T0 + timedelta(hours=30)
        report = materialize(project, incremental, as_of=later)
        assert all(info["incremental"] for info in report.views.values())
        assert report.views["profile"]["entities"] == 0
        fresh = Project(project.spec, project.spec_path, tmp_path / "fresh-state")
        materialize(fresh, full, as_of=later)
        keys = [str(c) for c in range(1, 8)]

        def values(store: SqliteStore) -> dict[str, dict[str, object]]:
            read = store.read("customer", keys)
            return {k: {n: x for v in read[k] for n, x in v.values.items()} for k in keys}

        assert values(incremental) == values(full)
        assert check_skew(project, incremental, as_of=later).mismatches == []
    finally:
        incremental.close()
        full.close()


def test_skew_catches_an_injected_mismatch(project: Project, store: SqliteStore) -> None:
    materialize(project, store, as_of=T0)
    current = next(iter(store.read("customer", ["3"])["3"]), None)
    assert current is not None
    wrong = dict(current.values)
    first = next(iter(wrong))
    wrong[first] = 12345
    store.write(
        "customer", [("3", ViewValues(current.view, wrong, current.event_time, current.as_of))]
    )
    report = check_skew(project, store, as_of=T0)
    assert [(m.key, m.feature, m.online) for m in report.mismatches] == [("3", first, 12345)]


def test_cli_materialize_get_and_skew(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(project.spec_path)
    state = str(project.state_dir)
    assert (
        main(
            [
                "features",
                "materialize",
                "-f",
                spec,
                "--state-dir",
                state,
                "--as-of",
                "2025-03-01T00:00:00",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(["features", "get", "customer=1", "customer=7", "-f", spec, "--state-dir", state]) == 0
    )
    got = json.loads(capsys.readouterr().out)
    assert [item["entity"] for item in got] == [{"customer": "1"}, {"customer": "7"}]
    assert set(got[0]["features"]["spend__n_1d"]) == {"value", "status", "age_s"}
    assert main(["features", "skew", "-f", spec, "--state-dir", state, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mismatches"] == []
    assert main(["features", "get", "shopper=1", "-f", spec, "--state-dir", state]) == 2
    assert "unknown entity" in capsys.readouterr().err


def test_cli_build_writes_training_set_and_manifest(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = project.spec_path.read_text() + (
        "spine: {every: 1d, start: 2025-02-20, end: 2025-02-25, source: orders, entity: customer}\n"
        "label: {name: bought, kind: any_event, source: orders, entity: customer, horizon: 2d}\n"
    )
    project.spec_path.write_text(spec)
    out = tmp_path / "sets" / "train.parquet"
    assert (
        main(["features", "build", "-f", str(project.spec_path), "--out", str(out), "--json"]) == 0
    )
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["rows"] > 0
    assert manifest["label"] == "bought"
    assert (tmp_path / "sets" / "train.manifest.json").exists()
    assert set(manifest["sources"]) == {"orders", "visits", "customers"}
    assert manifest["features"][0] == "spend__n_1d"


def test_the_serving_lookup_gives_the_values_of_the_full_one(
    project: Project, store: SqliteStore
) -> None:
    """``lookup_values`` (the service's path) equals ``lookup(...).values()`` for present,
    missing, stale and unknown keys, at several moments."""
    materialize(project, store, as_of=T0)
    for hours in (0, 1, 2, 30):
        now = T0 + timedelta(hours=hours)
        for key in ("1", "2", "7", "999"):
            [full] = lookup(project.spec, store, "customer", [key], now=now)
            assert lookup_values(project.spec, store, "customer", key, now=now) == full.values()
