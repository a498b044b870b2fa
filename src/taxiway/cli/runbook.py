"""`taxiway runbook` (being built)."""

from __future__ import annotations

import typer

__all__ = ["runbook"]


def runbook(
    spec: str = typer.Option("taxiway.yaml", "-f", "--file", help="The spec."),
) -> None:
    """(being built)"""
    raise typer.Exit(2)
