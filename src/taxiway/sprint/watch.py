"""The monitor in the sprint: `taxiway monitor`'s run over the load test's answers, and a
drift drill that proves its alert fires on the feature that moved and on no other.

The load test replays a few hundred entities many times, so its traffic is not production's:
what the monitor says about its drift describes the replay, and the sprint reports it without
judging the model by it. What the sprint judges is what it can observe:

1. **the monitor read the load test's answers**: the records of the candidate written to the
   service's log since the load test began, copied as they are into a scratch log (so answers
   of earlier runs in the same log stay out), are monitored by a fresh run; every answer the
   clients got back must be in its report (``requests``), with the latency and fallback rates
   it measured;
2. **the drift drill**: the version's validation rows (the reference's own population,
   :data:`DRILL_ROWS` of them), scored by the model and written by the service's log writer,
   are monitored by a fresh run (the *quiet* run: the inputs it calls drifted are its false
   alarms, reported); then the same rows with one input shifted (by three times its reference
   spread, or to a category the reference never saw): that input must turn ``drift`` with an
   alert naming it, while every other input keeps the status it had in the quiet run (same
   rows, so any other change would be a false alarm).

The gate (:func:`~taxiway.sprint.phases.monitoring_check`) passes only on both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxiway.models.registry import ModelVersion
from taxiway.serving.log import PredictionLog, log_files
from taxiway.serving.monitored import monitor_inputs
from taxiway.spec.project import Project
from taxiway.sprint.outcome import Exercised

__all__ = ["DRILL_ROWS", "DRILL_SPREADS", "MonitorRun", "shifted", "watch"]

DRILL_ROWS = 5_000
"""Validation rows the drift drill monitors (a fixed sample when there are more)."""
DRILL_SPREADS = 3.0
"""How far the drill moves a numeric input: this many reference interquartile ranges."""
_NEW_CATEGORY = "__taxiway_drill__"


@dataclass
class MonitorRun:
    """What the sprint's monitor runs saw: the report over the load test's answers, the
    drill's, the input it shifted, and the verdict (:meth:`exercised`)."""

    report: dict[str, Any]
    drill: dict[str, Any] | None
    shifted: str | None
    records: int
    problems: list[str] = field(default_factory=list)
    quiet: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def exercised(self) -> Exercised:
        """The gate's evidence: the figures and the drill's outcome, in one sentence each."""
        return Exercised(self.ok, self.evidence(), self.data())

    def evidence(self) -> str:
        report = self.report
        period = report.get("period") or {}
        latency = report.get("latency") or {}
        features = report.get("features") or []
        drifted = [f["name"] for f in features if f.get("status") == "drift"]
        parts = [
            f"the monitor read {period.get('requests', 0):,} answers of the load test "
            f"in {period.get('windows', 0)} window(s): p99 {_ms(latency.get('p99'))} against "
            f"{_ms(latency.get('budget_ms'))}",
            f"{len(drifted)} of {len(features)} inputs read as drifted in the load test's "
            "replay (not production traffic; not judged)",
        ]
        if self.quiet is not None:
            alarms = [f["name"] for f in self.quiet.get("features", []) if f.get("status") != "ok"]
            rows = (self.quiet.get("period") or {}).get("requests", 0)
            parts.append(
                f"on {rows:,} validation rows {len(alarms)} of {len(features)} inputs read as "
                "drifted" + (f" ({', '.join(alarms)})" if alarms else "")
            )
        if self.drill is not None and self.shifted is not None:
            moved = _feature(self.drill, self.shifted)
            parts.append(
                f"drift drill: {self.shifted} shifted → {moved.get('status')} "
                f"({moved.get('statistic')} {_num(moved.get('value'))} > "
                f"{_num(moved.get('threshold'))})"
            )
        return "; ".join(parts + self.problems)

    def data(self) -> dict[str, Any]:
        return {
            "requests": (self.report.get("period") or {}).get("requests", 0),
            "records": self.records,
            "shifted": self.shifted,
            "statuses": {f["name"]: f.get("status") for f in self.report.get("features", [])},
            "quiet_statuses": None
            if self.quiet is None
            else {f["name"]: f.get("status") for f in self.quiet.get("features", [])},
            "drill_statuses": None
            if self.drill is None
            else {f["name"]: f.get("status") for f in self.drill.get("features", [])},
            "problems": self.problems,
        }


def watch(
    project: Project,
    version: ModelVersion,
    log_folder: Path,
    since: datetime,
    scratch: Path,
    answered: int,
) -> MonitorRun:
    """Monitor the load test's answers (those logged from ``since`` on, ``answered`` of them
    acknowledged), then the drift drill; windows and state go under ``scratch``."""
    from taxiway.monitoring.monitor import run_monitor

    records = _records(log_folder, since, version.version)
    window = _window(records)
    inputs = monitor_inputs(
        project,
        version,
        window=window,
        log_folder=_copy(records, scratch / "load" / "predictions", None),
        state_folder=scratch / "load" / "monitor",
    )
    report = dict(run_monitor(inputs).to_json())
    run = MonitorRun(report, None, None, len(records))
    seen = int((report.get("period") or {}).get("requests") or 0)
    if seen < answered:
        run.problems.append(
            f"the monitor saw {seen:,} answers for {answered:,} the load test got back"
        )
    rows = _validation_rows(version)
    if not rows:
        run.problems.append("no validation rows in the training set: the drift drill could not run")
        return run
    quiet_inputs = monitor_inputs(
        project,
        version,
        window=_window(rows),
        log_folder=_copy(rows, scratch / "quiet" / "predictions", None),
        state_folder=scratch / "quiet" / "monitor",
    )
    quiet = dict(run_monitor(quiet_inputs).to_json())
    run.quiet = quiet
    target = _drill_target(quiet, quiet_inputs.reference)
    if target is None:
        run.problems.append("no input is quiet on the validation rows: the drill cannot shift one")
        return run
    name, kind = target
    profile = quiet_inputs.reference["features"][name]
    drill_inputs = monitor_inputs(
        project,
        version,
        window=_window(rows),
        log_folder=_copy(rows, scratch / "drill" / "predictions", (name, kind, profile)),
        state_folder=scratch / "drill" / "monitor",
    )
    drill = dict(run_monitor(drill_inputs).to_json())
    run.drill, run.shifted = drill, name
    moved = _feature(drill, name)
    if moved.get("status") != "drift":
        run.problems.append(
            f"the drift drill shifted {name}, and the monitor said {moved.get('status')!r}, "
            "not 'drift'"
        )
    if not any(name in str(a.get("title", "")) for a in drill.get("alerts", [])):
        run.problems.append(f"no alert named {name} after the drift drill shifted it")
    before = {f["name"]: f.get("status") for f in quiet.get("features", [])}
    changed = [
        f["name"]
        for f in drill.get("features", [])
        if f["name"] != name and f.get("status") != before.get(f["name"])
    ]
    if changed:
        run.problems.append(
            f"the drift drill moved only {name}, but the status of {', '.join(changed)} changed"
        )
    return run


def _validation_rows(version: ModelVersion, limit: int = DRILL_ROWS) -> list[dict[str, Any]]:
    """Up to ``limit`` of the version's validation rows (the training set's rows at or after
    the split's cut; a fixed sample), scored by the model, as the service logs an answer."""
    from taxiway.models.artifact import load_model

    path = version.training.get("path")
    cut = (version.metrics.get("split") or {}).get("cut")
    if not path or not Path(str(path)).exists() or not cut:
        return []
    table = pq.read_table(str(path))
    if "timestamp" in table.column_names:
        moment = pa.scalar(datetime.fromisoformat(str(cut)), table.schema.field("timestamp").type)
        table = table.filter(pc.greater_equal(table["timestamp"], moment))
    if table.num_rows == 0:
        return []
    if table.num_rows > limit:
        picked = np.random.default_rng(0).choice(table.num_rows, size=limit, replace=False)
        table = table.take(np.sort(picked))
    features = [f for f in version.features if f in table.column_names]
    predictions = load_model(version.artifact_dir).predict_table(table)
    columns = {f: table[f].to_pylist() for f in features}
    now = datetime.now(UTC).isoformat()
    return [
        {
            "ts": now,
            "request_id": f"drill-{i}",
            "model_version": version.version,
            "arm": "drill",
            "path": "model",
            "degraded": False,
            "prediction": float(predictions[i]),
            "latency_ms": 1.0,
            "features": {f: _plain(columns[f][i]) for f in features},
        }
        for i in range(table.num_rows)
    ]


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def shifted(value: Any, kind: str, profile: dict[str, Any]) -> Any:
    """``value`` moved as the drill moves it: a number by :data:`DRILL_SPREADS` reference
    interquartile ranges (its whole range when the quartiles agree, 1 when both are 0), a
    category to one the reference never saw; a missing value stays missing.

    >>> shifted(2.0, "numeric", {"edges": [1.0] * 24 + [2.0] * 50 + [4.0] * 25})
    8.0
    >>> shifted("DE", "categorical", {}), shifted(None, "numeric", {})
    ('__taxiway_drill__', None)
    """
    if value is None:
        return None
    if kind == "categorical":
        return _NEW_CATEGORY
    edges = [float(e) for e in profile.get("edges") or []]
    spread = 0.0
    if len(edges) >= 75:
        spread = edges[74] - edges[24]  # the 75th and 25th percentiles
    if spread <= 0 and edges:
        spread = edges[-1] - edges[0]
    if spread <= 0:
        spread = 1.0
    try:
        return float(value) + DRILL_SPREADS * spread
    except (TypeError, ValueError):
        return value


def _records(folder: Path, since: datetime, version: int) -> list[dict[str, Any]]:
    """The log's records of ``version`` written from ``since`` on (torn lines skipped)."""
    out = []
    for path in log_files(folder):
        for line in path.read_bytes().splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(record, dict) or record.get("model_version") != version:
                continue
            ts = record.get("ts")
            if isinstance(ts, str) and datetime.fromisoformat(ts) >= since:
                out.append(record)
    return out


def _copy(
    records: list[dict[str, Any]], folder: Path, shift: tuple[str, str, dict[str, Any]] | None
) -> Path:
    """``records`` written to a scratch log in ``folder`` by the service's own writer, with
    the drill's input shifted when ``shift`` names one."""
    folder.mkdir(parents=True, exist_ok=True)
    with PredictionLog(folder, worker="sprint") as log:
        for record in records:
            if shift is not None:
                name, kind, profile = shift
                features = dict(record.get("features") or {})
                if name in features:
                    features[name] = shifted(features[name], kind, profile)
                record = {**record, "features": features}
            log.append_sync(record)
    return folder


def _window(records: list[dict[str, Any]]) -> timedelta:
    """One window that holds every record of the load test (it lasts seconds), so each
    feature is judged once on all of them, whatever the clock's hour boundaries."""
    times = [datetime.fromisoformat(r["ts"]) for r in records if isinstance(r.get("ts"), str)]
    span = (max(times) - min(times)) if times else timedelta(0)
    hours = int(span.total_seconds() // 3600) + 2
    return timedelta(hours=hours)


def _drill_target(report: dict[str, Any], reference: dict[str, Any]) -> tuple[str, str] | None:
    """The input the drill shifts: the first numeric one the quiet run left ``ok`` (else the
    first ``ok`` one), so that a change to ``drift`` is the drill's doing."""
    stored = reference.get("features") or {}
    ok = [f["name"] for f in report.get("features", []) if f.get("status") == "ok"]
    candidates = [n for n in ok if n in stored]
    numeric = [n for n in candidates if stored[n].get("kind") == "numeric"]
    for name in numeric or candidates:
        return name, str(stored[name].get("kind"))
    return None


def _feature(report: dict[str, Any], name: str) -> dict[str, Any]:
    for feature in report.get("features", []):
        if feature.get("name") == name:
            return dict(feature)
    return {}


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f} ms"


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3g}"
