"""`train`, `models` and `audit` on bad input: a message and an exit code, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxiway.cli import main

SPEC = """\
name: tiny
sources:
  orders: {kind: file, path: orders.csv, timestamp: at}
entities: {customer: customer_id}
features:
  recent: {source: orders, entity: customer, aggregate: {n: count(*)}, windows: [7d]}
spine: {every: 7d, start: 2024-01-01, end: 2024-02-01, source: orders}
"""


def _project(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "orders.csv").write_text("customer_id,at\n1,2024-01-01 00:00:00\n")
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(SPEC + extra)
    return spec


def test_audit_before_any_training_says_to_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "-f", str(_project(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "no model named 'tiny'" in err
    assert "taxiway train" in err
    assert "Traceback" not in err


def test_train_without_a_label_says_what_to_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "-f", str(_project(tmp_path))]) == 1
    assert "no `label:`" in capsys.readouterr().err


def test_promote_an_unknown_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "promote", "7", "-f", str(_project(tmp_path))]) == 1
    assert "no model named 'tiny'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("model: {features: [recnt__n_7d]}", "did you mean `recent__n_7d`?"),
        ("model: {baseline_feature: recent__n_30d}", "unknown feature `recent__n_30d`"),
        ("model: {request_fields: [basket_value]}", "need an event spine"),
        ("model: {pilot: nowhere.pkl}", "does not exist"),
        ("model: {metric: accuracy}", "roc_auc"),
        ("model: {validation: 1.5}", "must be < 1.0, got 1.5"),
    ],
)
def test_model_section_mistakes_point_at_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, message: str
) -> None:
    assert main(["train", "-f", str(_project(tmp_path, extra))]) == 2
    err = capsys.readouterr().err
    assert "taxiway.yaml:8" in err
    assert message in err


def test_an_unknown_fallback_points_at_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _project(tmp_path, "serving: {fallback: [baseline, basline]}")
    assert main(["check", "-f", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "taxiway.yaml:8" in err
    assert "did you mean `baseline`?" in err
