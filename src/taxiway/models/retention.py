"""Retention of training-set versions: which Delta versions registered models still need.

A registered version that is a candidate or in production may be promoted, rolled back to or
reproduced (`taxiway train --reproduce V`), so the training set it records is kept whatever
``model.snapshots.keep_last`` says; archived versions are retired and protect nothing. Every
model name in the registry counts, since specs sharing a state folder share its table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from taxiway.errors import FeatureError
from taxiway.features.snapshots import apply_retention
from taxiway.models.registry import Registry

__all__ = ["needed_versions", "retain_snapshots"]


def needed_versions(registry: Registry, table: Path) -> set[int]:
    """The versions of the Delta table ``table`` that non-archived registered versions record."""
    where = str(Path(table).resolve())
    needed: set[int] = set()
    for name in registry.names():
        for version in registry.list(name):
            snapshot = version.training.get("snapshot") or {}
            if version.stage != "archived" and snapshot.get("path") == where:
                needed.add(int(snapshot["version"]))
    return needed


def retain_snapshots(
    table: Path,
    keep_last: int | None,
    registry: Registry,
    say: Callable[[str], None] = lambda _: None,
) -> list[int]:
    """Vacuum the versions of ``table`` neither among the newest ``keep_last`` nor needed.

    Returns the data versions left without files when this run removed any (else none). A
    failure is said, not raised: the model is registered by then; the next run retries.
    """
    if keep_last is None:
        return []
    needed = needed_versions(registry, table)
    try:
        done = apply_retention(table, keep_last=keep_last, needed=needed)
    except FeatureError as error:
        say(f"snapshots: retention skipped ({error.message})")
        return []
    if not done.files_removed:
        return []
    say(
        f"snapshots: {done.files_removed} files of training-set versions "
        f"{', '.join(map(str, done.gone))} removed; kept {', '.join(map(str, done.kept))}"
    )
    return done.gone
