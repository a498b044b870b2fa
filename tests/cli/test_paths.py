"""Paths a user gives that cannot be written: a message naming the path, never "internal error"."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxiway.cli import main

RETAIL = Path(__file__).parents[2] / "examples" / "retail" / "taxiway.yaml"


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "not-a-folder"
    path.write_text("I am a file")
    return path


def test_runbooks_to_an_unwritable_folder_name_the_path(
    a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = a_file / "runbooks"
    assert main(["runbook", "-f", str(RETAIL), "--out", str(target)]) == 1
    err = capsys.readouterr().err
    assert "internal error" not in err
    assert str(target) in err.replace("\n", "")
    assert "fix:" in err


def test_the_sprint_refuses_an_unwritable_report_folder_before_any_work(
    a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sprint", "-f", str(RETAIL), "--report", str(a_file / "report")]) == 1
    out, err = capsys.readouterr()
    assert "cannot write the sprint's report to" in err
    assert "--report" in err
    assert "Data access" not in out  # no phase ran: the refusal came first
