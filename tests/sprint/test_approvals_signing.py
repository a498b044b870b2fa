"""Signed sign-offs (governance.signing_key_env): without the key, whoever can write the log can
rewrite the whole chain and it verifies; with it, every record's HMAC catches that."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import EXAMPLES

from taxiway.cli import main
from taxiway.errors import GovernanceError, SpecError
from taxiway.spec.project import Project
from taxiway.sprint.approvals import (
    approvals_path,
    approvals_summary,
    read_approvals,
    record_approval,
)

KEY_ENV = "TAXIWAY_TEST_APPROVALS_KEY"
KEY = "k3y-0f-the-approvals-" + "0123456789abcdef"
OTHER_KEY = "an0ther-key-" + "fedcba9876543210"


def _spec(tmp_path: Path, *, signed: bool) -> Path:
    """The retail example's spec (approvals: security, privacy, business), signed or not."""
    shutil.copytree(EXAMPLES / "retail" / "contracts", tmp_path / "contracts")
    text = (EXAMPLES / "retail" / "taxiway.yaml").read_text()
    if signed:
        head = "governance:\n"
        assert text.count(head) == 1
        text = text.replace(head, f"{head}  signing_key_env: {KEY_ENV}\n")
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(text)
    return spec


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


@pytest.fixture
def signed(tmp_path: Path, key: str) -> Project:
    return Project.load(_spec(tmp_path, signed=True))


@pytest.fixture
def unsigned(tmp_path: Path) -> Project:
    return Project.load(_spec(tmp_path, signed=False))


def _three(project: Project) -> Path:
    record_approval(project, "security", "Ann Lee")
    record_approval(project, "privacy", "Bo Chen", note="DPIA-17")
    record_approval(project, "business", "Cy Diaz")
    return approvals_path(project)


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _rewrite(path: Path, line: int, change: Callable[[dict[str, Any]], None]) -> None:
    """What someone who can write the file does: change record ``line`` (1-based), then
    recompute every ``hash`` and ``prev`` after it so that the chain is consistent again, and
    the head beside it.
    Without the key, a ``mac`` cannot be recomputed: it is left as it was."""
    records = [json.loads(text) for text in path.read_bytes().splitlines()]
    change(records[line - 1])
    out = []
    prev = "0" * 64
    for record in records:
        record["prev"] = prev
        content = {k: v for k, v in record.items() if k not in ("hash", "mac")}
        record["hash"] = hashlib.sha256(_canonical(content)).hexdigest()
        encoded = _canonical(record)
        out.append(encoded + b"\n")
        prev = hashlib.sha256(encoded).hexdigest()
    path.write_bytes(b"".join(out))
    _rewrite_head(path, records[-1])


def _rewrite_head(path: Path, last: dict[str, Any]) -> None:
    """The head beside the log made to agree with ``last`` (its ``mac``, which needs the key,
    left as it was)."""
    head = path.with_name("approvals.head.json")
    old = json.loads(head.read_bytes())
    head.write_bytes(_canonical({**old, "seq": last["seq"], "hash": last["hash"]}) + b"\n")


def _mallory(record: dict[str, Any]) -> None:
    record["by"] = "Mallory"


def _broken(project: Project) -> GovernanceError:
    with pytest.raises(GovernanceError) as caught:
        read_approvals(project)
    return caught.value


def test_each_signed_record_carries_a_mac_and_reads_back(signed: Project) -> None:
    path = _three(signed)
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert all(len(record["mac"]) == 64 for record in records)
    assert [a.by for a in read_approvals(signed)] == ["Ann Lee", "Bo Chen", "Cy Diaz"]


def test_without_a_key_a_consistent_rewrite_of_the_chain_goes_unnoticed(
    unsigned: Project,
) -> None:
    """The documented limit: hashes alone are recomputable, so this verifies."""
    path = _three(unsigned)
    _rewrite(path, 2, _mallory)
    assert [a.by for a in read_approvals(unsigned)] == ["Ann Lee", "Mallory", "Cy Diaz"]


def test_with_a_key_the_same_rewrite_is_caught_naming_the_record(signed: Project) -> None:
    path = _three(signed)
    _rewrite(path, 2, _mallory)
    error = _broken(signed)
    assert f"{path}:2:" in error.message
    assert "signature" in error.message
    assert KEY not in str(error)


def test_with_a_key_dropping_the_mac_of_a_rewritten_record_is_caught(signed: Project) -> None:
    path = _three(signed)

    def unsign(record: dict[str, Any]) -> None:
        record["by"] = "Mallory"
        del record["mac"]

    _rewrite(path, 3, unsign)
    error = _broken(signed)
    assert f"{path}:3:" in error.message
    assert "not signed" in error.message


def test_without_a_key_cutting_the_last_record_and_its_head_goes_unnoticed(
    unsigned: Project,
) -> None:
    """The same limit at the end of the log: the head is as rewritable as the log."""
    path = _three(unsigned)
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    path.write_bytes(b"".join(line + b"\n" for line in path.read_bytes().splitlines()[:2]))
    _rewrite_head(path, records[1])
    assert [a.by for a in read_approvals(unsigned)] == ["Ann Lee", "Bo Chen"]


def test_with_a_key_cutting_the_last_record_is_caught_even_with_the_head_rewritten(
    signed: Project,
) -> None:
    path = _three(signed)
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    path.write_bytes(b"".join(line + b"\n" for line in path.read_bytes().splitlines()[:2]))
    error = _broken(signed)
    assert f"{path}:3:" in error.message
    assert "record 3 was deleted from the end" in error.message
    _rewrite_head(path, records[1])  # its mac, which needs the key, no longer matches
    error = _broken(signed)
    assert "approvals.head.json:1:" in error.message
    assert "signature" in error.message


def test_a_log_signed_with_another_key_is_refused(
    signed: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _three(signed)
    monkeypatch.setenv(KEY_ENV, OTHER_KEY)
    error = _broken(signed)
    assert f"{path}:1:" in error.message
    assert "another key" in error.message
    assert KEY not in str(error)
    assert OTHER_KEY not in str(error)
    with pytest.raises(GovernanceError, match="another key"):  # never extended either
        record_approval(signed, "security", "Dee Ellis")
    assert len(path.read_bytes().splitlines()) == 3


def test_a_log_written_before_the_key_was_set_is_refused_with_what_to_do(
    tmp_path: Path, key: str
) -> None:
    spec = _spec(tmp_path, signed=False)
    path = _three(Project.load(spec))
    spec.write_text(_spec(tmp_path / "signed", signed=True).read_text())
    error = _broken(Project.load(spec))
    assert f"{path}:1:" in error.message
    assert "not signed" in error.message
    assert error.fix is not None
    assert "move it aside" in error.fix


def test_a_key_that_is_not_set_or_too_short_is_an_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project.load(_spec(tmp_path, signed=True))
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(GovernanceError, match=f"{KEY_ENV}, which is not set"):
        record_approval(project, "security", "Ann Lee")
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(GovernanceError, match="shorter than 16") as caught:
        read_approvals(project)
    assert "short" not in str(caught.value).replace("shorter", "")
    assert not approvals_path(project).exists()


def test_the_key_is_never_in_the_log_a_report_or_the_cli_output(
    signed: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _three(signed)
    assert KEY.encode() not in path.read_bytes()
    assert KEY not in json.dumps(approvals_summary(signed))
    spec = str(signed.spec_path)
    assert main(["approve", "-f", spec, "--role", "security", "--by", "Dee Ellis"]) == 0
    assert main(["approve", "-f", spec, "--list", "--json"]) == 0
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err
    listed = json.loads(_last_json(captured.out))
    assert [r["by"] for r in listed["records"]][-1] == "Dee Ellis"


def _last_json(out: str) -> str:
    """The JSON document `--list --json` printed after the earlier command's lines."""
    return out[out.index("{") :]


@pytest.mark.parametrize("bad", ["not a name", "${KEY}", "1ST"])
def test_signing_key_env_must_be_a_variable_name(tmp_path: Path, bad: str) -> None:
    spec = _spec(tmp_path, signed=True)
    spec.write_text(spec.read_text().replace(KEY_ENV, json.dumps(bad)))
    with pytest.raises(SpecError, match="signing_key_env"):
        Project.load(spec)
