"""A version's model card with what only the sprint layer reads: the sign-offs recorded in
the approvals log (verified) beside the handoff audit's findings.

The card itself is :mod:`taxiway.models.card`; this module gathers its inputs for
``taxiway models card`` and the sprint, and writes it into the version's artifact folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taxiway.errors import TaxiwayError
from taxiway.models.card import GROUP_HEADERS, VersionCard, build_card, write_card
from taxiway.models.registry import ModelVersion
from taxiway.spec.project import Project
from taxiway.sprint.approvals import sign_offs

__all__ = ["card_fact", "card_sign_offs", "version_card", "write_version_card"]


def card_sign_offs(project: Project) -> list[dict[str, Any]]:
    """One dict per role ``governance.approvals`` asks for: ``role``, ``status`` and, when
    signed, ``by``, ``at`` and ``note``. A log that fails verification gives each role the
    status ``unverified`` and the reason as its note (the card never shows a forged one)."""
    try:
        statuses = sign_offs(project)
    except TaxiwayError as error:
        reason = str(error).splitlines()[0]
        roles = project.spec.governance.approvals if project.spec.governance else []
        return [{"role": role, "status": "unverified", "note": reason} for role in roles]
    return [
        {
            "role": s.role,
            "status": s.status,
            "by": s.approval.by if s.approval else None,
            "at": s.approval.at if s.approval else None,
            "note": s.approval.note if s.approval else None,
        }
        for s in statuses
    ]


def version_card(
    project: Project, version: ModelVersion, audit: dict[str, Any] | None = None
) -> VersionCard:
    """The card of ``version`` with the sign-offs recorded now and ``audit``'s findings."""
    return build_card(project.spec, version, audit=audit, sign_offs=card_sign_offs(project))


def write_version_card(
    project: Project,
    version: ModelVersion,
    audit: dict[str, Any] | None = None,
    folder: str | Path | None = None,
) -> tuple[VersionCard, dict[str, Path]]:
    """Write the card into ``folder`` (the version's artifact folder by default)."""
    card = version_card(project, version, audit)
    return card, write_card(card, folder if folder is not None else version.artifact_dir)


def card_fact(card: VersionCard, paths: dict[str, Path]) -> dict[str, Any]:
    """The card as the sprint report shows it (its ``card`` fact): the files, the findings,
    and the tables of groups (time slices, each segment's values) against the baseline."""
    return {
        "files": {kind: str(path) for kind, path in paths.items()},
        "findings": [f.as_dict() for f in card.findings],
        "tables": [
            {"caption": t.caption, "headers": t.headers, "rows": t.rows}
            for section in card.sections
            for t in section.tables
            if t.headers[1:] == GROUP_HEADERS
        ],
    }
