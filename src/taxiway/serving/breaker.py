"""A circuit breaker: stop calling a dependency that keeps failing, probe it, close again.

Closed: calls go through; ``failures`` consecutive failures open it. Open: calls are refused
at once (the caller answers from the fallback without waiting for a timeout) until
``reset_after`` has passed; then one probe call is let through (half-open). A successful probe
closes the breaker, a failed one opens it for another ``reset_after``.

>>> clock = [0.0]
>>> breaker = CircuitBreaker("store", failures=2, reset_after_s=10, clock=lambda: clock[0])
>>> breaker.allow(), breaker.failure(), breaker.failure(), breaker.state
(True, None, None, 'open')
>>> breaker.allow()
False
>>> clock[0] = 11.0
>>> breaker.allow(), breaker.state, breaker.allow()
(True, 'half_open', False)
>>> breaker.success(); breaker.state
'closed'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

__all__ = ["CircuitBreaker", "State"]

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Thread-safe; ``clock`` is injectable for tests (monotonic seconds)."""

    def __init__(
        self,
        name: str,
        *,
        failures: int = 5,
        reset_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = failures
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at = 0.0
        self._state: State = "closed"
        self._probing = False
        self.opened_count = 0

    @property
    def state(self) -> State:
        """``closed``, ``open`` or ``half_open``."""
        return self._state

    def allow(self) -> bool:
        """Whether a call may go through now (at most one probe while half-open)."""
        state: State = self._state  # the usual answer, read without the lock (one attribute)
        if state == "closed":
            return True
        with self._lock:
            if self._state == "closed":
                return True
            if self._state == "open" and self._clock() - self._opened_at >= self.reset_after_s:
                self._state = "half_open"
                self._probing = False
            if self._state == "half_open" and not self._probing:
                self._probing = True
                return True
            return False

    def success(self) -> None:
        """Record a call that worked: closes the breaker."""
        if self._state == "closed" and not self._failures:
            return  # nothing to change (the usual case): no lock taken
        with self._lock:
            self._failures = 0
            self._state = "closed"
            self._probing = False

    def failure(self) -> None:
        """Record a call that failed or overran: may open the breaker."""
        with self._lock:
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.threshold:
                if self._state != "open":
                    self.opened_count += 1
                self._state = "open"
                self._opened_at = self._clock()
                self._probing = False
