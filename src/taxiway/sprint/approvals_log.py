"""The approvals log's file: where it is, the signing key, and appending one record durably
under an exclusive lock (the chain verified first).

Beside the log, ``approvals.head.json`` holds the last record's ``seq`` and ``hash`` (and,
with a signing key, their HMAC), rewritten with every append under the same lock. The chain
alone catches a record edited, inserted or deleted before the last one; the head catches the
last records cut off (:func:`verify_log`).

With ``registry: {kind: postgres}`` the log and its head are rows of the registry's database
instead (:mod:`taxiway.sprint.approvals_postgres`), so serving replicas on several machines
share one log; the chain, the signatures and the head are checked the same way."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taxiway.errors import GovernanceError
from taxiway.spec.models import PostgresRegistry
from taxiway.spec.project import Project
from taxiway.sprint.approvals_chain import (
    GENESIS,
    Approval,
    broken,
    canonical,
    mac,
    sha256,
    verify,
)

__all__ = [
    "append_record",
    "approvals_path",
    "head_location",
    "head_path",
    "log_location",
    "signing_key",
    "spec_sha256",
    "verify_log",
]

_MIN_KEY = 16


def approvals_path(project: Project) -> Path:
    """``<state dir>/governance/approvals.jsonl``."""
    return project.state_dir / "governance" / "approvals.jsonl"


def head_path(project: Project) -> Path:
    """``<state dir>/governance/approvals.head.json``: the last record's seq and hash."""
    return approvals_path(project).with_name("approvals.head.json")


def _postgres(project: Project) -> Any:
    """The registry's PostgreSQL approvals tables, or None when the registry is not PostgreSQL."""
    if not isinstance(project.spec.registry, PostgresRegistry):
        return None
    try:
        # optional extra (postgres): psycopg is needed only with a PostgreSQL registry
        from taxiway.sprint.approvals_postgres import PostgresApprovals
    except ImportError as error:
        if (error.name or "").startswith("taxiway"):
            raise
        raise GovernanceError(
            f"the registry is postgres but its client is missing ({error.name})",
            fix="pip install 'taxiway[postgres]'",
        ) from None
    return PostgresApprovals(project.spec.registry)


def log_location(project: Project) -> str:
    """Where the log is, for messages: its file, or its table in the registry's database."""
    store = _postgres(project)
    return str(approvals_path(project)) if store is None else str(store.where)


def head_location(project: Project) -> str:
    """Where the head is, for messages: its file's name, or the head table's row."""
    store = _postgres(project)
    return head_path(project).name if store is None else f"{store.schema}.approvals_head"


def verify_log(project: Project) -> tuple[list[Approval], bool]:
    """Every record, verified: each hash, each link, each signature (with the key), and the
    head: records cut off the end are named. Returns the records and whether a head was
    found (a log written before heads existed has none; the next append writes it).
    GovernanceError naming the file (or table) and the line at the first problem."""
    key = signing_key(project)
    store = _postgres(project)
    if store is not None:
        data, row = store.read(project.spec.name)
        where = Path(f"{store.where} (project {project.spec.name})")
        chain = verify(where, data, key)
        head = (
            None if row is None else _verified_head(where.with_name(f"{where.name} head"), row, key)
        )
        return [a for a, _ in chain], _check_head(where, "its head row", chain, head)
    path = approvals_path(project)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    chain = verify(path, data, key)
    return [a for a, _ in chain], _check_head(
        path, head_path(project).name, chain, _read_head(project, key)
    )


def _check_head(
    path: Path, head_name: str, chain: list[tuple[Approval, bytes]], head: tuple[int, str] | None
) -> bool:
    """Whether a head was found; GovernanceError when the chain does not reach it."""
    if head is None:
        return False
    seq, digest = head
    if seq > len(chain):
        first = len(chain) + 1
        which = f"record {seq} was" if first == seq else f"records {first} to {seq} were"
        broken(
            path,
            first,
            f"is missing: {which} deleted from the end (its head, "
            f"{head_name}, says the log held {seq})",
        )
    if seq < len(chain) or (seq and chain[seq - 1][0].hash != digest):
        broken(
            path,
            max(seq, 1),
            f"does not match the head ({head_name} says record {seq} has hash "
            f"{digest[:12]}): the log or its head was rewritten",
        )
    return True


def _read_head(project: Project, key: bytes | None) -> tuple[int, str] | None:
    where = head_path(project)
    try:
        head = json.loads(where.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        broken(where, 1, "is not JSON")
    return _verified_head(where, head, key)


def _verified_head(where: Path, head: Any, key: bytes | None) -> tuple[int, str]:
    """``(seq, hash)`` of a head record, its signature checked with ``key``."""
    if not isinstance(head, dict) or not isinstance(head.get("seq"), int):
        broken(where, 1, "does not hold the head (seq, hash)")
    content = {"seq": head["seq"], "hash": head.get("hash")}
    if key is not None and not hmac.compare_digest(str(head.get("mac")), mac(key, content)):
        broken(where, 1, "has a signature (`mac`) the signing key does not give: rewritten")
    return int(head["seq"]), str(head.get("hash"))


def _write_head(project: Project, record: dict[str, Any], key: bytes | None) -> None:
    """Replace the head atomically (a temporary file renamed over it); call under the lock."""
    head: dict[str, Any] = {"seq": record["seq"], "hash": record["hash"]}
    if key is not None:
        head["mac"] = mac(key, head)
    where = head_path(project)
    incoming = where.with_name(f".{where.name}.{os.getpid()}")
    try:
        incoming.write_bytes(canonical(head) + b"\n")
        os.replace(incoming, where)
    except OSError as error:
        raise GovernanceError(
            f"the sign-off was recorded but its head {where} could not be written: "
            f"{error.strerror or error}",
            fix=f"make {where.parent} writable; the next sign-off rewrites the head",
        ) from None


def spec_sha256(project: Project) -> str:
    """The SHA-256 of the spec file's bytes as they are now."""
    return hashlib.sha256(project.spec_path.read_bytes()).hexdigest()


def signing_key(project: Project) -> bytes | None:
    """The key ``governance.signing_key_env`` names, or None when the spec names none."""
    governance = project.spec.governance
    name = governance.signing_key_env if governance is not None else None
    if name is None:
        return None
    value = os.environ.get(name, "")
    if not value:
        raise GovernanceError(
            f"governance.signing_key_env names {name}, which is not set: the approvals log "
            "cannot be signed or verified",
            fix=f"export {name}=<the approvals signing key> (the same key for everyone who "
            "records or reads sign-offs), or remove governance.signing_key_env",
        )
    if len(value) < _MIN_KEY:
        raise GovernanceError(
            f"the approvals signing key in {name} is shorter than {_MIN_KEY} characters",
            fix=f"use a random key of {_MIN_KEY}+ characters, e.g. "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`",
        )
    return value.encode()


def append_record(project: Project, role: str, by: str, note: str | None) -> Approval:
    """Append one record to the chain (verified first) under an exclusive lock, durably."""
    key = signing_key(project)
    store = _postgres(project)
    if store is not None:
        return _append_postgres(store, project, role, by, note, key)
    path = approvals_path(project)
    created = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        existing = _read_all(fd)
        chain = verify(path, existing, key)
        _check_head(path, head_path(project).name, chain, _read_head(project, key))
        record = _next_record(project, role, by, note, chain, key)
        _append(fd, canonical(record) + b"\n", len(existing), path)
        _write_head(project, record, key)
    finally:
        os.close(fd)  # releases the lock
    if created:
        _fsync_folder(path.parent)
    return Approval(**record)


def _append_postgres(
    store: Any, project: Project, role: str, by: str, note: str | None, key: bytes | None
) -> Approval:
    """:func:`append_record` on the registry's database: one transaction under its lock."""
    where = Path(f"{store.where} (project {project.spec.name})")
    made: dict[str, Any] = {}

    def build(data: bytes, row: dict[str, Any] | None) -> tuple[int, bytes, dict[str, Any]]:
        chain = verify(where, data, key)
        head = (
            None if row is None else _verified_head(where.with_name(f"{where.name} head"), row, key)
        )
        _check_head(where, "its head row", chain, head)
        made.update(_next_record(project, role, by, note, chain, key))
        new_head: dict[str, Any] = {"seq": made["seq"], "hash": made["hash"]}
        if key is not None:
            new_head["mac"] = mac(key, new_head)
        return int(made["seq"]), canonical(made), new_head

    store.append(project.spec.name, build)
    return Approval(**made)


def _next_record(
    project: Project,
    role: str,
    by: str,
    note: str | None,
    chain: list[tuple[Approval, bytes]],
    key: bytes | None,
) -> dict[str, Any]:
    """The record that follows ``chain``: hashed, linked, and signed with ``key``."""
    record: dict[str, Any] = {
        "seq": len(chain) + 1,
        "project": project.spec.name,
        "role": role,
        "by": by,
        "note": note,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "spec_sha256": spec_sha256(project),
        "prev": sha256(chain[-1][1]) if chain else GENESIS,
    }
    record["hash"] = sha256(canonical(record))
    if key is not None:
        record["mac"] = mac(key, record)
    return record


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _append(fd: int, line: bytes, size_before: int, path: Path) -> None:
    """Write ``line`` at the end and fsync; on failure, cut the file back to ``size_before``."""
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size_before)
        raise GovernanceError(
            f"cannot write the sign-off to {path}: {error.strerror or error}",
            fix=f"make {path.parent} writable (and free space on its disk), then run it again",
        ) from None


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
