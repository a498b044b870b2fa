"""`taxiway train --reproduce V`: rebuild version V's training set and compare it with the
Delta table version V was trained on.

The rebuild uses the spec and the sources as they are now, into a temporary folder (the
training set `taxiway train` reuses is untouched, nothing is registered). The verdict is
:class:`~taxiway.features.snapshots.TableDiff` (identical bit for bit, or each difference:
rows, columns, types, rows on one side only, values per column, order), and beside it the
recorded inputs that changed (feature definitions, request fields, each source's fingerprint),
which say why.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from taxiway.errors import ModelError
from taxiway.features.snapshots import Snapshot, TableDiff, compare_tables, read_snapshot
from taxiway.features.training_set import TrainingSetManifest, build_training_set
from taxiway.models.registry import Registry, open_registry
from taxiway.spec.project import Project

__all__ = ["Reproduction", "input_changes", "reproduce_version"]


@dataclass
class Reproduction:
    """The outcome of reproducing one registered version's training set."""

    name: str
    version: int
    snapshot: Snapshot
    diff: TableDiff
    inputs_changed: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """Whether the rebuild equals the recorded training set bit for bit."""
        return self.diff.identical

    def as_dict(self) -> dict[str, Any]:
        """The `taxiway train --reproduce V --json` document."""
        return {
            "name": self.name,
            "version": self.version,
            "identical": self.identical,
            "snapshot": self.snapshot.as_dict(),
            "comparison": self.diff.as_dict(),
            "inputs_changed": self.inputs_changed,
        }


def reproduce_version(
    project: Project,
    version: int,
    *,
    registry: Registry | None = None,
    progress: Callable[[str], None] | None = None,
    memory_limit: str | None = None,
) -> Reproduction:
    """Rebuild the training set of ``version`` of the spec's model and compare it with the
    Delta version it recorded. Raises :class:`ModelError` when the version recorded none."""
    say = progress or (lambda _: None)
    name = project.spec.name
    own = registry is None
    store = registry or open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        recorded = store.get(name, version)
    finally:
        if own:
            store.close()
    if not recorded.training.get("snapshot"):
        raise ModelError(
            f"version {version} of model {name!r} recorded no training-set snapshot (it was "
            "registered before snapshots existed, or by a recommender)",
            fix="reproduce a version trained since; `taxiway train` records one for each",
        )
    snapshot = Snapshot.from_dict(recorded.training["snapshot"])
    say(f"reading version {snapshot.version} of {snapshot.path}")
    before = read_snapshot(snapshot)
    folder = Path(tempfile.mkdtemp(prefix="taxiway-reproduce-", dir=_tmp_root(project)))
    try:
        out = folder / "training.parquet"
        manifest = build_training_set(project, out, progress=say, memory_limit=memory_limit)
        after = pq.read_table(out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    say("comparing")
    keys = [*recorded.training.get("keys", []), "timestamp"]
    diff = compare_tables(before, after, keys=keys)
    return Reproduction(
        name=name,
        version=version,
        snapshot=snapshot,
        diff=diff,
        inputs_changed=input_changes(recorded.training, manifest),
    )


def input_changes(training: dict[str, Any], rebuilt: TrainingSetManifest) -> list[str]:
    """The recorded inputs of a training set (a version's ``training``) that ``rebuilt``'s
    differ from, in words.

    >>> recorded = {"definitions_hash": "a1", "request_fields": [],
    ...             "sources": {"orders": {"fingerprint": "f1"}}}
    >>> now = TrainingSetManifest("", "", 0, 0, {}, [], [], None, "a1",
    ...                           {"orders": {"fingerprint": "f2"}}, "", 0.0)
    >>> input_changes(recorded, now)
    ['source orders: its data or contract changed (fingerprint f1 → f2)']
    """
    changes: list[str] = []
    if training.get("definitions_hash") != rebuilt.definitions_hash:
        changes.append(
            "feature definitions changed (definitions hash "
            f"{training.get('definitions_hash')} → {rebuilt.definitions_hash})"
        )
    if list(training.get("request_fields", [])) != rebuilt.request_fields:
        changes.append(
            f"request fields changed ({training.get('request_fields')} → {rebuilt.request_fields})"
        )
    before: dict[str, Any] = training.get("sources", {})
    for source in sorted(set(before) | set(rebuilt.sources)):
        old = (before.get(source) or {}).get("fingerprint")
        new = (rebuilt.sources.get(source) or {}).get("fingerprint")
        if old is None:
            changes.append(f"source {source}: read now, not recorded")
        elif new is None:
            changes.append(f"source {source}: recorded, not read now")
        elif old != new:
            changes.append(
                f"source {source}: its data or contract changed (fingerprint {old} → {new})"
            )
    return changes


def _tmp_root(project: Project) -> Path:
    root = project.state_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return root
