"""The service's copy of the opt-out list, read again every ``governance.opt_out.refresh``.

An opted-out unit (:mod:`taxiway.features.opt_out` defines it) is never scored by the model:
its request gets the control answer with ``path: opt_out`` (see
:meth:`taxiway.serving.predictor.Predictor.answer`). The request's unit is its key for the
list's entity (``entities.<entity>``); a model that takes no such entity is matched on the
request's ``unit``.

The list is read when the service starts (a list that cannot be read stops the start: serving
without it would score people who opted out), then every ``refresh`` in a worker thread; the
new set replaces the old at once (one reference swap), so a unit added to the list is served
as opted out from the next refresh on, without a restart. A read that fails later keeps the
last list and logs a warning.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from pathlib import Path

from taxiway.errors import ServingError, TaxiwayError
from taxiway.features.opt_out import opt_out_entity, read_opt_out_keys
from taxiway.serving.inputs import Parsed
from taxiway.spec.models import TaxiwaySpec

__all__ = ["OptOutList"]

logger = logging.getLogger("taxiway.serving")


class OptOutList:
    """The opted-out units' keys, as last read from the spec's opt-out source."""

    def __init__(self, spec: TaxiwaySpec, state_dir: Path) -> None:
        assert spec.governance is not None
        assert spec.governance.opt_out is not None
        self.spec = spec
        self.entity = opt_out_entity(spec)
        self.refresh_s = spec.governance.opt_out.refresh.total_seconds()
        self._staging = state_dir / "staging"
        self.keys: frozenset[str] = frozenset()
        self.reads = 0
        try:
            self.read()
        except TaxiwayError as error:
            raise ServingError(
                f"the opt-out list cannot be read: {error.message}",
                fix=error.fix
                or "fix governance.opt_out.source; the service does not start "
                "without its opt-out list",
            ) from None

    def read(self) -> None:
        """Read the list now and put it in place."""
        staging = self._staging / f"opt-out-{uuid.uuid4().hex[:8]}"
        try:
            self.keys = read_opt_out_keys(self.spec, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.reads += 1

    def holds(self, parsed: Parsed) -> bool:
        """Whether the request's unit opted out."""
        key = parsed.keys.get(self.entity, parsed.unit)
        return key is not None and key in self.keys

    async def follow(self) -> None:
        """Read the list again every ``refresh`` (run as a task; a failed read keeps the last)."""
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await asyncio.to_thread(self.read)
            except Exception as error:  # the last list stays: never fewer units than it held
                logger.warning("cannot read the opt-out list again; keeping the last: %s", error)
