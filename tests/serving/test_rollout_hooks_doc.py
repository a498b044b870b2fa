"""docs/rollout-hooks.md stays true: its manifests ask the verdict route for fields it answers
with, and its example answer has the endpoint's keys."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ruamel.yaml import YAML

from taxiway.rollout.state import RolloutState
from taxiway.serving.arms import verdict_document

DOC = Path(__file__).parents[2] / "docs" / "rollout-hooks.md"


def _manifests() -> dict[str, Any]:
    yaml = YAML(typ="safe", pure=True)
    blocks = [yaml.load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]
    return {block["kind"]: block for block in blocks}


def _state(**changes: Any) -> RolloutState:
    now = datetime(2026, 12, 6, 6, 31, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": 3,
        "name": "retail_churn",
        "salt": "s",
        "control": {"kind": "version", "version": 6, "constant": None},
        "candidate": 7,
        "unit": None,
        "steps": [1.0, 5.0, 10.0, 25.0, 50.0, 100.0],
        "step_index": 1,
        "share": 5.0,
        "state": "running",
        "started_at": now,
        "step_started_at": now,
        "updated_at": now,
        "verdict": {"kind": "hold", "reasons": ["not enough evidence yet"]},
        "plan": {},
    }
    return RolloutState(**{**values, **changes})


def test_the_example_answer_has_the_endpoints_keys() -> None:
    text = DOC.read_text()
    example = re.search(r"curl -s localhost:8080/v1/rollout/verdict\n(.*?)```", text, re.S)
    assert example is not None
    body = json.loads("".join(line.lstrip("# ") for line in example.group(1).splitlines()))
    _, answered = verdict_document(_state())
    assert set(body) == set(answered)


def test_the_analysis_template_reads_fields_the_verdict_has() -> None:
    metric = _manifests()["AnalysisTemplate"]["spec"]["metrics"][0]
    _, body = verdict_document(_state())
    for condition in (metric["successCondition"], metric["failureCondition"]):
        for name in re.findall(r"result\.(\w+)", condition):
            assert name in body
    assert metric["provider"]["web"]["url"] == "{{args.verdict-url}}"
    rollout = _manifests()["Rollout"]["spec"]["strategy"]["canary"]["analysis"]
    (arg,) = rollout["args"]
    assert urlparse(arg["value"]).path == "/v1/rollout/verdict"
    assert (
        rollout["templates"][0]["templateName"]
        == (_manifests()["AnalysisTemplate"]["metadata"]["name"])
    )


def test_the_flagger_webhook_asks_for_the_strict_verdict() -> None:
    (hook,) = _manifests()["Canary"]["spec"]["analysis"]["webhooks"]
    url = urlparse(hook["url"])
    assert (hook["type"], url.path, url.query) == ("rollout", "/v1/rollout/verdict", "strict=true")
    assert verdict_document(_state(state="paused"), strict=True)[0] == 503
    assert verdict_document(_state(), strict=True)[0] == 200
