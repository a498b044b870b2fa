"""Online stores: feature vectors by entity key for serving, opened from the spec's choice.

SQLite is the embedded default; Redis comes with the ``redis`` extra and is imported only when
used, so this package imports without redis-py installed.

>>> import tempfile
>>> folder = tempfile.TemporaryDirectory()
>>> store = open_online_store(None, state_dir=Path(folder.name), namespace="repurchase")
>>> store
SqliteStore('.../online.sqlite')
>>> store.close(); folder.cleanup()
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from taxiway.errors import FeatureError
from taxiway.features.online.base import OnlineStore, ViewValues
from taxiway.features.online.sqlite import SqliteStore
from taxiway.spec.models import RedisOnlineStore, SqliteOnlineStore

if TYPE_CHECKING:
    from taxiway.features.online.redis import RedisStore

__all__ = ["OnlineStore", "RedisStore", "SqliteStore", "ViewValues", "open_online_store"]

DEFAULT_SQLITE_FILE = "online.sqlite"


def open_online_store(
    spec: SqliteOnlineStore | RedisOnlineStore | None,
    *,
    state_dir: Path,
    namespace: str,
    read_timeout_ms: float | None = None,
) -> OnlineStore:
    """The online store ``spec`` declares; no spec means SQLite in ``state_dir``.

    ``namespace`` (the spec's name) makes the default Redis prefix ``taxiway:<namespace>``,
    so several use cases can share one Redis database. ``read_timeout_ms`` bounds how long
    a SQLite read waits for a lock (the prediction service passes a tenth of its latency
    budget; None waits as long as a write, 5 s); Redis has ``online_store.timeout_ms``.
    Nothing connects until first use.

    >>> from taxiway.spec.models import RedisOnlineStore
    >>> spec = RedisOnlineStore(kind="redis", url="redis://127.0.0.1:6379/0")
    >>> store = open_online_store(spec, state_dir=Path("."), namespace="repurchase")
    >>> store.prefix, store.timeout_ms
    ('taxiway:repurchase', 50.0)
    >>> store.close()
    """
    if spec is None:
        return SqliteStore(Path(state_dir) / DEFAULT_SQLITE_FILE, read_timeout_ms=read_timeout_ms)
    if isinstance(spec, SqliteOnlineStore):
        path = Path(spec.path) if spec.path is not None else Path(state_dir) / DEFAULT_SQLITE_FILE
        return SqliteStore(path, read_timeout_ms=read_timeout_ms)
    if isinstance(spec, RedisOnlineStore):
        store_class = _redis_store_class()
        return store_class(
            spec.url.reveal(),
            spec.prefix or f"taxiway:{namespace}",
            spec.timeout_ms,
            origin=_origin(spec.url.names),
        )
    raise FeatureError(f"unsupported online store {spec!r}")  # pragma: no cover - closed union


def _redis_store_class() -> type[RedisStore]:
    try:
        # optional extra: redis-py is only needed when the spec picks Redis
        from taxiway.features.online.redis import RedisStore
    except ImportError as error:
        if (error.name or "").startswith("taxiway"):
            raise
        raise FeatureError(
            f"online_store is redis but its client is missing ({error.name})",
            fix="pip install 'taxiway[redis]'",
        ) from None
    return RedisStore


def _origin(names: list[str]) -> str:
    """Where the Redis URL comes from, in words, for error messages."""
    env = [name for name in names if not name.startswith("file:")]
    files = [name[len("file:") :] for name in names if name.startswith("file:")]
    if len(names) == 1 and env:
        return f"online_store.url (the environment variable {env[0]})"
    if len(names) == 1 and files:
        return f"online_store.url (the file {files[0]})"
    return "online_store.url"


def __getattr__(name: str) -> object:
    if name == "RedisStore":
        return _redis_store_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
