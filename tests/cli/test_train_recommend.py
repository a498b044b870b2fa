"""`taxiway train` on a recommend spec: the model beside popularity, exit 1 unless it beats it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.recommend.test_training import make_project

from taxiway.cli import main


def test_train_exits_0_when_the_model_beats_popularity_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path)
    code = main(["train", "-f", str(project.spec_path), "--state-dir", str(project.state_dir)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "recall@5 ←" in out
    assert "popularity" in out
    assert "beats popularity" in out
    assert "cold users" in out


def test_train_exits_1_when_popularity_is_not_beaten_and_the_json_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path, candidates="[{kind: popularity, k: 50}]")
    args = ["train", "-f", str(project.spec_path), "--state-dir", str(project.state_dir)]
    assert main([*args, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["task"] == "recommend"
    assert document["beats_baseline"] is False
    assert document["metric"] == "recall@5"
    assert set(document["metrics"]) == {"model", "baseline"}
    assert document["split"]["evaluated_users"] > 0
    assert document["version"] == 1
