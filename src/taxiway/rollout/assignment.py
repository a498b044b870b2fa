"""Which arm a unit belongs to: a hash of the rollout's salt and the unit, nothing else.

Definition. A unit's *bucket* is the first 8 bytes of ``blake2b(salt + "\\x1f" + unit)``
(UTF-8, digest size 8), read as a big-endian unsigned integer, modulo 10,000: a number in
0..9999, one basis point of traffic each. At a share of ``s`` percent the unit is in the
candidate arm iff its bucket is below ``round(s * 100)``.

What follows from it:

- *identical everywhere*: no state, no randomness, no process-specific seed (Python's
  ``hash`` is salted per process; blake2b is not), so every worker and every replica assigns a
  unit the same arm;
- *sticky*: as the share grows the threshold only rises, so a unit in the candidate arm stays
  there (it leaves only when the share falls, which is a rollback);
- *independent across rollouts*: a new salt per rollout reshuffles the units, so the units
  that were candidates last time are not this time's candidates again;
- a share of 0 (or below) sends every unit to control, 100 (or above) every unit to the
  candidate.

>>> bucket("rollout-1", "customer-42")
7700
>>> arm_for("rollout-1", "customer-42", 77.0), arm_for("rollout-1", "customer-42", 77.01)
('control', 'candidate')
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Literal

__all__ = ["BUCKETS", "Arm", "Assigner", "arm_for", "bucket"]

BUCKETS = 10_000
"""Buckets of traffic: one per basis point, so a share of 0.01% can be expressed."""

Arm = Literal["control", "candidate"]


def bucket(salt: str, unit: str) -> int:
    """The unit's bucket in 0..9999 under ``salt`` (see the module's definition).

    >>> bucket("s", "u") == bucket("s", "u"), 0 <= bucket("s", "u") < BUCKETS
    (True, True)
    """
    digest = blake2b(f"{salt}\x1f{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def arm_for(salt: str, unit: str, share: float) -> Arm:
    """The arm of ``unit`` when the candidate takes ``share`` percent of traffic.

    >>> arm_for("s", "u", 0.0), arm_for("s", "u", 100.0)
    ('control', 'candidate')
    """
    return "candidate" if bucket(salt, unit) < round(share * 100) else "control"


class Assigner:
    """:func:`arm_for` with the salt bound, for the served path: the hash of the salt's prefix
    is computed once and copied per unit (blake2b reads its input as a stream, so the bucket
    is the same), about half the cost of hashing the whole text afresh.

    >>> assign = Assigner("rollout-1")
    >>> assign.bucket("customer-42") == bucket("rollout-1", "customer-42")
    True
    >>> assign.arm("customer-42", 77.01)
    'candidate'
    """

    __slots__ = ("_prefix", "salt")

    def __init__(self, salt: str) -> None:
        self.salt = salt
        self._prefix = blake2b(f"{salt}\x1f".encode(), digest_size=8)

    def bucket(self, unit: str) -> int:
        """The unit's bucket under this salt (as :func:`bucket`)."""
        digest = self._prefix.copy()
        digest.update(unit.encode())
        return int.from_bytes(digest.digest(), "big") % BUCKETS

    def arm(self, unit: str, share: float) -> Arm:
        """The unit's arm at ``share`` percent (as :func:`arm_for`)."""
        return "candidate" if self.bucket(unit) < round(share * 100) else "control"
