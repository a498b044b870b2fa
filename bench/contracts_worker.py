"""One tool's run in a fresh process: load the frame, set the tool up, validate ``repeat`` times,
and measure the time, CPU and peak memory of validation, with the network switched off.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from contracts_tools import make_tool
from toolkit import high_water, own_cpu_seconds, rss


class PeakMemory:
    """The peak resident memory of this process from now on.

    On Linux the kernel's high-water mark is reset to the current RSS (``clear_refs``) and read
    back (``VmHWM``): exact, and free. Elsewhere a thread polls the RSS every 5 ms.
    """

    def __init__(self) -> None:
        self.method = "VmHWM"
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.method = "polled"
        if high_water() is None:
            self.method = "polled"
        self._peak = rss()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.method == "polled":
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, rss())

    def finish(self) -> int:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            return max(self._peak, rss())
        return max(high_water() or 0, rss())


def _forbid_network() -> list[str]:
    """Make any socket connection from this process fail, and remember the attempts."""
    import socket

    attempts: list[str] = []

    def refuse(sock: socket.socket, address: Any, *_: Any) -> Any:
        attempts.append(repr(address))
        raise OSError("network disabled by bench/contracts.py")

    socket.socket.connect = refuse  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign, assignment]
    return attempts


def worker(tool_name: str, path: Path, repeat: int) -> dict[str, Any]:
    """Validate ``path`` with one tool in this (fresh) process; measure time and memory."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    attempts = _forbid_network()
    import pandas as pd

    tool = make_tool(tool_name)  # imports the tool's library
    rss_start = rss()
    started = time.perf_counter()
    frame = pd.read_parquet(path) if tool.needs_frame else None
    load_s = time.perf_counter() - started
    rss_loaded = rss()
    started = time.perf_counter()
    tool.setup(frame, path)
    setup_s = time.perf_counter() - started
    rss_ready = rss()

    peak = PeakMemory()
    times: list[float] = []
    cpu_times: list[float] = []
    counts: dict[str, int] = {}
    for _ in range(repeat):
        started, cpu = time.perf_counter(), own_cpu_seconds()
        counts = tool.run()
        times.append(time.perf_counter() - started)
        cpu_times.append(own_cpu_seconds() - cpu)
    peak_rss = peak.finish()
    import resource

    return {
        "tool": tool_name,
        "rows": None if frame is None else len(frame),
        "load_s": load_s,
        "setup_s": setup_s,
        "times": times,
        "cpu_times": cpu_times,
        "counts": counts,
        "rss_start": rss_start,
        "rss_loaded": rss_loaded,
        "rss_ready": rss_ready,
        "peak_rss": peak_rss,
        "peak_method": peak.method,
        "maxrss_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "network_attempts": attempts,
    }
