"""The security tests' trained shop, and the session's recommender world (``trained_world``,
tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.serving.conftest import trained_shop


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained shop of the security tests' own, like tests/serving's: these tests serve it
    and write into its state (keys, logs), which tests/serving reads after them."""
    return trained_shop(tmp_path_factory.mktemp("security-shop"))
