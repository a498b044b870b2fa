"""Options shared by several commands (`-f PATH`, `--state-dir`, `--engine`, `--master`), and
the check of the engine they choose before any work (:func:`chosen_engine`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from taxiway.cli.extras import missing_modules
from taxiway.engines.sql import Engine, EngineError
from taxiway.errors import MissingExtraError
from taxiway.spec.project import Project

__all__ = ["EngineOption", "MasterOption", "SpecOption", "StateDirOption", "chosen_engine"]

SpecOption = Annotated[
    Path | None,
    typer.Option(
        "-f",
        "--file",
        help="The spec file (or its folder). Default: ./taxiway.yaml",
        show_default=False,
    ),
]
StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where taxiway keeps state (quarantine, stores). Default: .taxiway/ beside the spec, "
        "or $TAXIWAY_STATE_DIR",
        show_default=False,
    ),
]
EngineOption = Annotated[
    Engine | None,
    typer.Option(
        "--engine",
        help="Run on duckdb (in this process) or spark (PySpark and Java 17 or 21). "
        "Default: the spec's `engine:`",
        show_default=False,
    ),
]
MasterOption = Annotated[
    str | None,
    typer.Option(
        "--master",
        help="The Spark master, e.g. local[4] or spark://host:7077; only with engine spark. "
        "Default: the spec's `spark.master`",
        show_default=False,
    ),
]

_JAVA_INSTALL = "apt-get install openjdk-17-jre-headless"


def chosen_engine(project: Project, engine: Engine | None, master: str | None) -> Engine:
    """The engine a command runs on (``--engine``, else the spec's ``engine:``), checked before
    any work: ``--master`` is refused unless it is Spark, and Spark needs PySpark (the ``spark``
    extra, else :class:`MissingExtraError`, exit 4) and a Java runtime where PySpark's launcher
    looks for one (else :class:`EngineError`, exit 1), so neither failure reaches the JVM's
    launcher and its noise."""
    chosen: Engine = engine or project.spec.engine
    if chosen != "spark":
        if master is not None:
            origin = "--engine duckdb" if engine else "the spec's `engine: duckdb`"
            raise typer.BadParameter(
                f"--master is a Spark master, and this run is on duckdb ({origin}); "
                "add --engine spark to run on Spark, or leave --master out",
                param_hint="'--master'",
            )
        return chosen
    missing = missing_modules("spark")
    if missing:
        raise MissingExtraError("spark", needed_by="engine: spark", missing=missing)
    _check_java()
    return chosen


def _check_java() -> None:
    """Raise :class:`EngineError` when PySpark's launcher (``bin/spark-class``) will find no
    java: it runs ``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else the ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    on_path = shutil.which("java")
    if home:
        if os.access(Path(home) / "bin" / "java", os.X_OK):
            return
        raise EngineError(
            f"Spark cannot start: JAVA_HOME is {home}, which holds no bin/java (PySpark runs "
            "$JAVA_HOME/bin/java when JAVA_HOME is set)",
            fix=f"unset JAVA_HOME to use {on_path}, or point it at a Java 17 or 21 runtime"
            if on_path
            else f"install Java 17: `{_JAVA_INSTALL}`, then `unset JAVA_HOME` or point it at "
            "that runtime (e.g. /usr/lib/jvm/java-17-openjdk-amd64)",
        )
    if on_path is None:
        raise EngineError(
            "Spark cannot start: no Java runtime (no `java` on PATH, no JAVA_HOME)",
            fix=f"install Java 17: `{_JAVA_INSTALL}` (PySpark 4 runs on Java 17 or 21), "
            "or put an installed one's bin/ on PATH",
        )
