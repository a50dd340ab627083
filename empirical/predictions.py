"""Every measurable theoretical claim as a prediction record: a number, a tolerance, a verdict.

Input: study folders written by ``empirical.run`` (runs.csv, layers.csv, epochs.csv, steps.csv).
Output: ``Prediction`` records, one per (study, claim, activation, setting), tidy
(``FIELDS``). ``verdict`` is "held" (|measured − predicted| ≤ tolerance, or the stated rule),
"failed", or "not applicable" (the data needed are missing; ``detail`` says why / what to run).
``kind`` is "theorem" (must hold; a failure is a bug or fp32 underflow), "prediction" (mean-field
theory, approximate: finite width, Gaussian assumption) or "hypothesis" (the seeds' claims, tested
across seeds paired by seed).

Tolerance rules, fixed before looking at any data (N = narrowest hidden width, L = depth):

- gradient slope (mean backward log-factor per layer, log ‖∂L/∂z_{l−1}‖² − log ‖∂L/∂z_l‖², fitted over
  hidden layers 2..L−2): |Δ| ≤ 0.05 + 5/N (finite width biases E log ratio by O(1/N) per layer);
- pre-activation q profile (mean over layers of log(q_measured/q_predicted)): |Δ| ≤ 0.1 + √(L/N)
  (log q performs a random walk with variance O(l/N) at finite width);
- saturated fraction at init: |Δ| ≤ 0.02 + 0.1·predicted; after training (weights no longer random,
  the Gaussian assumption only approximate): |Δ| ≤ 0.05 + 0.25·predicted;
- dead fraction: 0 exactly where φ has no interval on which φ ≡ 0; ReLU-like at init: ≤ 1/2 + 2/√N;
- Lipschitz backprop bound: measured/bound ≤ 1 + 1e-4 (fp32);
- hypotheses: a stated rule each, e.g. direction in every seed pair and a one-sided paired test
  p < 0.05 (see ``hypotheses``); with 2 seeds such tests have little power and the detail says so.

Gradient norms below ``TINY`` (1e-30: fp32 gradient entries would be subnormal, their relative error
unbounded) are excluded from fits and bounds, and the records say how many were.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

__all__ = [
    "FIELDS", "HELD", "FAILED", "NOT_APPLICABLE", "TINY", "INPUT_DIM", "Prediction", "Study", "PredictionError",
    "find_studies", "load_study", "small_derivative_set", "saturation_probability", "lipschitz_constant",
    "gradient_flow", "preactivation_profile", "saturation", "dead_units", "lipschitz_bound",
    "hypotheses", "predict", "to_frame", "ExpFit", "fit_exp_decay", "grad_tolerance", "q_tolerance",
]

HELD, FAILED, NOT_APPLICABLE = "held", "failed", "not applicable"
FIELDS = ("study", "kind", "claim", "activation", "setting", "predicted", "measured", "measured_std",
          "tolerance", "verdict", "detail")
TINY = 1e-30
INPUT_DIM = {"digits": 64, "mnist": 784, "fashion-mnist": 784, "cifar10": 3072, "mnist1d": 40}
TARGET_ACC = 0.9
ALPHA = 0.05
LOWSAMPLE_COMMAND = "python -m empirical.run --preset lowsample --out-dir RESULTS_ROOT"
_REQUIRED = {
    "runs": ("run_id", "activation", "seed", "init", "sigma_w2", "sigma_b2", "model", "widths", "depth", "status"),
    "layers": ("run_id", "step", "layer", "metric", "value"),
    "epochs": ("run_id", "epoch", "test_acc"),
    "steps": ("run_id", "step", "loss"),
}


class PredictionError(ValueError):
    """Results that cannot be read as a study folder; the message names the file and the problem."""


@dataclass(frozen=True)
class Prediction:
    """One claim checked against one measurement (see the module docstring for the fields)."""

    study: str
    kind: str
    claim: str
    activation: str
    setting: str
    predicted: float
    measured: float
    measured_std: float
    tolerance: float
    verdict: str
    detail: str

    def row(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class Study:
    """One study folder's tables (pandas frames, read once)."""

    name: str
    folder: str
    runs: pd.DataFrame
    layers: pd.DataFrame
    epochs: pd.DataFrame
    steps: pd.DataFrame
    config: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- loading

def find_studies(paths: Sequence[str]) -> list[str]:
    """Study folders named by ``paths``: a folder with runs.csv, or a root whose sub-folders have one."""
    out = []
    for p in paths:
        p = os.path.expanduser(str(p))
        if not os.path.isdir(p):
            raise PredictionError(f"{p} is not a folder; give a study folder (with runs.csv) or a results root")
        if os.path.isfile(os.path.join(p, "runs.csv")):
            out.append(os.path.normpath(p))
            continue
        subs = sorted(os.path.join(p, d) for d in os.listdir(p)
                      if os.path.isfile(os.path.join(p, d, "runs.csv")))
        if not subs:
            raise PredictionError(f"{p} has no runs.csv and no sub-folder with one; run python -m empirical.run first")
        out.extend(os.path.normpath(s) for s in subs)
    return list(dict.fromkeys(out))


def load_study(folder: str) -> Study:
    """Read a study folder; PredictionError names a missing or malformed table."""
    tables = {}
    for name, cols in _REQUIRED.items():
        path = os.path.join(folder, f"{name}.csv")
        try:
            df = pd.read_csv(path)
        except FileNotFoundError:
            raise PredictionError(f"{path} is missing; the study folder is incomplete") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
            raise PredictionError(f"{path} cannot be read as CSV ({' '.join(str(exc).split())})") from None
        missing = [c for c in cols if c not in df.columns]
        if missing and not (name != "runs" and len(df) == 0):
            raise PredictionError(f"{path} lacks column(s) {', '.join(missing)}")
        tables[name] = df
    runs = tables["runs"]
    if len(runs) == 0:
        raise PredictionError(f"{os.path.join(folder, 'runs.csv')} has no runs")
    for c in ("sigma_w2", "sigma_b2", "depth"):
        runs[c] = pd.to_numeric(runs[c], errors="coerce")
    layers = tables["layers"]
    if len(layers):
        layers["value"] = pd.to_numeric(layers["value"], errors="coerce")
    config = {}
    try:
        with open(os.path.join(folder, "study.json")) as fh:
            config = json.load(fh).get("config", {})
    except (OSError, ValueError, AttributeError):
        config = {}
    name = str(config.get("name") or os.path.basename(os.path.normpath(folder)))
    return Study(name=name, folder=folder, runs=runs, layers=layers, epochs=tables["epochs"],
                 steps=tables["steps"], config=config)


# ----------------------------------------------------------------------------------------------- theory helpers

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
def _zero_on_interval(name: str) -> bool:
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
def _q_profile(name: str, q1: float, w: float, b: float, depth: int) -> tuple[float, ...]:
    from theory import meanfield
    return tuple(float(v) for v in meanfield.q_profile(_act(name), q1, w, b, depth))


@lru_cache(maxsize=None)
def _chi1(name: str, q: float, w: float) -> float:
    from theory import meanfield
    return float(meanfield.chi1(_act(name), q, w))


@lru_cache(maxsize=None)
def _q_star(name: str, w: float, b: float, q0: float) -> float:
    from theory import meanfield
    return float(meanfield.fixed_point(_act(name), w, b, q0))


def grad_tolerance(width: int) -> float:
    """|Δ| allowed between the mean backward log-factors per layer: 0.05 + 5/N."""
    return 0.05 + 5.0 / width


def q_tolerance(depth: int, width: int) -> float:
    """|mean log(q_measured/q_predicted)| allowed: 0.1 + √(L/N)."""
    return 0.1 + math.sqrt(depth / width)


# ----------------------------------------------------------------------------------------------- grouping

def _widths(r) -> list[int]:
    try:
        return [int(w) for w in str(r["widths"]).split("-") if w]
    except ValueError:
        return []


def _setting(r) -> str:
    ws = _widths(r)
    parts = [f"init={r['init']}"]
    if str(r["init"]) == "critical":
        parts.append(f"sigma_b2={float(r['sigma_b2']):g}")
    if str(r.get("model", "mlp")) != "mlp":
        parts.insert(0, f"model={r['model']}")
    elif ws and len(set(ws)) == 1:
        parts.append(f"depth={len(ws)} width={ws[0]}")
    else:
        parts.append(f"widths={r['widths']}")
    ts = r.get("train_size")
    if ts is not None and not (isinstance(ts, float) and math.isnan(ts)) and str(ts) != "":
        parts.append(f"train_size={int(float(ts))}")
    return " ".join(parts)


def _groups(study: Study):
    """(setting string, activation, runs frame) per group of seeds; MLP runs first, in file order."""
    runs = study.runs.copy()
    runs["_setting"] = [_setting(r) for _, r in runs.iterrows()]
    for (setting, act), g in runs.groupby(["_setting", "activation"], sort=False):
        yield setting, str(act), g


def _metric(study: Study, metric: str) -> pd.DataFrame:
    lay = study.layers
    return lay[lay["metric"] == metric]


def _at_step(df: pd.DataFrame, run_id: str, which: str) -> pd.Series:
    """metric values by layer at the first ('init') or last ('final') probe of a run."""
    d = df[df["run_id"] == run_id]
    if len(d) == 0:
        return pd.Series(dtype=float)
    step = d["step"].min() if which == "init" else d["step"].max()
    return d[d["step"] == step].set_index("layer")["value"].sort_index()


def _input_sigma_b2(r) -> float:
    """σ_b² of the first layer: PyTorch's default init has Var b = 1/(3·fan_in), fan_in = input size."""
    if str(r["init"]) == "default" and str(r.get("dataset")) in INPUT_DIM:
        return 1.0 / (3.0 * INPUT_DIM[str(r["dataset"])])
    return float(r["sigma_b2"])


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _verdict(measured: float, predicted: float, tol: float) -> str:
    if not (np.isfinite(measured) and np.isfinite(predicted)):
        return NOT_APPLICABLE
    return HELD if abs(measured - predicted) <= tol else FAILED


def _rec(study, kind, claim, act, setting, predicted=math.nan, measured=math.nan, std=math.nan, tol=math.nan,
         verdict=NOT_APPLICABLE, detail="") -> Prediction:
    f = lambda v: float(v) if v is not None else math.nan  # noqa: E731
    return Prediction(study.name, kind, claim, act, setting, f(predicted), f(measured), f(std), f(tol),
                      verdict, detail)


# ----------------------------------------------------------------------------------------------- 1. gradient flow

def _fit_layers(depth: int) -> list[int]:
    """Hidden layers used in slope fits: 2..L−2 (the first sees the data's structure, the last two the loss)."""
    return list(range(2, depth - 1))


def _slope(ls: Sequence[int], ys: Sequence[float]) -> float:
    return float(np.polyfit(np.asarray(ls, float), np.asarray(ys, float), 1)[0])


def _run_profile(study: Study, r) -> dict | None:
    """Measured and mean-field quantities of one MLP run at its first probe (None if unusable)."""
    rid = r["run_id"]
    g = _at_step(_metric(study, "grad_norm_z"), rid, "init")
    q = _at_step(_metric(study, "preact_q"), rid, "init")
    depth = int(r["depth"]) if np.isfinite(r["depth"]) else 0
    w, b = float(r["sigma_w2"]), float(r["sigma_b2"])
    if str(r.get("model", "mlp")) != "mlp" or 0 not in q.index or depth < 1 or not (np.isfinite(w) and np.isfinite(b)):
        return None
    q1 = w * float(q[0]) + _input_sigma_b2(r)
    qs = np.array(_q_profile(str(r["activation"]), q1, w, b, depth))
    chis = np.array([_chi1(str(r["activation"]), v, w) for v in qs])
    return dict(g=g, q=q, depth=depth, w=w, b=b, q1=q1, q_pred=qs, chi=chis, mean_x2=float(q[0]))


def gradient_flow(study: Study) -> list[Prediction]:
    """Depth-wise gradient flow at initialisation, per (setting, activation) of MLPs with L ≥ 6.

    Measured: per seed, minus the least-squares slope of log‖∂L/∂z_l‖² over hidden layers l = 2..L−2
    at step 0, i.e. the mean backward log-factor per layer (negative: vanishing towards the input).
    - ``grad_slope_layerwise``: the same fit applied to the layer-wise mean-field profile
      G_l = Σ_{k≥l} log χ₁(q_k), q_k iterated by the length map from q_1 = σ_w² mean(x²) + σ_b²
      (measured input second moment); this is mean log χ₁(q_l) over the fitted layers.
    - ``grad_slope_given_measured_q``: the same with χ₁ at the *measured* q_l, which separates an
      error of the length map (q_l) from an error of χ₁ itself (Gaussian z, gradient independence).
    - ``grad_slope_chi1_qstar``: the naive prediction log χ₁(q*) (q* the fixed point), to show the
      difference where q_l has not reached q* (SiLU, GELU) or q* does not exist (ReLU with σ_b² > 0).
    - ``critical_flat_grad`` (init=critical only): the claim "the critical init keeps ‖∂L/∂z_l‖ flat",
      predicted 0.
    Tolerance 0.05 + 5/N (``grad_tolerance``). Norms below 1e-30 (fp32 underflow) are left out.
    """
    out = []
    for setting, act, g in _groups(study):
        r0 = g.iloc[0]
        ws = _widths(r0)
        depth = int(r0["depth"]) if np.isfinite(r0["depth"]) else 0
        if str(r0.get("model", "mlp")) != "mlp" or depth < 6 or not ws:
            continue
        layers = _fit_layers(depth)
        tol = grad_tolerance(min(ws))
        meas, pred, naive, given_q, dropped, used = [], [], [], [], 0, []
        for _, r in g.iterrows():
            prof = _run_profile(study, r)
            if prof is None:
                continue
            gz = prof["g"]
            ok = [l for l in layers if l in gz.index and np.isfinite(gz[l]) and gz[l] > TINY]
            dropped += len(layers) - len(ok)
            if len(ok) >= 3:
                meas.append(-_slope(ok, [2 * math.log(gz[l]) for l in ok]))
                used.append(len(ok))
                with np.errstate(divide="ignore"):
                    logchi = np.log(prof["chi"])
                pred.append(-_slope(ok, [_cumulative(logchi)[l - 1] for l in ok]))
                qm = prof["q"]
                if all(l in qm.index and qm[l] > 0 for l in range(1, depth + 1)):
                    with np.errstate(divide="ignore"):
                        lc = np.log([_chi1(act, float(qm[l]), prof["w"]) for l in range(1, depth + 1)])
                    given_q.append(-_slope(ok, [_cumulative(lc)[l - 1] for l in ok]))
            qs = _q_star(act, prof["w"], prof["b"], prof["q1"])
            naive.append(math.log(_chi1(act, qs, prof["w"])) if not math.isnan(qs) else math.nan)
        m, s = _mean_std(meas)
        p, _ = _mean_std(pred)
        pn, _ = _mean_std(naive)
        pg, _ = _mean_std(given_q)
        n = len(meas)
        fit_note = (f"fit over layers 2..{depth - 2} ({min(used) if used else 0}+ usable per seed"
                    + (f"; {dropped} layer-probes below 1e-30 (fp32 underflow) left out" if dropped else "") + ")")
        if n == 0:
            why = (f"no seed has 3 layers with ‖∂L/∂z‖ > 1e-30 in layers 2..{depth - 2}: the gradient underflows fp32"
                   if dropped else "no MLP run with layer probes at step 0")
            for claim, pv in (("grad_slope_layerwise", p), ("grad_slope_chi1_qstar", pn)):
                out.append(_rec(study, "prediction", claim, act, setting, pv, tol=tol, detail=why))
            continue
        v = _verdict(m, p, tol)
        why = (f"per-layer factor exp: predicted {math.exp(p):.3g}, measured {math.exp(m):.3g} over {n} seeds; "
               + fit_note)
        if v == FAILED:
            why = _grad_failure_reason(act, m, p, s, tol, pg, min(ws)) + "; " + why
        out.append(_rec(study, "prediction", "grad_slope_layerwise", act, setting, p, m, s, tol, v, why))
        if given_q:
            vg = _verdict(m, pg, tol)
            why = (f"χ₁ evaluated at the measured q_l instead of the length map's: per-layer factor {math.exp(pg):.3g} "
                   f"vs measured {math.exp(m):.3g}"
                   + ("" if vg != FAILED else "; χ₁ itself is off: z_l is not Gaussian or ∂L/∂z is not independent of "
                      "the forward weights at this width"))
            out.append(_rec(study, "prediction", "grad_slope_given_measured_q", act, setting, pg, m, s, tol, vg, why))
        vn = _verdict(m, pn, tol)
        why = (f"chi1(q*) per layer {math.exp(pn):.3g} vs measured {math.exp(m):.3g}"
               + (f"; the layer-wise profile predicts {math.exp(p):.3g}" if np.isfinite(p) else "")
               + ("" if vn != FAILED else ": q_l has not converged to q* within the depth, or q* does not exist"))
        if not np.isfinite(pn):
            why = "the length map has no fixed point from this q_1 (iteration does not converge)"
        out.append(_rec(study, "prediction", "grad_slope_chi1_qstar", act, setting, pn, m, s, tol, vn, why))
        if str(r0["init"]) == "critical":
            vc = _verdict(m, 0.0, tol)
            why = (f"gradient norm changes by a factor {math.exp(m):.3g} per layer (flat = 1); layer-wise theory "
                   f"predicts {math.exp(p):.3g}"
                   + ("" if vc != FAILED else " — at the edge of chaos chi1(q*) = 1 only once q_l ≈ q*"))
            out.append(_rec(study, "prediction", "critical_flat_grad", act, setting, 0.0, m, s, tol, vc, why))
    return out


@lru_cache(maxsize=None)
def _symmetry(name: str) -> str:
    try:
        from theory import properties
        return str(properties.derive(_act(name)).symmetry)
    except Exception:  # noqa: BLE001 - unknown symmetry only changes the wording of a detail
        return "unknown"


def _cumulative(logchi: np.ndarray) -> np.ndarray:
    """G_l = Σ_{k=l}^{L−1} log χ₁(q_k) (entry l − 1), G_L = 0."""
    return np.concatenate([np.cumsum(logchi[:-1][::-1])[::-1], [0.0]])


def _grad_failure_reason(act: str, m: float, p: float, s: float, tol: float, pg: float, width: int) -> str:
    base = "gradients vanish less than predicted" if m > p else "gradients vanish more than predicted"
    if np.isfinite(pg) and abs(m - pg) <= tol:
        base += (" because the measured q_l left the length map's (with χ₁ at the measured q_l it holds: "
                 f"finite width {width} makes q_l drift)")
    elif act in ("relu",):
        base += f" (finite width {width}: ReLU's half-dead units make log‖∂L/∂z‖² fluctuate ~ 5/N per layer)"
    elif _symmetry(act) != "odd":
        base += (f" — a finite-width ({width}) effect: φ is not odd, so h_l has a common mean component that "
                 "correlates φ′(z_l) with W_l and breaks the gradient-independence assumption; in a direct "
                 "simulation (GELU, He, 12 layers) the excess per layer fell 0.075 → 0.026 → 0.011 at width "
                 "128 → 512 → 2048")
    else:
        base += f" (finite width {width} and the gradient-independence assumption of mean-field theory)"
    if np.isfinite(s) and s > tol:
        base += f"; the seeds disagree by ±{s:.2g}, more than the tolerance"
    return base


def preactivation_profile(study: Study) -> list[Prediction]:
    """``preact_q_profile``: measured mean z_l² (layers 1..L at step 0) against the length map iterated
    from q_1 = σ_w² mean(x²) + σ_b². Statistic: mean over layers of log(q_measured/q_predicted)
    (predicted 0), tolerance 0.1 + √(L/N) (``q_tolerance``). Every MLP (setting, activation)."""
    out = []
    for setting, act, g in _groups(study):
        r0 = g.iloc[0]
        ws = _widths(r0)
        if str(r0.get("model", "mlp")) != "mlp" or not ws:
            continue
        depth = int(r0["depth"])
        tol = q_tolerance(depth, min(ws))
        vals, last_m, last_p = [], [], []
        for _, r in g.iterrows():
            prof = _run_profile(study, r)
            if prof is None:
                continue
            qm = prof["q"]
            lr = [math.log(qm[l] / prof["q_pred"][l - 1]) for l in range(1, depth + 1)
                  if l in qm.index and qm[l] > 0 and np.isfinite(qm[l]) and 0 < prof["q_pred"][l - 1] < math.inf]
            if lr:
                vals.append(float(np.mean(lr)))
                last_m.append(float(qm.get(depth, math.nan)))
                last_p.append(float(prof["q_pred"][depth - 1]))
        m, s = _mean_std(vals)
        v = _verdict(m, 0.0, tol)
        if not vals:
            out.append(_rec(study, "prediction", "preact_q_profile", act, setting, 0.0, tol=tol,
                            detail="no preact_q probes at step 0"))
            continue
        why = (f"q_L predicted {np.mean(last_p):.4g}, measured {np.nanmean(last_m):.4g} "
               f"(mean log ratio over {depth} layers, {len(vals)} seeds)")
        if v == FAILED:
            why = ("measured q drifts from the length map: finite-width fluctuations compound with depth"
                   + (" and ReLU-like maps are marginal (χ_q = 1), so errors are not damped"
                      if act in ("relu", "leaky_relu") else "") + "; " + why)
        out.append(_rec(study, "prediction", "preact_q_profile", act, setting, 0.0, m, s, tol, v, why))
    return out


# ----------------------------------------------------------------------------------------------- 2. saturation

def saturation(study: Study) -> list[Prediction]:
    """Saturated fraction (|φ′(z)| < ε) against P(|φ′(√q_l u)| < ε) per hidden layer, averaged over layers.

    ``saturation_init_measured_q``: q_l = measured preact_q (tests the geometry of φ′ and the Gaussian
    shape of z); ``saturation_init_predicted_q``: q_l from the length map (tests the whole mean-field
    chain); ``saturation_final_measured_q``: at the last probe (trained weights: the Gaussian
    assumption is weaker; looser tolerance). Skipped where φ′ never falls below ε (predicted 0 and
    measured 0 would say nothing) unless something was measured.
    Tolerance 0.02 + 0.1·predicted (init), 0.05 + 0.25·predicted (final).
    """
    out = []
    sat_all = _metric(study, "saturated_frac")
    qs_all = _metric(study, "preact_q")
    for setting, act, g in _groups(study):
        r0 = g.iloc[0]
        eps = float(r0.get("eps", 0.01)) if np.isfinite(float(r0.get("eps", 0.01))) else 0.01
        try:
            region = small_derivative_set(act, eps)
        except Exception as exc:  # noqa: BLE001 - a user formula numpy cannot evaluate
            out.append(_rec(study, "prediction", "saturation_init_measured_q", act, setting,
                            detail=f"cannot evaluate φ′: {exc}"))
            continue
        for claim, which, use_pred, (a, rel) in (
                ("saturation_init_measured_q", "init", False, (0.02, 0.1)),
                ("saturation_init_predicted_q", "init", True, (0.02, 0.1)),
                ("saturation_final_measured_q", "final", False, (0.05, 0.25))):
            if use_pred and str(r0.get("model", "mlp")) != "mlp":
                continue
            pm, mm = [], []
            for _, r in g.iterrows():
                sat = _at_step(sat_all, r["run_id"], which)
                q = _at_step(qs_all, r["run_id"], which)
                if use_pred:
                    prof = _run_profile(study, r)
                    if prof is None:
                        continue
                    qpred = {l: prof["q_pred"][l - 1] for l in range(1, prof["depth"] + 1)}
                layers_ = [l for l in sat.index if l in q.index and l >= 1 and np.isfinite(sat[l])]
                if use_pred:
                    layers_ = [l for l in layers_ if l in qpred]
                if not layers_:
                    continue
                pm.append(float(np.mean([saturation_probability(act, qpred[l] if use_pred else q[l], eps)
                                         for l in layers_])))
                mm.append(float(np.mean([sat[l] for l in layers_])))
            if not mm:
                continue
            p, _ = _mean_std(pm)
            m, s = _mean_std(mm)
            if not region and m == 0:
                continue
            tol = a + rel * p
            v = _verdict(m, p, tol)
            where = ("|φ′| < ε on " + ", ".join(f"({lo:.3g}, {hi:.3g})" for lo, hi in region)) if region \
                else "|φ′| ≥ ε everywhere"
            why = f"{where}; mean over hidden layers and {len(mm)} seeds"
            if v == FAILED:
                if which == "final":
                    why = "after training z is not N(0, q): trained weights shift and skew pre-activations; " + why
                elif use_pred:
                    why = "the length map's q_l differs from the measured one (see preact_q_profile); " + why
                else:
                    why = ("z_l is not Gaussian at finite width (unit-to-unit variance spread gives heavier tails); "
                           + why)
            out.append(_rec(study, "prediction", claim, act, setting, p, m, s, tol, v, why))
    return out


# ----------------------------------------------------------------------------------------------- 3. dead units

def dead_units(study: Study) -> list[Prediction]:
    """Dead units (h = 0 on every probe input) per (setting, activation).

    - φ not identically 0 on any interval (all but ReLU-like): ``no_dead_units``, theorem: dead_frac = 0
      at every probe (a continuous z hits φ's isolated zeros with probability 0); measured = max.
    - φ ≡ 0 on an interval (ReLU): at init z_i over the batch is a sign-symmetric random vector given
      the previous layer (W, b → −W, −b), so P(all z_i < 0) = P(all z_i > 0) ≤ 1/2:
      ``dead_units_at_most_half`` (theorem; measured = max over layers/seeds at step 0, tolerance
      2/√N for the N units of a layer); ``dead_units_independent_inputs`` (the naive claim that a
      unit is dead with probability P(z < 0)^B ≈ 0: predicted 0, tolerance one unit 1/N; it fails where
      inputs are correlated); ``dead_units_grow_with_depth`` (L ≥ 6; mean-field correlations c_l
      increase with depth towards 1 and, by Slepian's inequality, so does P(all z < 0): Spearman ρ of
      dead_frac against l, held iff ρ > 0 with one-sided p < 0.05).
    """
    out = []
    dead_all = _metric(study, "dead_frac")
    for setting, act, g in _groups(study):
        r0 = g.iloc[0]
        ids = set(g["run_id"])
        d = dead_all[dead_all["run_id"].isin(ids)]
        d = d[np.isfinite(d["value"])]
        if len(d) == 0:
            continue
        ws = _widths(r0) if str(r0.get("model", "mlp")) == "mlp" else [int(r0.get("channels", 8))]
        n_units = min(ws) if ws else 1
        try:
            zero_interval = _zero_on_interval(act)
        except Exception as exc:  # noqa: BLE001
            out.append(_rec(study, "theorem", "no_dead_units", act, setting, detail=f"cannot derive φ: {exc}"))
            continue
        if not zero_interval:
            mx = float(d["value"].max())
            v = HELD if mx == 0.0 else FAILED
            why = ("φ is zero on no interval, so h = 0 on a whole batch has probability 0"
                   + ("" if v == HELD else f"; {int((d['value'] > 0).sum())} layer-probes have dead units: "
                      "fp32 underflow of φ or a collapsed (constant) layer input"))
            out.append(_rec(study, "theorem", "no_dead_units", act, setting, 0.0, mx, math.nan, 0.0, v, why))
            continue
        init = d[d["step"] == d.groupby("run_id")["step"].transform("min")]
        hidden = init[init["layer"] >= 1]
        mx = float(hidden["value"].max())
        tol = 2.0 / math.sqrt(n_units)
        v = HELD if mx <= 0.5 + tol else FAILED
        out.append(_rec(study, "theorem", "dead_units_at_most_half", act, setting, 0.5, mx, math.nan, tol, v,
                        "sign symmetry of the init: P(unit dead on the batch) ≤ 1/2; max over layers and seeds "
                        "at step 0" + ("" if v == HELD else " — exceeded: the init is not sign-symmetric?")))
        per_seed = hidden.groupby("run_id")["value"].mean()
        m, s = _mean_std(per_seed.tolist())
        tol1 = 1.0 / n_units
        v = _verdict(m, 0.0, tol1)
        out.append(_rec(study, "prediction", "dead_units_independent_inputs", act, setting, 0.0, m, s, tol1, v,
                        "P(z<0)^B ≈ 0 assumes the batch's pre-activations independent" +
                        ("" if v == HELD else "; they are strongly correlated (mean-field c_l → 1 with depth), "
                         "so whole units switch off together")))
        depth = int(r0["depth"]) if np.isfinite(r0["depth"]) else 0
        if str(r0.get("model", "mlp")) == "mlp" and depth >= 6:
            rhos = []
            for rid, dd in hidden.groupby("run_id"):
                if dd["value"].nunique() > 1:
                    rhos.append(float(stats.spearmanr(dd["layer"], dd["value"]).statistic))
            prof = hidden.groupby("layer")["value"].mean()
            if prof.nunique() > 1:
                res = stats.spearmanr(prof.index, prof.values, alternative="greater")
                rho, pval = float(res.statistic), float(res.pvalue)
            else:
                rho, pval = 0.0, 1.0
            v = HELD if rho > 0 and pval < ALPHA else FAILED
            _, s = _mean_std(rhos)
            out.append(_rec(study, "prediction", "dead_units_grow_with_depth", act, setting, 1.0, rho, s, math.nan,
                            v, f"Spearman rho of seed-mean dead_frac against layer, one-sided p = {pval:.2g} "
                               f"(held iff rho > 0 and p < {ALPHA}); dead_frac layer 1 → {depth}: "
                               f"{prof.iloc[0]:.3f} → {prof.iloc[-1]:.3f}"))
    return out


# ----------------------------------------------------------------------------------------------- 4. Lipschitz

def lipschitz_bound(study: Study) -> list[Prediction]:
    """``lipschitz_backprop_bound``, a theorem, one record per activation of the study.

    With z_l = h_{l−1} W_l + b_l and h = φ(z): ∂L/∂h_{l−1} = ∂L/∂z_l W_lᵀ so ‖∂L/∂h_{l−1}‖ ≤ ‖W_l‖₂‖∂L/∂z_l‖,
    and ∂L/∂z_{l−1} = φ′(z_{l−1}) ⊙ ∂L/∂h_{l−1} so ‖∂L/∂z_{l−1}‖ ≤ Lip(φ)‖∂L/∂h_{l−1}‖. Measured: the
    largest of the three ratios lhs/rhs (including ‖∂L/∂z_{l−1}‖ / (Lip‖W_l‖₂‖∂L/∂z_l‖)) over every
    probe, layer l = 2..L+1 and run; held iff ≤ 1 + 1e-4 (fp32). Needs MLP runs (‖W_l‖₂ is probed there).
    """
    out = []
    lay = study.layers
    runs = study.runs
    for act, g in runs.groupby("activation", sort=False):
        act = str(act)
        mlp = g[g["model"].astype(str) == "mlp"]
        if len(mlp) == 0:
            out.append(_rec(study, "theorem", "lipschitz_backprop_bound", act, "all runs",
                            detail="needs MLP runs (weight_spectral_norm is probed for linear layers only)"))
            continue
        try:
            lip = lipschitz_constant(act)
        except Exception as exc:  # noqa: BLE001
            out.append(_rec(study, "theorem", "lipschitz_backprop_bound", act, "all runs",
                            detail=f"no Lipschitz constant: {exc}"))
            continue
        d = lay[lay["run_id"].isin(set(mlp["run_id"])) &
                lay["metric"].isin(("grad_norm_z", "grad_norm_h", "weight_spectral_norm"))]
        if len(d) == 0:
            out.append(_rec(study, "theorem", "lipschitz_backprop_bound", act, "all runs",
                            detail="no grad_norm_z/grad_norm_h/weight_spectral_norm probes"))
            continue
        wide = d.pivot_table(index=["run_id", "step", "layer"], columns="metric", values="value", aggfunc="first")
        for c in ("grad_norm_z", "grad_norm_h", "weight_spectral_norm"):
            if c not in wide.columns:
                wide[c] = np.nan
        wide = wide.sort_index()
        prev = wide.groupby(level=[0, 1]).shift(1)          # layer l−1 in the same run and probe
        gz, ws = wide["grad_norm_z"], wide["weight_spectral_norm"]
        gz_prev, gh_prev = prev["grad_norm_z"], prev["grad_norm_h"]
        ratios, skipped = {}, 0
        for name, lhs, rhs in (("h", gh_prev, ws * gz), ("z", gz_prev, lip * gh_prev),
                               ("zz", gz_prev, lip * ws * gz)):
            ok = np.isfinite(lhs) & np.isfinite(rhs) & (lhs > TINY) & (gz > TINY)
            skipped += int((np.isfinite(lhs) & np.isfinite(rhs) & ~ok).sum())
            r = (lhs[ok] / rhs[ok]).replace([np.inf], np.inf)
            ratios[name] = float(r.max()) if len(r) else math.nan
        mx = max((v for v in ratios.values() if np.isfinite(v)), default=math.nan)
        n = int(np.isfinite(gz_prev).sum())
        if not np.isfinite(mx):
            out.append(_rec(study, "theorem", "lipschitz_backprop_bound", act, "all runs", 1.0, tol=1e-4,
                            detail="no layer pair with norms above 1e-30"))
            continue
        v = HELD if mx <= 1.0 + 1e-4 else FAILED
        why = (f"Lip(φ) = {lip:.4g}; max ratio ‖∂L/∂h_(l−1)‖/(‖W_l‖₂‖∂L/∂z_l‖) = {ratios['h']:.3g}, "
               f"‖∂L/∂z_(l−1)‖/(Lip‖∂L/∂h_(l−1)‖) = {ratios['z']:.3g}, combined {ratios['zz']:.3g}; "
               f"{n} layer pairs in {len(mlp)} runs" + (f", {skipped} below 1e-30 skipped" if skipped else ""))
        if v == FAILED:
            why = "BUG: a theorem is violated (probe, Lipschitz constant or weight layout wrong); " + why
        out.append(_rec(study, "theorem", "lipschitz_backprop_bound", act, "all runs", 1.0, mx, math.nan, 1e-4,
                        v, why))
    return out


# ----------------------------------------------------------------------------------------------- 5. hypotheses

@dataclass(frozen=True)
class ExpFit:
    """y ≈ a·e^(−k (t − t₀)) + c; [k_lo, k_hi] the 95 % interval k ± 1.96·√cov_kk."""

    k: float
    k_lo: float
    k_hi: float
    a: float
    c: float


def fit_exp_decay(t: Sequence[float], y: Sequence[float]) -> ExpFit | None:
    """Fit y ≈ a·e^(−k (t − t₀)) + c by least squares (t₀ the first t), with a 95 % interval for k.

    For fixed k the model is linear in (a, c), so k is first found by minimising the profiled residual
    over a log-grid of k (robust start), then ``scipy.optimize.curve_fit`` refines all three and gives
    the covariance. None when there are fewer than 5 points, the fit fails or its covariance is not finite.
    """
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    if len(t) < 5:
        return None
    t0 = t - t[0]
    span = max(float(t0[-1]), 1.0)

    def profile(k):
        X = np.column_stack([np.exp(-k * t0), np.ones_like(t0)])
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        return float(np.sum((X @ coef - y) ** 2)), coef

    ks = np.geomspace(1e-3 / span, 1e3 / span, 121)
    sse = [profile(k)[0] for k in ks]
    i = int(np.argmin(sse))
    lo_k, hi_k = ks[max(i - 1, 0)], ks[min(i + 1, len(ks) - 1)]
    res = optimize.minimize_scalar(lambda lk: profile(math.exp(lk))[0], bounds=(math.log(lo_k), math.log(hi_k)),
                                   method="bounded")
    k0 = math.exp(res.x)
    _, (a0, c0) = profile(k0)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            popt, pcov = optimize.curve_fit(lambda s, a, k, c: a * np.exp(-k * s) + c, t0, y, p0=(a0, k0, c0),
                                            maxfev=5000)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return None
    if not (np.all(np.isfinite(pcov)) and pcov[1, 1] >= 0 and popt[1] > 0):
        return None
    k, se = float(popt[1]), math.sqrt(pcov[1, 1])
    return ExpFit(k, k - 1.96 * se, k + 1.96 * se, float(popt[0]), float(popt[2]))


def _paired(runs: pd.DataFrame, a: str, b: str, col: str) -> list[tuple[float, float, object]]:
    ra = runs[runs["activation"] == a].set_index("seed")[col]
    rb = runs[runs["activation"] == b].set_index("seed")[col]
    seeds = [s for s in ra.index if s in rb.index]
    out = []
    for s in seeds:
        x, y = pd.to_numeric(pd.Series([ra[s], rb[s]]), errors="coerce")
        out.append((float(x), float(y), s))
    return out


def _one_sided_t(d: Sequence[float]) -> float:
    """One-sided p of the paired t-test that mean(d) > 0 (nan with fewer than 2 pairs; with no spread,
    the limit t → ±∞: 0 if every d > 0, else 1)."""
    d = np.asarray(d, float)
    if len(d) < 2:
        return math.nan
    if float(np.std(d, ddof=1)) == 0.0:
        return 0.0 if d[0] > 0 else 1.0
    return float(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)


def _power_note(n: int) -> str:
    return (f"with {n} seed pair(s) a paired test has little power (a sign test cannot go below p = {0.5 ** n:.2g})"
            if n < 5 else "")


def _hyp_settings(study: Study):
    runs = study.runs.copy()
    runs["_setting"] = [_setting(r) for _, r in runs.iterrows()]
    for setting, g in runs.groupby("_setting", sort=False):
        yield setting, g


def _first_layer_grad(study: Study, setting: str, g: pd.DataFrame, col: str, when: str) -> Prediction:
    claim = f"relu_larger_first_layer_grad_{when}"
    pairs = [(x, y, s) for x, y, s in _paired(g, "relu", "sigmoid", col) if x > 0 and y > 0]
    if not pairs:
        return _rec(study, "hypothesis", claim, "relu vs sigmoid", setting, 1.0,
                    detail=f"no seed with finite {col} for both relu and sigmoid")
    logr = [math.log(x / y) for x, y, _ in pairs]
    ratio = math.exp(float(np.mean(logr)))
    std = float(np.std([x / y for x, y, _ in pairs], ddof=1)) if len(pairs) > 1 else math.nan
    p = _one_sided_t(logr)
    p_sign = float(stats.binomtest(sum(r > 0 for r in logr), len(logr), 0.5, alternative="greater").pvalue)
    all_dir = all(r > 0 for r in logr)
    v = HELD if all_dir and np.isfinite(p) and p < ALPHA else FAILED
    why = (f"mean |∂L/∂W_1| ratio relu/sigmoid (geometric mean over seeds) {ratio:.3g}; larger in "
           f"{sum(r > 0 for r in logr)}/{len(logr)} seeds; paired t-test on log ratio one-sided p = {p:.2g}, "
           f"sign test p = {p_sign:.2g}")
    note = _power_note(len(pairs))
    if note:
        why += "; " + note
    return _rec(study, "hypothesis", claim, "relu vs sigmoid", setting, 1.0, ratio, std, math.nan, v, why)


def _epochs_to_target(study: Study, rid: str, n_epochs: int) -> float:
    e = study.epochs[study.epochs["run_id"] == rid].sort_values("epoch")
    hit = e[pd.to_numeric(e["test_acc"], errors="coerce") >= TARGET_ACC]
    return float(hit["epoch"].iloc[0]) if len(hit) else float(n_epochs + 1)


def _faster_target(study: Study, setting: str, g: pd.DataFrame) -> Prediction:
    claim = "relu_reaches_target_acc_sooner"
    n_ep = int(pd.to_numeric(g["epochs"], errors="coerce").max()) if "epochs" in g else 0
    ra = g[g["activation"] == "relu"].set_index("seed")["run_id"]
    rb = g[g["activation"] == "sigmoid"].set_index("seed")["run_id"]
    seeds = [s for s in ra.index if s in rb.index]
    if not seeds or len(study.epochs) == 0:
        return _rec(study, "hypothesis", claim, "relu vs sigmoid", setting, detail="no paired epochs")
    reached = [(_epochs_to_target(study, ra[s], n_ep), _epochs_to_target(study, rb[s], n_ep)) for s in seeds]
    if all(a > n_ep and b > n_ep for a, b in reached):
        return _rec(study, "hypothesis", claim, "relu vs sigmoid", setting, 0.0,
                    detail=f"neither relu nor sigmoid reaches {TARGET_ACC:.0%} test accuracy within {n_ep} epoch(s) "
                           "in any seed: train longer")
    d = [b - a for a, b in reached]
    never = sum(b > n_ep for _, b in reached)
    m, s_ = _mean_std(d)
    pos = sum(x > 0 for x in d)
    nz = sum(x != 0 for x in d)
    p_sign = float(stats.binomtest(pos, nz, 0.5, alternative="greater").pvalue) if nz else 1.0
    v = HELD if pos == len(d) and p_sign < ALPHA else FAILED
    why = (f"epochs to {TARGET_ACC:.0%} test accuracy, sigmoid minus relu (never = {n_ep + 1}; sigmoid never in "
           f"{never}/{len(d)}); relu sooner in {pos}/{len(d)} seeds, sign test one-sided p = {p_sign:.2g}")
    note = _power_note(len(d))
    if note:
        why += "; " + note
    return _rec(study, "hypothesis", claim, "relu vs sigmoid", setting, 0.0, m, s_, math.nan, v, why)


MIN_STEPS_FOR_DECAY = 30


def _decay_rates(study: Study, g: pd.DataFrame, act: str) -> dict:
    out = {}
    for _, r in g[g["activation"] == act].iterrows():
        st = study.steps[study.steps["run_id"] == r["run_id"]].sort_values("step")
        if len(st) < MIN_STEPS_FOR_DECAY:
            continue
        fit = fit_exp_decay(st["step"].to_numpy(float), pd.to_numeric(st["loss"], errors="coerce").to_numpy(float))
        out[r["seed"]] = fit
    return out


def _faster_decay(study: Study, setting: str, g: pd.DataFrame) -> Prediction:
    claim = "relu_faster_loss_decay"
    ka, kb = _decay_rates(study, g, "relu"), _decay_rates(study, g, "sigmoid")
    if not ka or not kb:
        return _rec(study, "hypothesis", claim, "relu vs sigmoid", setting, 1.0,
                    detail=f"fewer than {MIN_STEPS_FOR_DECAY} training steps per run: too short to fit a decay rate")
    seeds = [s for s in ka if s in kb and ka[s] is not None and kb[s] is not None]
    if not seeds:
        return _rec(study, "hypothesis", claim, "relu vs sigmoid", setting, 1.0,
                    detail="a·e^(−kt)+c did not fit the per-step losses of any relu/sigmoid pair")
    ratios = [ka[s].k / kb[s].k if kb[s].k > 0 else math.inf for s in seeds]
    disjoint = sum(ka[s].k_lo > kb[s].k_hi for s in seeds)
    logs = [math.log(r) for r in ratios if 0 < r < math.inf]
    p = _one_sided_t(logs)
    m = math.exp(float(np.mean(logs))) if logs else math.nan
    std = float(np.std(ratios, ddof=1)) if len(ratios) > 1 and all(np.isfinite(ratios)) else math.nan
    pairs = [s for s in ka if s in kb]
    v = HELD if disjoint == len(pairs) else FAILED
    unfit = len(pairs) - len(seeds)
    ci = "; ".join(f"seed {s}: relu k = {ka[s].k:.3g} [{ka[s].k_lo:.3g}, {ka[s].k_hi:.3g}] to plateau "
                   f"{ka[s].c:.3g}, sigmoid {kb[s].k:.3g} [{kb[s].k_lo:.3g}, {kb[s].k_hi:.3g}] to plateau {kb[s].c:.3g}"
                   for s in seeds)
    why = (f"k of loss ≈ a·e^(−k·step)+c (the rate of approach to the plateau c, not the loss removed), ratio "
           f"relu/sigmoid {m:.3g}; held iff relu's 95 % CI lies above "
           f"sigmoid's in every seed ({disjoint}/{len(pairs)}"
           + (f"; the fit failed in {unfit} pair(s)" if unfit else "") + f"); paired t on log k p = {p:.2g}; {ci}")
    return _rec(study, "hypothesis", claim, "relu vs sigmoid", setting, 1.0, m, std, math.nan, v, why)


def _lowsample_flat(studies: Sequence[Study]) -> list[Prediction]:
    out = []
    for st in studies:
        runs = st.runs
        if "train_size" not in runs:
            continue
        ts = pd.to_numeric(runs["train_size"], errors="coerce")
        for setting, g in _hyp_settings(Study(st.name, st.folder, runs[ts.notna()], st.layers, st.epochs, st.steps)):
            sig = g[g["activation"] == "sigmoid"]
            if len(sig) == 0:
                continue
            drops = []
            for _, r in sig.iterrows():
                s = st.steps[st.steps["run_id"] == r["run_id"]].sort_values("step")
                loss = pd.to_numeric(s["loss"], errors="coerce").to_numpy(float)
                if len(loss) >= 2 and np.isfinite(loss[0]) and loss[0] > 0:
                    n = max(1, len(loss) // 10)
                    drops.append(1.0 - float(np.nanmean(loss[-n:])) / float(loss[0]))
            if not drops:
                continue
            m, s_ = _mean_std(drops)
            v = HELD if all(d < 0.1 for d in drops) else FAILED
            out.append(_rec(st, "hypothesis", "sigmoid_flat_low_sample", "sigmoid", setting, 0.0, m, s_, 0.1, v,
                            f"fraction of the initial loss removed by the end (mean of the last 10 % of steps); "
                            f"'flat' = below 10 % in every seed ({sum(d < 0.1 for d in drops)}/{len(drops)})"))
    if not out:
        out.append(Prediction("(none)", "hypothesis", "sigmoid_flat_low_sample", "sigmoid", "train_size set",
                              0.0, math.nan, math.nan, 0.1, NOT_APPLICABLE,
                              f"no low-sample study with sigmoid; produce one with: {LOWSAMPLE_COMMAND}"))
    return out


def _selu_ranks(study: Study, setting: str, g: pd.DataFrame) -> list[Prediction]:
    acts = list(dict.fromkeys(g["activation"].astype(str)))
    if "selu" not in acts or len(acts) < 3:
        return []
    first = study.steps[study.steps["step"] == study.steps["step"].min()] if len(study.steps) else study.steps
    start, end = {}, {}
    for _, r in g.iterrows():
        f = first[first["run_id"] == r["run_id"]]["loss"]
        start.setdefault(str(r["activation"]), {})[r["seed"]] = float(f.iloc[0]) if len(f) else math.nan
        final = pd.to_numeric(pd.Series([r.get("final_train_loss")]), errors="coerce").iloc[0]
        end.setdefault(str(r["activation"]), {})[r["seed"]] = float(final)
    n = len(acts)
    top = max(2, math.ceil(n / 3))
    out = []
    for claim, table, descending, tol in (("selu_starts_highest_loss", start, True, 0),
                                          ("selu_ends_among_lowest_loss", end, False, top - 1)):
        means = {a: np.nanmean(list(table[a].values())) if table.get(a) else math.nan for a in acts}
        if any(not np.isfinite(v) for v in means.values()):
            out.append(_rec(study, "hypothesis", claim, "selu", setting, 1.0, tol=tol,
                            detail="a run lacks its loss (diverged or missing steps)"))
            continue
        order = sorted(acts, key=lambda a: -means[a] if descending else means[a])
        rank = order.index("selu") + 1
        seeds = sorted(set.intersection(*(set(table[a]) for a in acts)))
        per_seed = []
        for s in seeds:
            o = sorted(acts, key=lambda a: -table[a][s] if descending else table[a][s])
            per_seed.append(o.index("selu") + 1)
        std = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else math.nan
        v = HELD if rank - 1 <= tol else FAILED
        what = "first-step loss, rank 1 = highest" if descending else "final train loss, rank 1 = lowest"
        out.append(_rec(study, "hypothesis", claim, "selu", setting, 1.0, rank, std, tol, v,
                        f"{what} among {n} activations (seed means); per-seed ranks {per_seed}; "
                        f"held iff rank ≤ {tol + 1}"))
    return out


def hypotheses(studies: Sequence[Study]) -> list[Prediction]:
    """The seeds' claims as hypotheses, per study and setting (runs paired by seed).

    - ``relu_larger_first_layer_grad_init`` / ``_final``: effect = geometric-mean ratio of mean|∂L/∂W₁|
      relu/sigmoid (runs.csv first_layer_grad_*); held iff larger in every seed and one-sided paired
      t-test on the log ratio p < 0.05.
    - ``relu_reaches_target_acc_sooner``: epochs to 90 % test accuracy (epochs.csv; never = epochs+1),
      sigmoid minus relu; held iff relu sooner in every seed and the sign test p < 0.05 (needs ≥ 5 seeds).
    - ``relu_faster_loss_decay``: k of a·e^(−k·step)+c fitted to steps.csv (95 % CI from the covariance);
      held iff relu's CI lies above sigmoid's in every seed.
    - ``sigmoid_flat_low_sample``: in a study with train_size set, sigmoid loses < 10 % of its initial
      loss in every seed; "not applicable" (with the command to run) if there is no such study.
    - ``selu_starts_highest_loss`` (rank 1 of first-step loss) and ``selu_ends_among_lowest_loss``
      (final train loss rank ≤ max(2, ⌈n/3⌉) of n activations).
    """
    out = []
    for st in studies:
        for setting, g in _hyp_settings(st):
            acts = set(g["activation"].astype(str))
            if {"relu", "sigmoid"} <= acts:
                out.append(_first_layer_grad(st, setting, g, "first_layer_grad_init", "init"))
                out.append(_first_layer_grad(st, setting, g, "first_layer_grad_final", "final"))
                out.append(_faster_target(st, setting, g))
                out.append(_faster_decay(st, setting, g))
            out.extend(_selu_ranks(st, setting, g))
    out.extend(_lowsample_flat(studies))
    return out


# ----------------------------------------------------------------------------------------------- all

def predict(studies: Iterable[Study]) -> list[Prediction]:
    """Every claim for every study: per-study claims in study order, then the hypotheses."""
    studies = list(studies)
    out = []
    for st in studies:
        out += lipschitz_bound(st)
        out += gradient_flow(st)
        out += preactivation_profile(st)
        out += saturation(st)
        out += dead_units(st)
    out += hypotheses(studies)
    return out


def to_frame(preds: Iterable[Prediction]) -> pd.DataFrame:
    """The tidy table (columns ``FIELDS``)."""
    return pd.DataFrame([p.row() for p in preds], columns=list(FIELDS))
