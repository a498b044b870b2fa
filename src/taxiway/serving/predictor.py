"""One prediction within the latency budget: look up, score, or fall back, and say which.

Each request has a deadline (``serving.latency_budget_ms`` from its arrival). A network
online store (Redis) is read on the event loop and abandoned at the deadline (a store with no
asynchronous read goes to a worker thread instead; a local SQLite read, tens of microseconds,
runs in place); a store or model that fails,
overruns or sits behind an open circuit breaker hands over to the fallback chain. Every answer
says ``degraded`` and its ``path`` (``model`` or ``fallback:<which>``), and why.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taxiway.features.lookup import lookup, lookup_values, values_of
from taxiway.features.online.base import AsyncReader, OnlineStore
from taxiway.features.online.sqlite import SqliteStore
from taxiway.models.artifact import LoadedModel, load_model
from taxiway.models.registry import ModelVersion
from taxiway.serving.breaker import CircuitBreaker
from taxiway.serving.fallback import Step, parse_chain
from taxiway.serving.inputs import InputContract, Parsed
from taxiway.spec.models import Serving, TaxiwaySpec

__all__ = ["Answer", "Predictor", "RequestIds"]


class RequestIds:
    """Unpredictable request ids (32 hex characters, 128 random bits) from batched entropy.

    One ``os.urandom`` call serves ``batch`` ids instead of one system call per request as
    ``uuid.uuid4()`` makes. Not thread-safe: one per event loop.

    >>> ids = RequestIds(batch=2)
    >>> a, b, c = ids.next(), ids.next(), ids.next()
    >>> len({a, b, c}), len(a), int(a, 16) >= 0
    (3, 32, True)
    """

    __slots__ = ("_at", "_batch", "_hex")

    def __init__(self, batch: int = 256) -> None:
        self._batch = batch
        self._hex = ""
        self._at = 0

    def next(self) -> str:
        """A fresh id."""
        at = self._at
        if at >= len(self._hex):
            self._hex = os.urandom(16 * self._batch).hex()
            at = 0
        self._at = at + 32
        return self._hex[at : at + 32]


@dataclass
class Answer:
    """What the service answers for one request item, and what it logs."""

    request_id: str
    prediction: float
    model_version: int
    arm: str
    degraded: bool
    path: str
    latency_ms: float
    reason: str | None = None
    out_of_range: list[str] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)
    lookup_ms: float | None = None

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "prediction": self.prediction,
            "model_version": self.model_version,
            "arm": self.arm,
            "degraded": self.degraded,
            "path": self.path,
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.reason:
            out["reason"] = self.reason
        if self.out_of_range:
            out["out_of_range"] = self.out_of_range
        return out


class Predictor:
    """A loaded model version with its store, breakers and fallback chain."""

    def __init__(
        self,
        spec: TaxiwaySpec,
        version: ModelVersion,
        store: OnlineStore,
        *,
        previous: LoadedModel | None = None,
        executor: ThreadPoolExecutor | None = None,
        arm: str = "production",
    ) -> None:
        self.spec = spec
        self.version = version
        self.model = load_model(version.artifact_dir)
        self.contract = InputContract.build(spec, self.model, version.profile)
        self.store = store
        self.previous = previous
        self.arm = arm
        serving = spec.serving or Serving()
        self.serving = serving
        self.budget_s = serving.latency_budget_ms / 1000
        self.chain: list[Step] = parse_chain(serving.fallback)
        reset = serving.breaker.reset_after.total_seconds()
        self.store_breaker = CircuitBreaker(
            "online_store", failures=serving.breaker.failures, reset_after_s=reset
        )
        self.model_breaker = CircuitBreaker(
            "model", failures=serving.breaker.failures, reset_after_s=reset
        )
        self.executor = executor or ThreadPoolExecutor(max_workers=8, thread_name_prefix="lookup")
        self.fallbacks: dict[str, int] = {}
        self._inline = self.model.serving_kind != "pilot"  # microsecond forms score in the loop
        # a local SQLite read takes tens of microseconds and cannot hang on a network: a thread
        # hop would cost more than the read; network stores get a thread and the deadline
        self._store_inline = isinstance(store, SqliteStore)
        # a store that reads on the event loop (redis) is awaited there: no thread hop
        self._store_async = isinstance(store, AsyncReader)
        self._ids = RequestIds()

    def warm_up(self, rounds: int = 50) -> None:
        """Score and look up a few times so the first request pays no first-call costs."""
        for _ in range(rounds):
            self.model.predict_one({})
            self.model.baseline_one({})
        for entity in self.contract.entities:
            try:
                lookup(self.spec, self.store, entity, ["__warm_up__"])
            except Exception:  # a store that is down at start: readiness says so separately
                break

    def store_ready(self) -> bool:
        """Whether the online store answers (readiness)."""
        try:
            for entity in self.contract.entities:
                lookup(self.spec, self.store, entity, ["__ready__"])
        except Exception:
            return False
        return True

    async def answer(self, parsed: Parsed, started: float) -> Answer:
        """The prediction for one validated request item, within the deadline."""
        deadline = started + self.budget_s
        values: dict[str, Any] = dict(parsed.values)
        reason: str | None = None
        store_ok = True
        lookup_ms = None
        if self.contract.entities:
            if not self.store_breaker.allow():
                store_ok, reason = False, "online store circuit breaker open"
            else:
                began = time.perf_counter()
                try:
                    if self._store_inline:
                        found = self._lookup(parsed.keys)
                    elif self._store_async:
                        found = await asyncio.wait_for(
                            self._lookup_async(parsed.keys),
                            timeout=max(0.0, (deadline - began) * 0.8),
                        )
                    else:
                        found = await asyncio.wait_for(
                            asyncio.get_running_loop().run_in_executor(
                                self.executor, self._lookup, parsed.keys
                            ),
                            timeout=max(0.0, (deadline - began) * 0.8),
                        )
                except TimeoutError:
                    self.store_breaker.failure()
                    store_ok, reason = False, "online store timed out"
                except Exception as error:
                    self.store_breaker.failure()
                    store_ok, reason = False, f"online store failed: {type(error).__name__}"
                else:
                    self.store_breaker.success()
                    values.update(found)
                lookup_ms = (time.perf_counter() - began) * 1000
        if store_ok and parsed.out_of_range and self.serving.out_of_range == "fallback":
            reason = f"out of the training range: {', '.join(parsed.out_of_range)}"
        elif store_ok:
            score, reason = await self._score(self.model, values, deadline)
            if score is not None:
                return self._answer(parsed, started, score, "model", None, values, lookup_ms)
        score, path = self._fallback(values, store_ok)
        return self._answer(parsed, started, score, path, reason, values, lookup_ms)

    async def _score(
        self, model: LoadedModel, values: dict[str, Any], deadline: float
    ) -> tuple[float | None, str | None]:
        if not self.model_breaker.allow():
            return None, "model circuit breaker open"
        try:
            if self._inline:
                score = model.predict_one(values)
            else:
                score = await asyncio.wait_for(
                    asyncio.get_running_loop().run_in_executor(
                        self.executor, model.predict_one, values
                    ),
                    timeout=max(0.0, deadline - time.perf_counter()),
                )
        except TimeoutError:
            self.model_breaker.failure()
            return None, "model overran the latency budget"
        except Exception as error:
            self.model_breaker.failure()
            return None, f"model failed: {type(error).__name__}"
        if not math.isfinite(score):
            self.model_breaker.failure()
            return None, "model returned a non-finite score"
        self.model_breaker.success()
        return score, None

    def _fallback(self, values: dict[str, Any], store_ok: bool) -> tuple[float, str]:
        for step in self.chain:
            try:
                if step.kind == "previous" and self.previous is not None and store_ok:
                    score = self.previous.predict_one(values)
                elif step.kind == "baseline":
                    score = self.model.baseline_one(values)
                elif step.kind == "constant" and step.value is not None:
                    score = step.value
                else:
                    continue
            except Exception:  # a failing fallback hands over to the next one
                continue
            if math.isfinite(score):
                return self._count(f"fallback:{step.label}", score)
        return self._count("fallback:prior", self.model.baseline.prior)

    def _count(self, path: str, score: float) -> tuple[float, str]:
        self.fallbacks[path] = self.fallbacks.get(path, 0) + 1
        return score, path

    def _lookup(self, keys: dict[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        now = datetime.now(UTC)
        for entity, key in keys.items():
            values.update(lookup_values(self.spec, self.store, entity, key, now=now))
        return values

    async def _lookup_async(self, keys: dict[str, str]) -> dict[str, Any]:
        store = self.store
        assert isinstance(store, AsyncReader)
        values: dict[str, Any] = {}
        now = datetime.now(UTC)
        for entity, key in keys.items():
            stored = (await store.aread(entity, [key])).get(key)
            values.update(values_of(self.spec, entity, stored, now=now))
        return values

    def _answer(
        self,
        parsed: Parsed,
        started: float,
        score: float,
        path: str,
        reason: str | None,
        values: dict[str, Any],
        lookup_ms: float | None,
    ) -> Answer:
        return Answer(
            request_id=self._ids.next(),
            prediction=float(score),
            model_version=self.version.version,
            arm=self.arm,
            degraded=path != "model",
            path=path,
            latency_ms=(time.perf_counter() - started) * 1000,
            reason=reason,
            out_of_range=parsed.out_of_range,
            features=values,
            lookup_ms=lookup_ms,
        )

    def close(self) -> None:
        """Release the thread pool (the store belongs to the caller)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
