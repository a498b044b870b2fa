"""/dashboard in a real browser: headless Chromium loads it from a running `taxiway dashboard`,
runs its script, draws the tables and charts, and fetches nothing from elsewhere.

Chromium dumps the DOM its script built (``--dump-dom``, after ``--virtual-time-budget`` lets
the script finish), logs page console messages to stderr (``--enable-logging=stderr``; a
Content-Security-Policy refusal or a script error lands there) and records every network
request (``--log-net-log``). Skipped where Chromium is missing; a failure in CI.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tests.sprint.test_report_browser import require_chromium

from .conftest import serving, variant
from .dashboard_fixture import RETAIL_SPEC, dashboard_server, monitored_state, write_report


@dataclass
class Loaded:
    dom: str
    console: list[str]
    requests: list[str]  # every URL the page asked for


def load(url: str, scratch: Path, budget_ms: int = 5000) -> Loaded:
    """Open ``url`` in headless Chromium; what its page built, logged and fetched."""
    net_log = scratch / "net.json"
    origin = re.match(r"https?://[^/]+", url)
    assert origin is not None
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
            # nothing may leave this machine: every name but the server's resolves to nothing
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
            f"--log-net-log={net_log}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return Loaded(run.stdout, console, _page_requests(net_log, "http://127.0.0.1"))


def _page_requests(net_log: Path, site: str) -> list[str]:
    """URLs the page asked for: those of requests made for the page's site (the browser's
    own background calls have another network isolation key)."""
    events = json.loads(net_log.read_text()).get("events", [])
    return sorted(
        {
            params["url"]
            for params in (event.get("params") or {} for event in events)
            if "url" in params and str(params.get("network_isolation_key", "")).startswith(site)
        }
    )


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


def elements(dom: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Elements()
    parser.feed(dom)
    parser.close()
    return parser.found


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Loaded]]:
    require_chromium()
    folder = tmp_path_factory.mktemp("dashboard-browser")
    saved = write_report(folder)
    args = ["-f", str(RETAIL_SPEC), "--state-dir", str(folder / "state"), "--report", str(saved)]
    with dashboard_server(*args, cwd=folder) as url:
        yield url, load(f"{url}/dashboard", folder)


def test_the_page_loads_with_no_console_message(loaded: tuple[str, Loaded]) -> None:
    _, page = loaded
    assert page.console == []
    assert 'data-drawn="ok"' in page.dom  # the script ran to its end


def test_the_page_asks_only_its_own_server(loaded: tuple[str, Loaded]) -> None:
    url, page = loaded
    assert f"{url}/dashboard/dashboard.js" in page.requests
    assert f"{url}/dashboard/dashboard.css" in page.requests
    assert [u for u in page.requests if not u.startswith(url + "/")] == []


def test_a_drifted_feature_shows_as_drifted(loaded: tuple[str, Loaded]) -> None:
    _, page = loaded
    rows = {
        attrs["data-feature"]: attrs
        for tag, attrs in elements(page.dom)
        if tag == "tr" and "feature" in attrs.get("class", "").split()
    }
    assert {name: row["data-status"] for name, row in rows.items()} == {
        "spend_30d": "drift",
        "orders_7d": "warn",
        "tenure_days": "ok",
        "__output__": "ok",
    }
    assert "status-drift" in rows["spend_30d"]["class"].split()
    # drifted first, then warned, then the rest
    order = [a["data-feature"] for t, a in elements(page.dom) if t == "tr" and "data-feature" in a]
    assert order[:2] == ["spend_30d", "orders_7d"]


def test_the_charts_are_drawn(loaded: tuple[str, Loaded]) -> None:
    _, page = loaded
    found = elements(page.dom)
    dists = [a for t, a in found if t == "svg" and a.get("class") == "dist"]
    assert [a["data-feature"] for a in dists] == [
        "spend_30d",
        "orders_7d",
        "__output__",
        "tenure_days",
    ]
    bins = [a for t, a in found if t == "rect" and a.get("class") in ("reference", "current")]
    assert len(bins) == 4 * 2 * 10  # ten deciles, reference and current, per feature
    latency = [a for t, a in found if t == "path" and a.get("data-series") in ("p50", "p99")]
    assert len(latency) == 2
    assert any(t == "line" and a.get("class") == "budget" for t, a in found)
    burn = {
        (a["data-slo"], a["data-window"])
        for t, a in found
        if t == "rect" and "burn" in a.get("class", "")
    }
    assert ("latency", "1h") in burn
    assert len(burn) == 10
    over = [a for t, a in found if t == "rect" and a.get("class") == "burn over"]
    assert {a["data-window"] for a in over} == {"5m", "30m", "1h", "6h"}


def test_alerts_quality_and_rates_are_shown(loaded: tuple[str, Loaded]) -> None:
    _, page = loaded
    found = elements(page.dom)
    alerts = [a for t, a in found if t == "tr" and "alert" in a.get("class", "").split()]
    assert [a["data-key"] for a in alerts] == ["slo:latency", "drift:spend_30d"]
    metrics = [a["data-metric"] for t, a in found if t == "tr" and "data-metric" in a]
    assert metrics == ["roc_auc", "accuracy", "log_loss", "calibration_error"]
    quality = [a["data-series"] for t, a in found if t == "path" and "data-series" in a]
    assert quality == ["p50", "p99", "estimated", "realised"]  # latency, then quality
    assert [a["data-slo"] for t, a in found if t == "path" and "data-slo" in a] == ["latency"]
    assert [a["data-rate"] for t, a in found if t == "tr" and "data-rate" in a] == [
        "fallback",
        "degraded",
        "error",
        "shed",
    ]
    assert "2 alerts firing." in page.dom
    # the alert's detail is text on the page: its script did not run
    assert not [tag for tag, attrs in found if "data-pwned" in attrs]
    assert "&lt;script&gt;document.body.setAttribute('data-pwned', '1')&lt;/script&gt;" in page.dom


def test_a_drift_the_monitor_observed_in_the_log_shows_as_drifted(tmp_path: Path) -> None:
    """Not a fixture: `taxiway dashboard` runs the monitor over a prediction log whose spend
    arrives tripled from its second window, against the version's stored reference."""
    require_chromium()
    state = tmp_path / "state"
    monitored_state(state)
    args = ["-f", str(RETAIL_SPEC), "--state-dir", str(state), "--interval", "2"]
    with dashboard_server(*args, cwd=tmp_path) as url:
        page = load(f"{url}/dashboard", tmp_path, budget_ms=8000)
    assert page.console == []
    assert f"{url}/dashboard/data.json" in page.requests  # it refreshed (every 5 s at least)
    assert "Refresh failed" not in page.dom
    assert [u for u in page.requests if not u.startswith(url + "/")] == []
    rows = {
        attrs["data-feature"]: attrs["data-status"]
        for tag, attrs in elements(page.dom)
        if tag == "tr" and "feature" in attrs.get("class", "").split()
    }
    assert rows["spend"] == "drift"
    assert rows["age"] == "ok"
    assert rows["plan"] == "ok"
    assert 'data-drawn="ok"' in page.dom


def test_a_version_without_a_reference_is_named_and_nothing_breaks(tmp_path: Path) -> None:
    """No report at all: every section draws its empty state, and the page says why."""
    require_chromium()
    state = tmp_path / "state"
    monitored_state(state, reference=False)
    args = ["-f", str(RETAIL_SPEC), "--state-dir", str(state), "--interval", "0"]
    with dashboard_server(*args, cwd=tmp_path) as url:
        page = load(f"{url}/dashboard", tmp_path)
    assert page.console == []
    assert 'data-drawn="no_reference"' in page.dom
    state_line = [a for t, a in elements(page.dom) if a.get("id") == "monitor-state"]
    assert state_line[0]["data-status"] == "no_reference"
    assert "version 1 of retail_churn has no monitor reference" in page.dom
    assert "No monitor report yet." in page.dom
    assert "No drift figures yet." in page.dom


def test_the_model_service_serves_the_same_page(shop: Path, tmp_path: Path) -> None:
    """`taxiway serve`'s own /dashboard, with its live traffic by arm and answer path."""
    require_chromium()
    spec = variant(shop, tmp_path, serving=f"  log: {{path: {tmp_path / 'log'}}}\n")
    state = str(shop.parent / ".taxiway")
    with serving(spec, "--state-dir", state) as server:
        with server.client() as client:
            for customer in ("100017", "100018"):
                answer = client.post("/v1/predict", json={"entities": {"customer": customer}})
                assert answer.is_success
        page = load(f"{server.url}/dashboard", tmp_path)
    assert page.console == []
    assert [u for u in page.requests if not u.startswith(server.url + "/")] == []
    arms = [(a["data-arm"], a["data-path"]) for t, a in elements(page.dom) if "data-arm" in a]
    assert arms == [("production", "model")]
    assert "retail_churn" in page.dom


def test_the_browser_checks_see_an_error_and_a_request_elsewhere(tmp_path: Path) -> None:
    """The checks above would pass vacuously if Chromium stopped reporting; it does not."""
    require_chromium()
    site = tmp_path / "site"
    site.mkdir()
    (site / "bad.html").write_text(
        '<html><body><img src="https://example.invalid/a.png">'
        "<script>missingFunction()</script></body></html>"
    )
    handler = partial(_QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            seen = load(f"http://127.0.0.1:{server.server_address[1]}/bad.html", tmp_path)
        finally:
            server.shutdown()
            thread.join()
    assert any("missingFunction" in line for line in seen.console)
    assert "https://example.invalid/a.png" in seen.requests


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
