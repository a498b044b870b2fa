"""Every command's OpenLineage events, end to end through the CLI, and `taxiway lineage`.

One tiny project (200 simulated customers, a contract on its orders, a logistic model) runs
check, features build, features materialize, train, audit, rollout start/pause/abort and models
promote once per module; the tests read the events they left in the state folder.
"""

from __future__ import annotations

import json
import random
import re
import socket
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.lineage.collector import Collector
from tests.lineage.openlineage_schema import validate_event

from taxiway.cli import main

SPEC = """\
name: tiny_lineage
sources:
  orders: {kind: file, path: orders.parquet, timestamp: ordered_at, contract: orders.yaml}
entities: {customer: customer_id}
features:
  orders: {source: orders, entity: customer, aggregate: {n: count(*), spend: sum(amount)}, windows: [30d]}
spine: {every: 14d, start: 2024-02-01, end: 2024-10-01, source: orders}
label: {name: churned, kind: no_event, source: orders, entity: customer, horizon: 30d}
model: {algorithm: logistic}
"""
CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: tiny-orders
version: 1.4.0
status: active
schema:
  - name: orders
    properties:
      - {name: customer_id, logicalType: integer, physicalType: bigint, required: true}
      - {name: ordered_at, logicalType: timestamp, required: true}
      - {name: amount, logicalType: number, physicalType: double, required: true}
"""
COMMANDS = [
    "check",
    "features.build",
    "features.materialize",
    "train",
    "audit",
    "rollout.start",
    "rollout.pause",
    "rollout.abort",
    "models.promote",
]


def _shop(folder: Path) -> None:
    rng = random.Random(11)
    start, end = datetime(2024, 1, 1), datetime(2024, 12, 31)
    orders = []
    for customer in range(1, 201):
        every = rng.choice([3, 10, 40])
        stop = start + timedelta(days=rng.uniform(60, 400))
        t = start + timedelta(days=rng.random() * 20)
        while t < min(stop, end):
            orders.append({"customer_id": customer, "ordered_at": t, "amount": rng.uniform(5, 80)})
            t += timedelta(days=rng.expovariate(1 / every))
    pq.write_table(pa.Table.from_pylist(orders), folder / "orders.parquet")


def _run(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny project's folder after every command ran once (events in state/lineage)."""
    folder = tmp_path_factory.mktemp("tiny_lineage")
    _shop(folder)
    (folder / "orders.yaml").write_text(CONTRACT)
    spec = folder / "taxiway.yaml"
    spec.write_text(SPEC)
    common = ["-f", str(spec), "--state-dir", str(folder / "state")]
    assert _run("check", *common, "--json") == 0
    assert _run("features", "build", *common, "--out", str(folder / "ts.parquet"), "--json") == 0
    assert _run("features", "materialize", *common, "--as-of", "2024-10-01", "--json") == 0
    assert _run("train", *common, "--json") in (0, 1)
    assert _run("audit", *common, "--json") in (0, 1)
    assert _run("rollout", "start", *common, "--candidate", "1", "--json") == 0
    assert _run("rollout", "pause", *common) == 0
    assert _run("rollout", "abort", *common) in (0, 1)
    promoted = _run("models", "promote", "1", *common, "--force", "--reason", "lineage test")
    assert promoted == 0
    return folder


def _events(folder: Path) -> list[dict[str, Any]]:
    path = folder / "state" / "lineage" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_event_is_valid_openlineage(project: Path) -> None:
    events = _events(project)
    assert events
    for event in events:
        validate_event(event)


def test_each_command_is_a_run_from_start_to_its_end(project: Path) -> None:
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in _events(project):
        runs[event["run"]["runId"]].append(event)
    jobs = []
    for events in runs.values():
        states = [e["eventType"] for e in events]
        assert states[0] == "START"
        assert states[1] in ("COMPLETE", "FAIL")
        assert len(states) == 2
        jobs.append(events[0]["job"]["name"].removeprefix("tiny_lineage."))
    assert sorted(set(jobs)) == sorted(COMMANDS)


def _last(project: Path, job: str) -> dict[str, Any]:
    return [e for e in _events(project) if e["job"]["name"] == f"tiny_lineage.{job}"][-1]


def test_check_reports_the_contract_results_as_assertions(project: Path) -> None:
    event = _last(project, "check")
    assert event["eventType"] == "COMPLETE"
    (orders,) = event["inputs"]
    assert orders["name"] == str(project / "orders.parquet")
    assert orders["facets"]["taxiway_contract"]["version"] == "1.4.0"
    names = [f["name"] for f in orders["facets"]["schema"]["fields"]]
    assert names == ["customer_id", "ordered_at", "amount"]
    assertions = orders["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert assertions
    assert all(a["success"] for a in assertions)
    assert {a.get("column") for a in assertions} >= {"customer_id", "amount"}


def test_the_model_version_is_an_output_of_train_and_promote(project: Path) -> None:
    train = _last(project, "train")
    outputs = {o["name"]: o for o in train["outputs"]}
    model = outputs["model/tiny_lineage/v1"]
    assert model["facets"]["taxiway_model"]["version"] == 1
    assert str(project / "state") in "".join(outputs)  # the training set it built
    assert [i["name"] for i in train["inputs"]] == [str(project / "orders.parquet")]
    promote = _last(project, "models.promote")
    assert promote["eventType"] == "COMPLETE"
    stages = {
        o["name"]: o["facets"].get("taxiway_model", {}).get("stage") for o in promote["outputs"]
    }
    assert stages == {"model/tiny_lineage/v1": "production", "serving/tiny_lineage": None}


def test_features_build_writes_the_training_set_from_its_sources(project: Path) -> None:
    build = _last(project, "features.build")
    assert [o["name"] for o in build["outputs"]] == [str(project / "ts.parquet")]
    assert build["outputs"][0]["facets"]["version"]["datasetVersion"]
    assert [i["name"] for i in build["inputs"]] == [str(project / "orders.parquet")]
    materialize = _last(project, "features.materialize")
    assert materialize["outputs"][0]["name"].endswith("online.sqlite#tiny_lineage")


def test_rollout_steps_say_the_split(project: Path) -> None:
    start, pause, abort = (
        _last(project, f"rollout.{kind}")["outputs"][0]["facets"]["taxiway_rollout"]
        for kind in ("start", "pause", "abort")
    )
    assert (start["candidate"], start["state"], start["transition"]) == (1, "running", "start")
    assert (pause["state"], abort["state"], abort["share"]) == ("paused", "aborted", 0.0)


def test_audit_judges_the_version(project: Path) -> None:
    audit = _last(project, "audit")
    (model,) = audit["inputs"]
    assert model["name"] == "model/tiny_lineage/v1"
    assert model["inputFacets"]["dataQualityAssertions"]["assertions"]


def test_taxiway_lineage_shows_the_graph_and_the_runs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svg = project / "lineage.svg"
    common = ["-f", str(project / "taxiway.yaml"), "--state-dir", str(project / "state")]
    capsys.readouterr()
    assert _run("lineage", *common, "--svg", str(svg)) == 0
    out = capsys.readouterr().out
    assert "lineage of tiny_lineage v1 (production)" in out
    assert "contract tiny-orders v1.4.0" in out
    assert "source orders (file" in out
    assert "served: v1 in production ← model tiny_lineage v1" in out
    assert re.search(r"tiny_lineage\.models\.promote +COMPLETE +at ", out)
    ET.fromstring(svg.read_text())
    assert _run("lineage", *common, "--model", "1", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert {n["layer"] for n in document["nodes"]} >= {"contracts", "sources", "service"}
    assert [r["job"] for r in document["runs"]][-1] == "tiny_lineage.models.promote"


def test_taxiway_lineage_before_training_says_to_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "orders.yaml").write_text(CONTRACT)
    (tmp_path / "taxiway.yaml").write_text(SPEC)
    assert _run("lineage", "-f", str(tmp_path / "taxiway.yaml")) == 1
    err = capsys.readouterr().err
    assert "no registered version" in err
    assert "taxiway train" in err


def test_a_secret_in_a_source_url_never_reaches_an_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    secret = "Hunter2-lineage-pw"
    monkeypatch.setenv("TW_LINEAGE_DB", f"postgresql://reader:{secret}@127.0.0.1:{port}/shop")
    (tmp_path / "taxiway.yaml").write_text(
        "name: secretive\nsources:\n"
        "  orders: {kind: postgres, url: '${TW_LINEAGE_DB}', table: orders, connect_timeout_s: 1}\n"
    )
    main(["check", "-f", str(tmp_path / "taxiway.yaml")])
    output = capsys.readouterr()
    text = (tmp_path / ".taxiway" / "lineage" / "events.jsonl").read_text()
    assert secret not in text
    assert secret not in output.out + output.err
    events = [json.loads(line) for line in text.splitlines()]
    for event in events:
        validate_event(event)
    assert events[-1]["inputs"][0]["namespace"] == f"postgres://127.0.0.1:{port}"


def test_a_dead_endpoint_warns_and_the_command_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "orders.yaml").write_text(CONTRACT)
    _shop(tmp_path)
    (tmp_path / "taxiway.yaml").write_text(
        SPEC + f"lineage: {{transport: http, url: 'http://127.0.0.1:{port}', timeout_s: 1}}\n"
    )
    assert main(["check", "-f", str(tmp_path / "taxiway.yaml")]) == 0
    err = capsys.readouterr().err
    assert err.count("could not post the lineage event") == 1
    assert "fix:" in err
    kept = (tmp_path / ".taxiway" / "lineage" / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["eventType"] for line in kept] == ["START", "COMPLETE"]


def test_the_http_transport_delivers_a_commands_events(tmp_path: Path) -> None:
    (tmp_path / "orders.yaml").write_text(CONTRACT)
    _shop(tmp_path)
    collector = Collector()
    try:
        (tmp_path / "taxiway.yaml").write_text(
            SPEC + f"lineage: {{transport: http, url: '{collector.url}', namespace: shop}}\n"
        )
        assert main(["check", "-f", str(tmp_path / "taxiway.yaml")]) == 0
    finally:
        collector.close()
    assert [e["eventType"] for e in collector.received] == ["START", "COMPLETE"]
    assert {e["job"]["namespace"] for e in collector.received} == {"shop"}
    for event in collector.received:
        validate_event(event)
