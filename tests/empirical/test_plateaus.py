"""Plateau detection on synthetic loss curves with a planted plateau, and on curves without one."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from empirical.analysis.plateaus import find_plateaus, plateau_table


def _planted(start, length, level, n=1500, noise=0.03, seed=0):
    """log-loss: fast fall from log 2.3 to log ``level`` by ``start``, flat for ``length``, then a fall to 0.02."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    hi, mid, lo = np.log(2.3), np.log(level), np.log(0.02)
    ell = np.where(t < start, hi + (mid - hi) * t / start, mid)
    after = t >= start + length
    tail = (t - start - length) / 150
    ell = np.where(after, lo + (mid - lo) * np.exp(-tail), ell)
    return np.exp(ell + noise * rng.standard_normal(n))


@settings(max_examples=30, deadline=None)
@given(start=st.integers(30, 200), length=st.integers(150, 600), level=st.floats(0.5, 1.2), seed=st.integers(0, 99))
def test_planted_plateau_is_found(start, length, level, seed):
    found = find_plateaus(_planted(start, length, level, seed=seed))
    assert len(found) == 1
    p = found[0]
    assert abs(p.start - start) <= 40 and abs(p.end - (start + length)) <= 40
    assert abs(np.log(p.level) - np.log(level)) < 0.05


@settings(max_examples=30, deadline=None)
@given(tau=st.floats(20, 400), floor=st.floats(0.001, 0.5), seed=st.integers(0, 99))
def test_no_plateau_in_exponential_decay(tau, floor, seed):
    """A convex fall to a floor (converging, not stalling and escaping) has no plateau."""
    rng = np.random.default_rng(seed)
    t = np.arange(1500)
    loss = (floor + (2.3 - floor) * np.exp(-t / tau)) * np.exp(0.03 * rng.standard_normal(len(t)))
    assert find_plateaus(loss) == []


def test_a_run_that_never_learns_has_no_plateau():
    rng = np.random.default_rng(1)
    assert find_plateaus(2.3 * np.exp(0.03 * rng.standard_normal(1000))) == []


def test_plateau_table_per_run():
    steps = pd.concat([
        pd.DataFrame({"run_id": "a", "step": np.arange(1, 1501), "loss": _planted(200, 400, 1.2)}),
        pd.DataFrame({"run_id": "b", "step": np.arange(1, 1501), "loss": 2.3 * np.exp(-np.arange(1500) / 100) + 0.01}),
    ])
    rows = plateau_table(steps)
    assert [r["run_id"] for r in rows] == ["a"]
    assert abs(rows[0]["start_step"] - 201) <= 40 and abs(rows[0]["length"] - 400) <= 60
