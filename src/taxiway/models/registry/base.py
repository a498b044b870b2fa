"""The registry's vocabulary and protocol, and the rules every backend shares.

A registry keeps, per model name, numbered versions: their metadata (metrics, features,
hashes, lineage, profile, serving form) in a database, their files in an artifact folder
``<artifact root>/<name>/<version>/``. Each version is in one stage: ``candidate`` when
registered, ``production`` (at most one per name) or ``archived``. Every stage change is kept
as a :class:`StageEvent`.

What is the same for every backend lives here, decided once: the stage rules
(:func:`plan_stage_change`), the JSON encoding, and how artifacts reach their folder
(:func:`stage_artifacts`, then :func:`place_artifacts` under the backend's write lock).
"""

from __future__ import annotations

import builtins
import json
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, cast, get_args, runtime_checkable

import orjson

from taxiway.errors import RegistryError

__all__ = [
    "COLUMNS",
    "EVENT_COLUMNS",
    "JSON_FIELDS",
    "STAGES",
    "ModelVersion",
    "NewVersion",
    "Registry",
    "Stage",
    "StageChange",
    "StageEvent",
    "check_name",
    "decode_json",
    "encode_json",
    "event_from_row",
    "no_such_model",
    "place_artifacts",
    "plan_stage_change",
    "stage_artifacts",
    "version_from_row",
]

Stage = Literal["candidate", "production", "archived"]
STAGES: tuple[Stage, ...] = get_args(Stage)

JSON_FIELDS = ("metrics", "features", "training", "lineage", "profile", "serving")
"""The fields stored as JSON (TEXT in SQLite, JSONB in PostgreSQL)."""

COLUMNS = (
    "name",
    "version",
    "stage",
    "created_at",
    "created_by",
    "algorithm",
    "task",
    "metrics",
    "features",
    "definitions_hash",
    "spec_hash",
    "git_commit",
    "training",
    "lineage",
    "profile",
    "serving",
)
"""The stored columns of a version, in the order :func:`version_from_row` reads them."""

EVENT_COLUMNS = ("name", "version", "from_stage", "to_stage", "at", "changed_by", "note")
"""The stored columns of a stage event, in the order :func:`event_from_row` reads them."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_INT64 = 2**63


@dataclass(frozen=True)
class NewVersion:
    """What a caller registers: a version's metadata, before the registry numbers it.

    The dict fields must be JSON-ready (str keys; None, bool, int, float, str, lists, dicts;
    numpy scalars and arrays are accepted too). NaN and infinity are stored as null.
    """

    name: str
    created_by: str
    algorithm: str
    task: str
    metrics: dict[str, Any]
    features: list[str]
    definitions_hash: str
    spec_hash: str
    git_commit: str | None
    training: dict[str, Any]
    lineage: dict[str, Any]
    profile: dict[str, Any]
    serving: dict[str, Any]


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model: its metadata, stage and artifact folder.

    ``version`` counts from 1 per ``name``; ``created_at`` is timezone-aware UTC;
    ``artifact_dir`` is the absolute path of the folder holding this version's files.
    """

    name: str
    version: int
    stage: Stage
    created_at: datetime
    created_by: str
    algorithm: str
    task: str
    metrics: dict[str, Any]
    features: list[str]
    definitions_hash: str
    spec_hash: str
    git_commit: str | None
    training: dict[str, Any]
    lineage: dict[str, Any]
    profile: dict[str, Any]
    serving: dict[str, Any]
    artifact_dir: str

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready: ``created_at`` as an ISO 8601 string."""
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True)
class StageEvent:
    """One stage change of a version; registration is the change from ``None`` to candidate."""

    name: str
    version: int
    from_stage: Stage | None
    to_stage: Stage
    at: datetime
    by: str
    note: str | None


@runtime_checkable
class Registry(Protocol):
    """Versions of models with their artifacts and stages. Backends: sqlite, postgres."""

    def register(self, new: NewVersion, artifacts: Path) -> ModelVersion:
        """Copy the folder ``artifacts`` in and record ``new`` as the next version, a candidate.

        Two processes registering at once never get the same number, and a version is never
        recorded without its files.
        """
        ...

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """Version ``version`` of ``name`` (the newest when None); RegistryError if unknown."""
        ...

    def list(self, name: str) -> builtins.list[ModelVersion]:
        """Every version of ``name``, oldest first (empty for an unknown name)."""
        ...

    def names(self) -> builtins.list[str]:
        """The name of every model with at least one version, sorted."""
        ...

    def production(self, name: str) -> ModelVersion | None:
        """The production version of ``name``, or None."""
        ...

    def set_stage(
        self, name: str, version: int, stage: Stage, *, by: str, note: str | None = None
    ) -> ModelVersion:
        """Move a version to ``stage``; see :func:`plan_stage_change` for the rules."""
        ...

    def history(self, name: str) -> builtins.list[StageEvent]:
        """Every stage change of every version of ``name``, oldest first."""
        ...

    def close(self) -> None:
        """Release connections; the registry is unusable afterwards."""
        ...


# --------------------------------------------------------------------------- rows


def version_from_row(row: Sequence[Any], artifact_root: Path) -> ModelVersion:
    """A :class:`ModelVersion` from stored values in :data:`COLUMNS` order.

    JSON fields come as text; ``created_at`` as a datetime or an ISO 8601 string. The
    artifact folder is derived from the registry's artifact root, never stored, so a shared
    registry works wherever that root is mounted.
    """
    values = dict(zip(COLUMNS, row, strict=True))
    for field in JSON_FIELDS:
        values[field] = decode_json(values[field])
    values["created_at"] = _utc(values["created_at"])
    folder = artifact_root / values["name"] / str(values["version"])
    return ModelVersion(**values, artifact_dir=str(folder))


def event_from_row(row: Sequence[Any]) -> StageEvent:
    """A :class:`StageEvent` from stored values in :data:`EVENT_COLUMNS` order."""
    name, version, from_stage, to_stage, at, by, note = row
    return StageEvent(name, version, from_stage, to_stage, _utc(at), by, note)


def _utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------- stage rules


class StageChange(NamedTuple):
    """One row to move, and the event that records it."""

    version: int
    from_stage: Stage
    to_stage: Stage
    note: str | None


def plan_stage_change(
    name: str,
    version: int,
    current: Stage,
    target: str,
    production: int | None,
    note: str | None,
) -> list[StageChange]:
    """The changes, in order, that move ``version`` (now ``current``) to ``target``.

    Promoting archives the current production version (``production``) first, so there is
    never more than one. Archived may return to production (a rollback); nothing returns to
    candidate, the stage a version holds only between registration and its first change.

    >>> changes = plan_stage_change("churn", 2, "candidate", "production", 1, "better AUC")
    >>> [(c.version, c.from_stage, c.to_stage, c.note) for c in changes]
    [(1, 'production', 'archived', 'replaced by version 2'), (2, 'candidate', 'production', 'better AUC')]
    >>> plan_stage_change("churn", 2, "archived", "archived", None, None)
    []
    """
    if target not in STAGES:
        raise RegistryError(
            f"{target!r} is not a stage (stages: {', '.join(STAGES)})",
            fix="use production to promote, archived to retire",
        )
    if target == current:
        return []
    if target == "candidate":
        raise RegistryError(
            f"version {version} of model {name!r} is {current}; no version returns to candidate",
            fix="promote it (production), or register the model again for a new candidate",
        )
    changes: list[StageChange] = []
    if target == "production" and production is not None and production != version:
        changes.append(
            StageChange(production, "production", "archived", f"replaced by version {version}")
        )
    changes.append(StageChange(version, current, cast(Stage, target), note))
    return changes


def no_such_model(name: str, version: int | None, known: list[int]) -> RegistryError:
    """The error for an unknown model or version, naming the versions that do exist."""
    if not known:
        return RegistryError(
            f"the registry has no model named {name!r}",
            fix="check the spec's `name:`, or run `taxiway train` to register a first version",
        )
    listed = ", ".join(map(str, known)) if len(known) <= 10 else _abridged(known)
    return RegistryError(
        f"model {name!r} has no version {version} (its versions: {listed})",
        fix="use one of its versions, or leave the version out for the newest",
    )


def _abridged(known: list[int]) -> str:
    head = ", ".join(map(str, known[:3]))
    tail = ", ".join(map(str, known[-3:]))
    return f"{head}, ..., {tail}; {len(known)} in all"


def check_name(name: str) -> str:
    """``name`` if it can name a model (and its artifact folder); RegistryError if not."""
    if not _NAME.fullmatch(name):
        raise RegistryError(
            f"{name!r} cannot name a model in the registry",
            fix="use letters, digits, `_`, `-` and `.` (starting with a letter or digit), "
            "at most 128 characters",
        )
    return name


# --------------------------------------------------------------------------- JSON


def encode_json(new: NewVersion) -> dict[str, str]:
    """The JSON text of each of ``new``'s :data:`JSON_FIELDS`; RegistryError naming a bad one."""
    encoded: dict[str, str] = {}
    for field in JSON_FIELDS:
        try:
            encoded[field] = orjson.dumps(
                getattr(new, field), option=orjson.OPT_SERIALIZE_NUMPY
            ).decode("utf-8")
        except TypeError as error:
            raise RegistryError(
                f"the {field} of model {new.name!r} cannot be stored as JSON ({error})",
                fix=f"make {field} JSON-ready: str keys; None, bool, int, float, str, "
                "lists and dicts",
            ) from None
    return encoded


def decode_json(text: str | bytes) -> Any:
    """Parse stored JSON; integers beyond 64 bits (big floats PostgreSQL wrote out) as floats."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # JSONB prints 1e300 as 1 followed by 300 zeros, which orjson refuses as an integer
        return json.loads(text, parse_int=_int_or_float)


def _int_or_float(digits: str) -> int | float:
    value = int(digits)
    return value if -_INT64 <= value < _INT64 else float(value)


# --------------------------------------------------------------------------- artifacts


def stage_artifacts(source: Path, root: Path, name: str) -> Path:
    """Copy the folder ``source`` to a fresh hidden folder beside ``name``'s versions.

    The copy happens before the write lock is taken, so a slow copy blocks no one; the
    folder is then renamed into place (:func:`place_artifacts`), which is atomic.
    """
    source = Path(source)
    if not source.is_dir():
        raise RegistryError(
            f"the artifacts of model {name!r} are not a folder: {source}",
            fix="pass the folder that holds the trained model's files",
        )
    incoming = root / name / f".incoming-{uuid.uuid4().hex}"
    try:
        incoming.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, incoming)
    except OSError as error:
        shutil.rmtree(incoming, ignore_errors=True)
        reason = getattr(error, "strerror", None) or str(error)
        raise RegistryError(
            f"cannot copy the artifacts of model {name!r} from {source} into {root} ({reason})",
            fix="make the artifact folder writable and check free disk space",
        ) from None
    return incoming


def place_artifacts(incoming: Path, root: Path, name: str, version: int) -> Path:
    """Rename ``incoming`` to ``<root>/<name>/<version>``; call it holding the write lock.

    A folder already there belongs to no recorded version (a crash between this rename and
    the commit left it): it is moved aside to ``.orphaned-<version>-<id>``, never deleted.
    """
    final = root / name / str(version)
    try:
        if final.exists():
            final.rename(root / name / f".orphaned-{version}-{uuid.uuid4().hex[:8]}")
        incoming.rename(final)
    except OSError as error:
        raise RegistryError(
            f"cannot move the artifacts of version {version} of model {name!r} into {final} "
            f"({error.strerror})",
            fix="make the artifact folder writable",
        ) from None
    return final
