"""THE per-run theory at the measured configuration: q profile, χ₁ per layer, gradient profile, saturation, dead set.

Every number a claim or a figure predicts from ``theory`` comes from here, computed once per configuration
(``functools.lru_cache``) and once per study (``theories``):

- ``RunTheory``: for an MLP run with per-layer (σ_w², σ_b²) and measured input second moment mean(x²):
  q_1 = σ_w²(1)·mean(x²) + σ_b²(1), q_{l+1} = σ_w²(l+1) E[φ(√q_l u)²] + σ_b²(l+1) (the length map);
  χ₁ of layer l = σ_w²(l+1) E[φ′(√q_l u)²] (backprop from layer l+1 to l multiplies E‖∂L/∂z‖² by it);
  the gradient profile G_l = Σ_{k=l}^{L−1} log χ₁(q_k), G_L = 0.
- ``saturation_probability``: P(|φ′(√q u)| < ε), from the exact set ``small_derivative_set``.
- ``lipschitz_constant``, ``zero_on_interval``, ``symmetry``: from ``theory.properties``.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special

from empirical.analysis.results_schema import Study, at_probe, layer_values

__all__ = ["RunTheory", "run_theory", "theories", "cumulative", "small_derivative_set",
           "saturation_probability", "lipschitz_constant", "zero_on_interval", "symmetry", "q_star", "chi1",
           "layer_sigmas", "study_theories", "predicted_saturation"]

def _act(name: str):
    from theory.activations import lookup
    return lookup(str(name))


@lru_cache(maxsize=None)
def small_derivative_set(name: str, eps: float) -> tuple[tuple[float, float], ...]:
    """The set {x : |φ′(x)| < ε} as disjoint intervals (lo, hi), ±inf at the ends where it extends.

    Found exactly up to root-finding: |φ′| − ε is evaluated on a sinh-spaced grid over |x| ≤ 700 plus
    every breakpoint, each sign change is refined with brentq (a jump of φ′ across ε converges to the
    breakpoint itself). Unlike the saturation thresholds of ``theory.properties`` this includes
    interior dips, e.g. SiLU's zero of φ′ at x ≈ −1.28. |φ′| = ε exactly (LeakyReLU's slope 0.01 at
    ε = 0.01) is not below ε.
    """
    act = _act(name)
    d1 = act.numpy(1)
    grid = np.sinh(np.linspace(-np.arcsinh(700.0), np.arcsinh(700.0), 40001))
    bps = np.array([b for b in act.breakpoints() if abs(b) < 700.0], dtype=float)
    grid = np.unique(np.concatenate([grid, bps, bps - 1e-9, bps + 1e-9]))

    def g(v):
        with np.errstate(all="ignore"):
            return np.abs(np.asarray(d1(np.asarray(v, dtype=float)), dtype=float)) - eps

    vals = np.broadcast_to(g(grid), grid.shape).copy()
    good = np.isfinite(vals)
    grid, vals = grid[good], vals[good]
    below = vals < 0
    out, start = [], (-math.inf if below[0] else None)
    for i in np.flatnonzero(below[1:] != below[:-1]):
        a, b = grid[i], grid[i + 1]
        ga, gb = vals[i], vals[i + 1]
        if ga == 0.0 or gb == 0.0:
            root = a if ga == 0.0 else b
        else:
            f = lambda t: float(g(t))  # noqa: E731
            root = optimize.brentq(f, a, b, xtol=1e-12) if f(a) * f(b) < 0 else (a + b) / 2
        near = [bp for bp in bps if abs(root - bp) <= 1e-8]       # a jump of φ′ across ε: the breakpoint
        if near:
            root = float(near[0])
        if below[i + 1]:
            start = root
        else:
            out.append((start, root))
            start = None
    if start is not None:
        out.append((start, math.inf))
    return tuple((float(lo), float(hi)) for lo, hi in out)


def saturation_probability(name: str, q: float, eps: float) -> float:
    """P_{u~N(0,1)}(|φ′(√q u)| < ε): the mean-field saturated fraction of pre-activations of variance q."""
    if not (q >= 0 and math.isfinite(q)):
        return math.nan
    intervals = small_derivative_set(str(name), float(eps))
    if q == 0:
        return float(any(lo < 0 < hi for lo, hi in intervals))
    s = math.sqrt(q)
    return float(sum(special.ndtr(hi / s) - special.ndtr(lo / s) for lo, hi in intervals))


@lru_cache(maxsize=None)
def lipschitz_constant(name: str) -> float:
    """sup|φ′| from ``theory.properties.derive`` (exact where sympy finds it)."""
    from theory import properties
    return float(properties.derive(_act(name)).lipschitz)


@lru_cache(maxsize=None)
def zero_on_interval(name: str) -> bool:
    """True iff φ ≡ 0 on some interval (so h = 0 on a whole batch, a dead unit, has positive probability)."""
    from theory import properties
    act = _act(name)
    f = act.numpy(0)
    for lo, hi in properties.derive(act).dead_region:
        lo, hi = float(lo), float(hi)
        if math.isfinite(lo) and math.isfinite(hi):
            mid = (lo + hi) / 2
        else:
            mid = hi - 1.0 if math.isfinite(hi) else (lo + 1.0 if math.isfinite(lo) else 0.0)
        if float(np.broadcast_to(f(np.array([mid])), (1,))[0]) == 0.0:
            return True
    return False



@lru_cache(maxsize=None)
def chi1(name: str, q: float, w: float) -> float:
    from theory import meanfield
    return float(meanfield.chi1(_act(name), q, w))


@lru_cache(maxsize=None)
def q_star(name: str, w: float, b: float, q0: float) -> float:
    from theory import meanfield
    return float(meanfield.fixed_point(_act(name), w, b, q0))



@lru_cache(maxsize=None)
def symmetry(name: str) -> str:
    try:
        from theory import properties
        return str(properties.derive(_act(name)).symmetry)
    except Exception:  # noqa: BLE001 - unknown symmetry only changes the wording of a detail
        return "unknown"


def cumulative(logchi: np.ndarray) -> np.ndarray:
    """G_l = Σ_{k=l}^{L−1} log χ₁(q_k) (entry l − 1), G_L = 0."""
    return np.concatenate([np.cumsum(logchi[:-1][::-1])[::-1], [0.0]])



def layer_sigmas(run, drawn: pd.Series | None = None, drawn_b: pd.Series | None = None
                 ) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(σ_w², σ_b²) of layers 1..depth+1 of an MLP run as drawn; None if unknown.

    ``drawn``/``drawn_b``: layers.csv's ``sigma_w2``/``sigma_b2`` by layer (the engine records every layer's).
    Folders written before that have only runs.csv's σ_w², σ_b² (of layer 2), used for every layer.
    """
    depth = pd.to_numeric(run.get("depth"), errors="coerce")
    if not np.isfinite(depth) or int(depth) < 1:
        return None
    n = int(depth) + 1
    if drawn is not None and drawn_b is not None and all(l in drawn.index and l in drawn_b.index
                                                         for l in range(1, n + 1)):
        return (tuple(float(drawn[l]) for l in range(1, n + 1)), tuple(float(drawn_b[l]) for l in range(1, n + 1)))
    w, b = (pd.to_numeric(run.get(k), errors="coerce") for k in ("sigma_w2", "sigma_b2"))
    if not (np.isfinite(w) and np.isfinite(b)):
        return None
    return (float(w),) * n, (float(b),) * n


@dataclass(frozen=True)
class RunTheory:
    """Mean-field quantities of one MLP run at its drawn configuration; entry l − 1 is hidden layer l.

    ``q``: the length map's q_l from q_1; ``chi``: χ₁ of layer l (with σ_w² of layer l+1);
    ``log_grad``: G_l = Σ_{k=l}^{L−1} log χ₁(q_k) (G_L = 0).
    """

    activation: str
    depth: int
    sigma_w2: tuple[float, ...]
    sigma_b2: tuple[float, ...]
    mean_x2: float
    q: tuple[float, ...]
    chi: tuple[float, ...]
    log_grad: tuple[float, ...]

    @property
    def q1(self) -> float:
        return self.q[0]

    def chi_at(self, q_measured: Sequence[float]) -> np.ndarray:
        """χ₁ of each layer evaluated at given q_l (e.g. the measured ones) instead of the length map's."""
        return np.array([chi1(self.activation, float(q), self.sigma_w2[min(l + 1, len(self.sigma_w2) - 1)])
                         for l, q in enumerate(q_measured)])

    @property
    def hidden_sigmas(self) -> tuple[float, float]:
        """(σ_w², σ_b²) of the deepest hidden layer (entry −2: the last entry is the output layer's)."""
        i = max(len(self.sigma_w2) - 2, 0)
        return self.sigma_w2[i], self.sigma_b2[i]

    def q_star(self) -> float:
        """The length map's fixed point reached from q_1 (σ_w², σ_b² of the deepest hidden layer)."""
        return q_star(self.activation, *self.hidden_sigmas, self.q1)


@lru_cache(maxsize=None)
def _theory(act: str, sw2: tuple[float, ...], sb2: tuple[float, ...], mean_x2: float) -> RunTheory:
    from theory import meanfield

    depth = len(sw2) - 1
    phi = _act(act)
    qs = [sw2[0] * mean_x2 + sb2[0]]
    for l in range(1, depth):
        q = qs[-1]
        q = meanfield.length_map(phi, q, sw2[l], sb2[l]) if math.isfinite(q) else math.inf
        qs.append(math.inf if q > 1e300 else float(q))
    chis = [chi1(act, q, sw2[min(l + 1, depth)]) for l, q in enumerate(qs)]
    with np.errstate(divide="ignore"):
        g = cumulative(np.log(np.array(chis)))
    return RunTheory(act, depth, sw2, sb2, mean_x2, tuple(qs), tuple(float(c) for c in chis),
                     tuple(float(v) for v in g))


def run_theory(run, mean_x2: float, drawn: pd.Series | None = None,
               drawn_b: pd.Series | None = None) -> RunTheory | None:
    """The theory of one runs.csv row given its measured input mean(x²) and drawn σ's (``layer_sigmas``);
    None for non-MLPs or unknown σ."""
    if str(run.get("model", "mlp")) != "mlp" or not (np.isfinite(mean_x2) and mean_x2 >= 0):
        return None
    sig = layer_sigmas(run, drawn, drawn_b)
    if sig is None:
        return None
    return _theory(str(run["activation"]), sig[0], sig[1], float(mean_x2))


_STUDY_CACHE: "weakref.WeakKeyDictionary[Study, dict]" = weakref.WeakKeyDictionary()


def theories(runs: pd.DataFrame, layers: pd.DataFrame) -> dict:
    """run_id → ``RunTheory`` for every MLP run whose first probe has the input's mean(x²) (preact_q, layer 0)."""
    first = {m: at_probe(layers, m) if len(layers) else layers for m in ("preact_q", "sigma_w2", "sigma_b2")}
    out = {}
    for _, r in runs.iterrows():
        q, w, b = (layer_values(first[m], r["run_id"]) if len(first[m]) else None
                   for m in ("preact_q", "sigma_w2", "sigma_b2"))
        if q is None or 0 not in q.index:
            continue
        t = run_theory(r, float(q[0]), w, b)
        if t is not None:
            out[r["run_id"]] = t
    return out


def study_theories(study: Study) -> dict:
    """``theories`` of a study, computed once per ``Study`` object."""
    if study not in _STUDY_CACHE:
        _STUDY_CACHE[study] = theories(study.runs, study.layers)
    return _STUDY_CACHE[study]


def predicted_saturation(study: Study) -> pd.DataFrame:
    """The mean-field saturated fraction at initialisation per hidden layer, P(|φ′(√q_l u)| < ε) at each
    run's measured q_l (first probe), averaged over seeds: activation, variant, layer, value."""
    from empirical.analysis.results_schema import variant_labels

    lay, runs = study.layers, study.runs
    q = at_probe(lay, "preact_q", "first")
    if not len(q) or "eps" not in runs.columns:
        return pd.DataFrame(columns=["activation", "variant", "layer", "value"])
    info = runs.assign(variant=variant_labels(runs)).set_index("run_id")
    depth = info["depth"]
    rows = []
    for _, r in q.iterrows():
        rid, layer = r["run_id"], int(r["layer"])
        if rid not in info.index or not 1 <= layer <= int(depth.loc[rid]):
            continue
        act = info.loc[rid, "activation"]
        rows.append({"activation": act, "variant": info.loc[rid, "variant"], "layer": layer,
                     "value": saturation_probability(act, float(r["value"]), float(info.loc[rid, "eps"]))})
    out = pd.DataFrame(rows, columns=["activation", "variant", "layer", "value"])
    return out.groupby(["activation", "variant", "layer"], as_index=False)["value"].mean()
