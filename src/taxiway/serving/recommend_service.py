"""The state of one recommendation worker: the Recommender, its budget, fallbacks, logs, metrics.

The served version is the registry's production version of the spec's name, or the one pinned
with ``--model``; with none promoted, the newest registered recommend version (``/v2/health/
ready`` says which). An answer is the top ``k`` for a user now, within
``serving.latency_budget_ms`` of its arrival, from the first of these that answers in time:

1. ``model``: the full pipeline (every stage of the Recommender, primary first) over the
   user's stored history plus the request's ``context.recent_items``; with a ranking stage
   whose ``features`` name views, the ranker reads them from the spec's online store at the
   request time (:mod:`~taxiway.recommend.ranking_online`: missing values are NaN, counted in
   ``taxiway_missing_features``; a store that fails makes this step fail);
2. ``fallback:itemknn`` (when the spec has an itemknn stage): item-to-item from the same
   history and recent items, the later steps filling what it leaves;
3. ``fallback:segment_popularity`` (when the catalog has categories): popularity in the user's
   segment (history shares per category x popularity within the category), global popularity
   filling what it leaves;
4. ``fallback:popularity``: the popularity stage, computed in place: there is always an answer.

The chain is :attr:`Recommender.fallback_stages
<taxiway.recommend.pipeline.Recommender.fallback_stages>`, the one the handoff audit checks.

Every step runs through :meth:`Recommender.recommend` with ``stages=``, so every fallback keeps
the filters (already seen, unavailable, denied) and the ordering. The budget is shared so the
fallbacks have time left when the model overruns: the model has until :data:`MODEL_SHARE` of
it, the fallbacks before popularity until :data:`FALLBACK_SHARE` (split evenly: with both,
itemknn until 75% and segment popularity until 90%), popularity the rest. A step runs in a
worker thread and is abandoned at its deadline (the thread finishes on its own; its result is
dropped), except the model step of a version whose recent steps were all fast, which runs on
the event loop (:mod:`taxiway.serving.step_pace`: no thread hop, no convoy at the GIL under
load); a model overrun or error counts against a circuit breaker, and while it is open the
model is not asked. A user with no history before now and no recent items gets popularity at
once, ``degraded`` with the ``reason`` (``no history``): there is nothing to personalise from.

A rollout of the recommender (running or paused in the rollout store, read every
``rollout_poll_s``: 1 s by default or ``TAXIWAY_ROLLOUT_POLL_S``, off the event loop, as the
prediction service does) splits the answers by **user** between its control and candidate
arms (:mod:`taxiway.serving.recommend_arms`): each answer names its ``arm`` and the
``model_version`` that chose the list (null for a baseline control: the popularity stage of
the candidate's Recommender). Both arms are loaded once, warm, when the service first reads
the rollout; when it ends the registry's production version answers again (the candidate,
when it completed, already loaded). Without a rollout every answer is ``arm`` ``control``.
Every answer's full list (item, position from 1, score, stage) is in the durable prediction log
before it is sent; outcomes posted per request and item go to the outcomes log beside it, and
:func:`taxiway.serving.recommend_log.join_impressions` joins the two.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from typing import Any

from taxiway.errors import FeatureError, RequestError, ServingError, TaxiwayError
from taxiway.features.online import OnlineStore, open_online_store
from taxiway.features.online.sqlite import SqliteStore
from taxiway.models.registry import ModelVersion, open_registry
from taxiway.recommend.pipeline import Recommendation, Recommender
from taxiway.recommend.ranking_online import attach_online_features
from taxiway.recommend.split import to_micros
from taxiway.rollout.state import RolloutState, RolloutStore, open_rollout_store
from taxiway.serving.arms import RolloutMetrics
from taxiway.serving.auth import ApiKeys, load_keys
from taxiway.serving.breaker import CircuitBreaker
from taxiway.serving.faults import ENV as FAULTS_ENV
from taxiway.serving.faults import model_fault, parse_faults, with_faults
from taxiway.serving.interleave import ARM as INTERLEAVED
from taxiway.serving.interleave import interleaved_answer
from taxiway.serving.log import PredictionLog, open_prediction_log
from taxiway.serving.metrics import FLUSH_INTERVAL_S, Metrics
from taxiway.serving.predictor import RequestIds
from taxiway.serving.recommend_arms import (
    RecommendArms,
    Served,
    load_recommend_arms,
    load_served,
)
from taxiway.serving.service import ROLLOUT_POLL_ENV, compact_in_background
from taxiway.serving.step_pace import INLINE_SHARE, STREAK, StepPace
from taxiway.spec.models import Serving
from taxiway.spec.project import Project

__all__ = [
    "ARM",
    "FALLBACK_SHARE",
    "MAX_RECENT_ITEMS",
    "MODEL_SHARE",
    "RecommendAnswer",
    "RecommendRequest",
    "RecommendService",
    "recommend_version",
]

logger = logging.getLogger("taxiway.serving")

ARM = "control"
"""The arm of every answer when no rollout is running."""
MODEL_SHARE = 0.6
"""The share of the latency budget the full pipeline may use before the fallbacks answer."""
FALLBACK_SHARE = 0.9
"""The share of the budget by which the fallbacks before popularity must have answered."""
MAX_RECENT_ITEMS = 1000
"""The most items ``context.recent_items`` may hold."""
MAX_ID_LENGTH = 512
TASK = "recommend"
"""The registry's ``task`` of a recommender's versions."""


@dataclass(frozen=True)
class RecommendRequest:
    """A validated ``POST /v1/recommend`` body."""

    user: str
    k: int
    recent_items: tuple[str, ...] = ()


@dataclass
class RecommendAnswer:
    """What the service answers for one request, and what it logs."""

    request_id: str
    user: str
    items: list[Recommendation]
    model_version: int | None  # None: a rollout's baseline control answered
    degraded: bool
    path: str
    latency_ms: float
    reason: str | None = None
    arm: str = ARM
    recent_items: tuple[str, ...] = ()
    unknown_user: bool = False
    shown: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shown = [
            {"item": r.item, "position": n, "score": r.score, "stage": r.stage}
            for n, r in enumerate(self.items, start=1)
        ]

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        out: dict[str, Any] = {
            "items": self.shown,
            "request_id": self.request_id,
            "model_version": self.model_version,
            "arm": self.arm,
            "degraded": self.degraded,
            "path": self.path,
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.reason:
            out["reason"] = self.reason
        return out

    def record(self, ts: str, model: str) -> dict[str, Any]:
        """The prediction log's record of this answer: the full list shown."""
        return {
            "ts": ts,
            "request_id": self.request_id,
            "model": model,
            "model_version": self.model_version,
            "arm": self.arm,
            "unit": self.user,
            "path": self.path,
            "degraded": self.degraded,
            "reason": self.reason,
            "latency_ms": round(self.latency_ms, 3),
            "k": len(self.shown),
            "unknown_user": self.unknown_user,
            "recent_items": list(self.recent_items),
            "items": self.shown,
        }


def recommend_version(project: Project, pinned: int | None = None) -> tuple[ModelVersion, str]:
    """The version to serve and why: ``pinned``, else production, else the newest registered
    recommend version. A :class:`ServingError` with the fix when there is none."""
    name = project.spec.name
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        if pinned is not None:
            return registry.get(name, pinned), "pinned"
        production = registry.production(name)
        if production is not None:
            return production, "production"
        versions = [v for v in registry.list(name) if v.task == TASK]
    finally:
        registry.close()
    if not versions:
        raise ServingError(
            f"no recommender of {name} is registered, so there is nothing to serve",
            fix=f"train one: `taxiway train -f {project.spec_path}`",
        )
    return max(versions, key=lambda v: v.version), "newest registered (none promoted)"


def _load(project: Project, pinned: int | None) -> Served:
    version, chosen = recommend_version(project, pinned)
    return load_served(version, chosen)


class RecommendService:
    """Everything a recommendation worker needs to answer; built before the server accepts."""

    def __init__(
        self,
        project: Project,
        pinned: int | None = None,
        *,
        reload_interval_s: float = 2.0,
        clock: Callable[[], datetime] | None = None,
        warm_up: bool = True,
        rollout_poll_s: float | None = None,
    ) -> None:
        spec = project.spec
        if spec.recommend is None:
            raise ServingError(
                f"{project.spec_path} has no `recommend:` section, so there is no recommender "
                "to serve",
                fix="serve it with the prediction service (`taxiway serve` does so for a spec "
                "with `model:`)",
            )
        self.project = project
        self.name = spec.name
        self.clock: Callable[[], datetime] = clock or _utc_now
        self.serving = spec.serving or Serving()
        self.budget_s = self.serving.latency_budget_ms / 1000
        self.max_in_flight = self.serving.max_in_flight
        self.pinned = pinned
        self.reload_interval_s = reload_interval_s
        self.metrics = Metrics()
        self.taxiway_version = package_version("taxiway")
        self.ready = False
        self.not_ready_reason = "starting"
        self.keys: ApiKeys = load_keys(self.serving.auth)
        self.faults = parse_faults(os.environ.get(FAULTS_ENV))
        # the ranking stage's feature views, read from the online store at the request time
        store = _feature_store(project, self.serving)
        if "online_store" in self.faults and store is None:
            raise ServingError(
                f"{FAULTS_ENV} asks for online_store={self.faults['online_store']}, but the "
                "recommendation service reads no online store (recommend.ranking names no "
                "feature view)",
                fix=f"drill a recommender with {FAULTS_ENV}=recommend_model=down or "
                "recommend_model=slow",
            )
        self.feature_store = None if store is None else with_faults(store, self.faults)
        # a step may run on the event loop (step_pace) only when it waits on nothing remote: no
        # online store, or SQLite in process, and no store drill; a drilled model step never
        # does (its fault runs in its thread), the fallbacks that answer for it may
        self._may_inline = "online_store" not in self.faults and (
            store is None or isinstance(store, SqliteStore)
        )
        # what the model step does first in a drill (None: nothing; never set in production)
        self._model_fault = model_fault(self.faults, self.budget_s)
        self.served = self._with_features(_load(project, pinned))
        reset = self.serving.breaker.reset_after.total_seconds()
        self.model_breaker = CircuitBreaker(
            "model", failures=self.serving.breaker.failures, reset_after_s=reset
        )
        # a rollout's candidate has a breaker of its own: its overruns never close control's
        self.candidate_breaker = CircuitBreaker(
            "model:candidate", failures=self.serving.breaker.failures, reset_after_s=reset
        )
        # the model step's threads: abandoned at the deadline, so a few may still be running;
        # the fallbacks have threads of their own, so a slow model cannot starve them
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="taxiway-recommend")
        self.fallback_executor = ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="taxiway-fallback"
        )
        self._ids = RequestIds()
        # each loaded version's steps' paces (by path): whether a step runs on the event loop
        self._paces: weakref.WeakKeyDictionary[Recommender, dict[str, StepPace]] = (
            weakref.WeakKeyDictionary()
        )
        self._warm = warm_up
        if warm_up:  # before the logs open: a version that cannot answer leaves nothing open
            self._warm_up()
        self.rollout_poll_s = (
            float(os.environ.get(ROLLOUT_POLL_ENV) or 1.0)
            if rollout_poll_s is None
            else rollout_poll_s
        )
        # the rollout store's reads (and the arms' loading) happen in one thread of their own
        self._rollout_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="taxiway-rollout"
        )
        self._store_lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self.rollouts: RolloutStore | None = None
        self.rollout_metrics = RolloutMetrics(self.metrics)
        self.arms: RecommendArms | None = None
        self._unloadable: tuple[int, float] | None = None  # (rollout id, when it failed)
        try:
            self._read_and_follow()
        except (TaxiwayError, OSError) as error:
            logger.warning("cannot read the rollout state; serving without one: %s", error)
        log_spec = self.serving.log
        self.log: PredictionLog = open_prediction_log(log_spec, state_dir=project.state_dir)
        outcome_spec = log_spec.model_copy(
            update={"path": str(self.log.folder.parent / "outcomes")}
        )
        self.outcomes: PredictionLog = open_prediction_log(
            outcome_spec, state_dir=project.state_dir
        )
        self.compaction: threading.Thread | None = None  # the sidecars of closed files, at start
        self.metrics.model_version.labels(self.name).set(self.served.version.version)
        for target, mode in self.faults.items():
            self.metrics.fault.labels(target, mode).set(1)
            logger.warning("fault injected by %s: %s=%s", FAULTS_ENV, target, mode)
        self._tasks: list[asyncio.Task[None]] = []
        # everything loaded so far lives as long as the process: keep the collector off it, so
        # a full collection does not walk the libraries' objects mid-request (the first one,
        # some requests after the start, took 77 ms of the step's thread: perf, not a guess)
        gc.collect()
        gc.freeze()
        self.ready = True
        self.not_ready_reason = ""

    # ------------------------------------------------------------------ lifecycle

    @property
    def recommender(self) -> Recommender:
        """The served version's Recommender."""
        return self.served.recommender

    @recommender.setter
    def recommender(self, recommender: Recommender) -> None:
        self.served = dataclasses.replace(self.served, recommender=recommender)

    @property
    def version(self) -> ModelVersion:
        """The served registry version."""
        return self.served.version

    def readiness(self) -> dict[str, Any]:
        """``/v2/health/ready``'s body: which version answers and why that one (during a
        rollout, also its arms and share, and the interleaved users' share when some are)."""
        served = self.served
        body = {
            "ready": self.ready,
            "model_version": served.version.version,
            "detail": f"serving {self.name} v{served.version.version} ({served.chosen}); "
            f"stages {', '.join(served.recommender.generators)}; fallbacks "
            + " → ".join(path for path, _ in served.fallbacks),
        }
        arms = self.arms
        if arms is not None:
            control = arms.control
            body["rollout"] = {
                "id": arms.rollout_id,
                "state": arms.state,
                "share": arms.share,
                "control": control.model_version
                if control.model_version is not None
                else control.chosen,
                "candidate": arms.candidate.version.version,
                # rollout.interleaving: the percent of users drafted from both arms
                **(
                    {"interleaving_share": arms.interleaving_share}
                    if arms.interleaving_share
                    else {}
                ),
            }
        return body

    def _warm_up(self, served: Served | None = None) -> None:
        """Answer once through every step of ``served`` (default: the served version), so the
        first request pays no first-call costs; then, where steps may run on the event loop,
        time each step :data:`~taxiway.serving.step_pace.STREAK` more times, so a step that is
        fast here starts on the loop instead of meeting the GIL convoy in threads on the first
        requests (:mod:`taxiway.serving.step_pace`; one slow answer sends it back)."""
        served = served or self.served
        recommender = served.recommender
        users = [str(recommender.users[0])] if len(recommender.users) else ["__warm_up__"]
        now = self.clock()
        # through the step's thread pool too: its first thread starts here, not on a request
        steps: list[tuple[str, Sequence[str] | None, float]] = []
        stages = served.model_stages
        try:
            self.executor.submit(lambda: recommender.recommend(users, now, stages=stages)).result()
            steps.append(("model", stages, MODEL_SHARE))
        except FeatureError as error:  # the ranker's online store is down: fallbacks answer
            logger.warning("warming up the model without its online features: %s", error)
        before = served.fallbacks[:-1]
        for n, (path, fallback) in enumerate(served.fallbacks):
            self.fallback_executor.submit(
                recommender.recommend, users, now, stages=fallback
            ).result()
            if n < len(before):
                steps.append((path, fallback, (FALLBACK_SHARE - MODEL_SHARE) / len(before)))
        if not self._may_inline:
            return
        paces: dict[str, StepPace] = {}
        for path, step_stages, share in steps:
            pace = paces[path] = StepPace(self.budget_s * share * INLINE_SHARE)
            for _ in range(STREAK):
                cpu = time.thread_time()
                recommender.recommend(users, now, stages=step_stages)
                pace.observe(time.thread_time() - cpu)
        self._paces[recommender] = paces  # one assignment: the loop may be reading the others

    async def start(self) -> None:
        """Flush the metrics now and then; watch the registry for a new version."""
        self._tasks.append(asyncio.create_task(self._flush_metrics()))
        if self.reload_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._watch()))
        if self.rollout_poll_s > 0 and self.pinned is None:
            self._tasks.append(asyncio.create_task(self._watch_rollout()))
        self.compaction = compact_in_background([self.log, self.outcomes])

    async def stop(self) -> None:
        """Stop watching; flush the metrics; flush and close the logs."""
        for task in self._tasks:
            task.cancel()
        self.metrics.flush()
        self.close()

    def close(self) -> None:
        """Close the logs, the rollout store and the model's threads (idempotent)."""
        self.log.close()
        self.outcomes.close()
        self._rollout_executor.shutdown(wait=True, cancel_futures=True)
        with self._store_lock:
            if self.rollouts is not None:
                self.rollouts.close()
                self.rollouts = None
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.fallback_executor.shutdown(wait=False, cancel_futures=True)
        if self.feature_store is not None:
            self.feature_store.close()

    async def _flush_metrics(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self._count_ranking_misses()
            self.metrics.flush()

    async def _watch(self) -> None:
        """A newly promoted version (or, with none promoted, a newer registered one) is loaded
        off the event loop and swapped in with one assignment."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.reload_interval_s)
            if self.pinned is not None:
                continue
            try:
                wanted, chosen = await asyncio.to_thread(recommend_version, self.project)
                if wanted.version == self.served.version.version:
                    continue
                await loop.run_in_executor(None, self._swap, wanted, chosen)
            except (TaxiwayError, OSError) as error:
                logger.warning(
                    "hot reload failed; still serving v%s: %s", self.served.version.version, error
                )

    def _swap(self, wanted: ModelVersion, chosen: str) -> None:
        """Serve ``wanted`` (loaded and warmed off the event loop; the rollout's candidate is
        reused when it is that version), swapped in with one assignment."""
        with self._swap_lock:  # the registry's watch and the rollout's end may both swap
            old = self.served
            if old.version.version == wanted.version:
                if old.chosen != chosen:
                    self.served = dataclasses.replace(old, chosen=chosen)
                return
            arms = self.arms
            if arms is not None and arms.candidate.version.version == wanted.version:
                new = dataclasses.replace(arms.candidate, chosen=chosen)  # loaded, warm
            else:
                new = self._with_features(load_served(wanted, chosen))
                if self._warm:
                    self._warm_up(new)
            self.served = new
            self.metrics.model_version.labels(self.name).set(new.version.version)
            logger.info(
                "now serving %s v%s (was v%s)", self.name, wanted.version, old.version.version
            )

    # ------------------------------------------------------------------ rollout

    def follow_rollout(self) -> None:
        """Read the rollout state now and follow it, as the poll does every
        ``rollout_poll_s`` (for a caller driving the service itself: a test, a simulation).
        Blocking: call it off the event loop of a serving process."""
        self._read_and_follow()

    async def rollout_now(self) -> RolloutState | None:
        """The running or paused rollout of the recommender, else its newest (for a verdict)."""

        def read() -> RolloutState | None:
            store = self._rollout_store()
            return store.active(self.name) or store.latest(self.name)

        return await asyncio.get_running_loop().run_in_executor(None, read)

    def _rollout_store(self) -> RolloutStore:
        """The rollout store, opened on first use (nothing connects until a read)."""
        with self._store_lock:
            if self.rollouts is None:
                self.rollouts = open_rollout_store(
                    self.project.spec.registry, self.project.state_dir
                )
            return self.rollouts

    def _rollout_state(self) -> RolloutState | None:
        """The rollout whose arms to serve: the running or paused one; with nothing in
        production, the newest unless it completed (a rolled-back one's control goes on
        answering, rather than its candidate as the newest registered version). None when
        pinned. A store that cannot be read raises: the poll keeps the arms it has."""
        if self.pinned is not None:
            return None
        store = self._rollout_store()
        state = store.active(self.name)
        if state is None and self.served.chosen != "production":
            state = store.latest(self.name)
            if state is not None and state.state == "complete":
                return None  # its candidate is production now: the registry says so
        return state

    def _read_and_follow(self) -> None:
        self._follow(self._rollout_state())

    def _follow(self, state: RolloutState | None) -> None:
        """Take a reading of the rollout state (in the rollout thread, or at start)."""
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
            new = load_recommend_arms(state, self.served, self._load_arm)
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
        self.arms = new  # one assignment: requests running finish on the arm they started on
        self.rollout_metrics.share.labels(self.name).set(new.share)
        logger.info(
            "rollout %s of %s: control %s, candidate v%s, %s at %.4g%%",
            state.id,
            self.name,
            new.control.chosen,
            state.candidate,
            state.state,
            new.share,
        )

    def _load_arm(self, number: int) -> Served:
        """Load (and warm) version ``number`` of the recommender for a rollout's arm."""
        registry = open_registry(self.project.spec.registry, state_dir=self.project.state_dir)
        try:
            version = registry.get(self.name, number)
        finally:
            registry.close()
        served = self._with_features(load_served(version, f"rollout arm (v{number})"))
        if self._warm:
            self._warm_up(served)
        return served

    def _end_rollout(self, arms: RecommendArms) -> None:
        """The rollout is over: serve the registry's version (the candidate, when it
        completed, is loaded already), then drop the arms."""
        if self.pinned is None:
            wanted, chosen = recommend_version(self.project)
            self._swap(wanted, chosen)
        self.arms = None
        self.rollout_metrics.share.labels(self.name).set(0)
        logger.info(
            "rollout %s of %s is over; serving v%s",
            arms.rollout_id,
            self.name,
            self.served.version.version,
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

    # ------------------------------------------------------------------ answering

    def parse(self, payload: Any) -> RecommendRequest:
        """Validate a ``POST /v1/recommend`` body: a :class:`RequestError` (422) names every
        bad field and the fix. An unknown user is not an error (popularity answers)."""
        if not isinstance(payload, dict):
            raise RequestError([("body", 'expected an object such as {"user": "u1", "k": 10}')])
        problems: list[tuple[str, str]] = []
        for key in sorted(set(payload) - {"user", "k", "context"}):
            problems.append((key, "unknown field; the fields are user, k and context"))
        user = payload.get("user")
        if user is None:
            problems.append(("user", "required: the id of the user to recommend to"))
        elif not _is_id(user):
            problems.append(
                ("user", f"expected a string (or an integer) id of 1 to {MAX_ID_LENGTH} characters")
            )
        arms = self.arms
        # the k either arm can answer: a request valid for one user is valid for every user
        max_k = self.served.max_k if arms is None else arms.max_k()
        k = payload.get("k", self.served.recommender.k)
        if isinstance(k, bool) or not isinstance(k, int):
            problems.append(("k", f"expected an integer from 1 to {max_k}"))
        elif not 1 <= k <= max_k:
            problems.append(
                ("k", f"{k} is out of range: ask for 1 to {max_k} items (the stages' k)")
            )
        recent: tuple[str, ...] = ()
        context = payload.get("context")
        if context is not None:
            if not isinstance(context, dict):
                problems.append(("context", 'expected an object such as {"recent_items": []}'))
            else:
                for key in sorted(set(context) - {"recent_items"}):
                    problems.append(
                        (f"context.{key}", "unknown field; the context holds recent_items")
                    )
                items = context.get("recent_items")
                if items is not None:
                    if not isinstance(items, list) or len(items) > MAX_RECENT_ITEMS:
                        problems.append(
                            (
                                "context.recent_items",
                                f"expected a list of at most {MAX_RECENT_ITEMS} item ids",
                            )
                        )
                    else:
                        bad = [n for n, item in enumerate(items) if not _is_id(item)]
                        for n in bad[:5]:
                            problems.append(
                                (
                                    f"context.recent_items.{n}",
                                    f"expected a string (or an integer) item id of 1 to "
                                    f"{MAX_ID_LENGTH} characters",
                                )
                            )
                        if not bad:
                            recent = tuple(str(item) for item in items)
        if problems:
            raise RequestError(problems)
        return RecommendRequest(user=str(user), k=int(k), recent_items=recent)

    async def recommend(
        self, user: str, k: int, context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The answer body for ``user``'s top ``k`` now (``context``: ``recent_items``), logged
        before it is returned. Validates as ``POST /v1/recommend`` does."""
        body: dict[str, Any] = {"user": user, "k": k}
        if context is not None:
            body["context"] = context
        started = time.perf_counter()
        answer = await self.answer(self.parse(body), started)
        await self.record(answer)
        return answer.body()

    async def answer(
        self, request: RecommendRequest, started: float, pick: tuple[str, Served] | None = None
    ) -> RecommendAnswer:
        """The top ``request.k`` within the budget from ``started`` (``perf_counter``): during
        a rollout, from the arm of ``request.user`` (``pick``: from this arm), or interleaved
        from both (:mod:`taxiway.serving.interleave`)."""
        arms = self.arms  # one read: a swap mid-request does not mix two versions
        arm: str = ARM
        if pick is not None:
            arm, served = pick
        elif arms is None:
            served = self.served
        else:
            arm, served = arms.pick(request.user)
            if arm == INTERLEAVED:
                return await interleaved_answer(self.answer, request, arms, started, self.clock())
        recommender = served.recommender
        at = self.clock()
        users = [request.user]
        recent = [list(request.recent_items)]
        code = int(recommender.user_codes(users)[0])
        reason: str | None = None
        steps = list(served.fallbacks)
        if not _has_history(recommender, code, at, request.recent_items):
            reason = "no history: an unknown user" if code < 0 else "no history before now"
            steps = steps[-1:]
        elif not (breaker := self._breaker(arm)).allow():
            reason = "model circuit breaker open"
        else:
            got, why = await self._within(
                started + self.budget_s * MODEL_SHARE,
                recommender,
                users,
                at,
                request.k,
                recent,
                served.model_stages,
                model=True,
                fault=self._model_fault,
                pace=self._pace(recommender, "model", MODEL_SHARE),
            )
            if got is not None:
                breaker.success()
                return self._answer(request, served, arm, got, "model", None, started, code)
            breaker.failure()
            reason = f"model {why}"
        before = steps[:-1]
        for n, (path, stages) in enumerate(before, start=1):
            share = MODEL_SHARE + (FALLBACK_SHARE - MODEL_SHARE) * n / len(before)
            got, why = await self._within(
                started + self.budget_s * share,
                recommender,
                users,
                at,
                request.k,
                recent,
                stages,
                pace=self._pace(recommender, path, (FALLBACK_SHARE - MODEL_SHARE) / len(before)),
            )
            if got is not None:
                return self._answer(request, served, arm, got, path, reason, started, code)
            reason = f"{reason}; {path} {why}"
        path, stages = steps[-1]
        # the last step answers in place, whatever the time: there is always an answer
        got = recommender.recommend(users, at, request.k, recent=recent, stages=stages)[0]
        return self._answer(request, served, arm, got, path, reason, started, code)

    def _with_features(self, served: Served) -> Served:
        """``served`` with its ranker reading the feature views from the online store."""
        if self.feature_store is not None:
            attach_online_features(self.project, served.recommender.ranker, self.feature_store)
        return served

    def _count_ranking_misses(self) -> None:
        """Add the ranking features the online store did not have to
        ``taxiway_missing_features`` (on the event loop: the tallies are not thread-safe)."""
        arms = self.arms
        served = [self.served] if arms is None else [self.served, arms.control, arms.candidate]
        rankers = {id(s.recommender): s.recommender.ranker for s in served}
        for ranker in rankers.values():
            online = ranker.online if ranker is not None else None
            if online is None:
                continue
            for (view, status), count in online.take_misses().items():
                self.metrics.missing_of(view, status).inc(count)

    def _breaker(self, arm: str) -> CircuitBreaker:
        return self.candidate_breaker if arm == "candidate" else self.model_breaker

    def _pace(self, recommender: Recommender, path: str, share: float) -> StepPace | None:
        """The pace of ``recommender``'s step ``path`` (``model`` or a fallback's path), whose
        part of the budget is ``share`` of it (a version loaded anew starts in threads); None
        when no step may run on the event loop."""
        if not self._may_inline:
            return None
        paces = self._paces.get(recommender)
        if paces is None:
            paces = self._paces.setdefault(recommender, {})
        pace = paces.get(path)
        if pace is None:
            pace = paces[path] = StepPace(self.budget_s * share * INLINE_SHARE)
        return pace

    async def _within(
        self,
        deadline: float,
        recommender: Recommender,
        users: list[str],
        at: datetime,
        k: int,
        recent: list[list[str]],
        stages: Sequence[str] | None,
        *,
        model: bool = False,
        fault: Callable[[], None] | None = None,
        pace: StepPace | None = None,
    ) -> tuple[list[Recommendation] | None, str | None]:
        """One step in a thread, abandoned at ``deadline``: its list, or None and why. The
        ``model`` step runs in the model's threads, a fallback in the fallbacks'; ``fault`` (a
        drill's, :func:`~taxiway.serving.faults.model_fault`) runs first in the step's thread.
        With a ``pace`` (the step's), the step is timed, and runs on the event loop when the
        pace says so and no fault is drilled on it (:mod:`taxiway.serving.step_pace`)."""
        left = deadline - time.perf_counter()
        if left <= 0:
            return None, "skipped: the budget was spent"

        def step() -> tuple[list[Recommendation], float]:
            """The list, and the CPU seconds of its thread it took (GIL waits excluded)."""
            if fault is not None:
                fault()
            cpu = time.thread_time()
            got = recommender.recommend(users, at, k, recent=recent, stages=stages)[0]
            return got, time.thread_time() - cpu

        try:
            if pace is not None and fault is None and pace.inline:
                began = time.perf_counter()
                got, cpu = step()
                if time.perf_counter() - began > left:  # waited for past its deadline
                    pace.late()
                else:
                    pace.observe(cpu)
                return got, None
            future = asyncio.get_running_loop().run_in_executor(
                self.executor if model else self.fallback_executor,
                step,
            )
            got, cpu = await asyncio.wait_for(future, left)
            if pace is not None:
                pace.observe(cpu)
            return got, None
        except TimeoutError:
            if pace is not None:
                pace.failed()
            return None, f"overran its share of the {self.serving.latency_budget_ms:g} ms budget"
        except Exception as error:  # a failing stage: the next step answers
            if pace is not None:
                pace.failed()
            logger.warning("recommending with stages %s failed: %r", stages or "all", error)
            return None, f"failed ({type(error).__name__})"

    def _answer(
        self,
        request: RecommendRequest,
        served: Served,
        arm: str,
        items: list[Recommendation],
        path: str,
        reason: str | None,
        started: float,
        code: int,
    ) -> RecommendAnswer:
        return RecommendAnswer(
            request_id=self._ids.next(),
            user=request.user,
            items=items,
            model_version=served.model_version,
            degraded=path != "model",
            path=path,
            latency_ms=(time.perf_counter() - started) * 1000,
            reason=reason,
            recent_items=request.recent_items,
            unknown_user=code < 0,
            arm=arm,
        )

    # ------------------------------------------------------------------ recording

    async def record(self, answer: RecommendAnswer) -> None:
        """Append the answer's full list to the durable log (before it is sent), and count it.
        A :class:`ServingError` (503) when it cannot be written: no unlogged answer."""
        began = time.perf_counter()
        try:
            await self.log.append(answer.record(self.clock().isoformat(), self.name))
        except TaxiwayError as error:
            raise ServingError(
                f"the prediction log cannot be written ({error.message}); refusing to answer "
                "unlogged",
                fix=error.fix,
            ) from None
        metrics = self.metrics
        metrics.log_commit_tally.observe(time.perf_counter() - began)
        metrics.latency_of(answer.path, answer.arm).observe(answer.latency_ms / 1000)
        if answer.path != "model":
            metrics.fallbacks_of(
                answer.path.removeprefix("fallback:"), _reason(answer.reason)
            ).inc()

    async def outcome(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Record one outcome posted to ``/v1/outcomes`` (``payload`` already validated), with
        its ``item`` when given, and return the record appended."""
        now = self.clock().isoformat()
        item = payload.get("item")
        record = {
            "received_at": now,
            "request_id": payload.get("request_id"),
            "unit": payload.get("unit"),
            "item": None if item is None else str(item),
            "name": payload["name"],
            "value": payload["value"],
            "timestamp": payload.get("timestamp") or now,
        }
        await self.outcomes.append(record)
        return record

    def refresh_gauges(self) -> None:
        """Gauges read at scrape time."""
        self._count_ranking_misses()
        for breaker in (self.model_breaker, self.candidate_breaker):
            self.metrics.breaker_open.labels(breaker.name).set(1 if breaker.state == "open" else 0)


def _feature_store(project: Project, serving: Serving) -> OnlineStore | None:
    """The online store the ranking stage reads, when ``recommend.ranking.features`` names
    any view (None: the service reads no store)."""
    recommend = project.spec.recommend
    if recommend is None or recommend.ranking is None or not recommend.ranking.features:
        return None
    return open_online_store(
        project.spec.online_store,
        state_dir=project.state_dir,
        namespace=project.spec.name,
        # read in the model's thread, within its share of the budget
        read_timeout_ms=serving.latency_budget_ms / 10,
    )


def _has_history(recommender: Recommender, code: int, at: datetime, recent: Sequence[str]) -> bool:
    """Whether there is anything to personalise from: a known recent item, or an interaction
    of the user before ``at``."""
    if recent and recommender.item_codes(recent):
        return True
    return recommender.histories.has_before(code, to_micros(at))


def _is_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH


def _reason(reason: str | None) -> str:
    """A low-cardinality label for a fallback reason."""
    if reason is None:
        return "none"
    for key in ("no history", "breaker open", "overran", "failed"):
        if key in reason:
            return key.replace(" ", "_")
    return "other"


def _utc_now() -> datetime:
    return datetime.now(UTC)
