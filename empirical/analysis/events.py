"""Per-batch events in a loss series: single-batch loss spikes.

A spike at step t is a batch whose loss L_t exceeds ``K_SPIKE`` times the running median m_t of the
previous ``WINDOW`` batch losses (at least ``MIN_HISTORY`` of them) and exceeds it by at least
``MIN_JUMP`` nats: L_t > k·m_t and L_t − m_t ≥ δ. The median of the preceding batches is robust to
the spike itself and to earlier spikes; the absolute floor keeps late-training noise on losses near
zero (0.01 → 0.03 is a factor 3 but no explosion) from counting. The thresholds are fixed here,
before looking at any study, and every page states them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["K_SPIKE", "WINDOW", "MIN_HISTORY", "MIN_JUMP", "Spike", "loss_spikes", "rule"]

K_SPIKE = 3.0
WINDOW = 20
MIN_HISTORY = 5
MIN_JUMP = 0.1


@dataclass(frozen=True)
class Spike:
    """One single-batch spike: the step, the batch loss, the running median before it, their ratio."""

    step: int
    loss: float
    median: float
    ratio: float


def rule(k: float = K_SPIKE, window: int = WINDOW, min_jump: float = MIN_JUMP) -> str:
    """The spike rule in words, for pages and records."""
    return (f"batch loss > {k:g} × the median of the previous {window} batch losses "
            f"and ≥ {min_jump:g} nats above it")


def loss_spikes(steps: Sequence[float], loss: Sequence[float], k: float = K_SPIKE, window: int = WINDOW,
                min_history: int = MIN_HISTORY, min_jump: float = MIN_JUMP) -> list[Spike]:
    """Every single-batch spike of one run's per-batch loss series (non-finite losses are skipped:
    a divergence is recorded as such, not as a spike)."""
    s = np.asarray(steps, float)
    y = np.asarray(loss, float)
    ok = np.isfinite(s) & np.isfinite(y)
    s, y = s[ok], y[ok]
    out = []
    for i in range(min_history, len(y)):
        m = float(np.median(y[max(0, i - window):i]))
        if y[i] > k * m and y[i] - m >= min_jump:
            out.append(Spike(int(s[i]), float(y[i]), m, float(y[i] / m) if m > 0 else float("inf")))
    return out
