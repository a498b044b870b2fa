"""Materializing past the data: when the as-of is later than the newest source row by more than
a view's longest window (or its ttl), every value is empty, and taxiway says so, naming
`--as-of`, instead of writing empty features without a word."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxiway.cli import main
from taxiway.features.materialize import materialize
from taxiway.features.online import SqliteStore
from taxiway.spec import Project, load_spec_text

NEWEST = datetime(2024, 1, 31, 12, 0)  # the newest order and visit (naive UTC)
SPEC = """
name: history
sources:
  orders: {kind: file, path: orders.parquet, timestamp: at, available_after: 1h}
  visits: {kind: file, path: visits.parquet, timestamp: at}
  customers: {kind: file, path: customers.parquet}
entities: {customer: customer_id}
features:
  spend: {source: orders, entity: customer, aggregate: {n: count(*), total: sum(amount)}, windows: [7d, 30d]}
  last_visit: {source: visits, entity: customer, latest: [page], ttl: 10d}
  last_page: {source: visits, entity: customer, latest: [page]}
  profile: {source: customers, entity: customer, static: [country]}
"""


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    orders = [
        {"customer_id": c, "at": NEWEST - timedelta(days=d), "amount": float(c + d)}
        for c in range(1, 4)
        for d in range(0, 60, 5)
    ]
    visits = [{"customer_id": c, "at": NEWEST - timedelta(days=c), "page": "home"} for c in (1, 2)]
    customers = [{"customer_id": c, "country": "PL"} for c in range(1, 4)]
    pq.write_table(pa.Table.from_pylist(orders), tmp_path / "orders.parquet")
    pq.write_table(pa.Table.from_pylist(visits), tmp_path / "visits.parquet")
    pq.write_table(pa.Table.from_pylist(customers), tmp_path / "customers.parquet")
    path = tmp_path / "taxiway.yaml"
    path.write_text(SPEC)
    return path


def _warnings(spec_path: Path, as_of: datetime) -> list[str]:
    spec = load_spec_text(SPEC, str(spec_path), base_dir=spec_path.parent)
    project = Project(spec, spec_path, spec_path.parent / f".state-{as_of:%Y%m%d%H}")
    store = SqliteStore(project.state_dir / "online.sqlite")
    try:
        return materialize(project, store, as_of=as_of).warnings
    finally:
        store.close()


def test_the_default_as_of_on_historical_data_warns_naming_as_of(
    spec_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(spec_path.parent / ".state")
    args = ["features", "materialize", "-f", str(spec_path), "--state-dir", state]
    assert main(args) == 0  # the values are written all the same
    err = capsys.readouterr().err
    assert "warning:" in err
    assert "spend: every value is empty" in err
    assert "last_visit: every value is empty" in err
    assert "now, the default" in err
    assert "--as-of 2024-01-31" in err
    # a latest view without ttl keeps its values forever; a static view has no time
    assert "last_page:" not in err
    assert "profile:" not in err


def test_json_keeps_the_warnings_and_stdout_one_document(
    spec_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(spec_path.parent / ".state")
    args = ["features", "materialize", "-f", str(spec_path), "--state-dir", state, "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    warnings = json.loads(captured.out)["warnings"]
    assert [w.split(":")[0] for w in warnings] == ["spend", "last_visit"]
    assert "--as-of" in captured.err


def test_an_as_of_within_the_data_is_silent(
    spec_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(spec_path.parent / ".state")
    args = ["features", "materialize", "-f", str(spec_path), "--state-dir", state]
    assert main([*args, "--as-of", "2024-02-01T00:00:00"]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("after_newest", "empty"),
    [
        (timedelta(days=5), []),  # every window and ttl still holds rows
        (timedelta(days=20), ["last_visit"]),  # past the ttl (10d), within the 30d window
        (timedelta(days=40), ["spend", "last_visit"]),  # past the longest window (30d) too
    ],
)
def test_a_view_warns_once_the_as_of_is_past_its_longest_window_or_ttl(
    spec_path: Path, after_newest: timedelta, empty: list[str]
) -> None:
    as_of = (NEWEST + after_newest).replace(tzinfo=UTC)
    assert [w.split(":")[0] for w in _warnings(spec_path, as_of)] == empty
