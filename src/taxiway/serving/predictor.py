"""One prediction within the latency budget: look up, score, or fall back, and say which.

Each request has a deadline (``serving.latency_budget_ms`` from its arrival). A network
online store (Redis) is read on the event loop and abandoned at the deadline (a store with no
asynchronous read goes to a worker thread instead; a local SQLite read, tens of microseconds,
runs in place); a store or model that fails,
overruns or sits behind an open circuit breaker hands over to the fallback chain. Every answer
says ``degraded`` and its ``path`` (``model`` or ``fallback:<which>``), and why.

An answer also rests on its features. Each online feature of the input contract (every input
the model takes from a view) has a lookup status; when one is ``missing`` (an unknown entity,
a view never materialized for the key) or ``stale`` (older than its view's ttl), the answer is
``degraded`` and its ``reason`` names them. ``serving.missing_features`` decides who answers
it: ``score`` the model, ``fallback`` the fallback chain; by default the fallback when every
online feature is missing (the model would score a row of nothing but nulls) and the model
when only some are (it was trained with nulls in those columns). A value that is present but
null (a customer without orders in a window) is not missing.

A rollout's control arm may stand for "the previous system" (``policy``): the baseline
trained with the version, or a constant. Such a predictor looks up and answers like the
model (``path`` ``model``: its own policy answered) with ``model_version`` None.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from taxiway.features.lookup import lookup
from taxiway.features.online.base import AsyncReader, OnlineStore, ViewValues
from taxiway.features.online.sqlite import SqliteStore
from taxiway.models.artifact import LoadedModel, load_model
from taxiway.models.explain import Explainer, load_model_explainer
from taxiway.models.registry import ModelVersion
from taxiway.serving.breaker import CircuitBreaker
from taxiway.serving.fallback import Step, parse_chain
from taxiway.serving.inputs import InputContract, Parsed
from taxiway.spec.models import Serving, TaxiwaySpec

__all__ = ["Answer", "Policy", "Predictor", "RequestIds"]

BUDGET_SPENT = "the latency budget was spent before the explanation was ready"
"""Why an explanation asked for is null when explaining would overrun the deadline."""

OPT_OUT = "opt_out"
"""The ``path`` (and, in the service, the ``arm``) of an opted-out unit's answer."""

Policy = Literal["model", "baseline"] | float
"""What scores a predictor's answers: the version's model, the baseline trained with it, or a
constant (a rollout's control arm standing for "the previous system")."""


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
    model_version: int | None  # None: a rollout's baseline or constant control answered
    arm: str
    degraded: bool
    path: str
    latency_ms: float
    reason: str | None = None
    out_of_range: list[str] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)
    lookup_ms: float | None = None
    unavailable: list[tuple[str, str]] = field(default_factory=list)  # (feature, status)
    explanation: dict[str, Any] | None = None  # asked for and given (models/explain.py)
    unexplained: str | None = None  # asked for and not given: why

    @property
    def explained(self) -> bool:
        """Whether the answer carries an explanation (what the log records)."""
        return self.explanation is not None

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
        if self.explanation is not None or self.unexplained is not None:
            out["explanation"] = self.explanation
            if self.unexplained is not None:
                out["explanation_unavailable"] = self.unexplained
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
        arm: str | None = None,
        policy: Policy = "model",
        model: LoadedModel | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.spec = spec
        # the time a lookup judges at: the service's clock (what its log records as ``ts``),
        # so a tiled window is computed at the logged time (a simulation passes its own)
        self.clock: Callable[[], datetime] = clock or _utc_now
        self.version = version
        self.model = model or load_model(version.artifact_dir)
        # a baseline or constant policy still looks up (its inputs are logged like the model's)
        # and answers as `model` (its own policy, not the fallback chain), with no version
        self.policy = policy
        self.model_version: int | None = version.version if policy == "model" else None
        self._score_one = _scorer(self.model, policy)
        # only the model's own answers are explained; a baseline or constant is not a model
        self.explainer: Explainer | None = None
        self._unexplainable = "the answering policy is not a model"
        if policy == "model":
            self.explainer, self._unexplainable = _explainer(self.model)
        # one explanation at a time: a millisecond of TreeSHAP per thread would otherwise take
        # the cores from the event loop, and every answer, explained or not, would be late
        self._explaining = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain")
        self.contract = InputContract.build(spec, self.model, version.profile)
        self.store = store
        self.previous = previous
        # the arm answers are labelled with: the version's stage (a rollout names its arms)
        self.arm: str = arm or version.stage
        serving = spec.serving or Serving()
        self.serving = serving
        self.budget_s = serving.latency_budget_ms / 1000
        self.chain: list[Step] = parse_chain(serving.fallback)
        self.missing_features = serving.missing_features
        reset = serving.breaker.reset_after.total_seconds()
        self.store_breaker = CircuitBreaker(
            "online_store", failures=serving.breaker.failures, reset_after_s=reset
        )
        self.model_breaker = CircuitBreaker(
            "model", failures=serving.breaker.failures, reset_after_s=reset
        )
        self.executor = executor or ThreadPoolExecutor(max_workers=8, thread_name_prefix="lookup")
        self.fallbacks: dict[str, int] = {}
        # microsecond forms (and a baseline or constant policy) score in the loop
        self._inline = policy != "model" or self.model.serving_kind != "pilot"
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
            if self.explainer is not None:
                self.explainer.explain({})
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

    async def answer(
        self, parsed: Parsed, started: float, arm: str | None = None, *, opted_out: bool = False
    ) -> Answer:
        """The prediction for one validated request item, within the deadline, labelled with
        ``arm`` (default: this predictor's). An ``opted_out`` unit is never scored by the
        model: it gets the control answer (:meth:`control_one`), ``path`` ``opt_out``."""
        deadline = started + self.budget_s
        values: dict[str, Any] = dict(parsed.values)
        reason: str | None = None
        store_ok = True
        lookup_ms = None
        unavailable: list[tuple[str, str]] = []
        if self.contract.entities:
            if not self.store_breaker.allow():
                store_ok, reason = False, "online store circuit breaker open"
            else:
                began = time.perf_counter()
                try:
                    if self._store_inline:
                        found, unavailable = self._lookup(parsed.keys)
                    elif self._store_async:
                        found, unavailable = await asyncio.wait_for(
                            self._lookup_async(parsed.keys),
                            timeout=max(0.0, (deadline - began) * 0.8),
                        )
                    else:
                        found, unavailable = await asyncio.wait_for(
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
        short = None
        if unavailable:
            short, nothing_known = self._short_of_features(parsed, unavailable)
            policy = self.missing_features
            if policy == "fallback" or (policy is None and nothing_known):
                reason = short
        if opted_out:
            answer = self._answer(
                parsed,
                started,
                self.control_one(values),
                OPT_OUT,
                None,
                values,
                lookup_ms,
                unavailable,
                arm,
            )
            answer.model_version, answer.degraded = None, False
            if parsed.explain:
                answer.unexplained = "the unit opted out: the model did not score it"
            return answer
        if reason is not None:
            pass  # the store failed, or the features are short and the fallback answers
        elif parsed.out_of_range and self.serving.out_of_range == "fallback":
            reason = f"out of the training range: {', '.join(parsed.out_of_range)}"
        else:
            score, reason = await self._score(values, deadline)
            if score is not None:
                explained = await self._explain(values, deadline) if parsed.explain else None
                answer = self._answer(
                    parsed, started, score, "model", short, values, lookup_ms, unavailable, arm
                )
                if explained is not None:
                    answer.explanation, answer.unexplained = explained
                return answer
            if short is not None:
                reason = f"{reason}; {short}"
        # the previous version needs the inputs at hand: a store that answered, nothing short
        score, path = self._fallback(values, store_ok and not unavailable)
        answer = self._answer(
            parsed, started, score, path, reason, values, lookup_ms, unavailable, arm
        )
        if parsed.explain:
            answer.unexplained = "the model did not answer (a fallback did): nothing to explain"
        return answer

    async def _explain(
        self, values: dict[str, Any], deadline: float
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The explanation of the model's answer for ``values``, or None and why not: no
        explainer, the budget spent (the answer goes out unexplained rather than late), or the
        explainer failing.

        TreeSHAP costs about a millisecond a row, hundreds of times a serving form's score: it
        runs in the predictor's one explaining thread (the libraries release the GIL), so the
        event loop keeps answering other requests; an explanation still queued or running at
        the deadline is given up, like a slow model.
        """
        explainer = self.explainer
        if explainer is None:
            return None, self._unexplainable
        left = deadline - time.perf_counter()
        if left <= 0:
            return None, BUDGET_SPENT
        try:
            explanation = await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(
                    self._explaining, explainer.explain, values
                ),
                timeout=left,
            )
        except TimeoutError:
            return None, BUDGET_SPENT
        except Exception as error:
            return None, f"the explainer failed: {type(error).__name__}"
        return explanation.body(), None

    def control_one(self, values: dict[str, Any]) -> float:
        """The control answer, for a unit the model must not score: this predictor's policy
        when it is not the model (a rollout's baseline or constant control), else the
        baseline trained with the version (its prior if the baseline fails)."""
        try:
            score = (
                self._score_one(values)
                if self.policy != "model"
                else self.model.baseline_one(values)
            )
        except Exception:
            score = math.nan
        return score if math.isfinite(score) else self.model.baseline.prior

    def _short_of_features(
        self, parsed: Parsed, unavailable: list[tuple[str, str]]
    ) -> tuple[str, bool]:
        """The ``reason`` naming the unavailable online features, and whether every online
        feature is missing (nothing at all is known of the request's entities)."""
        if len(unavailable) == len(self.contract.online) and all(
            status == "missing" for _, status in unavailable
        ):
            keys = ", ".join(f"{entity} {key}" for entity, key in parsed.keys.items())
            return f"every online feature is missing (no stored features for {keys})", True
        missing = [name for name, status in unavailable if status == "missing"]
        stale = [name for name, status in unavailable if status != "missing"]
        parts = []
        if missing:
            parts.append(f"missing: {', '.join(missing)}")
        if stale:
            parts.append(f"stale: {', '.join(stale)}")
        return f"online features {'; '.join(parts)}", False

    async def _score(
        self, values: dict[str, Any], deadline: float
    ) -> tuple[float | None, str | None]:
        if not self.model_breaker.allow():
            return None, "model circuit breaker open"
        try:
            if self._inline:
                score = self._score_one(values)
            else:
                score = await asyncio.wait_for(
                    asyncio.get_running_loop().run_in_executor(
                        self.executor, self._score_one, values
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
            except Exception:  # a failing fallback hands over to the next one  # nosec B112
                continue
            if math.isfinite(score):
                return self._count(f"fallback:{step.label}", score)
        return self._count("fallback:prior", self.model.baseline.prior)

    def _count(self, path: str, score: float) -> tuple[float, str]:
        self.fallbacks[path] = self.fallbacks.get(path, 0) + 1
        return score, path

    def _lookup(
        self, keys: dict[str, str], store: OnlineStore | None = None
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Each entity's feature values (null unless present), and the online features that
        are not present with their status: one pass over the lookup's result."""
        online = self.contract.online
        now = self.clock()
        values: dict[str, Any] = {}
        unavailable: list[tuple[str, str]] = []
        for entity, key in keys.items():
            features = lookup(self.spec, store or self.store, entity, (key,), now=now)[0].features
            for name, (value, status, _) in features.items():
                values[name] = value
                if status != "present" and name in online:
                    unavailable.append((name, status))
        return values, unavailable

    async def _lookup_async(
        self, keys: dict[str, str]
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        store = self.store
        assert isinstance(store, AsyncReader)  # nosec B101
        values: dict[str, Any] = {}
        unavailable: list[tuple[str, str]] = []
        for entity, key in keys.items():
            made = _ReadMade(await store.aread(entity, [key]), getattr(store, "tiles", None))
            read = cast(OnlineStore, made)
            found, short = self._lookup({entity: key}, read)
            values.update(found)
            unavailable += short
        return values, unavailable

    def _answer(
        self,
        parsed: Parsed,
        started: float,
        score: float,
        path: str,
        reason: str | None,
        values: dict[str, Any],
        lookup_ms: float | None,
        unavailable: list[tuple[str, str]],
        arm: str | None,
    ) -> Answer:
        return Answer(
            request_id=self._ids.next(),
            prediction=float(score),
            model_version=self.model_version,
            arm=arm or self.arm,
            degraded=path != "model" or bool(unavailable),
            path=path,
            latency_ms=(time.perf_counter() - started) * 1000,
            reason=reason,
            out_of_range=parsed.out_of_range,
            features=values,
            lookup_ms=lookup_ms,
            unavailable=unavailable,
        )

    def close(self) -> None:
        """Release the thread pool (the store belongs to the caller)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._explaining.shutdown(wait=False, cancel_futures=True)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _explainer(model: LoadedModel) -> tuple[Explainer | None, str]:
    """The model's explainer, or None and why it has none."""
    kind = model.serving_kind
    why = f"this model ({model.card.algorithm}, served as {kind}) has no exact contributions"
    try:
        return load_model_explainer(model.folder), why
    except Exception as error:  # an unreadable explainer must not stop the model serving
        return None, f"the explainer cannot be loaded: {type(error).__name__}"


def _scorer(model: LoadedModel, policy: Policy) -> Callable[[dict[str, Any]], float]:
    """The function scoring one row under ``policy``."""
    if policy == "model":
        return model.predict_one
    if policy == "baseline":
        return model.baseline_one
    constant = float(policy)
    return lambda _values: constant


class _ReadMade:
    """A store read already made on the event loop, handed to the (synchronous) ``lookup``
    as the store it reads: the judging of status and age stays in one place."""

    __slots__ = ("_found", "tiles")

    def __init__(self, found: dict[str, list[ViewValues]], tiles: object = None) -> None:
        self._found = found
        # tiled views (``tiles:``) are read from the store's tile table at lookup time (one
        # more round trip, made only when the entity has a tiled view): None without tiles
        self.tiles = tiles

    def read(self, entity: str, keys: Sequence[str]) -> dict[str, list[ViewValues]]:
        """The read's answer (it was made for these keys)."""
        return self._found
