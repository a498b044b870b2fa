"""What the four phases share as they run: the sprint's options and state, a phase timed as a
whole, and a step whose failure becomes a failed check with its blocker (the sprint goes on).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taxiway.errors import TaxiwayError
from taxiway.models.registry import ModelVersion
from taxiway.spec.project import Project
from taxiway.sprint.assess import Fact
from taxiway.sprint.outcome import Check, Exercised, Phase, PhaseName, blocker

Progress = Callable[[str, str], None]
"""Called with (phase, what is happening now) as the sprint goes."""


@dataclass
class SprintOptions:
    """How to run a sprint (every field has a default)."""

    report_dir: Path | None = None
    """Where report.md/html/json and runbooks/ go. Default: ``<state dir>/sprint/report``."""
    as_of: datetime | None = None
    """The moment the sprint acts at: freshness, and the online store's values. Default now."""
    serve: bool = False
    """Keep the production service running after a deployment (its URL is in the result)."""
    port: int | None = None
    answers: Path | None = None
    """The readiness answers file (question id: yes|no) for what the sprint cannot observe."""
    load_seconds: float = 5.0
    concurrency: int = 8
    drill_requests: int = 200
    audit_sample: int = 100
    retrain: bool = False
    """Train and register a new version even when one was trained from the same inputs."""


@dataclass
class _State:
    project: Project
    options: SprintOptions
    say: Progress
    on_phase: Callable[[Phase], None]
    phases: list[Phase] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    observed: dict[str, Fact] = field(default_factory=dict)
    candidate: ModelVersion | None = None
    bodies: list[dict[str, Any]] = field(default_factory=list)
    exercised: dict[str, Exercised] = field(default_factory=dict)
    """What the monitor (``monitoring``) and the rollout controller (``rollout``) observed."""

    @property
    def blocked(self) -> bool:
        return any(b.critical_path for p in self.phases for b in p.blockers)


@contextmanager
def _phase(state: _State, name: PhaseName) -> Iterator[Phase]:
    phase = Phase(name, started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    state.phases.append(phase)
    began = time.perf_counter()
    try:
        yield phase
    finally:
        phase.duration_s = time.perf_counter() - began
        state.on_phase(phase)


@contextmanager
def _step(state: _State, phase: Phase, name: str, fix: str) -> Iterator[None]:
    """Run a step; an error becomes a failed check with a technical blocker (and the sprint
    goes on)."""
    state.say(phase.name, name)
    began = time.perf_counter()
    try:
        yield
    except TaxiwayError as error:
        phase.checks.append(_crashed(phase.name, name, error.message, error.fix or fix, began))
    except Exception as error:  # a bug or an unexpected failure: recorded, not raised
        where = traceback.extract_tb(error.__traceback__)[-1]
        evidence = f"{type(error).__name__}: {error} ({Path(where.filename).name}:{where.lineno})"
        phase.checks.append(_crashed(phase.name, name, evidence, fix, began))


def _crashed(phase: PhaseName, name: str, evidence: str, fix: str, began: float) -> Check:
    return Check(
        name,
        "fail",
        evidence[:300],
        time.perf_counter() - began,
        blocker=blocker(
            phase, "technical", f"{name} failed", evidence=evidence, fix=fix, kind="code"
        ),
    )
