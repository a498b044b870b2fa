"""Service-level objectives over the prediction log: burn rates, error budget, burn alerts.

An SLO says which share of requests must be good over a period: ``latency`` (answered within
the latency budget; a *bad* request is a slow one) or ``errors`` (answered without a server
error). The input is the log's per-minute counts, ``{"YYYY-MM-DDTHH:MM": [requests, slow,
errors]}`` (UTC minutes, as the monitor's windows keep them).

- A window of ``w`` ending at ``now`` holds ``w`` whole minutes: those whose start lies in
  ``[end - w, end)``, where ``end`` is ``now`` rounded up to a minute (so the minute holding
  ``now``, still filling, counts with what it holds; minutes after ``now`` never count).
- **Burn rate** of a window = its bad share / (1 - objective): 1 spends the error budget
  exactly over the period, 14.4 spends 2% of a 30-day budget in one hour. A window without
  requests burns nothing: its rate is 0 and :class:`Burn` says it was empty.
- **Error budget remaining** over the period = 1 - bad / ((1 - objective) x requests), from the
  minutes available in the period ending at ``now``. :class:`ErrorBudget` says how much of it
  those minutes cover (from the first minute with requests to ``now``); below 1 the figure is the
  budget's state over that span, not over the whole period. It is negative once overspent.
- **Alerts** (:func:`slo_alerts`), the SRE workbook's multi-window pairs: the long window proves
  the burn is significant, the short one that it is still going on (so the alert resets fast):
  1 h and 5 min both over 14.4 page; 6 h and 30 min both over 6 page; 3 d and 6 h both over 1
  make a ticket. One alert per SLO, at the highest severity firing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from taxiway.errors import MonitoringError
from taxiway.monitoring.alerts import SEVERITY_RANK, Alert, Severity

__all__ = [
    "PAIRS",
    "WINDOWS",
    "Burn",
    "BurnPair",
    "ErrorBudget",
    "SloSpec",
    "burn_rates",
    "burns",
    "error_budget",
    "slo_alerts",
]

SloName = Literal["latency", "errors"]

WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "3d": timedelta(days=3),
}
"""The burn-rate windows, shortest first."""

_MINUTE = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1)  # naive: minute keys are UTC, parsed without a zone
_BAD_COLUMN = {"latency": 1, "errors": 2}  # [requests, slow, errors]
_WHAT = {"latency": "slow answers (over the latency budget)", "errors": "server errors"}


@dataclass(frozen=True)
class BurnPair:
    """A multi-window alert: both windows' burn over ``factor`` raise ``severity``."""

    long: str
    short: str
    factor: float
    severity: Severity

    @property
    def name(self) -> str:
        """``1h/5m``."""
        return f"{self.long}/{self.short}"


PAIRS: tuple[BurnPair, ...] = (
    BurnPair("1h", "5m", 14.4, "page"),
    BurnPair("6h", "30m", 6.0, "page"),
    BurnPair("3d", "6h", 1.0, "ticket"),
)
"""The SRE workbook's pairs (chapter "Alerting on SLOs", multiwindow, multi-burn-rate)."""


@dataclass(frozen=True)
class SloSpec:
    """One objective: ``name`` (``latency`` or ``errors``), the share of good requests it
    promises (``objective``, in (0, 1)) and the ``period`` it is measured over.

    >>> SloSpec("errors", objective=1.0)
    Traceback (most recent call last):
    ...
    taxiway.errors.MonitoringError: the errors SLO's objective must lie in (0, 1), not 1.0
      fix: write it as a share of good requests, e.g. 0.99 (not 99 or 1)
    """

    name: SloName
    objective: float = 0.99
    period: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        if self.name not in _BAD_COLUMN:
            raise MonitoringError(
                f"unknown SLO {self.name!r}", fix="use `latency` or `errors` (monitoring.slo)"
            )
        if not 0 < self.objective < 1:
            raise MonitoringError(
                f"the {self.name} SLO's objective must lie in (0, 1), not {self.objective}",
                fix="write it as a share of good requests, e.g. 0.99 (not 99 or 1)",
            )
        if self.period < _MINUTE:
            raise MonitoringError(
                f"the {self.name} SLO's period ({self.period}) is under a minute",
                fix="measure an SLO over days, e.g. 30d",
            )

    @property
    def budget(self) -> float:
        """The share of requests allowed to be bad: 1 - objective (rounded to 12 places, so
        0.99 gives 0.01, not 0.010000000000000009).

        >>> SloSpec("latency", 0.99).budget
        0.01
        """
        return round(1.0 - self.objective, 12)


@dataclass(frozen=True)
class Burn:
    """One window's burn: its requests, the bad ones among them, and the rate.

    >>> Burn("5m", 0, 0, 0.0).note
    'no requests in the last 5m: burn 0'
    >>> Burn("1h", 100, 5, 5.0).note is None
    True
    """

    window: str
    requests: int
    bad: int
    rate: float

    @property
    def note(self) -> str | None:
        """Why the rate is 0 when the window was empty, else None."""
        if self.requests == 0:
            return f"no requests in the last {self.window}: burn 0"
        return None


@dataclass(frozen=True)
class ErrorBudget:
    """The error budget over the SLO's period, from the minutes available.

    ``consumed`` is the share of the budget spent (bad / allowed), ``remaining`` = 1 -
    ``consumed`` (negative when overspent); ``covered`` is the span the minutes cover (first
    minute with requests to ``now``), at most ``period``.
    """

    slo: str
    objective: float
    requests: int
    bad: int
    allowed: float
    consumed: float
    remaining: float
    covered: timedelta
    period: timedelta

    @property
    def coverage(self) -> float:
        """The share of the period the minutes cover, in [0, 1]."""
        return min(1.0, self.covered / self.period)

    @property
    def note(self) -> str:
        """The coverage in words.

        >>> ErrorBudget("latency", 0.99, 0, 0, 0.0, 0.0, 1.0, timedelta(0), timedelta(days=30)).note
        'no requests in the 30d period: the budget is untouched'
        """
        period = _duration(self.period)
        if self.requests == 0:
            return f"no requests in the {period} period: the budget is untouched"
        if self.coverage >= 1.0:
            return f"covers the whole {period} period"
        return (
            f"covers {_duration(self.covered)} of the {period} period "
            f"({self.coverage:.1%}): the budget's state over that span"
        )


def _duration(span: timedelta) -> str:
    """``30d``, ``2h13m``, ``5m``.

    >>> _duration(timedelta(days=30)), _duration(timedelta(hours=2, minutes=13))
    ('30d', '2h13m')
    """
    minutes = int(span.total_seconds() // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    text = (f"{days}d" if days else "") + (f"{hours}h" if hours else "")
    text += f"{minutes}m" if minutes or not text else ""
    return text


def _minutes(minutes: Mapping[str, Sequence[int]], slo: SloSpec) -> list[tuple[int, int, int]]:
    """(start as minutes since the epoch, requests, bad) per minute, checked."""
    column = _BAD_COLUMN[slo.name]
    rows = []
    for key, counts in minutes.items():
        try:
            if len(key) != 16 or key[10] != "T":  # fromisoformat alone takes other shapes too
                raise ValueError(key)
            start = (datetime.fromisoformat(key) - _EPOCH) // _MINUTE  # keys are UTC
            requests, bad = int(counts[0]), int(counts[column])
        except (ValueError, TypeError, IndexError):
            raise MonitoringError(
                f"the per-minute counts hold {key!r}: {counts!r}",
                fix='expect {"YYYY-MM-DDTHH:MM": [requests, slow, errors]} (UTC minutes)',
            ) from None
        if requests < 0 or not 0 <= bad <= requests:
            raise MonitoringError(
                f"the per-minute counts of {key} are impossible: {list(counts)!r}",
                fix="requests >= 0 and 0 <= slow, errors <= requests: rebuild the windows",
            )
        rows.append((start, requests, bad))
    return rows


def _epoch_minute(moment: datetime) -> int:
    return (moment.astimezone(UTC).replace(tzinfo=None) - _EPOCH) // _MINUTE


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise MonitoringError(
            f"`now` ({now.isoformat()}) has no time zone",
            fix="pass an aware datetime, e.g. datetime.now(UTC)",
        )
    return now.astimezone(UTC)


def _end(now: datetime) -> datetime:
    """``now`` rounded up to a whole minute (UTC).

    >>> _end(datetime(2026, 12, 6, 5, 31, 30, tzinfo=UTC)).isoformat()
    '2026-12-06T05:32:00+00:00'
    """
    now = _aware(now)
    floor = now.replace(second=0, microsecond=0)
    return floor if floor == now else floor + _MINUTE


def burns(minutes: Mapping[str, Sequence[int]], slo: SloSpec, now: datetime) -> dict[str, Burn]:
    """Each window's :class:`Burn` (keys of :data:`WINDOWS`).

    >>> minutes = {"2026-12-06T05:58": [100, 50, 0], "2026-12-06T05:59": [100, 0, 0]}
    >>> b = burns(minutes, SloSpec("latency"), datetime(2026, 12, 6, 6, 0, tzinfo=UTC))
    >>> b["5m"].requests, b["5m"].bad, round(b["5m"].rate, 6)
    (200, 50, 25.0)
    """
    end = _epoch_minute(_end(now))
    spans = [(name, int(span / _MINUTE)) for name, span in WINDOWS.items()]
    totals = {name: [0, 0] for name in WINDOWS}
    for start, requests, bad in _minutes(minutes, slo):
        age = end - start  # 1 for the minute just before the end
        if age < 1:
            continue
        for name, span in spans:
            if age <= span:
                total = totals[name]
                total[0] += requests
                total[1] += bad
    return {
        name: Burn(name, requests, bad, (bad / requests) / slo.budget if requests else 0.0)
        for name, (requests, bad) in totals.items()
    }


def burn_rates(
    minutes: Mapping[str, Sequence[int]], slo: SloSpec, now: datetime
) -> dict[str, float]:
    """Each window's burn rate (bad share / (1 - objective)), 0 for a window without requests
    (:func:`burns` says which were empty).

    >>> now = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
    >>> minutes = {f"2026-12-06T05:{m:02d}": [100, 1, 0] for m in range(60)}
    >>> {k: round(v, 6) for k, v in burn_rates(minutes, SloSpec("latency"), now).items()}
    {'5m': 1.0, '30m': 1.0, '1h': 1.0, '6h': 1.0, '3d': 1.0}
    >>> burn_rates(minutes, SloSpec("errors", 0.999), now)["1h"]
    0.0
    """
    return {name: burn.rate for name, burn in burns(minutes, slo, now).items()}


def error_budget(minutes: Mapping[str, Sequence[int]], slo: SloSpec, now: datetime) -> ErrorBudget:
    """The error budget over the ``period`` ending at ``now`` (rounded up to a minute, as the
    windows), from the minutes available.

    >>> now = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
    >>> minutes = {f"2026-12-06T05:{m:02d}": [100, 1 if m < 30 else 0, 0] for m in range(60)}
    >>> budget = error_budget(minutes, SloSpec("latency"), now)
    >>> round(budget.remaining, 6), budget.note
    (0.5, "covers 1h of the 30d period (0.1%): the budget's state over that span")
    """
    end = _end(now)
    last = _epoch_minute(end)
    period = int(slo.period / _MINUTE)
    requests = bad = 0
    first: int | None = None
    for start, count, worse in _minutes(minutes, slo):
        if not 1 <= last - start <= period:
            continue
        requests += count
        bad += worse
        if count and (first is None or start < first):
            first = start
    allowed = slo.budget * requests
    consumed = bad / allowed if allowed else 0.0
    return ErrorBudget(
        slo=slo.name,
        objective=slo.objective,
        requests=requests,
        bad=bad,
        allowed=allowed,
        consumed=consumed,
        remaining=1.0 - consumed,
        covered=min(slo.period, (last - first) * _MINUTE) if first is not None else timedelta(0),
        period=slo.period,
    )


def slo_alerts(
    rates: Mapping[str, float],
    slo: SloSpec,
    *,
    now: datetime | None = None,
    model: str | None = None,
) -> list[Alert]:
    """The burn-rate alert of ``slo`` (none, or one at the highest severity firing), from
    :func:`burn_rates`. Its key is ``slo:<name>`` (``slo:<model>:<name>`` given a model).

    >>> rates = {"5m": 20.0, "30m": 18.0, "1h": 15.0, "6h": 3.0, "3d": 0.5}
    >>> [alert] = slo_alerts(rates, SloSpec("latency"), now=datetime(2026, 12, 6, tzinfo=UTC))
    >>> alert.key, alert.severity, alert.value, alert.threshold
    ('slo:latency', 'page', 15.0, 14.4)
    >>> slo_alerts({"5m": 20.0, "1h": 2.0}, SloSpec("latency"))
    []
    """
    now = now or datetime.now(UTC)
    firing = [
        pair
        for pair in PAIRS
        if rates.get(pair.long, 0.0) > pair.factor and rates.get(pair.short, 0.0) > pair.factor
    ]
    if not firing:
        return []
    top = max(firing, key=lambda p: (SEVERITY_RANK[p.severity], p.factor))
    burn = rates[top.long]
    period = _duration(slo.period)
    pairs = "; ".join(
        f"{p.name} at {rates[p.long]:.1f}x and {rates[p.short]:.1f}x > {p.factor:g}x ({p.severity})"
        for p in firing
    )
    lasts = _duration(slo.period / burn) if burn > 0 else "forever"
    slo_text = f"{slo.name} SLO ({slo.objective:.3%} over {period})".replace(".000%", "%")
    return [
        Alert(
            key=f"slo:{model}:{slo.name}" if model else f"slo:{slo.name}",
            kind="slo",
            severity=top.severity,
            title=f"{slo_text} burning its error budget {burn:.1f}x too fast",
            detail=f"{_WHAT[slo.name]}: {pairs}. At {burn:.1f}x the {period} budget lasts {lasts}.",
            value=burn,
            threshold=top.factor,
            since=now,
            where=(
                "latency by answer path and arm (online-store lookups, the model, fallbacks)"
                if slo.name == "latency"
                else "the service's 5xx answers and its log"
            ),
        )
    ]
