"""Plateaus of a loss curve: long stretches where the loss barely moves, after which it falls again.

On the log-loss ℓ_t = log L_t, smoothed by a centred moving average of ``window`` steps, the local rate
is r_t = (ℓ_t − ℓ_{t+s}) / s over s = ``min_len``/2 steps. With D = ℓ_0 − min ℓ the curve's total fall
and T its length, step t is *flat* when r_t < ``flat`` · D/T (less than a fraction of the mean rate);
flat stretches separated by fewer than ``window`` steps are joined (noise). A *plateau* is a maximal
flat stretch, extended by s, at least ``min_len`` long that is *escaped*: later the loss falls by at least
``escape`` · D below the plateau's level. The escape condition separates a plateau from convergence
(the slow tail of a curve that has stopped improving) and from a run that never learns (D ≈ 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Plateau:
    """Steps [start, end) of the input curve, its mean loss ``level`` and length in steps."""

    start: int
    end: int
    level: float

    @property
    def length(self) -> int:
        return self.end - self.start


def _smooth(y: np.ndarray, w: int) -> np.ndarray:
    if w <= 1:
        return y
    pad = np.pad(y, (w // 2, w - 1 - w // 2), mode="edge")
    return np.convolve(pad, np.ones(w) / w, mode="valid")


def find_plateaus(loss: Sequence[float], window: int = 25, min_len: int = 50, flat: float = 0.25,
                  escape: float = 0.2, min_fall: float = 0.05) -> list[Plateau]:
    """The plateaus of ``loss`` (one value per step, positive); [] for a curve shorter than
    ``min_len + window`` or one whose log-loss falls by less than ``min_fall`` in total."""
    y = np.asarray(loss, dtype=float)
    if len(y) < min_len + window or not np.all(np.isfinite(y)) or np.any(y <= 0):
        return []
    ell = _smooth(np.log(y), window)
    T = len(ell)
    D = ell[0] - ell.min()
    if D < min_fall:
        return []
    span = max(min_len // 2, 1)
    rate = np.full(T, np.inf)
    rate[:T - span] = (ell[:T - span] - ell[span:]) / span
    is_flat = rate < flat * D / T
    idx = np.flatnonzero(is_flat)
    runs = []
    for t in idx:
        if runs and t - runs[-1][1] <= window:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    out = []
    for s, last in runs:
        e = min(last + span, T)
        if e - s >= min_len and e < T:
            level = float(ell[s:e].mean())
            if level - ell[e:].min() >= escape * D:
                out.append(Plateau(s, e, float(np.exp(level))))
    return out


def plateau_table(steps, **kw) -> list[dict]:
    """One row per plateau of each run of a tidy ``steps`` table (run_id, step, loss):
    run_id, start_step, end_step, length, level."""
    rows = []
    for run_id, g in steps.sort_values("step").groupby("run_id", sort=False):
        g = g.dropna(subset=["loss"])
        st = g["step"].to_numpy()
        for p in find_plateaus(g["loss"].to_numpy(), **kw):
            rows.append({"run_id": run_id, "start_step": int(st[p.start]), "end_step": int(st[p.end - 1]),
                         "length": p.length, "level": p.level})
    return rows
