"""Fault injection for drills: make a dependency of one service process fail on purpose.

``taxiway sprint``'s fault drill starts a second service with ``TAXIWAY_FAULTS`` set and checks
that its answers stay within the latency budget, marked degraded. Faults are read once, when
the process starts, from that variable only: no request can turn one on. A process with a fault
says so when it starts and in ``/metrics`` (``taxiway_fault_injected``).

``TAXIWAY_FAULTS`` is a comma list of:

- ``online_store=down``: the store refuses service. A Redis store is pointed at a loopback
  port where nothing listens (connections are refused); a SQLite store at a file that cannot
  be opened. Every read fails at once.
- ``online_store=slow``: the store hangs. A Redis store is pointed at a loopback port that
  accepts connections and never answers; a SQLite store at a file that another connection
  holds locked (``BEGIN EXCLUSIVE``). Every read lasts until its deadline: the service's
  deadline or the store's ``timeout_ms`` for Redis, the read's busy timeout for SQLite.
- ``recommend_model=down``: the recommendation service's ``model`` step (the full pipeline of
  the Recommender) raises at once, every time (:func:`model_fault`).
- ``recommend_model=slow``: the ``model`` step hangs: it sleeps the whole latency budget, so it
  always overruns its share of it (:data:`taxiway.serving.recommend_service.MODEL_SHARE`), then
  gives up. Its thread goes on sleeping after the step is abandoned, as a hung model's would;
  it computes nothing, so the drill measures the budget's hand-over, not the drill's own CPU.

A service refuses a fault of a dependency it does not have (the recommendation service reads
no online store; the prediction service has no recommender).

The faulty store is not a stand-in: it is a store of the real one's own class, with the same
prefix, timeouts and read deadline, so the service reads it exactly as it reads the real one
(a SQLite read in place on the event loop, a Redis read awaited on the loop, the same
timeouts, errors, breaker and fallback). Only what is behind it is broken, and nothing of the
real store's data is touched (the SQLite lock is on a scratch file, never the real one).

>>> parse_faults("online_store=down")
{'online_store': 'down'}
>>> parse_faults("recommend_model=slow")
{'recommend_model': 'slow'}
>>> parse_faults("")
{}
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from taxiway.errors import ServingError
from taxiway.features.online.base import OnlineStore
from taxiway.features.online.sqlite import SqliteStore

if TYPE_CHECKING:
    from taxiway.features.online.redis import RedisStore

__all__ = ["ENV", "faulty_store", "model_fault", "parse_faults", "with_faults"]

ENV = "TAXIWAY_FAULTS"
_KNOWN = {"online_store": ("down", "slow"), "recommend_model": ("down", "slow")}
_BACKLOG = 512  # connections the never-answering port takes before new ones hang in connect


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


def model_fault(faults: dict[str, str], budget_s: float) -> Callable[[], None] | None:
    """What the recommender's ``model`` step does before the pipeline under ``faults``: None
    without a ``recommend_model`` fault; ``down`` raises a :class:`ServingError`; ``slow``
    sleeps ``budget_s`` (the whole latency budget: past the model's share of it), then raises.

    >>> model_fault({}, 0.05) is None
    True
    >>> model_fault({"recommend_model": "down"}, 0.05)()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    taxiway.errors.ServingError: the recommender's model is down (...)
    ...
    """
    mode = faults.get("recommend_model")
    if mode is None:
        return None
    if mode == "slow":

        def slow() -> None:
            time.sleep(budget_s)
            raise ServingError(
                f"the recommender's model hung for {budget_s * 1000:g} ms "
                f"({ENV}=recommend_model=slow, a drill)",
                fix=f"unset {ENV}: no fault is injected in production",
            )

        return slow
    if mode == "down":

        def down() -> None:
            raise ServingError(
                f"the recommender's model is down ({ENV}=recommend_model=down, a drill)",
                fix=f"unset {ENV}: no fault is injected in production",
            )

        return down
    raise ServingError(f"unknown recommender fault {mode!r}", fix="use `down` or `slow`")


def with_faults(store: OnlineStore, faults: dict[str, str]) -> OnlineStore:
    """``store``, or :func:`faulty_store` in its place when ``faults`` name the online store."""
    mode = faults.get("online_store")
    return store if mode is None else faulty_store(store, mode)


def faulty_store(store: OnlineStore, mode: str) -> OnlineStore:
    """A store of ``store``'s class, configured like it, whose backend is ``down`` or ``slow``.

    ``store`` is closed: the faulty store replaces it. What breaks the backend (a held
    socket, a lock on a scratch file) is released when the faulty store is garbage-collected
    or the process exits.
    """
    if mode not in _KNOWN["online_store"]:
        raise ServingError(f"unknown online store fault {mode!r}", fix="use `down` or `slow`")
    # a RedisStore's module is loaded if the store is one (redis-py is an optional extra)
    redis_module = sys.modules.get("taxiway.features.online.redis")
    if isinstance(store, SqliteStore):
        faulty, release = _faulty_sqlite(store, mode)
    elif redis_module is not None and isinstance(store, redis_module.RedisStore):
        faulty, release = _faulty_redis(store, mode)
    else:
        raise ServingError(
            f"{ENV} cannot break an online store of type {type(store).__name__}",
            fix="drill with the sqlite or redis online store",
        )
    store.close()
    weakref.finalize(faulty, release)
    return faulty


def _faulty_sqlite(store: SqliteStore, mode: str) -> tuple[OnlineStore, Callable[[], None]]:
    scratch = Path(tempfile.mkdtemp(prefix="taxiway-fault-"))
    holder: sqlite3.Connection | None = None
    if mode == "down":
        blocker = scratch / "not-a-folder"
        blocker.touch()
        path = blocker / "online.sqlite"  # its folder is a file: it can never be opened
    else:
        path = scratch / "online.sqlite"
        # another connection holding the file locked, as a process in the middle of a long
        # write would: every read waits its busy timeout, then fails
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        if holder is not None:
            holder.close()
        shutil.rmtree(scratch, ignore_errors=True)

    return SqliteStore(path, read_timeout_ms=store.read_timeout_ms), release


def _faulty_redis(store: RedisStore, mode: str) -> tuple[OnlineStore, Callable[[], None]]:
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    if mode == "slow":
        # the kernel completes connections into the backlog; nothing ever reads or answers
        port.listen(_BACKLOG)
    # else bound, never listening: a connection to it is refused, and no one else can take it
    number = port.getsockname()[1]
    faulty = type(store)(
        f"redis://127.0.0.1:{number}/0",
        store.prefix,
        store.timeout_ms,
        origin=f"the fault drill's Redis ({ENV}=online_store={mode})",
    )
    return faulty, port.close
