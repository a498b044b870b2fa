"""`taxiway models promote` checks the gate of the sprint's deployment phase: a version with an
audit blocker or a missing sign-off is refused with each blocker and its fix; `--force --reason`
promotes it anyway and records who, why and what was overridden in the approvals log.

One tiny project is trained once per module (a logistic model on 200 simulated customers, with
the leak of examples/blocked: `latest:` on a source without event time); each test works on its
own copy of the state folder.
"""

from __future__ import annotations

import getpass
import json
import random
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxiway.cli import main
from taxiway.models.registry import open_registry
from taxiway.spec.project import Project
from taxiway.sprint.approvals import (
    OVERRIDE_ROLE,
    missing_approvals,
    overrides,
    read_approvals,
    record_approval,
)

SPEC = """\
name: tiny_churn
sources:
  orders: {kind: file, path: orders.parquet, timestamp: ordered_at}
  status: {kind: file, path: status.parquet}
entities: {customer: customer_id}
features:
  orders: {source: orders, entity: customer, aggregate: {n: count(*), spend: sum(amount)}, windows: [30d]}
  account: {source: status, entity: customer, latest: [status]}
spine: {every: 14d, start: 2024-02-01, end: 2024-10-01, source: orders}
label: {name: churned, kind: no_event, source: orders, entity: customer, horizon: 30d}
model: {algorithm: logistic}
governance:
  approvals: [security]
"""


def _shop(folder: Path) -> None:
    """Orders of 200 customers over 2024, and each one's account status as exported at the end
    of the year (`closed` after two months without an order): the outcome, leaked."""
    rng = random.Random(7)
    start, end = datetime(2024, 1, 1), datetime(2024, 12, 31)
    orders, status = [], []
    for customer in range(1, 201):
        every = rng.choice([3, 10, 40])
        stop = start + timedelta(days=rng.uniform(60, 400))
        t = last = start + timedelta(days=rng.random() * 20)
        while t < min(stop, end):
            orders.append({"customer_id": customer, "ordered_at": t, "amount": rng.uniform(5, 80)})
            last = t
            t += timedelta(days=rng.expovariate(1 / every))
        closed = last < end - timedelta(days=60)
        status.append({"customer_id": customer, "status": "closed" if closed else "active"})
    pq.write_table(pa.Table.from_pylist(orders), folder / "orders.parquet")
    pq.write_table(pa.Table.from_pylist(status), folder / "status.parquet")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spec of the tiny project, with version 1 trained in ``<folder>/state``."""
    folder = tmp_path_factory.mktemp("tiny")
    _shop(folder)
    spec = folder / "taxiway.yaml"
    spec.write_text(SPEC)
    assert main(["train", "-f", str(spec), "--state-dir", str(folder / "state"), "--json"]) in (
        0,
        1,  # 1: does not beat the baseline; the version is registered all the same
    )
    return spec


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Project:
    """The trained project on a copy of its state folder."""
    shutil.copytree(trained.parent / "state", tmp_path / "state")
    return Project.load(trained, tmp_path / "state")


def _promote(project: Project, *extra: str) -> int:
    args = ["models", "promote", "1", "-f", str(project.spec_path)]
    return main([*args, "--state-dir", str(project.state_dir), *extra])


def _stage(project: Project) -> str:
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        return registry.get(project.spec.name, 1).stage
    finally:
        registry.close()


def _history_notes(project: Project) -> list[str | None]:
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        return [e.note for e in registry.history(project.spec.name) if e.to_stage == "production"]
    finally:
        registry.close()


def test_a_leaking_unsigned_version_is_refused_with_each_blocker_and_its_fix(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _promote(project) == 1
    err = capsys.readouterr().err
    assert "tiny_churn v1 not promoted" in err
    # the audit's blocker, the missing sign-off and the undeclared owner, each with its fix
    assert "leakage: account__status" in err
    assert "give sources.status a `timestamp:`" in err
    assert "the security sign-off is missing" in err
    assert "--role security" in err
    assert "nobody owns the predictions" in err
    assert "--force --reason" in err
    assert "Traceback" not in err
    assert _stage(project) == "candidate"
    assert read_approvals(project) == []


def test_a_sign_off_is_one_blocker_less(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    record_approval(project, "security", "Sam Reviewer")
    assert _promote(project) == 1
    err = capsys.readouterr().err
    assert "the security sign-off is missing" not in err
    assert "leakage: account__status" in err
    assert _stage(project) == "candidate"


@pytest.mark.parametrize(
    "extra", [("--force",), ("--force", "--reason", "  "), ("--reason", "an incident")]
)
def test_force_and_reason_go_together(
    project: Project, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...]
) -> None:
    assert _promote(project, *extra) == 2
    assert "--reason" in capsys.readouterr().err
    assert _stage(project) == "candidate"


def test_force_with_a_reason_promotes_and_records_who_why_and_what(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = "incident 42: the production version scores NaN"
    assert _promote(project, "--force", "--reason", reason, "--by", "Ann Lee") == 0
    out = capsys.readouterr().out
    assert "gate overridden by Ann Lee" in out
    assert _stage(project) == "production"
    [record] = overrides(project)  # read_approvals verified the chain
    assert (record.role, record.by) == (OVERRIDE_ROLE, "Ann Lee")
    assert record.note is not None
    assert "promoted tiny_churn v1 to production" in record.note
    assert f"reason: {reason}" in record.note
    for overridden in ("leakage: account__status", "the security sign-off is missing"):
        assert overridden in record.note
    # an override is not a sign-off
    assert missing_approvals(project) == ["security"]
    [note] = _history_notes(project)
    assert note is not None
    assert "forced over" in note
    assert reason in note


def test_the_override_names_you_without_by(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _promote(project, "--force", "--reason", "demo day") == 0
    capsys.readouterr()
    [record] = overrides(project)
    assert record.by == getpass.getuser()
    lines = (project.state_dir / "governance" / "approvals.jsonl").read_text().splitlines()
    logged: dict[str, Any] = json.loads(lines[-1])
    assert logged["role"] == OVERRIDE_ROLE
    assert logged["hash"] == record.hash
