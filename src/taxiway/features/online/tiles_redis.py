"""Time tiles in the Redis online store (``RedisStore.tiles``).

Layout: per entity key and view, two hashes whose fields are tile indexes (decimal text):
``{prefix}#tiles:{entity}:{view}:{key}`` holds each tile's state and
``{prefix}#tile-events:{entity}:{view}:{key}`` each tile's events (both JSON). Why so:

- a read of one key's windows is, per view, one ``HGETALL`` of the states and one ``HMGET``
  of the edge tiles' events, all views in ONE ``MULTI``/``EXEC`` round trip (a consistent
  snapshot: a tile's state and events are written together in one transaction too); the
  events of the tiles inside the window never cross the network;
- a view's tiles are rebuilt (``taxiway features compact``) by deleting its own keys (``SCAN``
  of the view's pattern, ``UNLINK``) without touching other views or the feature vectors;
- the keys sit beside the ``{prefix}:`` namespace, not inside it, so the feature vectors'
  layout migration (which converts hashes under ``{prefix}:``) never sees them; entity names
  cannot hold ``:`` and the key comes last, so no two keys collide.

``HGETALL`` returns tiles outside the read's window too (filtered here): tiles older than the
longest window are removed by rebuilding with a start (``compact --since``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from itertools import islice
from typing import Any, cast

import redis

from taxiway.features.online._codec import check_entity
from taxiway.features.online.base import TileRange, TileRead

__all__ = ["TILE_HASHES", "RedisTiles"]

TILE_HASHES = ("tiles", "tile-events")  # {prefix}#<this>:{entity}:{view}:{key}

WRITE_CHUNK = 1_000  # tiles per MULTI/EXEC while writing
SCAN_COUNT = 1_000
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class RedisTiles:
    """The tile table of one Redis store, on the store's client (``errors`` turns redis-py's
    exceptions into the store's :class:`~taxiway.errors.FeatureError`)."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        errors: Callable[[str], AbstractContextManager[None]],
    ) -> None:
        self._client = client
        self._states = f"{prefix}#{TILE_HASHES[0]}:"
        self._events = f"{prefix}#{TILE_HASHES[1]}:"
        self._errors = errors

    def read(
        self, entity: str, keys: Sequence[str], ranges: Sequence[TileRange]
    ) -> dict[str, dict[str, TileRead]]:
        """Key → view → (tile → state, edge tile → events), in one round trip."""
        check_entity(entity)
        wanted = list(dict.fromkeys(keys))
        with self._errors("reading tiles from"):
            pipe = self._client.pipeline(transaction=True)
            for key in wanted:
                for r in ranges:
                    pipe.hgetall(f"{self._states}{entity}:{r.view}:{key}")
                    if r.edges:  # HMGET with no field is a Redis error
                        pipe.hmget(f"{self._events}{entity}:{r.view}:{key}", list(r.edges))
            answers = pipe.execute()
        found: dict[str, dict[str, TileRead]] = {}
        at = 0
        for key in wanted:
            views: dict[str, TileRead] = {}
            for r in ranges:
                states = cast(dict[bytes, bytes], answers[at])
                events = cast(list[bytes | None], answers[at + 1]) if r.edges else []
                at += 2 if r.edges else 1
                in_range = {
                    tile: state
                    for field, state in states.items()
                    if r.first <= (tile := int(field)) <= r.last
                }
                if in_range:
                    views[r.view] = (
                        in_range,
                        {t: e for t, e in zip(r.edges, events, strict=True) if e is not None},
                    )
            if views:
                found[key] = views
        return found

    def events(
        self, entity: str, view: str, tiles: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], bytes]:
        """The stored events of each ``(key, tile)`` of ``view``."""
        check_entity(entity)
        with self._errors("reading tiles from"):
            pipe = self._client.pipeline(transaction=False)
            for key, tile in tiles:
                pipe.hget(f"{self._events}{entity}:{view}:{key}", str(tile))
            answers = cast(list[bytes | None], pipe.execute())
        return {pair: found for pair, found in zip(tiles, answers, strict=True) if found}

    def stored(
        self, entity: str, view: str, tiles: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[bytes, bytes]]:
        """The stored ``(state, events)`` of each ``(key, tile)`` of ``view``, one snapshot
        (a tile's state and events are written in one transaction, and read in one here)."""
        check_entity(entity)
        with self._errors("reading tiles from"):
            pipe = self._client.pipeline(transaction=True)
            for key, tile in tiles:
                pipe.hget(f"{self._states}{entity}:{view}:{key}", str(tile))
                pipe.hget(f"{self._events}{entity}:{view}:{key}", str(tile))
            answers = cast(list[bytes | None], pipe.execute())
        found: dict[tuple[str, int], tuple[bytes, bytes]] = {}
        for pair, state, events in zip(tiles, answers[::2], answers[1::2], strict=True):
            if state is not None and events is not None:
                found[pair] = (state, events)
        return found

    def put(self, entity: str, view: str, tiles: Iterable[tuple[str, int, bytes, bytes]]) -> int:
        """Write ``(key, tile, state, events)`` rows, each chunk one transaction."""
        check_entity(entity)
        written = 0
        iterator = iter(tiles)
        with self._errors("writing tiles to"):
            while chunk := list(islice(iterator, WRITE_CHUNK)):
                states: dict[str, dict[str, bytes]] = {}
                events: dict[str, dict[str, bytes]] = {}
                for key, tile, state, found in chunk:
                    states.setdefault(key, {})[str(tile)] = state
                    events.setdefault(key, {})[str(tile)] = found
                pipe = self._client.pipeline(transaction=True)
                for key, fields in states.items():
                    pipe.hset(f"{self._states}{entity}:{view}:{key}", mapping=cast(Any, fields))
                    pipe.hset(
                        f"{self._events}{entity}:{view}:{key}", mapping=cast(Any, events[key])
                    )
                pipe.execute()
                written += len(chunk)
        return written

    def clear(self, entity: str, view: str | None = None) -> None:
        """Delete ``view``'s tiles of ``entity`` (every view's when None)."""
        check_entity(entity)
        tail = f"{entity}:" + ("" if view is None else f"{view}:")
        with self._errors("clearing tiles of"):
            for base in (self._states, self._events):
                pattern = (base + tail).translate(_GLOB_SPECIAL) + "*"
                batch: list[bytes] = []
                for name in self._client.scan_iter(match=pattern, count=SCAN_COUNT):
                    batch.append(name)
                    if len(batch) == SCAN_COUNT:
                        self._client.unlink(*batch)
                        batch = []
                if batch:
                    self._client.unlink(*batch)
