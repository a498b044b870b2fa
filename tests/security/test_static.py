"""bandit over src/taxiway finds nothing: each finding is fixed, or suppressed on its own line
with ``# nosec <id>``, or skipped for the project in pyproject's ``[tool.bandit]`` (B101, B608);
docs/security.md says why per check. `make security` runs the same."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bandit_finds_nothing_in_the_source() -> None:
    with warnings.catch_warnings():  # bandit's import warns about a setuptools argument
        warnings.simplefilter("ignore", DeprecationWarning)
        require("bandit", reason="the dev extra brings it")
    done = subprocess.run(
        [sys.executable, "-m", "bandit", "-c", "pyproject.toml", "-r", "src", "-q", "-f", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(done.stdout)
    findings = [
        f"{r['filename']}:{r['line_number']}: {r['test_id']} {r['issue_text']}"
        for r in report["results"]
    ]
    assert findings == []
    assert report["errors"] == []
    assert report["metrics"]["_totals"]["loc"] > 10_000  # it read the source
