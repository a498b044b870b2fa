"""A :class:`Project` is a thin handle: the loaded spec, where it lives and where state goes.

It does no work itself; each module takes what it needs from it.

>>> from pathlib import Path
>>> from taxiway.spec.loader import load_spec_text
>>> project = Project(load_spec_text("name: demo"), Path("/srv/demo/taxiway.yaml"))
>>> str(project.state_dir)
'/srv/demo/.taxiway'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from taxiway.spec.loader import find_spec, load_spec
from taxiway.spec.models import TaxiwaySpec

__all__ = ["STATE_DIR_ENV", "Project"]

STATE_DIR_ENV = "TAXIWAY_STATE_DIR"


@dataclass(frozen=True)
class Project:
    """The loaded spec of one use case, its file, and its state folder.

    The state folder (quarantine, online store, registry...) is ``state_dir_override`` if
    given (``--state-dir``), else ``$TAXIWAY_STATE_DIR``, else ``.taxiway/`` beside the spec.
    """

    spec: TaxiwaySpec
    spec_path: Path
    state_dir_override: Path | None = None

    @classmethod
    def load(cls, path: str | Path | None = None, state_dir: str | Path | None = None) -> Project:
        """Find and load the spec (``./taxiway.yaml`` by default)."""
        file = find_spec(path)
        spec = load_spec(file)
        return cls(spec, file.resolve(), Path(state_dir) if state_dir is not None else None)

    @property
    def state_dir(self) -> Path:
        """Where taxiway keeps this use case's state."""
        if self.state_dir_override is not None:
            return self.state_dir_override
        configured = os.environ.get(STATE_DIR_ENV)
        return Path(configured) if configured else self.spec_path.parent / ".taxiway"

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the spec are resolved against."""
        return self.spec_path.parent
