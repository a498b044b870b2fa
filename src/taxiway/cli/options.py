"""Options shared by every command (`-f PATH`, `--state-dir`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["SpecOption", "StateDirOption"]

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
