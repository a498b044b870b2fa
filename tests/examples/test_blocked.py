"""examples/blocked: the sprint names each common failure with its fix and does not deploy.

One real sprint runs on a copy of the example in a temporary folder (small simulated retail
data beside it, the leaking table written by leak.py), so nothing is written into the repo.
With PostgreSQL up (always in CI), setup_postgres.py creates the CRM table and a role without
SELECT on it, and the data-access blocker is the exact GRANT; without it, the blocker is the
unreachable server.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest
from tests.conftest import IN_CI, PG_HOST, PG_PORT, load_script, retail_shop, service_up

from taxiway.cli import main

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BLOCKED = EXAMPLES / "blocked"
AS_OF = "2025-12-31"


def _script(name: str) -> ModuleType:
    """Import one of the example's scripts by path (the examples are scripts, not a package)."""
    return load_script(f"blocked_{name}", BLOCKED / f"{name}.py")


def _example(folder: Path) -> Path:
    """``folder/retail`` (small simulated data, contracts) and ``folder/blocked`` (the spec,
    its contracts, the leaking table), laid out as in examples/; returns the blocked spec."""
    retail_shop(folder / "retail", customers=400)
    target = folder / "blocked"
    target.mkdir()
    shutil.copy(BLOCKED / "taxiway.yaml", target / "taxiway.yaml")
    shutil.copytree(BLOCKED / "contracts", target / "contracts")
    _script("leak").write_account_status(folder / "retail" / "data", target / "data")
    return target / "taxiway.yaml"


@pytest.fixture(scope="module")
def crm_url(request: pytest.FixtureRequest) -> str | None:
    """The ml_reader URL of a database prepared by setup_postgres.py, or None without
    PostgreSQL (a failure in CI, where the server must be up)."""
    if not service_up(PG_HOST, PG_PORT):
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}; CI must start it")
        return None
    database: str = request.getfixturevalue("postgres_url")
    url: str = _script("setup_postgres").setup(database)
    return url


@pytest.fixture(scope="module")
def sprint(
    tmp_path_factory: pytest.TempPathFactory, crm_url: str | None
) -> tuple[int, dict[str, Any], Path]:
    """The exit code, report.json and report folder of one sprint on the example."""
    folder = tmp_path_factory.mktemp("blocked")
    spec = _example(folder)
    report = folder / "report"
    # without a server there, the URL still names it: the blocker is the unreachable server
    unreachable = f"postgresql://ml_reader@{PG_HOST}:{PG_PORT}/taxiway"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BLOCKED_CRM_URL", crm_url or unreachable)
        env.setenv("TAXIWAY_STATE_DIR", str(folder / "state"))
        code = main(["sprint", "-f", str(spec), "--as-of", AS_OF, "--report", str(report),
                     "--load-seconds", "1"])  # fmt: skip
    return code, json.loads((report / "report.json").read_text()), report


def _blockers(report: dict[str, Any], phase: str) -> list[dict[str, Any]]:
    return [b for b in report["blockers"] if b["phase"] == phase]


def test_it_does_not_deploy_and_says_fix_the_blockers_first(
    sprint: tuple[int, dict[str, Any], Path],
) -> None:
    code, report, _ = sprint
    assert code == 1
    assert report["deployed"] is False
    assert report["path"] in (2, 3)
    assert f"path {report['path']}" in report["verdict"].lower()
    assert all(b["critical_path"] and b["fix"].strip() for b in report["blockers"])


def test_the_source_the_role_cannot_read_is_a_data_access_blocker_with_its_fix(
    sprint: tuple[int, dict[str, Any], Path], crm_url: str | None
) -> None:
    _, report, _ = sprint
    (crm,) = _blockers(report, "data_access")
    assert crm["title"].startswith("crm: ") or crm["title"].startswith("source `crm`")
    if crm_url is not None:
        assert "ml_reader has no SELECT on table crm.accounts" in crm["title"]
        assert crm["fix"] == "GRANT SELECT ON crm.accounts TO ml_reader;"
        assert crm["category"] == "organizational"  # someone with the right must grant it
    else:
        assert "cannot connect to PostgreSQL" in crm["evidence"]
        assert "BLOCKED_CRM_URL" in crm["fix"]
    # no feature reads crm, so the blocker there does not stop training
    checks = {c["name"]: c for p in report["phases"] for c in p["checks"]}
    assert checks["training set"]["status"] == "pass"
    assert "model beats the baseline" in checks


def test_the_leaking_input_is_a_model_development_blocker_with_its_fix(
    sprint: tuple[int, dict[str, Any], Path],
) -> None:
    _, report, _ = sprint
    leaks = [b for b in _blockers(report, "model_development") if b["title"].startswith("leakage")]
    assert [b["title"] for b in leaks] == ["leakage: account__status"]
    # the owner and the action are reported once, by the deployment phase, not by the audit
    assert not [b for b in _blockers(report, "model_development") if "coverage" in b["title"]]
    (leak,) = leaks
    assert "source `account_status`, which has no event time" in leak["evidence"]
    assert "give sources.account_status a `timestamp:`" in leak["fix"]


def test_no_owner_no_action_and_each_missing_sign_off_block_the_deployment(
    sprint: tuple[int, dict[str, Any], Path],
) -> None:
    _, report, _ = sprint
    deployment = {b["title"]: b for b in _blockers(report, "deployment")}
    assert set(deployment) == {
        "nobody owns the predictions",
        "no one acts on the predictions",
        "the security sign-off is missing",
        "the privacy sign-off is missing",
    }
    assert "`owner: <team>`" in deployment["nobody owns the predictions"]["fix"]
    assert "`governance.action:`" in deployment["no one acts on the predictions"]["fix"]
    for role in ("security", "privacy"):
        fix = deployment[f"the {role} sign-off is missing"]["fix"]
        assert "taxiway approve" in fix
        assert f"--role {role}" in fix
    assert all(b["category"] == "organizational" for b in deployment.values())


def test_the_written_debrief_names_each_blocker_with_its_fix(
    sprint: tuple[int, dict[str, Any], Path],
) -> None:
    _, report, folder = sprint
    markdown = (folder / "report.md").read_text()
    for blocker in report["blockers"]:
        assert blocker["title"] in markdown
        assert blocker["fix"] in markdown


def test_leak_writes_the_current_status_idempotently(tmp_path: Path) -> None:
    data = tmp_path / "retail" / "data"
    retail_shop(tmp_path / "retail", customers=150)
    leak = _script("leak")
    rows = leak.write_account_status(data, tmp_path / "a")
    first = (tmp_path / "a" / "account_status.parquet").read_bytes()
    assert leak.write_account_status(data, tmp_path / "a") == rows
    assert (tmp_path / "a" / "account_status.parquet").read_bytes() == first
    # closed exactly when the customer has not ordered in the data's last 60 days
    orders, status = data / "orders.parquet", tmp_path / "a" / "account_status.parquet"
    wrong = duckdb.execute(
        f"""WITH last AS (SELECT customer_id, max(ordered_at) AS at FROM '{orders}'
                          WHERE customer_id IS NOT NULL GROUP BY ALL),
                 cut AS (SELECT max(ordered_at) - INTERVAL 60 DAY AS at FROM '{orders}')
            SELECT count(*) FROM '{status}' s JOIN last USING (customer_id), cut
            WHERE (s.status = 'closed') <> (last.at < cut.at)"""
    ).fetchall()
    assert wrong == [(0,)]
    customers = duckdb.execute(f"SELECT count(*) FROM '{data / 'customers.parquet'}'").fetchall()
    assert customers == [(rows,)]
