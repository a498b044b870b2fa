"""`taxiway serve` with several workers leaves no metrics folder behind."""

from __future__ import annotations

from pathlib import Path

from tests.serving.conftest import serving


def test_the_metrics_folder_is_removed_on_exit(shop: Path, tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    state = str(shop.parent / ".taxiway")
    with serving(shop, "--workers", "2", "--state-dir", state, env={"TMPDIR": str(temp)}) as server:
        folders = list(temp.glob("taxiway-metrics-*"))
        assert len(folders) == 1, server.output()
        with server.client() as client:  # closed here: an open socket fails the session
            assert client.get("/metrics").status_code == 200
    assert server.process.returncode is not None
    assert list(temp.glob("taxiway-metrics-*")) == [], server.output()
