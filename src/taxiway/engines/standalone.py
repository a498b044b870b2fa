"""A Spark standalone cluster on loopback: one master and N workers, each its own JVM.

Started from the PySpark distribution's own launcher (``pyspark/bin/spark-class``) with the
master's and workers' main classes, on free loopback ports, for the tests and the benchmark
(``taxiway features build --master spark://127.0.0.1:<port>`` then runs on it). Everything it
writes (logs, work folders) stays under one folder; :meth:`StandaloneCluster.stop` ends the
three processes it started, by their ids.

All processes share one machine, so the workers read the driver's local files (staged sources,
the hand-off folder): a cluster on several machines needs those on storage every node reads.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess  # nosec B404: the Spark launcher, a fixed argument list
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from taxiway.engines.sql import EngineError
from taxiway.errors import MissingExtraError

__all__ = ["StandaloneCluster", "free_port", "spark_class"]

_MASTER = "org.apache.spark.deploy.master.Master"
_WORKER = "org.apache.spark.deploy.worker.Worker"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it).

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spark_class() -> Path:
    """PySpark's ``bin/spark-class`` launcher; :class:`MissingExtraError` without PySpark."""
    import importlib.util

    found = importlib.util.find_spec("pyspark")
    if found is None or found.origin is None:
        raise MissingExtraError("spark", needed_by="a Spark cluster", missing=["pyspark"])
    return Path(found.origin).parent / "bin" / "spark-class"


class StandaloneCluster:
    """A master and ``workers`` workers (``cores`` and ``memory`` each) on loopback.

    Use it as a context manager: entering starts the JVMs and waits until every worker has
    registered with the master; leaving stops all of them, also after a failure.
    """

    def __init__(
        self, folder: Path, *, workers: int = 2, cores: int = 1, memory: str = "512m"
    ) -> None:
        self.folder = folder
        self.workers = workers
        self.cores = cores
        self.memory = memory
        self.port = 0
        self.ui_port = 0
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def master_url(self) -> str:
        """What ``--master`` takes: ``spark://127.0.0.1:<port>``."""
        return f"spark://127.0.0.1:{self.port}"

    def status(self) -> dict[str, Any]:
        """The master's state as its web UI serves it (``/json/``): workers, apps."""
        url = f"http://127.0.0.1:{self.ui_port}/json/"
        with urllib.request.urlopen(url, timeout=5) as answer:  # nosec B310: an http URL built here
            return dict(json.load(answer))

    def alive_workers(self) -> int:
        """How many workers the master counts alive (0 while it does not answer)."""
        try:
            return int(self.status().get("aliveworkers", 0))
        except OSError:
            return 0

    def start(self, timeout: float = 120.0) -> None:
        """Start the master, then the workers; wait until all are registered."""
        launcher = spark_class()
        self.folder.mkdir(parents=True, exist_ok=True)
        settings = self.folder / "cluster.conf"  # no REST server: it would take fixed port 6066
        settings.write_text("spark.master.rest.enabled false\n")
        self.port, self.ui_port = free_port(), free_port()
        common = ["--host", "127.0.0.1", "--properties-file", str(settings)]
        self._launch(
            "master",
            [str(launcher), _MASTER, *common, "--port", str(self.port)],
            ["--webui-port", str(self.ui_port)],
        )
        for index in range(self.workers):
            work = self.folder / f"worker-{index}"
            work.mkdir(exist_ok=True)
            self._launch(
                f"worker-{index}",
                [str(launcher), _WORKER, self.master_url, *common],
                ["--webui-port", str(free_port()), "--cores", str(self.cores)],
                ["--memory", self.memory, "--work-dir", str(work)],
            )
        deadline = time.monotonic() + timeout
        while self.alive_workers() < self.workers:
            ended = [p.args for p in self.processes if p.poll() is not None]
            if ended or time.monotonic() > deadline:
                self.stop()
                raise EngineError(
                    f"the Spark cluster did not start: {self.alive_workers()} of {self.workers} "
                    f"workers registered" + (" (a JVM exited)" if ended else f" in {timeout:.0f}s"),
                    fix=f"read the logs in {self.folder} (*.log); Spark needs Java 17 or 21",
                )
            time.sleep(0.5)

    def stop(self, timeout: float = 20.0) -> None:
        """End the JVMs this cluster started (workers first), killing any that linger."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def _launch(self, name: str, *parts: list[str]) -> None:
        command = [arg for part in parts for arg in part]
        env = {
            **os.environ,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.folder),
            "PYSPARK_PYTHON": sys.executable,
        }
        with (self.folder / f"{name}.log").open("wb") as log:
            self.processes.append(
                subprocess.Popen(  # nosec B603: PySpark's spark-class, fixed arguments, no shell
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own group: stop() ends the JVM it execs
                )
            )

    def __enter__(self) -> StandaloneCluster:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
