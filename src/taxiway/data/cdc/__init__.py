"""Change data capture: a source's consistent snapshot, then its committed changes in order."""

from __future__ import annotations

from taxiway.data.cdc.pgoutput import UNCHANGED, Change
from taxiway.data.cdc.values import arrow_type, typed_table

__all__ = ["UNCHANGED", "Change", "arrow_type", "typed_table"]
