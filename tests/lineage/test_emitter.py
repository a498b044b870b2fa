"""The emitter: START then COMPLETE or FAIL around a block, never failing it."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from tests.lineage.collector import Collector
from tests.lineage.openlineage_schema import validate_event

from taxiway.lineage.datasets import Dataset
from taxiway.lineage.emitter import Emitter
from taxiway.spec.models import LineageSpec

SOURCE = Dataset("file", "/data/orders.csv")


def _events(folder: Path) -> list[dict[str, Any]]:
    path = folder / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_run_sends_start_then_complete_with_its_datasets(tmp_path: Path) -> None:
    emitter = Emitter(None, state_dir=tmp_path, use_case="churn")
    with emitter.run("features.build", inputs=[SOURCE]) as run:
        run.wrote([Dataset("file", "/t.parquet")])
    start, complete = _events(tmp_path / "lineage")
    for event in (start, complete):
        validate_event(event)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert start["job"]["name"] == "churn.features.build"
    assert start["outputs"] == []
    assert [d["name"] for d in complete["outputs"]] == ["/t.parquet"]
    assert [d["name"] for d in complete["inputs"]] == ["/data/orders.csv"]


def test_an_exception_sends_fail_and_goes_on(tmp_path: Path) -> None:
    emitter = Emitter(None, state_dir=tmp_path, use_case="churn")
    with pytest.raises(ValueError, match="boom"), emitter.run("train"):
        raise ValueError("boom at postgresql://u:Hunter2pw@db/x")
    _start, fail = _events(tmp_path / "lineage")
    validate_event(fail)
    assert fail["eventType"] == "FAIL"
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert message.startswith("ValueError: boom")
    assert "Hunter2pw" not in message


def test_an_exception_the_caller_calls_success_completes(tmp_path: Path) -> None:
    emitter = Emitter(None, state_dir=tmp_path, use_case="churn")
    with pytest.raises(SystemExit), emitter.run("check", failure=lambda e: None):
        raise SystemExit(0)
    assert [e["eventType"] for e in _events(tmp_path / "lineage")] == ["START", "COMPLETE"]


def test_a_run_marked_failed_without_raising_sends_fail(tmp_path: Path) -> None:
    emitter = Emitter(None, state_dir=tmp_path, use_case="churn")
    with emitter.run("check") as run:
        run.error = "blocked: 2 finding(s) with policy block"
    fail = _events(tmp_path / "lineage")[-1]
    assert fail["eventType"] == "FAIL"
    assert fail["run"]["facets"]["errorMessage"]["message"].startswith("blocked")


def test_a_deferred_run_that_skips_sends_nothing(tmp_path: Path) -> None:
    emitter = Emitter(None, state_dir=tmp_path, use_case="churn")
    with emitter.run("rollout.check", deferred=True) as run:
        run.skip = True
    assert _events(tmp_path / "lineage") == []
    with emitter.run("rollout.check", deferred=True) as run:
        run.skip = False
    start, complete = _events(tmp_path / "lineage")
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["eventTime"] <= complete["eventTime"]


def test_transport_off_sends_nothing(tmp_path: Path) -> None:
    emitter = Emitter(LineageSpec(transport="off"), state_dir=tmp_path, use_case="churn")
    with emitter.run("check"):
        pass
    assert not (tmp_path / "lineage").exists()


def test_lineage_path_moves_the_file(tmp_path: Path) -> None:
    spec = LineageSpec(path=str(tmp_path / "elsewhere"))
    with Emitter(spec, state_dir=tmp_path, use_case="churn").run("check"):
        pass
    assert len(_events(tmp_path / "elsewhere")) == 2


def test_http_sends_every_event_to_the_endpoint_with_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_LINEAGE_TOKEN", "tok-Hunter2")
    collector = Collector()
    try:
        spec = LineageSpec(transport="http", url=collector.url, api_key_env="TW_LINEAGE_TOKEN")
        with Emitter(spec, state_dir=tmp_path, use_case="churn").run("train"):
            pass
    finally:
        collector.close()
    assert [e["eventType"] for e in collector.received] == ["START", "COMPLETE"]
    for event in collector.received:
        validate_event(event)
    assert {h["Authorization"] for h in collector.headers} == {"Bearer tok-Hunter2"}
    assert _events(tmp_path / "lineage") == []  # delivered: not kept twice


def test_a_dead_endpoint_warns_once_and_keeps_the_events_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_LINEAGE_URL", f"http://u:Hunter2pw@127.0.0.1:{_closed_port()}")
    spec = LineageSpec.model_validate({"transport": "http", "url": "${TW_LINEAGE_URL}"})
    warnings: list[str] = []
    emitter = Emitter(spec, state_dir=tmp_path, use_case="churn", warn=warnings.append)
    with emitter.run("train") as run:
        run.wrote([SOURCE])
    assert [e["eventType"] for e in _events(tmp_path / "lineage")] == ["START", "COMPLETE"]
    assert len(warnings) == 1
    assert "could not post" in warnings[0]
    assert "fix:" in warnings[0]
    assert "Hunter2pw" not in warnings[0]


def test_an_unwritable_folder_warns_and_the_block_goes_on(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    warnings: list[str] = []
    spec = LineageSpec(path=str(blocked))
    emitter = Emitter(spec, state_dir=tmp_path, use_case="churn", warn=warnings.append)
    with emitter.run("check"):
        done = True
    assert done
    assert len(warnings) == 1
    assert "lineage.path" in warnings[0]


def test_without_openlineage_installed_a_spec_without_lineage_stays_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    for name in [m for m in sys.modules if m.split(".")[0] == "openlineage"] + ["openlineage"]:
        monkeypatch.setitem(sys.modules, name, None)  # None: "not installed" to import
    monkeypatch.delitem(sys.modules, "taxiway.lineage.events", raising=False)
    warnings: list[str] = []
    with Emitter(None, state_dir=tmp_path, use_case="c", warn=warnings.append).run("check"):
        pass
    assert warnings == []
    assert not (tmp_path / "lineage").exists()
    asked = Emitter(LineageSpec(), state_dir=tmp_path, use_case="c", warn=warnings.append)
    with asked.run("check"):
        pass
    assert len(warnings) == 1
    assert "pip install 'taxiway[lineage]'" in warnings[0]
