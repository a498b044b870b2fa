"""The card with the sprint layer's inputs: the verified sign-offs (a tampered log shows none),
and the card as the sprint report's fact."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import EXAMPLES
from tests.models.test_card import EVIL, _version

from taxiway.models.card import GROUP_HEADERS, build_card
from taxiway.spec.project import Project
from taxiway.sprint.approvals import approvals_path, record_approval
from taxiway.sprint.card import card_fact, card_sign_offs, write_version_card


def _retail(tmp_path: Path) -> Project:
    shutil.copytree(EXAMPLES / "retail" / "contracts", tmp_path / "contracts")
    shutil.copy(EXAMPLES / "retail" / "taxiway.yaml", tmp_path / "taxiway.yaml")
    return Project.load(tmp_path / "taxiway.yaml")


def test_the_card_lists_each_required_role_with_its_sign_off(tmp_path: Path) -> None:
    project = _retail(tmp_path)
    record_approval(project, "privacy", "pia", f"checked {EVIL}")
    got = {s["role"]: s for s in card_sign_offs(project)}
    assert list(got) == ["security", "privacy", "business"]
    assert got["security"] == {
        "role": "security", "status": "missing", "by": None, "at": None, "note": None
    }  # fmt: skip
    assert (got["privacy"]["status"], got["privacy"]["by"]) == ("present", "pia")
    folder = tmp_path / "card"
    card, paths = write_version_card(project, _version(), None, folder)
    text = paths["md"].read_text()
    assert "| privacy | present | pia |" in text
    assert "<script" not in paths["html"].read_text()
    assert card.version == 4


def test_a_tampered_log_shows_no_sign_off_and_says_why(tmp_path: Path) -> None:
    project = _retail(tmp_path)
    record_approval(project, "security", "sam")
    log = approvals_path(project)
    log.write_text(log.read_text().replace('"sam"', '"mallory"'))
    got = card_sign_offs(project)
    assert {s["status"] for s in got} == {"unverified"}
    assert all(s.get("by") is None and s["note"] for s in got)


def test_the_report_fact_holds_the_group_tables_and_the_findings(tmp_path: Path) -> None:
    project = _retail(tmp_path)
    card = build_card(project.spec, _version())
    fact = card_fact(card, {"md": tmp_path / "card.md", "html": tmp_path / "card.html"})
    assert [t["headers"][1:] for t in fact["tables"]] == [GROUP_HEADERS, GROUP_HEADERS]
    assert [t["headers"][0] for t in fact["tables"]] == ["time slice", "region"]
    assert [f["title"] for f in fact["findings"]] == [
        "the model is worse than the baseline for region=north"
    ]
