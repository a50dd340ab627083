"""User formulas analysed as the function they are: known answers for kinks sympy cannot solve,
oscillating, unbounded, shifted, guarded `where`, steep sigmoids; the symbolic time budget; and the
definitions (zero-centred, monotonic, dead vs saturating, Lipschitz set, sup|φ″|, TeLU paper)."""
from __future__ import annotations

import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sympy as sp

import theory.activations as A
from theory.properties import derive

ROOT = Path(__file__).resolve().parents[2]
INF = math.inf


def _p(formula):
    return derive(A.lookup(formula))


def _f(v):
    return math.nan if v is None else float(sp.N(v))


# (formula, field, expected): expected is a number (compared to 1e-9), a string, a bool or a callable
CASES = [
    # kinks sympy cannot solve: switching points found numerically, flagged, function analysed as is
    ("max(tanh(x), 0.5*x)", "range", (-1.0, INF)),
    ("max(tanh(x), 0.5*x)", "smoothness", 0),
    ("max(tanh(x), 0.5*x)", "numeric", lambda v: "breakpoints" in v),
    ("max(tanh(x), 0.5*x)", "breakpoints", lambda v: len(v) == 3 and abs(float(v[2]) - 1.915008) < 1e-5),
    ("min(tanh(x), 0.5*x)", "range", (-INF, 1.0)),
    ("abs(sin(x))", "range", (0.0, 1.0)),
    ("abs(sin(x))", "df0", None),
    ("abs(sin(x))", "minimum", lambda m: _f(m.value) == 0.0),
    ("abs(sin(x))", "smoothness", 0),
    ("abs(x - 1)", "breakpoints", lambda v: [float(b) for b in v] == [1.0]),
    # oscillating and unbounded: ∞ from the growth, never a grid artefact
    ("x*sin(x)", "range", (-INF, INF)),
    ("x*sin(x)", "lipschitz", INF),
    ("sin(x**2)", "lipschitz", INF),
    ("sin(x**2)", "range", (-1.0, 1.0)),
    ("x + sin(x)", "lipschitz", 2.0),
    ("x + sin(x)", "monotonic", "strictly increasing"),
    ("sin(x)", "lipschitz", 1.0),
    ("x**3", "lipschitz", INF),
    # shifted: symmetry about the right centre, features far out found
    ("tanh(x-200)", "symmetry", "none"),
    ("tanh(x-20000)", "symmetry", "none"),
    ("tanh(x-20000)", "lipschitz", 1.0),
    ("tanh(x-20000)", "lipschitz_at", 20000.0),
    ("tanh(x)", "symmetry", "odd"),
    ("sigmoid(x)", "symmetry", "point"),
    ("x**2", "symmetry", "even"),
    ("exp(-(x-1)**2)", "symmetry", "none"),
    ("1 + tanh(x)", "symmetry", "point"),
    # jumps: f′(0) undefined, Lipschitz ∞
    ("where(x<0, 0, 1)", "df0", None),
    ("where(x<0, 0, 1)", "lipschitz", INF),
    ("where(x<0, -1, 1)", "smoothness", -1),
    # guarded singularities and steep sigmoids are valid activations
    ("where(x<1, x, 1+log(x))", "range", (-INF, INF)),
    ("where(x<1, x, 1+log(x))", "smoothness", 1),
    ("where(x<1, x, 1+log(x))", "monotonic", "strictly increasing"),
    ("sigmoid(1000*x)", "lipschitz", 250.0),
    ("sigmoid(1000*x)", "range", (0.0, 1.0)),
    ("sigmoid(1000*x)", "symmetry", "point"),
    # smoothness: exact where the pieces match to all orders only if they are the same function
    ("where(x<0, x**3, 0)", "smoothness", 2),
    ("where(x<0, x**9, 0)", "smoothness", 8),
    ("where(x<0, x**9, 0)", "smoothness_at_least", True),
    ("where(x<0, x, x)", "smoothness", INF),
    # definitions that match the words
    ("relu", "zero_centered", False),
    ("relu", "monotonic", "non-decreasing"),
    ("hardtanh", "monotonic", "non-decreasing"),
    ("tanh", "monotonic", "strictly increasing"),
    ("silu", "monotonic", "not monotone"),
    ("leaky_relu", "zero_centered", True),
    ("sigmoid", "zero_centered", False),
    ("relu", "mean_output", 1 / math.sqrt(2 * math.pi)),
    ("tanh", "mean_output", 0.0),
    ("sigmoid", "mean_output", 0.5),
    ("relu", "lipschitz_on", lambda v: len(v) == 1 and v[0][0] == 0 and v[0][1] == sp.oo),
    ("hardtanh", "lipschitz_on", lambda v: [(float(a), float(b)) for a, b in v] == [(-1.0, 1.0)]),
    ("softplus", "lipschitz_attained", False),
    ("relu", "saturation_left", lambda s: s.saturates and s.rate == "dead"),
    ("sigmoid", "saturation_left", lambda s: s.saturates and s.rate == "exponential"),
    # sup|φ″|
    ("tanh", "curvature", 4 / (3 * math.sqrt(3))),
    ("sigmoid", "curvature", 1 / (6 * math.sqrt(3))),
    ("silu", "curvature", 0.5),
    ("gelu", "curvature", math.sqrt(2 / math.pi)),
    ("softplus", "curvature", 0.25),
    ("elu", "curvature", 1.0),
    ("relu", "curvature", INF),
    # the TeLU paper's properties
    ("telu", "near_identity_right", True),
    ("gelu", "near_identity_right", True),
    ("tanh", "near_identity_right", False),
    ("telu", "grad_at_minus3", abs(math.tanh(math.exp(-3)) - 3 * math.exp(-3) * (1 - math.tanh(math.exp(-3)) ** 2))),
    ("relu", "grad_at_minus5", 0.0),
    ("telu", "analytic", True),
    ("relu", "analytic", False),
    ("softplus", "relu_distance", math.log(2)),
    ("leaky_relu", "relu_distance", INF),
    ("elu", "relu_distance", 1.0),
    # more user formulas with closed-form answers
    ("2*x", "lipschitz", 2.0),
    ("x/(1+abs(x))", "range", (-1.0, 1.0)),
    ("x/(1+abs(x))", "lipschitz", 1.0),
    ("atan(x)", "range", (-math.pi / 2, math.pi / 2)),
    ("erf(x)", "lipschitz", 2 / math.sqrt(math.pi)),
    ("x*erf(x)", "symmetry", "even"),
    ("exp(x)", "range", (0.0, INF)),
    ("log(1+exp(x))", "lipschitz_attained", False),
    ("max(x, 0.1*x)", "smoothness", 0),
    ("max(x, 0.1*x)", "monotonic", "strictly increasing"),
    ("cos(x)", "symmetry", "even"),
    ("tanh(2*x)", "lipschitz", 2.0),
    ("sqrt(x**2+1)", "range", (1.0, INF)),
    ("x*sigmoid(x)", "curvature", 0.5),
    ("where(x<0, 0.2*x, x)", "zero_centered", True),
    ("min(x, 0)", "monotonic", "non-decreasing"),
    ("sinh(x)", "lipschitz", INF),
    ("x*tanh(x)", "symmetry", "even"),
    ("where(x<0, exp(x)-1, x)", "curvature", 1.0),
    ("1/(1+exp(-2*x))", "lipschitz", 0.5),
    ("x**3 + x", "monotonic", "strictly increasing"),
    ("x**3", "curvature", INF),                      # sup |6x| = ∞, not 6·(the sampling grid's edge)
    ("where(x<0, 0, x**3)", "curvature", INF),
    ("x + x**3/10", "curvature", INF),
]


def _check(value, expected, label):
    if callable(expected):
        assert expected(value), (label, value)
    elif expected is None:
        assert value is None, (label, value)
    elif isinstance(expected, (bool, str)):
        assert value == expected, (label, value)
    elif isinstance(expected, tuple):
        assert len(value) == len(expected)
        for v, e in zip(value, expected):
            _check(v, e, label)
    else:
        got = _f(value)
        assert (got == expected) if math.isinf(expected) else got == pytest.approx(expected, rel=1e-9, abs=1e-12), \
            (label, got, expected)


@pytest.mark.parametrize("formula, field, expected", CASES, ids=[f"{f}:{k}" for f, k, _ in CASES])
def test_known_answer(formula, field, expected):
    _check(getattr(_p(formula), field), expected, f"{formula}.{field}")


def test_at_least_40_user_formulas():
    builtin = {n for n in A.names() if not A.get(n).user}
    assert len({f for f, _, _ in CASES} - builtin) >= 40


@pytest.mark.parametrize("eps", [1e-3, 1e-6, 1e-9, 1e-12])
def test_saturation_threshold_accurate_at_small_eps(eps):
    """tanh′ = 1 − tanh² = 4/(eˣ + e⁻ˣ)²: x_ε = acosh(1/√ε) exactly (log-space / complementary form)."""
    thr = derive(A.get("tanh"), eps).saturation_right.threshold
    assert thr == pytest.approx(math.acosh(1 / math.sqrt(eps)), rel=1e-9)
    thr = derive(A.get("sigmoid"), eps).saturation_left.threshold     # σ′ = ε: x = −2 acosh(1/(2√ε))
    assert thr == pytest.approx(-2 * math.acosh(1 / (2 * math.sqrt(eps))), rel=1e-9)


def test_guarded_singularity_accepted_unguarded_refused():
    A.register_formula("where(x<1, x, 1+log(x))")
    A.register_formula("sigmoid(1000*x)")
    for bad in ("log(x)", "where(x<0, log(-x), 0)", "1/x", "sqrt(x)"):
        with pytest.raises(A.FormulaError):
            A.register_formula(bad)


def test_tanh_shifted_by_20000_within_budget():
    """No input makes the CLI take more than 20 s per activation (CPU time; sympy steps are budgeted)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "theory", "-f", "tanh(x-20000)", "-a", "relu", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert proc.returncode == 0, proc.stderr
    assert cpu < 20 * 2, f"{cpu:.1f} s of CPU for two activations"
    assert '"symmetry": "none"' in proc.stdout.split('"name": "tanh(x-20000)"')[1]


def test_budget_survives_a_swallowed_timeout():
    """A step that eats the first timeout (bare ``except:``, as some sympy and mpmath paths do) is still
    cut off, and no timeout is raised once the step has returned."""
    import signal

    from theory import properties as P

    def stubborn():
        try:
            while True:
                pass
        except BaseException:  # noqa: BLE001 - the point of the test
            pass
        while True:
            pass

    start = time.process_time()
    assert P._timed(stubborn, "default", 0.2) == "default"
    assert time.process_time() - start < 5
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    spin = time.process_time()
    while time.process_time() - spin < 0.3:  # a leaked periodic timer would raise in here
        pass


def test_timeout_in_a_gc_callback_is_dropped_and_the_step_still_cut_off():
    """Python cannot raise from a gc callback (hypothesis registers one): the _Timeout goes to
    sys.unraisablehook. It must not reach the caller's hook (pytest's formats a traceback, which the
    re-firing timer interrupted in CI), and the step must still end soon after its budget, even when full
    collections of a large heap (as late in the suite) take most of the CPU and would catch every periodic
    firing (CI once took 6.5 s for a 0.2 s budget)."""
    import gc

    from theory import properties as P

    heap = [[] for _ in range(2_000_000)]
    spin = time.process_time()
    gc.collect()
    collection = time.process_time() - spin

    seen = []
    hook = sys.unraisablehook
    sys.unraisablehook = seen.append

    calls = []

    def slow_callback(phase, info):  # the first call outlasts the budget: the first timeout lands in here
        calls.append(phase)
        spin = time.process_time()
        while time.process_time() - spin < (0.1 if len(calls) == 1 else 0.001):
            pass

    def collecting():
        while True:
            spin = time.process_time()
            while time.process_time() - spin < 0.01:
                pass
            gc.collect()

    took = []
    gc.callbacks.append(slow_callback)
    try:
        for _ in range(5):
            calls.clear()
            start = time.process_time()
            assert P._timed(collecting, "default", 0.05) == "default"
            took.append(time.process_time() - start)
    finally:
        gc.callbacks.remove(slow_callback)
        restored = sys.unraisablehook
        sys.unraisablehook = hook
    del heap
    assert restored == seen.append
    assert not any(isinstance(u.exc_value, P._Timeout) for u in seen)
    assert max(took) < 0.3 + 2 * collection, (took, collection)


@pytest.mark.parametrize("shift", [200, 20000])
def test_far_shifted_derivatives_printed_with_correct_digits(shift):
    """f′(0) and |f′(−3)| of tanh(x − s) in JSON against mpmath at enough precision: 1 − tanh(s)² cancels
    catastrophically at 30 digits (it printed 1.085e-165 for both shifts)."""
    import json

    import mpmath

    proc = subprocess.run([sys.executable, "-m", "theory", "-f", f"tanh(x-{shift})", "-a", "relu", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = next(r for r in json.loads(proc.stdout) if r["name"] == f"tanh(x-{shift})")
    with mpmath.workdps(20000):
        want = [float(mpmath.sech(mpmath.mpf(shift + d)) ** 2) for d in (0, 3)]
    got = [row["df0"], row["telu_paper"]["abs_grad_at_minus3"]]
    for g, w in zip(got, want):
        assert g == w if w == 0 else abs(g - w) <= 1e-12 * w, (got, want)


def test_exactly_zero_value_that_never_settles_is_cut_off():
    """1 − tanh(1)² − sech(1)² is 0, which strict evaluation can never certify: it returns within budget."""
    from theory import properties as P

    start = time.process_time()
    v = P._num_exact(1 - sp.tanh(1) ** 2 - sp.sech(1) ** 2)
    assert abs(v) < 1e-25 and time.process_time() - start < 2 * P.STEP_BUDGET_S
