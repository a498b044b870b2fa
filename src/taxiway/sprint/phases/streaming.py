"""The integration phase's stream step: when the spec declares a ``kind: nats`` source, the
freshness of its events in the served candidate's answers (:mod:`taxiway.sprint.freshness`),
as a check and the ``freshness`` fact the debrief reports.

Measured and every probe served: ``pass``. Measured with a probe never served: ``fail``, with a
technical blocker (the stream does not reach the service). Not measured (NATS unreachable,
nats-py missing, no streamed feature the model reads): ``warn`` with the reason, never a
number.
"""

from __future__ import annotations

import time
from pathlib import Path

from taxiway.models.registry import ModelVersion
from taxiway.sprint.freshness import Freshness, freshness_target, measure_freshness
from taxiway.sprint.outcome import Check, Phase, blocker
from taxiway.sprint.phases.running import _State, _step
from taxiway.sprint.served import RunningService

__all__ = ["freshness_check", "stream_freshness"]

NAME = "stream freshness: published event to served value"


def freshness_check(found: Freshness, spec_path: str) -> Check:
    """The check of one freshness finding (the module docstring).

    >>> freshness_check(Freshness(False, reason="NATS is unreachable"), "t.yaml").status
    'warn'
    >>> c = freshness_check(Freshness(True, source="s", feature="f", probes=5, seen=4,
    ...     p50_ms=3.0, p99_ms=9.0, max_ms=9.0, poll_ms=10.0), "t.yaml")
    >>> c.status, c.blocker.title if c.blocker else None
    ('fail', 'streamed events do not all reach the served features')
    """
    data = found.as_dict()
    if not found.measured:
        return Check(NAME, "warn", found.line(), data=data)
    if found.seen == found.probes:
        return Check(NAME, "pass", found.line(), data=data)
    return Check(
        NAME,
        "fail",
        found.line(),
        data=data,
        blocker=blocker(
            "integration",
            "technical",
            "streamed events do not all reach the served features",
            evidence=found.line(),
            fix=f"run `taxiway features stream -f {spec_path}` and read its output "
            "(quarantined events, lag), and check that the service reads the same online store",
            kind="code",
        ),
    )


def stream_freshness(
    state: _State, phase: Phase, service: RunningService, candidate: ModelVersion, log: Path
) -> None:
    """Measure the freshness on the served ``candidate`` (whose prediction log is ``log``);
    the finding goes to ``facts.freshness`` and a check to ``phase``."""
    project = state.project
    with _step(state, phase, "stream freshness", "run `taxiway features stream -f "
               f"{project.spec_path}` and fix what it reports"):  # fmt: skip
        state.say("integration", "stream freshness: probe events to served values")
        began = time.perf_counter()
        target = freshness_target(project.spec, candidate.features)
        if isinstance(target, str):
            found = Freshness(False, reason=target)
        else:
            found = measure_freshness(project, target, service.url, log, headers=service.headers)
        state.facts["freshness"] = found.as_dict()
        check = freshness_check(found, str(project.spec_path))
        check.duration_s = time.perf_counter() - began
        phase.checks.append(check)
