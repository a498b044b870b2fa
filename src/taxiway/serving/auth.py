"""API keys with roles: ``predict``, ``outcomes``, ``admin``; compared in constant time.

Keys come from a file the spec names (``serving.auth.keys_file``: one ``<key> <role>[,<role>]``
per line, ``#`` comments) or one environment variable (``serving.auth.key_env``: a key with
every role). A key is never logged or echoed; only its 8-character SHA-256 prefix identifies it.

>>> keys = ApiKeys.parse("s3cret-one-abcdefgh predict\\ns3cret-two-abcdefgh predict,outcomes\\n")
>>> sorted(keys.roles_of("s3cret-two-abcdefgh")), keys.roles_of("wrong"), keys.roles_of(None)
(['outcomes', 'predict'], frozenset(), frozenset())
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from taxiway.errors import ServingError
from taxiway.spec.models import AuthSpec

__all__ = ["ROLES", "ApiKeys", "client_key", "key_id", "load_keys"]

ROLES = frozenset({"predict", "outcomes", "admin"})


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


def load_keys(spec: AuthSpec | None) -> ApiKeys:
    """The keys the spec points at (none configured: an empty set)."""
    if spec is None:
        return ApiKeys({})
    keys: dict[str, frozenset[str]] = {}
    if spec.keys_file is not None:
        path = Path(spec.keys_file)
        try:
            text = path.read_text()
        except OSError as error:
            raise ServingError(
                f"cannot read the API keys file {path}: {error.strerror}",
                fix="create it (one `<key> <roles>` per line) or fix serving.auth.keys_file",
            ) from None
        keys.update(_parse_lines(text, str(path)))
    if spec.key_env is not None:
        value = os.environ.get(spec.key_env)
        if not value:
            raise ServingError(
                f"serving.auth.key_env names {spec.key_env}, which is not set",
                fix=f"export {spec.key_env}=<a key of 16+ characters>",
            )
        keys[value.strip()] = ROLES
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
