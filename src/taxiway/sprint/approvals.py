"""Sign-offs: an append-only, hash-chained log of who approved this use case, as which role.

``governance.approvals`` lists the roles that must sign off (security, privacy, business...).
Each sign-off is one JSON line of ``<state dir>/governance/approvals.jsonl``::

    {"at": "...", "by": "Ann Lee", "hash": "...", "note": null, "prev": "...",
     "project": "retail_churn", "role": "security", "seq": 1, "spec_sha256": "..."}

``spec_sha256`` is the SHA-256 of the spec file's bytes when the sign-off was given; ``prev`` is
the SHA-256 of the previous line (64 zeros for the first); ``hash`` is the SHA-256 of the
record's canonical JSON without ``hash`` (and ``mac``). Reading verifies the whole chain, so a
line edited, deleted or inserted *by hand* is an error naming the file and the line.

Without a signing key the chain proves little against someone who means it: every hash can be
recomputed, so whoever can write the file can rewrite the whole chain (change any sign-off,
drop or add one) and it verifies. ``governance.signing_key_env`` names an environment variable
holding a key (16+ characters); each record then also carries ``mac``, the HMAC-SHA256 with
that key of its canonical JSON without ``mac``, and every read checks it: a record without a
``mac``, or with one the key does not give, is a :class:`~taxiway.errors.GovernanceError`
naming the record. Rewriting the log then takes the key as well as the file. The key is read
when needed and never written to the log, a report or a message. Without the key configured,
a ``mac`` is not checked.

A promotion forced past the gate (``taxiway models promote --force --reason``) is recorded in
the same chain by :func:`record_override`: a record whose ``role`` is :data:`OVERRIDE_ROLE`,
``by`` who forced it, and ``note`` what was done, why, and each blocker overridden. Such a
record is never a sign-off: :func:`sign_offs` does not count it for any role.

A sign-off given for an earlier version of the spec still counts (the role is not missing),
but :func:`sign_offs` reports it as ``earlier_spec``, so the debrief can show that the spec
changed after it was given and the team can decide whether to ask again.

>>> import tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> spec = Path(tmp.name) / "taxiway.yaml"
>>> _ = spec.write_text("name: demo\\ngovernance: {approvals: [security]}\\n")
>>> project = Project.load(spec)
>>> missing_approvals(project)
['security']
>>> record_approval(project, "security", "Ann Lee", note="pen test 2026-05").seq
1
>>> missing_approvals(project), [a.by for a in read_approvals(project)]
([], ['Ann Lee'])
>>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NoReturn

from taxiway.errors import GovernanceError
from taxiway.spec.project import Project

__all__ = [
    "GENESIS",
    "OVERRIDE_ROLE",
    "Approval",
    "SignOff",
    "approvals_path",
    "approvals_summary",
    "missing_approvals",
    "overrides",
    "read_approvals",
    "record_approval",
    "record_override",
    "sign_offs",
    "spec_sha256",
]

GENESIS = "0" * 64
"""The ``prev`` of the first record."""

OVERRIDE_ROLE = "override"
"""The ``role`` of a record of a gate overridden (:func:`record_override`), never a sign-off."""

_FIELDS = ("seq", "project", "role", "by", "note", "at", "spec_sha256", "prev", "hash")
_SIGNED_FIELDS = (*_FIELDS, "mac")
_MIN_KEY = 16
_GOVERNANCE_YAML = "governance:\n  approvals: [security, privacy, business]"


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


@dataclass(frozen=True)
class SignOff:
    """One role ``governance.approvals`` asks for, and its newest sign-off if there is one."""

    role: str
    approval: Approval | None
    spec_sha256: str
    """The hash of the spec file now, to compare with the approval's."""

    @property
    def status(self) -> Literal["present", "earlier_spec", "missing"]:
        """``present`` (given for this spec), ``earlier_spec`` (given, but the spec has changed
        since: it still counts) or ``missing``."""
        if self.approval is None:
            return "missing"
        return "present" if self.approval.spec_sha256 == self.spec_sha256 else "earlier_spec"

    def as_dict(self) -> dict[str, Any]:
        """``role``, ``status`` and the approval (or None), JSON-ready."""
        return {
            "role": self.role,
            "status": self.status,
            "approval": self.approval.as_dict() if self.approval else None,
        }


def approvals_path(project: Project) -> Path:
    """``<state dir>/governance/approvals.jsonl``."""
    return project.state_dir / "governance" / "approvals.jsonl"


def spec_sha256(project: Project) -> str:
    """The SHA-256 of the spec file's bytes as they are now."""
    return hashlib.sha256(project.spec_path.read_bytes()).hexdigest()


def _signing_key(project: Project) -> bytes | None:
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


def _required_roles(project: Project) -> list[str]:
    governance = project.spec.governance
    return list(governance.approvals) if governance is not None else []


def record_approval(project: Project, role: str, by: str, note: str | None = None) -> Approval:
    """Append ``by``'s sign-off as ``role`` to the log and return it.

    ``role`` must be one ``governance.approvals`` lists; ``by`` and ``note`` are stored as
    given. The existing chain is verified first (a broken log is never extended). Safe with
    concurrent writers: the file is opened with ``O_APPEND`` and held under an exclusive
    ``flock`` from reading the last line to the durable (fsync-ed) write of the new one.
    """
    required = _required_roles(project)
    if not required:
        raise GovernanceError(
            f"{project.spec_path} asks for no sign-offs (governance.approvals is empty or absent)",
            fix=f"list the roles that must sign off in the spec:\n{_GOVERNANCE_YAML}",
        )
    if role == OVERRIDE_ROLE:
        raise GovernanceError(
            f"`{OVERRIDE_ROLE}` is kept for the records of promotions forced past the gate: "
            "it cannot be a sign-off",
            fix=f"rename the role in governance.approvals of {project.spec_path}",
        )
    if role not in required:
        raise GovernanceError(
            f"`{role}` is not a sign-off {project.spec_path} asks for",
            fix=f"use one of: {', '.join(required)} (governance.approvals), "
            f"or add `{role}` to governance.approvals",
        )
    if not by.strip():
        raise GovernanceError(
            "a sign-off needs the name of who gives it", fix="pass --by 'First Last'"
        )
    return _append_record(project, role, by, note)


def record_override(
    project: Project, by: str, reason: str, action: str, overridden: list[str]
) -> Approval:
    """Append to the log that ``by`` did ``action`` past the gate, for ``reason``, over each
    blocker of ``overridden`` (their titles), and return the record.

    The record is chained, and signed with ``governance.signing_key_env``, like a sign-off;
    its ``role`` is :data:`OVERRIDE_ROLE` and its ``note`` reads
    ``<action>; reason: <reason>; overridden (<n>): <title>; <title>...``. It works whether or
    not the spec asks for sign-offs.
    """
    if not by.strip():
        raise GovernanceError(
            "an override needs the name of who forces it", fix="pass --by 'First Last'"
        )
    if not reason.strip():
        raise GovernanceError(
            "an override needs a reason, kept in the approvals log",
            fix="pass --reason 'why it cannot wait' (an incident, a ticket)",
        )
    listed = "; ".join(overridden) if overridden else "nothing"
    note = f"{action}; reason: {reason.strip()}; overridden ({len(overridden)}): {listed}"
    return _append_record(project, OVERRIDE_ROLE, by, note)


def overrides(project: Project) -> list[Approval]:
    """The verified records of gates overridden (:func:`record_override`), oldest first."""
    return [a for a in read_approvals(project) if a.role == OVERRIDE_ROLE]


def _append_record(project: Project, role: str, by: str, note: str | None) -> Approval:
    """Append one record to the chain (verified first) under an exclusive lock, durably."""
    key = _signing_key(project)
    path = approvals_path(project)
    created = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        existing = _read_all(fd)
        chain = _verify(path, existing, key)
        record: dict[str, Any] = {
            "seq": len(chain) + 1,
            "project": project.spec.name,
            "role": role,
            "by": by,
            "note": note,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "spec_sha256": spec_sha256(project),
            "prev": _sha256(chain[-1][1]) if chain else GENESIS,
        }
        record["hash"] = _sha256(_canonical(record))
        if key is not None:
            record["mac"] = _mac(key, record)
        _append(fd, _canonical(record) + b"\n", len(existing), path)
    finally:
        os.close(fd)  # releases the lock
    if created:
        _fsync_folder(path.parent)
    return Approval(**record)


def read_approvals(project: Project) -> list[Approval]:
    """This project's records (sign-offs, and overrides: see :data:`OVERRIDE_ROLE`), oldest
    first, after verifying the whole chain.

    Raise :class:`~taxiway.errors.GovernanceError` naming the file, the line and what is wrong
    when a line was edited, deleted, inserted or left incomplete, or, with
    ``governance.signing_key_env``, when a record is unsigned or its signature does not match
    the key. No log yet means ``[]``.
    """
    key = _signing_key(project)
    path = approvals_path(project)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [a for a, _ in _verify(path, data, key) if a.project == project.spec.name]


def sign_offs(project: Project) -> list[SignOff]:
    """Each role ``governance.approvals`` lists, with its newest verified sign-off."""
    newest: dict[str, Approval] = {}
    for approval in read_approvals(project):
        if approval.role != OVERRIDE_ROLE:
            newest[approval.role] = approval
    current = spec_sha256(project)
    return [SignOff(role, newest.get(role), current) for role in _required_roles(project)]


def missing_approvals(project: Project) -> list[str]:
    """The roles ``governance.approvals`` lists that nobody has signed off (in spec order).

    A sign-off given for an earlier spec counts: see :func:`sign_offs` to tell them apart.
    """
    return [s.role for s in sign_offs(project) if s.status == "missing"]


def approvals_summary(project: Project) -> dict[str, Any]:
    """The sign-offs as the debrief shows them, JSON-ready.

    ``required`` (governance.approvals), ``present`` (the newest sign-off of each required
    role that has one, with ``earlier_spec`` true when the spec changed since), ``missing``,
    ``earlier_spec`` (roles), ``log`` (the file) and ``head`` (the last record's hash).
    """
    statuses = sign_offs(project)
    records = read_approvals(project)
    return {
        "required": [s.role for s in statuses],
        "present": [
            {**s.approval.as_dict(), "earlier_spec": s.status == "earlier_spec"}
            for s in statuses
            if s.approval is not None
        ],
        "missing": [s.role for s in statuses if s.status == "missing"],
        "earlier_spec": [s.role for s in statuses if s.status == "earlier_spec"],
        "log": str(approvals_path(project)),
        "head": records[-1].hash if records else None,
    }


# ------------------------------------------------------------------ the chain


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mac(key: bytes, record: dict[str, Any]) -> str:
    """HMAC-SHA256 with ``key`` of ``record``'s canonical JSON without ``mac``."""
    content = {k: v for k, v in record.items() if k != "mac"}
    return hmac.new(key, _canonical(content), hashlib.sha256).hexdigest()


def _verify(path: Path, data: bytes, key: bytes | None) -> list[tuple[Approval, bytes]]:
    """Every record of ``data`` with its line, or an error at the first broken link (and, with
    ``key``, at the first record it did not sign)."""
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1]:
        _broken(path, len(lines), "is incomplete (a write was interrupted, or it was edited)")
    chain: list[tuple[Approval, bytes]] = []
    prev = GENESIS
    for number, line in enumerate(lines[:-1], start=1):
        approval = _parse(path, number, line)
        fields = asdict(approval)
        content = {k: v for k, v in fields.items() if k not in ("hash", "mac")}
        if approval.hash != _sha256(_canonical(content)):
            _broken(path, number, "was edited after it was written (its hash does not match)")
        if key is not None:
            _check_signature(path, number, approval, key)
        if approval.seq != number:
            _broken(
                path,
                number,
                f"has seq {approval.seq}, expected {number}: a line before it was deleted "
                "or inserted",
            )
        if approval.prev != prev:
            _broken(
                path,
                number,
                "does not follow the line before it (prev hash differs): "
                + ("that line was edited" if number > 1 else "the log's start was changed"),
            )
        chain.append((approval, line))
        prev = _sha256(line)
    return chain


def _check_signature(path: Path, number: int, approval: Approval, key: bytes) -> None:
    if approval.mac is None:
        _broken(
            path,
            number,
            "is not signed (it has no `mac`), but governance.signing_key_env is set: it was "
            "written without the key, or rewritten",
            fix=f"if {path} was written before the key was set, move it aside and record the "
            "sign-offs again with the key set; otherwise restore it from a backup",
        )
    if not hmac.compare_digest(approval.mac, _mac(key, approval.as_dict())):
        _broken(
            path,
            number,
            "has a signature (`mac`) the signing key does not give: it was rewritten, or "
            "signed with another key",
        )


def _parse(path: Path, number: int, line: bytes) -> Approval:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        _broken(path, number, "is not a JSON record")
    if not isinstance(record, dict) or sorted(record) not in (
        sorted(_FIELDS),
        sorted(_SIGNED_FIELDS),
    ):
        _broken(path, number, f"does not hold exactly the fields {', '.join(_FIELDS)} (and `mac`)")
    texts = [record[k] for k in _SIGNED_FIELDS if k not in ("seq", "note") and k in record]
    if (
        not isinstance(record["seq"], int)
        or isinstance(record["seq"], bool)
        or not all(isinstance(value, str) for value in texts)
        or not isinstance(record["note"], str | None)
    ):
        _broken(path, number, "has a field of the wrong type")
    return Approval(**record)


def _broken(path: Path, number: int, what: str, *, fix: str | None = None) -> NoReturn:
    raise GovernanceError(
        f"{path}:{number}: the approvals log is broken: line {number} {what}",
        fix=fix
        or f"the log is append-only and must not be edited: restore {path} from a backup, "
        "then record again (`taxiway approve`) any sign-off given after it",
    )


# ------------------------------------------------------------------ the file


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
