"""docs/dependencies.md matches the code: every third-party package src/taxiway imports is
explained there, and every package the library declares is imported or says why not; each
package sits in the doc's section of its place in pyproject (the core or its extra)."""

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
LIBRARY_EXTRAS = (
    "train",
    "serve",
    "recommend",
    "postgres",
    "redis",
    "stream",
    "spark",
    "xgboost",
    "mlflow",
    "lineage",
)
# the doc's section for the core and for each extra that the core held before the split
SECTIONS = {"core": "## Core", "train": "## train", "serve": "## serve"}
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


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(part: str) -> set[str]:
    """The packages ``part`` of pyproject declares (``core`` or an extra), without taxiway's
    own extras that it includes (``taxiway[train]``)."""
    listed = PROJECT["dependencies"] if part == "core" else PROJECT["optional-dependencies"][part]
    names = {_normal(re.split(r"[\[<>=!~;\s]", r, maxsplit=1)[0]) for r in listed}
    return names - {"taxiway"}


def declared() -> set[str]:
    return set().union(*(requirements(part) for part in ("core", *LIBRARY_EXTRAS)))


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


def _section(heading: str) -> str:
    start = DOC.index(f"\n{heading}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else len(DOC)].lower()


def _named(name: str, text: str) -> bool:
    """Whether ``text`` names the package ``name`` as a word (`ruamel.yaml` for ruamel-yaml)."""
    pattern = "[-_.]".join(re.escape(part) for part in name.split("-"))
    return re.search(rf"(?<![\w.-]){pattern}(?![\w-])", text) is not None


def test_each_package_is_explained_in_the_section_of_its_extra() -> None:
    misplaced = {
        part: sorted(name for name in requirements(part) if not _named(name, _section(heading)))
        for part, heading in SECTIONS.items()
    }
    assert misplaced == {part: [] for part in SECTIONS}, "explain it in the section of its part"


def test_the_core_holds_no_ml_or_serving_package() -> None:
    """`pip install taxiway` is for checking data (issue 14): the ML and serving stacks are
    extras, and scipy is required only by `recommend` (implicit's sparse matrices): the
    classifier's path needs none (the linear form's logistic link is numpy)."""
    heavy = {"lightgbm", "scikit-learn", "onnx", "onnxruntime", "pandas", "starlette", "uvicorn"}
    assert requirements("core") & heavy == set()
    assert [part for part in ("core", *LIBRARY_EXTRAS) if "scipy" in requirements(part)] == [
        "recommend"
    ]


def test_the_readme_commands_install_everything() -> None:
    """`make demo` installs `.[examples]` and `make test` `.[dev]`: both must bring all."""
    extras = PROJECT["optional-dependencies"]
    assert any(r.startswith("taxiway[all]") for r in extras["examples"])
    assert any(r.startswith("taxiway[") and "examples" in r for r in extras["dev"])
    assert extras["all"] == ["taxiway[train,serve,recommend,lineage]"]
