"""API keys with roles: ``predict``, ``outcomes``, ``admin``; compared in constant time.

Keys come from a file the spec names (``serving.auth.keys_file``: one ``<key> <role>[,<role>]``
per line, ``#`` comments) or one environment variable (``serving.auth.key_env``: a key with
every role). A key is never logged or echoed; only its 8-character SHA-256 prefix identifies it.

Rotation needs no restart: a running service re-reads the keys file when its modification time,
size or inode changes (checked at most every ``RELOAD_INTERVAL_S`` seconds), so replacing the
file (write a new one, then rename it over the old) adds the new keys and revokes the removed
ones. A file that cannot be read or parsed then keeps the previous keys and logs why (never a
key). The environment's key is read once, at start: a process's environment cannot change.

>>> keys = ApiKeys.parse("s3cret-one-abcdefgh predict\\ns3cret-two-abcdefgh predict,outcomes\\n")
>>> sorted(keys.roles_of("s3cret-two-abcdefgh")), keys.roles_of("wrong"), keys.roles_of(None)
(['outcomes', 'predict'], frozenset(), frozenset())
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from taxiway.errors import ServingError
from taxiway.spec.models import AuthSpec

__all__ = [
    "RELOAD_INTERVAL_S",
    "ROLES",
    "ApiKeys",
    "ReloadingKeys",
    "client_key",
    "key_id",
    "load_keys",
]

ROLES = frozenset({"predict", "outcomes", "admin"})
RELOAD_INTERVAL_S = 1.0
logger = logging.getLogger("taxiway.serving")


@dataclass(frozen=True)
class _Key:
    digest: bytes
    roles: frozenset[str]


class ApiKeys:
    """The configured keys, stored as SHA-256 digests."""

    def __init__(self, keys: dict[str, frozenset[str]]) -> None:
        self._keys = [_Key(_digest(k), roles) for k, roles in keys.items()]

    @classmethod
    def parse(cls, text: str, origin: str = "the keys file") -> ApiKeys:
        """Read ``<key> <role>[,<role>...]`` lines."""
        return cls(_parse_lines(text, origin))

    def __bool__(self) -> bool:
        return bool(self._keys)

    def roles_of(self, presented: str | None) -> frozenset[str]:
        """The roles of ``presented`` (empty when unknown); every key is compared, always."""
        if presented is None:
            return frozenset()
        digest = _digest(presented)
        found: frozenset[str] = frozenset()
        for key in self._keys:
            if hmac.compare_digest(key.digest, digest):
                found = key.roles
        return found


class ReloadingKeys(ApiKeys):
    """The keys of a keys file (and the environment's key), re-read when the file changes.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "keys"
    >>> _ = path.write_text("old-key-0123456789ab predict\\n")
    >>> keys = ReloadingKeys(path, {}, interval_s=0.0)
    >>> sorted(keys.roles_of("old-key-0123456789ab"))
    ['predict']
    >>> _ = path.write_text("new-key-0123456789ab predict,outcomes\\n")
    >>> keys.roles_of("old-key-0123456789ab"), sorted(keys.roles_of("new-key-0123456789ab"))
    (frozenset(), ['outcomes', 'predict'])
    """

    def __init__(
        self,
        path: Path,
        fixed: dict[str, frozenset[str]],
        interval_s: float = RELOAD_INTERVAL_S,
    ) -> None:
        self._path = path
        self._fixed = fixed
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._stamp = _stamp(path)
        self._checked = time.monotonic()
        super().__init__({**_read_keys_file(path), **fixed})

    def __bool__(self) -> bool:
        self._maybe_reload()
        return super().__bool__()

    def roles_of(self, presented: str | None) -> frozenset[str]:
        self._maybe_reload()
        return super().roles_of(presented)

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._interval_s:
            return
        with self._lock:
            self._checked = now
            stamp = _stamp(self._path)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                keys = _read_keys_file(self._path)
            except ServingError as error:  # the message names the line, never a key
                logger.error("kept the previous API keys: %s", error)
                return
            self._keys = [_Key(_digest(k), roles) for k, roles in {**keys, **self._fixed}.items()]
        logger.info("re-read the API keys file %s: %d keys", self._path, len(self._keys))


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _read_keys_file(path: Path) -> dict[str, frozenset[str]]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ServingError(
            f"cannot read the API keys file {path}: {error.strerror}",
            fix="create it (one `<key> <roles>` per line) or fix serving.auth.keys_file",
        ) from None
    return _parse_lines(text, str(path))


def load_keys(spec: AuthSpec | None) -> ApiKeys:
    """The keys the spec points at (none configured: an empty set); a keys file is re-read
    when it changes (:class:`ReloadingKeys`)."""
    if spec is None:
        return ApiKeys({})
    keys: dict[str, frozenset[str]] = {}
    if spec.key_env is not None:
        value = os.environ.get(spec.key_env)
        if not value:
            raise ServingError(
                f"serving.auth.key_env names {spec.key_env}, which is not set",
                fix=f"export {spec.key_env}=<a key of 16+ characters>",
            )
        keys[value.strip()] = ROLES
    if spec.keys_file is not None:
        return ReloadingKeys(Path(spec.keys_file), keys)
    return ApiKeys(keys)


def client_key(spec: AuthSpec | None, roles: frozenset[str] = ROLES) -> str | None:
    """A configured key holding every role of ``roles`` (for taxiway's own checks of a running
    service, such as the sprint's smoke test), or None when no key is configured or none has
    them all. The environment's key comes first; it has every role.

    >>> client_key(None) is None
    True
    """
    if spec is None:
        return None
    if spec.key_env is not None and os.environ.get(spec.key_env):
        return os.environ[spec.key_env].strip()
    if spec.keys_file is not None:
        try:
            text = Path(spec.keys_file).read_text()
        except OSError:
            return None
        for key, held in _parse_lines(text, str(spec.keys_file)).items():
            if roles <= held:
                return key
    return None


def _parse_lines(text: str, origin: str) -> dict[str, frozenset[str]]:
    keys: dict[str, frozenset[str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ServingError(
                f"{origin}:{number}: expected `<key> <role>[,<role>...]`",
                fix="one key per line, then its roles: predict, outcomes, admin",
            )
        roles = frozenset(r.strip() for r in parts[1].split(",") if r.strip())
        unknown = roles - ROLES
        if unknown:
            raise ServingError(
                f"{origin}:{number}: unknown role {', '.join(sorted(unknown))}",
                fix="use predict, outcomes or admin",
            )
        if len(parts[0]) < 16:
            raise ServingError(
                f"{origin}:{number}: a key must have at least 16 characters",
                fix="generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
            )
        keys[parts[0]] = roles
    return keys


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id(key: str) -> str:
    """A key's printable identity: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]
