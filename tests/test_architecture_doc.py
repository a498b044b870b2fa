"""docs/architecture.md describes today's code: its package listing names every package and
module in src/taxiway, and names no file that is not there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "taxiway"


def listing() -> str:
    """The ```text block under "## Packages"."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    section = doc[doc.index("## Packages") :]
    return section[section.index("```text") : section.index("```", section.index("```text") + 3)]


def test_every_package_and_module_is_listed() -> None:
    text = listing()
    files = set(re.findall(r"[A-Za-z0-9_]+\.py\b", text))
    packages = [p for p in sorted(SRC.rglob("*")) if p.is_dir() and (p / "__init__.py").exists()]
    missing = [str(p.relative_to(SRC)) for p in packages if p != SRC and f"{p.name}/" not in text]
    missing += [
        str(path.relative_to(SRC))
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "__init__.py" and path.name not in files
    ]
    assert missing == [], "add them to the package listing of docs/architecture.md"


def test_every_listed_file_exists() -> None:
    present = {path.name for path in SRC.rglob("*.py")}
    listed = set(re.findall(r"[A-Za-z0-9_]+\.py\b", listing()))
    assert sorted(listed - present) == []
