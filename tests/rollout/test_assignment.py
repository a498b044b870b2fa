"""Assignment: a unit's arm is a pure function of the salt, the unit and the share."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.rollout.assignment import BUCKETS, Assigner, arm_for, bucket

salts = st.text(min_size=1, max_size=24)
units = st.text(min_size=1, max_size=40)
shares = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


def test_bucket_is_the_contracts_hash() -> None:
    digest = hashlib.blake2b(b"salt\x1funit-7", digest_size=8).digest()
    assert bucket("salt", "unit-7") == int.from_bytes(digest, "big") % 10_000


@settings(derandomize=True, deadline=None, max_examples=300)
@given(salts, units)
def test_buckets_lie_in_range(salt: str, unit: str) -> None:
    assert 0 <= bucket(salt, unit) < BUCKETS


@settings(derandomize=True, deadline=None, max_examples=300)
@given(salts, units, shares, shares)
def test_a_candidate_stays_a_candidate_as_the_share_grows(
    salt: str, unit: str, a: float, b: float
) -> None:
    low, high = sorted((a, b))
    if arm_for(salt, unit, low) == "candidate":
        assert arm_for(salt, unit, high) == "candidate"
    if arm_for(salt, unit, high) == "control":
        assert arm_for(salt, unit, low) == "control"


@settings(derandomize=True, deadline=None, max_examples=40)
@given(salts, st.sampled_from([0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 99.0, 100.0, 0.5, 37.3]))
def test_the_candidate_share_over_many_units_is_the_share(salt: str, share: float) -> None:
    n = 20_000
    candidates = sum(arm_for(salt, f"user-{i}", share) == "candidate" for i in range(n))
    p = round(share * 100) / BUCKETS
    # a binomial count: 5 standard deviations (plus a unit for p at 0 or 1)
    assert abs(candidates - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


def test_the_ends_send_everyone_to_one_arm() -> None:
    everyone = [f"u{i}" for i in range(2000)]
    assert {arm_for("s", u, 0.0) for u in everyone} == {"control"}
    assert {arm_for("s", u, -5.0) for u in everyone} == {"control"}
    assert {arm_for("s", u, 100.0) for u in everyone} == {"candidate"}


def test_another_salt_reshuffles_the_candidates() -> None:
    everyone = [f"u{i}" for i in range(20_000)]
    first = {u for u in everyone if arm_for("rollout-1", u, 10.0) == "candidate"}
    second = {u for u in everyone if arm_for("rollout-2", u, 10.0) == "candidate"}
    # independent draws overlap in about 10% of each: far from the same set
    assert len(first & second) < 0.2 * len(first)


def test_another_process_assigns_the_same_arms() -> None:
    """No per-process seed (Python's hash() would differ between processes)."""
    code = (
        "from taxiway.rollout.assignment import bucket\n"
        "print(','.join(str(bucket('salt', f'u{i}')) for i in range(200)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout.strip()
    assert out == ",".join(str(bucket("salt", f"u{i}")) for i in range(200))


def test_an_assignment_takes_under_5_microseconds() -> None:
    n = 50_000
    names = [f"customer-{i}" for i in range(n)]
    best = math.inf
    for _ in range(3):
        began = time.perf_counter()
        for name in names:
            arm_for("0f3a9c2d1e0b4a5f", name, 25.0)
        best = min(best, (time.perf_counter() - began) / n)
    assert best < 5e-6, f"{best * 1e6:.2f} µs per assignment"


@settings(derandomize=True, deadline=None, max_examples=300)
@given(salts, units, shares)
def test_the_bound_assigner_is_arm_for(salt: str, unit: str, share: float) -> None:
    assigner = Assigner(salt)
    assert assigner.bucket(unit) == bucket(salt, unit)
    assert assigner.arm(unit, share) == arm_for(salt, unit, share)


def test_a_bound_assignment_takes_under_5_microseconds() -> None:
    n = 50_000
    names = [f"customer-{i}" for i in range(n)]
    assigner = Assigner("0f3a9c2d1e0b4a5f")
    best = math.inf
    for _ in range(3):
        began = time.perf_counter()
        for name in names:
            assigner.arm(name, 25.0)
        best = min(best, (time.perf_counter() - began) / n)
    assert best < 5e-6, f"{best * 1e6:.2f} µs per assignment"
