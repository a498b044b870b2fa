"""report.html in a real browser: headless Chromium loads it, draws the charts, runs nothing.

Chromium dumps the DOM it built (``--dump-dom``), logs page console messages to stderr
(``--enable-logging=stderr``) and records every network request (``--log-net-log``), so the
test sees what a reader's browser would: the charts and tables as parsed, any script that ran,
any file the page tried to fetch. Skipped where Chromium is missing; a failure in CI.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import IN_CI
from tests.sprint.test_report import bars, elements, full_debrief

from taxiway.sprint.report import write_report

CHROMIUM = Path("/usr/bin/chromium")


def require_chromium(chromium: Path = CHROMIUM, in_ci: bool = IN_CI) -> Path:
    """Skip (on a user's machine) or fail (in CI) when Chromium is not installed."""
    if chromium.exists():
        return chromium
    reason = f"Chromium is not installed at {chromium}"
    if in_ci:
        pytest.fail(f"{reason}; CI must install it (.ci/run)", pytrace=False)
    pytest.skip(f"{reason}; `apt-get install chromium` to run the browser test")


@dataclass
class Loaded:
    dom: str
    console: list[str]
    page_requests: list[str]


def load(page: Path, scratch: Path) -> Loaded:
    """Open ``page`` in headless Chromium; what it built, logged and fetched."""
    net_log = scratch / "net.json"
    run = subprocess.run(
        [
            str(require_chromium()),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={scratch / 'profile'}",
            # nothing may leave this machine, even the browser's own background calls
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr",
            "--v=0",
            f"--log-net-log={net_log}",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return Loaded(run.stdout, console, _page_requests(net_log))


def _page_requests(net_log: Path) -> list[str]:
    """URLs the page itself asked for (the browser's own calls have another isolation key)."""
    events = json.loads(net_log.read_text()).get("events", [])
    return sorted(
        {
            params["url"]
            for params in (event.get("params") or {} for event in events)
            if "url" in params
            and str(params.get("network_isolation_key", "")).startswith("file://")
            and not params["url"].startswith("file:")
        }
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    folder = tmp_path_factory.mktemp("report")
    page = write_report(full_debrief(), folder)["html"]
    return load(page, folder)


def test_the_charts_are_drawn_with_their_bars(loaded: Loaded) -> None:
    svgs = [attrs.get("id") for tag, attrs in elements(loaded.dom) if tag == "svg"]
    assert svgs == [
        "chart-timeline",
        "chart-model",
        "lineage-graph",  # the registered version's lineage (issue 20)
        "chart-load",
        "chart-drill",
        "chart-drill-latency",
    ]
    timeline = bars(loaded.dom, "chart-timeline")
    assert [(a["data-phase"], a["data-status"]) for a in timeline] == [
        ("data_access", "fail"),
        ("model_development", "pass"),
        ("integration", "warn"),
        ("deployment", "fail"),
    ]
    assert all(float(a["width"] or 0) > 0 for a in timeline)
    assert [a["data-name"] for a in bars(loaded.dom, "chart-model")] == ["model", "baseline"]
    assert [a["data-name"] for a in bars(loaded.dom, "chart-load")] == ["p50", "p99", "server-p99"]
    assert len(bars(loaded.dom, "chart-drill")) == 3
    assert loaded.dom.count('<line class="budget"') == 2


def test_the_tables_have_their_rows(loaded: Loaded) -> None:
    rows = {}
    table = None
    for tag, attrs in elements(loaded.dom):
        if tag == "table":
            table = attrs.get("id")
            rows[table] = 0
        elif tag == "tr" and table is not None:
            rows[table] += 1
    # each count includes the header row
    assert rows == {
        "questions-table": 6,
        "checks-table": 6,
        "blockers-table": 4,
        "audit-table": 3,
        "importance-table": 3,  # permutation importance beside mean |contribution|
        "card-table-0": 2,  # the model card's metrics against the baseline
        "approvals-table": 4,
        "gates-table": 3,
        "readiness-observed": 2,
        "readiness-declared": 2,
        "readiness-unanswered": 2,
    }


def test_nothing_ran_and_nothing_was_fetched(loaded: Loaded) -> None:
    assert loaded.console == []
    assert loaded.page_requests == []
    assert not [tag for tag, _ in elements(loaded.dom) if tag == "script"]
    # the evidence's script is text on the page, and it did not run
    assert "data-pwned" not in re.sub(r"&lt;script&gt;.*?&lt;/script&gt;", "", loaded.dom)
    assert "permission denied &lt;script&gt;document.body.setAttribute(" in loaded.dom


def test_the_browser_checks_can_see_a_script_and_a_fetch(tmp_path: Path) -> None:
    """The two checks above would pass vacuously if Chromium stopped reporting; it does not."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><img src="https://example.invalid/a.png">'
        "<script>missingFunction()</script></body></html>"
    )
    seen = load(page, tmp_path)
    assert any("missingFunction" in line for line in seen.console)
    assert seen.page_requests == ["https://example.invalid/a.png"]


def test_without_chromium_it_skips_on_a_laptop_and_fails_in_ci(tmp_path: Path) -> None:
    absent = tmp_path / "chromium"
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        require_chromium(absent, in_ci=False)
    with pytest.raises(pytest.fail.Exception, match=r"CI must install it \(.ci/run\)"):
        require_chromium(absent, in_ci=True)
