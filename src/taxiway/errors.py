"""The one exception tree of taxiway, and the codes each error maps to.

Every error taxiway raises on purpose is a :class:`TaxiwayError`. Each class carries the
process exit code the CLI uses for it (:func:`exit_code_for`) and the HTTP status the service
answers with when one reaches a request (``taxiway.serving.app`` reads ``http_status``, in one
place), so the codes live here and nowhere else; this module imports no web framework::

    TaxiwayError                  exit 1   HTTP 500
    ├── SpecError                 exit 2   HTTP 400   the spec (or a contract file) is malformed
    ├── SourceError               exit 1   HTTP 503   a source cannot be reached or read
    ├── ContractViolation         exit 3   HTTP 422   a `block` rule failed: nothing downstream runs
    ├── FeatureError              exit 1   HTTP 500
    ├── ModelError                exit 1   HTTP 500
    │   └── RegistryError         exit 1   HTTP 500   no such version, or the registry is down
    ├── ServingError              exit 1   HTTP 503   e.g. the prediction log cannot be written
    │   └── RequestError          exit 1   HTTP 422   a malformed request (each field named)
    ├── GovernanceError           exit 1   HTTP 500   a sign-off is refused, or the approvals log
    │                                                 is broken
    ├── LineageError              exit 1   HTTP 500   an event could not be sent (only ever
    │                                                 warned about: lineage never fails a command)
    └── MissingExtraError         exit 4   HTTP 500   a command needs an extra that is not
                                                      installed (`pip install 'taxiway[train]'`)

A package adds its children here when it first raises one (a rollout error comes with the
rollout controller), never a new root.

>>> issubclass(SpecError, TaxiwayError), SpecError.exit_code
(True, 2)
>>> exit_code_for(ContractViolation("orders: rowCount failed"))
3
>>> exit_code_for(KeyError("not ours"))
1
>>> ServingError("the prediction log cannot be written").http_status
503
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "EXIT_BAD_SPEC",
    "EXIT_BLOCKED",
    "EXIT_FAILURE",
    "EXIT_NOT_INSTALLED",
    "EXIT_OK",
    "ContractViolation",
    "FeatureError",
    "GovernanceError",
    "LineageError",
    "MissingExtraError",
    "ModelError",
    "MonitoringError",
    "RegistryError",
    "RequestError",
    "RolloutError",
    "ServingError",
    "SourceError",
    "SpecError",
    "SpecIssue",
    "TaxiwayError",
    "exit_code_for",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_SPEC = 2
EXIT_BLOCKED = 3
EXIT_NOT_INSTALLED = 4
"""A command needs an optional part of taxiway that is not installed: not a failed run (1, which
`taxiway sprint` uses for "not deployed"), not a bad spec (2)."""


class TaxiwayError(Exception):
    """Base of every error taxiway raises on purpose.

    ``fix`` is the one action that resolves it, shown to the user under the message.
    """

    exit_code: int = EXIT_FAILURE
    http_status: int = 500
    """The status the service answers with when this error reaches a request."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message}\n  fix: {self.fix}"
        return self.message


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec or contract file, located to the line.

    >>> str(SpecIssue("taxiway.yaml", 3, 5, "sources.orders.timestmp", "unknown key",
    ...     suggestion="did you mean `timestamp`?"))
    'taxiway.yaml:3:5: sources.orders.timestmp: unknown key\\n  did you mean `timestamp`?'
    """

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    expected: str | None = None
    suggestion: str | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        parts = [part for part in (where, self.path, self.message) if part]
        head = ": ".join(parts)
        lines = [head]
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.suggestion:
            lines.append(f"  {self.suggestion}")
        lines.extend(f"  {line}" for line in self.extra)
        return "\n".join(lines)


class SpecError(TaxiwayError):
    """The spec or a contract file is invalid; ``issues`` lists every problem found."""

    exit_code = EXIT_BAD_SPEC
    http_status = 400

    def __init__(self, issues: list[SpecIssue] | SpecIssue | str, *, fix: str | None = None):
        if isinstance(issues, str):
            issues = [SpecIssue(file="", line=None, column=None, path="", message=issues)]
        elif isinstance(issues, SpecIssue):
            issues = [issues]
        self.issues: list[SpecIssue] = issues
        count = len(issues)
        header = "" if count == 1 else f"{count} problems:\n"
        super().__init__(header + "\n".join(str(i) for i in issues), fix=fix)


class SourceError(TaxiwayError):
    """A source cannot be reached, read or parsed."""

    http_status = 503


class ContractViolation(TaxiwayError):
    """A contract rule with policy `block` failed: the circuit breaker for that source opens."""

    exit_code = EXIT_BLOCKED
    http_status = 422


class FeatureError(TaxiwayError):
    """A feature definition cannot be computed or served."""


class ModelError(TaxiwayError):
    """A model cannot be trained, loaded or scored."""


class RegistryError(ModelError):
    """The model registry cannot be reached, or has no such version or stage change."""


class MonitoringError(TaxiwayError):
    """The monitor cannot read its reference, the prediction log or the outcomes, or cannot
    deliver an alert."""


class RolloutError(TaxiwayError):
    """A rollout cannot start, be read or change step (no candidate, a bad plan, its state
    unreadable or its audit chain broken)."""


class ServingError(TaxiwayError):
    """The prediction service cannot start or answer."""

    http_status = 503


class RequestError(ServingError):
    """A malformed request: ``problems`` are (location, message) pairs for a 422 answer.

    >>> error = RequestError([("entities.customer", "required")])
    >>> error.http_status, error.message
    (422, 'entities.customer: required')
    """

    http_status = 422

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(
            "; ".join(f"{where}: {what}" for where, what in problems),
            fix="send the fields the served input contract names (GET /openapi.json)",
        )
        self.problems = problems

    def detail(self) -> list[dict[str, object]]:
        """The ``detail`` list of the 422 body."""
        return [{"loc": where.split("."), "msg": what} for where, what in self.problems]


class GovernanceError(TaxiwayError):
    """A sign-off cannot be recorded (a role the spec does not ask for, no name, a failed
    write), or the approvals log is broken (a line edited, deleted, inserted or incomplete)."""


class LineageError(TaxiwayError):
    """A lineage event could not be sent (an OpenLineage endpoint down or refusing it). The
    emitter reports it as a warning: lineage never fails the command it describes."""


class MissingExtraError(TaxiwayError):
    """A command needs an extra (``taxiway[train]``, ``taxiway[serve]``...) that is not installed.

    >>> error = MissingExtraError("train", needed_by="taxiway train", missing=["lightgbm"])
    >>> error.exit_code, error.message
    (4, 'taxiway train needs taxiway[train], which is not installed (no lightgbm)')
    >>> error.fix
    "pip install 'taxiway[train]'"
    >>> MissingExtraError("serve", needed_by="taxiway serve", missing=list("abcde")).message
    'taxiway serve needs taxiway[serve], which is not installed (no a, b, c and 2 more)'
    >>> MissingExtraError("serve", needed_by="taxiway serve", missing="uvicorn").missing
    ('uvicorn',)
    """

    exit_code = EXIT_NOT_INSTALLED

    def __init__(self, extra: str, *, needed_by: str, missing: Sequence[str]) -> None:
        if isinstance(missing, str):  # one module's name, not its letters
            missing = [missing]
        named = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        super().__init__(
            f"{needed_by} needs taxiway[{extra}], which is not installed (no {named})",
            fix=f"pip install 'taxiway[{extra}]'",
        )
        self.extra = extra
        self.missing = tuple(missing)


def exit_code_for(error: BaseException) -> int:
    """The process exit code for ``error``: its class's code, or 1 for anything else."""
    if isinstance(error, TaxiwayError):
        return error.exit_code
    return EXIT_FAILURE
