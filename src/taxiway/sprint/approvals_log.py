"""The approvals log's file: where it is, the signing key, and appending one record durably
under an exclusive lock (the chain verified first)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taxiway.errors import GovernanceError
from taxiway.spec.project import Project
from taxiway.sprint.approvals_chain import GENESIS, Approval, canonical, mac, sha256, verify

__all__ = ["append_record", "approvals_path", "signing_key", "spec_sha256"]

_MIN_KEY = 16


def approvals_path(project: Project) -> Path:
    """``<state dir>/governance/approvals.jsonl``."""
    return project.state_dir / "governance" / "approvals.jsonl"


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
    path = approvals_path(project)
    created = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        existing = _read_all(fd)
        chain = verify(path, existing, key)
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
        _append(fd, canonical(record) + b"\n", len(existing), path)
    finally:
        os.close(fd)  # releases the lock
    if created:
        _fsync_folder(path.parent)
    return Approval(**record)


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
