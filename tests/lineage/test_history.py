"""The latest run of each job, read back from the events file."""

from __future__ import annotations

import json
from pathlib import Path

from taxiway.lineage.history import latest_runs


def test_latest_runs_keep_each_jobs_last_state_and_skip_torn_lines(tmp_path: Path) -> None:
    def event(job: str, run: str, state: str, at: str) -> str:
        return json.dumps(
            {"eventType": state, "eventTime": at, "job": {"name": job}, "run": {"runId": run}}
        )

    (tmp_path / "events.jsonl").write_text(
        "\n".join(
            [
                event("c.check", "1", "START", "t1"),
                event("c.check", "1", "COMPLETE", "t2"),
                event("c.train", "2", "START", "t3"),
                '{"eventType": "COMPL',  # a write cut short
                event("c.check", "3", "START", "t4"),
            ]
        )
        + "\n"
    )
    runs = latest_runs(tmp_path)
    assert [(r.job, r.run_id, r.state) for r in runs] == [
        ("c.train", "2", "START"),
        ("c.check", "3", "START"),
    ]
    assert latest_runs(tmp_path / "none") == []
