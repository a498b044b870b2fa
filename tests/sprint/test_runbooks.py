"""Runbooks cite only what is real: series the service exports, commands the CLI accepts,
log reasons the predictor writes, and the spec's own thresholds."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import typer
from pydantic import BaseModel
from tests.conftest import EXAMPLES, retail_shop
from typer.core import TyperGroup

from taxiway.cli import main
from taxiway.cli.app import app
from taxiway.serving.log import PredictionLog
from taxiway.serving.metrics import Metrics
from taxiway.serving.service import _reason
from taxiway.spec.durations import parse_duration
from taxiway.spec.loader import load_spec_text
from taxiway.spec.models import Serving
from taxiway.spec.project import Project
from taxiway.sprint.runbooks import PLANNED_COMMANDS, RUNBOOKS, runbooks, write_runbooks

RETAIL = EXAMPLES / "retail" / "taxiway.yaml"
PREDICTOR = Path(__file__).resolve().parents[2] / "src" / "taxiway" / "serving" / "predictor.py"
_BLOCK = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
_ROW = re.compile(r"^\| `([a-z_.]+)` \| `([^`]*)` \| (spec|default) \|$", re.MULTILINE)


@pytest.fixture
def pages(tmp_path: Path) -> dict[str, str]:
    return runbooks(Project.load(RETAIL, tmp_path / "state"))


def _variant(folder: Path, edit: Any) -> Project:
    """The retail spec in ``folder``, its text changed by ``edit``."""
    shutil.copytree(EXAMPLES / "retail" / "contracts", folder / "contracts")
    (folder / "taxiway.yaml").write_text(edit(RETAIL.read_text()))
    return Project.load(folder / "taxiway.yaml")


def _blocks(text: str, language: str | None = None) -> list[str]:
    return [body for lang, body in _BLOCK.findall(text) if language in (None, lang)]


def _command_lines(text: str) -> list[str]:
    """`taxiway ...` lines of code blocks, and `taxiway ...` code spans of the prose."""
    lines = [
        line.strip()
        for body in _blocks(text)
        for line in body.splitlines()
        if line.strip().startswith("taxiway ")
    ]
    prose = _BLOCK.sub("", text)
    return lines + re.findall(r"`(taxiway [^`]+)`", prose)


def _argv(line: str) -> list[str]:
    """The arguments of a cited command, each `<placeholder>` filled with a sample value."""
    words = shlex.split(line, comments=True)
    assert words[0] == "taxiway"
    filled = [re.sub(r"<[^<>]+>", "1", word) for word in words[1:]]
    assert not any(c in word for word in filled for c in "<>"), line
    return filled


def _parse(argv: list[str]) -> None:
    """Parse ``argv`` like the CLI would (types, required values, no extra arguments),
    without running the command."""
    command = typer.main.get_command(app)
    name, rest = "taxiway", list(argv)
    while isinstance(command, TyperGroup):
        if not rest:
            return  # a group named alone (`taxiway rollout`): its commands are cited too
        if rest[0].startswith("-"):
            break  # a group run with options only (`taxiway monitor --json`)
        ctx = command.make_context(name, [], resilient_parsing=True)
        name, rest = rest[0], rest[1:]
        found = command.get_command(ctx, name)
        assert found is not None, f"no command `{name}`"
        command = found
    command.make_context(name, rest)


def _exposed_series() -> set[str]:
    """Every series name the service's registry puts in /metrics."""
    names = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {family.name, *(f"{family.name}_{s}" for s in ("bucket", "count", "sum"))}
        else:
            names.add(family.name)
    return names


def _expected(project: Project, key: str) -> tuple[Any, bool]:
    """What the spec says for a dotted key (the model's default when absent)."""
    node: Any = project.spec
    declared = True
    for part in key.split("."):
        if isinstance(node, dict):
            node = node[part]
            continue
        assert isinstance(node, BaseModel)
        declared = declared and part in node.model_fields_set
        node = getattr(node, part)
        if node is None and part == "serving":
            node = Serving()
    return node, declared


def _same(cell: str, value: Any) -> bool:
    if isinstance(value, bool):
        return cell == str(value).lower()
    if isinstance(value, int | float):
        return float(cell) == value
    if isinstance(value, timedelta):
        return parse_duration(cell) == value
    if isinstance(value, date):
        return date.fromisoformat(cell) == value
    if isinstance(value, list):
        return bool(json.loads(cell) == value)
    return cell == str(value)


def _thresholds(project: Project, pages: dict[str, str]) -> list[tuple[str, str, str, str]]:
    rows = [(name, *row) for name, text in pages.items() for row in _ROW.findall(text)]
    for name, key, cell, source in rows:
        value, declared = _expected(project, key)
        assert _same(cell, value), f"{name}: {key} is {value!r} in the spec, not {cell}"
        assert source == ("spec" if declared else "default"), f"{name}: {key}"
    return rows


# ------------------------------------------------------------------ the pages


def test_one_page_per_failure_mode_and_an_index(tmp_path: Path) -> None:
    project = Project.load(RETAIL, tmp_path / "state")
    written = write_runbooks(project, tmp_path / "runbooks")
    assert [p.name for p in written] == ["README.md", *RUNBOOKS]
    assert len(RUNBOOKS) == 8
    index = (tmp_path / "runbooks" / "README.md").read_text()
    for name, (title, _) in RUNBOOKS.items():
        assert f"[{title}]({name})" in index
        page = (tmp_path / "runbooks" / name).read_text()
        assert page.startswith(f"# {title}: `retail_churn`")
        assert "growth-team" in page
        for link in re.findall(r"\]\(([a-z-]+\.md)\)", page):
            assert (tmp_path / "runbooks" / link).exists(), f"{name} links to {link}"


def test_every_metric_cited_is_one_the_service_exports(pages: dict[str, str]) -> None:
    exposed = _exposed_series()
    cited = {name: set(re.findall(r"\btaxiway_[a-z0-9_]+", text)) for name, text in pages.items()}
    for name, series in cited.items():
        assert series <= exposed, f"{name} cites {sorted(series - exposed)}"
    everything = set().union(*cited.values())
    assert len(everything) >= 12
    assert {"taxiway_circuit_open", "taxiway_fallbacks_total"} <= cited["online-store-down.md"]


def test_every_command_cited_is_a_real_command(
    pages: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    commands = {line for text in pages.values() for line in _command_lines(text)}
    real = commands - set(PLANNED_COMMANDS)
    assert len(real) >= 12
    for line in sorted(real):
        argv = _argv(line)
        _parse(argv)
        assert main([*argv, "--help"]) == 0, line
    capsys.readouterr()
    cited = {tuple(_argv(line)[:2]) for line in real}
    assert ("models", "promote") in cited
    assert ("features", "materialize") in cited


def test_a_bad_command_would_be_caught() -> None:
    for line in (
        "taxiway models promote",  # a missing argument
        "taxiway models promote one",  # not a number
        "taxiway serve --wrkers 2",  # a misspelt option
        "taxiway models rollback 1",  # no such command
    ):
        with pytest.raises((typer.TyperException, AssertionError)):
            _parse(_argv(line))


def test_no_command_is_only_planned() -> None:
    # every command a runbook names exists: the monitor and the rollout controller are built
    assert PLANNED_COMMANDS == ()


def test_log_reasons_cited_are_the_predictors(pages: dict[str, str]) -> None:
    source = PREDICTOR.read_text()
    reasons = {
        r
        for text in pages.values()
        for r in re.findall(r"`((?:online store|model) [a-z -]+(?:: <error type>)?)`", text)
    }
    assert len(reasons) == 7
    for reason in reasons:
        assert reason.removesuffix("<error type>") in source, reason
    labels = {_reason(r) for r in reasons} | {_reason("out of the training range: x")}
    for text in pages.values():
        for label in re.findall(r'reason="([a-z_]+)"', text):
            assert label in labels, label


def test_thresholds_are_the_specs(pages: dict[str, str], tmp_path: Path) -> None:
    rows = _thresholds(Project.load(RETAIL, tmp_path / "state"), pages)
    keys = {key for _, key, _, _ in rows}
    assert {
        "serving.latency_budget_ms",
        "serving.breaker.failures",
        "serving.breaker.reset_after",
        "monitoring.window",
        "rollout.steps",
        "label.horizon",
    } <= keys
    assert ("latency-budget.md", "serving.latency_budget_ms", "50", "spec") in rows
    assert ("model-error.md", "serving.breaker.failures", "5", "default") in rows


def test_changing_the_spec_changes_the_runbook(tmp_path: Path) -> None:
    project = _variant(
        tmp_path,
        lambda text: text.replace(
            "latency_budget_ms: 50",
            "latency_budget_ms: 35\n  breaker: {failures: 3, reset_after: 30s}",
        ),
    )
    pages = runbooks(project)
    rows = _thresholds(project, pages)
    assert ("latency-budget.md", "serving.latency_budget_ms", "35", "spec") in rows
    assert ("online-store-down.md", "serving.breaker.failures", "3", "spec") in rows
    assert ("online-store-down.md", "serving.breaker.reset_after", "30s", "spec") in rows
    latency = pages["latency-budget.md"]
    assert "Each request has 35 ms" in latency
    assert "the nearest histogram bound above the 35 ms budget" in latency
    assert '{le="0.05"}' in latency
    assert "`50`" not in latency


def test_a_missing_section_is_named_with_the_yaml_to_add(tmp_path: Path) -> None:
    def strip(text: str) -> str:
        text = text[: text.index("# Monitoring:")]  # drops monitoring, rollout, governance
        return re.sub(r"(?m)^owner:.*\n", "", text)

    pages = runbooks(_variant(tmp_path, strip))
    drift, rollback = pages["input-drift.md"], pages["rollback.md"]
    assert "no `monitoring:` section" in drift
    assert "`taxiway monitor` runs with the defaults" in drift
    assert "no `rollout:` section" in rollback
    for page, section in ((drift, "monitoring"), (rollback, "rollout")):
        [added] = [b for b in _blocks(page, "yaml") if b.startswith(f"{section}:")]
        assert getattr(load_spec_text(f"name: x\n{added}"), section) is not None
    assert "metric: churned" in rollback  # the spec's label, not an invented outcome
    assert "the spec names nobody accountable" in pages["model-error.md"]


def test_a_redis_store_shows_the_env_var_never_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_RUNBOOK_REDIS_URL", "redis://:s3cr3t-pw@10.1.2.3:6379/0")
    project = _variant(
        tmp_path,
        lambda text: text.replace(
            "\nserving:",
            "\nonline_store: {kind: redis, url: '${TW_RUNBOOK_REDIS_URL}', timeout_ms: 20}"
            "\nserving:",
        ),
    )
    pages = runbooks(project)
    assert not any("s3cr3t" in text or "10.1.2.3" in text for text in pages.values())
    store = pages["online-store-down.md"]
    assert "`$TW_RUNBOOK_REDIS_URL`" in store
    assert 'redis-cli -u "${TW_RUNBOOK_REDIS_URL}" ping' in store
    assert ("online-store-down.md", "online_store.timeout_ms", "20", "spec") in _thresholds(
        project, pages
    )


def test_taxiway_runbook_writes_and_lists_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runbooks"
    args = ["runbook", "-f", str(RETAIL), "--state-dir", str(tmp_path / "s"), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / name) for name in ("README.md", *RUNBOOKS)]
    assert main(["runbook", "-f", str(RETAIL)]) == 2  # --out is required


# ------------------------------------------------------------------ the manual steps run


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A trained, promoted retail shop with predictions (one input drifted) and outcomes."""
    spec = retail_shop(tmp_path_factory.mktemp("runbook-shop"), customers=300)
    assert main(["train", "-f", str(spec), "--json"]) == 0
    # no sign-offs in this shop: the promotion overrides the gate, as an operator may
    assert (
        main(["models", "promote", "1", "-f", str(spec), "--force", "--reason", "test shop"]) == 0
    )
    project = Project.load(spec)
    [training] = (project.state_dir / "training").glob("*.parquet")
    table = pq.read_table(training)
    rows = table.take(list(range(0, table.num_rows, table.num_rows // 300))[:300]).to_pylist()
    now = datetime.now(UTC).isoformat()
    with (
        PredictionLog(project.state_dir / "predictions", worker="t") as log,
        PredictionLog(project.state_dir / "outcomes", worker="t") as outcomes,
    ):
        for i, row in enumerate(rows):
            features = {k: v for k, v in row.items() if "__" in k}
            features["customer_orders__order_count_30d"] = 40 + i % 5  # far above training
            degraded = i % 10 == 0
            log.append_sync(
                {
                    "ts": now,
                    "request_id": f"r{i}",
                    "model_version": 1,
                    "arm": "production",
                    "path": "fallback:baseline" if degraded else "model",
                    "degraded": degraded,
                    "reason": "online store timed out" if degraded else None,
                    "prediction": 0.5,
                    "latency_ms": 1.5,
                    "lookup_ms": 0.2,
                    "features": features,
                }
            )
            outcomes.append_sync(
                {"request_id": f"r{i}", "name": "churned", "value": bool(row["churned"])}
            )
    return project


@pytest.mark.slow
def test_every_python_step_runs_and_the_drift_check_finds_the_drift(served: Project) -> None:
    pages = runbooks(served)
    outputs: dict[str, list[str]] = {}
    for name, text in pages.items():
        for code in _blocks(text, "python"):
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, f"{name}:\n{code}\n{done.stderr}"
            outputs.setdefault(name, []).append(done.stdout)
    assert set(outputs) == {
        "online-store-down.md",
        "model-error.md",
        "latency-budget.md",
        "rollback.md",
    }
    # the drift page's diagnosis is `taxiway monitor`: its JSON names the drifted input
    [command] = [
        line
        for block in _blocks(pages["input-drift.md"], "sh")
        for line in block.splitlines()
        if line.startswith("taxiway monitor") and line.endswith("--json")
    ]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "taxiway"), *shlex.split(command)[1:]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr  # an alert is firing
    report = json.loads(done.stdout)
    status = {f["name"]: f["status"] for f in report["features"]}
    assert status["customer_orders__order_count_30d"] == "drift"
    assert any(
        a["kind"] == "drift" and "customer_orders__order_count_30d" in a["title"]
        for a in report["alerts"]
    )
    assert "online store timed out" in outputs["online-store-down.md"][0]
    assert "300" in outputs["rollback.md"][0]  # 300 answers of v1, every one with its outcome


def test_the_retraining_page_is_generated_from_the_retrain_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = (
        "\nretrain: {every: 14d, on: [drift, quality], window: 365d, min_new_rows: 5000, "
        "auto_rollout: true, signoff: {on_new_source: false, max_metric_drop: 0.01}}\n"
    )
    project = _variant(tmp_path, lambda text: text + policy)
    pages = runbooks(project)
    page = pages["retraining.md"]
    assert "a retrain every 14d" in page
    assert "[input drift](input-drift.md) alerts" in page
    assert "the outcome falls" in page
    assert "the last 365d of spine times" in page
    assert "reads a feature production does not" in page
    assert "trains on a source production did not" not in page  # on_new_source: false
    assert "more than 0.01 below production" in page
    assert "`routine_retrain`" in page
    rows = _thresholds(project, pages)
    assert ("retraining.md", "retrain.signoff.max_metric_drop", "0.01", "spec") in rows
    assert ("retraining.md", "retrain.signoff.on_new_feature", "true", "default") in rows
    for line in _command_lines(page):
        _parse(_argv(line))
    assert main(["models", "history", "--help"]) == 0
    capsys.readouterr()
