"""The interleaving test: do users prefer the candidate's team or control's, valid at every look.

Definitions. Each interleaved user saw lists drafted from both arms' rankings
(:mod:`taxiway.serving.interleave`), every item credited to the team that picked it. A
user's *credit* is their clicks (the rollout metric's outcome, summed as the A/B test sums it)
on candidate-team items minus their clicks on control-team items, over all their interleaved
answers. A user with positive credit is a **win** for the candidate, negative a **loss**,
zero with some click a **tie**, and a user with no click is counted apart (``no_clicks``). The
unit is the user: however many correlated clicks one user makes, they count once.

Under the null hypothesis (neither ranking is preferred) team-draft gives each team the same
chance at every position, so a user with a preference is a win or a loss with probability
1/2 each: among the ``n = wins + losses`` users with a preference, ``wins ~ Binomial(n, p)``
and the test is of ``p = 1/2``, two-sided (a sign test).

The controller reads the result at every check, so a fixed-sample binomial p-value (reported
beside it, ``fixed_p_value``) read that often would halt A/A rollouts far more often than
``alpha``. The decision instead uses a *mixture sequential probability ratio test*: the Bayes
factor of ``p ~ Beta(a, a)`` against ``p = 1/2``,

    BF = B(a + wins, a + losses) / B(a, a) * 2 ** n,

a nonnegative martingale under the null, so by Ville's inequality ``P(BF ever >= 1/alpha) <=
alpha``: the test rejects when ``BF >= 1/alpha``, and ``p_value = min(1, 1/BF)`` is valid at
any look (always-valid inference, as the rest of the rollout's tests; exact, no central
limit needed). The prior's ``a`` is tuned as the confidence sequence's mixing parameter
(:func:`.sequences.mixture_r2`) so the boundary is tightest at ``planned_users`` users with a
preference: ``Var(2p - 1) = 1 / (2a + 1) = r²``. A significant result says which way
(``wins > losses``: the candidate is preferred).

One caveat, said plainly: a user's preference is read from every click so far, so a user who
clicked once for each team and then again for one moves from tie to win; the users are
exchangeable under the null whatever their order, and ``tests/rollout/test_interleaving.py``
measures the rate of false decisions over simulated A/A users read at many looks.

>>> result = interleaving_test(150, 100, ties=10, no_clicks=40, alpha=0.05, planned_users=200)
>>> result.significant_better, result.significant_worse, round(result.preference, 2)
(True, False, 0.6)
>>> interleaving_test(110, 100, alpha=0.05, planned_users=200).significant
False
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from taxiway.errors import RolloutError
from taxiway.rollout.statistics.sequences import mixture_r2

__all__ = [
    "InterleavingResult",
    "binomial_p_value",
    "interleaving_test",
    "preferences",
    "prior_concentration",
]

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class InterleavingResult:
    """One look at the interleaved users: the counts, the always-valid p-value and Bayes
    factor, the fixed-sample p-value beside them, and which way it is significant."""

    wins: int
    losses: int
    ties: int
    no_clicks: int
    preference: float | None
    """``wins / (wins + losses)``: the share of users with a preference who prefer the
    candidate (None before any)."""
    p_value: float
    bayes_factor: float
    fixed_p_value: float
    alpha: float
    planned_users: int
    significant_better: bool
    significant_worse: bool

    @property
    def significant(self) -> bool:
        """Whether either team is significantly preferred."""
        return self.significant_better or self.significant_worse

    @property
    def decided_users(self) -> int:
        """Users with a preference (wins plus losses)."""
        return self.wins + self.losses

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the Bayes factor as null when it overflows)."""
        data = asdict(self)
        if not math.isfinite(self.bayes_factor):
            data["bayes_factor"] = None
        data["users_with_preference"] = self.decided_users
        data["test"] = "mixture SPRT on the sign of each user's credit (always valid)"
        return data


def prior_concentration(alpha: float, planned_users: int) -> float:
    """The Beta prior's ``a`` that makes the test tightest at ``planned_users`` users with a
    preference (see the module).

    >>> round(prior_concentration(0.05, 200), 2)
    12.1
    """
    r2 = mixture_r2(alpha, float(planned_users))
    return max((1.0 / r2 - 1.0) / 2.0, 0.5)


def log_bayes_factor(wins: int, losses: int, a: float) -> float:
    """``ln BF`` of ``p ~ Beta(a, a)`` against ``p = 1/2`` after ``wins`` and ``losses``.

    >>> log_bayes_factor(0, 0, 3.0)
    0.0
    """
    n = wins + losses
    return _log_beta(a + wins, a + losses) - _log_beta(a, a) + n * math.log(2.0)


def binomial_p_value(wins: int, losses: int) -> float:
    """The exact two-sided sign test's p-value (fixed sample: valid at one look only).

    >>> round(binomial_p_value(60, 40), 4), binomial_p_value(0, 0)
    (0.0569, 1.0)
    """
    n = wins + losses
    if n == 0:
        return 1.0
    extreme = min(wins, losses)
    log_factorial = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1)))))
    k = np.arange(extreme + 1)
    log_pmf = log_factorial[n] - log_factorial[k] - log_factorial[n - k] - n * math.log(2.0)
    tail = float(np.exp(log_pmf).sum())
    return min(1.0, 2.0 * tail)


def preferences(candidate_clicks: Floats, control_clicks: Floats) -> tuple[int, int, int, int]:
    """``(wins, losses, ties, no_clicks)`` over users, from each user's clicks on the
    candidate team's items and on control's (two arrays, one value per user).

    >>> import numpy as np
    >>> preferences(np.array([2., 0, 1, 0]), np.array([1., 1, 1, 0]))
    (1, 1, 1, 1)
    """
    candidate = np.asarray(candidate_clicks, dtype=np.float64)
    control = np.asarray(control_clicks, dtype=np.float64)
    if candidate.shape != control.shape:
        raise RolloutError(
            f"credits of {candidate.shape} and {control.shape} users do not pair up",
            fix="pass one value per user in both arrays, in the same order",
        )
    credit = candidate - control
    clicked = (candidate > 0) | (control > 0)
    wins = int(np.count_nonzero(credit > 0))
    losses = int(np.count_nonzero(credit < 0))
    ties = int(np.count_nonzero(clicked & (credit == 0)))
    return wins, losses, ties, int(np.count_nonzero(~clicked))


def interleaving_test(
    wins: int,
    losses: int,
    *,
    ties: int = 0,
    no_clicks: int = 0,
    alpha: float = 0.05,
    planned_users: int = 200,
) -> InterleavingResult:
    """The always-valid two-sided test of ``wins`` against ``losses`` (see the module)."""
    if min(wins, losses, ties, no_clicks) < 0:
        raise RolloutError(
            f"counts cannot be negative (wins {wins}, losses {losses}, ties {ties}, "
            f"no_clicks {no_clicks})",
            fix="count users: wins, losses, ties and users without a click",
        )
    if planned_users < 1:
        raise RolloutError(
            f"planned_users must be at least 1, not {planned_users}",
            fix="use the plan's interleaving.min_users",
        )
    a = prior_concentration(alpha, planned_users)
    log_bf = log_bayes_factor(wins, losses, a)
    bayes_factor = math.exp(log_bf) if log_bf < 700 else math.inf
    p_value = min(1.0, math.exp(-log_bf)) if log_bf > -700 else 1.0
    significant = log_bf >= -math.log(alpha)
    n = wins + losses
    return InterleavingResult(
        wins=wins,
        losses=losses,
        ties=ties,
        no_clicks=no_clicks,
        preference=wins / n if n else None,
        p_value=p_value,
        bayes_factor=bayes_factor,
        fixed_p_value=binomial_p_value(wins, losses),
        alpha=alpha,
        planned_users=planned_users,
        significant_better=significant and wins > losses,
        significant_worse=significant and losses > wins,
    )


def _log_beta(x: float, y: float) -> float:
    return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)
