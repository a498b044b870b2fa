"""`taxiway dashboard` as a user runs it: a page over a saved report or the log, clear errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.serving.dashboard_fixture import RETAIL_SPEC, dashboard_server, write_report

from taxiway.cli import main


def test_it_serves_a_saved_report(tmp_path: Path) -> None:
    saved = write_report(tmp_path)
    args = ["-f", str(RETAIL_SPEC), "--state-dir", str(tmp_path / "state"), "--report", str(saved)]
    with dashboard_server(*args, cwd=tmp_path) as url, httpx.Client(base_url=url) as client:
        data = client.get("/dashboard/data.json").json()
        page = client.get("/dashboard")
    assert data["monitor"]["status"] == "ok"
    assert data["monitor"]["report"]["features"][0]["status"] == "drift"
    assert data["live"]["model"] == "retail_churn"
    assert page.status_code == 200
    assert 'id="features-table"' in page.text
    log = next(tmp_path.glob("dashboard-*.log")).read_text()
    assert f"dashboard of retail_churn on {url}/dashboard" in log


def test_without_a_version_in_production_it_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["dashboard", "-f", str(RETAIL_SPEC), "--state-dir", str(tmp_path)])
    assert code != 0
    err = capsys.readouterr().err
    assert "no version of retail_churn is in production, so there is nothing to monitor" in err
    assert "--model-version" in err
    assert "Traceback" not in err


def test_a_file_that_is_not_a_report_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "monitor.json"
    bad.write_text("[]")
    args = ["dashboard", "-f", str(RETAIL_SPEC), "--state-dir", str(tmp_path), "--report", str(bad)]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "is not a monitor report (no `features` list)" in err
    assert "taxiway monitor --out DIR" in err


def test_help_names_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--port", "--host", "--interval", "--model-version", "--report"):
        assert option in out
