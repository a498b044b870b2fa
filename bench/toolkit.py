"""What every benchmark script shares: waiting for a quiet machine, CPU accounting, the
machine and versions behind a figure, percentiles and Markdown tables.

Each bench script runs as ``.venv/bin/python bench/<name>.py``, so this folder is on
``sys.path`` and ``from toolkit import wait_idle`` works without installing anything.

CPU accounting, in words: the machine's busy CPU is the sum over all cores of user, nice,
system, irq, softirq and steal time (idle and iowait excluded), so one fully busy core adds one
second per second. The "other load" over a span is that busy CPU minus the CPU of this process
(and of any process the caller names), divided by the span's wall time: the cores other people's
work took while we measured. A figure is quoted with it, since a shared machine can halve a
throughput without changing anything in the code.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUIET_CORES = 0.15  # under this many busy cores of others' work, the machine counts as quiet
QUIET_WINDOW_S = 2.0  # ... for this long


# --------------------------------------------------------------------------- CPU accounting


def busy_cpu_seconds() -> float:
    """CPU seconds spent by everything on the machine (all cores, including steal)."""
    import psutil

    t = psutil.cpu_times()
    parts = ("user", "nice", "system", "irq", "softirq", "steal")
    return sum(float(getattr(t, name, 0.0)) for name in parts)


def own_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process, its children excluded."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def processes_cpu_seconds(processes: Iterable[Any]) -> float:
    """CPU seconds (user + system) of live ``psutil.Process`` objects; a process that has
    exited meanwhile counts zero (measure before and after over the same live set)."""
    import psutil

    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            t = process.cpu_times()
            total += t.user + t.system
    return total


class OtherLoad:
    """Cores that work other than ours used, from creation to ``cores()``.

    >>> load = OtherLoad()
    >>> load.cores() >= 0.0
    True
    """

    def __init__(self) -> None:
        self.busy, self.own, self.started = busy_cpu_seconds(), own_cpu_seconds(), time.monotonic()

    def wall(self) -> float:
        """Seconds since creation."""
        return max(time.monotonic() - self.started, 1e-9)

    def cores(self, ours: float = 0.0) -> float:
        """Average cores used by others since creation; ``ours``: CPU seconds of our other
        processes (a worker, a server, a load generator) to leave out as well."""
        others = (busy_cpu_seconds() - self.busy) - (own_cpu_seconds() - self.own) - ours
        return max(others, 0.0) / self.wall()


# --------------------------------------------------------------------------- quiet machine


@dataclass(frozen=True)
class Idle:
    """What :func:`wait_idle` saw: the other load of its last window, how long it waited, and
    whether the machine was quiet by the deadline."""

    cores: float
    waited_s: float
    quiet: bool

    def __str__(self) -> str:
        state = "quiet" if self.quiet else "STILL BUSY"
        return f"{state}: others used {self.cores:.2f} cores after {self.waited_s:.0f} s of waiting"


def wait_idle(
    limit: float,
    *,
    below: float = QUIET_CORES,
    window: float = QUIET_WINDOW_S,
    say: Callable[[str], Any] | None = None,
) -> Idle:
    """Wait at most ``limit`` seconds until others use under ``below`` cores for ``window``
    seconds; return what was seen (a run that goes ahead on a busy machine reports it).

    ``say`` (e.g. ``print``) hears about each busy window. ``limit=0`` measures one window
    and returns at once.
    """
    began = time.monotonic()
    deadline = began + limit
    while True:
        load = OtherLoad()
        time.sleep(window)
        cores = load.cores()
        waited = time.monotonic() - began
        if cores < below:
            return Idle(cores, waited, True)
        if time.monotonic() >= deadline:
            if say is not None:
                say(f"  still busy after {waited:.0f} s ({cores:.2f} cores); running anyway")
            return Idle(cores, waited, False)
        if say is not None:
            say(f"  machine busy (others use {cores:.2f} cores), waiting ...")


# --------------------------------------------------------------------------- memory


def rss(pid: int | str = "self") -> int:
    """Resident memory of a process, in bytes."""
    import psutil

    process = psutil.Process() if pid == "self" else psutil.Process(int(pid))
    return int(process.memory_info().rss)


def high_water(pid: int | str = "self") -> int | None:
    """Peak resident memory of a process image (VmHWM: reset by exec, unlike ru_maxrss,
    which inherits the forking parent's peak), in bytes; None when /proc cannot tell."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


# --------------------------------------------------------------------------- statistics


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an already sorted sequence: the value at index
    ``int(n * fraction)``, clamped to the last one (``fraction=0.99`` gives the p99).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    3.0
    >>> percentile(list(range(100)), 0.99)
    99
    """
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def latency_summary(values: Iterable[float]) -> dict[str, float]:
    """p50 (median), p99 (nearest rank), mean, max and count of some latencies.

    >>> latency_summary([3.0, 1.0, 2.0])["p50"]
    2.0
    """
    import statistics

    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p99": percentile(ordered, 0.99),
        "mean": statistics.fmean(ordered),
        "max": ordered[-1],
        "calls": len(ordered),
    }


# --------------------------------------------------------------------------- description


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table; a ``|`` inside a cell is escaped.

    >>> print(markdown_table(["a", "b"], [["1", "x|y"]]))
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """CPUs, memory, Python and the 1/5/15-minute load average of this machine."""
    import psutil

    one, five, fifteen = os.getloadavg()
    return (
        f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"Python {sys.version.split()[0]}, load average {one:.2f} / {five:.2f} / {fifteen:.2f}"
    )


def versions(*names: str, missing: bool = False) -> str:
    """``name version`` of each installed distribution; ``missing=True`` lists the absent ones
    as ``(not installed)`` instead of leaving them out."""
    from importlib import metadata

    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            if missing:
                found.append(f"{name} (not installed)")
    return ", ".join(found)
