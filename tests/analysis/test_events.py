"""Single-batch loss spikes: one planted spike is found at its step, a clean series has none."""
from __future__ import annotations

import numpy as np

from empirical.analysis import events as E


def _series(seed=0, n=400):
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1)
    return steps, 2.0 * np.exp(-0.01 * steps) + 0.2 + 0.02 * rng.standard_normal(n)


def test_one_planted_spike_is_found():
    steps, loss = _series()
    loss[250] = 5.0 * np.median(loss[230:250])
    found = E.loss_spikes(steps, loss)
    assert [s.step for s in found] == [251]
    assert found[0].ratio > E.K_SPIKE and found[0].loss == loss[250]


def test_no_spike_in_a_clean_series_or_a_divergence():
    steps, loss = _series(1)
    assert E.loss_spikes(steps, loss) == []
    loss[300:] = np.nan
    assert E.loss_spikes(steps, loss) == []


def test_small_absolute_jumps_near_zero_loss_are_not_spikes():
    steps = np.arange(1, 101)
    loss = np.full(100, 0.01)
    loss[50] = 0.05                        # 5 × the median but only 0.04 nats
    assert E.loss_spikes(steps, loss) == []
    assert "3 ×" in E.rule()
