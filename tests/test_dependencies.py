"""docs/dependencies.md matches the code: every third-party package src/taxiway imports is
explained there, and every package the library declares is imported or says why not."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "dependencies.md").read_text()
# the library's own requirements: the core and the extras src/taxiway uses (the others serve
# examples/, bench/ and development)
LIBRARY_EXTRAS = ("postgres", "redis", "xgboost", "mlflow")
# declared, never imported by taxiway itself; docs/dependencies.md says why
NOT_IMPORTED = {
    "onnx": "the format the converters write and the runtime reads, pinned with them",
    "uvloop": "uvicorn's event loop, named in its config",
    "httptools": "uvicorn's HTTP parser, named in its config",
}


def imported_modules() -> set[str]:
    """The top-level third-party modules imported anywhere in src/taxiway."""
    found: set[str] = set()
    for path in (ROOT / "src" / "taxiway").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return found - set(sys.stdlib_module_names) - {"taxiway"}


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in LIBRARY_EXTRAS:
        requirements += project["optional-dependencies"][extra]
    return {_normal(re.split(r"[\[<>=!~;\s]", r, maxsplit=1)[0]) for r in requirements}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _in_doc(*names: str) -> bool:
    text = DOC.lower()
    return any(
        _normal(name) in text or name.lower() in text or name.replace("_", "-") in text
        for name in names
    )


def test_every_imported_package_is_explained() -> None:
    distributions = packages_distributions()
    unexplained = [
        module
        for module in sorted(imported_modules())
        if not _in_doc(module, *distributions.get(module, []))
    ]
    assert unexplained == [], "say in docs/dependencies.md why each is used"


def test_every_declared_package_is_imported_or_says_why_not() -> None:
    distributions = packages_distributions()
    imported = {
        _normal(dist)
        for module in imported_modules()
        for dist in distributions.get(module, [module])
    }
    unused = sorted(declared() - imported - set(NOT_IMPORTED))
    assert unused == [], "drop them from pyproject.toml, or say in NOT_IMPORTED and the doc why"
    assert all(_in_doc(name) for name in NOT_IMPORTED)
