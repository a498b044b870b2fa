"""The retrain's exports are valid for their schedulers: the crontab line and the CronJob's
schedule by croniter, the CronJob by parsing and its required fields (no Kubernetes schema
validator installs here: kubeconform is a Go binary), the Airflow DAG by ``ast`` and its
imports (Airflow itself is too heavy to install for a test)."""

from __future__ import annotations

import ast
import itertools
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from tests.conftest import require

from taxiway.cli import main
from taxiway.errors import SpecError
from taxiway.rollout.exports import (
    airflow_dag,
    cron_line,
    cron_schedule,
    k8s_cronjob,
    retrain_command,
)
from taxiway.spec.project import Project

RETAIL = Path(__file__).resolve().parents[2] / "examples" / "retail" / "taxiway.yaml"
_DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _project(tmp_path: Path, every: str) -> Project:
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(f"{RETAIL.read_text()}\nretrain: {{every: {every}}}\n")
    return Project.load(spec, tmp_path / "state")


def _spacing(schedule: str) -> set[timedelta]:
    croniter = require("croniter", reason="it checks the cron schedules").croniter
    assert croniter.is_valid(schedule), schedule
    runs = croniter(schedule, datetime(2026, 1, 1, tzinfo=UTC))
    times = [runs.get_next(datetime) for _ in range(6)]
    return {b - a for a, b in itertools.pairwise(times)}


@pytest.mark.parametrize("every", ["1m", "15m", "30m", "1h", "6h", "12h", "1d", "7d"])
def test_the_cron_schedule_runs_at_the_cadence(every: str, tmp_path: Path) -> None:
    project = _project(tmp_path, every)
    assert project.spec.retrain is not None
    assert _spacing(cron_schedule(project.spec.retrain.every)) == {project.spec.retrain.every}


@pytest.mark.parametrize("every", ["3d", "7m", "5h", "90m", "14d", "45s"])
def test_a_cadence_cron_cannot_say_is_refused_with_the_fix(every: str, tmp_path: Path) -> None:
    project = _project(tmp_path, every)
    assert project.spec.retrain is not None
    with pytest.raises(SpecError, match="has no cron schedule") as caught:
        cron_schedule(project.spec.retrain.every)
    assert caught.value.fix is not None
    assert "taxiway run" in caught.value.fix


def test_the_crontab_line_parses_and_runs_the_retrain(tmp_path: Path) -> None:
    project = _project(tmp_path, "6h")
    line = cron_line(project)
    fields = line.split(" ", 5)
    assert _spacing(" ".join(fields[:5])) == {timedelta(hours=6)}
    command = shlex.split(fields[5])
    expected = retrain_command(project)
    assert command == [*expected, ">>", str(project.state_dir / "retrain.log"), "2>&1"]


def test_the_cronjob_has_what_kubernetes_requires(tmp_path: Path) -> None:
    project = _project(tmp_path, "1d")
    manifest = YAML(typ="safe").load(k8s_cronjob(project, image="registry.example/tw:1"))
    assert manifest["apiVersion"] == "batch/v1"
    assert manifest["kind"] == "CronJob"
    name = manifest["metadata"]["name"]
    assert len(name) <= 52  # a CronJob name: 52 characters at most
    assert _DNS_1123.fullmatch(name), name
    spec = manifest["spec"]
    assert _spacing(spec["schedule"]) == {timedelta(days=1)}
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in {"Never", "OnFailure"}
    [container] = pod["containers"]
    assert container["image"] == "registry.example/tw:1"
    assert _DNS_1123.fullmatch(container["name"])
    assert container["command"] == retrain_command(
        project, spec="/spec/taxiway.yaml", state="/state"
    )


def test_the_airflow_dag_parses_and_imports_only_airflow(tmp_path: Path) -> None:
    project = _project(tmp_path, "7d")
    name, text = airflow_dag(project)
    tree = ast.parse(text, filename=name)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.module is not None
            imported.add(node.module)
    assert {m.split(".")[0] for m in imported} <= {"airflow", "datetime"}, imported
    assert {"airflow", "airflow.operators.bash"} <= imported
    calls = {
        node.func.id: node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    dag = {k.arg: k.value for k in calls["DAG"].keywords}
    schedule = dag["schedule"]
    assert isinstance(schedule, ast.Call)
    assert ast.literal_eval(schedule.keywords[0].value) == timedelta(days=7).total_seconds()
    assert ast.literal_eval(dag["max_active_runs"]) == 1
    assert ast.literal_eval(dag["catchup"]) is False
    assert ast.literal_eval(dag["dag_id"]) == name.removesuffix(".py")
    bash = {k.arg: k.value for k in calls["BashOperator"].keywords}
    assert shlex.split(ast.literal_eval(bash["bash_command"])) == retrain_command(project)


def test_the_export_command_writes_each_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path, "7d")
    args = ["-f", str(project.spec_path), "--state-dir", str(project.state_dir)]
    code = main(
        [
            "retrain",
            "export",
            *args,
            "--cron",
            "--k8s",
            str(tmp_path / "k8s" / "cronjob.yaml"),
            "--airflow",
            str(tmp_path / "dags"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.strip() == cron_line(project)
    assert (tmp_path / "k8s" / "cronjob.yaml").read_text() == k8s_cronjob(
        project, image="taxiway:latest"
    )
    name, text = airflow_dag(project)
    assert (tmp_path / "dags" / name).read_text() == text


def test_the_export_command_without_a_target_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path, "7d")
    code = main(["retrain", "export", "-f", str(project.spec_path)])
    assert code == 2
    assert "--airflow" in capsys.readouterr().err
