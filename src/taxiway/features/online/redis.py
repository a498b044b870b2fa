"""The Redis online store: one JSON string per entity key, every view inside, one round trip.

Layout: the key ``{prefix}:{entity}:{key}`` is a Redis STRING holding the JSON document
``{"<view>": {"values": {...}, "event_time": <epoch s | null>, "as_of": <epoch s>}, ...}``,
byte for byte the SQLite store's row for the key (views in name order). Reading N keys is ONE
``MGET`` of the layout marker ``{prefix}:layout`` and the N keys: the server copies N strings
(no script, no per-view work), the client decodes one document per key. It replaced a Lua
script that joined each key's hash fields into that document: on a busy machine the server
spent 1.66 ms per 100-key read in the script against 0.23 ms in ``MGET`` (``INFO
commandstats``), and a read waited 8.1 ms against 0.6 ms at the median.

Writing a view replaces that view inside each key's document and keeps its other views: per
chunk of :data:`WRITE_CHUNK` rows, ``WATCH`` the keys, ``MGET`` them, merge, and ``MULTI`` /
``MSET`` / ``EXEC``; if another writer changed one of the keys meanwhile the chunk is merged
again (optimistic locking), so two writers never lose each other's views. Chunks are not one
transaction: a failure part-way leaves the chunks already written in place; write again to
finish. ``clear`` walks the prefix with ``SCAN`` and deletes with ``UNLINK`` (never
``FLUSHDB``: the database may be shared). Keys never expire; materialization overwrites them.

Stores written by taxiway before this layout kept one HASH per key with one field per view.
The first write of this version (``taxiway features materialize``) migrates them in place, in
batches, each batch one atomic script (the hash's fields joined into the document), logs how
many keys it moved, then sets the marker (a migrated document keeps its hash's field order,
and view names JSON-quoted by Lua, until the key's next write; it decodes the same). Until
then a read finds no marker and, if any key it asked for is a hash, refuses with a
:class:`~taxiway.errors.FeatureError` saying to materialize. Taxiway versions before this
one must not write to a migrated store (their hash would hide the key from reads).

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
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, cast

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from taxiway.errors import FeatureError
from taxiway.features.online._codec import (
    Moments,
    Records,
    check_entity,
    decode,
    encode_views,
    record,
    to_epoch,
    views_of,
)
from taxiway.features.online.base import ViewValues
from taxiway.features.online.tiles_redis import TILE_HASHES, RedisTiles
from taxiway.spec.secrets import redact

__all__ = ["RedisStore", "RedisTarget"]

logger = logging.getLogger("taxiway.features")

WRITE_CHUNK = 1_000  # rows merged per WATCH / MGET / MULTI-EXEC step while writing
WRITE_ATTEMPTS = 20  # merges of one chunk before giving up to writers that keep changing it
SCAN_COUNT = 1_000  # keys per SCAN step and per UNLINK while clearing (and per migration batch)
ASYNC_CONNECTIONS = 16  # connections one event loop's reads may hold at once
ASYNC_CLIENT_NAME = "taxiway-online-read"
LAYOUT = b"json-per-key"  # the marker's value: every key under the prefix is one JSON string
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})
# the earlier layout (a hash per key, a field per view) to this one, atomically per batch: each
# hash's fields joined into '{"view":record,...}' (the view name JSON-quoted, each record is
# stored JSON); keys that are no longer hashes are left alone, so two migrations do no harm
MIGRATE_SCRIPT = """
local moved = 0
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok == 'hash' then
    local flat = redis.call('HGETALL', key)
    local parts = {}
    for j = 1, #flat, 2 do parts[#parts + 1] = cjson.encode(flat[j]) .. ':' .. flat[j + 1] end
    redis.call('DEL', key)
    if #parts > 0 then redis.call('SET', key, '{' .. table.concat(parts, ',') .. '}') end
    moved = moved + 1
  end
end
return moved
"""


class _Unmarked(Exception):
    """A read found no layout marker: an empty or never-migrated store (see ``_unmarked``)."""


@dataclass(frozen=True)
class RedisTarget:
    """What opens the same store in another process (a Spark executor): picklable data, no
    connection. The URL may hold a password: it is left out of the repr."""

    url: str = field(repr=False)
    prefix: str
    timeout_ms: float
    origin: str

    def open(self) -> RedisStore:
        """A :class:`RedisStore` on this target (nothing connects until first use)."""
        return RedisStore(self.url, self.prefix, self.timeout_ms, origin=self.origin)


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
        self.migrated_keys = 0  # keys moved from the earlier layout by this store's writes
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
        # no entity key has a single segment after the prefix (`prefix:entity:key`)
        self._layout_key = f"{prefix}:layout"
        self._migrated = False  # whether this store checked (and did) the migration
        self._tiles: RedisTiles | None = None

    @property
    def tiles(self) -> RedisTiles:
        """The time tiles of tiled views, beside this prefix (:mod:`.tiles_redis`)."""
        if self._tiles is None:
            self._tiles = RedisTiles(self._client, self.prefix, self._errors)
        return self._tiles

    def __repr__(self) -> str:
        return f"RedisStore(address={self.address!r}, prefix={self.prefix!r})"

    def target(self) -> RedisTarget:
        """What opens this store in another process (:class:`RedisTarget`)."""
        return RedisTarget(self._url, self.prefix, self.timeout_ms, self._origin)

    # ------------------------------------------------------------------ the protocol

    def write(self, entity: str, rows: Iterable[tuple[str, ViewValues]]) -> int:
        """Upsert ``(key, values)`` pairs of ``entity``; return how many were written.

        Rows are merged into their keys' documents in chunks of :data:`WRITE_CHUNK`, each
        chunk one optimistic transaction (not the whole write: a failure part-way leaves the
        chunks already written in place; write again to finish).
        """
        base = f"{self._namespace}{check_entity(entity)}:"
        written = 0
        with self._errors("writing to"):
            if not self._migrated:
                self._migrate()
            iterator = iter(rows)
            while chunk := list(islice(iterator, WRITE_CHUNK)):
                self._merge(base, chunk)
                written += len(chunk)
        return written

    def read(self, entity: str, keys: Sequence[str]) -> dict[str, list[ViewValues]]:
        """Every stored view of each key (views in name order), in one round trip.

        Keys never written are absent from the answer.
        """
        return _views(self.read_records(entity, keys))

    def read_records(self, entity: str, keys: Sequence[str]) -> dict[str, Records]:
        """:meth:`read` as each key's decoded document, ``{view: {"values", "event_time",
        "as_of"}}`` with times in epoch seconds: what a lookup reads (one ``MGET``, one JSON
        decode per key, no datetime or :class:`ViewValues` built per view)."""
        base = f"{self._namespace}{check_entity(entity)}:"
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        names = [base + key for key in wanted]
        with self._errors("reading from"):
            answers = self._client.mget([self._layout_key, *names])
            try:
                return self._found(wanted, answers)
            except _Unmarked:
                pipe = self._client.pipeline(transaction=False)
                for name in names:
                    pipe.type(name)
                return self._unmarked(wanted, answers, pipe.execute())

    async def aread(self, entity: str, keys: Sequence[str]) -> dict[str, list[ViewValues]]:
        """:meth:`read` on the running event loop: one round trip, no thread."""
        return _views(await self.aread_records(entity, keys))

    async def aread_records(self, entity: str, keys: Sequence[str]) -> dict[str, Records]:
        """:meth:`read_records` on the running event loop: one round trip, no thread."""
        base = f"{self._namespace}{check_entity(entity)}:"
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        names = [base + key for key in wanted]
        client = self._async_client()
        with self._errors("reading from"):
            answers = await client.mget([self._layout_key, *names])
            try:
                return self._found(wanted, answers)
            except _Unmarked:
                pipe = client.pipeline(transaction=False)
                for name in names:
                    pipe.type(name)
                return self._unmarked(wanted, answers, await pipe.execute())

    async def aclose(self) -> None:
        """Close the connections :meth:`aread` opened."""
        client, self._async, self._async_loop = self._async, None, None
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
        return self._async

    def clear(self, entity: str | None = None) -> None:
        """Delete every key of ``entity`` (or of every entity) under this store's prefix.

        Keys of another prefix that starts with this one plus ``:`` are deleted too: give
        stores that share a database prefixes that do not nest.
        """
        pattern = self._namespace.translate(_GLOB_SPECIAL)
        # the time tiles sit beside the namespace: {prefix}#tiles:... and {prefix}#tile-events:...
        globs = [f"{self.prefix}#tile".translate(_GLOB_SPECIAL)]
        if entity is not None:
            pattern += check_entity(entity) + ":"
            globs = [f"{self.prefix}#{t}:{entity}:".translate(_GLOB_SPECIAL) for t in TILE_HASHES]
        with self._errors("clearing"):
            batch: list[bytes] = []
            for glob in (pattern, *globs):
                for name in self._client.scan_iter(match=glob + "*", count=SCAN_COUNT):
                    batch.append(name)
                    if len(batch) == SCAN_COUNT:
                        self._client.unlink(*batch)
                        batch = []
            if batch:
                self._client.unlink(*batch)

    def forget(self, entity: str, keys: Sequence[str]) -> int:
        """Delete ``keys`` of ``entity``: each key's vector and its tiles of every view (found
        by ``SCAN``, the key matched exactly); how many of them held anything."""
        base = f"{self._namespace}{check_entity(entity)}:"
        removed = 0
        with self._errors("deleting from"):
            for key in dict.fromkeys(keys):
                names: list[str | bytes] = [base + key]
                for hashes in TILE_HASHES:
                    head = f"{self.prefix}#{hashes}:{entity}:"
                    glob = head.translate(_GLOB_SPECIAL) + "*:" + key.translate(_GLOB_SPECIAL)
                    for name in self._client.scan_iter(match=glob, count=SCAN_COUNT):
                        text = name.decode() if isinstance(name, bytes) else str(name)
                        view = text[len(head) : len(text) - len(key) - 1]
                        if ":" not in view:  # the view's own tiles of this key, no other's
                            names.append(name)
                removed += int(self._client.unlink(*names)) > 0
        return removed

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    # ------------------------------------------------------------------ internals

    def _found(self, wanted: list[str], answers: list[Any]) -> dict[str, Records]:
        """Key → its document, from ``MGET marker key...``; :class:`_Unmarked` without marker."""
        marker = answers[0]
        if marker != LAYOUT:
            if marker is None:
                raise _Unmarked
            raise self._unknown_layout(marker)
        return self._documents(wanted, answers)

    def _unmarked(
        self, wanted: list[str], answers: list[Any], types: list[Any]
    ) -> dict[str, Records]:
        """A read of a store without the marker: empty (or cleared), or of the earlier layout
        (hashes: refused), or written by this version after ``clear()`` removed the marker."""
        if any(kind in (b"hash", "hash") for kind in types):
            raise FeatureError(
                f"the online store at Redis {self.address} (prefix {self.prefix!r}) has the "
                "layout of earlier taxiway versions (one hash per key), which this version "
                "does not read",
                fix="run `taxiway features materialize`: its first write migrates the keys in "
                "place (one JSON string per key), keeping every stored value",
            )
        return self._documents(wanted, answers)

    def _documents(self, wanted: list[str], answers: list[Any]) -> dict[str, Records]:
        """Key → its decoded document, from ``MGET marker key...`` (keys never written absent)."""
        try:
            return {key: decode(doc) for key, doc in zip(wanted, answers[1:], strict=True) if doc}
        except ValueError:  # orjson's and json's decode errors are ValueErrors
            raise self._foreign() from None

    def _merge(self, base: str, chunk: list[tuple[str, ViewValues]]) -> None:
        """Write ``chunk``'s views into their keys' documents, keeping the other views, in one
        optimistic transaction (merged again if another writer changed a key meanwhile)."""
        records = [
            (
                base + key,
                view.view,
                record(
                    view.values,
                    None if view.event_time is None else to_epoch(view.event_time),
                    to_epoch(view.as_of),
                ),
            )
            for key, view in chunk
        ]
        names = list(dict.fromkeys(name for name, _, _ in records))
        for _ in range(WRITE_ATTEMPTS):
            with self._client.pipeline(transaction=True) as pipe:
                try:
                    watch = cast(Callable[..., object], pipe.watch)  # untyped in redis-py
                    watch(*names)
                    stored = cast(list[bytes | None], pipe.mget(names))
                    try:
                        docs = {
                            name: decode(doc) if doc else {}
                            for name, doc in zip(names, stored, strict=True)
                        }
                    except ValueError:
                        raise self._foreign() from None
                    for name, view, data in records:
                        docs[name][view] = data
                    encoded = {
                        name: encode_views(dict(sorted(doc.items()))) for name, doc in docs.items()
                    }
                    pipe.multi()
                    pipe.mset(encoded)
                    pipe.set(self._layout_key, LAYOUT)  # again: clear() may have removed it
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue
        raise FeatureError(
            f"Redis at {self.address}: other writers changed the same keys under prefix "
            f"{self.prefix!r} {WRITE_ATTEMPTS} times while this write merged them",
            fix="run one materialization per online store at a time, then write again",
        )

    def _migrate(self) -> None:
        """Move every key of the earlier layout (a hash per key) to one JSON string per key,
        then set the marker; once per store object, before its first write."""
        marker = self._client.get(self._layout_key)
        if marker is not None and marker != LAYOUT:
            raise self._unknown_layout(marker)
        if marker is None:
            script = self._client.register_script(MIGRATE_SCRIPT)
            pattern = self._namespace.translate(_GLOB_SPECIAL) + "*"
            moved = 0
            batch: list[bytes] = []
            for name in self._client.scan_iter(match=pattern, count=SCAN_COUNT, _type="hash"):
                batch.append(name)
                if len(batch) == SCAN_COUNT:
                    moved += int(cast(int, script(keys=batch)))
                    batch = []
            if batch:
                moved += int(cast(int, script(keys=batch)))
            self._client.set(self._layout_key, LAYOUT)
            if moved:
                self.migrated_keys += moved
                logger.warning(
                    "the online store at Redis %s (prefix %r) had the layout of earlier taxiway "
                    "versions (one hash per key): migrated %d keys to one JSON string per key",
                    self.address,
                    self.prefix,
                    moved,
                )
        self._migrated = True

    def _unknown_layout(self, marker: object) -> FeatureError:
        return FeatureError(
            f"the online store at Redis {self.address} (prefix {self.prefix!r}) has a layout "
            f"this taxiway version does not know ({self._layout_key} = {marker!r})",
            fix="upgrade taxiway to the version that wrote it, or choose another "
            "online_store.prefix",
        )

    def _foreign(self) -> FeatureError:
        return FeatureError(
            f"Redis at {self.address} holds a value that is not a feature vector under prefix "
            f"{self.prefix!r}",
            fix="make sure no other program writes keys under online_store.prefix "
            f"{self.prefix!r}, or choose another prefix",
        )

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


def _views(found: dict[str, Records]) -> dict[str, list[ViewValues]]:
    """Key → its views, in name order (what :meth:`RedisStore.read` returns)."""
    moments = Moments()
    return {key: views_of(records, moments) for key, records in found.items()}
