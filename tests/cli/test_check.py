"""`taxiway check` as a user runs it: tables, JSON, JUnit, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pytest

from taxiway.cli import main

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
schema:
  - name: orders
    properties:
      - {name: order_id, logicalType: integer, required: true, unique: true}
      - {name: customer_id, logicalType: integer, required: true}
      - {name: amount, logicalType: number, logicalTypeOptions: {minimum: 0}}
      - {name: email, logicalType: string, classification: pii}
      - {name: ordered_at, logicalType: timestamp}
    quality:
      - {metric: rowCount, mustBeGreaterThan: 2, severity: error}
"""

CSV = """\
order_id,customer_id,amount,email,ordered_at
1,10,5.0,ann@example.com,2025-01-01 10:00:00
2,10,-3.0,bob@example.com,2025-01-02 10:00:00
2,11,7.0,bob@example.com,2025-01-02 10:00:00
4,12,1.0,cy@example.com,2025-01-03 10:00:00
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("TAXIWAY_STATE_DIR", raising=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text(CSV)
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "orders.yaml").write_text(CONTRACT)
    (tmp_path / "taxiway.yaml").write_text(
        textwrap.dedent(
            """\
            name: shop
            sources:
              orders:
                kind: file
                path: data/orders.csv
                timestamp: ordered_at
                contract: contracts/orders.yaml
            entities: {customer: customer_id}
            features:
              spend: {source: orders, entity: customer, aggregate: {total: sum(amount)}, windows: [30d]}
            """
        )
    )
    return tmp_path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_passes_quarantines_and_reports_json(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["check", "-f", str(project / "taxiway.yaml"), "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    [orders] = result["sources"]
    assert orders["name"] == "orders"
    assert orders["rows"] == 4
    findings = {f["rule"]: f for f in orders["findings"]}
    assert findings["amount.minimum"]["severity"] == "quarantine"
    assert findings["amount.minimum"]["failing"] == 1
    assert findings["order_id.unique"]["failing"] == 1
    assert set(findings["amount.minimum"]) >= {"rule", "severity", "failing", "message", "fix"}
    assert "example.com" not in out, "PII is masked in every report"
    quarantine = Path(orders["quarantine"])
    assert quarantine.parent == project / ".taxiway" / "quarantine" / "orders"
    reasons = duckdb.execute(
        f"SELECT order_id, _reason FROM '{quarantine}' ORDER BY ALL"
    ).fetchall()
    assert [r[0] for r in reasons] == [2]
    assert "amount.minimum" in reasons[0][1]


def test_check_finds_the_spec_in_the_current_folder(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    code, out, _ = run(["check"], capsys)
    assert code == 0
    assert "orders" in out
    assert "quarantine" in out


def test_a_block_rule_exits_3_and_junit_records_the_failure(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "data" / "orders.csv").write_text(
        CSV.splitlines()[0] + "\n" + CSV.splitlines()[1] + "\n"
    )
    junit = project / "out" / "check.xml"
    code, out, _ = run(["check", "-f", str(project), "--junit", str(junit)], capsys)
    assert code == 3
    assert "BLOCKED" in out
    suites = ET.parse(junit).getroot()
    failures = [
        case.get("name") for case in suites.iter("testcase") if case.find("failure") is not None
    ]
    assert failures == ["rowCount"]


def test_a_column_the_spec_uses_but_the_source_lacks_blocks(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = project / "taxiway.yaml"
    spec.write_text(spec.read_text().replace("sum(amount)", "sum(price)"))
    code, out, _ = run(["check", "-f", str(spec), "--json"], capsys)
    assert code == 3
    rules = [f["rule"] for f in json.loads(out)["sources"][0]["findings"]]
    assert "spec.column.price" in rules


def test_bad_spec_exits_2_with_file_line_and_fix(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = project / "taxiway.yaml"
    spec.write_text(spec.read_text().replace("timestamp:", "timestmp:"))
    code, _, err = run(["check", "-f", str(spec)], capsys)
    assert code == 2
    assert "taxiway.yaml:6:5: sources.orders.timestmp" in err
    assert "did you mean `timestamp`?" in err
    assert "Traceback" not in err


def test_bad_contract_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "contracts" / "orders.yaml").write_text(
        CONTRACT.replace("required: true, unique", "requird: true, unique")
    )
    code, _, err = run(["check", "-f", str(project)], capsys)
    assert code == 2
    assert "orders.yaml:6:" in err


def test_missing_data_and_a_csv_that_differs_from_the_contract_are_findings(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "data" / "orders.csv").write_text("order_id,amount\n1,2.0\n")
    code, out, _ = run(["check", "-f", str(project), "--json"], capsys)
    assert code == 3
    rules = {f["rule"]: f["severity"] for f in json.loads(out)["sources"][0]["findings"]}
    assert rules["schema.removed.customer_id"] == "block"
    (project / "data" / "orders.csv").unlink()
    code, out, _ = run(["check", "-f", str(project), "--json"], capsys)
    assert code == 3
    [finding] = json.loads(out)["sources"][0]["findings"]
    assert finding["rule"] == "source.read"
    assert finding["fix"]


def test_freshness_is_judged_as_of_the_given_time(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = project / "contracts" / "orders.yaml"
    contract.write_text(
        CONTRACT
        + "slaProperties: [{property: latency, value: 1, unit: d, element: orders.ordered_at}]\n"
    )
    _, out, _ = run(
        ["check", "-f", str(project), "--json", "--as-of", "2025-01-03T12:00:00"], capsys
    )
    assert "ordered_at.freshness" not in {
        f["rule"] for f in json.loads(out)["sources"][0]["findings"]
    }
    _, out, _ = run(
        ["check", "-f", str(project), "--json", "--as-of", "2025-02-01T00:00:00"], capsys
    )
    stale = [
        f for f in json.loads(out)["sources"][0]["findings"] if f["rule"] == "ordered_at.freshness"
    ]
    assert stale[0]["severity"] == "warn"


def test_the_console_script_runs_without_a_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "taxiway"
    result = subprocess.run(
        [str(script), "check", "-f", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 2
    assert "spec file not found" in result.stderr
    assert "Traceback" not in result.stderr
    version = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=False
    )
    assert version.stdout.startswith("taxiway ")


def test_usage_errors_exit_2_with_usage_not_an_internal_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["check", "--bogus"], capsys)
    assert code == 2
    assert "internal error" not in err
    code, _, err = run(["check", "-f", str(project), "--as-of", "yesterday"], capsys)
    assert code == 2
    assert "--as-of" in err


def test_state_dir_option_puts_quarantine_where_asked(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    code, out, _ = run(["check", "--state-dir", ".", "--json"], capsys)
    assert code == 0
    quarantine = Path(json.loads(out)["sources"][0]["quarantine"])
    assert quarantine.parent.resolve() == (project / "quarantine" / "orders").resolve()
