"""`pip install taxiway` checks data; training and serving need extras, and say which.

The real CLI runs in a subprocess where the modules of the extras cannot be imported (a
``sys.meta_path`` finder refuses them, as a missing package would), and, marked slow, in a
fresh venv holding only the core requirements of pyproject.toml.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import venv
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from taxiway.cli.app import app
from taxiway.cli.extras import EXTRA_MODULES, INCLUDES, NEEDS, extra_of
from taxiway.errors import EXIT_NOT_INSTALLED

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
TRAIN_AND_SERVE = [*EXTRA_MODULES["train"], *EXTRA_MODULES["serve"], "scipy"]

# Runs taxiway's main() with the modules named in argv[1] unimportable; argv[2:] is the command.
# `probe` is a command added for the test that imports argv[2] inside it, as commands do.
HIDING = """
import importlib.abc, sys

HIDDEN = set(filter(None, sys.argv[1].split(",")))

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
from taxiway.cli.app import app, main

@app.command("probe")
def probe(module: str) -> None:
    __import__(module)

code = main(sys.argv[2:])
loaded = sorted({m.partition(".")[0] for m in sys.modules} & HIDDEN)
print("loaded:", ",".join(loaded), file=sys.stderr)
sys.exit(code)
"""

CSV = """\
order_id,customer_id,amount,ordered_at
1,10,5.0,2025-01-01 10:00:00
2,10,-3.0,2025-01-02 10:00:00
3,11,7.0,2025-01-02 10:00:00
"""

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
schema:
  - name: orders
    properties:
      - {name: order_id, logicalType: integer, required: true, unique: true}
      - {name: customer_id, logicalType: integer, required: true}
      - {name: amount, logicalType: number, logicalTypeOptions: {minimum: 0}}
      - {name: ordered_at, logicalType: timestamp}
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small project: one CSV source with a contract, one feature, a spine and a label."""
    folder = tmp_path_factory.mktemp("shop")
    (folder / "orders.csv").write_text(CSV)
    (folder / "orders.contract.yaml").write_text(CONTRACT)
    path = folder / "taxiway.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: shop
            sources:
              orders:
                kind: file
                path: orders.csv
                timestamp: ordered_at
                contract: orders.contract.yaml
            entities: {customer: customer_id}
            features:
              spend: {source: orders, entity: customer, aggregate: {total: sum(amount)}, windows: [30d]}
            spine: {source: orders}
            label: {name: again, kind: any_event, source: orders, entity: customer, horizon: 30d}
            """
        )
    )
    return path


def hidden(
    modules: list[str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI run with ``modules`` unimportable, in ``cwd`` (where `features build` writes);
    COLUMNS keeps every message on one line."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("TAXIWAY_STATE_DIR", None)
    return subprocess.run(
        [sys.executable, "-c", HIDING, ",".join(modules), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )


def test_check_runs_with_the_core_alone(spec: Path) -> None:
    done = hidden(TRAIN_AND_SERVE, "check", "-f", str(spec), cwd=spec.parent)
    assert done.returncode == 0, done.stderr
    assert "orders" in done.stdout
    assert "loaded: \n" in done.stderr, "no module of an extra was imported"


@pytest.mark.parametrize(
    "command",
    [["features", "build"], ["models", "list"], ["approve", "--list"], ["assess"]],
)
def test_the_other_core_commands_run_with_the_core_alone(
    spec: Path, tmp_path: Path, command: list[str]
) -> None:
    done = hidden(
        TRAIN_AND_SERVE, *command, "-f", str(spec), "--state-dir", str(tmp_path), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "internal error" not in done.stderr
    assert "Traceback" not in done.stderr
    assert "loaded: \n" in done.stderr, "no module of an extra was imported"


def test_help_lists_every_command_with_the_core_alone() -> None:
    done = hidden(TRAIN_AND_SERVE, "--help")
    assert done.returncode == 0, done.stderr
    for command in ("check", "features", "train", "models", "audit", "serve", "sprint"):
        assert re.search(rf"│ {command} ", done.stdout), command
    for command in ("approve", "assess", "runbook"):
        assert re.search(rf"│ {command} ", done.stdout), command
    assert re.search(r"runbook +Needs taxiway\[serve\], which is not installed\.", done.stdout)


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["train"], "train"),
        (["audit"], "train"),
        (["models", "promote", "1"], "train"),
        (["serve"], "serve"),
        (["sprint"], "serve"),
        (["runbook"], "serve"),
    ],
)
def test_a_command_names_the_extra_it_needs(spec: Path, command: list[str], extra: str) -> None:
    done = hidden(TRAIN_AND_SERVE, *command, "-f", str(spec), cwd=spec.parent)
    assert done.returncode == EXIT_NOT_INSTALLED, done.stderr
    name = " ".join(command[:2] if command[0] == "models" else command[:1])
    assert f"error: taxiway {name} needs taxiway[{extra}], which is not installed" in done.stderr
    assert f"fix: pip install 'taxiway[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_needs_serve_when_only_a_training_library_is_missing(spec: Path) -> None:
    """`serve` includes `train`: a missing LightGBM asks for taxiway[serve], which brings it."""
    done = hidden(["lightgbm"], "serve", "-f", str(spec), cwd=spec.parent)
    assert done.returncode == EXIT_NOT_INSTALLED
    assert "taxiway serve needs taxiway[serve], which is not installed (no lightgbm)" in done.stderr


def test_train_runs_when_only_serving_is_missing(spec: Path, tmp_path: Path) -> None:
    """The serving stack is not needed to train: with it hidden, `taxiway train` goes past the
    extras check, builds the training set, and stops on this tiny spec's lack of labelled rows."""
    args = ["train", "-f", str(spec), "--state-dir", str(tmp_path)]
    done = hidden(list(EXTRA_MODULES["serve"]), *args, cwd=tmp_path)
    assert "needs taxiway[" not in done.stderr
    assert "error: the training set has no rows" in done.stderr


def test_an_extras_module_missing_inside_a_command_names_its_extra() -> None:
    """A command that is not in NEEDS and meets a missing module still gets the message."""
    done = hidden(["onnxruntime"], "probe", "onnxruntime")
    assert done.returncode == EXIT_NOT_INSTALLED
    assert "taxiway probe needs taxiway[train], which is not installed (no onnxruntime)" in (
        done.stderr
    )


def test_a_missing_module_of_no_extra_is_a_bug_not_an_install() -> None:
    done = hidden([], "probe", "no_such_module_anywhere")
    assert done.returncode == 1
    assert "internal error: ModuleNotFoundError" in done.stderr


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~;\s]", name, maxsplit=1)[0]).lower()


def test_the_modules_of_each_extra_are_what_pyproject_installs() -> None:
    distributions = packages_distributions()
    extras = PROJECT["optional-dependencies"]
    for extra, modules in EXTRA_MODULES.items():
        from_modules = {_normal(d) for m in modules for d in distributions.get(m, [m])}
        declared = {_normal(r) for r in extras[extra]} - {"taxiway"}
        assert from_modules == declared, extra
        included = {
            part
            for r in extras[extra]
            if r.startswith("taxiway[")
            for part in r.removeprefix("taxiway[").partition("]")[0].split(",")
        }
        assert included == set(INCLUDES.get(extra, ())), extra
    assert set(INCLUDES["all"]) == {"train", "serve", "recommend", "lineage"}
    assert extra_of("lightgbm.basic") == "train"


def test_every_command_in_needs_exists() -> None:
    import typer.main

    group = typer.main.get_command(app)
    for name in NEEDS:
        command = group
        for word in name.split():
            command = command.commands[word]  # type: ignore[attr-defined]
        assert command.name == name.split()[-1]


# The slow proof: a venv with the core requirements only, no access to the dev venv's packages.


@pytest.fixture(scope="session")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with taxiway (a copy of src/, built with --no-deps) and pyproject's core
    requirements, from the package index pip is configured with."""
    folder = tmp_path_factory.mktemp("core-venv")
    venv.create(folder / "venv", with_pip=True)
    python = folder / "venv" / "bin" / "python"
    source = folder / "taxiway"
    source.mkdir()
    for item in ("pyproject.toml", "README.md"):
        (source / item).write_bytes((ROOT / item).read_bytes())
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *PROJECT["dependencies"]], check=True, timeout=600)
    subprocess.run([*pip, "--no-deps", str(source)], check=True, timeout=600)
    return folder / "venv" / "bin"


@pytest.mark.slow
def test_in_a_venv_with_the_core_only_check_works_and_train_names_its_extra(
    core_venv: Path, spec: Path
) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("TAXIWAY_STATE_DIR", None)
    for module in ("lightgbm", "sklearn", "scipy", "onnxruntime", "pandas", "starlette"):
        found = subprocess.run(
            [str(core_venv / "python"), "-c", f"import {module}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert found.returncode != 0, f"{module} is installed in the core venv"

    def taxiway(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(core_venv / "taxiway"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=spec.parent,
            check=False,
        )

    check = taxiway("check", "-f", str(spec))
    assert check.returncode == 0, check.stderr
    assert "orders" in check.stdout
    train = taxiway("train", "-f", str(spec))
    assert train.returncode == EXIT_NOT_INSTALLED, train.stderr
    assert "taxiway train needs taxiway[train], which is not installed" in train.stderr
    assert "fix: pip install 'taxiway[train]'" in train.stderr
    sprint = taxiway("sprint", "-f", str(spec))
    assert sprint.returncode == EXIT_NOT_INSTALLED, sprint.stderr
    assert "fix: pip install 'taxiway[serve]'" in sprint.stderr
