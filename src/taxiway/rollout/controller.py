"""The rollout controller: start, check (analyse, decide, act), pause, resume, rollback,
abort, and the loop that checks on a schedule.

Every transition is one store transaction with its event and evidence (:mod:`.state`); the
unit state is saved before it (:mod:`.units`). So a controller killed at any point resumes
from what was stored: the next ``check`` reads only what the logs gained, reaches the same
verdict on the same data, and acts on it once (a transition made by a check that was killed
after it committed is seen, and a second one is refused by the store's compare-and-set).

``complete`` moves the candidate to ``production`` in the registry (the control's version
is archived by the same call) *before* it records the rollout complete; a kill between the
two leaves a running rollout whose candidate is already production, and the next check
completes it (setting a stage it already has changes nothing).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taxiway.errors import RolloutError, TaxiwayError
from taxiway.lineage import Emitter, LineageRun, rollout_dataset
from taxiway.models.registry import Registry, open_registry
from taxiway.rollout.analysis import Analysis, analyse, monitor_drift
from taxiway.rollout.interleaved import update_interleaved
from taxiway.rollout.plan import (
    Auditor,
    control_of,
    default_candidate,
    frozen_plan,
    recommend_rollout,
)
from taxiway.rollout.state import RolloutState, RolloutStore, open_rollout_store
from taxiway.rollout.units import update_units
from taxiway.rollout.verdict import Verdict, decide
from taxiway.spec.models import Rollout, Serving
from taxiway.spec.project import Project

__all__ = ["Auditor", "CheckResult", "Controller", "default_candidate"]


@dataclass(frozen=True)
class CheckResult:
    """One check: the state after it, the verdict, the analysis, and the transition made
    (None when it held)."""

    state: RolloutState
    verdict: Verdict
    analysis: Analysis
    transition: str | None


class Controller:
    """Rollouts of ``project``'s model: the store in its registry's database, the logs of
    its service, the unit state under ``<state>/rollout/<id>/``."""

    def __init__(self, project: Project, *, by: str = "taxiway rollout") -> None:
        self.project = project
        self.spec = project.spec
        self.name = project.spec.name
        self.by = by
        self._store: RolloutStore | None = None
        self._lineage = Emitter(
            project.spec.lineage, state_dir=project.state_dir, use_case=self.name
        )

    # ------------------------------------------------------------------ plumbing

    @property
    def store(self) -> RolloutStore:
        """The rollout store, opened on first use."""
        if self._store is None:
            self._store = open_rollout_store(self.spec.registry, self.project.state_dir)
        return self._store

    def close(self) -> None:
        """Close the store."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def plan(self) -> Rollout:
        """The spec's rollout section (its defaults when the spec has none); for a recommend
        spec, its unit is the interactions' user column (:func:`recommend_rollout`)."""
        plan = self.spec.rollout if self.spec.rollout is not None else Rollout()
        recommend = self.spec.recommend
        if recommend is not None:
            plan = recommend_rollout(plan, recommend.interactions.user)
        return plan

    @property
    def log_folder(self) -> Path:
        """The service's prediction log (``serving.log.path``, else ``<state>/predictions``)."""
        log = (self.spec.serving or Serving()).log
        return Path(log.path) if log.path else self.project.state_dir / "predictions"

    def folder(self, state: RolloutState) -> Path:
        """Where rollout ``state`` keeps its unit state."""
        return self.project.state_dir / "rollout" / str(state.id)

    def _registry(self) -> Registry:
        return open_registry(self.spec.registry, state_dir=self.project.state_dir)

    def current(self) -> RolloutState:
        """The active rollout; RolloutError when there is none."""
        state = self.store.active(self.name)
        if state is None:
            latest = self.store.latest(self.name)
            after = f" (the last one, {latest.id}, is {latest.state})" if latest else ""
            raise RolloutError(
                f"model {self.name!r} has no running or paused rollout{after}",
                fix="start one with `taxiway rollout start`",
            )
        return state

    # ------------------------------------------------------------------ commands

    def start(
        self,
        *,
        candidate: int | None = None,
        audited: Auditor | None = None,
        now: datetime | None = None,
        salt: str | None = None,
    ) -> RolloutState:
        """Start rolling out ``candidate`` (default: :func:`default_candidate`) at the plan's
        first step against the plan's control.

        ``salt`` (default: 16 random hex digits) keys the assignment hash; a rehearsal passes
        one derived from its seed, so the same seed assigns the same units to the same arms.
        """
        plan = self.plan
        if plan.interleaving is not None and self.spec.recommend is None:
            raise RolloutError(
                f"{self.name!r} is not a recommender, and only a recommender's lists can be "
                "interleaved (rollout.interleaving)",
                fix="drop rollout.interleaving from the plan",
            )
        candidate = candidate if candidate is not None else plan.candidate
        registry = self._registry()
        try:
            production = registry.production(self.name)
            number = production.version if production is not None else None
            if candidate is None:
                task = "recommend" if self.spec.recommend is not None else None
                chosen = default_candidate(registry, self.name, number, audited, task=task)
            else:
                chosen = registry.get(self.name, candidate)
        finally:
            registry.close()
        if number is not None and chosen.version == number:
            raise RolloutError(
                f"version {chosen.version} of {self.name!r} is already in production",
                fix="roll out a newer version (--candidate N)",
            )
        control = control_of(plan.control, number)
        budget = (self.spec.serving or Serving()).latency_budget_ms
        frozen = frozen_plan(plan, candidate=chosen.version, latency_budget_ms=budget)
        evidence = {
            "candidate": chosen.version,
            "chosen": "given"
            if candidate is not None
            else "newest audited candidate"
            if audited is not None
            else "newest candidate",
            "control": control,
            "production": number,
        }
        with self._step("start") as run:
            state = self.store.start(
                name=self.name,
                salt=salt or secrets.token_hex(8),
                control=control,
                candidate=chosen.version,
                unit=plan.unit,
                steps=list(plan.steps),
                plan=frozen,
                by=self.by,
                evidence=evidence,
                now=now,
            )
            run.wrote([rollout_dataset(self._lineage.namespace, self.name, state, "start")])
        return state

    def check(self, *, now: datetime | None = None) -> CheckResult:
        """Read what the logs gained, analyse, decide, and act on the verdict."""
        # a check that holds is no step: its run is sent only when it moved or failed
        with self._lineage.run("rollout.check", deferred=True) as run:
            result = self._check(now)
            served = rollout_dataset(
                self._lineage.namespace, self.name, result.state, result.transition
            )
            run.wrote([served])
            run.skip = result.transition is None
        return result

    def _check(self, now: datetime | None) -> CheckResult:
        state = self.current()
        moment = now or datetime.now(UTC)
        analysis = self.analyse(state)
        plan = Rollout.model_validate(state.plan)
        verdict = decide(analysis, state, plan, moment)
        stored = verdict.as_dict()
        evidence = {"verdict": verdict.kind, "reasons": verdict.reasons, **verdict.evidence}
        if verdict.kind == "promote":
            following = state.step_index + 1
            after = self.store.update(
                state,
                by=self.by,
                kind="promote",
                evidence=evidence,
                now=moment,
                step_index=following,
                share=state.steps[following],
                step_started_at=moment,
                verdict=stored,
            )
        elif verdict.kind == "complete":
            self._make_production(state)
            after = self.store.update(
                state,
                by=self.by,
                kind="complete",
                evidence=evidence,
                now=moment,
                state="complete",
                share=100.0,
                verdict=stored,
            )
        elif verdict.kind == "rollback":
            after = self.store.update(
                state,
                by=self.by,
                kind="rollback",
                evidence=evidence,
                now=moment,
                state="rolled_back",
                share=0.0,
                verdict=stored,
            )
        elif verdict.kind == "pause":
            after = self.store.update(
                state,
                by=self.by,
                kind="pause",
                evidence=evidence,
                now=moment,
                state="paused",
                verdict=stored,
            )
        else:
            after = self.store.update(state, by=self.by, kind=None, now=moment, verdict=stored)
        transition = None if verdict.kind == "hold" else verdict.kind
        return CheckResult(after, verdict, analysis, transition)

    def analyse(self, state: RolloutState) -> Analysis:
        """Fold in what the logs gained for ``state`` and look at it (no action)."""
        plan = Rollout.model_validate(state.plan)
        boundaries = [
            (event.at, event.step_index)
            for event in self.store.events(state.id)
            if event.kind in ("start", "promote")
        ]
        names = [plan.metric.name] if plan.metric is not None else []
        names += [n for n in plan.guardrails.outcomes if n not in names]
        units = update_units(
            self.folder(state),
            self.log_folder,
            salt=state.salt,
            started_at=state.started_at,
            boundaries=boundaries,
            names=names,
            latency_limit_ms=plan.guardrails.latency_p99_ms,
        )
        drift = monitor_drift(self.log_folder.parent / "monitor" / "service")
        shown = self.spec.recommend.k if self.spec.recommend is not None else 1
        interleaved = None
        if plan.interleaving is not None and plan.metric is not None:
            interleaved = update_interleaved(
                self.folder(state),
                self.log_folder,
                self.log_folder.parent / "outcomes",
                outcome=plan.metric.name,
                since=state.started_at,
            )
        return analyse(
            units,
            state,
            plan,
            boundaries=boundaries,
            drift=drift,
            items_per_answer=shown,
            interleaved=interleaved,
        )

    def pause(self, *, reason: str | None = None, now: datetime | None = None) -> RolloutState:
        """Hold the share where it is until resumed (the service keeps splitting)."""
        state = self.current()
        if state.state == "paused":
            return state
        return self._person(state, "pause", reason, now, state="paused")

    def resume(self, *, reason: str | None = None, now: datetime | None = None) -> RolloutState:
        """Go on from a pause; the step's clock restarts."""
        state = self.current()
        if state.state == "running":
            return state
        moment = now or datetime.now(UTC)
        return self._person(
            state, "resume", reason, moment, state="running", step_started_at=moment
        )

    def rollback(self, *, reason: str | None = None, now: datetime | None = None) -> RolloutState:
        """Send all traffic back to control at once."""
        return self._person(self.current(), "rollback", reason, now, state="rolled_back", share=0.0)

    def abort(self, *, reason: str | None = None, now: datetime | None = None) -> RolloutState:
        """End the rollout without a decision: all traffic back to control."""
        return self._person(self.current(), "abort", reason, now, state="aborted", share=0.0)

    def run(
        self,
        *,
        sleep: Callable[[float], Any] = time.sleep,
        on_check: Callable[[CheckResult], Any] | None = None,
        on_error: Callable[[TaxiwayError], Any] | None = None,
        max_checks: int | None = None,
    ) -> RolloutState:
        """Check every ``check_every`` until the rollout is no longer running or paused;
        returns its final state. An error in one check is reported and the loop goes on."""
        done = 0
        while max_checks is None or done < max_checks:
            state = self.store.active(self.name)
            if state is None:
                break
            try:
                result = self.check()
                if on_check is not None:
                    on_check(result)
            except TaxiwayError as error:
                if on_error is None:
                    raise
                on_error(error)
            done += 1
            if self.store.active(self.name) is None:
                break
            plan = Rollout.model_validate(state.plan)
            sleep(plan.check_every.total_seconds())
        latest = self.store.latest(self.name)
        if latest is None:  # pragma: no cover - run() is called with a rollout
            raise RolloutError(f"model {self.name!r} has no rollout")
        return latest

    # ------------------------------------------------------------------ internals

    def _person(
        self,
        current: RolloutState,
        kind: str,
        reason: str | None,
        now: datetime | None,
        **changes: Any,
    ) -> RolloutState:
        evidence = {"reason": reason} if reason else {}
        with self._step(kind) as run:
            after = self.store.update(
                current, by=self.by, kind=kind, evidence=evidence, now=now, **changes
            )
            run.wrote([rollout_dataset(self._lineage.namespace, self.name, after, kind)])
        return after

    def _step(self, kind: str) -> AbstractContextManager[LineageRun]:
        """One rollout step as an OpenLineage run, START to COMPLETE or FAIL (docs/lineage.md)."""
        return self._lineage.run(f"rollout.{kind}")

    def _make_production(self, state: RolloutState) -> None:
        registry = self._registry()
        try:
            registry.set_stage(
                self.name,
                state.candidate,
                "production",
                by=self.by,
                note=f"rollout {state.id} complete: the metric proved better",
            )
        finally:
            registry.close()
