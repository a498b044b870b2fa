"""The recommender's monitor in the sprint: `taxiway monitor`'s recommendation run
(:func:`taxiway.monitoring.recs.run_recs_monitor`) over the load test's answers, and a
fallback drill that proves its alert fires when the model stops answering, and only then.

The load test replays users drawn from the data, so what the monitor says of its mix (catalog
coverage, Gini, stages, popularity deciles) describes the replay, and the sprint reports it
without judging the model by it. What the sprint judges is what it can observe:

1. **the monitor read the load test's answers**: the candidate's records the load test wrote
   to the service's log (those counted by the integration phase: not earlier runs', not the
   smoke test's, not the fault drill's), copied as they are into a scratch log, with the
   outcomes posted for them, are monitored by a fresh run; every answer the clients got back
   must be in its report;
2. **the fallback drill**: the same answers, re-stamped into :data:`DRILL_WINDOWS`
   consecutive windows (repeated until each holds the least answers the monitor judges a
   window on, ``monitoring.recommend.min_answers``), are monitored as they are (the *healthy*
   run: the fallback alert must not fire), then with every answer's path replaced by the
   popularity fallback, as a service whose model stage fails answers (the *drill*: the
   fallback alert must fire, hysteresis included: more than one window over the threshold).

The gate (:func:`~taxiway.sprint.phases.governance.monitoring_check`) passes only on both.
:func:`monitor_recommender` is the integration phase's step; :func:`post_outcomes` posts a
few outcomes to the running service so click-through by position is read back.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from taxiway.models.registry import ModelVersion
from taxiway.serving.log import PredictionLog, log_files
from taxiway.serving.monitored import log_folders, with_defaults
from taxiway.spec.models import Monitoring, Serving
from taxiway.spec.project import Project
from taxiway.sprint.outcome import Check, Exercised, Phase, blocker
from taxiway.sprint.phases.running import _State, _step

if TYPE_CHECKING:
    from taxiway.monitoring.recs import CatalogFacts, RecsInputs
    from taxiway.sprint.integration import RunningService

__all__ = [
    "DRILL_REASON",
    "DRILL_WINDOW",
    "DRILL_WINDOWS",
    "MIN_ANSWERS",
    "OUTCOME_NAME",
    "RecsMonitorRun",
    "drilled",
    "monitor_recommender",
    "post_outcomes",
    "restamped",
    "watch_recommender",
]

DRILL_WINDOWS = 3
"""Windows the healthy run and the drill span: the monitor's hysteresis (2 of 3) needs more
than one window over the threshold before it alerts."""
DRILL_WINDOW = timedelta(hours=1)
"""The length of each of those windows (the answers are re-stamped into them)."""
DRILL_PATH = "fallback:popularity"
DRILL_REASON = "model failed (the sprint's fallback drill: the model stage replaced)"
"""The reason the drill's answers carry, as a service whose model stage fails writes one."""
OUTCOME_NAME = "sprint_click"
"""The name of the outcomes :func:`post_outcomes` posts: never a rollout's metric, so no
rollout ever counts them."""
MIN_ANSWERS = 50
"""The least answers the monitor judges a window on, when the spec does not say
(``monitoring.recommend.min_answers``)."""
CHECK = "monitor and drift drill"
"""The integration phase's check of the monitor (the classifier's name, one row in reports)."""


@dataclass
class RecsMonitorRun:
    """What the sprint's recommendation monitor runs saw: the report over the load test's
    answers, the healthy run's and the drill's, and the verdict (:meth:`exercised`)."""

    report: dict[str, Any]
    records: int
    answered: int
    outcomes: int = 0
    healthy: dict[str, Any] | None = None
    drill: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def exercised(self) -> Exercised:
        """The gate's evidence: the figures and the drill's outcome."""
        return Exercised(self.ok, self.evidence(), self.data())

    def evidence(self) -> str:
        report = self.report
        answers = report.get("answers") or {}
        latency = report.get("latency") or {}
        catalog = report.get("catalog") or {}
        parts = [
            f"the monitor read {_answers(report):,} answers of the load test: "
            f"{_pct(answers.get('model_fallback_share'))} model fallbacks, "
            f"{_pct(answers.get('unknown_user_share'))} unknown users, p99 "
            f"{_ms(latency.get('p99'))} against {_ms(latency.get('budget_ms'))}, catalog "
            f"coverage {_pct(catalog.get('coverage'))}, Gini {_num(catalog.get('gini'))} (the "
            "load test's replay, not production traffic; not judged)",
        ]
        clicks = _click_through(report)
        if clicks:
            parts.append(clicks)
        if self.healthy is not None:
            parts.append(
                f"healthy run ({_answers(self.healthy):,} answers in "
                f"{_windows(self.healthy)} windows): fallback "
                f"{(self.healthy.get('answers') or {}).get('status')}, "
                + (_fallback_alert(self.healthy) or {}).get("title", "no fallback alert")
            )
        if self.drill is not None:
            fired = _fallback_alert(self.drill)
            parts.append(
                "fallback drill (every answer's path replaced by popularity): "
                + (
                    f'{fired.get("severity")} alert "{fired.get("title")}"'
                    if fired
                    else "no fallback alert"
                )
            )
        return "; ".join(parts + self.problems)

    def data(self) -> dict[str, Any]:
        def alerts(report: dict[str, Any] | None) -> list[str] | None:
            return None if report is None else [str(a["key"]) for a in report.get("alerts", [])]

        return {
            "requests": _answers(self.report),
            "records": self.records,
            "answered": self.answered,
            "outcomes": self.outcomes,
            "fallback_status": (self.report.get("answers") or {}).get("status"),
            "alerts": alerts(self.report),
            "healthy_alerts": alerts(self.healthy),
            "drill_alerts": alerts(self.drill),
            "problems": self.problems,
        }


def monitor_recommender(state: _State, phase: Phase) -> None:
    """The integration phase's monitor step for a recommender: :func:`watch_recommender` over
    what the load test left in the log (read from ``state.facts``), its verdict the monitoring
    gate's evidence (``state.exercised["monitoring"]``) and the check named :data:`CHECK`
    (a skip said earlier in the phase is replaced)."""
    project, candidate = state.project, state.candidate
    load = state.facts.get("load") or {}
    logged = state.facts.get("prediction_log") or {}
    answered = int(load.get("answered") or 0)
    phase.checks[:] = [c for c in phase.checks if c.name != CHECK]
    if candidate is None or not answered or not logged.get("folder"):
        why = (
            "no candidate model was served"
            if candidate is None
            else "the load test answered no request"
        )
        phase.checks.append(Check(CHECK, "skip", f"{why}: the monitor had nothing to read"))
        return
    since = _moment(str(logged.get("since") or phase.started_at or "1970-01-01T00:00:00"))
    with _step(state, phase, CHECK, f"run `taxiway monitor -f {project.spec_path}` and fix "
               "what it reports"):  # fmt: skip
        state.say("integration", "monitor: the load test's answers, then a fallback drill")
        began = time.perf_counter()
        scratch = project.state_dir / "sprint" / "monitor"
        shutil.rmtree(scratch, ignore_errors=True)
        written = logged.get("records_written")
        run = watch_recommender(
            project,
            candidate,
            Path(str(logged["folder"])),
            since,
            scratch,
            answered,
            records_before=int(logged.get("records_before") or 0),
            records_written=None if written is None else int(written),
        )
        exercised = run.exercised()
        state.exercised["monitoring"] = exercised
        state.facts["monitor"] = run.report
        state.observed["monitoring_exercised"] = (exercised.ok, exercised.evidence)
        phase.checks.append(
            Check(
                CHECK,
                "pass" if exercised.ok else "fail",
                exercised.evidence,
                time.perf_counter() - began,
                data=exercised.data,
                blocker=None
                if exercised.ok
                else blocker(
                    "integration",
                    "technical",
                    "the monitor did not see what the sprint did",
                    evidence=exercised.evidence,
                    fix=f"run `taxiway monitor -f {project.spec_path} --json` over the "
                    "service's log and compare with the load test",
                    kind="code",
                ),
            )
        )


def watch_recommender(
    project: Project,
    version: ModelVersion,
    log_folder: Path,
    since: datetime,
    scratch: Path,
    answered: int,
    *,
    records_before: int = 0,
    records_written: int | None = None,
) -> RecsMonitorRun:
    """Monitor the answers ``version`` logged from ``since`` on (``answered`` of them
    acknowledged by the load test's clients), then the healthy run and the fallback drill;
    windows, state and scratch logs go under ``scratch``. See the module docstring.

    ``records_before`` and ``records_written`` (the prediction log's counts before and during
    the load test, :func:`taxiway.serving.log.count_records`'s order) bound the answers read
    to the load test's own: the fault drill's services write to the same log after it."""
    from taxiway.monitoring.recs import run_recs_monitor

    catalog = _catalog(version)
    records = _records(
        log_folder, since, version.version, skip=records_before, take=records_written
    )
    ids = {str(r.get("request_id")) for r in records}
    _, outcomes_folder = log_folders(project)
    outcomes = _outcomes(outcomes_folder, ids)
    load = scratch / "load"
    inputs = _inputs(
        project,
        version,
        catalog,
        _copy(records, load / "predictions"),
        _copy(outcomes, load / "outcomes"),
        load / "monitor",
        _window(records),
    )
    report = run_recs_monitor(inputs).to_json()
    run = RecsMonitorRun(report, len(records), answered, outcomes=len(outcomes))
    seen = _answers(report)
    if seen < answered:
        run.problems.append(
            f"the monitor saw {seen:,} answers for {answered:,} the load test got back"
        )
    if not records:
        run.problems.append("no answer of the load test in the log: the drill could not run")
        return run
    spread = restamped(records, datetime.now(UTC), least=_min_answers(project))
    for name in ("healthy", "drill"):
        folder = scratch / name
        copied = spread if name == "healthy" else [drilled(r) for r in spread]
        judged = run_recs_monitor(
            _inputs(
                project,
                version,
                catalog,
                _copy(copied, folder / "predictions"),
                None,
                folder / "monitor",
                DRILL_WINDOW,
            )
        ).to_json()
        setattr(run, name, judged)
    healthy, drill = run.healthy or {}, run.drill or {}
    fired = _fallback_alert(healthy)
    if fired is not None:
        share = (healthy.get("answers") or {}).get("model_fallback_share")
        run.problems.append(
            f"the load test's own answers raise the fallback alert ({_pct(share)} model "
            f"fallbacks: {fired.get('title')}): the service falls back under the load test, "
            "so the drill proves nothing"
        )
    if _fallback_alert(drill) is None:
        status = (drill.get("answers") or {}).get("status")
        run.problems.append(
            "the fallback drill replaced every answer's model path by popularity, and the "
            f"monitor raised no fallback alert (fallback status {status!r})"
        )
    return run


def restamped(
    records: list[dict[str, Any]],
    now: datetime,
    *,
    windows: int = DRILL_WINDOWS,
    least: int = MIN_ANSWERS,
) -> list[dict[str, Any]]:
    """``records`` spread over ``windows`` consecutive windows of :data:`DRILL_WINDOW` ending
    before ``now``'s, each holding an equal share of them, repeated (with new request ids)
    until each window holds at least ``least`` (the answers the monitor judges a window on).

    >>> now = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    >>> out = restamped([{"ts": "x", "request_id": "a"}], now, windows=2)
    >>> len(out), out[0]["ts"], out[-1]["ts"][:16], out[1]["request_id"]
    (100, '2026-01-01T10:00:00+00:00', '2026-01-01T11:58', 'a~1')
    """
    per = max(least, math.ceil(len(records) / windows))
    size = DRILL_WINDOW.total_seconds()
    first = (now.timestamp() // size - windows) * size
    out = []
    for n in range(per * windows):
        record = records[n % len(records)]
        window, rank = divmod(n, per)
        # spread within the window, a microsecond apart at least, never past its end
        offset = min(rank * max(size / per, 1e-6), size - 1e-6)
        at = datetime.fromtimestamp(first + window * size + offset, UTC)
        copy = n // len(records)
        request_id = str(record.get("request_id"))
        out.append(
            record
            | {
                "ts": at.isoformat(),
                "request_id": request_id if copy == 0 else f"{request_id}~{copy}",
            }
        )
    return out


def drilled(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as a service whose model stage fails answers it: the popularity fallback's
    path, degraded, the drill's reason, every item's stage ``popularity``.

    >>> r = drilled({"path": "model", "items": [{"item": "a", "position": 1, "stage": "ease"}]})
    >>> r["path"], r["degraded"], r["items"][0]["stage"]
    ('fallback:popularity', True, 'popularity')
    """
    items = [dict(i) | {"stage": "popularity"} for i in record.get("items") or []]
    return record | {"path": DRILL_PATH, "degraded": True, "reason": DRILL_REASON, "items": items}


def post_outcomes(
    service: RunningService, folder: Path, since: datetime, every: int = 10, limit: int = 200
) -> int:
    """Post an outcome (:data:`OUTCOME_NAME`, value 1) to the running ``service`` for one
    item of every ``every``-th answer logged in ``folder`` from ``since`` on (at most
    ``limit``), at positions 1, 2, 3... in turn, so the monitor reads click-through by
    position back; returns how many were recorded. They are the sprint's own, not users'."""
    import httpx

    posted = 0
    answers = [r for r in _records(folder, since, None) if r.get("items")]
    with httpx.Client(base_url=service.url, timeout=5.0, headers=service.headers) as client:
        for n, record in enumerate(answers[::every][:limit]):
            items = record["items"]
            shown = items[n % len(items)]
            reply = client.post(
                "/v1/outcomes",
                json={
                    "request_id": record.get("request_id"),
                    "item": shown.get("item"),
                    "name": OUTCOME_NAME,
                    "value": 1,
                },
            )
            posted += reply.status_code == 200
    return posted


# -- inputs -----------------------------------------------------------------------------


def _catalog(version: ModelVersion) -> CatalogFacts:
    """The version's catalog facts, as `taxiway monitor` builds them (cli/monitor.py
    ``recs_inputs``): every item, those on offer in its newest state, their popularity."""
    import numpy as np

    from taxiway.monitoring.recs import CatalogFacts
    from taxiway.recommend.pipeline import Recommender

    root = Path(version.artifact_dir)
    folder = root if (root / "recommender.json").exists() else root / "recommender"
    recommender = Recommender.load(folder)
    items = tuple(str(i) for i in recommender.items)
    newest = recommender.catalog.as_of(int(np.iinfo(np.int64).max))
    popularity = np.bincount(recommender.histories.item, minlength=len(items))
    return CatalogFacts(
        items=items,
        available=frozenset(
            i for i, on in zip(items, newest.available.tolist(), strict=True) if on
        ),
        popularity=popularity[: len(items)].astype(np.float64),
    )


def _inputs(
    project: Project,
    version: ModelVersion,
    catalog: CatalogFacts,
    log_folder: Path,
    outcomes_folder: Path | None,
    state_folder: Path,
    window: timedelta,
) -> RecsInputs:
    """One run's inputs, as `taxiway monitor` gives them, over a scratch log. No
    interactions source: the answers are stamped now, after the data's last day, so none can
    be judged against what users did next."""
    from taxiway.monitoring.recs import RecsInputs
    from taxiway.recommend.metrics import parse_metric

    spec = project.spec
    recommend = spec.recommend
    if recommend is None:
        raise ValueError("the recommendation monitor needs a spec with `recommend:`")
    metric = getattr(spec.rollout, "metric", None)
    return RecsInputs(
        model=spec.name,
        version=version.version,
        log_folder=log_folder,
        outcomes_folder=outcomes_folder,
        state_folder=state_folder,
        window=window,
        since=None,
        budget_ms=(spec.serving or Serving()).latency_budget_ms,
        monitoring=with_defaults(spec.monitoring or Monitoring(), None, window),
        catalog=catalog,
        metrics=dict(version.metrics or {}),
        k=parse_metric(recommend.metric)[1],
        interactions=None,
        outcome_name=getattr(metric, "name", None),
    )


def _min_answers(project: Project) -> int:
    """``monitoring.recommend.min_answers`` of the spec, else :data:`MIN_ANSWERS`."""
    watch = getattr(project.spec.monitoring or Monitoring(), "recommend", None)
    return int(getattr(watch, "min_answers", MIN_ANSWERS))


def _records(
    folder: Path,
    since: datetime,
    version: int | None,
    *,
    skip: int = 0,
    take: int | None = None,
) -> list[dict[str, Any]]:
    """The log's answers (of ``version``, when given) stamped from ``since`` on, among its
    records ``skip`` to ``skip + take`` in the log's order (all of them when ``take`` is
    None)."""
    out = []
    every = _read(folder)
    for record in every[skip:] if take is None else every[skip : skip + take]:
        if version is not None and record.get("model_version") != version:
            continue
        ts = record.get("ts")
        if isinstance(ts, str) and _moment(ts) >= since:
            out.append(record)
    return out


def _outcomes(folder: Path, ids: set[str]) -> list[dict[str, Any]]:
    """The outcomes posted for the answers ``ids`` names."""
    return [r for r in _read(folder) if str(r.get("request_id")) in ids]


def _read(folder: Path) -> list[dict[str, Any]]:
    """Every record of the log in ``folder`` (torn lines skipped)."""
    out: list[dict[str, Any]] = []
    if not folder.is_dir():
        return out
    for path in log_files(folder):
        for line in path.read_bytes().splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                out.append(record)
    return out


def _copy(records: list[dict[str, Any]], folder: Path) -> Path:
    """``records`` written to a scratch log in ``folder`` by the service's own writer."""
    folder.mkdir(parents=True, exist_ok=True)
    with PredictionLog(folder, worker="sprint") as log:
        for record in records:
            log.append_sync(record)
    return folder


def _window(records: list[dict[str, Any]]) -> timedelta:
    """One window that holds every answer of the load test (it lasts seconds)."""
    times = [_moment(r["ts"]) for r in records if isinstance(r.get("ts"), str)]
    span = (max(times) - min(times)) if times else timedelta(0)
    return timedelta(hours=int(span.total_seconds() // 3600) + 2)


def _moment(stamp: str) -> datetime:
    at = datetime.fromisoformat(stamp)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# -- reading a report -------------------------------------------------------------------


def _fallback_alert(report: dict[str, Any]) -> dict[str, Any] | None:
    for alert in report.get("alerts") or []:
        if str(alert.get("key", "")).startswith("fallback:"):
            return dict(alert)
    return None


def _answers(report: dict[str, Any]) -> int:
    return int((report.get("period") or {}).get("answers") or 0)


def _windows(report: dict[str, Any]) -> int:
    return int((report.get("period") or {}).get("windows") or 0)


def _click_through(report: dict[str, Any]) -> str | None:
    """Click-through by position of the outcomes read back, in one phrase."""
    names = (report.get("click_through") or {}).get("by_name") or {}
    parts = []
    for name, rows in names.items():
        hits = [r for r in rows if r.get("hits")]
        shown = ", ".join(
            f"{r['position']}: {int(r['hits']):,} of {int(r.get('shows') or 0):,}" for r in hits[:3]
        )
        total = sum(int(r.get("hits") or 0) for r in rows)
        parts.append(
            f"click-through by position read back: {total:,} {name} outcome(s) joined to their "
            f"impressions (position {shown}{', ...' if len(hits) > 3 else ''})"
        )
    return "; ".join(parts) or None


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1%}"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f} ms"


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3g}"
