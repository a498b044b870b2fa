"""The optional-library helper of tests/conftest.py: a laptop skips with the reason, CI fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import in_ci, require

MISSING = "taxiway_test_no_such_library"


@pytest.fixture(params=[False, True], ids=["laptop", "ci"])
def ci(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    return bool(request.param)


def test_an_installed_library_is_imported_and_returned(ci: bool) -> None:
    assert require("json", reason="always there") is json


def test_a_missing_library_skips_on_a_laptop_and_fails_in_ci(ci: bool) -> None:
    assert in_ci() is ci
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome) as raised:
        require(f"{MISSING}.sub", reason="needed for the Spark engine")
    message = str(raised.value)
    assert f"{MISSING}.sub is not installed; needed for the Spark engine" in message
    assert ("CI must install it" in message) is ci


def test_an_installed_library_that_fails_to_import_is_an_error_everywhere(
    ci: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "taxiway_test_broken_library.py").write_text(f"import {MISSING}\n")
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(ModuleNotFoundError, match=MISSING):
        require("taxiway_test_broken_library", reason="a broken install is not a skip")


def test_the_projects_own_modules_are_never_optional(ci: bool) -> None:
    with pytest.raises(ValueError, match=r"import taxiway\.serving\.log plainly"):
        require("taxiway.serving.log", reason="not optional")


def test_no_test_or_module_skips_through_importorskip_any_more() -> None:
    root = Path(__file__).resolve().parents[1]
    needle = "importor" + "skip("  # split, so this file does not match itself
    users = [
        str(path.relative_to(root))
        for folder in ("tests", "src")
        for path in sorted((root / folder).rglob("*.py"))
        if needle in path.read_text()
    ]
    assert users == [], "use tests.conftest.require instead"
