"""The typer application and the one place that turns errors into messages and exit codes."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version

import click
import typer
from rich.console import Console

from taxiway.cli import check
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
    """Run the CLI; every error ends in a message and an exit code, never a traceback."""
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        result = app(args=argv, standalone_mode=False)
    except TaxiwayError as error:
        errors.print(f"[bold red]error:[/] {error.message}", markup=True)
        if error.fix:
            errors.print(f"[bold]fix:[/] {error.fix}")
        return exit_code_for(error)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        errors.print("aborted")
        return 130
    except click.ClickException as error:
        error.show(file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130
    except Exception as error:
        if os.environ.get("TAXIWAY_DEBUG"):
            raise
        errors.print(
            f"[bold red]internal error:[/] {type(error).__name__}: {error}\n"
            "This is a bug in taxiway. Rerun with TAXIWAY_DEBUG=1 for the traceback and report it."
        )
        return EXIT_FAILURE
    return result if isinstance(result, int) else 0


def entrypoint() -> None:  # pragma: no cover - the console script
    """The `taxiway` console script."""
    sys.exit(main())
