"""The typer application, how its help and output read, and the one place that turns errors
into messages and exit codes."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer import rich_utils
from typer.core import TyperArgument, TyperGroup, TyperOption

from taxiway.cli.extras import NEEDS, extra_of, missing_extra, needs
from taxiway.errors import EXIT_FAILURE, TaxiwayError, exit_code_for

__all__ = ["UNWRAPPED_COLUMNS", "app", "main"]

UNWRAPPED_COLUMNS = 10_000
"""The console width when stdout is not a terminal: wide enough that no line is cut in two,
so a `fix:` line (`taxiway approve -f ... --role security --by <name>`) pastes whole."""


class _Flag(TyperOption):
    """An option whose help shows a flag as its name alone (`--serve`, not `--serve <bool>`)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag and not self.count:
            return None
        return super().display_type_rich(ctx)


class _Argument(TyperArgument):
    """An argument named in the usage line as click and most tools write it (`VERSION`,
    `[NAME]`, `ENTITIES...`) rather than typer's `{version}`."""

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = self.metavar or (self.name or "").upper()
        if not self.required:
            name = f"[{name}]"
        return [name + ("..." if self.nargs != 1 else "")]


class _Taxiway(TyperGroup):
    """The root group: once built, it readies the help of every command below it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _polish(self)


def _polish(command: Any) -> None:
    """Make ``command``'s help read well, and that of every command below it.

    Each paragraph of a docstring becomes one line that rich wraps to the terminal (typer keeps
    the source's line breaks, so help read `hash-chained: a line` / `changed or deleted`),
    except a paragraph that starts with ``\\b``, which keeps its lines. Each option and
    argument, the help option included, takes the classes above.
    """
    if command.help:
        command.help = _unwrap(command.help)
    ctx = command.context_class(command, **command.context_settings)
    help_option = command.get_help_option(ctx)
    # typer builds each module's commands with its own classes; re-classing the parameters
    # once built keeps this in one place instead of a `cls=` on every option of every module
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if type(param) is TyperOption:
            param.__class__ = _Flag
        elif type(param) is TyperArgument:
            param.__class__ = _Argument
    for sub in getattr(command, "commands", {}).values():
        _polish(sub)


def _unwrap(text: str) -> str:
    r"""``text`` with each paragraph on one line, but for one that starts with ``\b``.

    >>> _unwrap("One line\n    and its end.\n\n\bkept\nas is")
    'One line and its end.\n\n\x08kept\nas is'
    """
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
        for p in paragraphs
    )


@contextmanager
def _whole_lines() -> Iterator[None]:
    """While a command runs with stdout not a terminal, print every line whole.

    Every rich console the commands create reads ``COLUMNS``: set to
    :data:`UNWRAPPED_COLUMNS`, nothing they print is cut at 80 columns. Help and typer's usage
    errors are drawn in boxes as wide as the console, so they keep the width rich finds without
    it (the terminal's, else 80). A ``COLUMNS`` the user set wins; both are restored after.
    """
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        yield
        return
    help_width = rich_utils.MAX_WIDTH
    rich_utils.MAX_WIDTH = help_width or Console().width
    os.environ["COLUMNS"] = str(UNWRAPPED_COLUMNS)
    try:
        yield
    finally:
        os.environ.pop("COLUMNS", None)
        rich_utils.MAX_WIDTH = help_width


app = typer.Typer(
    name="taxiway",
    cls=_Taxiway,
    help="Take a machine-learning pilot to production, driven by one spec (taxiway.yaml).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _add(name: str, *, group: bool = False) -> None:
    """Add the command ``name`` from ``taxiway.cli.<name>`` (a function of that name, or the
    module's ``app`` for a group), checking for the extra it needs (:data:`NEEDS`) first.

    A module that cannot be imported for want of an extra's module (`taxiway runbook` reads the
    service's metric names) is replaced by a command that says which extra to install, so the
    other commands, `taxiway check` first, work with the core alone.
    """
    try:
        module = importlib.import_module(f"taxiway.cli.{name}")
    except ModuleNotFoundError as error:
        if extra_of(error.name) is None:
            raise
        _add_missing(name, error)
        return
    if group:
        for info in module.app.registered_commands:
            extra = NEEDS.get(f"{name} {info.name}")
            if extra is not None and info.callback is not None:
                info.callback = needs(extra, f"{name} {info.name}")(info.callback)
        app.add_typer(module.app, name=name)
        return
    command = getattr(module, name)
    if name in NEEDS:
        command = needs(NEEDS[name], name)(command)
    app.command(name)(command)


def _add_missing(name: str, error: ModuleNotFoundError) -> None:
    needed = missing_extra(error, f"taxiway {name}")
    assert needed is not None  # _add checked that an extra brings the module  # nosec B101

    def unavailable() -> None:
        raise needed

    app.command(
        name,
        help=escape(f"Needs taxiway[{needed.extra}], which is not installed."),
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(unavailable)


for _name in ("check", "features", "train", "models", "audit", "serve", "sprint", "assess"):
    _add(_name, group=_name in ("features", "models"))
for _name in ("approve", "runbook", "lineage", "forget"):
    _add(_name)
_add("monitor", group=True)
_add("rollout", group=True)  # the gradual rollout
_add("retrain", group=True)  # one run of the retraining loop, and its exports
_add("run")  # the retraining loop's scheduler
_add("dashboard")  # the monitoring dashboard, without the service


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
        with _whole_lines():
            app(args=argv, prog_name="taxiway", standalone_mode=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except TaxiwayError as error:
        return _report(errors, error)
    except ModuleNotFoundError as error:
        # a module of an extra that is not installed, met where no command checked for it
        needed = missing_extra(error, "taxiway " + " ".join(_command_words(argv)))
        if needed is None:
            return _internal(errors, error)
        return _report(errors, needed)
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130
    except Exception as error:  # the last line of defence: a message, not a trace
        return _internal(errors, error)
    return 0


def _report(errors: Console, error: TaxiwayError) -> int:
    errors.print(f"[bold red]error:[/] {escape(error.message)}")
    if error.fix:
        errors.print(f"[bold]fix:[/] {escape(error.fix)}")
    return exit_code_for(error)


def _command_words(argv: list[str] | None) -> list[str]:
    """The command's name in ``argv``: its first word, and the next after a group's name
    (`models promote`)."""
    words = [arg for arg in (sys.argv[1:] if argv is None else argv) if not arg.startswith("-")]
    groups = {info.name for info in app.registered_groups}
    return words[:2] if words and words[0] in groups else words[:1]


def _internal(errors: Console, error: Exception) -> int:
    """Report an error that is not taxiway's: a path that cannot be used, or a bug."""
    if os.environ.get("TAXIWAY_DEBUG"):
        raise error
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


def entrypoint() -> None:  # pragma: no cover - the console script
    """The `taxiway` console script."""
    sys.exit(main())
