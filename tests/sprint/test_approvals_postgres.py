"""The approvals log in the PostgreSQL registry's database (``registry: {kind: postgres}``):
replicas on several machines share one log, verified like the file (hashes, links, head, HMAC).

Real PostgreSQL (tests/conftest.py's ``postgres_url``: a database made for the session); each
test has its own schema. Tampering is done with SQL, as someone with write access would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES, require

from taxiway.cli import main
from taxiway.errors import GovernanceError
from taxiway.spec.project import Project
from taxiway.sprint.approvals import (
    approvals_path,
    approvals_summary,
    missing_approvals,
    read_approvals,
    record_approval,
)

psycopg = require("psycopg", reason="the postgres registry needs the postgres extra")

KEY_ENV = "TW_TEST_APPROVALS_PG_KEY"


@pytest.fixture
def schema() -> str:
    return f"approvals_{uuid.uuid4().hex[:8]}"


def _spec(folder: Path, url: str, schema: str, *, signed: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / "retail" / "taxiway.yaml", folder / "taxiway.yaml")
    shutil.copytree(EXAMPLES / "retail" / "contracts", folder / "contracts", dirs_exist_ok=True)
    text = (folder / "taxiway.yaml").read_text()
    head = "governance:\n"
    if signed:
        text = text.replace(head, f"{head}  signing_key_env: {KEY_ENV}\n")
    text += f"\nregistry: {{kind: postgres, url: '{url}', schema: {schema}}}\n"
    (folder / "taxiway.yaml").write_text(text)
    return folder / "taxiway.yaml"


@pytest.fixture
def project(tmp_path: Path, postgres_url: str, schema: str) -> Project:
    return Project.load(_spec(tmp_path / "a", postgres_url, schema))


def _three(project: Project) -> None:
    record_approval(project, "security", "Ann Lee")
    record_approval(project, "privacy", "Bo Chen", note="DPIA-17")
    record_approval(project, "business", "Cy Diaz")


def _sql(url: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as con:
        cursor = con.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def test_sign_offs_live_in_the_registry_database_not_in_a_file(
    project: Project, postgres_url: str, schema: str
) -> None:
    assert missing_approvals(project) == ["security", "privacy", "business"]
    _three(project)
    assert missing_approvals(project) == []
    assert not approvals_path(project).exists()
    rows = _sql(postgres_url, f"SELECT seq, line FROM {schema}.approvals ORDER BY seq")
    assert [r[0] for r in rows] == [1, 2, 3]
    assert json.loads(str(rows[1][1]))["note"] == "DPIA-17"
    assert approvals_summary(project)["log"].endswith(f"{schema}.approvals")


def test_a_second_replica_on_another_machine_reads_and_extends_the_same_log(
    project: Project, tmp_path: Path, postgres_url: str, schema: str
) -> None:
    """Another state folder (another machine's disk), the same registry: one chain."""
    record_approval(project, "security", "Ann Lee")
    other = Project.load(_spec(tmp_path / "b", postgres_url, schema))
    assert other.state_dir != project.state_dir
    assert [a.by for a in read_approvals(other)] == ["Ann Lee"]
    record_approval(other, "privacy", "Bo Chen")
    assert [(a.seq, a.by) for a in read_approvals(project)] == [(1, "Ann Lee"), (2, "Bo Chen")]


def test_an_edited_row_is_caught_naming_the_record(
    project: Project, postgres_url: str, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _three(project)
    _sql(
        postgres_url,
        f"UPDATE {schema}.approvals SET line = replace(line, 'Bo Chen', 'Bo Chan') WHERE seq = 2",
    )
    with pytest.raises(GovernanceError, match=r":2: the approvals log is broken.*edited"):
        read_approvals(project)
    assert main(["approve", "-f", str(project.spec_path), "--verify"]) == 1
    assert f"{schema}.approvals" in capsys.readouterr().err


def test_a_deleted_row_and_rows_cut_off_the_end_are_caught(
    project: Project, postgres_url: str, schema: str
) -> None:
    _three(project)
    _sql(postgres_url, f"DELETE FROM {schema}.approvals WHERE seq = 3")
    with pytest.raises(GovernanceError, match="record 3 was deleted from the end"):
        read_approvals(project)
    with pytest.raises(GovernanceError):  # a cut log is never extended
        record_approval(project, "business", "Cy Diaz")
    _sql(postgres_url, f"DELETE FROM {schema}.approvals WHERE seq = 2")
    _sql(postgres_url, f"UPDATE {schema}.approvals_head SET seq = 1")
    with pytest.raises(GovernanceError, match="does not match the head"):
        read_approvals(project)


def test_with_a_key_records_and_head_are_signed_and_a_rewritten_head_is_caught(
    tmp_path: Path, postgres_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "k" * 32)
    project = Project.load(_spec(tmp_path / "s", postgres_url, schema, signed=True))
    _three(project)
    assert all(a.mac for a in read_approvals(project))
    # cut the last record and rewrite the head to match, without the key
    last = json.loads(
        str(_sql(postgres_url, f"SELECT line FROM {schema}.approvals WHERE seq = 2")[0][0])
    )
    _sql(postgres_url, f"DELETE FROM {schema}.approvals WHERE seq = 3")
    _sql(postgres_url, f"UPDATE {schema}.approvals_head SET seq = 2, hash = %s", last["hash"])
    with pytest.raises(GovernanceError, match="signing key does not give"):
        read_approvals(project)


def test_taxiway_approve_records_lists_and_verifies_on_postgres(
    project: Project, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(project.spec_path)
    assert main(["approve", "-f", spec, "--role", "security", "--by", "Ann Lee"]) == 0
    assert main(["approve", "-f", spec, "--verify"]) == 0
    out = capsys.readouterr().out
    assert f"{schema}.approvals: 1 record verified: every hash and link (unsigned)" in out
    assert f"head {schema}.approvals_head: the log ends where it should" in out


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from taxiway.spec.project import Project
    from taxiway.sprint.approvals import record_approval
    spec, go, who = sys.argv[1:]
    project = Project.load(Path(spec))
    while not Path(go).exists():
        time.sleep(0.001)
    for i in range(10):
        record_approval(project, ("security", "privacy", "business")[i % 3], f"{who}-{i}")
    """
)


def test_two_machines_appending_at_once_keep_one_chain(
    project: Project, tmp_path: Path, postgres_url: str, schema: str
) -> None:
    """Two processes with separate state folders (no shared disk) queue on the lock."""
    other = _spec(tmp_path / "b", postgres_url, schema)
    go = tmp_path / "go"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(spec), str(go), who])
        for spec, who in ((project.spec_path, "a"), (other, "b"))
    ]
    time.sleep(1.0)
    go.touch()
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    records = read_approvals(project)  # verifies the chain
    assert [r.seq for r in records] == list(range(1, 21))
    assert sorted(r.by for r in records) == sorted(f"{w}-{i}" for w in "ab" for i in range(10))
