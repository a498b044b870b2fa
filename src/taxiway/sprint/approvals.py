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

A routine retrain (``retrain.signoff``: no new feature or source, the metric within bounds)
that reuses the standing sign-offs is recorded the same way by :func:`record_routine_retrain`:
``role`` :data:`ROUTINE_RETRAIN_ROLE`, ``by`` ``taxiway retrain``, and ``note`` naming the
version and each sign-off reused. It is never a sign-off either.

A sign-off given for an earlier version of the spec still counts (the role is not missing),
but :func:`sign_offs` reports it as ``earlier_spec``, so the debrief can show that the spec
changed after it was given and the team can decide whether to ask again.

This module holds the sign-off queries; the chain (hashes, signatures, verification) is in
:mod:`taxiway.sprint.approvals_chain`, the file (path, key, locked durable append) in
:mod:`taxiway.sprint.approvals_log`. Every name is importable from here.

>>> import tempfile
>>> from pathlib import Path
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

from dataclasses import dataclass
from typing import Any, Literal

from taxiway.errors import GovernanceError
from taxiway.spec.project import Project
from taxiway.sprint.approvals_chain import GENESIS, Approval
from taxiway.sprint.approvals_log import (
    append_record,
    approvals_path,
    log_location,
    spec_sha256,
    verify_log,
)

__all__ = [
    "GENESIS",
    "OVERRIDE_ROLE",
    "ROUTINE_RETRAIN_ROLE",
    "Approval",
    "ApprovalsLog",
    "SignOff",
    "approvals_path",
    "approvals_summary",
    "log_location",
    "missing_approvals",
    "overrides",
    "read_approvals",
    "record_approval",
    "record_override",
    "record_routine_retrain",
    "routine_retrains",
    "sign_offs",
    "spec_sha256",
]

OVERRIDE_ROLE = "override"
"""The ``role`` of a record of a gate overridden (:func:`record_override`), never a sign-off."""

ROUTINE_RETRAIN_ROLE = "routine_retrain"
"""The ``role`` of a record of a routine retrain that reused the standing sign-offs
(:func:`record_routine_retrain`), never a sign-off."""

_NOT_SIGN_OFFS = frozenset({OVERRIDE_ROLE, ROUTINE_RETRAIN_ROLE})

_GOVERNANCE_YAML = "governance:\n  approvals: [security, privacy, business]"


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
    if role in _NOT_SIGN_OFFS:
        raise GovernanceError(
            f"`{role}` is kept for the records of promotions forced past the gate and of "
            "routine retrains: it cannot be a sign-off",
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
    return append_record(project, role, by, note)


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
    return append_record(project, OVERRIDE_ROLE, by, note)


def record_routine_retrain(project: Project, note: str) -> Approval:
    """Append that a routine retrain reused the standing sign-offs (``note`` names the version
    and each sign-off reused), chained and signed like a sign-off, and return the record."""
    if not note.strip():
        raise GovernanceError(
            "a routine retrain's record names the version and the sign-offs it reuses",
            fix="pass the version and the sign-offs reused as the note",
        )
    return append_record(project, ROUTINE_RETRAIN_ROLE, "taxiway retrain", note)


def routine_retrains(project: Project) -> list[Approval]:
    """The verified records of routine retrains (:func:`record_routine_retrain`), oldest first."""
    return [a for a in read_approvals(project) if a.role == ROUTINE_RETRAIN_ROLE]


class ApprovalsLog:
    """The approvals log as `taxiway retrain` reads and extends it
    (:class:`~taxiway.rollout.retrain.StandingSignOffs`)."""

    def standing(self, project: Project) -> dict[str, str | None]:
        """Each role ``governance.approvals`` lists: ``<by> at <at> (record <seq>)`` of its
        newest sign-off, or None when it has none."""
        return {
            s.role: None
            if s.approval is None
            else f"{s.approval.by} at {s.approval.at} (record {s.approval.seq})"
            for s in sign_offs(project)
        }

    def record_routine(self, project: Project, version: int, note: str) -> None:
        """Append the ``routine_retrain`` record of ``version``."""
        del version  # the note names it
        record_routine_retrain(project, note)


def overrides(project: Project) -> list[Approval]:
    """The verified records of gates overridden (:func:`record_override`), oldest first."""
    return [a for a in read_approvals(project) if a.role == OVERRIDE_ROLE]


def read_approvals(project: Project) -> list[Approval]:
    """This project's records (sign-offs, and overrides: see :data:`OVERRIDE_ROLE`), oldest
    first, after verifying the whole chain.

    Raise :class:`~taxiway.errors.GovernanceError` naming the file, the line and what is wrong
    when a line was edited, deleted, inserted or left incomplete, or, with
    ``governance.signing_key_env``, when a record is unsigned or its signature does not match
    the key, or when the last records were cut off (the head file says more were written).
    No log yet means ``[]``.
    """
    records, _head = verify_log(project)
    return [a for a in records if a.project == project.spec.name]


def sign_offs(project: Project) -> list[SignOff]:
    """Each role ``governance.approvals`` lists, with its newest verified sign-off."""
    newest: dict[str, Approval] = {}
    for approval in read_approvals(project):
        if approval.role not in _NOT_SIGN_OFFS:
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
        "log": log_location(project),
        "head": records[-1].hash if records else None,
    }
