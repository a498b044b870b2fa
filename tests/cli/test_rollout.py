"""`taxiway rollout ...`: the controller from the command line, its JSON and exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.rollout.traffic import Traffic
from tests.rollout.world import make_project

from taxiway.cli import main


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    return make_project(tmp_path / "shop").spec_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["rollout", *args])
    out, err = capsys.readouterr()
    return code, out, err


def status(spec: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, _ = run(capsys, "status", "-f", str(spec), "--json")
    assert code == 0
    document: dict[str, Any] = json.loads(out)
    return document


def test_status_before_any_rollout_says_how_to_start(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "status", "-f", str(spec))
    assert code == 1
    assert "has had no rollout" in err
    assert "taxiway rollout start" in err
    assert "Traceback" not in err


def test_start_then_status_json(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "start", "-f", str(spec), "--no-audit")
    assert code == 0
    assert "running at step 1/5, 5% to v2 (control: v1)" in out

    document = status(spec, capsys)

    assert {k: document[k] for k in ("state", "step", "share", "candidate", "verdict")} == {
        "state": "running",
        "step": 1,
        "share": 5.0,
        "candidate": 2,
        "verdict": None,
    }
    assert [(a["name"], a["version"]) for a in document["arms"]] == [
        ("control", 1),
        ("candidate", 2),
    ]
    assert set(document["arms"][0]) == {"name", "version", "units", "events", "mean", "interval"}


def test_check_holds_then_a_latency_regression_rolls_back_with_exit_1(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "start", "-f", str(spec), "--candidate", "2")[0] == 0
    salt = _salt(spec, capsys)
    traffic = Traffic(spec.parent / ".taxiway", salt, {"control": 0.2, "candidate": 0.2})
    traffic.visit(5.0, datetime.now(UTC), new=300)

    code, out, _ = run(capsys, "check", "-f", str(spec), "--json")
    held = json.loads(out)
    assert code == 0
    assert held["verdict"] == "hold"
    assert held["needs"]
    assert held["arms"][0]["units"] > 200

    traffic.latency_ms["candidate"] = 90.0
    traffic.visit(5.0, datetime.now(UTC), new=3000)
    code, out, _ = run(capsys, "check", "-f", str(spec))
    assert code == 1
    assert "rolled back" in out
    assert "guardrail latency_p99 breached" in out
    assert status(spec, capsys)["share"] == 0.0


def test_pause_resume_abort(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "start", "-f", str(spec), "--no-audit")
    code, out, _ = run(capsys, "pause", "-f", str(spec), "--reason", "holiday", "--by", "ana")
    assert (code, "paused" in out) == (0, True)
    code, out, _ = run(capsys, "check", "-f", str(spec))
    assert code == 3  # paused: a person decides
    assert run(capsys, "resume", "-f", str(spec))[0] == 0
    assert status(spec, capsys)["state"] == "running"
    code, out, _ = run(capsys, "abort", "-f", str(spec), "--reason", "wrong model")
    assert (code, "aborted" in out) == (0, True)
    code, _, err = run(capsys, "rollback", "-f", str(spec))
    assert code == 1
    assert "no running or paused rollout" in err


def test_status_events_lists_the_verified_transitions(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "start", "-f", str(spec), "--no-audit")
    run(capsys, "pause", "-f", str(spec), "--reason", "holiday", "--by", "ana")
    code, out, _ = run(capsys, "status", "-f", str(spec), "--events")
    assert code == 0
    assert "the audit chain of 2 events verified" in out
    assert "pause" in out
    assert "by ana: holiday" in out
    code, out, _ = run(capsys, "status", "-f", str(spec), "--events", "--json")
    document = json.loads(out)
    assert [e["kind"] for e in document["events"]] == ["start", "pause"]
    assert document["chain"] == {"verified": True, "events": 2}

    import sqlite3

    database = sqlite3.connect(spec.parent / ".taxiway" / "registry.sqlite")
    with database:
        database.execute("UPDATE rollout_events SET by = 'mallory' WHERE seq = 2")
    database.close()
    code, _, err = run(capsys, "status", "-f", str(spec), "--events")
    assert code == 1
    assert "event 2 was edited" in err


def test_run_stops_after_the_checks_asked_for(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (spec.parent / "taxiway.yaml").write_text(
        spec.read_text().replace("min_units: 50", "min_units: 50\n  check_every: 1ms")
    )
    run(capsys, "start", "-f", str(spec), "--no-audit")
    code, out, _ = run(capsys, "run", "-f", str(spec), "--checks", "2")
    assert code == 0
    assert out.count("hold at 5%") == 2


def _salt(spec: Path, capsys: pytest.CaptureFixture[str]) -> str:
    from taxiway.rollout.state import open_rollout_store

    store = open_rollout_store(None, spec.parent / ".taxiway")
    try:
        state = store.active("churn")
        assert state is not None
        return state.salt
    finally:
        store.close()
