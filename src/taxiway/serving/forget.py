"""The right to erasure: remove one unit's records from the prediction and outcomes logs and
its keys from the online store (`taxiway forget --unit U`).

A prediction record is the unit's when its ``unit`` is ``U`` or one of its ``entities`` has the
key ``U`` (the request named it); an outcome record when its ``unit`` is ``U`` or its
``request_id`` is one of those predictions'. The online store loses key ``U`` of every entity
the spec declares (or of ``entity`` alone): its feature vector and its time tiles.

Each log file holding such records is rewritten without them, atomically: the other lines
(torn ones too) are copied byte for byte into a temporary file beside it, which is
``fsync``-ed and renamed over the file (then the folder is ``fsync``-ed), so a reader sees the
old file or the new one, never a mix. Then what was derived from the old bytes follows:

* the file's columnar sidecar (:mod:`taxiway.monitoring.columnar`) is deleted (the service's
  compactor, or a reader's JSON path, rebuilds it);
* every log cursor in the state directory's JSON files (the monitor's windows, the
  recommendation monitor's) that points into the file is moved to the same record in the new
  file (its offset less the bytes removed before it, the new inode and first bytes), so the
  monitor neither reads a record twice nor skips one;
* a rollout's unit state (``<state>/rollout/<id>/units.arrow`` with its request index and
  pending outcomes) is deleted when it names the unit or when records were removed, and the
  next ``taxiway rollout check`` reads the logs again from the rollout's start.

Aggregates already computed (the monitor's windows, a report) hold counts and distributions,
no unit's record, and are kept.

While the service runs: a worker writes its open file by appending, and checks the file's
identity before each write. A file that grows while it is being rewritten is read again (up to
:data:`ATTEMPTS` times) until it stood still across the rewrite; after the rename the worker
sees the new inode and opens a new file. A record appended in the microseconds between the last
check and the rename would be lost with the old file: run ``taxiway forget`` with the service
stopped, or at a quiet moment, when no record may be lost. The monitor's own process (inside the
service) may write its cursor while this runs; the monitor then reads the rewritten file again
from its start (it notes that the file was replaced).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     log = Path(tmp) / "predictions-w1-20261206T050000-0000.jsonl"
...     _ = log.write_bytes(b'{"unit": "a", "request_id": "r1"}\\n{"unit": "b", "request_id": "r2"}\\n')
...     erased = erase_from_folder(Path(tmp), lambda r: r.get("unit") == "a")
...     erased.records, sorted(erased.request_ids), log.read_bytes()
(1, ['r1'], b'{"unit": "b", "request_id": "r2"}\\n')
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa

from taxiway.errors import ServingError
from taxiway.features.online import open_online_store
from taxiway.monitoring.columnar import digest, remove_sidecar
from taxiway.serving.log_files import LOG_GLOB
from taxiway.serving.monitored import log_folders
from taxiway.spec.project import Project

__all__ = [
    "ATTEMPTS",
    "Erasure",
    "FolderErasure",
    "erase_from_folder",
    "forget_unit",
    "unit_digest",
]

ATTEMPTS: Final = 5
"""How many times a file that grows while it is rewritten is read again."""
_HEAD_BYTES: Final = 1024  # what a log cursor's ``head`` digests (monitoring/segments.py)


def unit_digest(unit: str) -> str:
    """The SHA-256 of ``unit``: what the audit log keeps instead of the unit's id.

    It lets whoever knows the id check that it was erased; it does not hide an id from someone
    who can try every id (ids are often short): the audit log is not public.

    >>> unit_digest("100017")[:12]
    '1acbb3962a15'
    """
    return hashlib.sha256(unit.encode()).hexdigest()


@dataclass
class _Rewrite:
    """One file rewritten: its old identity, the lines cut out (offset, length), the new file."""

    name: str
    old_inode: int
    new_inode: int
    cuts: list[tuple[int, int]]
    new_head: bytes

    def offset(self, old: int) -> int:
        """Where the line boundary ``old`` of the old file is in the new one."""
        return old - sum(length for start, length in self.cuts if start < old)


@dataclass
class FolderErasure:
    """What was removed from one log folder."""

    records: int = 0
    files: int = 0
    request_ids: set[str] = field(default_factory=set)
    rewrites: list[_Rewrite] = field(default_factory=list)


@dataclass
class Erasure:
    """What ``taxiway forget`` removed, without what the records held."""

    unit_sha256: str
    predictions: int
    prediction_files: int
    outcomes: int
    outcome_files: int
    online_keys: int
    online_store: str
    rollout_states: int
    cursors_moved: int

    def note(self) -> str:
        """The audit log's sentence."""
        return (
            f"erased unit sha256:{self.unit_sha256}: {self.predictions} prediction records "
            f"from {self.prediction_files} files, {self.outcomes} outcome records from "
            f"{self.outcome_files} files, {self.online_keys} keys from the online store "
            f"({self.online_store}); {self.rollout_states} rollout unit states dropped (rebuilt "
            f"from the logs), {self.cursors_moved} monitor cursors moved"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def forget_unit(project: Project, unit: str, *, entity: str | None = None) -> Erasure:
    """Remove ``unit``'s records from ``project``'s logs and its keys from the online store.

    ``entity`` limits the match to that entity (of the requests' ``entities`` and the online
    store); the rollout's ``unit`` field matches whatever it is.
    """
    spec = project.spec
    if not unit:
        raise ServingError("an empty unit names no records", fix="pass --unit <id>")
    if entity is not None and entity not in spec.entities:
        raise ServingError(
            f"{project.spec_path} declares no entity {entity!r}",
            fix=f"use one of: {', '.join(sorted(spec.entities)) or '(none declared)'}",
        )
    predictions, outcomes = log_folders(project)
    found = erase_from_folder(predictions, _prediction_of(unit, entity))
    ids = found.request_ids
    answered = erase_from_folder(
        outcomes,
        lambda r: _same(r.get("unit"), unit) or (r.get("request_id") in ids and bool(ids)),
    )
    rewrites = found.rewrites + answered.rewrites
    moved = _move_cursors(project.state_dir, rewrites)
    dropped = _drop_rollout_states(project.state_dir, unit, force=bool(rewrites))
    entities = [entity] if entity is not None else sorted(spec.entities)
    store = open_online_store(spec.online_store, state_dir=project.state_dir, namespace=spec.name)
    try:
        keys = sum(store.forget(name, [unit]) for name in entities)
    finally:
        store.close()
    return Erasure(
        unit_sha256=unit_digest(unit),
        predictions=found.records,
        prediction_files=found.files,
        outcomes=answered.records,
        outcome_files=answered.files,
        online_keys=keys,
        online_store=type(store).__name__,
        rollout_states=dropped,
        cursors_moved=moved,
    )


def _same(value: object, unit: str) -> bool:
    return value is not None and not isinstance(value, dict | list) and str(value) == unit


def _prediction_of(unit: str, entity: str | None) -> Callable[[dict[str, Any]], bool]:
    def matches(record: dict[str, Any]) -> bool:
        if _same(record.get("unit"), unit):
            return True
        entities = record.get("entities")
        if not isinstance(entities, dict):
            return False
        if entity is not None:
            return _same(entities.get(entity), unit)
        return any(_same(value, unit) for value in entities.values())

    return matches


def erase_from_folder(folder: Path, matches: Callable[[dict[str, Any]], bool]) -> FolderErasure:
    """Rewrite every log file of ``folder`` holding a record ``matches`` accepts, without it."""
    erased = FolderErasure()
    if not folder.is_dir():
        return erased
    for path in sorted(folder.glob(LOG_GLOB)):
        rewrite = _rewrite(path, matches, erased)
        if rewrite is not None:
            erased.files += 1
            erased.rewrites.append(rewrite)
            remove_sidecar(path)
    return erased


def _rewrite(
    path: Path, matches: Callable[[dict[str, Any]], bool], erased: FolderErasure
) -> _Rewrite | None:
    for _ in range(ATTEMPTS):
        try:
            with path.open("rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                data = f.read()
        except FileNotFoundError:  # deleted by retention meanwhile
            return None
        kept, cuts, ids = _filter(data, matches)
        if not cuts:
            return None
        temporary = path.with_name(f".{path.name}.forget-{os.getpid()}")
        try:
            with temporary.open("wb") as out:
                out.write(kept)
                out.flush()
                os.fsync(out.fileno())
            now = os.stat(path)
            if now.st_size != len(data) or now.st_ino != inode:  # a writer appended: again
                temporary.unlink()
                continue
            os.replace(temporary, path)
            new_inode = os.stat(path).st_ino
            _fsync_folder(path.parent)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise ServingError(
                f"cannot rewrite the log file {path}: {error.strerror or error}",
                fix="make the log folder writable by this user and check free disk space",
            ) from None
        erased.records += len(cuts)
        erased.request_ids |= ids
        return _Rewrite(path.name, inode, new_inode, cuts, kept[:_HEAD_BYTES])
    raise ServingError(
        f"the log file {path} kept growing while it was rewritten ({ATTEMPTS} attempts)",
        fix="stop the service (or wait for a quiet moment) and run taxiway forget again",
    )


def _filter(
    data: bytes, matches: Callable[[dict[str, Any]], bool]
) -> tuple[bytes, list[tuple[int, int]], set[str]]:
    """The bytes kept, the lines cut (offset, length) and the cut records' request ids. An
    incomplete last line and lines that are not JSON objects are kept as they are."""
    kept: list[bytes] = []
    cuts: list[tuple[int, int]] = []
    ids: set[str] = set()
    for start, line in _lines(data):
        record: object = None
        if line.endswith(b"\n"):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                record = None
        if isinstance(record, dict) and matches(record):
            cuts.append((start, len(line)))
            if record.get("request_id") is not None:
                ids.add(str(record["request_id"]))
        else:
            kept.append(line)
    return b"".join(kept), cuts, ids


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield start, data[start:end]
        start = end


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- what follows the logs


def _move_cursors(state_dir: Path, rewrites: list[_Rewrite]) -> int:
    """Move every log cursor mark in ``state_dir``'s JSON files that points into a rewritten
    file to the same record in the new file; the count of marks moved."""
    if not rewrites or not state_dir.is_dir():
        return 0
    by_file = {(r.name, r.old_inode): r for r in rewrites}  # both logs name files alike
    moved = 0
    for path in sorted(state_dir.rglob("*.json")):
        try:
            document = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        count = _move_marks(document, by_file)
        if count:
            temporary = path.with_name(f".{path.name}.forget-{os.getpid()}")
            temporary.write_bytes(orjson.dumps(document))
            os.replace(temporary, path)
            moved += count
    return moved


def _move_marks(node: object, rewrites: Mapping[tuple[str, int], _Rewrite]) -> int:
    moved = 0
    if isinstance(node, dict):
        files = node.get("files")
        if isinstance(files, dict) and "skipped" in node:
            for name, mark in files.items():
                if not _is_mark(mark):
                    continue
                rewrite = rewrites.get((name, mark["inode"]))
                if rewrite is None:
                    continue
                offset = rewrite.offset(int(mark["offset"]))
                head = rewrite.new_head[: min(offset, _HEAD_BYTES)]
                mark.update(
                    offset=offset, inode=rewrite.new_inode, head=digest(head), head_bytes=len(head)
                )
                moved += 1
        for value in node.values():
            moved += _move_marks(value, rewrites)
    elif isinstance(node, list):
        for value in node:
            moved += _move_marks(value, rewrites)
    return moved


def _is_mark(mark: object) -> bool:
    return isinstance(mark, dict) and {"offset", "inode", "head", "head_bytes"} <= mark.keys()


def _drop_rollout_states(state_dir: Path, unit: str, *, force: bool) -> int:
    """Delete each rollout's unit state that names ``unit`` (every one when ``force``: the
    logs it was read from changed); the next check rebuilds it from the logs."""
    dropped = 0
    for units in sorted((state_dir / "rollout").glob("*/units.arrow")):
        if not force and not _names(units, unit):
            continue
        folder = units.parent
        units.unlink()  # first: without it the side files are orphans, never read
        for side in (*folder.glob("requests.*.arrow"), *folder.glob("pending.*.arrow")):
            side.unlink(missing_ok=True)
        dropped += 1
    return dropped


def _names(path: Path, unit: str) -> bool:
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid):
        return True  # unreadable: dropping it is safe, it is rebuilt
    if "unit" not in table.column_names:
        return True
    return unit in set(table.column("unit").to_pylist())
