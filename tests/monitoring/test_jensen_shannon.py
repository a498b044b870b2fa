"""Jensen-Shannon distance against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from taxiway.monitoring.statistics.jensen_shannon import JensenShannon, js_of_shares


def test_half_and_all_by_hand() -> None:
    # m = (0.75, 0.25); KL(p||m) = 0.5 log2(2/3) + 0.5 log2(2); KL(q||m) = log2(4/3)
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q = math.log2(1.0 / 0.75)
    expected = math.sqrt((kl_p + kl_q) / 2)
    got = js_of_shares(np.array([0.5, 0.5]), np.array([1.0, 0.0]))
    assert got == pytest.approx(expected, rel=1e-12)


def test_disjoint_is_one_and_symmetric_given_the_bins() -> None:
    assert js_of_shares(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.1, 0.3])
    assert js_of_shares(p, q) == pytest.approx(js_of_shares(q, p), rel=1e-12)


def test_on_bins_of_the_reference() -> None:
    # reference 0..9 on 2 bins would be (0.5, 0.5); with deciles, a current sample all above
    # the reference's maximum lands in the last bin only: shares (0.1 x 10) vs (0, ..., 1)
    ref = np.arange(100.0)
    cur = np.full(10, 1000.0)
    r = np.full(10, 0.1)
    c = np.zeros(10)
    c[-1] = 1.0
    m = (r + c) / 2
    kl_r = float(np.sum(r * np.log2(r / m)))
    kl_c = math.log2(1.0 / m[-1])
    assert JensenShannon().compare(ref, cur) == pytest.approx(math.sqrt((kl_r + kl_c) / 2))
    assert 0.0 <= JensenShannon().compare(ref, cur) <= 1.0
