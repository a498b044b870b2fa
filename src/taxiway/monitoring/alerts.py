"""Alerts: what the monitor raises, when a status may change, and where alerts go.

An :class:`Alert` is one condition firing now, named by a stable ``key`` (``drift:price``,
``slo:latency``): the same condition on the next run has the same key.

:func:`hysteresis` decides a status from a history of per-window verdicts: over the threshold
in ``k`` of the last ``m`` windows (with fewer windows than ``m``, in ``k`` of those there are,
or all of them when fewer than ``k``), so one noisy window neither raises nor clears it.

:class:`AlertSinks` delivers what the monitor finds to the Python log (logger
``taxiway.monitoring``) and, when given one, to a webhook URL (an HTTP POST of JSON, see
:mod:`taxiway.monitoring.webhook`). Each call of :meth:`AlertSinks.send` takes every alert
firing now, and notifies:

- an alert not notified before (or resolved since): once, ``firing``;
- an alert notified less than ``repeat`` ago (default 1 h): not again (deduplicated), unless
  its severity rose above what was sent (``info`` < ``ticket`` < ``page``);
- an alert notified before and absent now: once, ``resolved``.

At most ``per_minute`` webhook deliveries succeed per minute; the rest are counted, and the
next delivery carries their number and keys (``suppressed``). An alert the webhook did not
take (rate-limited, or failed) is not recorded as notified, so the next run tries it again.
The state (what was notified when) lives in a JSON file, rewritten atomically under a lock, so
two runs of ``taxiway monitor``, or two instances sharing the file, never page twice.
Delivery failures are returned (:class:`Delivery`) and logged, never raised.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from taxiway.errors import MonitoringError
from taxiway.monitoring.webhook import PostResult, check_url, post_json, redact

__all__ = [
    "SEVERITY_RANK",
    "Alert",
    "AlertKind",
    "AlertSinks",
    "Delivery",
    "Severity",
    "hysteresis",
]

logger = logging.getLogger("taxiway.monitoring")

AlertKind = Literal["drift", "quality", "slo", "contract", "latency", "fallback"]
"""What fired: input or served-mix ``drift``, realised or estimated ``quality``, an ``slo``
burning, a ``contract`` breach, ``latency`` over budget, or a recommender's ``fallback``
answers (the model not answering users it could have: errors, overruns, an open breaker)."""
Severity = Literal["page", "ticket", "info"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "ticket": 1, "page": 2}
"""Severities in rising order: a rise re-notifies a deduplicated alert."""

_LOG_LEVEL = {"page": logging.ERROR, "ticket": logging.WARNING, "info": logging.INFO}
_STATE_FORMAT = 1
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Alert:
    """One condition firing now.

    ``key`` is stable across runs (dedup and resolution go by it); ``value`` and ``threshold``
    are the measured figure and the line it crossed; ``since`` is when the condition began (or
    was first seen); ``where`` says where to look (a source, a feature view, a route).

    >>> alert = Alert("drift:price", "drift", "ticket", "price drifted", "psi 0.31 > 0.12",
    ...               0.31, 0.12, datetime(2026, 12, 6, 5, 0, tzinfo=UTC), "source orders")
    >>> alert.to_dict()["since"]
    '2026-12-06T05:00:00+00:00'
    >>> Alert.from_dict(alert.to_dict()) == alert
    True
    """

    key: str
    kind: AlertKind
    severity: Severity
    title: str
    detail: str
    value: float | None
    threshold: float | None
    since: datetime
    where: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise MonitoringError(
                f"alert {self.key}: unknown severity {self.severity!r}",
                fix="use page, ticket or info",
            )

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON-able data (``since`` in ISO 8601)."""
        data = asdict(self)
        data["since"] = self.since.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """The alert :meth:`to_dict` wrote."""
        return cls(
            key=str(data["key"]),
            kind=cast(AlertKind, data["kind"]),
            severity=cast(Severity, data["severity"]),
            title=str(data["title"]),
            detail=str(data["detail"]),
            value=None if data.get("value") is None else float(data["value"]),
            threshold=None if data.get("threshold") is None else float(data["threshold"]),
            since=datetime.fromisoformat(str(data["since"])),
            where=None if data.get("where") is None else str(data["where"]),
        )

    @property
    def text(self) -> str:
        """One line for a person: severity, title, detail.

        >>> Alert("slo:latency", "slo", "page", "latency SLO burning", "1h at 16x", 16.0, 14.4,
        ...       datetime(2026, 12, 6, tzinfo=UTC)).text
        '[page] latency SLO burning: 1h at 16x'
        """
        return f"[{self.severity}] {self.title}: {self.detail}"


def hysteresis(history: Sequence[bool], k: int, m: int) -> bool:
    """Whether ``k`` of the last ``m`` verdicts are true (oldest first); with fewer than ``m``
    verdicts, ``k`` of those there are, or all of them when there are fewer than ``k``.

    >>> hysteresis([False, True, True], k=2, m=3)
    True
    >>> hysteresis([True, False, False, True], k=2, m=3)
    False
    >>> hysteresis([True], k=2, m=3)     # a single window is judged alone
    True
    >>> hysteresis([], k=2, m=3)
    False
    """
    if not 1 <= k <= m:
        raise MonitoringError(
            f"hysteresis needs 1 <= k <= m, not k={k}, m={m}",
            fix="set monitoring.hysteresis to e.g. {k: 2, m: 3}",
        )
    last = list(history)[-m:]
    if not last:
        return False
    return sum(bool(v) for v in last) >= min(k, len(last))


DeliveryOutcome = Literal["sent", "deduplicated", "rate_limited", "failed"]


@dataclass(frozen=True)
class Delivery:
    """What :meth:`AlertSinks.send` did with one alert event.

    ``outcome`` is ``sent`` (logged, and taken by the webhook when there is one),
    ``deduplicated`` (notified less than ``repeat`` ago, at this severity or above),
    ``rate_limited`` (logged; the webhook's per-minute limit was reached: counted, tried again
    next run) or ``failed`` (logged; the webhook did not take it: ``error`` says why, the URL
    redacted; tried again next run).
    """

    key: str
    event: Literal["firing", "resolved"]
    outcome: DeliveryOutcome
    severity: Severity
    attempts: int = 0
    status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The delivery as JSON-able data."""
        return asdict(self)


@dataclass
class _State:
    """What was notified: per key its scope, the severity sent, when, and the alert."""

    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[datetime] = field(default_factory=list)  # successful webhook deliveries
    suppressed: dict[str, Any] | None = None  # {"count", "keys", "since"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _State:
        return cls(
            alerts=dict(data.get("alerts", {})),
            sent=[datetime.fromisoformat(t) for t in data.get("sent", [])],
            suppressed=data.get("suppressed"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _STATE_FORMAT,
            "alerts": self.alerts,
            "sent": [t.isoformat() for t in self.sent],
            "suppressed": self.suppressed,
        }


class AlertSinks:
    """The log, and optionally a webhook, with dedup and rate limit kept in ``state_path``.

    ``state_path`` (``<state>/monitor/alerts.json``) may be None: the state then lives only
    as long as this object. ``webhook`` is an http(s) URL (it may hold a token: it is only
    ever shown redacted). ``per_minute`` bounds webhook deliveries per minute; ``tries``,
    ``backoff_s`` and ``timeout_s`` shape each delivery (:func:`~taxiway.monitoring.webhook.post_json`).

    >>> sinks = AlertSinks(None)
    >>> alert = Alert("slo:latency", "slo", "page", "latency SLO burning", "1h at 16x",
    ...               16.0, 14.4, datetime(2026, 12, 6, 5, tzinfo=UTC))
    >>> now = datetime(2026, 12, 6, 5, 30, tzinfo=UTC)
    >>> [d.outcome for d in sinks.send([alert], now=now)]
    ['sent']
    >>> [d.outcome for d in sinks.send([alert], now=now + timedelta(minutes=10))]
    ['deduplicated']
    >>> [(d.event, d.outcome) for d in sinks.send([], now=now + timedelta(minutes=20))]
    [('resolved', 'sent')]
    """

    def __init__(
        self,
        state_path: Path | None,
        *,
        webhook: str | None = None,
        repeat: timedelta = timedelta(hours=1),
        per_minute: int = 10,
        tries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1:
            raise MonitoringError(
                f"the webhook rate limit must allow at least 1 alert a minute, not {per_minute}",
                fix="pass per_minute >= 1",
            )
        self.state_path = state_path
        self.webhook = check_url(webhook) if webhook is not None else None
        self.repeat = repeat
        self.per_minute = per_minute
        self.tries = tries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self._memory = _State()

    def __repr__(self) -> str:
        shown = redact(self.webhook) if self.webhook else None
        return f"AlertSinks(state_path={self.state_path!r}, webhook={shown!r})"

    def send(
        self, alerts: Sequence[Alert], *, now: datetime | None = None, scope: str = ""
    ) -> list[Delivery]:
        """Notify the alerts firing now (every one of them: an alert notified before under the
        same ``scope`` and absent now is resolved). ``scope`` separates callers sharing one
        state file (e.g. one per model), so one's run never resolves another's alerts."""
        now = now or datetime.now(UTC)
        with self._locked():
            state = self._load()
            deliveries = self._send(state, alerts, now, scope)
            self._save(state)
        return deliveries

    # -- the decisions ------------------------------------------------------------------

    def _send(
        self, state: _State, alerts: Sequence[Alert], now: datetime, scope: str
    ) -> list[Delivery]:
        current: dict[str, Alert] = {}
        for alert in alerts:
            held = current.get(alert.key)
            if held is None or SEVERITY_RANK[alert.severity] > SEVERITY_RANK[held.severity]:
                current[alert.key] = alert
        deliveries: list[Delivery] = []
        events: list[tuple[Literal["firing", "resolved"], Alert]] = []
        for alert in sorted(current.values(), key=lambda a: (-SEVERITY_RANK[a.severity], a.key)):
            prior = state.alerts.get(alert.key)
            if prior is None or self._due(prior, alert, now):
                events.append(("firing", alert))
            else:
                prior["scope"] = scope  # whoever reports it now resolves it (a new version)
                logger.debug("alert %s: already notified, not repeated", alert.key)
                deliveries.append(Delivery(alert.key, "firing", "deduplicated", alert.severity))
        for key, prior in sorted(state.alerts.items()):
            if prior.get("scope", "") == scope and key not in current:
                events.append(("resolved", Alert.from_dict(prior["alert"])))
        state.sent = [t for t in state.sent if now - t < _MINUTE]
        unreachable: PostResult | None = None
        for event, alert in events:
            _log(event, alert)
            if self.webhook is None:
                outcome = Delivery(alert.key, event, "sent", alert.severity)
            elif len(state.sent) >= self.per_minute:
                outcome = Delivery(alert.key, event, "rate_limited", alert.severity)
                _suppress(state, alert.key, now)
            elif unreachable is not None:
                outcome = Delivery(
                    alert.key, event, "failed", alert.severity, error=unreachable.error
                )
            else:
                outcome = self._deliver(state, event, alert, now)
                if outcome.outcome == "failed" and outcome.status is None:
                    # unreachable: the other alerts of this run would wait through the same
                    # retries for the same answer
                    unreachable = PostResult(ok=False, attempts=0, error=outcome.error)
            deliveries.append(outcome)
            if outcome.outcome == "sent":
                _record(state, event, alert, now, scope)
        self._report_suppressed(deliveries)
        return deliveries

    def _due(self, prior: dict[str, Any], alert: Alert, now: datetime) -> bool:
        sent_rank = SEVERITY_RANK.get(str(prior.get("severity")), 0)
        if SEVERITY_RANK[alert.severity] > sent_rank:
            return True
        return now - datetime.fromisoformat(str(prior["last_sent"])) >= self.repeat

    def _deliver(
        self, state: _State, event: Literal["firing", "resolved"], alert: Alert, now: datetime
    ) -> Delivery:
        assert self.webhook is not None  # nosec B101
        payload: dict[str, Any] = {
            "source": "taxiway",
            "status": event,
            "text": ("[resolved] " if event == "resolved" else "") + alert.text,
            "alert": alert.to_dict(),
            "sent_at": now.isoformat(),
        }
        if state.suppressed:
            held = state.suppressed
            payload["suppressed"] = {**held, "keys": held["keys"][:50]}
        result = post_json(
            self.webhook,
            payload,
            tries=self.tries,
            backoff_s=self.backoff_s,
            timeout_s=self.timeout_s,
            sleep=self.sleep,
        )
        if result.ok:
            state.sent.append(now)
            state.suppressed = None
            return Delivery(
                alert.key, event, "sent", alert.severity, result.attempts, result.status
            )
        logger.warning(
            "alert %s (%s) not delivered to the webhook after %d tr%s: %s",
            alert.key,
            event,
            result.attempts,
            "y" if result.attempts == 1 else "ies",
            result.error,
        )
        return Delivery(
            alert.key, event, "failed", alert.severity, result.attempts, result.status, result.error
        )

    @staticmethod
    def _report_suppressed(deliveries: list[Delivery]) -> None:
        limited = [d.key for d in deliveries if d.outcome == "rate_limited"]
        if limited:
            logger.warning(
                "webhook rate limit reached: %d alert(s) not sent this minute (%s); the next "
                "delivery carries their count",
                len(limited),
                ", ".join(limited[:10]) + (", ..." if len(limited) > 10 else ""),
            )

    # -- the state file -----------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.state_path is None:
            yield
            return
        lock_path = self.state_path.with_name(self.state_path.name + ".lock")
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(lock_path, "a")  # noqa: SIM115 (closed below)
        except OSError as error:
            raise MonitoringError(
                f"the alert state {self.state_path} cannot be kept: {error}",
                fix="make <state>/monitor writable by the user running the monitor",
            ) from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> _State:
        if self.state_path is None:
            return self._memory
        try:
            data = json.loads(self.state_path.read_text())
            if not isinstance(data, dict) or data.get("format") != _STATE_FORMAT:
                raise ValueError(f"format {data.get('format') if isinstance(data, dict) else '?'}")
            return _State.from_dict(data)
        except FileNotFoundError:
            return _State()
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            logger.warning(
                "the alert state %s is unreadable (%s): starting afresh (alerts firing now "
                "are notified again)",
                self.state_path,
                error,
            )
            return _State()

    def _save(self, state: _State) -> None:
        if self.state_path is None:
            self._memory = state
            return
        path = self.state_path
        try:
            fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(state.to_dict(), out, indent=1, sort_keys=True)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
                raise
        except OSError as error:
            logger.warning(
                "the alert state %s cannot be written (%s): the next run may notify these "
                "alerts again",
                path,
                error,
            )


def _log(event: Literal["firing", "resolved"], alert: Alert) -> None:
    level = logging.INFO if event == "resolved" else _LOG_LEVEL[alert.severity]
    logger.log(
        level,
        "alert %s %s: %s",
        alert.key,
        event,
        alert.text,
        extra={"alert": alert.to_dict(), "event": event},
    )


def _record(
    state: _State, event: Literal["firing", "resolved"], alert: Alert, now: datetime, scope: str
) -> None:
    if event == "resolved":
        state.alerts.pop(alert.key, None)
        return
    prior = state.alerts.get(alert.key, {})
    state.alerts[alert.key] = {
        "scope": scope,
        "severity": alert.severity,
        "first_sent": prior.get("first_sent", now.isoformat()),
        "last_sent": now.isoformat(),
        "alert": alert.to_dict(),
    }


def _suppress(state: _State, key: str, now: datetime) -> None:
    """Count an alert the rate limit held back (each alert once, however many runs held it)."""
    held = state.suppressed or {"count": 0, "keys": [], "since": now.isoformat()}
    if key not in held["keys"]:
        held["keys"].append(key)
    held["count"] = len(held["keys"])
    state.suppressed = held
