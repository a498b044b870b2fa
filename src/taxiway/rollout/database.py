"""What the rollout store needs from a database backend (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

__all__ = ["Database", "Execute"]

Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""Run one statement (``?`` placeholders, ``{rollouts}``/``{rollout_events}`` table names)."""


class Database(Protocol):
    """What the store needs from a backend: reads, and write transactions under one lock."""

    def read(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one read statement."""
        ...

    def write(self, action: str) -> AbstractContextManager[Execute]:
        """A transaction holding the rollout write lock; commits on exit, rolls back on error."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
