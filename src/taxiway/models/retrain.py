"""One retrain of a shipped model, up to a registered candidate (the spec's ``retrain:``).

The gates, in order; the first that stops the run names it (:data:`Gate`):

1. ``contract``: the sources are checked against their contracts (``taxiway check``); a
   blocked source stops the run before anything is built.
2. ``no_new_data``: the training set for the new window is built; when fewer than
   ``retrain.min_new_rows`` source rows arrived since the training set of the newest
   registered version a finished run left (the source row counts its manifest recorded),
   nothing is trained or registered.
3. ``baseline``: the candidate is trained and registered (with lineage to the production
   version and the trigger) and must beat its baseline, as ``taxiway train`` asks.
4. ``worse_than_production``: the production version is scored on the candidate's own
   validation rows with the same metric; a candidate worse than production stops.
5. ``audit``: the handoff audit; a blocker stops.

A candidate stopped at 3-5 is archived with the reason as the stage change's note, so no
rollout ever picks it. A run that passes every gate stops at ``candidate``; the layer above
(:mod:`taxiway.rollout.retrain`) may start its rollout.

**A run that never finished.** A run killed after registering its candidate and before its
last gate leaves that candidate at ``candidate``, unjudged, and no record of the run
(:mod:`taxiway.models.retrain_runs` records a run when it ends). The next run does not count
new rows against it, and reports it (:attr:`RetrainResult.interrupted`): it archives it, with
the note ``interrupted: ...``, when its run's process (``lineage.retrain.host`` and ``pid``) is
on this host and gone; one registered on another host, whose process it cannot see, is left
as it is, reported each run, for an operator to archive (`taxiway models archive`).

The window slides: a retrain as of T trains on the spine times from ``T - retrain.window``
up to T less the label's horizon (a label not yet observed is not a label).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taxiway.data.check import check_project
from taxiway.errors import ModelError
from taxiway.features.training_set import TrainingSetManifest
from taxiway.models.artifact import load_model
from taxiway.models.audit import run_audit
from taxiway.models.evaluation import validation_scores
from taxiway.models.metrics import better
from taxiway.models.registry import ModelVersion, Registry, open_registry
from taxiway.models.retrain_runs import read_retrain_runs
from taxiway.models.training import train_model
from taxiway.spec.models import EventLabel, PeriodicSpine, Retrain, SumLabel
from taxiway.spec.project import Project

__all__ = [
    "Gate",
    "RetrainResult",
    "new_source_rows",
    "retrain_candidate",
    "retrain_policy",
    "unjudged_candidates",
    "windowed_project",
]

Gate = Literal[
    "contract",
    "no_new_data",
    "baseline",
    "worse_than_production",
    "audit",
    "candidate",
    "rollout_started",
]
"""Where a run stopped; ``candidate`` and ``rollout_started`` are the two good ends."""

STOPPED: frozenset[str] = frozenset({"contract", "baseline", "worse_than_production", "audit"})
"""The gates that stopped a run on a failure (exit 1); the others exit 0."""

BY = "taxiway retrain"
Progress = Callable[[str], None]


@dataclass
class RetrainResult:
    """What one run of `taxiway retrain` did and where it stopped."""

    name: str
    gate: Gate
    as_of: datetime
    trigger: str
    reason: str
    window: dict[str, str | None] = field(default_factory=dict)
    new_rows: int | None = None
    min_new_rows: int = 0
    previous: int | None = None
    """The version the new rows are counted against (the newest a finished run left)."""
    production: int | None = None
    candidate: int | None = None
    metric: str | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    """The metric on the candidate's validation rows: candidate, production, baseline."""
    blockers: list[str] = field(default_factory=list)
    rollout: dict[str, Any] | None = None
    signoff: dict[str, Any] | None = None
    """Whether the candidate is a routine retrain (``retrain.signoff``): ``routine``, the
    ``reasons`` it is not, and the standing sign-offs ``reused``."""
    interrupted: list[str] = field(default_factory=list)
    """The candidates earlier runs registered and never judged (they were killed): what was
    done with each (see the module docstring)."""
    timings_s: dict[str, float] = field(default_factory=dict)
    """Wall seconds of each stage the run reached: ``contract``, ``training_set``
    (a built set's phases as ``training_set.<phase>``), ``train`` (its parts as
    ``train.<part>``, from `taxiway train`), ``production``, ``audit``, ``rollout``; ``total``
    is the whole run."""

    def lap(self, stage: str, since: float) -> float:
        """Record the wall seconds of ``stage``, which began at ``since``
        (:func:`time.perf_counter`); returns now, the next stage's start."""
        now = time.perf_counter()
        self.timings_s[stage] = round(now - since, 3)
        return now

    @property
    def exit_code(self) -> int:
        """3 when the sources failed their contracts (as `taxiway check`), 1 when another
        gate stopped the run on a failure, else 0."""
        if self.gate == "contract":
            return 3
        return 1 if self.gate in STOPPED else 0

    def as_dict(self) -> dict[str, Any]:
        """The `taxiway retrain --json` document."""
        data = dataclasses.asdict(self)
        data["as_of"] = self.as_of.isoformat()
        data["exit_code"] = self.exit_code
        return data


def retrain_policy(project: Project) -> Retrain:
    """The spec's ``retrain:``; without one, the defaults (see docs/retraining.md)."""
    if project.spec.recommend is not None:
        raise ModelError(
            "`taxiway retrain` retrains `model:` specs; a `recommend:` spec is not supported yet",
            fix="retrain the recommender with `taxiway train` and `taxiway rollout start`",
        )
    return project.spec.retrain or Retrain()


def windowed_project(project: Project, as_of: datetime) -> tuple[Project, dict[str, str | None]]:
    """``project`` with its periodic spine cut to the window ending at ``as_of``.

    >>> from datetime import date
    >>> from taxiway.spec.models import TaxiwaySpec
    >>> spec = TaxiwaySpec.model_validate({"name": "x", "spine": {"every": "7d",
    ...     "start": "2024-01-01", "end": "2025-12-29", "source": "s"},
    ...     "retrain": {"window": "28d"}})
    >>> cut, window = windowed_project(Project(spec, Path("taxiway.yaml")), datetime(2025, 6, 1))
    >>> window["start"], window["end"]
    ('2025-05-04T00:00:00', '2025-06-01T00:00:00')
    """
    spec = project.spec
    spine = spec.spine
    policy = spec.retrain or Retrain()
    if not isinstance(spine, PeriodicSpine):
        if policy.window is not None:
            raise ModelError(
                "retrain.window slides a periodic spine (`every:`); this spec's spine has one "
                "row per event",
                fix="drop retrain.window (the whole source is trained on), or use a periodic spine",
            )
        return project, {"start": None, "end": None}
    naive = as_of.astimezone(UTC).replace(tzinfo=None)
    label = spec.label
    horizon = label.horizon if isinstance(label, EventLabel | SumLabel) else timedelta(0)
    end = min(_naive(spine.end), naive - horizon)
    start = _naive(spine.start)
    if policy.window is not None:
        start = max(start, naive - policy.window)
    if end < start:
        raise ModelError(
            f"as of {naive.isoformat()} the training window is empty: it would run from "
            f"{start.isoformat()} to {end.isoformat()} (spine end, or as-of less the label's "
            f"horizon)",
            fix="pass a later --as-of, or widen retrain.window",
        )
    moved = spine.model_copy(update={"start": start, "end": end})
    cut = dataclasses.replace(project, spec=spec.model_copy(update={"spine": moved}))
    return cut, {"start": start.isoformat(), "end": end.isoformat()}


def new_source_rows(manifest: TrainingSetManifest, previous: ModelVersion | None) -> int | None:
    """Source rows that arrived since ``previous``'s training set (None when there is none).

    Per source read now, its rows less the rows ``previous``'s manifest recorded (a source it
    did not read counts whole); a source that shrank counts 0.
    """
    if previous is None:
        return None
    before: dict[str, Any] = previous.training.get("sources") or {}
    total = 0
    for name, now in manifest.sources.items():
        then = int((before.get(name) or {}).get("rows") or 0)
        total += max(0, int(now.get("rows") or 0) - then)
    return total


def retrain_candidate(
    project: Project,
    *,
    as_of: datetime | None = None,
    trigger: str = "cadence",
    progress: Progress | None = None,
    registry: Registry | None = None,
) -> RetrainResult:
    """Run the gates of one retrain up to a registered candidate (see the module docstring)."""
    say = progress or (lambda _: None)
    began = time.perf_counter()
    policy = retrain_policy(project)
    _check_trigger(trigger, policy)
    when = as_of or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    name = project.spec.name
    result = RetrainResult(
        name=name,
        gate="candidate",
        as_of=when,
        trigger=trigger,
        reason="",
        min_new_rows=policy.min_new_rows,
    )
    say("checking the sources against their contracts")
    report = check_project(project, as_of=when)
    result.lap("contract", began)
    if report.blocked:
        blocked = [s.name for s in report.sources if s.status == "block"] or ["the spec"]
        result.gate = "contract"
        result.reason = f"the sources failed their check: {', '.join(blocked)} (`taxiway check`)"
        result.lap("total", began)
        return result
    cut, result.window = windowed_project(project, when)
    own = registry is None
    store = registry or open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        _train_and_gate(cut, store, result, policy, say)
        if result.interrupted:
            result.reason += "; " + "; ".join(result.interrupted)
        result.lap("total", began)
        return result
    finally:
        if own:
            store.close()


def _train_and_gate(
    project: Project, store: Registry, result: RetrainResult, policy: Retrain, say: Progress
) -> RetrainResult:
    from taxiway.features.training_set import cached_training_set
    from taxiway.models.training import training_set_path, training_snapshots_path

    name = result.name
    versions = store.list(name)
    unjudged = unjudged_candidates(versions, read_retrain_runs(project))
    result.interrupted = [_settle(store, version, say) for version in unjudged]
    left = {version.version for version in unjudged}
    finished = [version for version in versions if version.version not in left]
    last = finished[-1] if finished else None
    production = store.production(name)
    result.previous = last.version if last else None
    result.production = production.version if production else None
    say("building the training set for the window")
    clock = time.perf_counter()
    manifest, reused = cached_training_set(
        project,
        training_set_path(project),
        progress=say,
        snapshots=training_snapshots_path(project),
    )
    clock = result.lap("training_set", clock)
    if not reused:  # the build's own phases: sources, spine, each view, label, write
        result.timings_s.update({f"training_set.{p}": s for p, s in manifest.phases.items()})
    result.new_rows = new_source_rows(manifest, last)
    if result.new_rows is not None and result.new_rows < policy.min_new_rows:
        result.gate = "no_new_data"
        result.reason = (
            f"{result.new_rows:,} source rows arrived since v{result.previous}'s training set, "
            f"fewer than retrain.min_new_rows ({policy.min_new_rows:,}): nothing to do"
        )
        return result
    lineage = {
        "retrain": {
            "trigger": result.trigger,
            "as_of": result.as_of.isoformat(),
            "previous": result.previous,
            "production": result.production,
            "window": result.window,
            "new_rows": result.new_rows,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
    }
    say("training the candidate")
    trained = train_model(project, registry=store, progress=say, created_by=BY, lineage=lineage)
    clock = result.lap("train", clock)
    result.timings_s.update({f"train.{part}": s for part, s in trained.timings.items()})
    version = trained.version
    result.candidate = version.version
    metric = str(version.metrics.get("metric"))
    result.metric = metric
    result.scores["candidate"] = (version.metrics.get("model") or {}).get(metric)
    result.scores["baseline"] = (version.metrics.get("baseline") or {}).get(metric)
    if not trained.beats_baseline:
        return _stop(
            store, result, "baseline", f"the candidate does not beat its baseline on {metric}"
        )
    if production is not None:
        say(f"scoring production v{production.version} on the candidate's validation rows")
        scored = production_score(production, version, metric)
        clock = result.lap("production", clock)
        result.scores["production"] = scored
        if better(metric, scored, result.scores["candidate"]):
            return _stop(
                store,
                result,
                "worse_than_production",
                f"on the same validation rows, {metric} is {_fmt(result.scores['candidate'])} "
                f"for the candidate and {_fmt(scored)} for production v{production.version}",
            )
    say("auditing the candidate")
    audit = run_audit(project, version)
    result.lap("audit", clock)
    if audit.blocked:
        result.blockers = [
            f"{f.check}: {f.evidence}" for f in audit.findings if f.severity == "blocker"
        ]
        return _stop(store, result, "audit", f"the audit found {len(result.blockers)} blocker(s)")
    result.gate = "candidate"
    result.reason = f"v{version.version} passed every gate"
    return result


def unjudged_candidates(
    versions: list[ModelVersion], runs: list[dict[str, Any]]
) -> list[ModelVersion]:
    """The versions a retrain registered, still at ``candidate``, that no finished run in
    ``runs`` names: their run was killed (or is still under way) before its gates judged them.
    """
    judged = {run.get("candidate") for run in runs}
    return [
        version
        for version in versions
        if version.created_by == BY
        and version.stage == "candidate"
        and version.version not in judged
    ]


def _settle(store: Registry, version: ModelVersion, say: Progress) -> str:
    """Archive ``version``, unjudged, when its run's process is gone; what was done, in words."""
    retrain: dict[str, Any] = version.lineage.get("retrain") or {}
    host, pid = retrain.get("host"), retrain.get("pid")
    run = f"the retrain as of {retrain.get('as_of')} (trigger {retrain.get('trigger')})"
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        say(f"archiving v{version.version}: {run} ended before its gates judged it")
        store.set_stage(
            version.name,
            version.version,
            "archived",
            by=BY,
            note=f"interrupted: {run} ended before its gates judged v{version.version}",
        )
        return f"v{version.version}, left unjudged by {run}, was archived"
    where = f"process {pid} on {host}" if host else "a run of an older taxiway"
    return (
        f"v{version.version} was registered by {run} ({where}), which has not finished: it "
        f"stays at candidate, unjudged; `taxiway models archive` it if that run is dead"
    )


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (this process's own earlier runs are over:
    a process runs its retrains one after the other)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def production_score(
    production: ModelVersion, candidate: ModelVersion, metric: str
) -> float | None:
    """``metric`` of ``production``'s model on ``candidate``'s validation rows."""
    path = Path(str(candidate.training.get("path")))
    table = pq.read_table(path)
    missing = [f for f in production.features if f not in table.column_names]
    if missing:
        raise ModelError(
            f"production v{production.version} reads {', '.join(missing)}, which the new "
            "training set does not have: the two cannot be scored on the same rows",
            fix="roll the candidate out by hand (`taxiway rollout start --candidate "
            f"{candidate.version}`) after a review",
        )
    cut = np.datetime64(str((candidate.metrics.get("split") or {}).get("cut")))
    valid = table.filter(pa.array(table.column("timestamp").to_numpy() >= cut))
    label = str(candidate.training.get("label"))
    y = np.asarray(
        valid.column(label).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
    )
    p = load_model(production.artifact_dir).predict_table(valid)
    value = validation_scores(y, p, candidate.task).get(metric)
    return None if value is None else float(value)


def _stop(store: Registry, result: RetrainResult, gate: Gate, reason: str) -> RetrainResult:
    """Archive the candidate with ``reason`` so no rollout picks it; the run stops at ``gate``."""
    assert result.candidate is not None
    store.set_stage(result.name, result.candidate, "archived", by=BY, note=f"{gate}: {reason}")
    result.gate = gate
    result.reason = reason
    return result


def _check_trigger(trigger: str, policy: Retrain) -> None:
    kind = trigger.split(":", 1)[0]
    allowed = ["cadence", "manual", *policy.on]
    if kind not in allowed:
        raise ModelError(
            f"trigger {trigger!r}: retrain.on does not list {kind!r}",
            fix=f"pass one of {', '.join(allowed)} (an alert as e.g. drift:<feature>), or add "
            f"{kind!r} to retrain.on",
        )


def _naive(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return datetime(value.year, value.month, value.day)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
