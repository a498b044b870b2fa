"""`make demo-blocked` (examples/blocked/demo.py): it sets up the PostgreSQL role itself, so the
debrief shows the GRANT case; with no server it says so and still runs.

The demo runs as the Makefile runs it, a script in a subprocess with stdout a pipe, on a copy
of the example in a temporary folder (small simulated retail data), against a database made for
the test session, so neither the repo nor the server's `test` database is touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tests.conftest import load_script, retail_shop

from taxiway.cli import main

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ROOT / "examples" / "blocked"
GRANT = "GRANT SELECT ON crm.accounts TO ml_reader;"
NOWHERE = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1


def _setup_postgres() -> ModuleType:
    return load_script("blocked_setup", BLOCKED / "setup_postgres.py")


def _example(folder: Path) -> Path:
    """``folder/retail`` (small data) and ``folder/blocked`` (spec, contracts, demo scripts),
    laid out as in examples/; returns the blocked spec."""
    retail_shop(folder / "retail", customers=400)
    shutil.copytree(BLOCKED, folder / "blocked", ignore=shutil.ignore_patterns("data", ".*"))
    return folder / "blocked" / "taxiway.yaml"


def _demo(spec: Path, env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    """The Makefile's command line, run on ``spec`` with no terminal and no COLUMNS."""
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "BLOCKED_CRM_URL")}
    return subprocess.run(
        [sys.executable, str(spec.parent / "demo.py"), "-f", str(spec), *options],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=600,
        check=False,
    )


def test_the_makefile_runs_the_demo_script() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo-blocked:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None
    assert "examples/blocked/demo.py" in recipe.group(1)


@pytest.mark.slow
@pytest.mark.postgres
def test_the_demo_sets_up_the_role_and_the_debrief_names_the_grant(
    tmp_path: Path, postgres_url: str
) -> None:
    spec = _example(tmp_path)
    report = tmp_path / "report"
    env = {"BLOCKED_ADMIN_URL": postgres_url, "TAXIWAY_STATE_DIR": str(tmp_path / "state")}
    done = _demo(spec, env, "--report", str(report), "--load-seconds", "1")
    assert done.returncode == 1, done.stderr  # not deployed, and no error
    assert "the role ml_reader may log in but not read crm.accounts" in done.stdout
    debrief = json.loads((report / "report.json").read_text())
    (crm,) = [b for b in debrief["blockers"] if b["phase"] == "data_access"]
    assert crm["fix"] == GRANT
    assert GRANT in (report / "report.md").read_text()
    # stdout is a pipe: each fix is printed on one line, so it can be pasted as it is
    sign_off = next(b for b in debrief["blockers"] if b["title"].startswith("the security"))
    assert "taxiway approve -f" in sign_off["fix"]
    assert f"fix: {sign_off['fix']}" in [line.strip() for line in done.stdout.splitlines()]


def test_without_postgres_the_demo_says_so_and_the_blocker_is_the_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, note = _setup_postgres().prepare_crm({"BLOCKED_ADMIN_URL": NOWHERE})
    assert url == "postgresql://ml_reader@127.0.0.1:1/test"
    assert note.startswith("crm: no PostgreSQL to set up at 127.0.0.1:1/test")
    assert "not the missing GRANT" in note
    assert "BLOCKED_ADMIN_URL" in note
    # the sprint then reads that URL: a data-access blocker on the connection, with its fix
    spec = _example(tmp_path)
    monkeypatch.setenv("BLOCKED_CRM_URL", url)
    monkeypatch.setenv("TAXIWAY_STATE_DIR", str(tmp_path / "state"))
    assert main(["check", "-f", str(spec), "--as-of", "2025-12-31"]) == 3
    out = capsys.readouterr().out
    assert "block crm · access.connect" in out
    assert "cannot connect to PostgreSQL" in out


def test_a_password_in_the_admin_url_is_never_shown() -> None:
    admin = "postgresql://postgres:s3cr3t-pw@127.0.0.1:1/test"
    url, note = _setup_postgres().prepare_crm({"BLOCKED_ADMIN_URL": admin})
    assert "s3cr3t-pw" not in url
    assert "s3cr3t-pw" not in note


def test_a_crm_url_from_the_environment_is_kept_and_not_shown() -> None:
    given = "postgresql://analyst:hunter2@db.internal:5432/crm"
    url, note = _setup_postgres().prepare_crm(
        {"BLOCKED_CRM_URL": given, "BLOCKED_ADMIN_URL": NOWHERE}
    )
    assert url == given
    assert "hunter2" not in note
    assert "db.internal" not in note
