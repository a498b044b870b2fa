"""The promotion gate is shared with `taxiway models promote`, which needs `taxiway[train]`
only: importing it must not import the serving stack (the integration phase's HTTP client)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from taxiway.sprint import phases

# the serve extra's modules (src/taxiway/cli/extras.py), refused as a missing package would be
_PROBE = """
import importlib.abc, sys
HIDDEN = {"starlette", "uvicorn", "uvloop", "httptools", "prometheus_client", "httpx"}
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Hide())
import taxiway.sprint.gates
from taxiway.sprint.phases import NOT_EXERCISED, audit_checks, governance_checks
print(sorted(m for m in sys.modules if m.startswith("taxiway.sprint.phases.")))
"""


def test_the_gate_imports_without_the_serving_stack() -> None:
    found = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120
    )
    assert found.returncode == 0, found.stderr[-2000:]
    assert "taxiway.sprint.phases.integration" not in found.stdout


def test_every_public_name_of_phases_resolves_and_no_other() -> None:
    assert dir(phases) == sorted(phases.__all__)
    assert all(getattr(phases, name) is not None for name in phases.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = phases.nope
