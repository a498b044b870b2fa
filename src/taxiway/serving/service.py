"""The state of one serving process: the predictor, its logs, keys, metrics and hot reload.

The served version is the registry's production version (or one pinned with ``--model``).
Answers are labelled with its stage as their ``arm`` (a pinned candidate answers as
``candidate``; promoted while served, it answers as ``production`` from the next registry
check). Readiness means loaded and warmed up. When the production version changes, the new one is
loaded and warmed in a thread and swapped in with one assignment: requests already running
finish on the version they started with, and the old version becomes the ``previous``
fallback.

A rollout of the model (running or paused in the rollout store, read every
``rollout_poll_s``, 1 s by default or ``TAXIWAY_ROLLOUT_POLL_S``, off the event loop) splits
the answers between its control and candidate arms (:mod:`taxiway.serving.arms`): each
worker reads the same state and assigns by the same hash, so a step, a pause, a rollback or
the end reaches every worker within a poll. The state is read once before the service is
ready, so a restarted worker assigns from its first request. A rollout lets the service start
with nothing in production (its control is then a baseline or a constant), and when nothing is
in production a rolled-back rollout's control goes on answering. A pinned service
(``--model``) serves its version only. Without a rollout the service answers as it always did.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Final

from taxiway.data.contracts.loader import load_contract
from taxiway.errors import ServingError, TaxiwayError
from taxiway.features.online import open_online_store
from taxiway.features.online.base import AsyncReader
from taxiway.models.registry import ModelVersion, open_registry
from taxiway.monitoring.columnar import compact_folder
from taxiway.rollout.state import RolloutState, RolloutStore, open_rollout_store
from taxiway.serving.arms import Arms, RolloutMetrics, load_arms
from taxiway.serving.auth import ApiKeys, load_keys
from taxiway.serving.faults import ENV as FAULTS_ENV
from taxiway.serving.faults import parse_faults, with_faults
from taxiway.serving.inputs import InputContract, Parsed, RequestError
from taxiway.serving.log import PredictionLog, log_files, open_prediction_log
from taxiway.serving.metrics import FLUSH_INTERVAL_S, Metrics
from taxiway.serving.openapi import openapi_document
from taxiway.serving.openapi_schemas import event_schemas
from taxiway.serving.opt_out import OptOutList
from taxiway.serving.predictor import OPT_OUT, Answer, Predictor
from taxiway.spec.models import Serving
from taxiway.spec.project import Project

__all__ = [
    "ROLLOUT_POLL_ENV",
    "Service",
    "compact_closed_logs",
    "compact_in_background",
    "no_production_version",
    "servable_version",
]

logger = logging.getLogger("taxiway.serving")

ROLLOUT_POLL_ENV = "TAXIWAY_ROLLOUT_POLL_S"
"""Seconds between two readings of the rollout state (default 1; 0 reads it only at start)."""

_OIP_TYPES = {"numeric": "FP64", "boolean": "BOOL", "timestamp": "BYTES", "categorical": "BYTES"}


def no_production_version(name: str) -> ServingError:
    """The refusal when nothing is in production."""
    return ServingError(
        f"no version of {name} is in production, so there is nothing to serve",
        fix="promote one: `taxiway models promote <version>` (see `taxiway models list`), "
        "or serve a candidate explicitly with `taxiway serve --model <version>`",
    )


def servable_version(project: Project, pinned: int | None = None) -> ModelVersion | None:
    """The version to serve: ``pinned``, else production; None when nothing is in production
    but the model has a rollout (its control answers, the candidate beside it); a clear error
    when there is neither."""
    version = _registry_version(project, pinned)
    if version is None and (pinned is not None or not _has_rollout(project)):
        raise no_production_version(project.spec.name)
    return version


def _registry_version(project: Project, pinned: int | None) -> ModelVersion | None:
    """``pinned`` (RegistryError when unknown), else the production version or None."""
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        if pinned is not None:
            return registry.get(project.spec.name, pinned)
        return registry.production(project.spec.name)
    finally:
        registry.close()


def _has_rollout(project: Project) -> bool:
    """Whether the model has a rollout the service would serve with nothing in production:
    one running or paused, or one that ended without completing (its control answers)."""
    try:
        store = open_rollout_store(project.spec.registry, project.state_dir)
    except TaxiwayError:
        return False
    try:
        state = store.active(project.spec.name) or store.latest(project.spec.name)
    except TaxiwayError:
        return False
    finally:
        store.close()
    return state is not None and state.state != "complete"


LIVE_FILE_S: Final = 300.0
"""A worker's newest log file modified this recently may still be written: not compacted."""


def compact_in_background(logs: Sequence[PredictionLog]) -> threading.Thread:
    """:func:`compact_closed_logs` of ``logs`` in a daemon thread at the lowest priority (Linux:
    a thread's own), so a service restarted over an old log gets its sidecars without slowing
    answers; the thread, started (every service, the prediction and the recommendation one)."""

    def run() -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        written = compact_closed_logs(logs)
        if written:
            logger.info("wrote the columnar sidecars of %d closed log files", len(written))

    thread = threading.Thread(target=run, name="taxiway-log-columns-at-start", daemon=True)
    thread.start()
    return thread


def compact_closed_logs(logs: Sequence[PredictionLog], live_s: float = LIVE_FILE_S) -> list[Path]:
    """Write the columnar sidecar of every closed file in the folders of ``logs`` that lacks
    one (:func:`~taxiway.monitoring.columnar.compact_folder`); the sidecars written. A log
    compacts the files it rotates itself, so this is for what no rotation covered: a log
    written before sidecars existed, the last file of a process that stopped. Left alone:
    each log's own open file, and each worker's newest file modified within ``live_s``
    (another worker may be writing it; the others of a worker are closed for good)."""
    written: list[Path] = []
    for log in logs:
        if not log.columns:
            continue
        newest: dict[str, Path] = {}
        for path in log_files(log.folder):  # in order of start time: the last is the newest
            newest[path.name.removeprefix("predictions-").rsplit("-", 2)[0]] = path
        live = [path for path in newest.values() if _modified_within(path, live_s)]
        current = [log.path] if log.path is not None else []
        try:
            written += compact_folder(log.folder, exclude=[*live, *current])
        except OSError as error:
            logger.warning("no columnar sidecars for %s: %s", log.folder, error)
    return written


def _modified_within(path: Path, seconds: float) -> bool:
    try:
        return path.stat().st_mtime > time.time() - seconds
    except OSError:
        return True  # gone or unreadable: leave it alone


class Service:
    """Everything a worker needs to answer; built before the server starts accepting."""

    def __init__(
        self,
        project: Project,
        *,
        pinned: int | None = None,
        reload_interval_s: float = 2.0,
        warm_up: bool = True,
        rollout_poll_s: float | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        spec = project.spec
        # the time written into the logs (`taxiway rollout simulate` passes a simulated one)
        self.clock: Callable[[], datetime] = clock or _utc_now
        self.project = project
        self.name = spec.name
        self.serving = spec.serving or Serving()
        self.max_in_flight = self.serving.max_in_flight
        self.pinned = pinned
        self.reload_interval_s = reload_interval_s
        self.keys: ApiKeys = load_keys(self.serving.auth)
        self.metrics = Metrics()
        self.taxiway_version = package_version("taxiway")
        self.ready = False
        self.not_ready_reason = "starting"
        self.faults = parse_faults(os.environ.get(FAULTS_ENV))
        if "recommend_model" in self.faults:
            raise ServingError(
                f"{FAULTS_ENV} asks for recommend_model={self.faults['recommend_model']}, but "
                "the prediction service has no recommender",
                fix=f"drill a prediction service with {FAULTS_ENV}=online_store=down or "
                "online_store=slow",
            )
        self.store = with_faults(
            open_online_store(
                spec.online_store,
                state_dir=project.state_dir,
                namespace=spec.name,
                # a SQLite read runs on the event loop: a locked file may cost a request a
                # tenth of the budget (and hold the loop that long) before the fallback
                read_timeout_ms=self.serving.latency_budget_ms / 10,
            ),
            self.faults,
        )
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="taxiway-io")
        self.rollout_poll_s = (
            float(os.environ.get(ROLLOUT_POLL_ENV) or 1.0)
            if rollout_poll_s is None
            else rollout_poll_s
        )
        # the rollout store's reads (and the arms' loading) happen in one thread of their own
        self._rollout_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="taxiway-rollout"
        )
        self.rollouts: RolloutStore | None = None
        self.rollout_metrics = RolloutMetrics(self.metrics)
        self.arms: Arms | None = None
        self._warm_up = warm_up
        version = self._wanted_version()
        self._unloadable: tuple[int, float] | None = None  # (rollout id, when it failed)
        self._store_lock = threading.Lock()
        try:
            rollout = self._rollout_state(has_production=version is not None)
        except TaxiwayError as error:
            logger.warning("cannot read the rollout state; serving without one: %s", error)
            rollout = None
        self._swap_lock = threading.Lock()
        if version is None and rollout is None:
            self._close_rollouts()
            raise no_production_version(spec.name)
        served: Predictor | None = None
        if version is not None:
            served = Predictor(spec, version, self.store, executor=self.executor, clock=self.clock)
            if warm_up:
                served.warm_up()
        if rollout is not None:
            self._follow(rollout, served)
        if served is None:
            if self.arms is None:
                self._close_rollouts()
                raise no_production_version(spec.name)
            served = self.arms.control  # nothing in production: the control's policy
        self.predictor: Predictor = served
        governance = spec.governance
        self.opt_out: OptOutList | None = None
        if governance is not None and governance.opt_out is not None:
            self.opt_out = OptOutList(spec, project.state_dir)
        self._opt_out_follower: asyncio.Task[None] | None = None
        pii = _pii_columns(project)
        log_spec = self.serving.log
        self.log: PredictionLog = open_prediction_log(
            log_spec, state_dir=project.state_dir, pii=pii
        )
        outcome_spec = log_spec.model_copy(
            update={"path": str(self.log.folder.parent / "outcomes")}
        )
        self.outcomes: PredictionLog = open_prediction_log(
            outcome_spec, state_dir=project.state_dir, pii=pii
        )
        self._reloader: asyncio.Task[None] | None = None
        self._rollout_follower: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.compaction: threading.Thread | None = None
        """The thread :meth:`start` compacts the logs' closed files in (sidecars missing)."""
        if self.predictor.policy == "model":  # not a rollout's baseline or constant control
            self.metrics.model_version.labels(self.name).set(self.predictor.version.version)
        for target, mode in self.faults.items():
            self.metrics.fault.labels(target, mode).set(1)
            logger.warning("fault injected by %s: %s=%s", FAULTS_ENV, target, mode)
        # everything loaded so far lives as long as the process: keep the collector off it,
        # so a full collection does not walk the model libraries' objects mid-request
        gc.collect()
        gc.freeze()
        self.ready = True
        self.not_ready_reason = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start watching the registry: for a new production version, or (pinned) for the
        served version's stage."""
        if self.reload_interval_s > 0:
            self._reloader = asyncio.create_task(self._watch())
        if self.rollout_poll_s > 0 and self.pinned is None:
            self._rollout_follower = asyncio.create_task(self._watch_rollout())
        self._flusher = asyncio.create_task(self._flush_metrics())
        if self.opt_out is not None:
            self._opt_out_follower = asyncio.create_task(self.opt_out.follow())
        self.compaction = compact_in_background([self.log, self.outcomes])

    async def stop(self) -> None:
        """Stop watching; flush the metrics; flush and close the logs."""
        tasks = (self._reloader, self._rollout_follower, self._flusher, self._opt_out_follower)
        for task in tasks:
            if task is not None:
                task.cancel()
        self.rollout_metrics.flush()
        self.metrics.flush()
        self._close_rollouts()
        self.log.close()
        self.outcomes.close()
        self.predictor.close()
        if isinstance(self.store, AsyncReader):
            await self.store.aclose()
        self.store.close()

    async def _flush_metrics(self) -> None:
        """The per-request tallies into prometheus_client every FLUSH_INTERVAL_S, so another
        worker's ``/metrics`` sees this one's counts at most that late."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self.rollout_metrics.flush()
            self.metrics.flush()

    def _wanted_version(self) -> ModelVersion | None:
        try:
            return _registry_version(self.project, self.pinned)
        except ServingError:
            return None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.reload_interval_s)
            try:
                wanted = await loop.run_in_executor(self.executor, self._wanted_version)
                if wanted is None:
                    continue
                if (
                    wanted.version == self.predictor.version.version
                    and self.predictor.policy == "model"
                ):
                    # a pinned version promoted or archived while served: its answers' arm
                    self.predictor.arm = wanted.stage
                    continue
                await loop.run_in_executor(self.executor, self._swap, wanted)
            except (TaxiwayError, OSError) as error:
                logger.warning(
                    "hot reload failed; still serving v%s: %s",
                    self.predictor.version.version,
                    error,
                )

    def _swap(self, version: ModelVersion) -> None:
        with self._swap_lock:  # the registry's watch and the rollout's end may both swap
            old = self.predictor
            if old.version.version == version.version and old.policy == "model":
                return
            self._swap_in(old, version)

    def _swap_in(self, old: Predictor, version: ModelVersion) -> None:
        arms = self.arms
        if (
            arms is not None
            and arms.candidate.version.version == version.version
            and arms.candidate.policy == "model"
        ):
            # the rollout's candidate became production: it is loaded and warm already
            new = arms.candidate
            new.arm = version.stage
            new.previous = new.previous or (old.model if old.policy == "model" else None)
        else:
            new = Predictor(
                self.project.spec,
                version,
                self.store,
                previous=old.model if old.policy == "model" else None,
                executor=self.executor,
                clock=self.clock,
            )
            new.warm_up()
        self.predictor = new  # one assignment: running requests keep their predictor
        self.metrics.model_version.labels(self.name).set(version.version)
        logger.info("now serving %s v%s (was v%s)", self.name, version.version, old.version.version)

    # ------------------------------------------------------------------ rollout

    def parse(self, item: Any) -> Parsed:
        """Validate one request item (``POST /v1/predict``'s) for the predictor that will
        answer it: during a rollout, its arm's (:meth:`Arms.parse`). A
        :class:`RequestError` names every bad field."""
        arms = self.arms
        if arms is None:
            return self.predictor.contract.parse(item)
        return arms.parse(item)

    def answer(self, parsed: Parsed, started: float) -> Awaitable[Answer]:
        """The answer to one request item: the served predictor's, or during a rollout its
        arm's (assigned by the request's unit). An opted-out unit gets the control answer,
        labelled ``opt_out`` (path and arm: the rollout counts it in neither arm)."""
        arms = self.arms
        if self.opt_out is not None and self.opt_out.holds(parsed):
            control = arms.control if arms is not None else self.predictor
            return control.answer(parsed, started, OPT_OUT, opted_out=True)
        if arms is None:
            return self.predictor.answer(parsed, started)
        return arms.answer(parsed, started)

    def _rollout_state(self, *, has_production: bool) -> RolloutState | None:
        """The rollout whose arms to serve: the running or paused one; with nothing in
        production, the newest (a rolled-back one's control goes on answering). None when
        pinned. A store that cannot be read raises (RolloutError): the poll keeps the arms it
        has, so a database that is down for a while changes nobody's arm."""
        if self.pinned is not None:
            return None
        store = self._rollout_store()
        state = store.active(self.name)
        if state is None and not has_production:
            state = store.latest(self.name)
            if state is not None and state.state == "complete":
                return None  # its candidate is production now: the registry says so
        return state

    def _close_rollouts(self) -> None:
        self._rollout_executor.shutdown(wait=True, cancel_futures=True)
        if self.rollouts is not None:
            self.rollouts.close()

    def _rollout_store(self) -> RolloutStore:
        """The rollout store, opened on first use (nothing connects until a read)."""
        with self._store_lock:
            if self.rollouts is None:
                self.rollouts = open_rollout_store(
                    self.project.spec.registry, self.project.state_dir
                )
            return self.rollouts

    def _follow(self, state: RolloutState | None, served: Predictor | None) -> None:
        """Take a reading of the rollout state (in the rollout thread, or before start);
        ``served`` is the production (or pinned) predictor, None when nothing is."""
        arms = self.arms
        if state is None:
            if arms is not None:
                self._end_rollout(arms)
            return
        if arms is not None and arms.same_rollout(state):
            if state.share != arms.share or state.state != arms.state:
                logger.info(
                    "rollout %s of %s: %s at %.4g%%", state.id, self.name, state.state, state.share
                )
            arms.follow(state)
            self.rollout_metrics.share.labels(self.name).set(arms.share)
            return
        failed = self._unloadable
        if failed is not None and failed[0] == state.id and time.monotonic() - failed[1] < 30:
            return  # tried a moment ago: not again every poll
        try:
            new = load_arms(
                self.project,
                state,
                self.store,
                self.executor,
                served,
                self.rollout_metrics.unassigned(self.name),
                warm_up=self._warm_up,
                clock=self.clock,
            )
        except (TaxiwayError, OSError) as error:
            self._unloadable = (state.id, time.monotonic())
            logger.warning(
                "cannot load the arms of rollout %s; serving without it (retried in 30 s): %s",
                state.id,
                error,
            )
            if arms is not None:  # another rollout's arms: it is over
                self._end_rollout(arms)
            return
        self._unloadable = None
        self.arms = new  # one assignment: requests running finish on the arms they started on
        self.rollout_metrics.share.labels(self.name).set(new.share)
        logger.info(
            "rollout %s of %s: control %s, candidate v%s, %s at %.4g%%",
            state.id,
            self.name,
            _control_label(state),
            state.candidate,
            state.state,
            new.share,
        )

    def _end_rollout(self, arms: Arms) -> None:
        """The rollout is over: serve the registry's production version (the candidate,
        when it completed, is loaded already) and drop the arms."""
        wanted = self._wanted_version()
        if wanted is not None:
            self._swap(wanted)  # nothing to do when it is served already
        self.arms = None
        self.rollout_metrics.share.labels(self.name).set(0)
        logger.info(
            "rollout %s of %s is over; serving v%s",
            arms.rollout_id,
            self.name,
            self.predictor.version.version,
        )

    async def _watch_rollout(self) -> None:
        loop = asyncio.get_running_loop()
        failing = False
        while True:
            await asyncio.sleep(self.rollout_poll_s)
            try:
                await loop.run_in_executor(self._rollout_executor, self._read_and_follow)
                failing = False
            except (TaxiwayError, OSError) as error:
                if not failing:  # once per outage, not every second
                    logger.warning("following the rollout failed: %s", error)
                failing = True

    def _read_and_follow(self) -> None:
        served = self.predictor if self.predictor.policy == "model" else None
        self._follow(self._rollout_state(has_production=served is not None), served)

    def follow_rollout(self) -> None:
        """Read the rollout state now and follow it, as the poll does every
        ``rollout_poll_s`` (for a caller driving the service itself: a simulation, a test).
        Blocking: call it off the event loop of a serving process."""
        self._read_and_follow()

    async def rollout_now(self) -> RolloutState | None:
        """The running or paused rollout of the model, else its newest (for the verdict)."""

        def read() -> RolloutState | None:
            store = self._rollout_store()
            return store.active(self.name) or store.latest(self.name)

        # not the rollout thread: it may be loading a candidate (the store reads per thread)
        return await asyncio.get_running_loop().run_in_executor(self.executor, read)

    # ------------------------------------------------------------------ recording

    async def record(
        self, answers: Sequence[Answer], parsed: Sequence[Parsed], items: Sequence[Any]
    ) -> None:
        """Append every answer to the durable log (before it is sent), and count it."""
        now = self.clock().isoformat()
        records = []
        for answer, request, item in zip(answers, parsed, items, strict=True):
            records.append(
                {
                    "ts": now,
                    "request_id": answer.request_id,
                    "model": self.name,
                    "model_version": answer.model_version,
                    "arm": answer.arm,
                    "unit": request.unit,
                    "path": answer.path,
                    "degraded": answer.degraded,
                    "reason": answer.reason,
                    "prediction": answer.prediction,
                    "latency_ms": round(answer.latency_ms, 3),
                    "lookup_ms": None if answer.lookup_ms is None else round(answer.lookup_ms, 3),
                    "entities": item.get("entities") if isinstance(item, dict) else None,
                    "request": request.values,
                    "features": answer.features,
                    "out_of_range": answer.out_of_range,
                    # each online feature the lookup could not give: missing or stale
                    "unavailable": dict(answer.unavailable) if answer.unavailable else None,
                    # whether the answer carried an explanation (not its values)
                    "explained": answer.explained,
                }
            )
            self._count(answer)
        began = time.perf_counter()
        try:
            if len(records) == 1:
                await self.log.append(records[0])
            else:
                await asyncio.gather(*(self.log.append(r) for r in records))
        except TaxiwayError as error:
            raise ServingError(
                f"the prediction log cannot be written ({error.message}); refusing to answer "
                "unlogged",
                fix=error.fix,
            ) from None
        self.metrics.log_commit_tally.observe(time.perf_counter() - began)

    async def record_outcome(self, record: dict[str, Any]) -> None:
        """Append an outcome to the outcomes log."""
        await self.outcomes.append(record)

    async def outcome(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Record one outcome posted to ``/v1/outcomes`` (``payload`` already validated:
        ``name``, ``value``, and ``request_id`` or ``unit``; ``timestamp`` defaults to now)
        and return the record appended."""
        now = self.clock().isoformat()
        record = {
            "received_at": now,
            "request_id": payload.get("request_id"),
            "unit": payload.get("unit"),
            "name": payload["name"],
            "value": payload["value"],
            "timestamp": payload.get("timestamp") or now,
        }
        await self.record_outcome(record)
        return record

    def _count(self, answer: Answer) -> None:
        m = self.metrics
        m.latency_of(answer.path, answer.arm).observe(answer.latency_ms / 1000)
        if answer.path != "model":
            m.fallbacks_of(answer.path.removeprefix("fallback:"), _reason(answer.reason)).inc()
        if answer.unavailable:
            views = self.predictor.contract.online
            # once per answer and view, whatever number of its features
            seen = {(views.get(name, "other"), status) for name, status in answer.unavailable}
            for view, status in seen:
                m.missing_of(view, status).inc()
        if answer.lookup_ms is not None:
            m.store_latency_tally.observe(answer.lookup_ms / 1000)
        for name in answer.out_of_range:
            m.out_of_range_of(name).inc()

    def refresh_gauges(self) -> None:
        """Gauges read at scrape time (and the rollout's tallies, flushed)."""
        self.rollout_metrics.flush()
        for breaker in (self.predictor.store_breaker, self.predictor.model_breaker):
            self.metrics.breaker_open.labels(breaker.name).set(1 if breaker.state == "open" else 0)

    # ------------------------------------------------------------------ documents

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document for the served version; during a rollout whose arms take
        different inputs, a request item holds either arm's, each described with the arm that
        reads it (an entity only one arm needs is not required)."""
        p = self.predictor
        arms = self.arms
        events = event_schemas(self.project.spec)
        if arms is None or arms.same_inputs:
            return openapi_document(self.name, p.version.version, p.contract, events)
        control, candidate = arms.control.contract, arms.candidate.contract
        document = openapi_document(
            self.name, p.version.version, _either(control, candidate), events
        )
        body = document["paths"]["/v1/predict"]["post"]["requestBody"]
        _describe_arms(body["content"]["application/json"]["schema"]["oneOf"][0], arms)
        return document

    def _inputs(self) -> InputContract:
        """What a request may send: the served version's inputs, or during a rollout whose
        arms take different inputs, either arm's."""
        arms = self.arms
        if arms is None or arms.same_inputs:
            return self.predictor.contract
        return _either(arms.control.contract, arms.candidate.contract)

    def oip_metadata(self) -> dict[str, Any]:
        """Open Inference Protocol model metadata."""
        contract = self._inputs()
        inputs = [{"name": e, "datatype": "BYTES", "shape": [-1]} for e in contract.entities]
        inputs += [
            {"name": n, "datatype": _OIP_TYPES.get(r.kind, "BYTES"), "shape": [-1]}
            for n, r in contract.fields.items()
        ]
        return {
            "name": self.name,
            "versions": [str(self.predictor.version.version)],
            "platform": f"taxiway-{self.predictor.model.serving_kind}",
            "inputs": inputs,
            "outputs": [
                {"name": "prediction", "datatype": "FP64", "shape": [-1]},
                {"name": "degraded", "datatype": "BOOL", "shape": [-1]},
            ],
        }

    def oip_parse(self, payload: Any) -> tuple[list[Parsed], list[dict[str, Any]], str | None]:
        """Open Inference Protocol tensors → validated request items (one per row), the
        items, and the request's id; a :class:`RequestError` names the tensor (``inputs.<i>``)
        and, for a bad value, its place in ``data``."""
        if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
            raise RequestError([("inputs", "expected a list of input tensors")])
        contract = self._inputs()
        columns: dict[str, list[Any]] = {}
        where: dict[str, int] = {}
        problems: list[tuple[str, str]] = []
        for index, tensor in enumerate(payload["inputs"]):
            if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
                problems.append((f"inputs.{index}", "expected a tensor with a name"))
                continue
            data = tensor.get("data")
            if not isinstance(data, list):
                problems.append((f"inputs.{index}.data", "expected a list"))
                continue
            name = tensor["name"]
            if name not in contract.entities and name not in contract.fields:
                known = ", ".join([*contract.entities, *contract.fields])
                problems.append(
                    (f"inputs.{index}.name", f"unknown input `{name}`; expected {known}")
                )
                continue
            shape_problem = _shape_problem(tensor.get("shape"), len(data))
            if shape_problem:
                problems.append((f"inputs.{index}.shape", f"{name}: {shape_problem}"))
                continue
            columns[name] = data
            where[name] = index
        sizes = {len(v) for v in columns.values()}
        if not problems and len(sizes) > 1:
            problems.append(("inputs", "every input tensor must have the same length"))
        if not problems and (not sizes or sizes == {0}):
            problems.append(("inputs", "no rows"))
        if problems:
            raise RequestError(problems)
        rows = sizes.pop()
        if rows > 1000:
            raise RequestError([("inputs", "at most 1000 rows per request")])
        items = [
            {
                "entities": {e: columns[e][i] for e in contract.entities if e in columns},
                "features": {f: columns[f][i] for f in contract.fields if f in columns},
            }
            for i in range(rows)
        ]
        parsed = []
        for row, item in enumerate(items):
            try:
                parsed.append(self.parse(item))
            except RequestError as error:
                problems += [_tensor_problem(loc, what, row, where) for loc, what in error.problems]
        if problems:
            raise RequestError(problems)
        request_id = payload.get("id")
        return parsed, items, request_id if isinstance(request_id, str) else None

    def oip_response(self, answers: Sequence[Answer], request_id: str | None) -> dict[str, Any]:
        """Open Inference Protocol response for ``answers``."""
        out: dict[str, Any] = {
            "model_name": self.name,
            "model_version": _version_text(answers[0].model_version if answers else None),
            "outputs": [
                {
                    "name": "prediction",
                    "datatype": "FP64",
                    "shape": [len(answers)],
                    "data": [a.prediction for a in answers],
                },
                {
                    "name": "degraded",
                    "datatype": "BOOL",
                    "shape": [len(answers)],
                    "data": [a.degraded for a in answers],
                },
            ],
            "parameters": {"request_ids": [a.request_id for a in answers]},
        }
        if request_id is not None:
            out["id"] = request_id
        return out


def _either(control: InputContract, candidate: InputContract) -> InputContract:
    """The inputs either arm takes (a name both take keeps the control's rule)."""
    return InputContract(
        entities={**candidate.entities, **control.entities},
        fields={**candidate.fields, **control.fields},
        online={**candidate.online, **control.online},
    )


def _describe_arms(item: dict[str, Any], arms: Arms) -> None:
    """Mark in a request item's schema the inputs only one arm reads (in place)."""
    control, candidate = arms.control.contract, arms.candidate.contract
    entities = item["properties"]["entities"]
    entities["required"] = [e for e in control.entities if e in candidate.entities]
    fields = item["properties"]["features"]["properties"]
    for need, schemas, names in (
        ("required", entities["properties"], control.entities.keys() ^ candidate.entities.keys()),
        ("read", fields, control.fields.keys() ^ candidate.fields.keys()),
    ):
        for name in names:
            only = "control" if name in control.names() else "candidate"
            schemas[name]["description"] = (
                f"{need} only when the rollout's {only} arm serves the request "
                "(the answer's `arm`); the other arm ignores it"
            )
    for name, rule in candidate.fields.items():
        theirs = control.fields.get(name)
        if theirs is not None and theirs.schema() != rule.schema():
            fields[name] = {
                "anyOf": [theirs.schema(), rule.schema()],
                "description": "the control arm reads the first form, the candidate the second",
            }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _version_text(version: int | None) -> str:
    """An OIP ``model_version``: empty when no version answered (no answer, or a rollout's
    baseline or constant control)."""
    return "" if version is None else str(version)


def _control_label(state: RolloutState) -> str:
    kind = state.control.get("kind")
    if kind == "version":
        return f"v{state.control.get('version')}"
    if kind == "constant":
        return f"constant {state.control.get('constant')}"
    return str(kind)


def _shape_problem(shape: Any, values: int) -> str | None:
    """What is wrong with a tensor's ``shape`` for ``values`` values (one value per row)."""
    if not isinstance(shape, list) or not shape:
        return "expected a shape: [rows] or [rows, 1]"
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape):
        return "expected a shape of non-negative integers"
    if any(n != 1 for n in shape[1:]):
        return f"one value per row: shape [rows] or [rows, 1], not {shape}"
    if shape[0] != values:
        return f"shape {shape} says {shape[0]} rows, `data` holds {values} values"
    return None


def _tensor_problem(loc: str, what: str, row: int, where: dict[str, int]) -> tuple[str, str]:
    """A request item's problem (``features.dest``) as the tensor's (``inputs.2.data.0``)."""
    name = loc.partition(".")[2]
    if name in where:
        return f"inputs.{where[name]}.data.{row}", f"{name}: {what}"
    return "inputs", f"{name or loc}: {what}"  # e.g. an entity with no tensor: required


def _reason(reason: str | None) -> str:
    """A low-cardinality label for a fallback reason."""
    if reason is None:
        return "none"
    for key in ("timed out", "failed", "breaker open", "overran", "out of the training range"):
        if key in reason:
            return key.replace(" ", "_")
    if "online feature" in reason:
        return "missing_features"
    return "other"


def _pii_columns(project: Project) -> set[str]:
    """Columns marked PII in any contract, and the feature columns built from them."""
    spec = project.spec
    pii: set[str] = set()
    for source in spec.sources.values():
        if source.contract is None:
            continue
        try:
            contract = load_contract(source.contract)
        except TaxiwayError:
            continue
        for obj in contract.schema_:
            for prop in obj.properties:
                if prop.pii:
                    pii.add(prop.name)
    for name, view in spec.features.items():
        for column in view.output_names(name):
            if any(column.endswith(f"__{p}") for p in pii):
                pii.add(column)
    return pii
