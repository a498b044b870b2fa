"""The Redis online store: one hash per entity key, one field per feature view, one round trip.

Layout: the key ``{prefix}:{entity}:{key}`` is a Redis HASH whose field ``{view}`` holds the
JSON ``{"values": {...}, "event_time": <epoch s | null>, "as_of": <epoch s>}`` (the same
record the SQLite store keeps for the view inside the key's row). Writing a view replaces one
field and leaves the key's other views alone. Reading N keys is ONE command, one round trip:
a short Lua script (``EVALSHA``, loaded on first use) that does the ``HGETALL`` of every key
and answers, per key, its fields joined into one JSON document ``{"<view>": <record>, ...}``
(the form of the SQLite store's row; ``nil`` for a key never written), so the client decodes
one string per key instead of two per view. That costs a third of a pipeline of N
``HGETALL`` on the client, where redis-py packs and parses each command of a pipeline in
Python (bench/RESULTS.md, "3. Online lookups"); a single key is one ``HGETALL``. ``clear`` walks the
prefix with ``SCAN`` and deletes with ``UNLINK`` (never ``FLUSHDB``: the database may be
shared). Keys never expire; materialization overwrites them.

Failures fail fast: the socket timeouts are ``timeout_ms``, a dropped connection is retried
once at once (a pooled connection the server closed), a timeout is not retried, and every
failure is a :class:`~taxiway.errors.FeatureError` naming the server (never the password)
and the fix. The client is thread-safe: each call takes a pooled connection.

:meth:`RedisStore.aread` is the same read on the caller's event loop (``redis.asyncio``, its
own pool, created on first use by that loop): the prediction service awaits it instead of
handing a blocking read to a thread, about three times the reads per second at four
concurrent reads (bench/RESULTS.md). A caller that gives up on it (a deadline) cancels it;
redis-py then drops that connection rather than reuse one with an answer still in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.retry import Retry

from taxiway.errors import FeatureError
from taxiway.features.online._codec import (
    Moments,
    Records,
    check_entity,
    decode,
    encode_record,
    to_epoch,
    views_of,
)
from taxiway.features.online.base import ViewValues
from taxiway.spec.secrets import redact

__all__ = ["RedisStore"]

WRITE_CHUNK = 1_000  # commands per pipeline execute while writing
SCAN_COUNT = 1_000  # keys per SCAN step and per UNLINK while clearing
ASYNC_CONNECTIONS = 16  # connections one event loop's reads may hold at once
ASYNC_CLIENT_NAME = "taxiway-online-read"
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})
# every view of every key in one command: per key (KEYS order) '{"view":record,...}', or false
# (nil) for a key with no fields; the view name is JSON-quoted, each record is stored JSON
READ_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then
    out[i] = false
  else
    local parts = {}
    for j = 1, #flat, 2 do parts[#parts + 1] = cjson.encode(flat[j]) .. ':' .. flat[j + 1] end
    out[i] = '{' .. table.concat(parts, ',') .. '}'
  end
end
return out
"""


class RedisStore:
    """Feature vectors in the Redis server at ``url``, under keys starting ``prefix:``.

    ``timeout_ms`` bounds connecting and every answer. ``origin`` says where the URL came
    from (e.g. ``the environment variable REDIS_URL``), for error messages.
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        timeout_ms: float,
        *,
        origin: str = "online_store.url",
    ) -> None:
        if not prefix:
            raise FeatureError(
                "the Redis online store needs a non-empty key prefix",
                fix="set online_store.prefix, e.g. `taxiway:<spec name>`",
            )
        self.prefix = prefix
        self.timeout_ms = timeout_ms
        self._origin = origin
        seconds = timeout_ms / 1000
        self._url = url
        self._async: redis.asyncio.Redis | None = None
        self._async_loop: object | None = None
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                url,
                socket_timeout=seconds,
                socket_connect_timeout=seconds,
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            )
        except ValueError as error:
            raise FeatureError(
                f"{origin} is not a Redis URL ({redact(str(error))})",
                fix=f"set {origin} to a URL such as redis://127.0.0.1:6379/0",
            ) from None
        params: dict[str, Any] = self._client.connection_pool.connection_kwargs
        self.address = (
            str(params["path"]) if "path" in params else f"{params['host']}:{params['port']}"
        )
        self._namespace = f"{prefix}:"
        self._read_script = self._client.register_script(READ_SCRIPT)
        self._async_read_script: AsyncScript | None = None

    def __repr__(self) -> str:
        return f"RedisStore(address={self.address!r}, prefix={self.prefix!r})"

    # ------------------------------------------------------------------ the protocol

    def write(self, entity: str, rows: Iterable[tuple[str, ViewValues]]) -> int:
        """Upsert ``(key, values)`` pairs of ``entity``; return how many were written.

        Rows go out in pipelines of :data:`WRITE_CHUNK` ``HSET`` commands (not transactions:
        a failure part-way leaves the chunks already sent in place; write again to finish).
        """
        base = f"{self._namespace}{check_entity(entity)}:"
        written = 0
        with self._errors("writing to"), self._client.pipeline(transaction=False) as pipe:
            queued = 0
            for key, view in rows:
                event_time = view.event_time
                record = encode_record(
                    view.values,
                    None if event_time is None else to_epoch(event_time),
                    to_epoch(view.as_of),
                )
                pipe.hset(base + key, mapping={view.view: record})
                queued += 1
                if queued == WRITE_CHUNK:
                    pipe.execute()
                    written += queued
                    queued = 0
            if queued:
                pipe.execute()
                written += queued
        return written

    def read(self, entity: str, keys: Sequence[str]) -> dict[str, list[ViewValues]]:
        """Every stored view of each key (views in name order), in one round trip.

        Keys never written are absent from the answer.
        """
        return _views(self.read_records(entity, keys))

    def read_records(self, entity: str, keys: Sequence[str]) -> dict[str, Records]:
        """:meth:`read` as each key's decoded records, ``{view: {"values", "event_time",
        "as_of"}}`` with times in epoch seconds: what a lookup reads (one JSON decode per key,
        no datetime or :class:`ViewValues` built per view)."""
        base = f"{self._namespace}{check_entity(entity)}:"
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        with self._errors("reading from"):
            if len(wanted) == 1:
                # bytes: the client does not decode responses
                one = cast(dict[bytes, bytes], self._client.hgetall(base + wanted[0]))
                return _one(wanted[0], one)
            answers = self._read_script(keys=[base + key for key in wanted])
        return _found(wanted, answers)

    async def aread(self, entity: str, keys: Sequence[str]) -> dict[str, list[ViewValues]]:
        """:meth:`read` on the running event loop: one round trip, no thread."""
        return _views(await self.aread_records(entity, keys))

    async def aread_records(self, entity: str, keys: Sequence[str]) -> dict[str, Records]:
        """:meth:`read_records` on the running event loop: one round trip, no thread."""
        base = f"{self._namespace}{check_entity(entity)}:"
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        client = self._async_client()
        with self._errors("reading from"):
            if len(wanted) == 1:
                one = cast(dict[bytes, bytes], await client.hgetall(base + wanted[0]))
                return _one(wanted[0], one)
            script = self._async_read_script
            if script is None:
                script = self._async_read_script = client.register_script(READ_SCRIPT)
            answers = await script(keys=[base + key for key in wanted])
        return _found(wanted, answers)

    async def aclose(self) -> None:
        """Close the connections :meth:`aread` opened."""
        client, self._async, self._async_loop = self._async, None, None
        self._async_read_script = None
        if client is not None:
            await client.aclose(close_connection_pool=True)

    def _async_client(self) -> redis.asyncio.Redis:
        """The asyncio client of the running loop (a client is bound to the loop it runs on)."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is not loop:
            seconds = self.timeout_ms / 1000
            # bounded: a list of 1,000 items must not open 1,000 connections; a read waits
            # for a free one (its caller's deadline bounds the wait)
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self._url,
                max_connections=ASYNC_CONNECTIONS,
                timeout=None,
                client_name=ASYNC_CLIENT_NAME,  # seen in CLIENT LIST
                socket_timeout=seconds,
                socket_connect_timeout=seconds,
                retry=AsyncRetry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            )
            self._async = redis.asyncio.Redis(connection_pool=pool)
            self._async_loop = loop
            self._async_read_script = None  # a script object is bound to its client
        return self._async

    def clear(self, entity: str | None = None) -> None:
        """Delete every key of ``entity`` (or of every entity) under this store's prefix.

        Keys of another prefix that starts with this one plus ``:`` are deleted too: give
        stores that share a database prefixes that do not nest.
        """
        pattern = self._namespace.translate(_GLOB_SPECIAL)
        if entity is not None:
            pattern += check_entity(entity) + ":"
        with self._errors("clearing"):
            batch: list[bytes] = []
            for name in self._client.scan_iter(match=pattern + "*", count=SCAN_COUNT):
                batch.append(name)
                if len(batch) == SCAN_COUNT:
                    self._client.unlink(*batch)
                    batch = []
            if batch:
                self._client.unlink(*batch)

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    # ------------------------------------------------------------------ errors

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn redis-py's exceptions into one clear :class:`FeatureError` with the fix."""
        where = f"Redis at {self.address}"
        try:
            yield
        except redis.AuthenticationError as error:
            raise FeatureError(
                f"{where} refused the credentials while {action} the online store "
                f"({redact(str(error))})",
                fix=f"fix the user and password in {self._origin}",
            ) from None
        except redis.TimeoutError:
            raise FeatureError(
                f"{where} did not answer within {self.timeout_ms:g} ms while {action} the "
                "online store",
                fix="check that Redis is up and not overloaded, or raise online_store.timeout_ms",
            ) from None
        except redis.ConnectionError as error:
            reason = redact(str(error))
            if "refused" in reason.lower():
                message = f"{where} refused the connection"
                fix = f"start Redis there, or fix {self._origin}"
            elif "name or service not known" in reason.lower() or "nodename" in reason.lower():
                message = f"the host of Redis at {self.address} cannot be resolved"
                fix = f"fix the host name in {self._origin}"
            else:
                message = f"{where} cannot be reached ({reason})"
                fix = f"start Redis there, or fix {self._origin}"
            raise FeatureError(f"{message} while {action} the online store", fix=fix) from None
        except redis.ResponseError as error:
            # a pipeline error quotes the command, which may hold feature values: keep the reason
            reason = str(error).rpartition("caused error: ")[2]
            raise FeatureError(
                f"{where} rejected a command while {action} the online store ({reason})",
                fix="make sure no other program writes keys under online_store.prefix "
                f"{self.prefix!r}, or choose another prefix",
            ) from None
        except redis.RedisError as error:
            raise FeatureError(
                f"{where} answered unexpectedly while {action} the online store "
                f"({redact(str(error))})",
                fix=f"check that {self._origin} points at a Redis server",
            ) from None


def _one(key: str, fields: dict[bytes, bytes]) -> dict[str, Records]:
    """One key's ``HGETALL`` answer as :meth:`RedisStore.read_records` returns it."""
    if not fields:
        return {}
    return {key: {view.decode("utf-8"): decode(data) for view, data in fields.items()}}


def _found(wanted: list[str], answers: Any) -> dict[str, Records]:
    """Key → its records from the script's answer (one JSON document per key, or None)."""
    return {key: decode(doc) for key, doc in zip(wanted, answers, strict=True) if doc}


def _views(found: dict[str, Records]) -> dict[str, list[ViewValues]]:
    """Key → its views, in name order (what :meth:`RedisStore.read` returns)."""
    moments = Moments()
    return {key: views_of(records, moments) for key, records in found.items()}
