"""What every benchmark script shares: waiting for a quiet machine, CPU accounting, the
machine, versions and code behind a figure, percentiles and Markdown tables, the result line a
worker process hands its parent, the result record every run appends, and the peers' venvs.

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
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

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


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's finished children (e.g. its workers)."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


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


def code_state() -> str:
    """The commit measured, and the files under src/ that differ from it (a shared checkout
    can hold others' uncommitted work)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.rstrip("\n")  # not strip(): a porcelain line starts with a space

    changed = git("status", "--porcelain", "--", "src").splitlines()
    dirty = ", ".join(line[3:] for line in changed) or "none"
    return f"commit {git('rev-parse', '--short', 'HEAD')}; uncommitted under src/: {dirty}"


# --------------------------------------------------------------------------- worker results

RESULT_MARK = "@@bench-result@@ "  # a worker's result line, among whatever else it prints


def hand_back(result: Mapping[str, Any]) -> None:
    """In a worker process: print ``result`` as the one line its parent reads back."""
    print(RESULT_MARK + json.dumps(result), flush=True)


def handed_back(output: str) -> dict[str, Any] | None:
    """In the parent: the last result a worker printed in ``output``; None when it printed
    none (it failed before the end).

    >>> handed_back("noise\\n" + RESULT_MARK + '{"seconds": 1.5}')
    {'seconds': 1.5}
    >>> handed_back("Traceback ...") is None
    True
    """
    marked = [line for line in output.splitlines() if line.startswith(RESULT_MARK)]
    return json.loads(marked[-1][len(RESULT_MARK) :]) if marked else None


# --------------------------------------------------------------------------- result records


def command_line() -> str:
    """This run's command as typed in the project's root, e.g.
    ``.venv/bin/python bench/contracts.py --rows 1000000``."""

    def shown(path: str) -> str:
        resolved = Path(path).resolve() if os.sep in path else Path(path)
        with contextlib.suppress(ValueError):
            return str(resolved.relative_to(ROOT))
        return path

    python = Path(sys.executable)
    interpreter = str(python.relative_to(ROOT)) if python.is_relative_to(ROOT) else python.name
    return shlex.join([interpreter, shown(sys.argv[0]), *sys.argv[1:]])


def append_record(
    path: Path, fields: Mapping[str, Any], *, machine_line: str | None = None
) -> dict[str, Any]:
    """Append one run's result record to ``path`` (JSON Lines) and return it: when it ran
    (``at``), the command that produced it (``command``, and its arguments as ``argv``), the
    machine (``machine_line``, default :func:`machine`), then the script's own ``fields``."""
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        "machine": machine_line if machine_line is not None else machine(),
        "argv": sys.argv[1:],
        **fields,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
    return record


# --------------------------------------------------------------------------- peers' venvs


@dataclass(frozen=True)
class PeerVenv:
    """A peer's own virtualenv under ``bench/.data``, so its pins (Feast's ``pandas<3``,
    MLflow's and BentoML's trees) never enter taxiway's: pinned packages, the modules that must
    import in it, and the command that creates it (named in every "missing" message).

    >>> venv = PeerVenv("feast", Path("/nowhere/feast-venv"), ("feast==0.67.0",), "feast",
    ...                 "bench/online_lookup.py --setup")
    >>> venv.missing()
    'no venv at /nowhere/feast-venv: run `bench/online_lookup.py --setup`'
    """

    name: str
    folder: Path
    packages: tuple[str, ...]
    modules: str  # imported by the probe, e.g. "mlflow.lightgbm, mlflow.pyfunc"
    setup_command: str  # what creates it, e.g. "bench/serving.py --setup"
    env: Mapping[str, str] = field(default_factory=dict)  # for the probe (no telemetry)

    @property
    def python(self) -> Path:
        return self.folder / "bin" / "python"

    def program(self, name: str) -> Path:
        """A console script installed in the venv (``mlflow``, ``bentoml``)."""
        return self.folder / "bin" / name

    def path_env(self) -> dict[str, str]:
        """``env`` with the venv's bin folder first on ``PATH``, for a server run from it."""
        return {**self.env, "PATH": f"{self.python.parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def missing(self) -> str | None:
        """Why the peer cannot run from its venv (None when it can)."""
        if not self.python.exists():
            return f"no venv at {self.folder}: run `{self.setup_command}`"
        probe = subprocess.run(
            [str(self.python), "-c", f"import {self.modules}"],
            capture_output=True, text=True, env={**os.environ, **self.env}, check=False,
        )  # fmt: skip
        if probe.returncode:
            return f"import fails in its venv: {probe.stderr.strip().splitlines()[-1:]}"
        return None

    def setup(self, log: Path) -> str | None:
        """Create the venv with its pinned packages, or keep it when it already holds them (a
        venv made by hand without the pins' marker counts when its modules import); the
        error, if any, with the log to read."""
        wanted = "\n".join(self.packages)
        marker = self.folder / "bench-packages.txt"
        pinned = not marker.exists() or marker.read_text() == wanted
        if self.python.exists() and pinned and self.missing() is None:
            print(f"  {self.name}: venv ready ({self.folder})")
            return None
        print(f"  {self.name}: creating {self.folder} with {', '.join(self.packages)}")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            for step in (
                [sys.executable, "-m", "venv", "--clear", str(self.folder)],
                [str(self.python), "-m", "pip", "install", "-q", *self.packages],
            ):
                if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode:
                    return f"`{shlex.join(step)}` failed, see {log}"
        marker.write_text(wanted)
        return self.missing()

    def versions(self, *names: str) -> str:
        """``name version`` of each of ``names`` installed in the venv ("" without a venv)."""
        if not self.python.exists():
            return ""
        code = (
            "from importlib import metadata as m\n"
            f"for n in {list(names)!r}:\n"
            "    try: print(n, m.version(n))\n"
            "    except m.PackageNotFoundError: pass"
        )
        out = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True)
        return ", ".join(out.stdout.splitlines())


# Feast pins pandas<3: bench/features.py and bench/online_lookup.py run it from this venv.
FEAST_VENV = PeerVenv(
    "feast",
    HERE / ".data" / "feast-venv",
    ("feast[duckdb]==0.67.0", "psutil"),
    "feast",
    "bench/online_lookup.py --setup",
    {"FEAST_USAGE": "False"},
)


def feast_store(repo: Path, project: str, offline_store: str = "file") -> Any:
    """A fresh local Feast repository in ``repo`` (emptied first): SQLite registry and online
    store, ``offline_store`` ``file`` (dask) or ``duckdb``. Runs inside :data:`FEAST_VENV`."""
    import shutil

    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    config = RepoConfig(
        project=project,
        provider="local",
        registry=str(repo / "registry.db"),
        offline_store={"type": offline_store},
        online_store={"type": "sqlite", "path": str(repo / "online.db")},
        entity_key_serialization_version=3,
        repo_path=str(repo),
    )
    return FeatureStore(config=config)


def feast_view(name: str, features: Sequence[str], ttl: Any, path: Path) -> tuple[Any, Any]:
    """Feast's int64 ``entity`` (key ``entity_id``) and a view ``name`` of float ``features``
    read from the Parquet file ``path`` (``event_timestamp``, ``created``)."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    entity = Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name=name,
        entities=[entity],
        ttl=ttl,
        schema=[Field(name=feature, dtype=Float64) for feature in features],
        source=FileSource(
            path=str(path), timestamp_field="event_timestamp", created_timestamp_column="created"
        ),
    )
    return entity, view


# Evidently and NannyML bring their own trees (pandas, scipy, plotly...): bench/drift.py and
# bench/monitor.py run them from these venvs. Unpinned: `--setup` installs what the registry
# serves by name and every report names the version it ran.
EVIDENTLY_VENV = PeerVenv(
    "evidently",
    HERE / ".data" / "evidently-venv",
    ("evidently", "pandas<3", "psutil"),  # evidently 0.7.23 imports what pandas 3 removed
    "evidently, evidently.presets",
    "bench/drift.py --setup",
    {"DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"},
)
NANNYML_VENV = PeerVenv(
    "nannyml",
    HERE / ".data" / "nannyml-venv",
    ("nannyml", "pandas<3", "statsmodels", "psutil"),  # category-encoders needs statsmodels
    "nannyml",
    "bench/monitor.py --setup",
    {"NML_DISABLE_USAGE_LOGGING": "1", "NML_DISABLE_USER_ANALYTICS": "1"},
)
