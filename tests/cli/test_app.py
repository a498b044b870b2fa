"""How `taxiway` reads: help without `<bool>`, a plain usage line, whole paragraphs, and output
that is not cut at 80 columns when stdout is not a terminal (so a printed fix pastes whole)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from taxiway.cli import app, main

SPEC = """\
name: {name}
sources:
  orders: {{kind: file, path: orders.csv, timestamp: at}}
entities: {{customer: customer_id}}
features:
  recent: {{source: orders, entity: customer, aggregate: {{n: count(*)}}, windows: [7d]}}
spine: {{every: 7d, start: 2024-01-01, end: 2024-02-01, source: orders}}
"""


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the CLI with the words that reach it (the root's path is empty)."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


_ARGUMENT = r"\[?[A-Z][A-Z0-9_=]*\]?(\.\.\.)?"
COMMANDS = [path for path, _ in _commands(typer.main.get_command(app))]


def _help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*path, "--help"]) == 0
    return capsys.readouterr().out


def _usage(path: tuple[str, ...], capsys: pytest.CaptureFixture[str], text: str = "") -> str:
    """The usage line of a command's help, without the blanks rich pads it with."""
    (usage,) = [
        line.strip() for line in (text or _help(path, capsys)).splitlines() if "Usage:" in line
    ]
    return usage


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """`taxiway ARGS` as a script or CI runs it: no terminal on stdin, stdout or stderr, and no
    COLUMNS in the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from taxiway.cli import main; sys.exit(main())", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "taxiway")
def test_help_shows_flags_by_name_alone_and_a_plain_usage_line(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    text = _help(path, capsys)
    assert "<bool>" not in text
    assert re.search(r"--help\s+Show this", text), text
    usage = _usage(path, capsys, text)
    start = f"Usage: {' '.join(('taxiway', *path))} [OPTIONS]"
    assert usage.startswith(start), usage
    # then arguments as click and most tools write them: VERSION, [NAME], ENTITIES...
    assert re.fullmatch(rf"( {_ARGUMENT}| COMMAND \[ARGS\]\.\.\.)*", usage[len(start) :]), usage


def test_arguments_read_in_capitals_in_the_usage_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert _usage(("models", "show"), capsys) == "Usage: taxiway models show [OPTIONS] VERSION"
    get = _usage(("features", "get"), capsys)
    assert re.fullmatch(r"Usage: taxiway features get \[OPTIONS\] [A-Z=]+\.\.\.", get), get


def test_each_paragraph_of_a_command_s_help_is_one_line_that_rich_rewraps() -> None:
    # the docstrings keep the source's line breaks; shown as they are, help read
    # "hash-chained: a line" / "changed or deleted by hand" on two short lines
    for path, command in _commands(typer.main.get_command(app)):
        for paragraph in (command.help or "").split("\n\n"):
            assert paragraph.startswith("\b") or "\n" not in paragraph, (path, paragraph)


def test_a_long_line_is_whole_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    name = "churn." + "x" * 100
    (tmp_path / "orders.csv").write_text("customer_id,at\n1,2024-01-01 00:00:00\n")
    (tmp_path / "taxiway.yaml").write_text(SPEC.format(name=name))
    done = _run("models", "list", "-f", str(tmp_path / "taxiway.yaml"))
    assert done.returncode == 0, done.stderr
    # "no versions of <name> yet: run `taxiway train`", longer than 80 columns, on one line
    assert any(name in line and "taxiway train" in line for line in done.stdout.splitlines())


def test_help_and_usage_errors_keep_a_readable_width_when_piped() -> None:
    help_text = _run("sprint", "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert max(len(line) for line in help_text.stdout.splitlines()) <= 80
    bad = _run("sprint", "--no-such-option")
    assert bad.returncode == 2
    assert "No such option: --no-such-option" in bad.stderr
    assert max(len(line) for line in bad.stderr.splitlines()) <= 80


def test_columns_set_by_the_user_win_and_nothing_leaks_out_of_main(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "churn." + "x" * 100
    (tmp_path / "orders.csv").write_text("customer_id,at\n1,2024-01-01 00:00:00\n")
    (tmp_path / "taxiway.yaml").write_text(SPEC.format(name=name))
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["models", "list", "-f", str(tmp_path / "taxiway.yaml")]) == 0
    assert f"no versions of {name} yet" in capsys.readouterr().out
    assert "COLUMNS" not in os.environ
    monkeypatch.setenv("COLUMNS", "60")
    assert main(["models", "list", "-f", str(tmp_path / "taxiway.yaml")]) == 0
    assert f"no versions of {name} yet" not in capsys.readouterr().out  # cut at 60, as asked
    assert os.environ["COLUMNS"] == "60"
