"""The runs the file transport recorded: each job's latest run and how it ended.

Read back from ``<state dir>/lineage/events.jsonl`` for `taxiway lineage`. A line that is not
a JSON object (a write cut short by a crash) is skipped, never fatal.

>>> import json, tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> events = [{"eventType": s, "eventTime": t, "job": {"name": "churn.train"},
...            "run": {"runId": "r1"}} for s, t in (("START", "1"), ("COMPLETE", "2"))]
>>> _ = (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\\n" for e in events))
>>> latest_runs(folder)
[RunSummary(job='churn.train', run_id='r1', state='COMPLETE', at='2', error=None)]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from taxiway.lineage.transport import EVENTS_FILE

__all__ = ["RunSummary", "latest_runs"]


@dataclass(frozen=True)
class RunSummary:
    """A job's latest run: its id, its last state (START while under way) and when."""

    job: str
    run_id: str
    state: str
    at: str
    error: str | None = None


def latest_runs(folder: Path) -> list[RunSummary]:
    """Each job's latest run in ``folder``'s events, in the order the jobs last ran."""
    path = folder / EVENTS_FILE
    if not path.exists():
        return []
    latest: dict[str, RunSummary] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                event = json.loads(line)
                job, run = event["job"]["name"], event["run"]
                summary = RunSummary(
                    job,
                    run["runId"],
                    event["eventType"],
                    event["eventTime"],
                    ((run.get("facets") or {}).get("errorMessage") or {}).get("message"),
                )
            except (ValueError, KeyError, TypeError):
                continue
            latest.pop(job, None)  # re-inserted last: dicts keep the order of the latest run
            latest[job] = summary
    return list(latest.values())
