"""Whether a recommender's model step runs on the event loop or in a thread.

In a thread, a step can be abandoned at its deadline (a hung model never holds a request past
its budget). The price is a thread hop per request and, under load, a convoy at the GIL: the
step's thread gives the GIL up at every numpy or faiss call and waits up to the interpreter's
switch interval (5 ms) to get it back from an event loop that always has another request to
serve, so a step of under 1 ms of CPU overran its 30 ms share and the breaker opened on a
model that was merely shared (bench/recommend_serve.py, one worker at concurrency 8: every
answer of the measured window came from the fallback). On the event loop the step costs only
its own work.

The rule, for one loaded version: its step runs on the loop once its last :data:`STREAK` steps
each took at most ``bound_s`` of CPU (the service gives :data:`INLINE_SHARE` of the model's
share of the budget: 7.5 ms of the default 50 ms), timed where they ran (the CPU time of the
step's thread: waiting for the GIL or a core does not count). A step that failed, was
abandoned at its deadline, took more CPU than ``bound_s``, or ran on the loop past its
deadline sends the next ones back to threads, until a new streak. A step on the loop cannot
be abandoned: a version that suddenly hangs is waited for once (its answer is used), and the
next step is in a thread again. A newly loaded version starts in threads (it has no streak).
The service keeps every step in threads during a drill (``TAXIWAY_FAULTS``) and when its
ranking stage reads a networked online store (Redis): a step that waits on a network can hang
without spending CPU, which this rule would not see.

>>> pace = StepPace(bound_s=0.0075, streak=2)
>>> pace.inline
False
>>> pace.observe(0.001); pace.observe(0.002); pace.inline
True
>>> pace.observe(0.020); pace.inline   # one slow step: back to threads
False
"""

from __future__ import annotations

__all__ = ["INLINE_SHARE", "STREAK", "StepPace"]

INLINE_SHARE = 0.25
"""The share of the model's part of the budget a step may take and still count as fast."""
STREAK = 8
"""Fast steps in a row after which the step runs on the event loop."""


class StepPace:
    """The recent pace of one version's model step (updated on the event loop)."""

    def __init__(self, bound_s: float, streak: int = STREAK) -> None:
        self.bound_s = bound_s
        self.streak = streak
        self._fast = 0

    @property
    def inline(self) -> bool:
        """Whether the next step runs on the event loop."""
        return self._fast >= self.streak

    def observe(self, seconds: float) -> None:
        """One step answered in time, having taken ``seconds`` of CPU."""
        if seconds <= self.bound_s:
            self._fast = min(self._fast + 1, self.streak)
        else:
            self._fast = 0

    def failed(self) -> None:
        """One step failed, was abandoned at its deadline, or answered past it."""
        self._fast = 0
