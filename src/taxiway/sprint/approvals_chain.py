"""The approvals log's chain: each record's canonical JSON, its hash, the link to the line
before it, its HMAC signature, and the verification that names the first broken line."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from taxiway.errors import GovernanceError

__all__ = ["GENESIS", "Approval", "broken", "canonical", "mac", "sha256", "verify"]

GENESIS = "0" * 64
"""The ``prev`` of the first record."""

_FIELDS = ("seq", "project", "role", "by", "note", "at", "spec_sha256", "prev", "hash")
_SIGNED_FIELDS = (*_FIELDS, "mac")


@dataclass(frozen=True)
class Approval:
    """One recorded sign-off (a verified line of the log)."""

    seq: int
    project: str
    role: str
    by: str
    note: str | None
    at: str
    spec_sha256: str
    prev: str
    hash: str
    mac: str | None = None
    """The HMAC-SHA256 of the record with the signing key (None when the log is not signed)."""

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return asdict(self)


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mac(key: bytes, record: dict[str, Any]) -> str:
    """HMAC-SHA256 with ``key`` of ``record``'s canonical JSON without ``mac``."""
    content = {k: v for k, v in record.items() if k != "mac"}
    return hmac.new(key, canonical(content), hashlib.sha256).hexdigest()


def verify(path: Path, data: bytes, key: bytes | None) -> list[tuple[Approval, bytes]]:
    """Every record of ``data`` with its line, or an error at the first broken link (and, with
    ``key``, at the first record it did not sign)."""
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1]:
        broken(path, len(lines), "is incomplete (a write was interrupted, or it was edited)")
    chain: list[tuple[Approval, bytes]] = []
    prev = GENESIS
    for number, line in enumerate(lines[:-1], start=1):
        approval = _parse(path, number, line)
        fields = asdict(approval)
        content = {k: v for k, v in fields.items() if k not in ("hash", "mac")}
        if approval.hash != sha256(canonical(content)):
            broken(path, number, "was edited after it was written (its hash does not match)")
        if key is not None:
            _check_signature(path, number, approval, key)
        if approval.seq != number:
            broken(
                path,
                number,
                f"has seq {approval.seq}, expected {number}: a line before it was deleted "
                "or inserted",
            )
        if approval.prev != prev:
            broken(
                path,
                number,
                "does not follow the line before it (prev hash differs): "
                + ("that line was edited" if number > 1 else "the log's start was changed"),
            )
        chain.append((approval, line))
        prev = sha256(line)
    return chain


def _check_signature(path: Path, number: int, approval: Approval, key: bytes) -> None:
    if approval.mac is None:
        broken(
            path,
            number,
            "is not signed (it has no `mac`), but governance.signing_key_env is set: it was "
            "written without the key, or rewritten",
            fix=f"if {path} was written before the key was set, move it aside and record the "
            "sign-offs again with the key set; otherwise restore it from a backup",
        )
    if not hmac.compare_digest(approval.mac, mac(key, approval.as_dict())):
        broken(
            path,
            number,
            "has a signature (`mac`) the signing key does not give: it was rewritten, or "
            "signed with another key",
        )


def _parse(path: Path, number: int, line: bytes) -> Approval:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        broken(path, number, "is not a JSON record")
    if not isinstance(record, dict) or sorted(record) not in (
        sorted(_FIELDS),
        sorted(_SIGNED_FIELDS),
    ):
        broken(path, number, f"does not hold exactly the fields {', '.join(_FIELDS)} (and `mac`)")
    texts = [record[k] for k in _SIGNED_FIELDS if k not in ("seq", "note") and k in record]
    if (
        not isinstance(record["seq"], int)
        or isinstance(record["seq"], bool)
        or not all(isinstance(value, str) for value in texts)
        or not isinstance(record["note"], str | None)
    ):
        broken(path, number, "has a field of the wrong type")
    return Approval(**record)


def broken(path: Path, number: int, what: str, *, fix: str | None = None) -> NoReturn:
    raise GovernanceError(
        f"{path}:{number}: the approvals log is broken: line {number} {what}",
        fix=fix
        or f"the log is append-only and must not be edited: restore {path} from a backup, "
        "then record again (`taxiway approve`) any sign-off given after it",
    )
