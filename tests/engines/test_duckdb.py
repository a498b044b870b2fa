"""The embedded engine: UTC whatever the machine's zone, and no downloads."""

from __future__ import annotations

import os
import subprocess
import sys


def test_zone_aware_timestamps_cast_to_utc_whatever_the_machine_zone() -> None:
    code = (
        "from taxiway.engines.duckdb import connect, fetch_one; "
        "print(fetch_one(connect(), \"SELECT TIMESTAMPTZ '2025-01-01 00:00:00+05'::TIMESTAMP\")[0])"
    )
    for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TZ": zone},
        )
        assert result.stdout.strip() == "2024-12-31 19:00:00", zone


def test_extension_autoloading_is_off() -> None:
    from taxiway.engines.duckdb import connect, fetch_one

    row = fetch_one(connect(), "SELECT current_setting('autoinstall_known_extensions')")
    assert row == (False,)
