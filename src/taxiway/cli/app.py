"""The typer application and the one place that turns errors into messages and exit codes."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version

import typer
from rich.console import Console
from rich.markup import escape

from taxiway.cli import (
    approve,
    assess,
    audit,
    check,
    features,
    models,
    runbook,
    serve,
    sprint,
    train,
)
from taxiway.errors import EXIT_FAILURE, TaxiwayError, exit_code_for

__all__ = ["app", "main"]

app = typer.Typer(
    name="taxiway",
    help="Take a machine-learning pilot to production, driven by one spec (taxiway.yaml).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("check")(check.check)
app.add_typer(features.app, name="features")
app.command("train")(train.train)
app.add_typer(models.app, name="models")
app.command("audit")(audit.audit)
app.command("serve")(serve.serve)
app.command("sprint")(sprint.sprint)
app.command("assess")(assess.assess)
app.command("approve")(approve.approve)
app.command("runbook")(runbook.runbook)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"taxiway {version('taxiway')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Take a machine-learning pilot to production, driven by one spec (taxiway.yaml)."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; every error ends in a message, never a traceback.

    Usage errors are reported by typer itself (exit 2); taxiway's errors by their class's
    exit code (see :mod:`taxiway.errors`); a file system error on a named path by that path
    and its reason (exit 1); anything else is reported as a bug (exit 1).
    """
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        app(args=argv, prog_name="taxiway", standalone_mode=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except TaxiwayError as error:
        errors.print(f"[bold red]error:[/] {escape(error.message)}")
        if error.fix:
            errors.print(f"[bold]fix:[/] {escape(error.fix)}")
        return exit_code_for(error)
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130
    except Exception as error:  # the last line of defence: a message, not a trace
        if os.environ.get("TAXIWAY_DEBUG"):
            raise
        if isinstance(error, OSError) and error.filename is not None:
            # a path the user gave that cannot be read or written: not a bug
            errors.print(
                f"[bold red]error:[/] {escape(str(error.filename))}: "
                f"{escape(error.strerror or type(error).__name__)}"
            )
            errors.print(
                "[bold]fix:[/] check that the path exists and that you may read or write it, "
                "or choose another"
            )
            return 1
        errors.print(
            f"[bold red]internal error:[/] {type(error).__name__}: {escape(str(error))}\n"
            "This is a bug in taxiway. Rerun with TAXIWAY_DEBUG=1 for the traceback and report it."
        )
        return EXIT_FAILURE
    return 0


def entrypoint() -> None:  # pragma: no cover - the console script
    """The `taxiway` console script."""
    sys.exit(main())
