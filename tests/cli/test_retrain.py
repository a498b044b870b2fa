"""`taxiway retrain` on the retail example, as a user runs it: each gate, and the JSON."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import retail_shop

from taxiway.cli import main
from taxiway.models.artifact import load_model
from taxiway.models.registry import open_registry
from taxiway.rollout.controller import Controller
from taxiway.rollout.history import model_history
from taxiway.spec.project import Project

AS_OF = "2025-12-31"
"""The data ends at the start of 2026; the 60-day label is observed up to here."""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return retail_shop(tmp_path_factory.mktemp("shop"), customers=400)


def _spec(shop: Path, folder: Path, retrain: str, *, approvals: bool = False) -> Path:
    """The retail spec in ``folder`` with ``retrain`` as its policy; without ``approvals``
    no sign-off is required (its governance lists no roles)."""
    text = shop.read_text()
    if not approvals:
        text = text.replace("approvals: [security, privacy, business]", "approvals: []")
    for item in ("data", "contracts"):
        (folder / item).symlink_to(shop.parent / item)
    spec = folder / "taxiway.yaml"
    spec.write_text(f"{text}\nretrain: {retrain}\n")
    return spec


def _retrain(capsys: pytest.CaptureFixture[str], spec: Path, *args: str) -> tuple[int, Any]:
    code = main(["retrain", "-f", str(spec), "--json", "--as-of", AS_OF, *args])
    captured = capsys.readouterr()
    if not captured.out:
        pytest.fail(f"taxiway retrain printed no JSON (exit {code}): {captured.err}")
    return code, json.loads(captured.out)


def test_a_routine_retrain_registers_and_starts_a_rollout_then_does_nothing_without_new_data(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(shop, tmp_path, "{window: 365d, min_new_rows: 1000, auto_rollout: true}")
    code, first = _retrain(capsys, spec)
    assert (code, first["gate"]) == (0, "rollout_started"), first["reason"]
    assert first["candidate"] == 1
    assert first["previous"] is None
    assert first["window"] == {"start": "2024-12-31T00:00:00", "end": "2025-09-29T00:00:00"}
    assert first["rollout"]["candidate"] == 1
    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        version = registry.get(project.spec.name, 1)
        assert version.stage == "candidate"
        assert version.lineage["retrain"]["trigger"] == "cadence"
        assert version.training["spine_rows"] < 400 * 60  # the window, not the whole spine
    finally:
        registry.close()
    with Controller(project) as controller:
        assert controller.current().candidate == 1

    code, again = _retrain(capsys, spec)
    assert (code, again["gate"]) == (0, "no_new_data")
    assert again["new_rows"] == 0
    assert again["previous"] == 1
    assert again["candidate"] is None
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        assert [v.version for v in registry.list(project.spec.name)] == [1]
    finally:
        registry.close()


def test_a_candidate_worse_than_production_is_archived_and_never_rolled_out(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # production: every input, the whole spine; the candidate reads only last week's orders
    # and sessions (judged against a rule on the orders): it beats its baseline, not production
    spec = _spec(shop, tmp_path, "{on: [drift], auto_rollout: true}")
    whole = tmp_path / "whole.yaml"
    whole.write_text(spec.read_text())
    assert main(["train", "-f", str(whole), "--state-dir", str(tmp_path / ".taxiway")]) == 0
    spec.write_text(
        spec.read_text().replace(
            "  baseline_feature: customer_orders__order_count_30d",
            "  baseline_feature: customer_orders__order_count_7d\n"
            "  features: [customer_orders__order_count_7d, customer_sessions__session_count_7d, "
            "customer_sessions__pages_viewed_7d]",
        )
    )
    capsys.readouterr()
    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        registry.set_stage(project.spec.name, 1, "production", by="test")
    finally:
        registry.close()

    code, result = _retrain(capsys, spec, "--trigger", "drift:customer_orders")
    assert (code, result["gate"]) == (1, "worse_than_production"), result["reason"]
    assert result["production"] == 1
    assert result["candidate"] == 2
    scores = result["scores"]
    assert scores["production"] > scores["candidate"] > scores["baseline"]
    assert f"{scores['production']:.4g}" in result["reason"]
    assert result["rollout"] is None
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        candidate = registry.get(project.spec.name, 2)
        assert candidate.stage == "archived"
        assert candidate.lineage["retrain"]["trigger"] == "drift:customer_orders"
        assert candidate.lineage["retrain"]["production"] == 1
        assert "worse_than_production" in (registry.history(project.spec.name)[-1].note or "")
    finally:
        registry.close()
    with Controller(project) as controller:
        assert controller.store.latest(project.spec.name) is None


def test_a_required_sign_off_stops_at_candidate(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(shop, tmp_path, "{window: 365d, auto_rollout: true}", approvals=True)
    code, result = _retrain(capsys, spec)
    assert (code, result["gate"]) == (0, "candidate")
    assert "sign-off is required" in result["reason"]


def test_a_trigger_the_policy_does_not_list_is_refused(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(shop, tmp_path, "{on: [drift]}")
    code = main(["retrain", "-f", str(spec), "--as-of", AS_OF, "--trigger", "quality"])
    err = capsys.readouterr().err
    assert code != 0
    assert "retrain.on does not list 'quality'" in err


def test_a_source_that_fails_its_contract_stops_the_run_before_anything_is_built(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the orders' contract asks for more rows than the extract has (an `error` rule)
    spec = _spec(shop, tmp_path, "{auto_rollout: true}")
    (tmp_path / "contracts").unlink()
    shutil.copytree(shop.parent / "contracts", tmp_path / "contracts")
    orders = tmp_path / "contracts" / "orders.yaml"
    text = orders.read_text()
    assert "mustBeGreaterThan: 1000\n" in text
    orders.write_text(text.replace("mustBeGreaterThan: 1000\n", "mustBeGreaterThan: 100000000\n"))
    code = main(["retrain", "-f", str(spec), "--json", "--as-of", AS_OF])
    result = json.loads(capsys.readouterr().out)
    assert (code, result["gate"]) == (3, "contract")
    assert "orders" in result["reason"]
    assert result["candidate"] is None
    assert not (tmp_path / ".taxiway" / "training").exists()


@pytest.mark.parametrize(
    ("kill_at", "backend"),
    [
        ("training the candidate", "sqlite"),
        ("auditing the candidate", "sqlite"),
        pytest.param("auditing the candidate", "postgres", marks=pytest.mark.postgres),
    ],
)
def test_a_killed_retrain_leaves_no_half_registered_version(
    shop: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    kill_at: str,
    backend: str,
) -> None:
    # SIGKILL while the model trains (nothing registered yet) and while the registered
    # candidate is audited (registered, not yet judged): the registry stays consistent, the
    # unjudged candidate never reaches a rollout, and the next retrain registers the next one:
    # with min_new_rows > 0 it counts new rows against no unjudged version, and archives that
    # one (its process is gone) with a note
    policy = "{window: 365d, min_new_rows: 1, auto_rollout: true}"
    if backend == "postgres":
        monkeypatch.setenv("TW_KILLED_URL", request.getfixturevalue("postgres_url"))
        schema = f"killed_{uuid.uuid4().hex[:8]}"
        policy += f"\nregistry: {{kind: postgres, url: '${{TW_KILLED_URL}}', schema: {schema}}}"
    spec = _spec(shop, tmp_path, policy)
    command = [sys.executable, "-m", "taxiway", "retrain", "-f", str(spec), "--as-of", AS_OF]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as run:
        assert run.stderr is not None
        seen = []
        for line in run.stderr:
            seen.append(line)
            if kill_at in line:
                run.send_signal(signal.SIGKILL)
                break
        run.wait(60)
    assert run.returncode == -signal.SIGKILL, "".join(seen)

    project = Project.load(spec)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        versions = registry.list(project.spec.name)
    finally:
        registry.close()
    assert [v.version for v in versions] == ([1] if kill_at.startswith("auditing") else [])
    for version in versions:
        assert version.stage == "candidate"
        load_model(version.artifact_dir)  # every recorded version's files are whole
    if backend == "sqlite":
        with sqlite3.connect(project.state_dir / "registry.sqlite") as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Controller(project) as controller:
        assert controller.store.latest(project.spec.name) is None  # no rollout started

    code, again = _retrain(capsys, spec)
    assert (code, again["gate"]) == (0, "rollout_started"), again["reason"]
    assert again["candidate"] == len(versions) + 1
    assert again["previous"] is None  # the killed run's v1 is no baseline for new rows
    assert len(again["interrupted"]) == len(versions)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        recorded = registry.list(project.spec.name)
        notes = [e.note or "" for e in registry.history(project.spec.name) if e.version == 1]
    finally:
        registry.close()
    if versions:
        assert recorded[0].stage == "archived"
        assert notes[-1].startswith("interrupted: the retrain as of 2025-12-31")
        assert "v1, left unjudged by the retrain" in again["reason"]
        assert model_history(project)[0].gate == "interrupted"
        code, third = _retrain(capsys, spec)  # nothing new since v2, which its run judged
        assert (code, third["gate"], third["previous"]) == (0, "no_new_data", 2)
        assert third["interrupted"] == []
    folders = {p.name for p in Path(recorded[-1].artifact_dir).parent.iterdir() if p.name.isdigit()}
    assert folders == {str(v.version) for v in recorded}
