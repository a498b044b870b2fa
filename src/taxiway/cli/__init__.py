"""The `taxiway` command line: thin commands over the library."""

from taxiway.cli.app import app, main

__all__ = ["app", "main"]
