"""Whether a recommender's model step runs on the event loop or in a thread.

In a thread, a step can be abandoned at its deadline (a hung model never holds a request past
its budget). The price is a thread hop per request and, under load, a convoy at the GIL: the
step's thread gives the GIL up at every numpy or faiss call and waits up to the interpreter's
switch interval (5 ms) to get it back from an event loop that always has another request to
serve, so a step of under 1 ms of CPU overran its 30 ms share and the breaker opened on a
model that was merely shared (bench/recommend_serve.py, one worker at concurrency 8: every
answer of the measured window came from the fallback). On the event loop the step costs only
its own work.

The rule, for one step (the model's or one fallback's) of one loaded version: it runs on the
loop once its last :data:`STREAK` runs each took at most ``bound_s`` of CPU (the service gives
:data:`INLINE_SHARE` of the step's share of the budget: 7.5 ms of the default 50 ms for the
model), timed where they ran (the CPU time of the
step's thread: waiting for the GIL or a core does not count). A step that failed, was
abandoned at its deadline or took more CPU than ``bound_s``, or two steps in a row that ran
on the loop past their deadline, send the next ones back to threads, until a new streak. A
step on the loop cannot be abandoned: a version that suddenly hangs is waited for twice (the
answers are used), then the next step is in a thread again. Why twice: on a loaded machine a
worker is sometimes not given a core for longer than the model's share, and a step on the
loop then finishes late without being slow; sending the next steps to threads would put them
in the GIL convoy above, where they overrun and open the breaker. Such a delay seldom hits two
steps in a row (the requests queued behind a late step start their clocks after it), a hang
does. A newly loaded version starts in threads (it has no streak).
The service keeps a drilled model step (``TAXIWAY_FAULTS=recommend_model=...``) in threads, and
every step when its ranking stage reads a networked online store (Redis) or an online store
drill is on: a step that waits on a network can hang without spending CPU, which this rule
would not see. The fallbacks that answer for a drilled model follow the rule: a broken model
sends every request to them, and in threads they would meet the convoy above.

>>> pace = StepPace(bound_s=0.0075, streak=2)
>>> pace.inline
False
>>> pace.observe(0.001); pace.observe(0.002); pace.inline
True
>>> pace.late(); pace.inline   # one step past its deadline on the loop: a delay, maybe
True
>>> pace.late(); pace.inline   # a second in a row: a hang, back to threads
False
>>> pace.observe(0.001); pace.observe(0.001); pace.observe(0.020); pace.inline  # one slow step
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
        self._late = False

    @property
    def inline(self) -> bool:
        """Whether the next step runs on the event loop."""
        return self._fast >= self.streak

    def observe(self, seconds: float) -> None:
        """One step answered in time, having taken ``seconds`` of CPU."""
        self._late = False
        if seconds <= self.bound_s:
            self._fast = min(self._fast + 1, self.streak)
        else:
            self._fast = 0

    def late(self) -> None:
        """One step on the loop answered past its deadline (its answer is used): the second
        such step in a row sends the next ones back to threads."""
        if self._late:
            self.failed()
        else:
            self._late = True

    def failed(self) -> None:
        """One step failed or was abandoned at its deadline."""
        self._fast = 0
        self._late = False
