"""Fault injection for drills: make a dependency of one service process fail on purpose.

``taxiway sprint``'s fault drill starts a second service with ``TAXIWAY_FAULTS`` set and checks
that its answers stay within the latency budget, marked degraded. Faults are read once, when
the process starts, from that variable only: no request can turn one on. A process with a fault
says so in every degraded answer's ``reason`` and in ``/metrics``.

``TAXIWAY_FAULTS`` is a comma list of:

- ``online_store=down``: every online-store read fails at once, as when the store refuses
  connections.
- ``online_store=slow``: every online-store read takes 10 s, as when the store hangs.

>>> parse_faults("online_store=down")
{'online_store': 'down'}
>>> parse_faults("")
{}
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from taxiway.errors import ServingError
from taxiway.features.online.base import OnlineStore, ViewValues

__all__ = ["ENV", "FaultyStore", "parse_faults", "with_faults"]

ENV = "TAXIWAY_FAULTS"
_KNOWN = {"online_store": ("down", "slow")}
_SLOW_S = 10.0


class FaultyStore:
    """An online store whose reads fail (``down``) or hang (``slow``); writes are refused."""

    def __init__(self, store: OnlineStore, mode: str) -> None:
        self.inner = store
        self.mode = mode

    def read(self, entity: str, keys: Sequence[str]) -> dict[str, list[ViewValues]]:
        if self.mode == "slow":
            time.sleep(_SLOW_S)
        raise ConnectionError(f"online store unavailable (fault drill: {ENV}={self.mode})")

    def write(self, entity: str, rows: Iterable[tuple[str, ViewValues]]) -> int:
        raise ConnectionError(f"online store unavailable (fault drill: {ENV}={self.mode})")

    def clear(self, entity: str | None = None) -> None:
        raise ConnectionError(f"online store unavailable (fault drill: {ENV}={self.mode})")

    def close(self) -> None:
        self.inner.close()


def parse_faults(text: str | None) -> dict[str, str]:
    """``target=mode`` pairs of ``text``; a :class:`ServingError` for an unknown one."""
    faults: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        target, _, mode = item.partition("=")
        if mode not in _KNOWN.get(target, ()):
            known = ", ".join(f"{t}={m}" for t, modes in _KNOWN.items() for m in modes)
            raise ServingError(f"unknown fault {item!r} in {ENV}", fix=f"use one of: {known}")
        faults[target] = mode
    return faults


def with_faults(store: OnlineStore, faults: dict[str, str]) -> OnlineStore:
    """``store``, or a :class:`FaultyStore` around it when ``faults`` name the online store."""
    mode = faults.get("online_store")
    return store if mode is None else FaultyStore(store, mode)
