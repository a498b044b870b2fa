"""Sign-offs: recorded in an append-only hash chain that notices any edit, safe to append to
from several processes, and judged against governance.approvals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES

from taxiway.cli import main
from taxiway.errors import GovernanceError, TaxiwayError
from taxiway.spec.project import Project
from taxiway.sprint.approvals import (
    GENESIS,
    approvals_path,
    approvals_summary,
    missing_approvals,
    read_approvals,
    record_approval,
    sign_offs,
)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """The retail example's spec (approvals: security, privacy, business) in tmp_path."""
    shutil.copy(EXAMPLES / "retail" / "taxiway.yaml", tmp_path / "taxiway.yaml")
    shutil.copytree(EXAMPLES / "retail" / "contracts", tmp_path / "contracts")
    return tmp_path / "taxiway.yaml"


@pytest.fixture
def project(spec: Path) -> Project:
    return Project.load(spec)


def _three(project: Project) -> Path:
    record_approval(project, "security", "Ann Lee")
    record_approval(project, "privacy", "Bo Chen", note="DPIA-17")
    record_approval(project, "business", "Cy Diaz")
    return approvals_path(project)


def test_missing_until_each_role_signs_off(project: Project) -> None:
    assert missing_approvals(project) == ["security", "privacy", "business"]
    first = record_approval(project, "privacy", "Bo Chen", note="DPIA-17 reviewed")
    assert missing_approvals(project) == ["security", "business"]
    record_approval(project, "security", "Ann Lee")
    record_approval(project, "business", "Cy Diaz")
    assert missing_approvals(project) == []
    records = read_approvals(project)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0] == first
    assert first.prev == GENESIS
    assert first.project == "retail_churn"
    assert first.at.endswith("+00:00")
    assert approvals_path(project) == project.state_dir / "governance" / "approvals.jsonl"


def test_each_record_links_to_the_line_before_it(project: Project) -> None:
    import hashlib

    path = _three(project)
    lines = path.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[1]["prev"] == hashlib.sha256(lines[0]).hexdigest()
    assert records[2]["prev"] == hashlib.sha256(lines[1]).hexdigest()
    assert set(records[0]) == {
        "seq", "project", "role", "by", "note", "at", "spec_sha256", "prev", "hash"
    }  # fmt: skip


def test_names_and_notes_are_stored_as_given(project: Project) -> None:
    by = '  Zoë "Z" Ørsted\t[bold]'
    note = "ok if:\n- the key is rotated\n- ${NOT_EXPANDED} stays text"
    record_approval(project, "security", by, note=note)
    [record] = read_approvals(project)
    assert (record.by, record.note) == (by, note)


def test_a_role_the_spec_does_not_ask_for_is_refused_with_the_valid_ones(
    project: Project,
) -> None:
    with pytest.raises(GovernanceError) as caught:
        record_approval(project, "legal", "Ann Lee")
    assert "legal" in caught.value.message
    assert caught.value.fix is not None
    assert "security, privacy, business" in caught.value.fix
    assert not approvals_path(project).exists()


def test_a_spec_without_governance_asks_for_no_sign_off(spec: Path) -> None:
    text = spec.read_text()
    spec.write_text(text[: text.index("governance:")])
    project = Project.load(spec)
    assert missing_approvals(project) == []
    with pytest.raises(GovernanceError) as caught:
        record_approval(project, "security", "Ann Lee")
    assert caught.value.fix is not None
    assert "approvals: [security, privacy, business]" in caught.value.fix


def test_an_empty_name_is_refused(project: Project) -> None:
    with pytest.raises(GovernanceError, match="name"):
        record_approval(project, "security", "   ")


def _broken(project: Project) -> str:
    with pytest.raises(GovernanceError) as caught:
        read_approvals(project)
    return caught.value.message


def test_an_edited_line_is_caught(project: Project) -> None:
    path = _three(project)
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("Bo Chen", "Bo Chan")
    path.write_text("".join(lines))
    message = _broken(project)
    assert f"{path}:2:" in message
    assert "edited" in message


def test_an_edited_line_with_a_recomputed_hash_is_caught_by_the_next(project: Project) -> None:
    import hashlib

    path = _three(project)
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[0])
    record["by"] = "Mallory"
    del record["hash"]
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    record["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    lines[0] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    path.write_text("".join(lines))
    message = _broken(project)
    assert f"{path}:2:" in message
    assert "prev" in message


def test_a_deleted_line_is_caught(project: Project) -> None:
    path = _three(project)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[2])
    message = _broken(project)
    assert f"{path}:2:" in message
    assert "deleted" in message


def test_deleting_the_last_records_is_caught_by_the_head_and_blocks_appending(
    project: Project,
) -> None:
    path = _three(project)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0])
    message = _broken(project)
    assert f"{path}:2:" in message
    assert "records 2 to 3 were deleted from the end" in message
    with pytest.raises(GovernanceError):
        record_approval(project, "privacy", "Bo Chen")  # would hide the cut
    assert path.read_text() == lines[0]


def test_taxiway_approve_verify_checks_every_record_and_names_the_broken_one(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(project.spec_path)
    assert main(["approve", "-f", spec, "--verify"]) == 0
    assert "0 records verified" in capsys.readouterr().out
    path = _three(project)
    assert main(["approve", "-f", spec, "--verify"]) == 0
    out = capsys.readouterr().out
    assert f"{path}: 3 records verified: every hash and link (unsigned)" in out
    assert "the log ends where it should" in out
    path.write_text(path.read_text().replace("Bo Chen", "Bo Chan"))
    assert main(["approve", "-f", spec, "--verify"]) == 1
    assert f"error: {path}:2: the approvals log is broken" in capsys.readouterr().err
    assert main(["approve", "-f", spec, "--verify", "--list"]) == 2


def test_an_incomplete_last_line_is_caught_and_never_appended_to(project: Project) -> None:
    path = _three(project)
    with path.open("a") as out:
        out.write('{"seq": 4, "proj')
    assert f"{path}:4:" in _broken(project)
    size = path.stat().st_size
    with pytest.raises(GovernanceError, match="incomplete"):
        record_approval(project, "security", "Ann Lee")
    assert path.stat().st_size == size


def test_a_sign_off_for_an_earlier_spec_counts_but_says_so(spec: Path) -> None:
    record_approval(Project.load(spec), "security", "Ann Lee")
    spec.write_text(spec.read_text().replace("latency_budget_ms: 50", "latency_budget_ms: 40"))
    project = Project.load(spec)
    record_approval(project, "privacy", "Bo Chen")
    status = {s.role: s.status for s in sign_offs(project)}
    assert status == {"security": "earlier_spec", "privacy": "present", "business": "missing"}
    assert missing_approvals(project) == ["business"]
    summary = approvals_summary(project)  # what the debrief shows
    assert summary["required"] == ["security", "privacy", "business"]
    assert [(p["role"], p["earlier_spec"]) for p in summary["present"]] == [
        ("security", True),
        ("privacy", False),
    ]
    assert (summary["missing"], summary["earlier_spec"]) == (["business"], ["security"])


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from taxiway.spec.project import Project
    from taxiway.sprint.approvals import record_approval

    spec, go, who = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    project = Project.load(spec)
    while not go.exists():
        time.sleep(0.001)
    for i in range(20):
        record_approval(project, ("security", "privacy", "business")[i % 3], f"{who}-{i}")
    """
)


def test_two_processes_appending_at_once_keep_the_chain(project: Project, tmp_path: Path) -> None:
    go = tmp_path / "go"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(project.spec_path), str(go), who])
        for who in ("a", "b")
    ]
    time.sleep(1.0)  # both are importing and waiting; then start them together
    go.touch()
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    records = read_approvals(project)  # verifies the chain
    assert [r.seq for r in records] == list(range(1, 41))
    assert sorted(r.by for r in records) == sorted(f"{w}-{i}" for w in "ab" for i in range(20))


def test_taxiway_approve_records_and_lists(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["approve", "-f", str(spec), "--role", "security", "--by", "Ann Lee",
                 "--note", "pen test 2026-05"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "security: signed off by Ann Lee" in out
    assert "still missing: privacy, business" in out
    assert main(["approve", "-f", str(spec), "--list"]) == 0
    out = capsys.readouterr().out
    assert "security: Ann Lee" in out
    assert "privacy: MISSING" in out
    assert main(["approve", "-f", str(spec), "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["missing"] == ["privacy", "business"]
    assert listed["records"][0]["note"] == "pen test 2026-05"
    assert listed["head"] == listed["records"][0]["hash"]


def test_taxiway_approve_errors(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["approve", "-f", str(spec), "--role", "legal", "--by", "Ann"]) == 1
    assert "security, privacy, business" in capsys.readouterr().err
    assert main(["approve", "-f", str(spec)]) == 2
    assert main(["approve", "-f", str(spec), "--role", "security"]) == 2
    assert main(["approve", "-f", str(spec), "--role", "security", "--by", "A", "--list"]) == 2
    assert not approvals_path(Project.load(spec)).exists()


def test_a_broken_log_is_a_governance_error_the_cli_shows_with_its_fix(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert issubclass(GovernanceError, TaxiwayError)
    path = _three(project)
    path.write_text(path.read_text().replace("Bo Chen", "Bo Chan"))
    assert main(["approve", "-f", str(project.spec_path), "--list"]) == 1
    err = capsys.readouterr().err
    assert f"error: {path}:2: the approvals log is broken" in err
    assert "fix: the log is append-only" in err
