"""`taxiway run`: the scheduler of the retraining loop, one tick at a time.

Each tick (:meth:`Scheduler.tick`), in the one process holding the retrain lock:

1. **The monitor's triggers.** The monitor (`taxiway monitor` and the service's own) keeps
   the alerts firing now in ``<state>/monitor/alerts.json`` (:mod:`taxiway.monitoring.alerts`),
   each with the time it was first notified. An alert whose kind ``retrain.on`` lists and
   whose episode (its key and that first notification) was not acted on yet starts a retrain
   with the alert's key as its trigger (``drift:price``). An episode is acted on once: the
   same alert still firing at the next tick does nothing; resolved and firing again, it is
   a new episode.
2. **The cadence.** When ``retrain.every`` has passed since the last retrain this scheduler
   ran (whatever its trigger, whatever gate stopped it), a retrain with trigger ``cadence``.
   One tick runs at most one retrain.
3. **The rollout.** The rollout controller's ``check`` of the active rollout, if there is one
   and its plan's ``check_every`` has passed since its state last changed (as the service's
   ``rollout.auto`` loop decides). A failed check is logged and the loop goes on.

**The lock.** Every `taxiway run` of a model tries the retrain lock
(:func:`~taxiway.rollout.leader.registry_lock`: a ``flock`` beside a SQLite registry, an
advisory lock in a PostgreSQL one) at each tick and keeps it while it lives; a process
without it does nothing that tick. So two schedulers never retrain at once, and when the
holder dies another takes over at its next tick.

**The state** (when the last retrain ran, the episodes acted on) is kept in the registry's
database (:mod:`taxiway.rollout.run_state`: the table ``run_state`` of the SQLite file or the
PostgreSQL schema), written by the lock's holder after each retrain, so a scheduler on
another host that takes the lock over knows what was done. A tick that cannot read it does
nothing (it cannot tell whether the retrain is due) and says why.

**A stop.** :meth:`Scheduler.stop` (`taxiway run` calls it on SIGTERM and SIGINT) lets the
step under way finish and ends the loop before the next. A run killed outright (SIGKILL)
in the middle of a retrain leaves what :func:`~taxiway.rollout.retrain.run_retrain` had
committed: a version is registered in one registry transaction, so never half; a candidate
registered before a later gate judged it stays at stage ``candidate`` (never rolled out: a
rollout starts only after every gate passed) until the next retrain archives or reports it
(:mod:`taxiway.models.retrain`), and neither the state nor the retrain runs record that run,
so the next tick retrains again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from taxiway.errors import TaxiwayError
from taxiway.models.retrain import RetrainResult, retrain_policy
from taxiway.rollout.controller import Controller
from taxiway.rollout.leader import LeaderLock, registry_lock
from taxiway.rollout.retrain import StandingSignOffs, run_retrain
from taxiway.rollout.run_state import open_run_state
from taxiway.spec.models import Rollout
from taxiway.spec.project import Project

__all__ = ["RUN_BY", "Scheduler", "TickResult", "alert_triggers"]

logger = logging.getLogger("taxiway.run")

RUN_BY = "taxiway run"
"""Who the scheduler's rollout checks name in the rollout's events."""

Clock = Callable[[], datetime]


@dataclass
class TickResult:
    """What one tick did: ``led`` whether this process held the lock; the retrain it ran
    (``trigger`` and ``result``) and the rollout check's verdict, if any."""

    led: bool
    trigger: str | None = None
    result: RetrainResult | None = None
    rollout: str | None = None
    notes: list[str] = field(default_factory=list)


def alert_triggers(alerts_file: Path, kinds: list[str]) -> dict[str, str]:
    """The alerts firing now in the monitor's state file ``alerts_file`` whose kind is one of
    ``kinds``: their key (the trigger, e.g. ``drift:price``) and the episode's first
    notification time. A missing or unreadable file fires nothing.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "alerts.json"
    ...     _ = path.write_text(json.dumps({"alerts": {
    ...         "drift:price": {"first_sent": "2026-12-06T05:00:00+00:00",
    ...                         "alert": {"kind": "drift"}},
    ...         "slo:latency": {"first_sent": "2026-12-06T05:00:00+00:00",
    ...                         "alert": {"kind": "slo"}}}}))
    ...     alert_triggers(path, ["drift", "quality"])
    {'drift:price': '2026-12-06T05:00:00+00:00'}
    """
    try:
        data = json.loads(alerts_file.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.warning("cannot read the monitor's alerts %s: %s", alerts_file, error)
        return {}
    firing = data.get("alerts") if isinstance(data, dict) else None
    if not isinstance(firing, dict):
        return {}
    found: dict[str, str] = {}
    for key, entry in sorted(firing.items()):
        if not isinstance(entry, dict):
            continue
        alert = entry.get("alert")
        kind = alert.get("kind") if isinstance(alert, dict) else None
        if kind in kinds:
            found[str(key)] = str(entry.get("first_sent", ""))
    return found


class Scheduler:
    """The retraining loop's scheduler for ``project`` (see the module docstring).

    ``clock`` is the time a tick takes as now for the cadence and passes to the retrain as
    its ``as_of`` (default: the wall clock, UTC; the rollout, on live traffic, always goes by
    the wall clock); ``lock`` defaults to the retrain lock of the registry.
    """

    def __init__(
        self,
        project: Project,
        *,
        clock: Clock | None = None,
        lock: LeaderLock | None = None,
        progress: Callable[[str], None] | None = None,
        signoffs: StandingSignOffs | None = None,
    ) -> None:
        self.project = project
        self.signoffs = signoffs
        self.policy = retrain_policy(project)
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.lock = lock or registry_lock(project, "retrain", "taxiway.run")
        self.say = progress or (lambda message: logger.info("%s", message))
        self.state = open_run_state(project)
        self.alerts_path = project.state_dir / "monitor" / "alerts.json"
        self._stop = threading.Event()
        self._leading = False

    # ------------------------------------------------------------------ the loop

    def run(self, tick: timedelta, *, once: bool = False) -> None:
        """Tick every ``tick`` until :meth:`stop` (or one tick with ``once``); the lock is
        released on the way out."""
        try:
            while not self._stop.is_set():
                self.tick()
                if once:
                    return
                self._stop.wait(tick.total_seconds())
        finally:
            self.close()

    def stop(self) -> None:
        """End the loop once the step under way is finished (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def close(self) -> None:
        """Release the lock: another scheduler may lead from its next tick."""
        self.lock.release()
        self._leading = False

    # ------------------------------------------------------------------ one tick

    def tick(self) -> TickResult:
        """One tick: the triggers, the cadence, the rollout (see the module docstring)."""
        if not self.lock.hold():
            if self._leading:
                self.say("lost the retrain lock: another `taxiway run` leads now")
            else:
                self.say("another `taxiway run` holds the retrain lock: waiting")
            self._leading = False
            return TickResult(led=False)
        if not self._leading:
            self.say(f"holding the retrain lock of {self.project.spec.name}")
            self._leading = True
        now = self.clock()
        outcome = TickResult(led=True)
        try:
            state = self.state.read(self.project.spec.name)
        except TaxiwayError as error:
            outcome.notes.append(f"{error.message} (fix: {error.fix})")
            self.say(f"{outcome.notes[-1]}: nothing this tick")
            return outcome
        trigger, episodes = self._due(state, now)
        if trigger is not None and not self.stopping:
            outcome.trigger = trigger
            outcome.result = self._retrain(trigger, now)
            state["last_retrain"] = {
                "at": now.isoformat(),
                "trigger": trigger,
                "gate": None if outcome.result is None else outcome.result.gate,
                "candidate": None if outcome.result is None else outcome.result.candidate,
            }
            handled: dict[str, str] = state.setdefault("episodes", {})
            handled.update(episodes)
            self._write_state(state, outcome)
        if not self.stopping:
            outcome.rollout = self._check_rollout(datetime.now(UTC))
        return outcome

    def _due(self, state: dict[str, Any], now: datetime) -> tuple[str | None, dict[str, str]]:
        """The trigger of the retrain due now (None: none), and the episodes it acts on."""
        handled = state.get("episodes", {})
        firing = alert_triggers(self.alerts_path, list(self.policy.on))
        fresh = {key: since for key, since in firing.items() if handled.get(key) != since}
        if fresh:
            return next(iter(fresh)), fresh
        last = state.get("last_retrain", {}).get("at")
        if last is None or now - datetime.fromisoformat(last) >= self.policy.every:
            return "cadence", {}
        return None, {}

    def _retrain(self, trigger: str, now: datetime) -> RetrainResult | None:
        self.say(f"retrain: trigger {trigger}, as of {now.isoformat()}")
        try:
            result = run_retrain(
                self.project, as_of=now, trigger=trigger, progress=self.say, signoffs=self.signoffs
            )
        except TaxiwayError as error:
            fix = f" (fix: {error.fix})" if error.fix else ""
            self.say(f"retrain failed: {error.message}{fix}")
            return None
        self.say(f"retrain: stopped at {result.gate}: {result.reason}")
        return result

    def _check_rollout(self, now: datetime) -> str | None:
        """Check the active rollout when its plan's ``check_every`` has passed since its
        state last changed (a check that holds changes it too); its verdict's kind."""
        try:
            with Controller(self.project, by=RUN_BY) as controller:
                state = controller.store.active(controller.name)
                if state is None:
                    return None
                if now < state.updated_at + Rollout.model_validate(state.plan).check_every:
                    return None
                result = controller.check(now=now)
        except (TaxiwayError, OSError, ValueError, KeyError, TypeError) as error:
            if isinstance(error, TaxiwayError):
                fix = f" (fix: {error.fix})" if error.fix else ""
                message = f"{error.message}{fix}"
            else:
                message = repr(error)
            self.say(f"rollout check failed: {message}")
            return None
        reasons = "; ".join(result.verdict.reasons) or "no reasons given"
        self.say(f"rollout {result.state.id}: {result.verdict.kind} ({reasons})")
        return result.verdict.kind

    # ------------------------------------------------------------------ the state

    def _write_state(self, state: dict[str, Any], outcome: TickResult) -> None:
        try:
            self.state.write(self.project.spec.name, state)
        except TaxiwayError as error:
            # the next tick, not knowing of this retrain, runs it again: logged, never lost
            outcome.notes.append(f"{error.message} (fix: {error.fix})")
            self.say(f"the retrain is not recorded: {outcome.notes[-1]}")
