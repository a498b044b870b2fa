"""`taxiway forget --unit U` on a served shop: the unit's predictions, outcomes and online-store
keys are gone from every file, the audit log says how many without naming it, and the monitor
and the skew check read the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.serving.conftest import serving
from tests.serving.rollout_world import two_versions

from taxiway.cli import main
from taxiway.features.online import open_online_store
from taxiway.serving.forget import unit_digest
from taxiway.spec.project import Project

UNIT = "100017"


def _files_holding(folder: Path, text: str) -> list[str]:
    return [
        str(p.relative_to(folder))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and text.encode() in p.read_bytes()
    ]


@pytest.mark.slow
def test_forget_removes_the_unit_everywhere_and_the_rest_stays_readable(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = two_versions(shop, tmp_path)  # its own state: v1 in production, v2 a candidate
    state = tmp_path / ".taxiway"
    # control: v1 in production, so the monitor of v1 reads the control arm's answers
    spec.write_text(spec.read_text().replace("control: baseline", "control: production", 1))
    common = ["-f", str(spec), "--state-dir", str(state)]
    # a rollout: the service assigns each customer an arm, and its check keeps unit state
    assert main(["rollout", "start", *common, "--candidate", "2", "--no-audit"]) == 0
    with serving(spec, "--state-dir", str(state)) as server, server.client() as client:
        ids: dict[str, str] = {}
        for customer in (UNIT, "100018", UNIT, "100019", UNIT):
            answer = client.post("/v1/predict", json={"entities": {"customer": customer}})
            assert answer.status_code == 200, answer.text
            ids.setdefault(customer, answer.json()["request_id"])
        for outcome in (
            {"request_id": ids[UNIT], "name": "churned", "value": 1},
            {"unit": UNIT, "name": "churned", "value": 1},
            {"request_id": ids["100018"], "name": "churned", "value": 0},
        ):
            assert client.post("/v1/outcomes", json=outcome).status_code == 200
    capsys.readouterr()
    assert main(["monitor", *common, "--json"]) in (0, 1)
    json.loads(capsys.readouterr().out)  # a report, not an error
    main(["rollout", "check", *common, "--json"])
    [units] = list((state / "rollout").glob("*/units.arrow"))
    assert UNIT.encode() in units.read_bytes()
    assert _files_holding(state / "predictions", UNIT)
    capsys.readouterr()

    assert main(["forget", "--unit", UNIT, *common, "--json"]) == 0

    removed = json.loads(capsys.readouterr().out)
    assert removed["predictions"] == 3
    assert removed["outcomes"] == 2  # by its request id, and by its unit
    assert removed["online_keys"] == 1
    assert removed["cursors_moved"] >= 1  # the monitor's
    assert removed["rollout_states"] == 1
    assert removed["unit_sha256"] == unit_digest(UNIT)
    for folder in ("predictions", "outcomes"):
        assert _files_holding(state / folder, UNIT) == []
    assert _files_holding(state / "predictions", "100018")  # the others stay
    project = Project.load(spec, state)
    store = open_online_store(project.spec.online_store, state_dir=state, namespace="x")
    try:
        assert store.read("customer", [UNIT]) == {}
        assert store.read("customer", ["100018"]) != {}
    finally:
        store.close()
    audit = (state / "governance" / "approvals.jsonl").read_text()
    assert unit_digest(UNIT) in audit
    assert "3 prediction records" in audit
    assert UNIT not in audit
    # the rest is read as before: the monitor goes on from its moved cursor, the skew check
    # compares the logged answers left, and the audit chain verifies
    assert main(["monitor", *common, "--json"]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    assert "replaced" not in json.dumps(report)
    assert main(["features", "skew", *common, "--from-log", "--json"]) in (0, 1)
    assert main(["approve", *common, "--list"]) == 0
    capsys.readouterr()
    main(["rollout", "check", *common, "--json"])  # rebuilds the unit state from the logs
    checked = capsys.readouterr()
    assert "Traceback" not in checked.err
    assert "error:" not in checked.err, checked.err
    assert units.exists()
    assert UNIT.encode() not in units.read_bytes()
    assert b"100018" in units.read_bytes()
    capsys.readouterr()
    assert main(["forget", "--unit", UNIT, *common, "--json"]) == 0  # again: nothing left
    again = json.loads(capsys.readouterr().out)
    assert (again["predictions"], again["outcomes"], again["online_keys"]) == (0, 0, 0)
